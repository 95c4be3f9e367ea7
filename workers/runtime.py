"""The async side of a sync Celery task: one event loop and one Resources per worker process.

Tasks are plain sync functions (Celery's model); domain code is async (SQLAlchemy async,
redis.asyncio). `run(coro)` drives a coroutine on this process's loop. The loop and the
Resources are built lazily on first use, i.e. in the prefork child after fork (a connection
pool must never cross a fork), and closed on worker_process_shutdown. They are per thread too,
so a threads pool, or the embedded gateway's in-process executor, gets one set per thread.
A task must not call `run` from inside a running loop.
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from pawhome.platform import cache
from pawhome.platform.resources import Resources
from settings import get_settings

T = TypeVar("T")


class _Runtime:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.resources: Resources | None = None


_local = threading.local()
_registry: list[_Runtime] = []
_registry_lock = threading.Lock()


def _current() -> _Runtime:
    runtime: _Runtime | None = getattr(_local, "runtime", None)
    if runtime is None or runtime.pid != os.getpid():
        # A runtime inherited through fork belongs to the parent: leave it alone.
        runtime = _Runtime()
        _local.runtime = runtime
        with _registry_lock:
            _registry.append(runtime)
    return runtime


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on this process's (and thread's) event loop, then the cache
    drops its commits scheduled (pawhome/platform/cache.py), so none waits for the next
    task to run the loop again."""
    loop = _current().loop
    result = loop.run_until_complete(coro)
    loop.run_until_complete(cache.forgotten())
    return result


def resources() -> Resources:
    """This process's Resources (database, Redis, HTTP client), built on first use."""
    runtime = _current()
    if runtime.resources is None:
        runtime.resources = Resources(get_settings())
    return runtime.resources


def close() -> None:
    """Release every runtime this process built (connections first, then the loops)."""
    pid = os.getpid()
    with _registry_lock:
        mine = [r for r in _registry if r.pid == pid]
        _registry[:] = [r for r in _registry if r.pid != pid]
    for runtime in mine:
        try:
            if runtime.resources is not None and not runtime.loop.is_running():
                runtime.loop.run_until_complete(runtime.resources.close())
        finally:
            if not runtime.loop.is_running():
                runtime.loop.close()
    if getattr(_local, "runtime", None) in mine:
        _local.runtime = None
