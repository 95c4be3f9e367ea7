"""Redis access (redis.asyncio with hiredis) and the key namespace.

Every key and channel goes through `Cache.key()`, which prepends `REDIS_PREFIX`: test runs,
staging and production can share one server without touching each other's keys.
docs/redis-keys.md lists every key: who owns it and its TTL.
With REDIS_URL=memory:// (embedded mode) an in-process fakeredis server stands in, Lua included.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.commands.core import AsyncScript
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pawhome.platform.redis_pipeline import Pipeline
from settings import Settings

# Errors that mean Redis is not reachable right now (as opposed to a bad command).
UNAVAILABLE_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError,
                      redis_errors.BusyLoadingError, ConnectionError, OSError)

log = logging.getLogger("pawhome.cache")

_fake_servers: dict[str, Any] = {}


def make_redis(settings: Settings, **overrides: Any) -> aioredis.Redis:
    if settings.redis_url.startswith("memory://"):
        import fakeredis

        # One fake server per process and URL, so every client in the process sees one store.
        server = _fake_servers.setdefault(settings.redis_url, fakeredis.FakeServer())
        return fakeredis.FakeAsyncRedis(server=server, decode_responses=False, **overrides)
    options: dict[str, Any] = {
        "max_connections": settings.redis_max_connections,
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "health_check_interval": 15,
        "retry_on_timeout": False,
    }
    options.update(overrides)
    return aioredis.Redis.from_url(settings.redis_url, **options)


class Cache:
    """The process's Redis client plus the namespace it writes under."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = settings.redis_prefix
        self.redis = make_redis(settings)
        # The per-request admission call's connection (pawhome/platform/redis_pipeline.py); None for
        # the in-process store, which has no connection to pipeline on.
        self.pipeline = None if settings.redis_url.startswith("memory://") \
            else Pipeline(self.redis)
        self._scripts: dict[str, AsyncScript] = {}

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(map(str, parts))

    def script(self, source: str) -> AsyncScript:
        """A Lua script registered once per client (EVALSHA, reloaded if Redis forgot it)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.redis.register_script(source)
        return script

    async def execute(self, *args: Any) -> Any:
        """One command on the pipelined connection (pawhome/redis_pipeline.py), or the
        client's own for the in-process store: for the small reads many concurrent callers
        make (a token's revocation marks, a stream's head), which then share writes and
        round trips instead of each taking a connection from the pool. The reply is
        undecoded, as `redis.execute_command`'s."""
        if self.pipeline is not None:
            return await self.pipeline.execute(*args)
        return await self.redis.execute_command(*args)  # type: ignore[no-untyped-call]

    async def execute_many(self, *commands: tuple[Any, ...]) -> list[Any]:
        """`execute` for several commands sent together: one round trip for all of them."""
        if self.pipeline is not None:
            return await self.pipeline.execute_many(*commands)
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute()

    async def ping(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        if self.pipeline is not None:
            await self.pipeline.aclose()
        await self.redis.aclose()


# -- cached values dropped after a commit ---------------------------------------------------------
# A building block that changes what a cached key shows (a points balance moved inside the
# mall's checkout) does not own the transaction, so it cannot drop the key after the commit
# itself. It names the key here instead; every session carries its process's Cache
# (Resources configures the session makers) and this listener drops the keys once the
# transaction has committed — and again a moment later, so a reader that loaded the old
# value just before the commit cannot keep it cached (the delayed second delete).
_FORGET = "cache_forget_after_commit"
SECOND_DELETE_SECONDS = 0.5
_pending: set[asyncio.Task[None]] = set()
_timers: set[asyncio.TimerHandle] = set()


def forget_after_commit(session: AsyncSession | Session, *parts: object) -> None:
    """Drop the key `parts` (as for Cache.key) once this session's transaction commits."""
    session.info.setdefault(_FORGET, set()).add(tuple(parts))


async def _delete(cache: Cache, keys: list[str]) -> None:
    try:
        await cache.redis.delete(*keys)
    except Exception as error:  # the value then lives until its TTL: log, never raise
        log.warning("dropping %s cached key(s) after commit failed: %r", len(keys), error)


def _spawn(loop: asyncio.AbstractEventLoop, cache: Cache, keys: list[str]) -> None:
    if loop.is_closed():
        return
    task = loop.create_task(_delete(cache, keys))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


@sa_event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    parts = session.info.pop(_FORGET, None)
    cache = session.info.get("cache")
    if not parts or not isinstance(cache, Cache):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    keys = sorted(cache.key(*p) for p in parts)
    _spawn(loop, cache, keys)

    def again() -> None:
        _timers.discard(timer)
        _spawn(loop, cache, keys)

    timer = loop.call_later(SECOND_DELETE_SECONDS, again)
    _timers.add(timer)


@sa_event.listens_for(Session, "after_rollback")
def _keep_after_rollback(session: Session) -> None:
    session.info.pop(_FORGET, None)


async def forgotten() -> None:
    """Wait for the after-commit drops in flight, second deletes included (tests, and a
    worker after each task)."""
    loop = asyncio.get_running_loop()
    for timer in [t for t in _timers if t.cancelled()]:
        _timers.discard(timer)
    while True:
        timers = [t for t in _timers if getattr(t, "_loop", None) is loop]
        if timers:
            await asyncio.sleep(max(0.0, max(t.when() for t in timers) - loop.time()) + 0.001)
            continue
        tasks = [task for task in _pending if task.get_loop() is loop]
        if not tasks:
            break
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in [task for task in _pending if task.get_loop().is_closed()]:
        _pending.discard(task)  # a loop that ended (a test's) will never run it
