"""Comment endpoints: list and write a post's comments, list a thread's replies, delete.

Thin: each calls one function of pawhome/community/comments.py (writes) or
comment_threads.py (reads); docs/interactions.md.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.handler import ApiHandler, endpoint
from pawhome.community import comment_threads, comments
from pawhome.platform.errors import Forbidden
from pawhome.platform.pagination import CURSOR_RULE, CursorQuery


class CommentsQuery(CursorQuery):
    sort: Literal["newest", "hot"] = "newest"
    limit: int = Field(20, ge=1, le=50)


class PostCommentsHandler(ApiHandler):
    @endpoint(query=CommentsQuery, tags=("interactions",), refuses=CURSOR_RULE,
              summary="A post's top-level comments (newest or hot), each with its first replies")
    async def get(self, post_id: int) -> None:
        self.ok(await comment_threads.post_comments(
            self.r, self.user_id, post_id, self.query.sort, self.query.cursor,
            self.query.limit))

    @endpoint(body=comments.CommentBody, tags=("interactions",), status=201,
              links={"comment_id": "/id"},
              summary="Comment on a post, or reply to one of its comments")
    async def post(self, post_id: int) -> None:
        self.ok(await comments.create_comment(self.r, self.user_id, post_id, self.body),
                status=201)


class CommentHandler(ApiHandler):
    @endpoint(tags=("interactions",), errors=(Forbidden,),
              summary="Delete a comment (its author, the post's author or an admin)")
    async def delete(self, comment_id: int) -> None:
        self.ok(await comments.delete_comment(self.r, self.user_id, comment_id,
                                              is_admin=self.caller.role == "admin"))


class RepliesHandler(ApiHandler):
    @endpoint(query=CursorQuery, tags=("interactions",), refuses=CURSOR_RULE,
              summary="Replies under a top-level comment, oldest first")
    async def get(self, comment_id: int) -> None:
        self.ok(await comment_threads.comment_replies(
            self.r, self.user_id, comment_id, self.query.cursor, self.query.limit))
