"""Per-key coordination inside one process, for the rows everyone writes at once (a hot
post's counters during a like burst).

`Coalescer`: an after-commit refresh (read the fresh counters, publish them) runs at most
once at a time per key; calls that arrive while it runs mark the key dirty and return, and
the running one goes round once more. A burst of N changes costs a couple of reads, not N,
and the last refresh starts after the last change, so what is published ends current.

`KeyedBatches`: group commit per key. The first call of a key is written at once; the calls
of that key that arrive while its batch is being written wait and go together into the next
batch, one write (one transaction) for all of them. Each caller gets its own outcome, and only
once its batch's write has returned (committed). The domain decides what a batch writes
(pawhome/community/likes.py: one transaction for the taps queued on a post). Waiting here
holds no pooled connection: a burst of 400 likes queued on the post's row lock in MariaDB
used to empty the pool, and every other request waited for it (bench/mixed_load.py).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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


class KeyedBatches(Generic[T, R]):
    """`submit(key, item)`: queue an item behind the batch of its key being written, if any;
    returns its own outcome once its batch was written.

    `write(key, items)` writes one batch (items in the order they were submitted) and returns
    one outcome per item, in order: a result, or an exception that caller alone gets. If
    `write` raises, every caller of that batch gets the exception. Batches of one key are
    written one after the other (never two at once), batches of different keys side by
    side; at most `limit` items per batch. A caller that goes away (cancelled) does not take
    its item out of the batch: it is written all the same and its answer skipped.
    """

    def __init__(self, write: Callable[[Hashable, list[T]], Awaitable[list[R | BaseException]]],
                 limit: int = 500) -> None:
        self._write = write
        self.limit = max(1, int(limit))
        self._queues: dict[Hashable, list[tuple[T, asyncio.Future[R]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches written (tests, benchmarks)

    async def submit(self, key: Hashable, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = []
            task = loop.create_task(self._drain(key, queue))
            self._tasks.add(task)  # a task nobody references may be collected mid-flight
            task.add_done_callback(self._tasks.discard)
        queue.append((item, future))
        return await future

    async def _drain(self, key: Hashable, queue: list[tuple[T, asyncio.Future[R]]]) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while queue:
                batch = queue[:self.limit]
                del queue[:self.limit]
                try:
                    outcomes = await self._write(key, [item for item, _ in batch])
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")
                except Exception as error:
                    outcomes = [error] * len(batch)
                self.batches += 1
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    _settle(future, outcome)
                batch = []
        except BaseException as error:  # cancelled (the loop is ending): nobody waits forever
            stopped = error if isinstance(error, Exception) else \
                ConnectionError("the batch writer stopped")
            for _, future in batch + queue:
                _settle(future, stopped)
            raise
        finally:
            # No await between the queue found empty and this: a later call starts afresh.
            del self._queues[key]

    def __len__(self) -> int:
        """Keys with a batch being written or waiting."""
        return len(self._queues)


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # its caller went away
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
