"""The recommended post feed (GET /v1/feed/recommend): posts for one viewer, scored from what
they engage with, with a share of each page kept for new posts, no repeats within a session,
and the community's visibility rule applied to every page.

Per request: the shared candidate pool (hot + newest public posts, cached in Redis for
RECOMMEND_POOL_SECONDS), the viewer's signals and personal candidates (posts of follows of
follows and of their topics, cached per viewer for RECOMMEND_PROFILE_SECONDS), the session's
served set (a Redis set named by the cursor). Scoring is plain arithmetic over a few hundred
candidates; the chosen ids are then read with `posts.visible_to(viewer)` — the one rule every
list applies — so nothing hidden, blocked, deleted or taken down since the pool was built is
shown. docs/recommendations.md explains the weights.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
from collections.abc import Iterator
from typing import Any, cast

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Post, PostTopic
from pawhome.community import feed_cache
from pawhome.community.post_rendering import render_post_rows, select_post_rows
from pawhome.community.posts import visible_to
from pawhome.platform import codec
from pawhome.platform.cache import Cache
from pawhome.platform.errors import ValidationFailed, field_error
from pawhome.platform.pagination import CursorQuery, cursor_result, decode_cursor
from pawhome.platform.resources import Resources
from pawhome.recommend import signals
from settings import Settings

# The weights of the parts of a post's score (each part is in [0, 1] before weighting).
WEIGHTS = {
    "pet_type": 3.0,  # the post is about a pet type the viewer has or engages with
    "topic": 2.0,  # the post is in a topic the viewer engages with
    "friends_of_friends": 1.5,  # the author is followed by people the viewer follows
    "following": 1.0,  # the viewer follows the author
    "hot": 2.0,  # the community's hot score (log-scaled against the pool's hottest)
    "new": 1.0,  # freshness: halves about every 17 hours
}
FRESHNESS_HOURS = 24.0  # freshness = exp(-age / FRESHNESS_HOURS)
MAX_PER_AUTHOR = 2  # posts of one author on one page
NEW_MAX_ENGAGEMENT = 5  # likes + comments + favorites + shares below which a post is unproven
PERSONAL_WINDOW_DAYS = 14  # personal candidates are at most this old
PERSONAL_FOF_AUTHORS = 100
PERSONAL_PER_SOURCE = 100
PERSONAL_TOPICS = 5
PERSONAL_PER_TOPIC = 30
SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{16}$")
CHECK_ROUNDS = 4  # visibility checks of candidate batches per page at most


class RecommendQuery(CursorQuery):
    """GET /v1/feed/recommend: `cursor` continues a session (no repeats within it)."""


def pool_key(cache: Cache) -> str:
    return cache.key("recommend", "pool")


def profile_key(cache: Cache, user_id: int) -> str:
    return cache.key("recommend", "profile", int(user_id))


def seen_key(cache: Cache, viewer_id: int | None, session_id: str) -> str:
    return cache.key("recommend", "seen", int(viewer_id or 0), session_id)


def epoch(moment: dt.datetime) -> float:
    """Seconds since the epoch of a naive UTC timestamp (what the columns store)."""
    return moment.replace(tzinfo=dt.UTC).timestamp()


# -- candidates ----------------------------------------------------------------------------------

# A candidate is a small dict (JSON in Redis): i id, a author id, t created (epoch seconds),
# h hot score, p pet types, c topic ids, e engagement (likes + comments + favorites + shares),
# n anonymous (its author earns it nothing: ranking by who wrote it would hint at who did).
_CANDIDATE_COLUMNS = (Post.id, Post.author_id, Post.created_at, Post.hot_score, Post.pet_types,
                      Post.like_count, Post.comment_count, Post.favorite_count,
                      Post.share_count, Post.is_anonymous)


async def _candidates(session: AsyncSession, ids: list[int]) -> list[dict[str, Any]]:
    """Candidates of these ids among public visible posts (visible_to(None))."""
    if not ids:
        return []
    rows = list(await session.execute(select(*_CANDIDATE_COLUMNS).where(
        Post.id.in_(ids), visible_to(None))))
    topics: dict[int, list[int]] = {}
    for post_id, topic_id in await session.execute(
            select(PostTopic.post_id, PostTopic.topic_id)
            .where(PostTopic.post_id.in_([r[0] for r in rows]))):
        topics.setdefault(int(post_id), []).append(int(topic_id))
    return [{"i": int(r[0]), "a": int(r[1]),
             "t": epoch(r[2]),
             "h": float(r[3] or 0.0), "p": [p for p in (r[4] or []) if isinstance(p, str)],
             "c": topics.get(int(r[0]), []),
             "e": int(r[5] or 0) + int(r[6] or 0) + int(r[7] or 0) + int(r[8] or 0),
             "n": bool(r[9])}
            for r in rows]


# The pool's and the personal candidates' reads. The optimiser, seeing most posts match on
# a small table, would rather scan and sort: the hints keep these index ranges with a LIMIT
# at any size (bench/bench_recommend.py prints their EXPLAIN). SQLite ignores them.
def newest_public_posts(limit: int) -> Select[Any]:
    return (select(Post.id).where(visible_to(None))
            .with_hint(Post, "FORCE INDEX (ix_posts_feed)", "mysql")
            .with_hint(Post, "FORCE INDEX (ix_posts_feed)", "mariadb")
            .order_by(Post.created_at.desc(), Post.id.desc()).limit(limit))


def recent_posts_of(authors: list[int], since: dt.datetime) -> Select[Any]:
    return (select(Post.id).where(Post.author_id.in_(authors), Post.created_at >= since,
                                  visible_to(None))
            .with_hint(Post, "FORCE INDEX (ix_posts_author_created)", "mysql")
            .with_hint(Post, "FORCE INDEX (ix_posts_author_created)", "mariadb")
            .order_by(Post.created_at.desc()).limit(PERSONAL_PER_SOURCE))


def newest_in_topic(topic_id: int) -> Select[Any]:
    return (select(PostTopic.post_id).where(PostTopic.topic_id == topic_id)
            .order_by(PostTopic.post_id.desc()).limit(PERSONAL_PER_TOPIC))


def page_rows(ids: list[int], viewer_id: int | None) -> Select[Any]:
    """The chosen posts the viewer may see, as list rows: the community's rule."""
    return select_post_rows(Post.id.in_(ids), visible_to(viewer_id),
                            Post.visibility == "public")


async def build_pool(session: AsyncSession, cache: Cache,
                     settings: Settings) -> list[dict[str, Any]]:
    """The shared pool: the top of the community's hot set (feeds:hot, rebuilt by the hot
    recompute) and the newest public visible posts (index ix_posts_feed)."""
    members = cast(list[bytes], await cache.redis.zrevrange(
        feed_cache.hot_key(cache), 0, max(0, settings.recommend_hot_candidates - 1)))
    ids = [int(m) for m in members]
    ids += [int(i) for i in (await session.execute(
        newest_public_posts(settings.recommend_new_candidates))).scalars()]
    return await _candidates(session, list(dict.fromkeys(ids)))


async def shared_pool(resources: Resources) -> list[dict[str, Any]]:
    """The pool from Redis, built on a miss (concurrent misses each build it once: one
    bounded query; the TTL is short)."""
    cache = resources.cache
    raw = await cache.redis.get(pool_key(cache))
    if raw is not None:
        return list(codec.loads(raw))
    async with resources.db.session() as session:
        pool = await build_pool(session, cache, resources.settings)
    ttl_ms = int(resources.settings.recommend_pool_seconds * 1000)
    if ttl_ms > 0:
        await cache.redis.set(pool_key(cache), codec.dumps(pool), px=ttl_ms)
    return pool


async def _personal_candidates(session: AsyncSession, profile: dict[str, Any],
                               now: dt.datetime) -> list[dict[str, Any]]:
    """Recent public posts of the viewer's follows of follows and of their strongest topics:
    what the shared pool may not hold. Each read is one indexed range with a limit."""
    since = now - dt.timedelta(days=PERSONAL_WINDOW_DAYS)
    ids: list[int] = []
    authors = [int(a) for a in list(profile["fof"])[:PERSONAL_FOF_AUTHORS]]
    if authors:
        ids += [int(i) for i in (await session.execute(
            recent_posts_of(authors, since))).scalars()]
    for topic_id in [int(t) for t in list(profile["topics"])[:PERSONAL_TOPICS]]:
        ids += [int(i) for i in (await session.execute(newest_in_topic(topic_id))).scalars()]
    found = await _candidates(session, list(dict.fromkeys(ids)))
    return [c for c in found if c["t"] >= epoch(since) or c["h"] > 0]


async def viewer_profile(resources: Resources, viewer_id: int | None) -> dict[str, Any]:
    """The viewer's signals and personal candidates, cached per viewer; an anonymous viewer
    has none (they get hot and new)."""
    if viewer_id is None:
        return {**signals.EMPTY_PROFILE, "personal": []}
    cache = resources.cache
    key = profile_key(cache, viewer_id)
    raw = await cache.redis.get(key)
    if raw is not None:
        return dict(codec.loads(raw))
    async with resources.db.session() as session:
        profile = await signals.profile_of(session, viewer_id)
        profile["personal"] = await _personal_candidates(session, profile, utcnow())
    ttl_ms = int(resources.settings.recommend_profile_seconds * 1000)
    if ttl_ms > 0:
        await cache.redis.set(key, codec.dumps(profile), px=ttl_ms)
    return profile


async def forget_profile(resources: Resources, user_id: int) -> None:
    """Drop a viewer's cached signals (tests, and whoever wants a change to show at once)."""
    await resources.cache.redis.delete(profile_key(resources.cache, user_id))


# -- scoring -------------------------------------------------------------------------------------


def score(candidate: dict[str, Any], profile: dict[str, Any], now: float,
          hottest: float, followees: set[int]) -> tuple[float, str]:
    """(score, reason): the weighted sum of the parts, and the part that weighed most."""
    pets = profile["pets"]
    topics = profile["topics"]
    author = None if candidate.get("n") else candidate["a"]
    age_hours = max(0.0, (now - candidate["t"]) / 3600)
    parts = {
        "pet_type": max((pets.get(p, 0.0) for p in candidate["p"]), default=0.0),
        "topic": max((topics.get(str(t), 0.0) for t in candidate["c"]), default=0.0),
        "friends_of_friends": profile["fof"].get(str(author), 0.0),
        "following": 1.0 if author in followees else 0.0,
        "hot": math.log1p(candidate["h"]) / math.log1p(hottest) if hottest > 0 else 0.0,
        "new": math.exp(-age_hours / FRESHNESS_HOURS),
    }
    weighted = {name: WEIGHTS[name] * value for name, value in parts.items()}
    reason = max(weighted, key=lambda name: (weighted[name], name))
    return sum(weighted.values()), reason


def _is_new(candidate: dict[str, Any], now: float, settings: Settings) -> bool:
    return bool((now - candidate["t"]) <= settings.recommend_new_hours * 3600
                and candidate["e"] < NEW_MAX_ENGAGEMENT)


def _lottery(session_id: str, post_id: int) -> bytes:
    """A per-session random but repeatable order of the exploration posts."""
    return hashlib.blake2b(f"{session_id}:{post_id}".encode(), digest_size=8).digest()


def ranked_order(candidates: list[dict[str, Any]], profile: dict[str, Any],
                 settings: Settings, session_id: str,
                 now: float) -> Iterator[tuple[int, int, str]]:
    """(post id, author id, reason) in the order they should be shown: by score, with every
    k-th place (k = 1 / RECOMMEND_EXPLORE_SHARE) given to a new, unproven post drawn by the
    session's lottery, so new posts get seen before they can earn a hot score."""
    followees = {int(i) for i in profile["followees"]}
    hottest = max((c["h"] for c in candidates), default=0.0)
    scored = []
    for candidate in candidates:
        value, reason = score(candidate, profile, now, hottest, followees)
        scored.append((-value, -candidate["i"], candidate["i"], candidate["a"], reason))
    scored.sort()
    new = sorted((c for c in candidates if _is_new(c, now, settings)),
                 key=lambda c: _lottery(session_id, c["i"]))
    share = settings.recommend_explore_share
    step = max(2, round(1 / share)) if share > 0 else 0
    used: set[int] = set()
    ranked_index = new_index = 0
    place = 0
    # Every candidate is in `scored` (new ones too): the order ends when `scored` does.
    while True:
        place += 1
        if step and place % step == 0:
            while new_index < len(new) and new[new_index]["i"] in used:
                new_index += 1
            if new_index < len(new):
                pick = new[new_index]
                used.add(pick["i"])
                yield pick["i"], pick["a"], "new"
                continue
        while ranked_index < len(scored) and scored[ranked_index][2] in used:
            ranked_index += 1
        if ranked_index >= len(scored):
            return
        _, _, post_id, author_id, reason = scored[ranked_index]
        used.add(post_id)
        yield post_id, author_id, reason


# -- pages ---------------------------------------------------------------------------------------


def _session_of(cursor: str | None) -> tuple[str, bool]:
    """(session id, is it a new session) from the cursor."""
    position = decode_cursor(cursor)
    if position is None:
        return secrets.token_urlsafe(12), True
    session_id = position.get("s")
    if position.get("k") != "rec" or not isinstance(session_id, str) or \
            not SESSION_RE.match(session_id):
        raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")])
    return session_id, False


async def recommend_posts(resources: Resources, viewer_id: int | None,
                          query: RecommendQuery) -> dict[str, Any]:
    """GET /v1/feed/recommend: {"items": posts as shown, each with `reason`, "nextCursor"}.
    The cursor names the session; what a session served is never served again in it."""
    cache, settings = resources.cache, resources.settings
    session_id, fresh = _session_of(query.cursor)
    seen_set = seen_key(cache, viewer_id, session_id)
    pool = await shared_pool(resources)
    profile = await viewer_profile(resources, viewer_id)
    seen = set() if fresh else {int(m) for m in await cache.redis.smembers(seen_set)}
    hidden = {int(i) for i in profile["hidden"]}
    candidates: dict[int, dict[str, Any]] = {}
    for candidate in (*pool, *profile["personal"]):
        post_id, author = candidate["i"], candidate["a"]
        if post_id in seen or author in hidden or author == viewer_id:
            continue
        candidates.setdefault(post_id, candidate)
    order = ranked_order(list(candidates.values()), profile, settings, session_id,
                         epoch(utcnow()))
    picked: list[tuple[int, str]] = []
    checked: list[int] = []
    per_author: dict[int, int] = {}
    deferred = False
    exhausted = False
    async with resources.db.session() as session:
        rows_by_id: dict[int, Any] = {}
        for _ in range(CHECK_ROUNDS):
            batch = []
            for post_id, author_id, reason in order:
                if per_author.get(author_id, 0) >= MAX_PER_AUTHOR:
                    deferred = True  # left for a later page of the session
                    continue
                per_author[author_id] = per_author.get(author_id, 0) + 1
                batch.append((post_id, reason))
                if len(batch) >= 2 * (query.limit - len(picked)):
                    break
            else:
                exhausted = True
            if batch:
                found = {row[0]: row for row in await session.execute(
                    page_rows([i for i, _ in batch], viewer_id))}
                checked += [i for i, _ in batch]
                for post_id, reason in batch:
                    if post_id in found and len(picked) < query.limit:
                        picked.append((post_id, reason))
                        rows_by_id[post_id] = found[post_id]
                    elif post_id in found:
                        checked.remove(post_id)  # visible but not shown: still to come
            if len(picked) >= query.limit or exhausted:
                break
        items = await render_post_rows(session, [rows_by_id[i] for i, _ in picked])
    for item, (_, reason) in zip(items, picked, strict=True):
        item["reason"] = reason
    if checked:
        async with cache.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(seen_set, *[str(i) for i in checked])
            pipe.expire(seen_set, max(60, int(settings.recommend_session_seconds)))
            await pipe.execute()
    # A full page (or authors held back by the per-page cap) may have more after it; the
    # page after the last one is empty with no cursor.
    more = bool(picked) and (len(picked) >= query.limit or deferred)
    return cursor_result(items, {"k": "rec", "s": session_id} if more else None)
