"""The long-lived clients a process holds: database, Redis, outbound HTTP, task dispatch.

A gateway process builds one `Resources` at start and hands it to every handler; a worker
process builds one per child after fork (workers/runtime.py). Public domain functions take it
as their first argument (`resources: Resources`) and take what they need from it.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx

from pawhome.platform import tasks
from pawhome.platform.cache import Cache
from pawhome.platform.db import Database
from pawhome.platform.tasks import TaskDispatcher
from settings import Settings

log = logging.getLogger("pawhome.resources")

# httpx logs every request URL at INFO, and outbound URLs carry secrets (WeChat's appsecret,
# login codes, access_token): keep it quiet in every process that holds an HTTP client.
logging.getLogger("httpx").setLevel(logging.WARNING)


class Resources:
    """What a process shares between requests and tasks.

    - `settings`: the process's Settings;
    - `db`: the database (`db.session()` opens a unit of work);
    - `cache`: Redis (`cache.redis`, `cache.key()`), and the pipelined admission connection;
    - `http`: one pooled httpx client for calls out (WeChat, SMS), every call with a timeout;
    - `dispatcher`: hands outbox tasks to the broker or runs them here (platform/tasks.py);
      the one installed by the composition root unless one is given.
    """

    def __init__(self, settings: Settings, dispatcher: TaskDispatcher | None = None) -> None:
        self.settings = settings
        self.db = Database(settings)
        self.cache = Cache(settings)
        # Sessions carry the cache, for keys dropped after a commit (cache.forget_after_commit).
        for maker in (self.db.sessionmaker, self.db.read_committed_sessionmaker):
            maker.configure(info={"cache": self.cache})
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.wechat_timeout,
                                  connect=min(3.0, settings.wechat_timeout)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self._dispatcher = dispatcher
        self._closers: list[Callable[[], Awaitable[None]]] = []

    @property
    def dispatcher(self) -> TaskDispatcher:
        return self._dispatcher or tasks.installed()

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run `closer` first when these resources close (something that holds connections
        of its own, such as the chat writer, gives them back before the pool closes)."""
        self._closers.append(closer)

    async def close(self) -> None:
        closers, self._closers = self._closers, []
        for closer in closers:
            try:
                await closer()
            except Exception:
                log.warning("a resource closer failed", exc_info=True)
        await self.http.aclose()
        await self.cache.close()
        await self.db.close()
