"""Follow endpoints: follow/unfollow, a user's followers and followings, profile counters.

Thin: each calls one function of pawhome/community/follows.py; docs/interactions.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.community import follows
from pawhome.platform.errors import Forbidden, ValidationFailed
from pawhome.platform.pagination import CURSOR_RULE, CursorQuery

NOT_YOURSELF = {"user_id": "not the caller's own id"}


class FollowHandler(ApiHandler):
    @endpoint(tags=("interactions",), summary="Follow a user (idempotent)",
              errors=(Forbidden, ValidationFailed), refuses=NOT_YOURSELF)
    async def post(self, user_id: int) -> None:
        self.ok(await follows.set_following(self.r, self.user_id, user_id, True))

    @endpoint(tags=("interactions",), summary="Stop following a user (idempotent)",
              errors=(Forbidden, ValidationFailed), refuses=NOT_YOURSELF)
    async def delete(self, user_id: int) -> None:
        self.ok(await follows.set_following(self.r, self.user_id, user_id, False))


class _FollowListHandler(ApiHandler):
    direction = ""

    async def _list(self, user_id: int) -> None:
        self.ok(await follows.list_follows(self.r, self.user_id, user_id, self.direction,
                                           self.query.cursor, self.query.limit))


class FollowersHandler(_FollowListHandler):
    direction = "followers"

    @endpoint(query=CursorQuery, tags=("interactions",),
              summary="Who follows a user, most recent first", refuses=CURSOR_RULE)
    async def get(self, user_id: int) -> None:
        await self._list(user_id)


class FollowingHandler(_FollowListHandler):
    direction = "following"

    @endpoint(query=CursorQuery, tags=("interactions",),
              summary="Whom a user follows, most recent first", refuses=CURSOR_RULE)
    async def get(self, user_id: int) -> None:
        await self._list(user_id)


class UserStatsHandler(ApiHandler):
    @endpoint(tags=("interactions",),
              summary="Profile counters: followers, following, likes received, posts")
    async def get(self, user_id: int) -> None:
        self.ok(await follows.user_stats(self.r, self.user_id, user_id))
