"""Posts, boards and #topics: the one module that writes `posts`, `boards`, `topics` and
`post_topics`, and the one place that decides who may see a post.

A post is created `pending`, screened by the word filter at once and reviewed by the
moderation task, which moves it with `set_status`. Every change re-indexes it for search.
Lists and feeds live in pawhome/community/feeds.py; they use `visible_to` from here so every list
applies the same visibility rule as `get_visible_post`.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from models.base import utcnow
from models.community import Board, BrowseHistory, Post, PostTopic, Topic
from models.users import User, UserBlock, UserFollow
from pawhome.community import counters, pets
from pawhome.identity.users import is_blocked, is_following
from pawhome.media import uploads as media
from pawhome.platform import codec, events, outbox, topics
from pawhome.platform.db import Executor, Prepared
from pawhome.platform.errors import NotFound, ValidationFailed, field_error
from pawhome.platform.fields import NOT_BLANK, Id, distinct
from pawhome.platform.hooks import Hook
from pawhome.platform.wordfilter import screen_text
from pawhome.search import index as search

# slug, name, description, sort
BOARDS = [
    ("help", "求助", "Questions about health, food and behaviour", 10),
    ("show", "晒宠", "Show off your pets", 20),
    ("adopt", "领养", "Pets looking for a home", 30),
    ("experience", "经验", "Experience and guides from other owners", 40),
]
MAX_TEXT = 5000
MAX_IMAGES = 9
MAX_TOPICS = 10
MAX_TOPIC_LENGTH = 32
MAX_PINNED_PER_BOARD = 10

# A topic in the text is `#` followed by 1-32 letters, digits, underscores or CJK characters
# (Unicode word characters) and ended by any other character; a closing `#` (the Weibo style
# `#柯基#`) is allowed and consumed, not needed. The `#` must not follow a word character
# (so "a#b" tags nothing) and a longer run is not a topic. So "#柯基 好可爱", "#柯基#好可爱" and
# "#Corgi!" each tag one topic. Names are NFKC-normalised (full-width letters become ASCII)
# and lower-cased, so #Corgi and #ＣＯＲＧＩ are one topic.
TOPIC_IN_TEXT = re.compile(r"(?<!\w)#(\w{1,%d})(?!\w)#?" % MAX_TOPIC_LENGTH)
_TOPIC_NAME = re.compile(r"^\w{1,%d}$" % MAX_TOPIC_LENGTH)

PostStatus = Literal["pending", "visible", "hidden", "removed"]
Species = Literal["dog", "cat", "rabbit", "bird", "other"]


class PostStatusEvent(BaseModel):
    """`post.status`: the author's post changed moderation state."""
    post_id: int
    status: PostStatus
    reason: str = ""


events.register_event_schema("post.status", PostStatusEvent)


def normalize_topic(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip().strip("#").strip().lower()


def topics_in_text(text: str) -> list[str]:
    """Topic names tagged in a post's text, normalised, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in TOPIC_IN_TEXT.finditer(unicodedata.normalize("NFKC", text)):
        seen.setdefault(normalize_topic(match.group(1)), None)
    return list(seen)


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

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("media_ids", "pet_ids")
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


# -- boards -------------------------------------------------------------------------------------


async def ensure_boards(session: AsyncSession) -> int:
    """Create the standard boards that are missing; returns how many were created. Safe to
    run concurrently (INSERT IGNORE / ON CONFLICT DO NOTHING on the unique slug)."""
    existing = set((await session.execute(select(Board.slug))).scalars())
    created = 0
    sqlite = session.get_bind().dialect.name == "sqlite"
    for slug, name, description, sort in BOARDS:
        if slug in existing:
            continue
        values = {"slug": slug, "name": name, "description": description, "sort": sort,
                  "created_at": utcnow()}
        if sqlite:
            from sqlalchemy.dialects.sqlite import insert
            statement = insert(Board).values(**values).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.mysql import insert
            statement = insert(Board).values(**values).prefix_with("IGNORE")
        created += (await session.execute(statement)).rowcount
    return created


async def seed_boards(session: AsyncSession) -> int:
    """Demo seeder (pawhome/demo.py SEEDERS): the standard boards."""
    return await ensure_boards(session)


STANDARD_SLUGS = {slug for slug, *_ in BOARDS}


async def list_boards(session: AsyncSession) -> list[dict[str, Any]]:
    rows = list((await session.execute(select(Board).order_by(Board.sort, Board.id))).scalars())
    if not rows:  # a fresh database that was never seeded
        await ensure_boards(session)
        rows = list((await session.execute(select(Board).order_by(Board.sort,
                                                                  Board.id))).scalars())
    return [{"slug": b.slug, "name": b.name, "description": b.description} for b in rows]


async def board_by_slug(session: AsyncSession, slug: str) -> Board | None:
    """The board with this slug; a standard board missing from an unseeded database is
    created on first use."""
    query = select(Board).where(Board.slug == slug)
    board = (await session.execute(query)).scalar_one_or_none()
    if board is None and slug in STANDARD_SLUGS:
        await ensure_boards(session)
        board = (await session.execute(query)).scalar_one_or_none()
    return board


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
    if post.deleted_at is not None:
        return False
    if viewer_id is not None and viewer_id == post.author_id:
        return True
    if post.status != "visible" or post.visibility == "private":
        return False
    if viewer_id is None:
        return post.visibility == "public"
    if await is_blocked(session, viewer_id, post.author_id) or \
            await is_blocked(session, post.author_id, viewer_id):
        return False
    if post.visibility == "followers":
        return await is_following(session, viewer_id, post.author_id)
    return True


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


# -- rendering ---------------------------------------------------------------------------------


_TOPICS_OF = Prepared(
    select(PostTopic.__table__.c.post_id, Topic.__table__.c.name)
    .join(Topic.__table__, Topic.__table__.c.id == PostTopic.__table__.c.topic_id)
    .where(PostTopic.__table__.c.post_id.in_(bindparam("ids", expanding=True)))
    .order_by(Topic.__table__.c.id))


async def _topics_of(session: Executor, post_ids: list[int]) -> dict[int, list[str]]:
    topics: dict[int, list[str]] = {}
    for post_id, name in await _TOPICS_OF.rows(session, ids=post_ids):
        topics.setdefault(post_id, []).append(name)
    return topics


async def render_posts(session: AsyncSession, posts: list[Post]) -> list[dict[str, Any]]:
    """Posts as the API shows them, with author, board and topic names loaded in batches."""
    if not posts:
        return []
    author_ids = {p.author_id for p in posts}
    board_ids = {p.board_id for p in posts if p.board_id}
    authors = {u.id: u for u in (await session.execute(
        select(User).where(User.id.in_(author_ids)))).scalars()}
    boards = {b.id: b for b in (await session.execute(
        select(Board).where(Board.id.in_(board_ids)))).scalars()} if board_ids else {}
    topics = await _topics_of(session, [p.id for p in posts])
    return [post_view(p, authors.get(p.author_id), boards.get(p.board_id),
                      topics.get(p.id, [])) for p in posts]


# Lists (the feeds) read rows, not entities: the columns a post shows with its author's and
# board's display fields joined in, one query per page (Core columns: no ORM compile or
# loading step). Loading Post, User and Board objects for the same page cost about three
# times the CPU.
_POSTS, _USERS, _BOARDS = Post.__table__, User.__table__, Board.__table__
LIST_COLUMNS = (
    *(_POSTS.c[name] for name in (
        "id", "author_id", "text", "media_kind", "media_ids", "pet_types", "pet_ids",
        "location_name", "visibility", "status", "status_reason", "pinned_at", "like_count",
        "comment_count", "favorite_count", "share_count", "view_count", "hot_score",
        "created_at", "edited_at")),
    _USERS.c.nickname.label("author_nickname"), _USERS.c.avatar_url.label("author_avatar_url"),
    _BOARDS.c.slug.label("board_slug"))
# The Post attributes among LIST_COLUMNS (post_view builds a row from a loaded Post).
_POST_FIELDS = tuple(c.name for c in LIST_COLUMNS if c.table is _POSTS)
# Positions in a row of LIST_COLUMNS (rows may be plain tuples: db.Prepared's).
ROW_ID, ROW_HOT_SCORE, ROW_CREATED_AT = (
    [c.key for c in LIST_COLUMNS].index(name) for name in ("id", "hot_score", "created_at"))


def select_post_rows(*conditions: ColumnElement[bool]):
    """SELECT LIST_COLUMNS of the posts matching `conditions` (add order and limit)."""
    return (select(*LIST_COLUMNS).select_from(
        _POSTS.outerjoin(_USERS, _USERS.c.id == _POSTS.c.author_id)
        .outerjoin(_BOARDS, _BOARDS.c.id == _POSTS.c.board_id)).where(*conditions))


async def render_post_rows(session: Executor, rows: list[Any]) -> list[dict[str, Any]]:
    """Rows of select_post_rows as the API shows posts (the same shape as render_posts)."""
    if not rows:
        return []
    topics = await _topics_of(session, [r[0] for r in rows])
    return [_row_view(r, topics.get(r[0], [])) for r in rows]


def _list(value: Any) -> Any:
    """A JSON list column's value as shown: a copy of a decoded list, or Prepared's raw text."""
    if value is None:
        return []
    return value if isinstance(value, codec.Raw) else list(value)


def _row_view(row: Any, topic_names: list[str]) -> dict[str, Any]:
    (post_id, author_id, text, media_kind, media_ids, pet_types, pet_ids, location_name,
     visibility, status, status_reason, pinned_at, like_count, comment_count, favorite_count,
     share_count, view_count, _hot, created_at, edited_at, nickname, avatar_url,
     board_slug) = row  # unpacking: a Row's attribute lookups cost more than the rest
    return {
        "id": post_id,
        "author": {"id": author_id, "nickname": nickname or "", "avatar_url": avatar_url or ""},
        "text": text, "media_kind": media_kind, "media_ids": _list(media_ids),
        "topics": topic_names, "board": board_slug,
        "pet_types": _list(pet_types), "pet_ids": _list(pet_ids),
        "location_name": location_name, "visibility": visibility, "status": status,
        "status_reason": status_reason if status != "visible" else "",
        "pinned": pinned_at is not None,
        "like_count": like_count, "comment_count": comment_count,
        "favorite_count": favorite_count, "share_count": share_count, "view_count": view_count,
        "created_at": created_at, "edited_at": edited_at,
    }


def post_view(post: Post, author: User | None, board: Board | None,
              topic_names: list[str]) -> dict[str, Any]:
    return _row_view(tuple(getattr(post, name) for name in _POST_FIELDS) + (
        author.nickname if author else "", author.avatar_url if author else "",
        board.slug if board else None), topic_names)


async def render_post(session: AsyncSession, post: Post) -> dict[str, Any]:
    return (await render_posts(session, [post]))[0]


# -- topics ------------------------------------------------------------------------------------


def _topic_names(body: PostBody) -> list[str]:
    """Given topics first, then those tagged in the text; 422 when invalid or over 10."""
    names: dict[str, None] = {}
    for index, raw in enumerate(body.topics):
        name = normalize_topic(raw)
        if not _TOPIC_NAME.match(name):
            raise ValidationFailed(errors=[field_error(
                f"topics.{index}", "a topic is 1-32 letters, digits, _ or CJK characters")])
        names.setdefault(name, None)
    for name in topics_in_text(body.text):
        names.setdefault(name, None)
    if len(names) > MAX_TOPICS:
        raise ValidationFailed(errors=[field_error(
            "topics", f"at most {MAX_TOPICS} topics per post (given and #tagged together)")])
    return list(names)


async def _bump_topics(session: AsyncSession, names: list[str], delta: int) -> list[int]:
    """Add `delta` to the post_count of each topic, creating the missing ones; returns
    their ids. One upsert per name, in sorted order, so concurrent posts never deadlock
    and never both create one topic."""
    if not names:
        return []
    now = utcnow()
    dialect = session.get_bind().dialect.name
    for name in sorted(names):
        if delta >= 0:
            values = {"name": name, "post_count": delta, "heat": 0.0, "created_at": now,
                      "last_post_at": now}
            changes = {"post_count": Topic.post_count + delta, "last_post_at": now}
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
                statement = insert(Topic).values(**values).on_conflict_do_update(
                    index_elements=["name"], set_=changes)
            else:
                from sqlalchemy.dialects.mysql import insert
                statement = insert(Topic).values(**values).on_duplicate_key_update(**changes)
            await session.execute(statement)
        else:
            await session.execute(update(Topic).where(Topic.name == name, Topic.post_count > 0)
                                  .values(post_count=Topic.post_count + delta))
    found = select(Topic.id, Topic.post_count, Topic.created_at).where(Topic.name.in_(names))
    if dialect != "sqlite":
        found = found.with_for_update()  # a locking read sees rows committed after our snapshot
    rows = (await session.execute(found)).all()
    if delta >= 0:
        for row in rows:
            if row.created_at == now:  # created by this upsert: make it searchable
                search.index_later(session, "topic", row.id)
    return [row.id for row in rows]


async def _set_post_topics(session: AsyncSession, post: Post, names: list[str],
                           counted: bool) -> None:
    """Make the post's topics exactly `names`; `counted`: the post counts in post_count."""
    current = dict((await session.execute(
        select(Topic.name, Topic.id).join(PostTopic, PostTopic.topic_id == Topic.id)
        .where(PostTopic.post_id == post.id))).all())
    current_norm = {normalize_topic(n): i for n, i in current.items()}
    added = [n for n in names if n not in current_norm]
    dropped = [n for n in current_norm if n not in names]
    if dropped:
        await session.execute(delete(PostTopic).where(
            PostTopic.post_id == post.id,
            PostTopic.topic_id.in_([current_norm[n] for n in dropped])))
        if counted:
            await _bump_topics(session, dropped, -1)
    if added:
        ids = await _bump_topics(session, added, 1 if counted else 0)
        session.add_all([PostTopic(post_id=post.id, topic_id=i) for i in ids])
    await session.flush()


async def _count_post_topics(session: AsyncSession, post_id: int, delta: int) -> None:
    names = list((await session.execute(
        select(Topic.name).join(PostTopic, PostTopic.topic_id == Topic.id)
        .where(PostTopic.post_id == post_id))).scalars())
    if names:
        await _bump_topics(session, names, delta)


def counts_in_topics(post: Post) -> bool:
    """Topic post_count counts live posts: not deleted and not taken down."""
    return post.deleted_at is None and post.status != "removed"


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
    names = _topic_names(body)
    for name in names:
        screen_text(name, "topics")
    board_id = None
    if body.board:
        board = await board_by_slug(session, body.board)
        if board is None:
            raise ValidationFailed(errors=[field_error("board", "no such board")])
        board_id = board.id
    await pets.require_own_pets(session, post.author_id, body.pet_ids)
    post.media_kind = await _check_media(session, post.author_id, body.media_ids)
    post.text = body.text
    post.media_ids = list(body.media_ids)
    post.board_id = board_id
    post.pet_types = list(body.pet_types)
    post.pet_ids = list(body.pet_ids)
    post.location_name = body.location_name
    post.visibility = body.visibility
    return names


# Run in the transaction that created or edited a post, with (session, post_id): moderation
# connects its review (pawhome/moderation/reviews.py), so the post cannot stay unreviewed.
post_submitted: Hook[[AsyncSession, int]] = Hook("community.post_submitted")


async def _after_content_change(session: AsyncSession, post: Post) -> None:
    await post_submitted.run(session, post.id)
    search.index_later(session, "post", post.id)


async def create_post(session: AsyncSession, author_id: int, body: PostBody) -> Post:
    """A new post, pending moderation; the review and the search index run as tasks after
    the commit. Caller commits."""
    post = Post(author_id=author_id, status="pending", text="")
    names = await _apply_body(session, post, body)
    session.add(post)
    await session.flush()
    await _set_post_topics(session, post, names, counted=True)
    await counters.bump(session, author_id, posts=+1)
    await _after_content_change(session, post)
    return post


async def edit_post(session: AsyncSession, author_id: int, post_id: int,
                    body: PostBody) -> Post:
    """Replace the post's content; it goes back to pending and is reviewed and re-indexed.
    A post taken down by an admin stays removed. Caller commits."""
    post = await get_own_post(session, author_id, post_id, lock=True)
    names = await _apply_body(session, post, body)
    await _set_post_topics(session, post, names, counted=counts_in_topics(post))
    if post.status != "removed":
        post.status, post.status_reason = "pending", ""
    post.edited_at = post.updated_at = utcnow()
    await session.flush()
    await _after_content_change(session, post)
    return post


async def delete_post(session: AsyncSession, author_id: int, post_id: int) -> Post:
    """Soft delete by the author. Caller commits."""
    post = await get_own_post(session, author_id, post_id, lock=True)
    if counts_in_topics(post):
        await _count_post_topics(session, post.id, -1)
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
        await _count_post_topics(session, post.id, -1 if was_counted else 1)
    if status == "removed":
        post.pinned_at = None
    await session.flush()
    events.emit_to_user(session, post.author_id, "post.status",
                        {"post_id": post.id, "status": status, "reason": post.status_reason})
    search.index_later(session, "post", post.id)
    return post


async def set_pinned(session: AsyncSession, post_id: int, pinned: bool) -> Post:
    """Pin or unpin a post on its board (admins). Only a visible post on a board may be
    pinned, at most MAX_PINNED_PER_BOARD per board. Caller commits."""
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


def views_key(cache) -> str:
    """The Redis hash of views not yet written to posts.view_count (post id -> count)."""
    return cache.key("posts", "views")


async def count_view(cache, post_id: int) -> None:
    """One view, buffered in Redis; workers/community.py flushes the buffer to the table."""
    await cache.redis.hincrby(views_key(cache), str(post_id), 1)


async def record_history(session: AsyncSession, user_id: int, post_id: int) -> None:
    """Note (or refresh) that the user viewed the post. Caller commits."""
    now = utcnow()
    values = {"user_id": user_id, "post_id": post_id, "viewed_at": now}
    if session.get_bind().dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
        statement = insert(BrowseHistory).values(**values).on_conflict_do_update(
            index_elements=["user_id", "post_id"], set_={"viewed_at": now})
    else:
        from sqlalchemy.dialects.mysql import insert
        statement = insert(BrowseHistory).values(**values).on_duplicate_key_update(
            viewed_at=now)
    await session.execute(statement)


# -- live topics --------------------------------------------------------------------------------


async def _may_watch_post(resources: Any, user_id: int, topic_id: str) -> bool:
    """Only people who may view a post watch its counters ("post:<id>"; private and
    followers-only posts do not leak their activity)."""
    if not topic_id.isdigit() or len(topic_id) > 18:
        raise NotFound("Unknown topic")
    async with resources.db.session() as session:
        await get_visible_post(session, user_id, int(topic_id))
    return True


topics.register_topic_kind("post", _may_watch_post)
