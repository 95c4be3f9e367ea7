"""Admin user management under /v1/admin/users: list and search, ban, unban, role."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.identity import auth, users
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.pagination import PageQuery

ADMIN = ("admin",)


class UserListQuery(PageQuery):
    q: str | None = Field(None, min_length=1, max_length=64)
    status: Literal["active", "banned"] | None = None
    role: Literal["user", "merchant", "admin"] | None = None


class BanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=255, pattern=NOT_BLANK)


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "merchant", "admin"]


class AdminUsersHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=UserListQuery, tags=("admin",),
              summary="List users; q matches an id or a nickname")
    async def get(self) -> None:
        q = self.query
        self.ok(await users.search_users(self.r, q.q, q.status, q.role, q))


class AdminBanHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=BanBody, tags=("admin",),
              summary="Ban a user; their tokens stop working at once")
    async def post(self, user_id: int) -> None:
        self.ok(await auth.ban_user(self.r, self.user_id, user_id, self.body.reason.strip()))


class AdminUnbanHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=("admin",), summary="Lift a ban")
    async def post(self, user_id: int) -> None:
        self.ok(await auth.unban_user(self.r, user_id))


class AdminRoleHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=RoleBody, tags=("admin",), summary="Set a user's role")
    async def put(self, user_id: int) -> None:
        self.ok(await auth.set_role(self.r, self.user_id, user_id, self.body.role))
