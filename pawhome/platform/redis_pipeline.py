"""One Redis connection shared by concurrent callers, their commands pipelined on it.

redis-py's client takes a connection from its pool for every command, sends the command,
waits for its reply and puts the connection back: with 64 requests in flight that cost the
gateway about 110 µs of CPU per command, most of it per-command plumbing and a send and a
receive system call each. The call every REST request makes (the admission script of
gateway/ratelimit.py) goes through a `Pipeline` instead: commands are queued on one
connection, the ones queued during an event-loop turn go out in one write, and one reader
hands the replies (Redis answers in order) to the callers: about 30 µs a command.

The connection is redis-py's own, made by the client's pool (so the URL, password,
database, TLS and timeouts are the client's), driven through its public
send_packed_command and read_response. A reply that does not come within the socket
timeout, or a lost connection, fails every command in flight on that connection with
redis-py's TimeoutError or ConnectionError (the gateway answers 503, as for the ordinary
client); the next command opens a new connection. A command that fails on a connection
that broke is retried once on a new one (so a Redis restart costs no request); an error
reply (e.g. NOSCRIPT) fails only its own command.
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as redis_errors


class Pipeline:
    """The process's pipelined connection to the Redis of `redis` (opened on first use)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._pool = redis.connection_pool
        self._line: _Line | None = None
        self._opening: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    async def execute(self, *args: Any) -> Any:
        """Send one command; its reply (bytes undecoded, as the client's own)."""
        try:
            return await (await self._usable_line()).call(args)
        except redis_errors.ConnectionError:
            # The connection was gone (e.g. Redis restarted since its last use): once more
            # on a new one. A second failure is an outage and is the caller's to answer.
            return await (await self._usable_line()).call(args)

    async def execute_many(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send several commands together (one write, one round trip); their replies, in
        order. An error reply raises (the others are still read); a lost connection fails
        them all, retried once on a new one as `execute` does."""
        try:
            line = await self._usable_line()
            return list(await asyncio.gather(*(line.call(c) for c in commands)))
        except redis_errors.ConnectionError:
            line = await self._usable_line()
            return list(await asyncio.gather(*(line.call(c) for c in commands)))

    async def _usable_line(self) -> _Line:
        loop = asyncio.get_running_loop()
        line = self._line
        if line is not None and not line.broken and line.loop is loop:
            return line
        if self._opening is None or self._opening[0] is not loop:
            self._opening = (loop, asyncio.Lock())  # one opener at a time, per event loop
        async with self._opening[1]:
            line = self._line
            # A broken line has failed its waiters; one of another (finished) event loop is
            # simply left behind.
            if line is None or line.broken or line.loop is not loop:
                connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
                await connection.connect()
                line = self._line = _Line(connection)
            return line

    async def aclose(self) -> None:
        line, self._line = self._line, None
        if line is not None and line.loop is asyncio.get_running_loop():
            line.fail(redis_errors.ConnectionError("Redis pipeline closed"))
            await line.connection.disconnect(nowait=True)


class _Line:
    """One connection: the commands not yet written, the callers waiting for replies in the
    order their commands were written, a writer task and a reader task."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.loop = asyncio.get_running_loop()
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.unsent: list[bytes] = []
        self.broken = False
        self._to_write = asyncio.Event()
        self._to_read = asyncio.Event()
        self._tasks = (asyncio.create_task(self._write()), asyncio.create_task(self._read()))

    def call(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self.unsent.extend(self.connection.pack_command(*args))
        self.waiters.append(future)
        self._to_write.set()
        self._to_read.set()
        return future

    async def _write(self) -> None:
        try:
            while True:
                await self._to_write.wait()
                self._to_write.clear()
                batch, self.unsent = self.unsent, []
                if batch:
                    await self.connection.send_packed_command(batch, check_health=False)
        except BaseException as error:
            self.fail(error)

    async def _read(self) -> None:
        try:
            while True:
                if not self.waiters:
                    self._to_read.clear()
                    await self._to_read.wait()
                    continue
                try:
                    reply = await self.connection.read_response()
                except redis_errors.ResponseError as error:  # an error reply: its command's
                    reply = error
                future = self.waiters.popleft()
                if future.done():  # its caller went away (cancelled)
                    continue
                if isinstance(reply, redis_errors.ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except BaseException as error:
            self.fail(error)

    def fail(self, error: BaseException) -> None:
        """The line is done: fail every waiting command with `error` (as a redis-py
        ConnectionError or TimeoutError), stop both tasks, drop the connection."""
        if self.broken:
            return
        self.broken = True
        if not isinstance(error, (redis_errors.ConnectionError, redis_errors.TimeoutError)):
            error = redis_errors.ConnectionError(f"Redis pipeline connection lost: {error!r}")
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(error)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if current in self._tasks:  # the connection failed under a task: drop it now
            self.loop.create_task(self.connection.disconnect(nowait=True))
