"""Posts: the one module that writes `posts` and the one place that decides who may see a
post.

A post is created `pending`, screened by the word filter at once and reviewed by the
moderation task, which moves it with `set_status`. Every change re-indexes it for search.
Its #topics are pawhome/community/post_topics.py's, its board pawhome/community/boards.py's, its
rendering pawhome/community/post_rendering.py's. Lists and feeds live in
pawhome/community/feeds.py; they use `visible_to` from here so every list applies the same
visibility rule as `get_visible_post`. The REST-facing units of work at the end own their
transaction and what follows its commit (dropping the cached feed pages, counting a view).
"""
from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Insert, and_, func, or_, select
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from models.base import utcnow
from models.community import BrowseHistory, Post
from models.users import UserBlock, UserFollow
from pawhome.community import counters, feed_cache, mentions, pets
from pawhome.community.boards import board_by_slug
from pawhome.community.post_rendering import excerpt, render_post
from pawhome.community.post_topics import (
    MAX_TOPICS,
    count_post_topics,
    counts_in_topics,
    set_post_topics,
    topic_names,
)
from pawhome.identity.users import blocked_either_way
from pawhome.media import uploads as media
from pawhome.platform import events, outbox, topics
from pawhome.platform.cache import UNAVAILABLE_ERRORS, Cache
from pawhome.platform.errors import AnonymousNotAllowed, NotFound, ValidationFailed, field_error
from pawhome.platform.fields import NOT_BLANK, Id, distinct
from pawhome.platform.hooks import Hook
from pawhome.platform.resources import Resources
from pawhome.platform.wordfilter import screen_text
from pawhome.search import index as search

log = logging.getLogger("pawhome.community.posts")

MAX_TEXT = 5000
MAX_IMAGES = 9
MAX_PINNED_PER_BOARD = 10

PostStatus = Literal["pending", "visible", "hidden", "removed"]
Species = Literal["dog", "cat", "rabbit", "bird", "other"]


class PostStatusEvent(BaseModel):
    """`post.status`: the author's post changed moderation state."""
    post_id: int
    status: PostStatus
    reason: str = ""


events.register_event_schema("post.status", PostStatusEvent)


class PostBody(BaseModel):
    """A post as the author writes it (create, and PUT which replaces every field)."""
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT, pattern=NOT_BLANK)
    media_ids: list[Id] = Field(default_factory=list, max_length=MAX_IMAGES,
                                json_schema_extra=distinct())
    topics: list[str] = Field(default_factory=list, max_length=MAX_TOPICS)
    board: str | None = Field(None, max_length=32)
    pet_types: list[Species] = Field(default_factory=list, max_length=5)
    pet_ids: list[Id] = Field(default_factory=list, max_length=10,
                              json_schema_extra=distinct())
    location_name: str = Field("", max_length=64)
    visibility: Literal["public", "followers", "private"] = "public"
    anonymous: bool = Field(False, description="hide the author from everyone but admins: "
                            "only on a board that allows it, and only for a public post")
    mentions: list[Id] = Field(default_factory=list, max_length=mentions.MAX_MENTIONS,
                               json_schema_extra=distinct(),
                               description="ids of the people @mentioned (the text keeps "
                                           "@nickname for display)")

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("media_ids", "pet_ids", "mentions")
    @classmethod
    def _distinct_ids(cls, value: list[int]) -> list[int]:
        if any(v < 1 or v > 2**63 - 1 for v in value):
            raise ValueError("ids are positive integers")
        if len(set(value)) != len(value):
            raise ValueError("ids must not repeat")
        return value

    @field_validator("pet_types")
    @classmethod
    def _distinct_types(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("location_name")
    @classmethod
    def _strip_location(cls, value: str) -> str:
        return value.strip()


# -- who sees what ---------------------------------------------------------------------------


def visible_to(viewer_id: int | None) -> ColumnElement[bool]:
    """The SQL condition every list applies: a visible, live post that is public, or
    followers-only and the viewer follows the author, or the viewer's own; never a post of
    someone the viewer blocked or who blocked the viewer."""
    live = and_(Post.status == "visible", Post.deleted_at.is_(None))
    if viewer_id is None:
        return and_(live, Post.visibility == "public")
    followees = select(UserFollow.followee_id).where(UserFollow.follower_id == viewer_id)
    blocked = select(UserBlock.blocked_id).where(UserBlock.user_id == viewer_id)
    blockers = select(UserBlock.user_id).where(UserBlock.blocked_id == viewer_id)
    return and_(
        live,
        or_(Post.visibility == "public",
            Post.author_id == viewer_id,
            and_(Post.visibility == "followers", Post.author_id.in_(followees))),
        Post.author_id.not_in(blocked),
        Post.author_id.not_in(blockers),
    )


async def can_view(session: AsyncSession, viewer_id: int | None, post: Post) -> bool:
    """The rule of `visible_to` for one loaded post, plus: authors see their own posts in
    any state but deleted (pending, hidden for review, removed with its reason)."""
    if viewer_id is None:
        return post.deleted_at is None and post.status == "visible" and \
            post.visibility == "public"
    return viewer_id in await viewers_who_may_see(session, post, [viewer_id])


async def viewers_who_may_see(session: AsyncSession, post: Post,
                              viewer_ids: list[int]) -> set[int]:
    """`can_view` for many signed-in viewers at once (a batch of likes): two queries at
    most, whatever their number."""
    if post.deleted_at is not None:
        return set()
    own = {v for v in viewer_ids if v == post.author_id}
    if post.status != "visible" or post.visibility == "private":
        return own
    others = sorted({v for v in viewer_ids if v != post.author_id})
    hidden = await blocked_either_way(session, post.author_id, others)
    others = [v for v in others if v not in hidden]
    if post.visibility == "followers" and others:
        followers = await session.execute(select(UserFollow.follower_id).where(
            UserFollow.followee_id == post.author_id, UserFollow.follower_id.in_(others)))
        others = [int(v) for v in followers.scalars()]
    return own | set(others)


async def get_visible_post(session: AsyncSession, viewer_id: int | None, post_id: int) -> Post:
    """The post if this viewer may see it; otherwise 404, whatever the reason (a hidden
    post does not exist for others)."""
    post = await session.get(Post, post_id)
    if post is None or not await can_view(session, viewer_id, post):
        raise NotFound("Post not found")
    return post


async def get_own_post(session: AsyncSession, author_id: int, post_id: int,
                       lock: bool = False) -> Post:
    query = select(Post).where(Post.id == post_id)
    if lock:
        query = query.with_for_update()
    post = (await session.execute(query)).scalar_one_or_none()
    if post is None or post.deleted_at is not None or post.author_id != author_id:
        raise NotFound("Post not found")
    return post


# -- writing -----------------------------------------------------------------------------------


async def _check_media(session: AsyncSession, author_id: int, media_ids: list[int]) -> str:
    """The post's media kind; 422 unless up to 9 ready images or exactly one ready video,
    all the author's own."""
    if not media_ids:
        return "none"
    items = await media.require_ready(session, author_id, media_ids)
    kinds = {m.kind for m in items}
    if kinds == {"image"}:
        return "image"
    if kinds == {"video"} and len(items) == 1:
        return "video"
    raise ValidationFailed(errors=[field_error(
        "media_ids", "a post has up to 9 images or exactly one video")])


async def _apply_body(session: AsyncSession, post: Post, body: PostBody) -> list[str]:
    """Validate and copy the author's fields onto the post; returns its topic names."""
    screen_text(body.text, "text")
    if body.location_name:
        screen_text(body.location_name, "location_name")
    names = topic_names(body.topics, body.text)
    for name in names:
        screen_text(name, "topics")
    board_id = None
    board = None
    if body.board:
        board = await board_by_slug(session, body.board)
        if board is None:
            raise ValidationFailed(errors=[field_error("board", "no such board")])
        board_id = board.id
    if body.anonymous:
        if board is None or not board.allow_anonymous:
            raise AnonymousNotAllowed(errors=[field_error(
                "anonymous", "only on a board that allows anonymous posts")])
        if body.visibility != "public":
            raise AnonymousNotAllowed(errors=[field_error(
                "anonymous", "an anonymous post is public")])
    await pets.require_own_pets(session, post.author_id, body.pet_ids)
    post.media_kind = await _check_media(session, post.author_id, body.media_ids)
    post.text = body.text
    post.media_ids = list(body.media_ids)
    post.board_id = board_id
    post.pet_types = list(body.pet_types)
    post.pet_ids = list(body.pet_ids)
    post.location_name = body.location_name
    post.visibility = body.visibility
    post.is_anonymous = body.anonymous
    return names


# Run in the transaction that created or edited a post, with (session, post_id): moderation
# connects its review (pawhome/moderation/reviews.py), so the post cannot stay unreviewed.
post_submitted: Hook[[AsyncSession, int]] = Hook("community.post_submitted")


async def _after_content_change(session: AsyncSession, post: Post) -> None:
    await post_submitted.run(session, post.id)
    search.index_later(session, "post", post.id)


async def _create_post(session: AsyncSession, author_id: int, body: PostBody) -> Post:
    post = Post(author_id=author_id, status="pending", text="")
    names = await _apply_body(session, post, body)
    session.add(post)
    await session.flush()
    await set_post_topics(session, post, names, counted=True)
    await mentions.record(session, "post", post.id, author_id, body.mentions)
    await counters.bump(session, author_id, posts=+1)
    await _after_content_change(session, post)
    return post


async def _edit_post(session: AsyncSession, author_id: int, post_id: int,
                     body: PostBody) -> Post:
    post = await get_own_post(session, author_id, post_id, lock=True)
    names = await _apply_body(session, post, body)
    await set_post_topics(session, post, names, counted=counts_in_topics(post))
    await mentions.record(session, "post", post.id, author_id, body.mentions)
    if post.status != "removed":
        post.status, post.status_reason = "pending", ""
    post.edited_at = post.updated_at = utcnow()
    await session.flush()
    await _after_content_change(session, post)
    return post


async def _delete_post(session: AsyncSession, author_id: int, post_id: int) -> Post:
    post = await get_own_post(session, author_id, post_id, lock=True)
    if counts_in_topics(post):
        await count_post_topics(session, post.id, -1)
    post.deleted_at = utcnow()
    await counters.bump(session, author_id, posts=-1)
    search.index_later(session, "post", post.id)
    return post


async def set_status(session: AsyncSession, post_id: int, status: str,
                     reason: str = "") -> Post:
    """Move a post to a moderation state (moderation tasks, admins). The author hears
    `post.status`; search re-indexes (a post that is not visible leaves the index).
    Setting the state a post already has is a no-op. Caller commits."""
    if status not in ("pending", "visible", "hidden", "removed"):
        raise ValueError(f"unknown post status {status!r}")
    post = (await session.execute(select(Post).where(Post.id == post_id)
                                  .with_for_update())).scalar_one_or_none()
    if post is None or post.deleted_at is not None:
        raise NotFound("Post not found")
    if post.status == status and post.status_reason == reason:
        return post
    was_counted = counts_in_topics(post)
    was_visible = post.status == "visible"
    post.status, post.status_reason = status, reason[:255]
    if was_visible != (status == "visible"):
        # The cached first pages and the hot set may show it (or should now): a task drops
        # them right after the commit, wherever this runs (a worker's verdict included);
        # otherwise a removed post stayed on the cached pages until their TTL.
        outbox.enqueue_task(session, "default.drop_post_from_feeds", post.id)
    if was_counted != counts_in_topics(post):
        await count_post_topics(session, post.id, -1 if was_counted else 1)
    if status == "removed":
        post.pinned_at = None
    await session.flush()
    events.emit_to_user(session, post.author_id, "post.status",
                        {"post_id": post.id, "status": status, "reason": post.status_reason})
    search.index_later(session, "post", post.id)
    if status == "visible":
        # Last: notify locks the recipients. Mentions are decided once, when first visible.
        async def may_see(user_id: int) -> bool:
            return await can_view(session, user_id, post)

        await mentions.notify_pending(session, "post", post.id, may_see, post_id=post.id,
                                      text=excerpt(post.text), anonymous=post.is_anonymous)
    return post


async def _set_pinned(session: AsyncSession, post_id: int, pinned: bool) -> Post:
    post = (await session.execute(select(Post).where(Post.id == post_id)
                                  .with_for_update())).scalar_one_or_none()
    if post is None or post.deleted_at is not None:
        raise NotFound("Post not found")
    if not pinned:
        post.pinned_at = None
        return post
    if post.board_id is None:
        raise ValidationFailed(errors=[field_error("post_id", "the post is on no board")])
    if post.status != "visible" or post.visibility != "public":
        raise ValidationFailed(errors=[field_error(
            "post_id", "only a visible public post can be pinned")])
    if post.pinned_at is None:
        pinned_count = (await session.execute(select(func.count(Post.id)).where(
            Post.board_id == post.board_id, Post.pinned_at.is_not(None),
            Post.deleted_at.is_(None)))).scalar_one()
        if pinned_count >= MAX_PINNED_PER_BOARD:
            raise ValidationFailed(errors=[field_error(
                "post_id", f"a board has at most {MAX_PINNED_PER_BOARD} pinned posts")])
        post.pinned_at = utcnow()
    return post


# -- views and history ---------------------------------------------------------------------


def views_key(cache: Cache) -> str:
    """The Redis hash of views not yet written to posts.view_count (post id -> count)."""
    return cache.key("posts", "views")


async def count_view(cache: Cache, post_id: int) -> None:
    """One view, buffered in Redis; workers/default.py flushes the buffer to the table."""
    await cache.redis.hincrby(views_key(cache), str(post_id), 1)


async def record_history(session: AsyncSession, user_id: int, post_id: int) -> None:
    """Note (or refresh) that the user viewed the post. Caller commits."""
    now = utcnow()
    values = {"user_id": user_id, "post_id": post_id, "viewed_at": now}
    statement: Insert
    if session.get_bind().dialect.name == "sqlite":
        statement = sqlite.insert(BrowseHistory).values(**values).on_conflict_do_update(
            index_elements=["user_id", "post_id"], set_={"viewed_at": now})
    else:
        statement = mysql.insert(BrowseHistory).values(**values).on_duplicate_key_update(
            viewed_at=now)
    await session.execute(statement)


# -- REST-facing units of work ------------------------------------------------------------------


async def create_post(resources: Resources, author_id: int, body: PostBody) -> dict[str, Any]:
    """Publish a post, pending moderation (the review and the search index run as tasks
    after the commit); returns it as shown. It reaches the feeds once moderation passes it
    (set_status drops the cached pages then)."""
    async with resources.db.session() as session, session.begin():
        post = await _create_post(session, author_id, body)
        return await render_post(session, post)


async def view_post(resources: Resources, viewer_id: int | None,
                    post_id: int, reveal_author: bool = False) -> dict[str, Any]:
    """One post as shown, if the viewer may see it (404 otherwise). A logged-in viewer's
    browse history notes it; the view is counted in Redis after the commit (best effort).
    `reveal_author` (an admin asking) names the author of an anonymous post."""
    async with resources.db.session() as session, session.begin():
        post = await get_visible_post(session, viewer_id, post_id)
        if viewer_id is not None:
            await record_history(session, viewer_id, post.id)
        data = await render_post(session, post, reveal_author)
    try:
        await count_view(resources.cache, post_id)
    except UNAVAILABLE_ERRORS as error:  # a lost view is better than a failed page
        log.warning("view of post %s not counted: %r", post_id, error)
    return data


async def edit_post(resources: Resources, author_id: int, post_id: int,
                    body: PostBody) -> dict[str, Any]:
    """Replace the post's content (its author); it goes back to pending and is reviewed and
    re-indexed. A post taken down by an admin stays removed. After the commit the cached
    feed pages and the post's place in the hot set are dropped."""
    async with resources.db.session() as session, session.begin():
        post = await _edit_post(session, author_id, post_id, body)
        data = await render_post(session, post)
    await feed_cache.drop_post_after_commit(resources.cache, post_id)
    return data


async def delete_post(resources: Resources, author_id: int, post_id: int) -> dict[str, Any]:
    """Soft delete by the author; after the commit the cached feed pages drop it."""
    async with resources.db.session() as session, session.begin():
        await _delete_post(session, author_id, post_id)
    await feed_cache.drop_post_after_commit(resources.cache, post_id)
    return {"id": post_id, "deleted": True}


async def take_down_post(resources: Resources, post_id: int, reason: str) -> dict[str, Any]:
    """An admin removes a post with a reason (the author hears `post.status`); the cached
    feed pages drop it right after the commit, and again through the task set_status
    enqueued with the change."""
    async with resources.db.session() as session, session.begin():
        post = await set_status(session, post_id, "removed", reason)
        data = await render_post(session, post)
    await feed_cache.drop_post_after_commit(resources.cache, post_id)
    return data


async def set_pinned(resources: Resources, post_id: int, pinned: bool) -> dict[str, Any]:
    """Pin or unpin a post on its board (admins); returns it as shown. Only a visible public
    post on a board may be pinned, at most MAX_PINNED_PER_BOARD per board."""
    async with resources.db.session() as session, session.begin():
        post = await _set_pinned(session, post_id, pinned)
        return await render_post(session, post)


# -- live topics --------------------------------------------------------------------------------


async def _may_watch_post(resources: Resources, user_id: int, topic_id: str) -> bool:
    """Only people who may view a post watch its counters ("post:<id>"; private and
    followers-only posts do not leak their activity)."""
    if not topic_id.isdigit() or len(topic_id) > 18:
        raise NotFound("Unknown topic")
    async with resources.db.session() as session:
        await get_visible_post(session, user_id, int(topic_id))
    return True


topics.register_topic_kind("post", _may_watch_post)
