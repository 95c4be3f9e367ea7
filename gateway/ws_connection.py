"""One socket's protocol state: identity, stream position, limits, timers, resume.

`Connection` is kept small (slots, timers via loop.call_later, no Task or Redis connection
of its own) because a process holds thousands; gateway/ws.py's `WebSocketHandler` makes one
per socket once the upgrade is authenticated, and the hub (gateway/hub.py) writes events to
it. Frames are written with the protocol's frame writer, never awaited: a client that does
not read is closed with 4408. docs/realtime.md is the protocol.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast

import pydantic
from tornado.iostream import IOStream, StreamClosedError
from tornado.websocket import WebSocketProtocol13

from gateway import metrics
from gateway.control_characters import control_character_errors, json_may_hold_control_characters
from gateway.errormap import to_app_error
from gateway.handler import validation_errors
from gateway.ws_frames import FRAME_HANDLERS, ClientFrame
from pawhome.identity.tokens import AccessClaims
from pawhome.platform import codec, errors, streams

if TYPE_CHECKING:
    from gateway.ws import WebSocketHandler

log = logging.getLogger("pawhome.ws")

# Close codes (docs/realtime.md).
CLOSE_GOING_AWAY = 1001
CLOSE_BINARY = 1003
CLOSE_TOO_BIG = 1009
CLOSE_UNAVAILABLE = 1011
CLOSE_PROTOCOL = 4400
CLOSE_AUTH = 4401
CLOSE_SLOW = 4408
CLOSE_FLOOD = 4429

# metrics.WS_FRAMES_IN's child per registered frame type (labels() costs a lookup per call).
_FRAMES_IN: dict[str, Any] = {}

# hold_state: why live stored events are being held instead of written.
_LIVE, _GRACE, _REPLAY = 0, 1, 2


def _written(conn: Connection, size: int, future: asyncio.Future) -> None:
    conn.pending_bytes -= size
    if not future.cancelled():
        future.exception()  # retrieved: a write to a closed stream is not an error here


class Connection:
    """One authenticated socket: identity, position in the user's stream, limits, timers."""

    __slots__ = (
        "__weakref__",
        "acked_eid",
        "auth_timer",
        "busy",
        "claims",
        "closed",
        "epoch",
        "fresh",
        "generation",
        "grace_timer",
        "handler",
        "hold_state",
        "holding",
        "hub",
        "last_eid",
        "pending_bytes",
        "pong_due",
        "resources",
        "stamp",
        "strikes",
        "timer",
        "tokens",
        "topics",
        "user_id",
    )

    def __init__(self, handler: WebSocketHandler, claims: AccessClaims) -> None:
        self.handler = handler
        self.hub = handler.application.settings["hub"]
        self.resources = handler.application.settings["resources"]
        self.user_id = claims.user_id
        self.claims = claims
        self.epoch: str | None = None
        self.last_eid = 0
        self.acked_eid = 0
        # Until the client's first frame (normally `resume`), live stored events are held,
        # so a replay is never overtaken by live events.
        self.holding: list | None = []
        self.hold_state = _GRACE
        self.pending_bytes = 0
        self.tokens = float(self.settings.ws_burst)
        self.stamp = time.monotonic()
        self.strikes = 0
        self.topics: list[str] | None = None
        self.pong_due = False
        self.timer: asyncio.TimerHandle | None = None
        self.auth_timer: asyncio.TimerHandle | None = None
        self.grace_timer: asyncio.TimerHandle | None = None
        self.closed = False
        # Client frames whose handler or reply is still under way (a chat.send waiting for
        # its batch's commit): such a socket is not idle, so rebalancing leaves it for last.
        self.busy = 0
        # True from a hello that found no stream until the client's first `resume`.
        self.fresh = False
        # The hub's pub/sub connection (its count of connects) when hello's position was read.
        self.generation = 0

    @property
    def settings(self):
        return self.resources.settings

    @property
    def idle(self) -> bool:
        """Nothing in flight: no frame being answered, no replay or held events, nothing
        written but not yet taken by the kernel. Closing it interrupts nothing."""
        return not self.busy and self.holding is None and not self.pending_bytes

    # -- sending -------------------------------------------------------------------------------
    def write(self, frame: bytes) -> None:
        """Queue one encoded frame; a client that lets too many bytes pile up is closed."""
        # The handler's protocol is always tornado's WebSocketProtocol13 (RFC 6455).
        protocol = cast("WebSocketProtocol13 | None", self.handler.ws_connection)
        if self.closed or protocol is None or protocol.is_closing():
            return
        stream = protocol.stream
        if stream is None:
            return
        if protocol._compressor is None and not stream._write_buffer and \
                type(stream) is IOStream and stream.socket is not None:
            # Nothing queued before it: the frame goes straight to the socket, without the
            # stream's Future and bookkeeping per write (a few microseconds each, three
            # writes per chat message). Whatever the kernel does not take now, or any
            # socket error, goes through the stream as usual.
            size = len(frame)
            data = (bytes((0x81, size)) if size < 126 else
                    b"\x81\x7e" + size.to_bytes(2, "big") if size <= 0xFFFF else
                    b"\x81\x7f" + size.to_bytes(8, "big")) + frame
            try:
                sent = stream.socket.send(data)
            except OSError:
                sent = 0
            if sent == len(data):
                return
            try:
                future = stream.write(data[sent:])
            except StreamClosedError:
                return
            self._track(future, len(data) - sent)
            return
        try:
            # The protocol's frame writer, not write_message(): that wraps every message in
            # an asyncio Task, too costly when one event fans out to thousands of sockets.
            future = protocol._write_frame(True, 0x1, frame)
        except StreamClosedError:
            return
        self._track(future, len(frame))

    def _track(self, future: asyncio.Future, size: int) -> None:
        """Count bytes the kernel has not taken yet; too many close the socket (4408)."""
        if future.done():
            _written(self, 0, future)
            return
        self.pending_bytes += size
        future.add_done_callback(functools.partial(_written, self, size))
        if self.pending_bytes > self.settings.ws_max_outbound_bytes:
            self.close(CLOSE_SLOW, "slow consumer: outbound queue full")

    def send(self, frame_type: str, data: Any = None, **fields: Any) -> None:
        """Queue one frame to this socket only: {"type", **fields, "data"?}. Not awaited:
        the write never blocks (a client that does not read is closed with 4408)."""
        frame = {"type": frame_type, **{name: value for name, value in fields.items()
                                        if value is not None or name not in ("ref", "errors")}}
        if data is not None:
            frame["data"] = data
        self.write(codec.dumps(frame))

    def reply(self, frame: ClientFrame, frame_type: str, **fields: Any) -> None:
        """`send`, echoing the client frame's ref."""
        self.send(frame_type, ref=frame.ref, **fields)

    def send_error(self, error: errors.AppError, ref: str | None = None) -> None:
        self.send("error", code=error.code, message=error.message, ref=ref,
                  errors=error.errors or None)

    def deliver(self, frame: bytes) -> None:
        """An ephemeral or topic event: written now, never held."""
        self.write(frame)

    def deliver_event(self, epoch: str, eid: int, frame: bytes) -> None:
        """A stored event: in order, once, after any replay in progress."""
        if self.holding is not None:
            if len(self.holding) >= self.settings.ws_resume_buffer_max:
                self.close(CLOSE_SLOW, "slow consumer: too many events during replay")
                return
            self.holding.append((epoch, eid, frame))
            return
        if epoch == self.epoch:
            if eid <= self.last_eid:
                return  # already sent (replay and live overlap)
            if eid > self.last_eid + 1:
                # A gap (a pub/sub message lost): hold this one and fetch the missing ones.
                self.holding = [(epoch, eid, frame)]
                self.hold_state = _REPLAY
                self.hub._background(self.resume(self.epoch, self.last_eid, announce=False))
                return
        elif self.epoch is not None:
            # The user's stream was recreated (e.g. Redis lost its data): what the client
            # holds cannot be continued; it refetches, then takes events after eid - 1.
            self.send("resync", reason="epoch_changed", epoch=epoch, last_event_id=eid - 1)
        self.epoch, self.last_eid = epoch, eid
        self.write(frame)

    def _release(self) -> None:
        held, self.holding, self.hold_state = self.holding, None, _LIVE
        for epoch, eid, frame in held or ():
            self.deliver_event(epoch, eid, frame)

    # -- resume --------------------------------------------------------------------------------
    def client_resume(self, epoch: str | None, last_eid: int | None,
                      ref: str | None) -> Awaitable[None] | None:
        """A `resume` frame: go on from the client's position. Returns the replay to await,
        or None when no read is needed — the position is this socket's own (hello's, or the
        last event it wrote): every later event is on its way through the channel, which
        was subscribed before that position was read (unless the pub/sub connection was
        lost since: then the stream is read)."""
        if self.fresh:
            # Hello found no stream, so live events have flowed since (no grace held them).
            self.fresh = False
            if epoch is not None and epoch == self.epoch:
                # The stream began after hello: the client can only know this epoch from
                # events sent here before its resume, so its state from before connecting
                # is unknown. Exact or explicit: it refetches, then goes on from here.
                self.send("resync", reason="epoch_changed", ref=ref, epoch=self.epoch,
                          last_event_id=self.last_eid)
                return None
            if epoch is None and not last_eid:  # hello's position: go on from here
                epoch, last_eid = self.epoch, self.last_eid
        elif epoch is None and last_eid is None:
            epoch, last_eid = self.epoch, self.last_eid  # nothing to replay: go live
        last_eid = last_eid or 0
        if epoch == self.epoch and last_eid == self.last_eid and \
                self.hold_state != _REPLAY and self.generation == self.hub.generation:
            self._release()
            self.send("resumed", ref=ref, epoch=self.epoch, last_event_id=self.last_eid)
            return None
        return self.resume(epoch, last_eid, ref=ref)

    async def resume(self, epoch: str | None, last_eid: int, ref: str | None = None,
                     announce: bool = True) -> None:
        """Replay the stream after (epoch, last_eid), then the live events held meanwhile,
        then `resumed`; or `resync` when the stream cannot continue from there."""
        self.hold_state = _REPLAY
        if self.holding is None:
            self.holding = []
        try:
            replay = await streams.read_since(self.resources.cache, self.user_id, epoch,
                                              last_eid)
        except Exception as error:
            log.warning("resume of user %s failed: %r", self.user_id, error)
            replay = None
        if self.closed:
            return
        if replay is None:
            self.send("resync", reason="unavailable", ref=ref, epoch=self.epoch,
                      last_event_id=self.last_eid)
        elif not replay.ok:
            self.send("resync", reason=replay.reason, ref=ref, epoch=replay.epoch,
                      last_event_id=replay.last_eid)
            self.epoch, self.last_eid = replay.epoch, replay.last_eid
        else:
            self.epoch, self.last_eid = replay.epoch, last_eid
            for eid, event in replay.events:
                self.write(codec.dumps({"type": event["type"], "eid": eid, "epoch": replay.epoch,
                                        "data": event.get("data"), "ts": event.get("ts")}))
                self.last_eid = eid
        self._release()
        if announce and replay is not None and replay.ok:
            self.send("resumed", ref=ref, epoch=self.epoch, last_event_id=self.last_eid)

    async def catch_up(self) -> None:
        """After the hub's pub/sub connection came back: fetch what was missed."""
        if self.closed or self.hold_state == _REPLAY:
            return
        await self.resume(self.epoch, self.last_eid, announce=False)

    # -- receiving -----------------------------------------------------------------------------
    def receive(self, message: str | bytes) -> Awaitable[None] | None:
        if isinstance(message, bytes):
            self.close(CLOSE_BINARY, "binary frames are not supported")
            return None
        limit = self.settings.ws_max_frame_bytes
        if len(message) > limit or (len(message) * 4 > limit and
                                    len(message.encode("utf-8", "surrogatepass")) > limit):
            self.close(CLOSE_TOO_BIG, f"frame over {limit} bytes")
            return None
        self.heard()
        if not self._take_token():
            return None
        try:
            raw = codec.loads(message)
        except codec.JSONDecodeError:
            self._end_grace()
            self.send_error(errors.MalformedJson("Frame is not valid JSON"))
            return None
        ref = raw.get("ref") if isinstance(raw, dict) else None
        ref = ref if isinstance(ref, str) and len(ref) <= 64 else None
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            self._end_grace()
            self.send_error(errors.ValidationFailed(
                "Frame must be a JSON object with a string `type`",
                errors=[errors.field_error("type", "required")]), ref)
            return None
        frame_type = raw["type"]
        entry = FRAME_HANDLERS.get(frame_type)
        if entry is None:
            self._end_grace()
            metrics.WS_FRAMES_IN.labels(type="unknown").inc()
            self.send_error(errors.UnknownFrameType(
                f"Unknown frame type: {frame_type[:40]}",
                errors=[errors.field_error("type", "unknown frame type")]), ref)
            return None
        counter = _FRAMES_IN.get(frame_type)
        if counter is None:
            counter = _FRAMES_IN[frame_type] = metrics.WS_FRAMES_IN.labels(type=frame_type)
        counter.inc()
        if frame_type != "resume":
            self._end_grace()
        model, function = entry
        refused = json_may_hold_control_characters(message) and control_character_errors(raw)
        if refused:
            self.send_error(errors.ValidationFailed(
                f"Invalid {frame_type[:40]} frame", errors=refused), ref)
            return None
        try:
            frame = model.model_validate(raw)
        except pydantic.ValidationError as error:
            self.send_error(errors.ValidationFailed(
                f"Invalid {frame_type[:40]} frame", errors=validation_errors(error)), ref)
            return None
        try:
            result = function(self, frame)
        except Exception as error:
            self._report(error, ref)
            return None
        if inspect.isawaitable(result):
            return self._guard(result, ref)
        return None

    async def _guard(self, result: Awaitable[None], ref: str | None) -> None:
        self.busy += 1
        try:
            await result
        except Exception as error:
            self._report(error, ref)
        finally:
            self.busy -= 1

    def reply_when_done(self, frame: ClientFrame, frame_type: str,
                        future: asyncio.Future[dict[str, Any]]) -> None:
        """Answer `frame` once `future` resolves — `frame_type` with its result's fields, or
        an `error` frame — without holding back the socket's next frames meanwhile (a
        handler that awaits its work makes tornado wait before reading the next frame)."""
        ref = frame.ref
        self.busy += 1

        def answer(done: asyncio.Future) -> None:
            self.busy -= 1
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                self.send(frame_type, ref=ref, **done.result())
            elif isinstance(error, Exception):
                self._report(error, ref)
        future.add_done_callback(answer)

    def _report(self, error: Exception, ref: str | None) -> None:
        if isinstance(error, pydantic.ValidationError):
            app_error: errors.AppError = errors.ValidationFailed(
                errors=validation_errors(error))
        else:
            app_error = to_app_error(error, 500)
        if isinstance(app_error, errors.InternalError) and not isinstance(error,
                                                                           errors.AppError):
            log.error("frame handler failed", exc_info=error)
        self.send_error(app_error, ref)

    def _take_token(self) -> bool:
        settings = self.settings
        now = time.monotonic()
        self.tokens = min(float(settings.ws_burst),
                          self.tokens + (now - self.stamp) * settings.ws_rate)
        self.stamp = now
        if self.tokens >= settings.ws_burst:
            self.strikes = 0  # calmed down
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.strikes += 1
        if self.strikes >= settings.ws_flood_strikes:
            self.close(CLOSE_FLOOD, "too many frames")
        else:
            self.send_error(errors.RateLimited("Too many frames; slow down"))
        return False

    # -- timers --------------------------------------------------------------------------------
    def start(self, epoch: str | None, last_eid: int) -> None:
        """Send `hello` with the stream position read once the channel was subscribed, and
        start the timers. Live stored events are then held until the client's first frame
        (normally `resume`) or WS_RESUME_GRACE_SECONDS, so a replay is never overtaken by
        them — unless the user has no stream yet: no replay can hold anything then (a resume
        from elsewhere gets `resync`), so events flow at once."""
        self.epoch, self.last_eid = epoch, last_eid
        self.generation = self.hub.generation
        self.send("hello", user_id=self.user_id, epoch=epoch, last_event_id=last_eid,
                  heartbeat_seconds=self.settings.ws_heartbeat_seconds,
                  server_time=int(time.time() * 1000))
        loop = asyncio.get_running_loop()
        if epoch is None:
            self.fresh = True
            self._release()
        else:
            self.grace_timer = loop.call_later(self.settings.ws_resume_grace_seconds,
                                               self._end_grace)
        self._schedule_ping(self.settings.ws_heartbeat_seconds * random.uniform(0.8, 1.2))
        self._schedule_auth()

    def _end_grace(self) -> None:
        if self.grace_timer is not None:
            self.grace_timer.cancel()
            self.grace_timer = None
        if self.hold_state == _GRACE:
            self._release()

    def heard(self) -> None:
        """Any frame or pong from the client proves it alive."""
        self.pong_due = False

    def _schedule_ping(self, delay: float) -> None:
        self.timer = asyncio.get_running_loop().call_later(delay, self._ping)

    def _ping(self) -> None:
        protocol = self.handler.ws_connection
        if self.closed or protocol is None or protocol.is_closing():
            return
        try:
            protocol.write_ping(b"")
        except StreamClosedError:
            return
        self.pong_due = True
        self.timer = asyncio.get_running_loop().call_later(self.settings.ws_pong_timeout,
                                                           self._check_pong)

    def _check_pong(self) -> None:
        if self.closed:
            return
        if self.pong_due:
            self.close(CLOSE_SLOW, "no heartbeat reply")
            return
        settings = self.settings
        delay = settings.ws_heartbeat_seconds * random.uniform(0.8, 1.2) - settings.ws_pong_timeout
        self._schedule_ping(max(0.1, delay))

    def _schedule_auth(self) -> None:
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        warn_in = self.claims.exp - time.time() - self.settings.ws_auth_expiring_seconds
        loop = asyncio.get_running_loop()
        if warn_in > 0:
            self.auth_timer = loop.call_later(warn_in, self._auth_expiring)
        else:
            self._auth_expiring()

    def _auth_expiring(self) -> None:
        remaining = self.claims.exp - time.time()
        if self.closed:
            return
        self.send("auth.expiring", expires_in=max(0, int(remaining)))
        self.auth_timer = asyncio.get_running_loop().call_later(max(0.0, remaining),
                                                                self._auth_expired)

    def _auth_expired(self) -> None:
        if time.time() >= self.claims.exp:
            self.close(CLOSE_AUTH, "token expired")

    # -- control -------------------------------------------------------------------------------
    def apply_control(self, message: dict[str, Any]) -> None:
        if message.get("action") == "revoke" and (
                message.get("all") or (message.get("sid") and message["sid"] == self.claims.sid)
                or (message.get("jti") and message["jti"] == self.claims.jti)):
            self.close(CLOSE_AUTH, "session revoked")

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        metrics.WS_CLOSES.labels(code=str(code)).inc()
        self.handler.close(code, reason)

    def dispose(self) -> None:
        """The socket is gone: timers off, hub and topics left."""
        self.closed = True
        for timer in (self.timer, self.auth_timer, self.grace_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.auth_timer = self.grace_timer = None
        self.holding = None
        self.hub.leave(self)
