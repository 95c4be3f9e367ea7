"""The transactional outbox: the one way a change enqueues work or publishes an event.

Domain code calls `enqueue_task(session, "media.process", media_id)` or
`publish_event(session, channel, event)` inside the transaction that makes the change. The row
commits with the change or not at all. `OutboxRelay`, running in every gateway process (and as
the beat job `default.relay_outbox` as a safety net), hands rows to the broker or Redis and
deletes each row once accepted. A broker or Redis outage leaves rows in place, retried with
backoff, so work triggered by a committed change is delayed, never lost. Delivery is at least
once: tasks are idempotent (docs/tasks.md).

In embedded mode (no BROKER_URL) the relay runs tasks in-process on a thread pool, off the
event loop.

Fast path for events (`publish_events_after_commit` + `flush_after_commit`): the rows are still
written in the transaction (the durability guarantee), but claimed by the request for
OUTBOX_CLAIM_SECONDS; right after its commit the request appends them to the users' streams
itself (one Redis call) and deletes them (one statement, shared with concurrent requests), so
delivery waits for no relay pass. A request that dies before flushing leaves its rows, and the
relay delivers them once the claim runs out; a redelivered event is a no-op (event-id dedup in
pawhome/platform/streams.py). The chat group commit (pawhome/messaging/chat_writer.py) writes
a batch's events as ONE row of kind "events" (`claimed_batch_insert`), claimed and delivered
the same way.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    Select,
    String,
    Table,
    TextClause,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from models.base import utcnow
from models.platform import OutboxMessage
from pawhome.platform import channels, codec, streams
from pawhome.platform.metrics import TASKS_ENQUEUED

if TYPE_CHECKING:  # resources.py imports this module's neighbours; the type is all we need
    from pawhome.platform.cache import Cache
    from pawhome.platform.db import Database
    from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.platform.outbox")
OUTBOX = cast(Table, OutboxMessage.__table__)
ClaimedRow = tuple[int, str, str, str]  # (row id, channel, event id, event JSON)

# Attempts back off 1 s, 2 s, 4 s ... up to 5 min, and are never abandoned.
MAX_BACKOFF_SECONDS = 300
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="outbox")


def enqueue_task(session: AsyncSession, task_name: str, *args: Any, countdown: float = 0,
                 **kwargs: Any) -> OutboxMessage:
    """Add a task to the outbox of the session's transaction. Args must be JSON values."""
    codec.dumps([args, kwargs])  # fail now, in the request, if an argument is not JSON
    row = OutboxMessage(kind="task", name=task_name, payload=_task_payload(args, kwargs),
                        available_at=utcnow() + dt.timedelta(seconds=countdown))
    session.add(row)
    if countdown <= 0:  # a delayed task is not due yet: waking the relay would find nothing
        session.info["outbox_dirty"] = True
    return row


def _task_payload(args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A task row's payload (what the relay hands the dispatcher): one shape for both writers."""
    return {"args": list(args), "kwargs": kwargs}


def publish_event(session: AsyncSession, channel: str, event: dict[str, Any]) -> OutboxMessage:
    """Publish `event` on Redis channel `channel` (unprefixed) once the transaction commits."""
    row = OutboxMessage(kind="event", name=channel, payload=event)
    session.add(row)
    session.info["outbox_dirty"] = True
    return row


# -- the after-commit fast path for events ------------------------------------------------------

_CLAIMED = "outbox_claimed"


async def publish_events_after_commit(session: AsyncSession,
                                      items: list[tuple[str, dict[str, Any]]],
                                      claim_seconds: float) -> None:
    """Write event rows (`(channel, event)`, channel unprefixed) in one INSERT, claimed by the
    caller for `claim_seconds`: after its commit the caller delivers them with
    `await flush_after_commit(resources, take_claimed(session))`. Unflushed rows (the caller
    died, or Redis was down) are delivered by the relay once the claim runs out."""
    if not items:
        return
    now = utcnow()
    available = now + dt.timedelta(seconds=max(0.0, claim_seconds))
    encoded = [(channel, event["id"], codec.dumps_str(event)) for channel, event in items]
    bind = session.get_bind()
    if bind.dialect.insert_returning:
        params: dict[str, Any] = {"now": now, "available": available}
        for n, (channel, _event_id, payload) in enumerate(encoded):
            params[f"name{n}"], params[f"payload{n}"] = channel, payload
        ids = list((await session.execute(_claimed_insert_returning(len(encoded)),
                                          params)).scalars())
    else:
        ids = [cast(Any, await session.execute(_CLAIMED_INSERT, {
            "now": now, "available": available, "name0": channel, "payload0": payload,
        })).inserted_primary_key[0] for channel, _event_id, payload in encoded]
    claimed = session.info.setdefault(_CLAIMED, [])
    claimed.extend((int(row_id), channel, event_id, payload)
                   for row_id, (channel, event_id, payload) in zip(ids, encoded, strict=True))


_CLAIMED_INSERT = insert(OUTBOX).values(
    kind="event", name=bindparam("name0"), payload=bindparam("payload0", type_=String),
    created_at=bindparam("now"), available_at=bindparam("available"), attempts=0,
    last_error="")
_claimed_inserts: dict[int, Any] = {}


def _claimed_insert_returning(count: int) -> TextClause:
    """One INSERT of `count` rows RETURNING their ids (MariaDB >= 10.5, SQLite >= 3.35), as
    text so SQLAlchemy caches its compiled form (a multi-VALUES insert() is never cached).
    The payload goes in as the JSON text already made: the column's own serializer would
    encode it a second time, and the flush reuses the same text for Redis."""
    statement = _claimed_inserts.get(count)
    if statement is None:
        table = OUTBOX
        rows = ", ".join(f"('event', :name{n}, :payload{n}, :now, :available, 0, '')"
                         for n in range(count))
        statement = text(
            f"INSERT INTO {table.name} (kind, name, payload, created_at, available_at, "
            f"attempts, last_error) VALUES {rows} RETURNING id"
        ).bindparams(bindparam("now", type_=table.c.created_at.type),
                     bindparam("available", type_=table.c.available_at.type))
        _claimed_inserts[count] = statement
    return statement


# -- claimed rows written on a raw connection (the chat group commit) ---------------------------
#
# The chat group commit (pawhome/messaging/chat_writer.py) writes a batch of messages on a raw
# DB-API connection (aiomysql, no SQLAlchemy session), in one multi-statement round trip. Its
# outbox rows commit in that transaction: `claimed_batch_insert` is the SQL of ONE row of kind
# "events" holding every event of the batch (claimed by the writer, like the rows of
# `publish_events_after_commit`) and of one row per task. After the commit the writer hands
# `claimed_batch_rows(...)` to `deliver_claimed`, then deletes the delivered rows with
# `delete_rows_sql` inside a later transaction of its own. Rows it never delivers (it died, or
# Redis was down) are the relay's once the claim runs out: nothing committed is lost.

TaskSpec = tuple[str, list[Any], dict[str, Any], float]  # (task name, args, kwargs, countdown)


def claimed_batch_insert(events: list[tuple[str, str, str]], tasks: list[TaskSpec], *,
                         now: dt.datetime, claim_seconds: float,
                         literal: Callable[[Any], str]) -> str:
    """SQL text of one INSERT ... RETURNING id: an outbox row of kind "events" carrying
    `events` — `(channel, event id, event JSON)` each, as `events.encode_user_event` makes
    them — that the relay leaves alone for `claim_seconds`, then one row per task (as
    `enqueue_task` writes it, due after its countdown). The ids come back in that order.
    `literal` renders a value as an SQL literal for the connection (aiomysql's
    `Connection.escape`); names and times go through it, the payloads are written as hex
    literals of their UTF-8 bytes (MariaDB/MySQL `_utf8mb4 X'...'`): the same text, without
    escaping kilobytes of JSON a character at a time."""
    rows: list[tuple[str, str, str, dt.datetime]] = []
    if events:
        rows.append(("events", "ws:users", _events_row_payload(events),
                     now + dt.timedelta(seconds=max(0.0, claim_seconds))))
    for name, args, kwargs, countdown in tasks:
        rows.append(("task", name, codec.dumps_str(_task_payload(args, kwargs)),
                     now + dt.timedelta(seconds=max(0.0, float(countdown)))))
    if not rows:
        raise ValueError("claimed_batch_insert needs at least one event or task")
    created = literal(now)
    values = ",".join(f"({literal(kind)},{literal(name)},{_hex_text(payload)},{created},"
                      f"{literal(available)},0,'')" for kind, name, payload, available in rows)
    return (f"INSERT INTO {OUTBOX.name} (kind, name, payload, created_at, "
            f"available_at, attempts, last_error) VALUES {values} RETURNING id")


def _hex_text(text: str) -> str:
    """A MySQL/MariaDB literal of this text in utf8mb4 that needs no escaping."""
    return f"_utf8mb4 X'{text.encode().hex()}'"


def claimed_batch_rows(events: list[tuple[str, str, str]],
                       ids: Sequence[Any]) -> list[ClaimedRow]:
    """The claimed rows of a committed `claimed_batch_insert` with these `events`, from the
    ids its RETURNING gave (the events row's comes first): what `deliver_claimed` takes."""
    if not events:
        return []
    row_id = int(ids[0])
    return [(row_id, channel, event_id, payload) for channel, event_id, payload in events]


def delete_rows_sql(ids: Iterable[int]) -> str:
    """SQL text deleting delivered outbox rows by id (for a raw connection's transaction)."""
    return (f"DELETE FROM {OUTBOX.name} WHERE id IN "
            f"({','.join(str(int(i)) for i in ids)})")


def _events_row_payload(events: list[tuple[str, str, str]]) -> str:
    """The JSON text of ONE outbox row carrying several events (kind "events"). `events` are
    `(channel, event id, event JSON)`; the relay delivers them all, in order, with one Redis
    call (`deliver_event_rows`), exactly as it would the same events in rows of their own."""
    return '{"events":[' + ",".join(f'["{channel}",{payload}]'
                                    for channel, _event_id, payload in events) + "]}"


def take_claimed(session: AsyncSession) -> list[ClaimedRow]:
    """The rows this session's transaction claimed (call it inside the unit of work and hand
    the result to `flush_after_commit` once the transaction committed)."""
    claimed: list[ClaimedRow] = session.info.pop(_CLAIMED, [])
    return claimed


async def deliver_claimed(cache: Cache, rows: list[ClaimedRow]) -> bool:
    """Append claimed event rows of a COMMITTED transaction to the users' streams (one Redis
    call for all of them). False, never an exception, when Redis failed: the rows stay and
    the relay delivers them after the claim (appends dedup by event id)."""
    stream_items: list[tuple[int, dict[str, Any] | tuple[str, str]]] = []
    try:
        for _row_id, channel, event_id, payload in rows:
            user_id = channels.user_id_of_channel(channel)
            if user_id is not None:
                stream_items.append((user_id, (event_id, payload)))
            else:
                await cache.redis.publish(cache.key(channel), '{"k":"eph","ev":' + payload + "}")
        await streams.append_many(cache, stream_items)
    except Exception as error:
        log.warning("after-commit delivery of %s event(s) failed, the relay will retry: %r",
                    len(rows), error)
        return False
    return True


async def flush_after_commit(resources: Resources, claimed: AsyncSession | list[ClaimedRow],
                             wait_for_delete: bool = False) -> int:
    """Deliver claimed event rows of a COMMITTED transaction now and delete them; returns how
    many were delivered. Never raises for Redis or database trouble: the rows then stay and
    the relay delivers them after the claim (delivery is at least once, appends dedup)."""
    rows = take_claimed(claimed) if isinstance(claimed, AsyncSession) else list(claimed)
    if not rows:
        return 0
    if not await deliver_claimed(resources.cache, rows):
        return 0
    # The rows are only bookkeeping now: delete them in the background (batched with other
    # requests'), so neither the ack nor the next frame waits for that commit. If this
    # process dies first, the relay redelivers them after the claim: a no-op append.
    deleting = _deleter_for(resources.db).delete([row[0] for row in rows])
    if wait_for_delete:
        await deleting
    else:
        _background(deleting)
    return len(rows)


_background_tasks: set[asyncio.Task[None]] = set()


def _background(coroutine: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _background_tasks.add(task)  # a task nobody references may be collected mid-flight
    task.add_done_callback(_background_tasks.discard)


class _GroupDeleter:
    """Deletes delivered rows for many requests per statement: while one DELETE runs, the ids
    of the requests finishing meanwhile gather for the next (no timer, no added wait when
    idle)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._ids: list[int] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None

    async def delete(self, ids: list[int]) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._ids.extend(ids)
        self._waiters.append(waiter)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.shield(waiter)

    async def _run(self) -> None:
        while self._ids:
            ids, waiters = self._ids, self._waiters
            self._ids, self._waiters = [], []
            try:
                # Autocommit: one round trip, and no transaction is ever left open holding
                # row locks if this task is cut off (a process or event loop ending).
                async with self.db.session() as session:
                    await session.connection(
                        execution_options={"isolation_level": "AUTOCOMMIT"})
                    await session.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(ids)))
            except Exception as error:  # rows stay: the relay redelivers them (a no-op)
                log.warning("deleting %s delivered outbox row(s) failed: %r", len(ids), error)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


_deleters: weakref.WeakKeyDictionary[Database, _GroupDeleter] = weakref.WeakKeyDictionary()


def _deleter_for(db: Database) -> _GroupDeleter:
    deleter = _deleters.get(db)
    if deleter is None:
        deleter = _deleters[db] = _GroupDeleter(db)
    return deleter


# Relays running in this process; a commit that wrote outbox rows wakes them at once, so
# work starts within milliseconds instead of at the next poll.
_running_relays: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()


# Set when a commit in this process wrote outbox rows. A process that runs no relay of its
# own (a Celery worker) relays them right after the task (workers/celery_app.py), so work a
# task triggers does not wait for a gateway's next poll.
_committed_rows = threading.Event()


def take_committed_rows_flag() -> bool:
    """True (once) if outbox rows were committed in this process since the last call."""
    if _committed_rows.is_set():
        _committed_rows.clear()
        return True
    return False


@sa_event.listens_for(Session, "after_commit")
def _wake_relays_after_commit(session: Session) -> None:
    if session.info.pop("outbox_dirty", False):
        _committed_rows.set()
        for relay in list(_running_relays):
            relay.wake_threadsafe()


@sa_event.listens_for(Session, "after_rollback")
def _forget_rolled_back_rows(session: Session) -> None:
    session.info.pop("outbox_dirty", None)


async def deliver_event(cache: Cache, channel: str, event: dict[str, Any]) -> None:
    """An event row: a user's event goes into their stream (which publishes it); anything
    else is published as an ephemeral message on its channel."""
    user_id = channels.user_id_of_channel(channel)
    if user_id is not None:
        await streams.append(cache, user_id, event)
    else:
        await cache.redis.publish(cache.key(channel), codec.dumps({"k": "eph", "ev": event}))


async def deliver_event_rows(cache: Cache, items: list[list[Any]]) -> None:
    """The events of an "events" row, `[channel, event]` each, in order: users' events into
    their streams (one Redis call), anything else published as ephemeral."""
    stored = []
    for channel, event in items:
        user_id = channels.user_id_of_channel(channel)
        if user_id is not None:
            stored.append((user_id, event))
        else:
            await cache.redis.publish(cache.key(channel), codec.dumps({"k": "eph", "ev": event}))
    await streams.append_many(cache, stored)


class OutboxRelay:
    """Moves committed outbox rows to the broker (tasks) or Redis pub/sub (events)."""

    def __init__(self, resources: Resources, poll_seconds: float | None = None) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.poll_seconds = poll_seconds or self.settings.outbox_poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run())
            _running_relays.add(self)

    def wake(self) -> None:
        """Relay now rather than at the next poll (called after a commit that wrote rows)."""
        self._wake.set()

    def wake_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        _running_relays.discard(self)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                moved = await self.relay_once()
            except Exception as error:  # database down: keep trying, quietly
                log.warning("outbox relay pass failed: %r", error)
                moved = 0
            if moved and not self._stopping:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    # -- one pass --------------------------------------------------------------------------
    async def relay_once(self) -> int:
        """Hand due rows over; returns how many were delivered."""
        if not self.settings.broker_url:
            return await self._run_due_rows_inprocess()
        for attempt in range(3):
            try:
                return await self._relay_locked_rows()
            except OperationalError as error:
                # InnoDB rolled the pass back (a deadlock with another relay's DELETE): its
                # rows are still there, delivered at least once; take them again.
                if getattr(error.orig, "args", (None,))[0] != 1213 or attempt == 2:
                    raise
        return 0

    async def _relay_locked_rows(self) -> int:
        delivered = 0
        # Rows stay locked (SKIP LOCKED lets other relays take other rows) while each is
        # published; a publish fails fast when the broker is down, so the lock is brief.
        # READ COMMITTED: no gap locks, so requests inserting outbox rows never deadlock
        # with the relay.
        async with self.resources.db.session(read_committed=True) as session, session.begin():
            rows = (await session.execute(self._due_query(lock=True))).scalars().all()
            done_ids = []
            for row in rows:
                try:
                    await self._deliver(row)
                except Exception as error:
                    self._postpone(row, error)
                    break  # the broker is likely down: leave the rest for the next pass
                done_ids.append(row.id)
            if done_ids:
                await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(done_ids)))
                delivered = len(done_ids)
        return delivered

    def _due_query(self, lock: bool) -> Select[OutboxMessage]:
        query = (select(OutboxMessage).where(OutboxMessage.available_at <= utcnow())
                 .order_by(OutboxMessage.id).limit(self.settings.outbox_batch_size))
        if lock and not self.settings.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        return query

    def _postpone(self, row: OutboxMessage, error: BaseException) -> None:
        row.attempts += 1
        backoff = min(MAX_BACKOFF_SECONDS, 2 ** min(row.attempts - 1, 16))
        row.available_at = utcnow() + dt.timedelta(seconds=backoff)
        row.last_error = repr(error)[:500]
        log.warning("outbox row %s (%s) not delivered, attempt %s: %r",
                    row.id, row.name, row.attempts, error)

    async def _run_due_rows_inprocess(self) -> int:
        """Embedded mode: run each due task here, outside any database session (a task may
        take longer than a session may stay open), and only then delete its row."""
        async with self.resources.db.session() as session:
            rows = (await session.execute(self._due_query(lock=False))).scalars().all()
        delivered = 0
        for row in rows:
            try:
                await self._deliver(row)
            except Exception as error:
                async with self.resources.db.session() as session, session.begin():
                    self._postpone(await session.merge(row), error)
                break
            async with self.resources.db.session() as session, session.begin():
                await session.execute(delete(OutboxMessage).where(OutboxMessage.id == row.id))
            delivered += 1
        return delivered

    async def _deliver(self, row: OutboxMessage) -> None:
        loop = asyncio.get_running_loop()
        if row.kind == "event":
            await deliver_event(self.resources.cache, row.name, row.payload)
            return
        if row.kind == "events":  # several events in one row (claimed_batch_insert)
            await deliver_event_rows(self.resources.cache, row.payload["events"])
            return
        args, kwargs = row.payload.get("args", []), row.payload.get("kwargs", {})
        if not self.settings.broker_url:
            # Embedded: run it now on a worker thread, off the event loop.
            await loop.run_in_executor(_executor, self.resources.dispatcher.run, row.name,
                                       args, kwargs)
            return
        await loop.run_in_executor(_executor, self.resources.dispatcher.send, self.settings,
                                   row.name, args, kwargs)
        TASKS_ENQUEUED.labels(row.name).inc()

    async def pending(self) -> int:
        async with self.resources.db.session() as session:
            return int((await session.execute(select(func.count(OutboxMessage.id)))).scalar_one())

    async def check_broker(self) -> None:
        """Raise if the broker cannot be reached (used by /readyz)."""
        if not self.settings.broker_url:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(_executor, self.resources.dispatcher.check_broker,
                                   self.settings)
