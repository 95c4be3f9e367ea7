"""A Python client for the PAWHome WebSocket protocol (docs/realtime.md), on tornado.websocket.

    client = await wsclient.connect("ws://127.0.0.1:8000/v1/ws", token)  # returns after hello
    ack = await client.request("chat.send", to_user_id=2, client_msg_id="m1", kind="text",
                               content={"text": "hi"})     # waits for the reply with its ref
    event = await client.wait_for("chat.message", timeout=5)
    await client.reconnect(url)          # new socket, `resume` from the last event seen

The client tracks the stream position (epoch, last event id) of every stored event it reads,
so `resume` after a reconnect replays exactly what it missed. The tests and bench/ use it.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import tornado.websocket
from tornado.httpclient import HTTPClientError, HTTPRequest

from pawhome.platform import codec

__all__ = ["Client", "Closed", "ConnectRefused", "connect"]


class ConnectRefused(Exception):
    """The upgrade was answered with an HTTP error (401, 503, ...)."""

    def __init__(self, status: int, body: dict | None) -> None:
        super().__init__(f"WebSocket upgrade refused: HTTP {status} {body}")
        self.status = status
        self.body = body


class Closed(Exception):
    """The socket closed while a frame was awaited."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"WebSocket closed: {code} {reason}")
        self.code = code
        self.reason = reason


_refs = itertools.count(1)


class Client:
    """One socket. Frames are kept in `frames` (all of them, in order) for `wait_for`."""

    def __init__(self, url: str, token: str, *, keep_frames: bool = True,
                 on_frame: Callable[[dict], None] | None = None,
                 max_message_size: int = 16 << 20) -> None:
        self.url = url
        self.token = token
        self.keep_frames = keep_frames
        self.on_frame = on_frame
        self.max_message_size = max_message_size
        self.ws: tornado.websocket.WebSocketClientConnection | None = None
        self.frames: list[dict[str, Any] | None] = []  # None: consumed
        self.hello: dict | None = None
        self.epoch: str | None = None
        self.last_event_id = 0
        # Set by the first hello: from then on (epoch, last_event_id) is a position this
        # client took, even when it is (None, 0) - a user who had no stream yet.
        self.positioned = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task | None = None
        self._cursor = 0  # frames before this index were consumed by wait_for

    # -- connection ----------------------------------------------------------------------------
    async def open(self, timeout: float = 10.0, resume: bool = False) -> dict:
        """Connect, wait for `hello`; with resume=True, send `resume` from the tracked position
        and wait for `resumed` or `resync` (returned). Otherwise returns hello."""
        request = HTTPRequest(self.url, headers={"Authorization": f"Bearer {self.token}"},
                              connect_timeout=timeout, request_timeout=timeout)
        try:
            self.ws = await tornado.websocket.websocket_connect(
                request, max_message_size=self.max_message_size)
        except HTTPClientError as error:
            body = None
            if error.response is not None and error.response.body:
                try:
                    body = codec.loads(error.response.body)
                except codec.JSONDecodeError:
                    body = None
            raise ConnectRefused(error.code, body) from None
        self.close_code = self.close_reason = None
        self.frames.clear()
        self._cursor = 0
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.hello = await self.wait_for("hello", timeout=timeout)
        if resume and (self.positioned or self.epoch is not None or self.last_event_id):
            # From the position held, (None, 0) included: the events stored while away (the
            # user's very first ones, if it had no stream before) are replayed.
            return await self.resume(timeout=timeout)
        if self.epoch is None and not self.last_event_id:
            self.epoch = self.hello["epoch"]
            self.last_event_id = self.hello["last_event_id"]
        self.positioned = True
        # Tell the server we have nothing to replay, so live events flow at once.
        await self.send("resume")
        await self.wait_for("resumed", timeout=timeout)
        return self.hello

    async def resume(self, timeout: float = 10.0) -> dict:
        """Send `resume` from the tracked position; returns the `resumed` or `resync` frame."""
        self.positioned = True
        ref = await self.send("resume", epoch=self.epoch, last_event_id=self.last_event_id)
        frame = await self.wait_for(("resumed", "resync"), timeout=timeout,
                                    where=lambda f: f.get("ref") == ref)
        if frame["type"] == "resync":
            self.epoch, self.last_event_id = frame["epoch"], frame["last_event_id"]
        return frame

    async def reconnect(self, url: str | None = None, timeout: float = 10.0) -> dict:
        """Close this socket (if open), connect to `url` (default: the same) and resume."""
        await self.close()
        if url is not None:
            self.url = url
        return await self.open(timeout=timeout, resume=True)

    async def close(self, code: int = 1000) -> None:
        if self.ws is not None and self.close_code is None:
            self.ws.close(code)
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
            except TimeoutError:
                self._reader.cancel()
        self._reader = None

    @property
    def closed(self) -> bool:
        return self._reader is None or self._reader.done()

    async def _read(self) -> None:
        assert self.ws is not None
        while True:
            message = await self.ws.read_message()
            if message is None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason
                self._changed.set()
                return
            frame = codec.loads(message)
            if "eid" in frame and "epoch" in frame and (
                    frame["epoch"] != self.epoch or frame["eid"] > self.last_event_id):
                self.epoch, self.last_event_id = frame["epoch"], frame["eid"]
            if self.on_frame is not None:
                self.on_frame(frame)
            if self.keep_frames:
                self.frames.append(frame)
                self._changed.set()

    # -- frames --------------------------------------------------------------------------------
    async def send(self, frame_type: str, ref: str | None = None, **fields: Any) -> str:
        """Send a frame; returns its ref (generated when not given)."""
        ref = ref or f"r{next(_refs)}"
        await self.send_raw(codec.dumps_str({"type": frame_type, "ref": ref, **fields}))
        return ref

    async def send_raw(self, message: str | bytes, binary: bool = False) -> None:
        assert self.ws is not None
        await self.ws.write_message(message, binary=binary)

    async def request(self, frame_type: str, timeout: float = 10.0, **fields: Any) -> dict:
        """Send a frame and wait for the reply carrying its ref (an `error` frame included)."""
        ref = await self.send(frame_type, **fields)
        return await self.wait_for(None, timeout=timeout, where=lambda f: f.get("ref") == ref)

    async def wait_for(self, frame_type: str | tuple[str, ...] | None, timeout: float = 10.0,
                       where: Callable[[dict], bool] | None = None) -> dict:
        """The next unconsumed frame of this type (any type if None) matching `where`.
        Frames skipped over stay available to later calls."""
        types = (frame_type,) if isinstance(frame_type, str) else frame_type
        deadline = time.monotonic() + timeout
        index = self._cursor
        while True:
            while index < len(self.frames):
                frame = self.frames[index]
                if frame is not None and (types is None or frame["type"] in types) and \
                        (where is None or where(frame)):
                    self.frames[index] = None  # consumed
                    while self._cursor < len(self.frames) and self.frames[self._cursor] is None:
                        self._cursor += 1
                    return frame
                index += 1
            if (self.closed and self.close_code is not None) or (
                    self._reader is not None and self._reader.done()):
                raise Closed(self.close_code, self.close_reason)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {frame_type!r} frame within {timeout}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closes the socket; returns the close code."""
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code

    def received(self, frame_type: str) -> list[dict]:
        """Every unconsumed frame of a type so far (not consumed by this call)."""
        return [f for f in self.frames if f is not None and f["type"] == frame_type]


async def connect(url: str, token: str, timeout: float = 10.0, **options: Any) -> Client:
    """Open a socket and wait for `hello` (live events flow at once)."""
    client = Client(url, token, **options)
    await client.open(timeout=timeout)
    return client
