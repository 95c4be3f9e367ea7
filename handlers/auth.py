"""Auth endpoints: logins, token refresh, logout, session info."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome import auth, users
from pawhome.errors import NotFound


class DevLoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    openid: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    role: str = Field("user", pattern=r"^(user|merchant|admin)$")


class DevLoginHandler(ApiHandler):
    """Log in as any openid without WeChat. Only in embedded/development settings."""

    async def prepare(self) -> None:
        await super().prepare()
        if not self.r.settings.dev_login:
            raise NotFound("No such endpoint")

    @endpoint(auth=False, body=DevLoginBody, tags=("auth",),
              summary="Development login (absent in production)")
    async def post(self) -> None:
        async with self.r.db.session() as session, session.begin():
            user, is_new = await users.get_or_create_by_openid(session, self.body.openid)
            users.ensure_active(user)
            if is_new and self.body.role != "user":
                user.role = self.body.role
            users.mark_login(user)
            tokens = await auth.issue_token_pair(session, self.r.settings, user)
        self.ok({**tokens, "user_id": user.id, "is_new_user": is_new})
