"""Reading posts: the latest, hot and following feeds, filtered lists, topic pages, browse
history, and the periodic jobs behind them (hot scores and topic heat, view-count flush).

Every list goes through `posts.visible_to`, the same rule as a post's own page. The design
(fan-out on read, cache staleness, the hot formula) is explained in docs/community.md.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from typing import Any, Literal, cast

from pydantic import Field
from redis.exceptions import ResponseError
from sqlalchemy import String, and_, bindparam, delete, or_, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import BrowseHistory, Post, PostTopic, Topic
from models.users import UserFollow
from pawhome.community.boards import board_by_slug
from pawhome.community.feed_cache import SORTS, first_page_key, hot_key, invalidate_first_pages
from pawhome.community.post_rendering import (
    ROW_CREATED_AT,
    ROW_HOT_SCORE,
    ROW_ID,
    render_post_rows,
    select_post_rows,
)
from pawhome.community.post_topics import normalize_topic
from pawhome.community.posts import MAX_PINNED_PER_BOARD, views_key, visible_to
from pawhome.identity import users
from pawhome.platform import codec
from pawhome.platform.cache import Cache
from pawhome.platform.db import Database, Executor, Prepared
from pawhome.platform.errors import NotFound, Unauthorized, ValidationFailed, field_error
from pawhome.platform.pagination import CursorQuery, cursor_result, decode_cursor
from pawhome.platform.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.community.feeds")

Sort = Literal["latest", "hot"]


class FeedQuery(CursorQuery):
    """Filters of GET /v1/posts; with none, latest and hot are the public discovery feeds."""
    topic: str | None = Field(None, min_length=1, max_length=64)
    board: str | None = Field(None, min_length=1, max_length=32)
    pet_type: Literal["dog", "cat", "rabbit", "bird", "other"] | None = None
    author: int | None = Field(None, ge=1, le=2**63 - 1)
    following: bool = False
    sort: Sort = "latest"

    @property
    def is_discovery(self) -> bool:
        return not (self.topic or self.board or self.pet_type or self.author or self.following)


class TopicPageQuery(CursorQuery):
    sort: Sort = "latest"


def hot_score(likes: int, comments: int, favorites: int, shares: int, age_hours: float) -> float:
    """Engagement over age, gravity 1.5: a day-old post needs ~13x the engagement of a new
    one to rank equal."""
    return (likes + 2 * comments + 3 * favorites + shares + 1) / (max(age_hours, 0) + 2) ** 1.5


# -- cursors -------------------------------------------------------------------------------


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(errors=[field_error("cursor", "invalid cursor")])


def _cursor_fields(cursor: str | None, kind: str) -> dict[str, Any] | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    if position.get("k") != kind:
        raise _bad_cursor()
    return position


def _latest_after(position: dict[str, Any] | None):
    if position is None:
        return None
    try:
        created = dt.datetime.fromisoformat(position["c"])
        post_id = int(position["i"])
    except (KeyError, TypeError, ValueError):
        raise _bad_cursor() from None
    return or_(Post.created_at < created,
               and_(Post.created_at == created, Post.id < post_id))


def _hot_after(position: dict[str, Any] | None):
    if position is None:
        return None
    try:
        score = float(position["h"])
        post_id = int(position["i"])
    except (KeyError, TypeError, ValueError):
        raise _bad_cursor() from None
    if not math.isfinite(score):
        raise _bad_cursor()
    return or_(Post.hot_score < score, and_(Post.hot_score == score, Post.id < post_id))


def _order(sort: str):
    if sort == "hot":
        return (Post.hot_score.desc(), Post.id.desc())
    return (Post.created_at.desc(), Post.id.desc())


def _position_of(sort: str, row: Any) -> dict[str, Any]:
    """The cursor after `row` (a row of posts.LIST_COLUMNS)."""
    if sort == "hot":
        return {"k": "hot", "h": row[ROW_HOT_SCORE], "i": row[ROW_ID]}
    return {"k": "latest", "c": row[ROW_CREATED_AT].isoformat(), "i": row[ROW_ID]}


# -- lists -----------------------------------------------------------------------------------


# The discovery feeds' first page for anonymous readers (what the page cache is filled from)
# as statements compiled once (db.Prepared): building a statement and its cache key per
# request cost as much as running it.
_DISCOVERY_FIRST_PAGE = {
    sort: Prepared(select_post_rows(visible_to(None)).order_by(*_order(sort))
                   .limit(bindparam("limit")))
    for sort in SORTS}


async def followee_ids(session: AsyncSession, viewer_id: int, limit: int) -> list[int]:
    """Whom the viewer follows, most recent follows first, at most `limit` (the cap of the
    fan-out-on-read following feed)."""
    return list((await session.execute(
        select(UserFollow.followee_id).where(UserFollow.follower_id == viewer_id)
        .order_by(UserFollow.created_at.desc()).limit(limit))).scalars())


async def list_posts(session: Executor, settings: Settings, viewer_id: int | None,
                     query: FeedQuery) -> dict[str, Any]:
    """One page of posts for the viewer from the database, with a cursor to the next."""
    if query.following and viewer_id is None:
        raise Unauthorized("Log in to see the posts of people you follow")
    if viewer_id is None and query.is_discovery and query.cursor is None:
        # What the page cache is filled from: no conditions to build (that cost as much as
        # running the query).
        rows = await _DISCOVERY_FIRST_PAGE[query.sort].rows(session, limit=query.limit + 1)
        return await _page_of(session, query, [], rows)
    if query.is_discovery:
        # The discovery feeds show public posts to everyone alike (so the first page can be
        # cached once for all); followers-only posts live in the following feed and lists.
        conditions = [visible_to(viewer_id), Post.visibility == "public"]
    else:
        conditions = [visible_to(viewer_id)]
    if query.topic:
        topic_id = (await session.execute(select(Topic.id).where(
            Topic.name == normalize_topic(query.topic)))).scalar()
        if topic_id is None:
            return cursor_result([], None)
        conditions.append(Post.id.in_(select(PostTopic.post_id)
                                      .where(PostTopic.topic_id == topic_id)))
    board = None
    if query.board:
        board = await board_by_slug(session, query.board)
        if board is None:
            raise NotFound("No such board")
        conditions.append(Post.board_id == board.id)
    if query.pet_type:
        # pet_types is a JSON array of fixed words: a quoted-word match is exact.
        conditions.append(type_coerce(Post.pet_types, String).like(f'%"{query.pet_type}"%'))
    if query.author:
        conditions.append(Post.author_id == query.author)
        if query.author != viewer_id:  # an author's list would name them
            conditions.append(Post.is_anonymous.is_(False))
    if query.following:
        followees = await followee_ids(session, viewer_id, settings.feed_following_limit)
        if not followees:
            return cursor_result([], None)
        conditions.append(Post.author_id.in_(followees))
        conditions.append(Post.is_anonymous.is_(False))  # following them would name them

    position = _cursor_fields(query.cursor, query.sort)
    after = _hot_after(position) if query.sort == "hot" else _latest_after(position)
    pinned: list[Post] = []
    if board is not None:
        # Pinned posts lead the first page of a board; the paged list is the unpinned rest.
        if position is None:
            pinned = list(await session.execute(
                select_post_rows(*conditions, Post.pinned_at.is_not(None))
                .order_by(Post.pinned_at.desc()).limit(MAX_PINNED_PER_BOARD)))
        conditions.append(Post.pinned_at.is_(None))
    if after is not None:
        conditions.append(after)
    rows = list(await session.execute(
        select_post_rows(*conditions).order_by(*_order(query.sort)).limit(query.limit + 1)))
    return await _page_of(session, query, pinned, rows)


async def _page_of(session: Executor, query: FeedQuery, pinned: list[Any],
                   rows: list[Any]) -> dict[str, Any]:
    """The rendered page from up to limit + 1 rows (one more means there is a next page)."""
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    next_position = _position_of(query.sort, rows[-1]) if more and rows else None
    return cursor_result(await render_post_rows(session, pinned + rows), next_position)


async def list_hot_from_set(session: Executor, cache: Cache, viewer_id: int | None,
                            query: FeedQuery) -> dict[str, Any] | None:
    """The hot discovery feed read from the sorted set (positions are ranks in it, so a
    recompute between two pages may repeat or skip a post); None when the set is cold."""
    position = decode_cursor(query.cursor)
    if position is not None and position.get("k") == "hot":
        return None  # a database cursor: continue in the database
    if position is not None and position.get("k") != "rank":
        raise _bad_cursor()
    offset = 0
    if position is not None:
        offset = position.get("o")
        if not isinstance(offset, int) or offset < 0:
            raise _bad_cursor()
    redis = cache.redis
    members = cast(list[bytes], await redis.zrevrange(hot_key(cache), offset,
                                                       offset + query.limit - 1))
    ids = [int(v) for v in members]
    if not ids and offset == 0:
        if not await redis.exists(hot_key(cache)):
            return None
        return cursor_result([], None)
    found = {p.id: p for p in await session.execute(select_post_rows(
        Post.id.in_(ids), visible_to(viewer_id), Post.visibility == "public"))}
    rows = [found[i] for i in ids if i in found]
    next_position = {"k": "rank", "o": offset + len(ids)} if len(ids) == query.limit else None
    return cursor_result(await render_post_rows(session, rows), next_position)


async def read_posts(session: Executor, cache: Cache, settings: Settings,
                     viewer_id: int | None, query: FeedQuery) -> dict[str, Any]:
    """GET /v1/posts without the first-page cache."""
    if query.sort == "hot" and query.is_discovery:
        page = await list_hot_from_set(session, cache, viewer_id, query)
        if page is not None:
            return page
    return await list_posts(session, settings, viewer_id, query)


# -- the cached first pages ------------------------------------------------------------------


def first_page_reads(resources: Resources, viewer_id: int | None,
                     query: FeedQuery) -> list[str]:
    """The Redis keys read_feed reads: the cached page (unless FEED_CACHE_SECONDS=0) and,
    for a logged-in viewer, their has-blocks flag (the gateway reads them with its admission
    call). [] if the query is not a discovery feed's first page."""
    if not (query.is_discovery and query.cursor is None):
        return []
    cache = resources.cache
    keys = [first_page_key(cache, query.sort, query.limit)] \
        if resources.settings.feed_cache_seconds > 0 else []
    if viewer_id is not None:
        keys.append(users.blocks_flag_key(cache, viewer_id))
    return keys


async def first_page_bytes(db: Database, cache: Cache, settings: Settings,
                           viewer_id: int | None, query: FeedQuery,
                           known: dict[str, Any] | None = None) -> bytes:
    """The encoded first page of a discovery feed, from Redis when warm. The cached page is
    the same for everyone (public posts only); a viewer with blocks gets it filtered.
    `known` holds values of first_page_reads' keys already read (missing keys are read)."""
    known = known or {}
    key = first_page_key(cache, query.sort, query.limit)
    ttl_ms = int(settings.feed_cache_seconds * 1000)  # 0: no caching
    if ttl_ms <= 0:
        raw = None
    elif key in known:
        raw = known[key]
    else:
        raw = await cache.redis.get(key)
    if raw is None:
        async with db.connection() as connection:  # Core reads only (list_posts, hot set)
            page = await read_posts(connection, cache, settings, None, query)
        raw = codec.dumps(page)
        if ttl_ms > 0:
            await cache.redis.set(key, raw, px=ttl_ms)
    if viewer_id is None:
        return raw
    flag = known.get(users.blocks_flag_key(cache, viewer_id))
    if flag == b"0":
        return raw
    async with db.session() as session:
        if not await users.has_any_block(session, cache, viewer_id, flag):
            return raw
        hidden = await users.blocked_either_way(session, viewer_id)
        page = codec.loads(raw)
        # The page names no author of an anonymous post: look those up (the rule holds for
        # them too, without the page telling anyone who wrote them).
        anonymous = [p["id"] for p in page["items"] if p.get("anonymous")]
        hidden_posts: set[int] = set()
        if anonymous and hidden:
            hidden_posts = set((await session.execute(select(Post.id).where(
                Post.id.in_(anonymous), Post.author_id.in_(hidden)))).scalars())
    page["items"] = [p for p in page["items"] if p["author"]["id"] not in hidden
                     and p["id"] not in hidden_posts]
    return codec.dumps(page)


async def read_feed(resources: Resources, viewer_id: int | None, query: FeedQuery,
                    known: dict[str, Any] | None = None) -> bytes:
    """GET /v1/posts: the encoded page (the reply's `data`). A discovery feed's first page
    comes from the page cache (first_page_bytes, with the keys the gateway read ahead in
    `known`); any other page from the database."""
    if query.is_discovery and query.cursor is None:
        return await first_page_bytes(resources.db, resources.cache, resources.settings,
                                      viewer_id, query, known)
    async with resources.db.session() as session:
        return codec.dumps(await read_posts(session, resources.cache, resources.settings,
                                            viewer_id, query))


# -- topics ------------------------------------------------------------------------------------


def topic_view(topic: Topic) -> dict[str, Any]:
    return {"id": topic.id, "name": topic.name, "post_count": topic.post_count,
            "heat": round(topic.heat, 6), "last_post_at": topic.last_post_at}


async def hot_topics(resources: Resources, limit: int) -> dict[str, Any]:
    """{"items"}: topics by heat, then by post count."""
    async with resources.db.session() as session:
        rows = (await session.execute(select(Topic).where(Topic.post_count > 0)
                                      .order_by(Topic.heat.desc(), Topic.post_count.desc(),
                                                Topic.id.desc()).limit(limit))).scalars()
        return {"items": [topic_view(t) for t in rows]}


async def topic_page(resources: Resources, viewer_id: int | None, name: str,
                     query: TopicPageQuery) -> dict[str, Any]:
    """{"topic", "posts"}: a topic and a page of its posts the viewer may see."""
    async with resources.db.session() as session:
        topic = (await session.execute(select(Topic).where(
            Topic.name == normalize_topic(name)))).scalar_one_or_none()
        if topic is None:
            raise NotFound("No such topic")
        feed = FeedQuery(topic=topic.name, sort=query.sort, cursor=query.cursor,
                         limit=query.limit)
        return {"topic": topic_view(topic),
                "posts": await list_posts(session, resources.settings, viewer_id, feed)}


# -- browse history ----------------------------------------------------------------------------


async def list_history(resources: Resources, viewer_id: int,
                       query: CursorQuery) -> dict[str, Any]:
    """Posts the viewer opened, newest view first; posts they may no longer see are left
    out (the page may then be short; follow nextCursor)."""
    async with resources.db.session() as session:
        return await _history_page(session, viewer_id, query)


async def _history_page(session: AsyncSession, viewer_id: int,
                        query: CursorQuery) -> dict[str, Any]:
    conditions = [BrowseHistory.user_id == viewer_id]
    position = _cursor_fields(query.cursor, "history")
    if position is not None:
        try:
            viewed = dt.datetime.fromisoformat(position["v"])
            post_id = int(position["p"])
        except (KeyError, TypeError, ValueError):
            raise _bad_cursor() from None
        conditions.append(or_(BrowseHistory.viewed_at < viewed,
                              and_(BrowseHistory.viewed_at == viewed,
                                   BrowseHistory.post_id < post_id)))
    rows = list((await session.execute(
        select(BrowseHistory).where(*conditions)
        .order_by(BrowseHistory.viewed_at.desc(), BrowseHistory.post_id.desc())
        .limit(query.limit + 1))).scalars())
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    found = {p.id: p for p in await session.execute(select_post_rows(
        Post.id.in_([r.post_id for r in rows]), visible_to(viewer_id)))}
    shown = [r for r in rows if r.post_id in found]
    rendered = {v["id"]: v for v in await render_post_rows(session, [found[r.post_id]
                                                                     for r in shown])}
    items = [{"viewed_at": r.viewed_at, "post": rendered[r.post_id]} for r in shown]
    last = rows[-1] if more and rows else None
    return cursor_result(items, {"k": "history", "v": last.viewed_at.isoformat(),
                                 "p": last.post_id} if last else None)


async def clear_history(resources: Resources, viewer_id: int) -> dict[str, int]:
    """Forget every post the viewer opened; {"removed": how many}."""
    async with resources.db.session() as session, session.begin():
        result = await session.execute(delete(BrowseHistory).where(
            BrowseHistory.user_id == viewer_id))
    return {"removed": result.rowcount}


# -- periodic jobs --------------------------------------------------------------------------


async def recompute_hot(db: Database, cache: Cache, settings: Settings,
                        now: dt.datetime | None = None) -> int:
    """Recompute posts.hot_score of recent posts, rebuild the hot sorted set (swapped in
    atomically) and the heat of their topics; returns how many posts were scored."""
    now = now or utcnow()
    hot_since = now - dt.timedelta(hours=settings.feed_hot_window_hours)
    heat_since = now - dt.timedelta(hours=settings.topic_heat_window_hours)
    since = min(hot_since, heat_since)
    async with db.session() as session, session.begin():
        rows = (await session.execute(select(
            Post.id, Post.like_count, Post.comment_count, Post.favorite_count,
            Post.share_count, Post.created_at, Post.visibility).where(
                Post.created_at >= since, Post.status == "visible",
                Post.deleted_at.is_(None)))).all()
        scores: dict[int, float] = {}
        public_hot: dict[int, float] = {}
        for row in rows:
            age_hours = (now - row.created_at).total_seconds() / 3600
            score = hot_score(row.like_count, row.comment_count, row.favorite_count,
                              row.share_count, age_hours)
            scores[row.id] = score
            if row.created_at >= hot_since and row.visibility == "public":
                public_hot[row.id] = score
        # Posts that aged out (or were hidden) stop ranking in database-sorted hot lists.
        await session.execute(update(Post).where(Post.hot_score > 0, Post.id.not_in(
            list(scores) or [0])).values(hot_score=0.0))
        for post_id, score in scores.items():
            await session.execute(update(Post).where(Post.id == post_id)
                                  .values(hot_score=score))
        await _recompute_topic_heat(session, scores, rows, heat_since)
    top = dict(sorted(public_hot.items(), key=lambda kv: (-kv[1], -kv[0]))
               [:settings.feed_hot_set_size])
    key = hot_key(cache)
    staging = cache.key("feeds", "hot", "staging", uuid.uuid4().hex)
    async with cache.redis.pipeline(transaction=True) as pipe:
        if top:
            pipe.zadd(staging, {str(i): s for i, s in top.items()})
            pipe.rename(staging, key)
            # If the beat stops, the set expires rather than serve a frozen ranking forever;
            # the hot feed then falls back to the database.
            pipe.expire(key, int(max(600, 10 * settings.feed_hot_recompute_seconds)))
        else:
            pipe.delete(key)
        await pipe.execute()
    await invalidate_first_pages(cache, ("hot",))
    return len(scores)


async def _recompute_topic_heat(session: AsyncSession, scores: dict[int, float], rows,
                                heat_since: dt.datetime) -> None:
    """A topic's heat is the summed hot score of its public visible posts in the window."""
    counted = [r.id for r in rows if r.created_at >= heat_since and r.visibility == "public"]
    heat: dict[int, float] = {}
    if counted:
        for post_id, topic_id in await session.execute(
                select(PostTopic.post_id, PostTopic.topic_id)
                .where(PostTopic.post_id.in_(counted))):
            heat[topic_id] = heat.get(topic_id, 0.0) + scores[post_id]
    await session.execute(update(Topic).where(Topic.heat != 0, Topic.id.not_in(
        list(heat) or [0])).values(heat=0.0))
    for topic_id, value in heat.items():
        await session.execute(update(Topic).where(Topic.id == topic_id).values(heat=value))


async def flush_view_counts(db: Database, cache: Cache) -> int:
    """Add the buffered views to posts.view_count; returns how many views were written.

    The live hash is renamed to a batch key first (atomic: views arriving meanwhile start a
    new hash), then the batch is written and deleted. A batch left by a crashed run is
    picked up by the next run; a crash between the commit and the delete would count that
    batch twice, the price of never losing views. A lock keeps two runs from overlapping.
    """
    redis = cache.redis
    lock_key = cache.key("posts", "views", "flush-lock")
    token = uuid.uuid4().hex
    if not await redis.set(lock_key, token, nx=True, ex=300):
        return 0
    try:
        pattern = cache.key("posts", "views", "batch", "*")
        batches = [k async for k in redis.scan_iter(match=pattern, count=100)]
        fresh = cache.key("posts", "views", "batch", token)
        try:
            await redis.rename(views_key(cache), fresh)
            batches.append(fresh.encode())
        except ResponseError:  # no views since the last run
            pass
        written = 0
        for batch in batches:
            counts: dict[int, list[int]] = {}
            for post_id, n in (await redis.hgetall(batch)).items():
                counts.setdefault(int(n), []).append(int(post_id))
            async with db.session() as session, session.begin():
                for views, post_ids in counts.items():
                    for start in range(0, len(post_ids), 500):
                        await session.execute(
                            update(Post).where(Post.id.in_(post_ids[start:start + 500]))
                            .values(view_count=Post.view_count + views))
                        written += views * len(post_ids[start:start + 500])
            await redis.delete(batch)
        return written
    finally:
        if await redis.get(lock_key) == token.encode():
            await redis.delete(lock_key)
