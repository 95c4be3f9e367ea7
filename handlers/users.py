"""User endpoints: the caller's profile and settings, public profiles, block list."""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome import users


class MeHandler(ApiHandler):
    @endpoint(summary="The caller's profile", tags=("users",))
    async def get(self) -> None:
        async with self.r.db.session() as session:
            user = await users.get_user(session, self.user_id)
        self.ok(users.profile(user))
