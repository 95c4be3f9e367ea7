"""User endpoints: the caller's profile and settings, public profiles, block list."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.identity import users
from pawhome.platform.errors import NotFound, SensitiveContent
from pawhome.platform.pagination import PageQuery


class BlockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int = Field(ge=1, le=2**63 - 1)


class MeHandler(ApiHandler):
    @endpoint(summary="The caller's profile", tags=("users",))
    async def get(self) -> None:
        self.ok(await users.my_profile(self.r, self.user_id))

    @endpoint(body=users.ProfileUpdate, tags=("users",), errors=(SensitiveContent,),
              refuses={"nickname": "no word of the sensitive-word list",
                       "bio": "no word of the sensitive-word list",
                       "avatar_url": "an https URL",
                       "birthday": "between 1900-01-01 and today"},
              summary="Change the caller's profile (only the fields sent)")
    async def put(self) -> None:
        self.ok(await users.update_profile(self.r, self.user_id, self.body))


class MySettingsHandler(ApiHandler):
    @endpoint(tags=("users",), summary="The caller's notification and privacy preferences")
    async def get(self) -> None:
        self.ok(await users.get_settings(self.r, self.user_id))

    @endpoint(body=users.SettingsUpdate, tags=("users",),
              summary="Change preferences (only the keys sent)")
    async def put(self) -> None:
        self.ok(await users.change_settings(self.r, self.user_id, self.body))


class UserHandler(ApiHandler):
    @endpoint(tags=("users",), summary="Another user's public profile")
    async def get(self, user_id: int) -> None:
        self.ok(await users.view_profile(self.r, self.user_id, user_id))


class MyBlocksHandler(ApiHandler):
    @endpoint(query=PageQuery, tags=("users",), summary="Users the caller has blocked")
    async def get(self) -> None:
        self.ok(await users.list_blocks(self.r, self.user_id, self.query))

    @endpoint(body=BlockBody, tags=("users",), summary="Block a user (idempotent)",
              errors=(NotFound,), refuses={"user_id": "not the caller's own id"})
    async def post(self) -> None:
        self.ok(await users.set_blocked(self.r, self.user_id, self.body.user_id, True))


class MyBlockHandler(ApiHandler):
    @endpoint(tags=("users",), summary="Unblock a user (idempotent)")
    async def delete(self, user_id: int) -> None:
        self.ok(await users.set_blocked(self.r, self.user_id, user_id, False))
