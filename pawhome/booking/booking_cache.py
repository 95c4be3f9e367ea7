"""The booking's Redis cache: public catalogue reads (service lists, provider pages) under
one generation, and each resource's free starts per day under that resource's generation.
A write commits, then bumps the generation it changed (`forget_*`), so values read before
are never served again. The values, generations and the reads/fills are the mall's
(pawhome/mall/catalogue_cache.py). docs/booking.md ("Caching").
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from pawhome.mall import catalogue_cache
from pawhome.platform.cache import UNAVAILABLE_ERRORS, Cache

log = logging.getLogger("pawhome.booking.cache")

read = catalogue_cache.read
fill = catalogue_cache.fill


async def read_many(cache: Cache, pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes | None]]:
    """`read` of several (generation key, value key) pairs in one round trip."""
    if not pairs:
        return []
    raw = await cache.redis.mget([key for pair in pairs for key in pair])
    out = []
    for i in range(len(pairs)):
        generation = catalogue_cache.generation_of(raw[2 * i])
        out.append((generation, catalogue_cache.unpack(raw[2 * i + 1], generation)))
    return out


def catalogue_generation_key(cache: Cache) -> str:
    return cache.key("booking", "cat", "gen")


def catalogue_key(cache: Cache, canonical: str) -> str:
    return cache.key("booking", "cat", canonical)


def head_key(cache: Cache, service_id: int) -> str:
    """A slot service's rules and performers (catalogue generation)."""
    return cache.key("booking", "cat", "head", int(service_id))


def slots_generation_key(cache: Cache, resource: str) -> str:
    return cache.key("booking", "slots", resource, "gen")


def slots_key(cache: Cache, resource: str, service_id: int, day: dt.date) -> str:
    return cache.key("booking", "slots", resource, int(service_id), day.isoformat())


def windows_generation_key(cache: Cache, resource: str) -> str:
    """Bumped by schedule changes only (not by holds and bookings)."""
    return cache.key("booking", "win", resource, "gen")


def windows_key(cache: Cache, resource: str, day: dt.date) -> str:
    """A resource-day's open windows (hours, overrides, breaks)."""
    return cache.key("booking", "win", resource, day.isoformat())


async def forget(cache: Cache, *, catalogue: bool = False, resources: Iterable[str] = (),
                 schedules: bool = False) -> None:
    """After a committed change: stop serving the catalogue reads and/or the free starts of
    `resources` ("s<staff id>", "p<provider id>"), and with `schedules` their open windows
    too (a schedule change; a hold or booking leaves the windows as they are). A Redis
    outage is logged: the TTLs bound the staleness, and a hold is refused by the database
    anyway."""
    names = sorted(set(resources))
    keys = [slots_generation_key(cache, r) for r in names]
    if schedules:
        keys += [windows_generation_key(cache, r) for r in names]
    if catalogue:
        keys.append(catalogue_generation_key(cache))
    if not keys:
        return
    try:
        await cache.execute_many(*(("INCR", key) for key in keys))
    except UNAVAILABLE_ERRORS as error:
        log.warning("booking cache not dropped: %r", error)
