"""The catalogue's Redis cache: the category tree, product list pages and product details,
each stored with the generation it was read under, and `forget_*` to drop them at once.

A cached value is `<generation>|<payload>`. A reader takes the generation key and the value
in one round trip (the gateway's admission call, `@endpoint(read_ahead=...)`) and uses the
value only when its generation is the current one. A write commits, then bumps the
generation: every value read before the bump stops counting at that instant, including one
that a slower reader fills from the old rows just after the bump (it is written under the
old generation and never used). docs/mall.md ("Catalogue", cache) and docs/redis-keys.md.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from pawhome.platform.cache import UNAVAILABLE_ERRORS, Cache

log = logging.getLogger("pawhome.mall.catalogue_cache")

# A product's generation key outlives every value filled under it (the details' TTL) by this
# much, so it cannot expire (and start again at 0) while a value of an older 0 is still kept.
GENERATION_MARGIN_SECONDS = 3600


def category_generation_key(cache: Cache) -> str:
    return cache.key("mall", "cat", "gen")


def category_tree_key(cache: Cache) -> str:
    return cache.key("mall", "cat", "tree")


def list_generation_key(cache: Cache) -> str:
    return cache.key("mall", "plist", "gen")


def list_page_key(cache: Cache, canonical_query: str) -> str:
    return cache.key("mall", "plist", canonical_query)


def detail_generation_key(cache: Cache, product_id: int) -> str:
    return cache.key("mall", "product", int(product_id), "gen")


def detail_key(cache: Cache, product_id: int) -> str:
    return cache.key("mall", "product", int(product_id))


def generation_of(raw: bytes | str | None) -> bytes:
    """A generation key's value as read (None before the first bump)."""
    if raw is None:
        return b"0"
    return raw.encode() if isinstance(raw, str) else bytes(raw)


def pack(generation: bytes, payload: bytes) -> bytes:
    return generation + b"|" + payload


def unpack(raw: bytes | str | None, generation: bytes) -> bytes | None:
    """The payload of a cached value if it was filled under `generation`, else None."""
    if raw is None:
        return None
    value = raw.encode() if isinstance(raw, str) else bytes(raw)
    head = generation + b"|"
    return value[len(head):] if value.startswith(head) else None


async def read(cache: Cache, generation_key: str, value_key: str,
               known: dict[str, object] | None = None) -> tuple[bytes, bytes | None]:
    """(current generation, payload or None) — from `known` (the gateway read them ahead)
    when both keys are there, else in one round trip."""
    known = known or {}
    if generation_key in known and value_key in known:
        generation = generation_of(known[generation_key])  # type: ignore[arg-type]
        return generation, unpack(known[value_key], generation)  # type: ignore[arg-type]
    gen_raw, value_raw = await cache.redis.mget([generation_key, value_key])
    generation = generation_of(gen_raw)
    return generation, unpack(value_raw, generation)


async def fill(cache: Cache, value_key: str, generation: bytes, payload: bytes,
               ttl_seconds: int) -> None:
    """Store a payload read under `generation` (best effort: a Redis outage costs a miss)."""
    if ttl_seconds <= 0:
        return
    try:
        await cache.redis.set(value_key, pack(generation, payload), ex=ttl_seconds)
    except UNAVAILABLE_ERRORS as error:
        log.warning("catalogue cache not filled: %r", error)


async def forget(cache: Cache, *, product_ids: Iterable[int] = (), lists: bool = False,
                 categories: bool = False) -> None:
    """After a committed change: stop serving the cached details of `product_ids`, every
    list page (`lists`) and the category tree (`categories`). One round trip. A Redis outage
    is logged, not raised: the change is committed, and the TTLs bound the staleness."""
    ids = sorted({int(i) for i in product_ids})
    if not ids and not lists and not categories:
        return
    detail_ttl = int(cache.settings.product_detail_cache_seconds) + GENERATION_MARGIN_SECONDS
    try:
        async with cache.redis.pipeline(transaction=False) as pipe:
            for product_id in ids:
                key = detail_generation_key(cache, product_id)
                pipe.incr(key)
                pipe.expire(key, detail_ttl)
                pipe.delete(detail_key(cache, product_id))
            if lists:
                pipe.incr(list_generation_key(cache))
            if categories:
                pipe.incr(category_generation_key(cache))
                pipe.delete(category_tree_key(cache))
            await pipe.execute()
    except UNAVAILABLE_ERRORS as error:
        log.warning("catalogue cache not dropped (products %s, lists %s, categories %s): %r",
                    ids, lists, categories, error)
