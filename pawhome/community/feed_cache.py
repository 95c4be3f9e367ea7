"""The Redis side of the discovery feeds: the cached first pages and the hot sorted set.

Feeds (pawhome/community/feeds.py) fill and read them; whatever changes what they show drops
them: a post's edit, delete and take-down right after their commit (pawhome/community/posts.py),
any visibility change through the task `default.drop_post_from_feeds`, the hot recompute.
docs/community.md has the keys, who fills them and the staleness bounds.
"""
from __future__ import annotations

import logging

from pawhome.platform.cache import UNAVAILABLE_ERRORS, Cache
from pawhome.platform.pagination import MAX_LIMIT

log = logging.getLogger("pawhome.community.feed_cache")

SORTS = ("latest", "hot")


def first_page_key(cache: Cache, sort: str, limit: int) -> str:
    return cache.key("feeds", "first", sort, limit)


def hot_key(cache: Cache) -> str:
    """Sorted set of recent public visible posts by hot score (rebuilt by the beat job)."""
    return cache.key("feeds", "hot")


async def invalidate_first_pages(cache: Cache, sorts: tuple[str, ...] = SORTS) -> None:
    """Drop the cached first pages (after a post appears, changes or goes); the TTL bounds
    staleness for changes made where no cache is at hand."""
    await cache.redis.delete(*[first_page_key(cache, sort, limit)
                               for sort in sorts for limit in range(1, MAX_LIMIT + 1)])


async def drop_post_from_feeds(cache: Cache, post_id: int | None = None) -> None:
    """After a committed change that may alter the discovery feeds: drop the cached first
    pages and, for a post that changed, its place in the hot set."""
    await invalidate_first_pages(cache)
    if post_id is not None:
        await cache.redis.zrem(hot_key(cache), str(post_id))


async def drop_post_after_commit(cache: Cache, post_id: int) -> None:
    """drop_post_from_feeds right after a request's commit; with Redis unreachable the
    change is committed all the same and the pages' TTL bounds the staleness."""
    try:
        await drop_post_from_feeds(cache, post_id)
    except UNAVAILABLE_ERRORS as error:
        log.warning("feed cache not invalidated: %r", error)
