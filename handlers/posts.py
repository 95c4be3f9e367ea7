"""Post endpoints: create, read, edit, delete, the feeds (GET /v1/posts), boards, browse
history, and the admin take-down and pinning. Domain logic is in pawhome/community/posts.py,
feeds.py and boards.py; a feed page is answered as the encoded bytes feeds.read_feed returns
(the cached first pages as stored)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.community import boards, feeds, posts
from pawhome.platform.errors import (
    AnonymousNotAllowed,
    AttachmentRefused,
    NotFound,
    SensitiveContent,
    TooManyMentions,
    ValidationFailed,
)
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.pagination import CURSOR_RULE, CursorQuery

ADMIN = ("admin",)
POST_RULES = {"board": "the name of a board (GET /v1/boards)",
              "media_ids": "the caller's ready uploads: up to 9 images or one video",
              "pet_ids": "the caller's own pet cards",
              "text": "no word of the sensitive-word list",
              "topics": "each 1-32 letters, digits, _ or CJK characters once normalised "
                        "(NFKC, lower case, # and spaces stripped); at most 10 with those "
                        "#tagged in the text",
              "location_name": "no word of the sensitive-word list",
              "anonymous": "only on a board that allows anonymous posts, for a public post",
              "mentions": "at most 10 people in one post, its edits included"}


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=255, pattern=NOT_BLANK)


class PostsHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, query=feeds.FeedQuery, tags=("posts",),
              errors=(NotFound,), refuses=CURSOR_RULE, links={"post_id": "/items/0/id"},
              read_ahead=lambda h: feeds.first_page_reads(h.r, h.viewer_id, h.query),
              summary="Posts: latest or hot, filtered by topic, board, pet type, author or "
                      "the people the caller follows; cursor-paginated")
    async def get(self) -> None:
        raw = await feeds.read_feed(self.r, self.viewer_id, self.query, self.read_ahead)
        self.finish(b'{"code":0,"message":"ok","data":' + raw + b"}")

    @endpoint(body=posts.PostBody, tags=("posts",), status=201, idempotent=True,
              links={"post_id": "/id"},
              errors=(NotFound, SensitiveContent, AttachmentRefused, AnonymousNotAllowed,
                      TooManyMentions),
              refuses=POST_RULES,
              summary="Publish a post (pending until moderation passes it)")
    async def post(self) -> None:
        self.ok(await posts.create_post(self.r, self.user_id, self.body), status=201)


class PostHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, tags=("posts",),
              summary="One post, if the caller may see it (an anonymous post names its "
                      "author to admins only)")
    async def get(self, post_id: int) -> None:
        is_admin = self.auth is not None and self.auth.role == "admin"
        self.ok(await posts.view_post(self.r, self.viewer_id, post_id, reveal_author=is_admin))

    @endpoint(body=posts.PostBody, tags=("posts",), refuses=POST_RULES,
              errors=(SensitiveContent, AttachmentRefused, AnonymousNotAllowed,
                      TooManyMentions),
              summary="Replace a post's content (author); it is moderated again")
    async def put(self, post_id: int) -> None:
        self.ok(await posts.edit_post(self.r, self.user_id, post_id, self.body))

    @endpoint(tags=("posts",), summary="Delete a post (author)")
    async def delete(self, post_id: int) -> None:
        self.ok(await posts.delete_post(self.r, self.user_id, post_id))


class BoardsHandler(ApiHandler):
    @endpoint(auth=False, tags=("posts",), summary="The community boards")
    async def get(self) -> None:
        self.ok({"items": await boards.list_boards(self.r)})


class HistoryHandler(ApiHandler):
    @endpoint(query=CursorQuery, tags=("posts",), refuses=CURSOR_RULE,
              summary="Posts the caller opened, newest first")
    async def get(self) -> None:
        self.ok(await feeds.list_history(self.r, self.user_id, self.query))

    @endpoint(tags=("posts",), summary="Clear the caller's browse history")
    async def delete(self) -> None:
        self.ok(await feeds.clear_history(self.r, self.user_id))


class AdminRemovePostHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=ReasonBody, tags=("admin",),
              summary="Take a post down with a reason (the author is told)")
    async def post(self, post_id: int) -> None:
        self.ok(await posts.take_down_post(self.r, post_id, self.body.reason))


class AdminPinPostHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=("admin",), summary="Pin a post on its board",
              errors=(ValidationFailed,), refuses={"post_id": "a post on a board"})
    async def post(self, post_id: int) -> None:
        self.ok(await posts.set_pinned(self.r, post_id, True))


class AdminUnpinPostHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=("admin",), summary="Unpin a post")
    async def post(self, post_id: int) -> None:
        self.ok(await posts.set_pinned(self.r, post_id, False))
