"""The per-process subscription manager: one Redis pub/sub connection, per-user channels.

A gateway process SUBSCRIBEs to `ws:user:<uid>` when the first socket of that user arrives
and UNSUBSCRIBEs when the last one leaves (topics `ws:topic:<t>` likewise, per `sub`), so a
process hears only the users it holds and adding processes adds no fan-out. Messages are
decoded and encoded once, then written to every matching socket. One task (`_sync`) writes
the subscription changes and presence entries: whatever sockets came and went since its last
turn goes out as one SUBSCRIBE, one UNSUBSCRIBE and one presence script call, so a storm of
thousands of connects or disconnects costs a few commands, not a pool connection each. If
the pub/sub connection drops, the hub reconnects with backoff, resubscribes everything and has
each socket catch up from its user's stream (gateway/ws_connection.py `Connection.resume`).
It knows no domain: events are opaque `{type, data, ts}`.
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

import contextlib

from gateway import metrics
from pawhome.platform import activity, codec, presence
from pawhome.platform.cache import UNAVAILABLE_ERRORS, make_redis

if TYPE_CHECKING:
    from gateway.ws_connection import Connection

log = logging.getLogger("pawhome.hub")

# A subscriber has no read timeout (it waits for messages), so liveness is checked by PING.
_PING_EVERY = 10.0
_PONG_WITHIN = 5.0
_SUBSCRIBE_WAIT = 5.0
_SETUP_WAIT = 15.0  # a join waits at most this for its turn's presence write
_CHANNELS_PER_COMMAND = 1000  # SUBSCRIBE / UNSUBSCRIBE arguments per command
_CATCH_UP_CONCURRENCY = 50
_STORED_EVENTS = metrics.WS_EVENTS.labels(kind="stored")
_EPHEMERAL_EVENTS = metrics.WS_EVENTS.labels(kind="ephemeral")
_TOPIC_EVENTS = metrics.WS_EVENTS.labels(kind="topic")


class _HubPubSub(PubSub):
    """redis-py may reconnect a PubSub by itself (and resubscribe); the hub must know, since
    anything published meanwhile was missed and the sockets must catch up."""

    def __init__(self, hub: Hub, *args: Any, **kwargs: Any) -> None:
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
        # Changes waiting for the next turn of `_sync`: channels whose subscription may have
        # to change, users who arrived (and the future their joins wait on) or left, and
        # whether every held user's presence entry is due for its refresh.
        self._dirty: set[bytes] = set()
        self._arrived: list[int] = []
        self._arrivals: asyncio.Future | None = None
        self._departed: set[int] = set()
        self._refresh_due = False
        self._sync_task: asyncio.Task | None = None
        self._connections = 0  # (re)connects of the pub/sub connection
        self._listener: asyncio.Task | None = None
        self._presence: asyncio.Task | None = None
        self._catch_up: asyncio.Task | None = None
        self._stopping = False
        self._withdrawn = False  # shutting down: no more socket counts reported
        self._tasks: set[asyncio.Task] = set()
        self.ready = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._listener is not None:
            return
        self._stopping = self._withdrawn = False
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(self._listen())
        self._presence = loop.create_task(self._refresh_presence())

    async def stop(self) -> None:
        self._stopping = True
        started = self._presence is not None
        for task in (self._listener, self._presence, self._catch_up):
            if task is not None:
                task.cancel()
        for task in (self._listener, self._presence, self._catch_up):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._listener = self._presence = self._catch_up = None
        sync, self._sync_task = self._sync_task, None
        if sync is not None and not sync.done():  # the changes under way go out
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(sync, 2)
        if self._tasks:  # replays under way
            await asyncio.wait(list(self._tasks), timeout=2)
        arrivals, self._arrivals = self._arrivals, None
        if arrivals is not None and not arrivals.done():
            arrivals.set_exception(ConnectionError("the gateway is stopping"))
            arrivals.exception()  # retrieved: a join may no longer be waiting for it
        gone = set(self.users) | self._departed
        if gone:
            with contextlib.suppress(*UNAVAILABLE_ERRORS):  # the entries age out by themselves
                await presence.update(self.cache, self.gateway_id, offline=list(gone))
        if started:
            with contextlib.suppress(*UNAVAILABLE_ERRORS):  # else it expires by itself
                await activity.forget_gateway(self.cache, self.gateway_id)
        await self._close_pubsub()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def generation(self) -> int:
        """How many times the pub/sub connection was (re)established: a socket whose hello
        was read in an earlier generation may have missed events since."""
        return self._connections

    # -- membership --------------------------------------------------------------------------
    def user_channel(self, user_id: int) -> bytes:
        return self._user_prefix + str(int(user_id)).encode()

    def topic_channel(self, topic: str) -> bytes:
        return self._topic_prefix + topic.encode()

    async def join(self, conn: Connection) -> None:
        """Hold `conn`; returns once its user's channel is subscribed (events flow) and the
        user is marked online. The users arriving meanwhile share the SUBSCRIBE and the
        presence write (see `_sync`)."""
        self.start()
        channel = self.user_channel(conn.user_id)
        conns = self.users.get(conn.user_id)
        if conns is None:
            self.users[conn.user_id] = [conn]
            metrics.HUB_CHANNELS.inc()
            confirmed: asyncio.Future | None = self._expect_confirmation(channel)
            self._dirty.add(channel)
            self._arrived.append(conn.user_id)
            written = self._arrivals
            if written is None:
                written = self._arrivals = asyncio.get_running_loop().create_future()
            self._kick()
            await asyncio.wait_for(asyncio.shield(written), _SETUP_WAIT)
        else:
            conns.append(conn)
            confirmed = self._confirm.get(channel)  # the first socket's may be on its way
        if confirmed is not None and not confirmed.done():
            await asyncio.wait_for(asyncio.shield(confirmed), _SUBSCRIBE_WAIT)

    def leave(self, conn: Connection) -> None:
        conns = self.users.get(conn.user_id)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self.users[conn.user_id]
                metrics.HUB_CHANNELS.dec()
                self._dirty.add(self.user_channel(conn.user_id))
                self._departed.add(conn.user_id)
                self._kick()
        for topic in conn.topics or ():
            self.leave_topic(conn, topic)

    async def join_topic(self, conn: Connection, topic: str) -> None:
        conns = self.topics.get(topic)
        if conns is None:
            self.topics[topic] = [conn]
            metrics.HUB_CHANNELS.inc()
            channel = self.topic_channel(topic)
            confirmed = self._expect_confirmation(channel)
            self._dirty.add(channel)
            self._kick()
            await asyncio.wait_for(asyncio.shield(confirmed), _SUBSCRIBE_WAIT)
        elif conn not in conns:
            conns.append(conn)

    def leave_topic(self, conn: Connection, topic: str) -> None:
        conns = self.topics.get(topic)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self.topics[topic]
                metrics.HUB_CHANNELS.dec()
                self._dirty.add(self.topic_channel(topic))
                self._kick()

    # -- writing subscriptions and presence --------------------------------------------------
    def _kick(self) -> None:
        """Make sure a `_sync` turn will take the changes just recorded."""
        if self._stopping:
            return  # stop() marks everyone offline; the pub/sub connection is closing
        task = self._sync_task
        if task is None or task.done():
            self._sync_task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        """The one writer of this process's subscriptions and presence entries.

        Each turn takes every change recorded since the previous turn began — the sockets
        that came and went, the periodic presence refresh — and sends them as at most one
        UNSUBSCRIBE, one SUBSCRIBE (per _CHANNELS_PER_COMMAND channels) and one presence
        script call (per thousand users); changes made meanwhile wait for the next turn.
        Being the only writer it also keeps them in order: an UNSUBSCRIBE never overtakes a
        later SUBSCRIBE of the same channel, nor a departure's presence removal a later
        arrival's entry. A failed presence write fails the joins waiting for it (they close
        with 1011) and keeps the departures for the next turn, after a backoff: every step
        completes once Redis answers again (and presence entries expire by themselves
        meanwhile). A subscription change that cannot be sent is left to the listener,
        which subscribes exactly the held channels when it reconnects."""
        backoff = 0.1
        while self._dirty or self._arrived or self._departed or self._refresh_due:
            channels, self._dirty = self._dirty, set()
            arrived, self._arrived = self._arrived, []
            written, self._arrivals = self._arrivals, None
            departed, self._departed = self._departed, set()
            refresh, self._refresh_due = self._refresh_due, False
            online = list(self.users) if refresh else \
                [uid for uid in dict.fromkeys(arrived) if uid in self.users]
            offline = [uid for uid in departed if uid not in self.users]
            try:
                await self._write_subscriptions(channels)
                await presence.update(self.cache, self.gateway_id, online, offline)
            except BaseException as error:
                if written is not None and not written.done():
                    written.set_exception(error if isinstance(error, Exception)
                                          else ConnectionError("the gateway is stopping"))
                if not isinstance(error, Exception):
                    raise  # cancelled: stop() writes the departures
                if isinstance(error, UNAVAILABLE_ERRORS):
                    log.warning("presence of %d arriving and %d leaving users not written; "
                                "retrying in %.1f s: %r", len(online), len(offline),
                                backoff, error)
                else:
                    log.exception("presence of %d arriving and %d leaving users not written",
                                  len(online), len(offline))
                self._departed.update(offline)
                self._refresh_due = self._refresh_due or refresh
                await asyncio.sleep(backoff)
                backoff = min(self.settings.ws_pubsub_backoff_max, backoff * 2)
                continue
            backoff = 0.1
            if written is not None and not written.done():
                written.set_result(None)

    async def _write_subscriptions(self, channels: set[bytes]) -> None:
        """Subscribe the `channels` that are held now, unsubscribe the others."""
        if not channels:
            return
        subscribe = [c for c in channels if self._is_held(c)]
        unsubscribe = [c for c in channels if not self._is_held(c)]
        for channel in unsubscribe:
            self._confirm.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is None:
            return  # the listener subscribes every held channel once it is connected
        try:
            # Bounded: the pub/sub connection has no socket timeout, and a wedged one must
            # not hold up every later change (the listener's PING finds it and reconnects).
            for start in range(0, len(unsubscribe), _CHANNELS_PER_COMMAND):
                await asyncio.wait_for(pubsub.unsubscribe(
                    *unsubscribe[start:start + _CHANNELS_PER_COMMAND]), _SUBSCRIBE_WAIT)
            for start in range(0, len(subscribe), _CHANNELS_PER_COMMAND):
                await asyncio.wait_for(pubsub.subscribe(
                    *subscribe[start:start + _CHANNELS_PER_COMMAND]), _SUBSCRIBE_WAIT)
        except (TimeoutError, *UNAVAILABLE_ERRORS) as error:
            # The listener reconnects and subscribes every held channel (and only those).
            log.warning("subscription change of %d channels not sent: %r", len(channels),
                        error)

    def _expect_confirmation(self, channel: bytes) -> asyncio.Future:
        """The future the channel's next subscribe confirmation resolves."""
        future = self._confirm.get(channel)
        if future is None or future.done():
            future = self._confirm[channel] = asyncio.get_running_loop().create_future()
        return future

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
            with contextlib.suppress(Exception):
                await pubsub.aclose()

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
            except Exception as error:
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
        except Exception:
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
        conns = self.connections()
        semaphore = asyncio.Semaphore(_CATCH_UP_CONCURRENCY)

        async def one(conn: Connection) -> None:
            async with semaphore:
                await conn.catch_up()

        await asyncio.gather(*(one(c) for c in conns), return_exceptions=True)

    # -- presence ----------------------------------------------------------------------------
    async def _refresh_presence(self) -> None:
        """Every held user's entry rewritten once per interval, by `_sync` (one script call
        per thousand users, not one write per socket)."""
        interval = self.presence_interval
        while True:
            await self.report_sockets(ttl_seconds=interval * 3)
            await asyncio.sleep(interval)
            if self.users:
                self._refresh_due = True
                self._kick()

    @property
    def presence_interval(self) -> float:
        """How often presence entries and the socket counts are refreshed (seconds)."""
        return max(1.0, min(self.settings.ws_heartbeat_seconds,
                            self.settings.ws_presence_ttl / 3))

    async def report_sockets(self, ttl_seconds: float = 75.0) -> None:
        """This gateway's socket and user counts, for the statistics overview (refreshed with
        presence and shown by the console's dashboard; an entry not refreshed expires) and
        the peers' rebalancing (gateway/rebalance.py). Not once the gateway withdrew."""
        if self._withdrawn:
            return
        with contextlib.suppress(*UNAVAILABLE_ERRORS):  # the next interval reports again
            await activity.report_gateway(
                self.cache, self.gateway_id, self.socket_count(), len(self.users), ttl_seconds)

    async def withdraw(self) -> None:
        """The gateway is shutting down: drop its socket counts at once, so its peers do not
        count sockets that are leaving it (they would shed them only to see them return)."""
        self._withdrawn = True
        with contextlib.suppress(TimeoutError, *UNAVAILABLE_ERRORS):  # else it expires
            await asyncio.wait_for(activity.forget_gateway(self.cache, self.gateway_id), 1.0)

    def socket_count(self) -> int:
        return sum(len(c) for c in self.users.values())

    def connections(self) -> list[Connection]:
        """Every socket this process holds."""
        return [conn for conns in self.users.values() for conn in conns]

    # -- helpers -----------------------------------------------------------------------------
    def _background(self, coro) -> None:
        """Fire-and-forget with a strong reference (and errors logged, not lost)."""
        if self._stopping:
            coro.close()  # the process is going away
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
