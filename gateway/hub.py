"""The per-process subscription manager: one Redis pub/sub connection, per-user channels.

A gateway process SUBSCRIBEs to `ws:user:<uid>` when the first socket of that user arrives
and UNSUBSCRIBEs when the last one leaves (topics `ws:topic:<t>` likewise, per `sub`), so a
process hears only the users it holds and adding processes adds no fan-out. Messages are
decoded and encoded once, then written to every matching socket. If the pub/sub connection
drops, the hub reconnects with backoff, resubscribes everything and has each socket catch up
from its user's stream (gateway/ws.py `Connection.resume`). It knows no domain: events are
opaque `{type, data, ts}`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

try:  # what the hiredis reader answers when its buffer holds no complete reply
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
except ImportError:  # pragma: no cover - redis-py without it: only False is checked
    _NOT_ENOUGH_DATA = False

from gateway import metrics
from pawhome.platform import codec, presence
from pawhome.platform.cache import UNAVAILABLE_ERRORS, make_redis

if TYPE_CHECKING:
    from gateway.ws import Connection

log = logging.getLogger("pawhome.hub")

# A subscriber has no read timeout (it waits for messages), so liveness is checked by PING.
_PING_EVERY = 10.0
_PONG_WITHIN = 5.0
_SUBSCRIBE_WAIT = 5.0
_CATCH_UP_CONCURRENCY = 50
_STORED_EVENTS = metrics.WS_EVENTS.labels(kind="stored")
_EPHEMERAL_EVENTS = metrics.WS_EVENTS.labels(kind="ephemeral")
_TOPIC_EVENTS = metrics.WS_EVENTS.labels(kind="topic")


class _HubPubSub(PubSub):
    """redis-py may reconnect a PubSub by itself (and resubscribe); the hub must know, since
    anything published meanwhile was missed and the sockets must catch up."""

    def __init__(self, hub: "Hub", *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hub = hub

    async def on_connect(self, connection) -> None:
        await super().on_connect(connection)
        self.hub._pubsub_connected()


class Hub:
    def __init__(self, resources: Any) -> None:
        self.resources = resources
        self.cache = resources.cache
        self.settings = resources.settings
        self.gateway_id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.users: dict[int, list[Connection]] = {}
        self.topics: dict[str, list[Connection]] = {}
        self._user_prefix = self.cache.key("ws", "user", "").encode()
        self._topic_prefix = self.cache.key("ws", "topic", "").encode()
        self._redis: aioredis.Redis | None = None
        self._pubsub: _HubPubSub | None = None
        self._confirm: dict[bytes, asyncio.Future] = {}
        self._connections = 0  # (re)connects of the pub/sub connection
        self._listener: asyncio.Task | None = None
        self._presence: asyncio.Task | None = None
        self._catch_up: asyncio.Task | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        self.ready = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._listener is not None:
            return
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(self._listen())
        self._presence = loop.create_task(self._refresh_presence())

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._listener, self._presence, self._catch_up):
            if task is not None:
                task.cancel()
        for task in (self._listener, self._presence, self._catch_up):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                    pass
        self._listener = self._presence = self._catch_up = None
        if self._tasks:  # unsubscribes and presence updates under way
            await asyncio.wait(list(self._tasks), timeout=2)
        if self.users:
            try:
                for uid in list(self.users):
                    await presence.mark_offline(self.cache, self.gateway_id, uid)
            except UNAVAILABLE_ERRORS:
                pass  # the entries age out by themselves
        await self._close_pubsub()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # -- membership --------------------------------------------------------------------------
    def user_channel(self, user_id: int) -> bytes:
        return self._user_prefix + str(int(user_id)).encode()

    def topic_channel(self, topic: str) -> bytes:
        return self._topic_prefix + topic.encode()

    async def join(self, conn: "Connection") -> None:
        """Hold `conn`; returns once its user's channel is subscribed (events flow)."""
        self.start()
        conns = self.users.get(conn.user_id)
        if conns is None:
            self.users[conn.user_id] = [conn]
            metrics.HUB_CHANNELS.inc()
            await presence.mark_online(self.cache, self.gateway_id, [conn.user_id])
            await self._subscribe(self.user_channel(conn.user_id))
        else:
            conns.append(conn)
            future = self._confirm.get(self.user_channel(conn.user_id))
            if future is not None:  # the first socket's SUBSCRIBE is still on its way
                await asyncio.wait_for(asyncio.shield(future), _SUBSCRIBE_WAIT)

    def leave(self, conn: "Connection") -> None:
        conns = self.users.get(conn.user_id)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self.users[conn.user_id]
                metrics.HUB_CHANNELS.dec()
                self._background(self._unsubscribe(self.user_channel(conn.user_id)))
                self._background(presence.mark_offline(self.cache, self.gateway_id,
                                                       conn.user_id))
        for topic in conn.topics or ():
            self.leave_topic(conn, topic)

    async def join_topic(self, conn: "Connection", topic: str) -> None:
        conns = self.topics.get(topic)
        if conns is None:
            self.topics[topic] = [conn]
            metrics.HUB_CHANNELS.inc()
            await self._subscribe(self.topic_channel(topic))
        elif conn not in conns:
            conns.append(conn)

    def leave_topic(self, conn: "Connection", topic: str) -> None:
        conns = self.topics.get(topic)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self.topics[topic]
                metrics.HUB_CHANNELS.dec()
                self._background(self._unsubscribe(self.topic_channel(topic)))

    # -- the pub/sub connection --------------------------------------------------------------
    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            # Dedicated: a subscribed connection cannot serve commands, and it must not have
            # the pool's socket timeout (it waits for messages indefinitely).
            self._redis = make_redis(self.settings, socket_timeout=None, max_connections=4)
        return self._redis

    def _new_pubsub(self) -> _HubPubSub:
        redis = self._client()
        return _HubPubSub(self, redis.connection_pool, ignore_subscribe_messages=False)

    async def _subscribe(self, channel: bytes) -> None:
        loop = asyncio.get_running_loop()
        future = self._confirm.get(channel)
        if future is None or future.done():
            future = self._confirm[channel] = loop.create_future()
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                await pubsub.subscribe(channel)
            except UNAVAILABLE_ERRORS:
                pass  # the listener reconnects and resubscribes every held channel
        await asyncio.wait_for(asyncio.shield(future), _SUBSCRIBE_WAIT)

    async def _unsubscribe(self, channel: bytes) -> None:
        if self._is_held(channel):
            return  # a socket arrived again meanwhile
        self._confirm.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                await pubsub.unsubscribe(channel)
            except UNAVAILABLE_ERRORS:
                pass

    def _is_held(self, channel: bytes) -> bool:
        if channel.startswith(self._user_prefix):
            return int(channel[len(self._user_prefix):]) in self.users
        return channel[len(self._topic_prefix):].decode() in self.topics

    def _all_channels(self) -> list[bytes]:
        return [self.user_channel(u) for u in self.users] + \
               [self.topic_channel(t) for t in self.topics]

    def _pubsub_connected(self) -> None:
        # Every held channel is being (re)subscribed: wait for fresh confirmations.
        loop = asyncio.get_running_loop()
        for channel in self._all_channels():
            future = self._confirm.get(channel)
            if future is None or future.done():
                self._confirm[channel] = loop.create_future()
        self._connections += 1
        if self._connections > 1:
            metrics.HUB_RECONNECTS.inc()
            log.warning("pub/sub reconnected; %d sockets catch up from their streams",
                        sum(len(c) for c in self.users.values()))
            self._start_catch_up()

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass

    async def _listen(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                pubsub = self._new_pubsub()
                await pubsub.connect()
                self._pubsub = pubsub
                channels = self._all_channels()
                if channels:
                    await pubsub.subscribe(*channels)
                self.ready.set()
                backoff = 0.1
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure: reconnect
                self.ready.clear()
                if not isinstance(error, UNAVAILABLE_ERRORS):
                    log.exception("pub/sub listener failed")
                else:
                    log.warning("pub/sub connection lost: %r", error)
                await self._close_pubsub()
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(self.settings.ws_pubsub_backoff_max, backoff * 2)

    async def _read(self, pubsub: _HubPubSub) -> None:
        last_ping = time.monotonic()
        pong_due: float | None = None
        while True:
            message = await pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is None:
                if pong_due is not None and now > pong_due:
                    raise ConnectionError("pub/sub PING unanswered")
                if now - last_ping >= _PING_EVERY and pong_due is None:
                    await pubsub.ping()
                    last_ping, pong_due = now, now + _PONG_WITHIN
                continue
            while message is not None:
                kind = message["type"]
                if kind == "message":
                    self._dispatch(message["channel"], message["data"])
                elif kind == "subscribe":
                    future = self._confirm.get(message["channel"])
                    if future is not None and not future.done():
                        future.set_result(None)
                elif kind == "pong":
                    pong_due = None
                message = await self._drain(pubsub)

    async def _drain(self, pubsub: _HubPubSub) -> dict | None:
        """Dispatch the messages already read and parsed into the connection's buffer
        without get_message's per-call machinery (timeouts, retries, a dict per message):
        under load most of them arrive in bursts. Returns the first reply that is not a
        published message (a subscribe confirmation, a pong) as get_message would, or None
        when the buffer is empty."""
        reader = getattr(getattr(pubsub.connection, "_parser", None), "_reader", None)
        if reader is None or not hasattr(reader, "gets"):  # not hiredis: nothing buffered
            return None
        while True:
            response = reader.gets()
            if response is False or response is _NOT_ENOUGH_DATA:
                return None
            if isinstance(response, list) and len(response) == 3 and \
                    response[0] == b"message":
                self._dispatch(response[1], response[2])
                continue
            if isinstance(response, BaseException):
                raise response
            return await pubsub.handle_message(response)

    def _dispatch(self, channel: bytes, raw: bytes) -> None:
        try:
            message = codec.loads(raw)
            kind = message["k"]
            if channel.startswith(self._user_prefix):
                conns = self.users.get(int(channel[len(self._user_prefix):]))
                if not conns:
                    return
                if kind == "ev":
                    ev = message["ev"]
                    epoch, eid = message["epoch"], int(message["eid"])
                    frame = codec.dumps({"type": ev["type"], "eid": eid, "epoch": epoch,
                                         "data": ev.get("data"), "ts": ev.get("ts")})
                    for conn in list(conns):
                        conn.deliver_event(epoch, eid, frame)
                    _STORED_EVENTS.inc(len(conns))
                elif kind == "eph":
                    ev = message["ev"]
                    frame = codec.dumps({"type": ev["type"], "data": ev.get("data"),
                                         "ts": ev.get("ts")})
                    for conn in list(conns):
                        conn.deliver(frame)
                    _EPHEMERAL_EVENTS.inc(len(conns))
                elif kind == "ctl":
                    for conn in list(conns):
                        conn.apply_control(message)
            elif channel.startswith(self._topic_prefix):
                topic = channel[len(self._topic_prefix):].decode()
                conns = self.topics.get(topic)
                if not conns or kind != "eph":
                    return
                ev = message["ev"]
                frame = codec.dumps({"type": ev["type"], "topic": topic,
                                     "data": ev.get("data"), "ts": ev.get("ts")})
                for conn in list(conns):
                    conn.deliver(frame)
                _TOPIC_EVENTS.inc(len(conns))
        except Exception:  # noqa: BLE001 - one bad message must not stop the listener
            log.exception("undeliverable pub/sub message on %r", channel[:80])

    # -- catch-up after a reconnect ----------------------------------------------------------
    def _start_catch_up(self) -> None:
        if self._catch_up is not None and not self._catch_up.done():
            self._catch_up.cancel()
        self._catch_up = asyncio.get_running_loop().create_task(self._catch_up_all())

    async def _catch_up_all(self) -> None:
        # Catch up only once the channels are subscribed again, or events published between
        # the read and the subscription would be missed.
        pending = [f for f in self._confirm.values() if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=_SUBSCRIBE_WAIT)
        conns = [c for cs in self.users.values() for c in cs]
        semaphore = asyncio.Semaphore(_CATCH_UP_CONCURRENCY)

        async def one(conn: "Connection") -> None:
            async with semaphore:
                await conn.catch_up()

        await asyncio.gather(*(one(c) for c in conns), return_exceptions=True)

    # -- presence ----------------------------------------------------------------------------
    async def _refresh_presence(self) -> None:
        """One pipeline per interval for every held user (not one write per socket)."""
        interval = max(1.0, min(self.settings.ws_heartbeat_seconds,
                                self.settings.ws_presence_ttl / 3))
        while True:
            await asyncio.sleep(interval)
            if not self.users:
                continue
            try:
                await presence.mark_online(self.cache, self.gateway_id, list(self.users))
            except UNAVAILABLE_ERRORS as error:
                log.warning("presence refresh failed: %r", error)

    # -- helpers -----------------------------------------------------------------------------
    def _background(self, coro) -> None:
        """Fire-and-forget with a strong reference (and errors logged, not lost)."""
        if self._stopping:
            coro.close()  # the process is going away; presence entries age out
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if isinstance(error, UNAVAILABLE_ERRORS):
                log.warning("hub background step failed: %r", error)
            else:
                log.error("hub background step failed", exc_info=error)
