"""Who is online: per-user presence entries in Redis, written by the gateways that hold sockets.

`presence:<uid>` is a sorted set: one member per gateway process holding a socket of the user,
scored with the time (ms) that entry expires. Gateways refresh their entries in one pipeline
per heartbeat interval and write arrivals and departures in batches (`update`), so a crashed
gateway's entries simply age out (and the key's TTL removes it); a user is online while any
entry is in the future. `last_seen:<uid>` holds the last time (ms) a gateway saw the user
connected. Readers: the presence endpoint, notify tasks.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

from pawhome.platform.cache import Cache

# Users per script call: bounded arguments and replies, however many sockets come and go.
_BATCH = 1000

# One call for many users. KEYS: presence key, last_seen key per user. ARGV: gateway id,
# entry expiry (ms), key TTL (s), now (ms), last_seen TTL (s), then per user "1" (holds a
# socket: write its entry) or "0" (its last socket closed: drop its entry).
_UPDATE_LUA = """
for i = 1, #KEYS / 2 do
  local key = KEYS[i * 2 - 1]
  if ARGV[5 + i] == '1' then
    redis.call('ZADD', key, ARGV[2], ARGV[1])
    redis.call('EXPIRE', key, ARGV[3])
  else
    redis.call('ZREM', key, ARGV[1])
  end
  redis.call('SET', KEYS[i * 2], ARGV[4], 'EX', ARGV[5])
end
return #KEYS / 2
"""


def presence_key(cache: Cache, user_id: int) -> str:
    return cache.key("presence", int(user_id))


def last_seen_key(cache: Cache, user_id: int) -> str:
    return cache.key("last_seen", int(user_id))


def _now_ms() -> int:
    return int(time.time() * 1000)


async def update(cache: Cache, gateway_id: str, online: Iterable[int] = (),
                 offline: Iterable[int] = ()) -> None:
    """This gateway holds sockets of the `online` users (their entries and last_seen are
    (re)written) and no longer of the `offline` ones (its entries dropped, last_seen stamped):
    one script call per _BATCH users, so a thousand sockets opening or closing at once cost
    one round trip, not a thousand connections from the pool."""
    settings = cache.settings
    ttl = settings.ws_presence_ttl
    now = _now_ms()
    steps = [(uid, "1") for uid in online] + [(uid, "0") for uid in offline]
    script = cache.script(_UPDATE_LUA)
    for start in range(0, len(steps), _BATCH):
        keys: list[str] = []
        flags: list[str] = []
        for uid, here in steps[start:start + _BATCH]:
            keys += (presence_key(cache, uid), last_seen_key(cache, uid))
            flags.append(here)
        await script(keys=keys, args=[gateway_id, now + ttl * 1000, ttl, now,
                                      settings.ws_last_seen_ttl, *flags])


async def mark_online(cache: Cache, gateway_id: str, user_ids: Iterable[int]) -> None:
    """This gateway holds sockets of these users: (re)write its entries and last_seen."""
    await update(cache, gateway_id, online=user_ids)


async def mark_offline(cache: Cache, gateway_id: str, user_id: int) -> None:
    """This gateway's last socket of the user closed: drop its entry, stamp last_seen."""
    await update(cache, gateway_id, offline=[user_id])


async def is_online(cache: Cache, user_id: int) -> bool:
    """True while any gateway's entry for the user is unexpired."""
    return int(await cache.redis.zcount(presence_key(cache, user_id), _now_ms(), "+inf")) > 0


async def last_seen(cache: Cache, user_id: int) -> int | None:
    """Milliseconds since the epoch the user was last seen connected, or None."""
    value = await cache.redis.get(last_seen_key(cache, user_id))
    return int(value) if value is not None else None
