"""User endpoints: the caller's profile and settings, public profiles, block list."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.identity import users
from pawhome.platform.errors import NotFound, SensitiveContent


class BlockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int = Field(ge=1, le=2**63 - 1)


class MeHandler(ApiHandler):
    @endpoint(summary="The caller's profile", tags=("users",))
    async def get(self) -> None:
        async with self.r.db.session() as session:
            user = await users.get_user(session, self.user_id)
        self.ok(users.profile(user))

    @endpoint(body=users.ProfileUpdate, tags=("users",), errors=(SensitiveContent,),
              refuses={"nickname": "no word of the sensitive-word list",
                       "bio": "no word of the sensitive-word list",
                       "avatar_url": "an https URL",
                       "birthday": "between 1900-01-01 and today"},
              summary="Change the caller's profile (only the fields sent)")
    async def put(self) -> None:
        async with self.r.db.session() as session, session.begin():
            data = await users.update_profile(session, self.r.settings, self.user_id, self.body)
        self.ok(data)


class MySettingsHandler(ApiHandler):
    @endpoint(tags=("users",), summary="The caller's notification and privacy preferences")
    async def get(self) -> None:
        async with self.r.db.session() as session:
            self.ok(await users.get_settings(session, self.user_id))

    @endpoint(body=users.SettingsUpdate, tags=("users",),
              summary="Change preferences (only the keys sent)")
    async def put(self) -> None:
        async with self.r.db.session() as session, session.begin():
            data = await users.update_settings(session, self.user_id, self.body)
        self.ok(data)


class UserHandler(ApiHandler):
    @endpoint(tags=("users",), summary="Another user's public profile")
    async def get(self, user_id: int) -> None:
        async with self.r.db.session() as session:
            self.ok(await users.public_profile(session, self.user_id, user_id))


class MyBlocksHandler(ApiHandler):
    @endpoint(query=PageQuery, tags=("users",), summary="Users the caller has blocked")
    async def get(self) -> None:
        async with self.r.db.session() as session:
            items, total = await users.list_blocks(session, self.user_id, self.query.offset,
                                                   self.query.limit)
        self.ok(page_result(items, total, self.query))

    @endpoint(body=BlockBody, tags=("users",), summary="Block a user (idempotent)",
              errors=(NotFound,), refuses={"user_id": "not the caller's own id"})
    async def post(self) -> None:
        async with self.r.db.session() as session, session.begin():
            await users.block_user(session, self.r.cache, self.user_id, self.body.user_id)
        self.ok({"user_id": self.body.user_id, "blocked": True})


class MyBlockHandler(ApiHandler):
    @endpoint(tags=("users",), summary="Unblock a user (idempotent)")
    async def delete(self, user_id: int) -> None:
        async with self.r.db.session() as session, session.begin():
            await users.unblock_user(session, self.user_id, user_id)
        await users.forget_block_flags(self.r.cache, self.user_id, user_id)
        self.ok({"user_id": user_id, "blocked": False})
