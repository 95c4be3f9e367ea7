"""Who is online: per-user presence entries in Redis, written by the gateways that hold sockets.

`presence:<uid>` is a sorted set: one member per gateway process holding a socket of the user,
scored with the time (ms) that entry expires. Gateways refresh their entries in one pipeline
per heartbeat interval, so a crashed gateway's entries simply age out (and the key's TTL
removes it); a user is online while any entry is in the future. `last_seen:<uid>` holds the
last time (ms) a gateway saw the user connected. Readers: the presence endpoint, notify tasks.
"""
from __future__ import annotations

import time
from typing import Iterable

from pawhome.platform.cache import Cache

# Commands per pipeline when refreshing many users: bounded replies, bounded memory.
_BATCH = 1000


def presence_key(cache: Cache, user_id: int) -> str:
    return cache.key("presence", int(user_id))


def last_seen_key(cache: Cache, user_id: int) -> str:
    return cache.key("last_seen", int(user_id))


def _now_ms() -> int:
    return int(time.time() * 1000)


async def mark_online(cache: Cache, gateway_id: str, user_ids: Iterable[int]) -> None:
    """This gateway holds sockets of these users: (re)write its entries and last_seen."""
    settings = cache.settings
    ttl = settings.ws_presence_ttl
    now = _now_ms()
    ids = list(user_ids)
    for start in range(0, len(ids), _BATCH):
        async with cache.redis.pipeline(transaction=False) as pipe:
            for uid in ids[start:start + _BATCH]:
                key = presence_key(cache, uid)
                pipe.zadd(key, {gateway_id: now + ttl * 1000})
                pipe.expire(key, ttl)
                pipe.set(last_seen_key(cache, uid), now, ex=settings.ws_last_seen_ttl)
            await pipe.execute()


async def mark_offline(cache: Cache, gateway_id: str, user_id: int) -> None:
    """This gateway's last socket of the user closed: drop its entry, stamp last_seen."""
    async with cache.redis.pipeline(transaction=False) as pipe:
        pipe.zrem(presence_key(cache, user_id), gateway_id)
        pipe.set(last_seen_key(cache, user_id), _now_ms(), ex=cache.settings.ws_last_seen_ttl)
        await pipe.execute()


async def is_online(cache: Cache, user_id: int) -> bool:
    """True while any gateway's entry for the user is unexpired."""
    return int(await cache.redis.zcount(presence_key(cache, user_id), _now_ms(), "+inf")) > 0


async def last_seen(cache: Cache, user_id: int) -> int | None:
    """Milliseconds since the epoch the user was last seen connected, or None."""
    value = await cache.redis.get(last_seen_key(cache, user_id))
    return int(value) if value is not None else None
