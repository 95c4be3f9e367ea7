"""Favorite and share endpoints: collect a post, list one's collection, share a post.

Thin: each calls one function of pawhome/community/favorites.py; docs/interactions.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.community import favorites
from pawhome.platform.pagination import CURSOR_RULE, CursorQuery


class PostFavoriteHandler(ApiHandler):
    @endpoint(tags=("interactions",), summary="Add a post to the caller's favorites")
    async def post(self, post_id: int) -> None:
        self.ok(await favorites.set_favorite(self.r, self.user_id, post_id, True))

    @endpoint(tags=("interactions",), summary="Remove a post from the caller's favorites")
    async def delete(self, post_id: int) -> None:
        self.ok(await favorites.set_favorite(self.r, self.user_id, post_id, False))


class MyFavoritesHandler(ApiHandler):
    @endpoint(query=CursorQuery, tags=("interactions",), refuses=CURSOR_RULE,
              summary="The caller's favorites, most recently collected first")
    async def get(self) -> None:
        self.ok(await favorites.list_favorites(self.r, self.user_id, self.query.cursor,
                                               self.query.limit))


class PostShareHandler(ApiHandler):
    @endpoint(tags=("interactions",),
              summary="Share a post: counts the share and returns its share card")
    async def post(self, post_id: int) -> None:
        self.ok(await favorites.share_post(self.r, self.user_id, post_id))
