"""Post endpoints: create, read, edit, delete, the feeds (GET /v1/posts), boards, browse
history, and the admin take-down and pinning. Domain logic is in pawhome/community/posts.py and
pawhome/community/feeds.py; the cached first pages are answered here as stored bytes."""
from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.errors import AttachmentRefused, NotFound, SensitiveContent, ValidationFailed
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.pagination import CURSOR_RULE, CursorQuery
from pawhome.community import feeds, posts
from pawhome.platform.cache import UNAVAILABLE_ERRORS

log = logging.getLogger("pawhome.community.posts")
ADMIN = ("admin",)
POST_RULES = {"board": "the name of a board (GET /v1/boards)",
              "media_ids": "the caller's ready uploads: up to 9 images or one video",
              "pet_ids": "the caller's own pet cards",
              "text": "no word of the sensitive-word list",
              "topics": "each 1-32 letters, digits, _ or CJK characters once normalised "
                        "(NFKC, lower case, # and spaces stripped); at most 10 with those "
                        "#tagged in the text",
              "location_name": "no word of the sensitive-word list"}


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=255, pattern=NOT_BLANK)


class CommunityHandler(ApiHandler):
    """Posts and their pages: most are readable without logging in (`viewer=True`)."""

    async def drop_cached_pages(self, post_id: int | None = None) -> None:
        """After a committed change that may alter the discovery feeds."""
        try:
            await feeds.drop_post_from_feeds(self.r.cache, post_id)
        except UNAVAILABLE_ERRORS as error:  # the TTL bounds the staleness anyway
            log.warning("feed cache not invalidated: %r", error)


class PostsHandler(CommunityHandler):
    @endpoint(auth=False, viewer=True, query=feeds.FeedQuery, tags=("posts",),
              errors=(NotFound,), refuses=CURSOR_RULE, links={"post_id": "/items/0/id"},
              read_ahead=lambda h: feeds.first_page_reads(h.r.cache, h.r.settings, h.viewer_id,
                                                        h.query),
              summary="Posts: latest or hot, filtered by topic, board, pet type, author or "
                      "the people the caller follows; cursor-paginated")
    async def get(self) -> None:
        viewer = self.viewer_id
        query = self.query
        if query.is_discovery and query.cursor is None:
            raw = await feeds.first_page_bytes(self.r.db, self.r.cache, self.r.settings,
                                               viewer, query, self.read_ahead)
            self.finish(b'{"code":0,"message":"ok","data":' + raw + b"}")
            return
        async with self.r.db.session() as session:
            page = await feeds.read_posts(session, self.r.cache, self.r.settings, viewer,
                                          query)
        self.ok(page)

    @endpoint(body=posts.PostBody, tags=("posts",), status=201, idempotent=True,
              links={"post_id": "/id"}, errors=(NotFound, SensitiveContent, AttachmentRefused),
              refuses=POST_RULES,
              summary="Publish a post (pending until moderation passes it)")
    async def post(self) -> None:
        async with self.r.db.session() as session, session.begin():
            post = await posts.create_post(session, self.user_id, self.body)
            data = await posts.render_post(session, post)
        self.ok(data, status=201)


class PostHandler(CommunityHandler):
    @endpoint(auth=False, viewer=True, tags=("posts",),
              summary="One post, if the caller may see it")
    async def get(self, post_id: int) -> None:
        viewer = self.viewer_id
        async with self.r.db.session() as session, session.begin():
            post = await posts.get_visible_post(session, viewer, post_id)
            if viewer is not None:
                await posts.record_history(session, viewer, post.id)
            data = await posts.render_post(session, post)
        try:
            await posts.count_view(self.r.cache, post_id)
        except UNAVAILABLE_ERRORS as error:  # a lost view is better than a failed page
            log.warning("view of post %s not counted: %r", post_id, error)
        self.ok(data)

    @endpoint(body=posts.PostBody, tags=("posts",), refuses=POST_RULES,
              errors=(SensitiveContent, AttachmentRefused),
              summary="Replace a post's content (author); it is moderated again")
    async def put(self, post_id: int) -> None:
        async with self.r.db.session() as session, session.begin():
            post = await posts.edit_post(session, self.user_id, post_id, self.body)
            data = await posts.render_post(session, post)
        await self.drop_cached_pages(post_id)
        self.ok(data)

    @endpoint(tags=("posts",), summary="Delete a post (author)")
    async def delete(self, post_id: int) -> None:
        async with self.r.db.session() as session, session.begin():
            await posts.delete_post(session, self.user_id, post_id)
        await self.drop_cached_pages(post_id)
        self.ok({"id": post_id, "deleted": True})


class BoardsHandler(ApiHandler):
    @endpoint(auth=False, tags=("posts",), summary="The community boards")
    async def get(self) -> None:
        async with self.r.db.session() as session, session.begin():
            items = await posts.list_boards(session)
        self.ok({"items": items})


class HistoryHandler(ApiHandler):
    @endpoint(query=CursorQuery, tags=("posts",), refuses=CURSOR_RULE,
              summary="Posts the caller opened, newest first")
    async def get(self) -> None:
        async with self.r.db.session() as session:
            self.ok(await feeds.list_history(session, self.user_id, self.query))

    @endpoint(tags=("posts",), summary="Clear the caller's browse history")
    async def delete(self) -> None:
        async with self.r.db.session() as session, session.begin():
            removed = await feeds.clear_history(session, self.user_id)
        self.ok({"removed": removed})


class AdminRemovePostHandler(CommunityHandler):
    @endpoint(roles=ADMIN, body=ReasonBody, tags=("admin",),
              summary="Take a post down with a reason (the author is told)")
    async def post(self, post_id: int) -> None:
        async with self.r.db.session() as session, session.begin():
            post = await posts.set_status(session, post_id, "removed", self.body.reason)
            data = await posts.render_post(session, post)
        await self.drop_cached_pages(post_id)
        self.ok(data)


class AdminPinPostHandler(CommunityHandler):
    @endpoint(roles=ADMIN, tags=("admin",), summary="Pin a post on its board",
              errors=(ValidationFailed,), refuses={"post_id": "a post on a board"})
    async def post(self, post_id: int) -> None:
        async with self.r.db.session() as session, session.begin():
            post = await posts.set_pinned(session, post_id, True)
            data = await posts.render_post(session, post)
        self.ok(data)


class AdminUnpinPostHandler(CommunityHandler):
    @endpoint(roles=ADMIN, tags=("admin",), summary="Unpin a post")
    async def post(self, post_id: int) -> None:
        async with self.r.db.session() as session, session.begin():
            post = await posts.set_pinned(session, post_id, False)
            data = await posts.render_post(session, post)
        self.ok(data)
