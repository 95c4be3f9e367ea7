"""Like endpoints for posts and comments: POST likes, DELETE unlikes; both idempotent.

Thin: each calls pawhome.community.likes.set_like, which writes the row, the counters, the
notification
and the live counter; docs/interactions.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.community import likes


class PostLikeHandler(ApiHandler):
    @endpoint(tags=("interactions",), summary="Like a post (a second like is a no-op)")
    async def post(self, post_id: int) -> None:
        self.ok(await likes.set_like(self.r, self.user_id, "post", post_id, True))

    @endpoint(tags=("interactions",), summary="Take back a like on a post")
    async def delete(self, post_id: int) -> None:
        self.ok(await likes.set_like(self.r, self.user_id, "post", post_id, False))


class CommentLikeHandler(ApiHandler):
    @endpoint(tags=("interactions",), summary="Like a comment (a second like is a no-op)")
    async def post(self, comment_id: int) -> None:
        self.ok(await likes.set_like(self.r, self.user_id, "comment", comment_id, True))

    @endpoint(tags=("interactions",), summary="Take back a like on a comment")
    async def delete(self, comment_id: int) -> None:
        self.ok(await likes.set_like(self.r, self.user_id, "comment", comment_id, False))
