"""Per-key coordination inside one process, for the rows everyone writes at once (a hot
post's counters during a like burst).

`KeyedLock`: writers of one key take turns here, in the process, instead of queueing in
MariaDB on the row's lock — where each waiter holds a pooled connection, so a burst of 400
likes on one post emptied the pool and every other request waited for it (bench/
mixed_load.py). Waiting here holds nothing: the pool stays free for everyone else, and
MariaDB still orders the writers of other processes.

`Coalescer`: an after-commit refresh (read the fresh counters, publish them) runs at most
once at a time per key; calls that arrive while it runs mark the key dirty and return, and
the running one goes round once more. A burst of N changes costs a couple of reads, not N,
and the last refresh starts after the last change, so what is published ends current.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable


class KeyedLock:
    """One asyncio.Lock per key while anyone holds or waits for it (then forgotten)."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """Keys held or waited for now."""
        return len(self._locks)


class Coalescer:
    """`run(key, refresh)`: at most one refresh at a time per key, run again after the calls
    that came in meanwhile (once for all of them)."""

    def __init__(self) -> None:
        self._running: set[Hashable] = set()
        self._dirty: set[Hashable] = set()

    async def run(self, key: Hashable, refresh: Callable[[], Awaitable[None]]) -> None:
        """Refresh `key` now, or leave it to the refresh under way (which goes round again)."""
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        try:
            while True:
                self._dirty.discard(key)
                await refresh()
                if key not in self._dirty:
                    return
        finally:
            self._running.discard(key)
            self._dirty.discard(key)

    def __len__(self) -> int:
        """Keys being refreshed now."""
        return len(self._running)
