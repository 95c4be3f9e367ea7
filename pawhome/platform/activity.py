"""Who was active on which day, and how many sockets each gateway holds: the live inputs of
the daily statistics (pawhome/stats/, docs/statistics.md).

Active users: one HyperLogLog per Asia/Shanghai day (`stats:active:<YYYY-MM-DD>`, about 12 KB
whatever the number of users, 0.81% standard error, exact for small days), fed by the gateway
from every authenticated request and socket connection. The gateway knows no domain: it holds
an `ActivityRecorder` (made by `make_app`), calls `seen(user_id)` — a set insert, no I/O —
and the recorder writes what it collected in one PFADD per day every ACTIVITY_FLUSH_SECONDS.
The daily job counts the day and keeps the sketch in the database, so a Redis that loses the
keys after a day was counted loses nothing.

Sockets per gateway: each gateway's hub reports its connection and user counts into one hash
(`stats:gateways`, a field per gateway with the time it expires), refreshed every heartbeat;
a gateway that died stops refreshing and drops out when its entry expires.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Any
from zoneinfo import ZoneInfo

from pawhome.platform import codec
from pawhome.platform.cache import Cache

log = logging.getLogger("pawhome.activity")

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A day's sketch stays in Redis this long: the 30 days behind a monthly figure, and slack.
SKETCH_TTL_SECONDS = 40 * 86400
# A set of user ids waiting for the next flush is capped: past it, flush at once.
_MAX_PENDING = 50_000


def shanghai_day(instant: dt.datetime | None = None) -> dt.date:
    """The Asia/Shanghai date of a naive-UTC (or aware) instant; now by default."""
    instant = instant or dt.datetime.now(dt.UTC)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.UTC)
    return instant.astimezone(SHANGHAI).date()


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The Asia/Shanghai day as a half-open range of naive UTC, what timestamp columns hold."""
    start = dt.datetime.combine(day, dt.time(), SHANGHAI)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), SHANGHAI)
    return (start.astimezone(dt.UTC).replace(tzinfo=None),
            end.astimezone(dt.UTC).replace(tzinfo=None))


def active_key(cache: Cache, day: dt.date) -> str:
    return cache.key("stats", "active", day.isoformat())


def gateways_key(cache: Cache) -> str:
    return cache.key("stats", "gateways")


async def record_active(cache: Cache, user_ids: list[int] | set[int],
                        day: dt.date | None = None) -> None:
    """Add users to a day's sketch (today's by default)."""
    if not user_ids:
        return
    key = active_key(cache, day or shanghai_day())
    await cache.execute_many(("PFADD", key, *sorted(user_ids)),
                             ("EXPIRE", key, SKETCH_TTL_SECONDS))


async def count_active(cache: Cache, days: list[dt.date]) -> int | None:
    """Distinct users active on any of `days`; None if none of their sketches exists (never
    recorded, or lost)."""
    keys = [active_key(cache, d) for d in days]
    if not int(await cache.redis.exists(*keys)):
        return None
    return int(await cache.redis.pfcount(*keys))


async def dump_sketch(cache: Cache, day: dt.date) -> bytes | None:
    """A day's sketch as Redis stores it (None if it has none, or the store cannot say: the
    in-process stand-in keeps sketches as sets)."""
    with contextlib.suppress(Exception):
        value = await cache.redis.get(active_key(cache, day))
        if isinstance(value, bytes) and value:
            return value
    return None


async def restore_sketch(cache: Cache, day: dt.date, sketch: bytes) -> bool:
    """Put a kept sketch back if Redis lost the day's key (an existing key is left alone: it
    may hold later arrivals). True if it was restored."""
    return bool(await cache.redis.set(active_key(cache, day), sketch, nx=True,
                                      ex=SKETCH_TTL_SECONDS))


class ActivityRecorder:
    """Collects the users a gateway process saw and writes them in batches."""

    def __init__(self, cache: Cache, flush_seconds: float = 5.0) -> None:
        self.cache = cache
        self.flush_seconds = flush_seconds
        self._pending: dict[dt.date, set[int]] = {}
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._day: dt.date | None = None
        self._day_ends = 0.0  # time.time() when self._day ends

    def _today(self) -> dt.date:
        now = time.time()
        if self._day is None or now >= self._day_ends:
            self._day = shanghai_day()
            self._day_ends = dt.datetime.combine(
                self._day + dt.timedelta(days=1), dt.time(), SHANGHAI).timestamp()
        return self._day

    def seen(self, user_id: int) -> None:
        """Note an active user (no I/O: a set insert; the flush is scheduled on first use)."""
        bucket = self._pending.setdefault(self._today(), set())
        if user_id in bucket:
            return
        bucket.add(user_id)
        self._count += 1
        if self._count >= _MAX_PENDING:
            self._schedule(0)
        elif self._timer is None:
            self._schedule(self.flush_seconds)

    def _schedule(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next seen() or close() flushes
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Write what was collected. A failed write is logged and dropped: a few users
        missing from a day's count is better than memory growing while Redis is away."""
        pending, self._pending, self._count = self._pending, {}, 0
        for day, users in pending.items():
            try:
                await record_active(self.cache, users, day)
            except Exception as error:  # Redis away: the figure misses these users
                log.warning("active users of %s not recorded: %r", day, error)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing:
            await asyncio.wait(list(self._flushing), timeout=2)
        await self.flush()


# -- sockets per gateway ---------------------------------------------------------------------


async def report_gateway(cache: Cache, gateway_id: str, connections: int, users: int,
                         ttl_seconds: float) -> None:
    """A gateway's socket counts, valid for `ttl_seconds` unless refreshed."""
    entry = {"connections": connections, "users": users,
             "reported_at": int(time.time() * 1000),
             "expires_at": int((time.time() + ttl_seconds) * 1000)}
    await cache.execute("HSET", gateways_key(cache), gateway_id, codec.dumps_str(entry))


async def forget_gateway(cache: Cache, gateway_id: str) -> None:
    await cache.execute("HDEL", gateways_key(cache), gateway_id)


async def gateway_sockets(cache: Cache) -> list[dict[str, Any]]:
    """Every live gateway's socket counts, by gateway id; expired entries are removed."""
    raw = await cache.redis.hgetall(gateways_key(cache))
    now, live, dead = int(time.time() * 1000), [], []
    for field, value in raw.items():
        gateway_id = field.decode() if isinstance(field, bytes) else str(field)
        try:
            entry = codec.loads(value)
        except (ValueError, codec.JSONDecodeError):
            entry = {}
        if not isinstance(entry, dict) or int(entry.get("expires_at", 0)) < now:
            dead.append(gateway_id)
            continue
        live.append({"gateway": gateway_id, "connections": int(entry.get("connections", 0)),
                     "users": int(entry.get("users", 0)),
                     "reported_at": int(entry.get("reported_at", 0))})
    if dead:
        await cache.redis.hdel(gateways_key(cache), *dead)
    return sorted(live, key=lambda g: g["gateway"])
