"""Group commit of direct messages sent over the WebSocket: many sends, one transaction.

`queue_message` / `send_message` take the same arguments and give the same answers as
`pawhome.messaging.chat.send_message`, which stays the one-message path (REST, and the fallback
below). Sends that arrive while a batch is being written queue up and go into the next
transaction together, written by the process's `ChatWriter` on a connection it keeps while
it has work (raw aiomysql statements: no pool ping or reset, no ORM, per batch). A batch is
three round trips to MariaDB — the rules rows of every send plus the client_msg_ids already
stored; the seq UPDATE of all its conversations with `INSERT ... SELECT ... RETURNING` of the
messages under those row locks; the members UPDATE, ONE outbox row holding all its events
and COMMIT — then one Redis call appends every event to the users' streams and the acks go
out, while the next batch is already being written. A second lane (connection) starts only
when a backlog builds up behind a slow batch.

The semantics are those of the single path (docs/chat.md): seqs per conversation distinct
and gap-free, each sender's in the order it sent them (a sender's later sends wait for the
commit of the batch holding its earlier one; the row locks queue writers in any process); an
ack only names a committed message; a repeated client_msg_id gets the first message's ack; a
rule failure fails only its own send. Anything the batch does not decide itself — a first
message (the conversation is created), an attachment, a privacy rule that needs the
conversation's history, an unknown target — and anything unexpected (a duplicate key from a
concurrent copy, a deadlock, a lost connection, a timeout) goes through the single path,
one message at a time, in order per sender: correctness never depends on this module.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from models.base import utcnow
from pawhome.messaging import chat, subscribe_messages
from pawhome.platform import codec, events, outbox

log = logging.getLogger("pawhome.messaging.chat_writer")

_MEMBERS = "conversation_members"
# Queued sends that make a second lane worth it while one is writing.
_BACKLOG = 24
# How long idle lanes keep their connections before giving them back to the pool.
_LINGER_SECONDS = 2.0


@dataclass(slots=True)
class _Send:
    """One queued send and the future its caller awaits."""
    sender_id: int
    body: chat.MessageBody
    to_user_id: int | None
    conversation_id: int | None
    warnings: list[dict[str, str]]
    future: asyncio.Future
    # Filled while the batch is decided.
    target_id: int = 0
    recipient_id: int = 0
    seq: int = 0
    message_id: int = 0
    copies: list["_Send"] = field(default_factory=list)  # same client_msg_id, same batch


async def send_message(resources: Any, sender_id: int, body: chat.MessageBody, *,
                       to_user_id: int | None = None,
                       conversation_id: int | None = None) -> dict[str, Any]:
    """`chat.send_message` through the process's group commit."""
    return await queue_message(resources, sender_id, body, to_user_id=to_user_id,
                               conversation_id=conversation_id)


def queue_message(resources: Any, sender_id: int, body: chat.MessageBody, *,
                  to_user_id: int | None = None,
                  conversation_id: int | None = None) -> "asyncio.Future[dict[str, Any]]":
    """Queue a send; the future resolves to its ack (or its error) once it committed. The
    checks that need no database raise here. Sends of one sender are stored in the order
    they were queued (the socket's chat.send)."""
    warnings = chat.checked_send(resources.settings, sender_id, body, to_user_id,
                                 conversation_id)
    settings = resources.settings
    if settings.is_sqlite or settings.chat_group_commit_max <= 1:
        return asyncio.ensure_future(chat.send_message(
            resources, sender_id, body, to_user_id=to_user_id,
            conversation_id=conversation_id))
    return writer_for(resources).enqueue(sender_id, body, to_user_id, conversation_id,
                                         warnings)


_writers: "weakref.WeakKeyDictionary[Any, ChatWriter]" = weakref.WeakKeyDictionary()


async def close(resources: Any) -> None:
    """Resources.close: the process's writer finishes and returns its connections."""
    writer = _writers.pop(resources, None)
    if writer is not None:
        await writer.close()


def writer_for(resources: Any) -> "ChatWriter":
    writer = _writers.get(resources)
    if writer is None:
        writer = _writers[resources] = ChatWriter(resources)
        # Its connections go back before the pool closes.
        resources.on_close(lambda: close(resources))
    return writer


class _Fallback(Exception):
    """The batch could not be written as a whole: its sends go through the single path."""


class _Lane:
    """One connection of the writer, held while its lane has work (no pool pre-ping or
    reset per batch); each lane writes one batch at a time."""

    def __init__(self, db) -> None:
        self.db = db
        self.conn = None  # SQLAlchemy AsyncConnection
        self.raw = None  # its aiomysql connection

    async def connection(self):
        if self.raw is None:
            self.conn = await self.db.engine.connect()
            fairy = await self.conn.get_raw_connection()
            self.raw = fairy.driver_connection
        return self.raw

    async def execute(self, sql: str) -> list[tuple[int, list]]:
        """Run one or more `;`-separated statements; (rowcount, rows) per statement."""
        raw = await self.connection()
        async with raw.cursor() as cursor:
            await cursor.execute(sql)
            results = [(cursor.rowcount, list(await cursor.fetchall())
                        if cursor.description else [])]
            while await cursor.nextset():
                results.append((cursor.rowcount, list(await cursor.fetchall())
                                if cursor.description else []))
        return results

    async def rollback_or_drop(self) -> None:
        if self.raw is None:
            return
        try:
            await asyncio.wait_for(self.raw.rollback(), 5)
        except Exception:  # noqa: BLE001 - the connection is gone or confused: drop it
            await self.release(broken=True)

    async def release(self, broken: bool = False) -> None:
        """Give the connection back to the pool (idle), or drop it (broken)."""
        conn, self.conn, self.raw = self.conn, None, None
        if conn is None:
            return
        try:
            if broken:
                await conn.invalidate()
            await conn.close()
        except Exception as error:  # noqa: BLE001 - a dead connection may fail to close
            log.debug("closing a chat writer connection: %r", error)


class ChatWriter:
    """The queue and the writing lanes of one process (one per Resources)."""

    def __init__(self, resources: Any) -> None:
        self.resources = resources
        self.queue: list[_Send] = []
        self._lanes = 0  # lanes running
        self._tasks: set[asyncio.Task] = set()
        self._busy: dict[int, int] = {}  # sender -> sends in a batch being written
        # Lanes out of work, with their connections, for the next burst.
        self._parked: list[_Lane] = []
        self._linger: asyncio.TimerHandle | None = None
        self._delivered: list[int] = []  # outbox rows delivered, not yet deleted
        self._flushing: asyncio.Future | None = None  # the last batch's delivery
        self._privacy: dict[str, dict | None] = {}
        # Counters for tests and the benchmark: batches written, sends they carried, sends
        # that went through the single path.
        self.batches = 0
        self.batched = 0
        self.fallbacks = 0

    def enqueue(self, sender_id: int, body: chat.MessageBody, to_user_id: int | None,
                conversation_id: int | None,
                warnings: list[dict[str, str]]) -> "asyncio.Future[dict[str, Any]]":
        loop = asyncio.get_running_loop()
        item = _Send(sender_id, body, to_user_id, conversation_id, warnings,
                     loop.create_future())
        self.queue.append(item)
        if not self._lanes or (len(self.queue) >= _BACKLOG and
                               self._lanes < self.resources.settings.chat_group_commit_lanes):
            # An idle writer starts at once; while a batch is written the sends gather for
            # the next one, and another lane starts only for a backlog (small batches cost
            # MariaDB and this process nearly as much as big ones).
            self._lanes += 1
            lane = self._parked.pop() if self._parked else _Lane(self.resources.db)
            task = loop.create_task(self._lane(lane))
            self._tasks.add(task)  # a task nobody references may be collected mid-flight
            task.add_done_callback(self._tasks.discard)
        # A caller that goes away (socket closed) cancels only its own future: the batch
        # writes the message all the same, and skips the answer.
        return item.future

    async def close(self, timeout: float = 5.0) -> None:
        """Let the lanes finish what is queued and give their connections back."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        parked, self._parked = self._parked, []
        await _release_all(parked)

    # -- the writing lanes -----------------------------------------------------------------------
    async def _lane(self, lane: _Lane) -> None:
        limit = self.resources.settings.chat_group_commit_max
        batch: list[_Send] = []
        try:
            while True:
                # A lane with company leaves a short queue to the others (bigger batches).
                batch = self._take(limit) if self._lanes == 1 or \
                    len(self.queue) >= _BACKLOG else []
                if batch:
                    try:
                        await self._write_batch(lane, batch)
                    finally:
                        for item in batch:
                            self._busy[item.sender_id] -= 1
                            if not self._busy[item.sender_id]:
                                del self._busy[item.sender_id]
                    batch = []
                elif self._lanes == 1 and self._flushing is not None and \
                        not self._flushing.done():
                    await asyncio.wait([self._flushing])
                elif self._lanes == 1 and self._delivered:
                    await self._delete_delivered(lane)
                else:
                    self._lanes -= 1  # no await between the empty queue and this
                    break
        except BaseException as error:  # cancelled (the loop is ending) or a bug
            self._lanes -= 1
            stopped = error if isinstance(error, Exception) else \
                ConnectionError("the chat writer stopped")
            for item in batch + (self.queue if not self._lanes else []):
                _fail(item, stopped)  # nobody waits forever
            if not self._lanes:
                self.queue = []
            await lane.release(broken=True)
            raise
        # Keep the connection warm for the next burst: checking one out of the pool costs a
        # ping, giving it back a ROLLBACK. The last lane out gives them back after a pause.
        self._parked.append(lane)
        if not self._lanes:
            if self._linger is not None:
                self._linger.cancel()
            self._linger = asyncio.get_running_loop().call_later(_LINGER_SECONDS,
                                                                 self._release_parked)

    def _release_parked(self) -> None:
        self._linger = None
        if self._lanes or not self._parked:
            return
        parked, self._parked = self._parked, []
        task = asyncio.get_running_loop().create_task(_release_all(parked))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self, limit: int) -> list[_Send]:
        """The next batch: queued sends in order, but none of a sender whose earlier send
        another lane is still writing (it waits for that batch's commit, so each sender's
        seqs follow the order of their sends)."""
        if not self.queue:
            return []
        if not self._busy and len(self.queue) <= limit:
            batch, self.queue = self.queue, []
        else:
            blocked = set(self._busy)
            batch, rest = [], []
            for item in self.queue:
                if len(batch) < limit and item.sender_id not in blocked:
                    batch.append(item)
                else:
                    rest.append(item)
                    blocked.add(item.sender_id)  # its later sends stay behind it
            self.queue = rest
        for item in batch:
            self._busy[item.sender_id] = self._busy.get(item.sender_id, 0) + 1
        return batch

    async def _delete_delivered(self, lane: _Lane) -> None:
        ids, self._delivered = self._delivered, []
        try:
            await lane.execute(outbox.raw_delete_sql(ids) + ";COMMIT")
        except Exception as error:  # noqa: BLE001 - the relay redelivers them (a no-op)
            log.warning("deleting %s delivered outbox row(s) failed: %r", len(ids), error)
            await lane.release(broken=True)

    # -- one batch -------------------------------------------------------------------------------
    async def _write_batch(self, lane: _Lane, batch: list[_Send]) -> None:
        firsts: list[_Send] = []
        seen: dict[tuple[int, str], _Send] = {}
        for item in batch:
            key = (item.sender_id, item.body.client_msg_id)
            first = seen.get(key)
            if first is None:
                seen[key] = item
                firsts.append(item)
            else:
                first.copies.append(item)
        slow: list[_Send] = []
        try:
            async with asyncio.timeout(self.resources.settings.db_session_timeout or None):
                written, slow, claimed = await self._transaction(lane, firsts)
        except Exception as error:  # noqa: BLE001 - whatever it was, the single path decides
            if not isinstance(error, _Fallback):
                log.warning("chat batch of %s fell back to single sends: %r", len(firsts),
                            error)
            if isinstance(error, TimeoutError):  # cut off mid-statement: state unknown
                await lane.release(broken=True)
            else:
                await lane.rollback_or_drop()
            # Sends already refused by their own rules keep that answer.
            again = [item for item in firsts if not item.future.done()]
            if self._flushing is not None:  # earlier batches' events first
                await asyncio.wait([self._flushing])
            self.fallbacks += len(again)
            await self._single_sends(again)
            return
        self.batches += 1
        self.batched += len(written)
        # Committed. The events go to the streams (and then the acks out) while the next
        # batch is written; deliveries stay in batch order.
        self._flushing = asyncio.ensure_future(
            self._deliver(self._flushing, claimed, written))
        if slow:
            await self._flushing  # this batch's events before those of the single sends
            self.fallbacks += len(slow)
            await self._single_sends(slow)

    async def _deliver(self, previous: asyncio.Future | None, claimed: list[tuple],
                       written: list[tuple[_Send, dict[str, Any]]]) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            if claimed and await outbox.deliver_claimed(self.resources.cache, claimed):
                self._delivered.extend(dict.fromkeys(row[0] for row in claimed))
        finally:
            for item, ack in written:
                _resolve(item, ack)

    async def _single_sends(self, items: list[_Send]) -> None:
        """The single path for these sends: in order per sender, senders concurrently."""
        by_sender: dict[int, list[_Send]] = defaultdict(list)
        for item in items:
            by_sender[item.sender_id].append(item)

        async def in_order(chain: list[_Send]) -> None:
            for item in chain:
                try:
                    ack = await chat.send_message(
                        self.resources, item.sender_id, item.body, to_user_id=item.to_user_id,
                        conversation_id=item.conversation_id)
                except Exception as error:  # noqa: BLE001 - the sender's error frame
                    _fail(item, error)
                else:
                    _resolve(item, ack)

        await asyncio.gather(*(in_order(chain) for chain in by_sender.values()))

    async def _transaction(self, lane: _Lane, items: list[_Send]):
        """Decide and write the batch in one transaction. Returns (written [(item, ack)],
        sends for the single path, claimed outbox rows); raises to fall back entirely."""
        escape = (await lane.connection()).escape
        rules, existing = await self._rules(lane, items, escape)
        fast: list[_Send] = []
        slow: list[_Send] = []
        written: list[tuple[_Send, dict[str, Any]]] = []
        held_back: set[int] = set()  # senders with a send on the single path: order
        for item in items:
            if item.sender_id in held_back:
                slow.append(item)
                continue
            found = existing.get((item.sender_id, item.body.client_msg_id))
            if found is not None:  # a retry of a stored message: its first ack
                written.append((item, found))
                continue
            if item.body.kind != "text":  # attachments are checked by their services
                slow.append(item)
                held_back.add(item.sender_id)
                continue
            row = (rules.get(("c", item.conversation_id, item.sender_id))
                   if item.conversation_id is not None
                   else rules.get(("u", item.sender_id, item.to_user_id)))
            if row is None:  # no conversation yet, or not a member: the single path
                slow.append(item)
                held_back.add(item.sender_id)
                continue
            target_id, recipient_id, status, prefs, blocked, follows = row
            try:
                outright = chat.allowed_outright(status, blocked, self._prefs(prefs), follows)
            except Exception as error:  # noqa: BLE001 - this send's own refusal
                _fail(item, error)
                continue
            if not outright:  # "the recipient wrote here" needs a query: the single path
                slow.append(item)
                held_back.add(item.sender_id)
                continue
            item.target_id, item.recipient_id = int(target_id), int(recipient_id)
            fast.append(item)
        if not fast:
            await lane.execute("COMMIT")  # nothing written: end the read snapshot
            return written, slow, []
        claimed = await self._write(lane, escape, fast, written)
        return written, slow, claimed

    async def _rules(self, lane: _Lane, items: list[_Send], escape):
        """One round trip: the rules row of every (sender, target) and the stored messages
        of the batch's client_msg_ids (a retry returns the first ack)."""
        in_conversation = {(i.conversation_id, i.sender_id) for i in items
                           if i.conversation_id is not None and i.body.kind == "text"}
        to_user = {(i.sender_id, i.to_user_id) for i in items
                   if i.to_user_id is not None and i.body.kind == "text"}
        columns = (f"m.conversation_id, m.user_id, m.peer_id, u.status, s.privacy_prefs, "
                   "EXISTS(SELECT 1 FROM user_blocks b WHERE (b.user_id = m.user_id AND "
                   "b.blocked_id = m.peer_id) OR (b.user_id = m.peer_id AND "
                   "b.blocked_id = m.user_id)) AS blocked, "
                   "EXISTS(SELECT 1 FROM user_follows f WHERE f.follower_id = m.peer_id AND "
                   "f.followee_id = m.user_id) AS follows_sender")
        joins = ("LEFT JOIN users u ON u.id = m.peer_id "
                 "LEFT JOIN user_settings s ON s.user_id = m.peer_id")
        selects = []
        # Row-constructor IN lists: index ranges, and each row is matched against the list
        # by a sorted lookup (an OR of conjunctions is evaluated term by term per row).
        if in_conversation:
            pairs = ",".join(f"({int(c)},{int(u)})" for c, u in in_conversation)
            selects.append(f"SELECT 'c', {columns} FROM {_MEMBERS} m {joins} "
                           f"WHERE (m.conversation_id, m.user_id) IN ({pairs})")
        if to_user:
            triples = ",".join(f"({min(u, t)},{max(u, t)},{u})"
                               for u, t in ((int(u), int(t)) for u, t in to_user))
            selects.append(f"SELECT 'u', {columns} FROM conversations c JOIN {_MEMBERS} m "
                           f"ON m.conversation_id = c.id {joins} "
                           f"WHERE (c.user_a_id, c.user_b_id, m.user_id) IN ({triples})")
        dupes = ",".join(f"({int(i.sender_id)},{_id_literal(i.body.client_msg_id)})"
                         for i in items)
        statements = [f"SELECT sender_id, client_msg_id, id, conversation_id, seq, created_at "
                      f"FROM messages WHERE (sender_id, client_msg_id) IN ({dupes})"]
        if selects:
            statements.append(" UNION ALL ".join(selects))
        results = await lane.execute(";".join(statements))
        existing = {}
        for sender_id, cmid, mid, cid, seq, created_at in results[0][1]:
            existing[(int(sender_id), cmid)] = {
                "client_msg_id": cmid, "conversation_id": int(cid), "id": int(mid),
                "seq": int(seq), "created_at": chat.timestamp(created_at)}
        rules: dict[tuple, tuple] = {}
        if len(results) > 1:
            for kind, cid, uid, peer, status, prefs, blocked, follows in results[1][1]:
                row = (cid, peer, status, prefs, blocked, follows)
                if kind == "c":
                    rules[("c", int(cid), int(uid))] = row
                else:
                    rules[("u", int(uid), int(peer))] = row
        return rules, existing

    def _prefs(self, stored: str | None) -> dict | None:
        if not stored:
            return None
        if stored not in self._privacy:
            if len(self._privacy) > 10_000:
                self._privacy.clear()
            self._privacy[stored] = codec.loads(stored)
        return self._privacy[stored]

    async def _write(self, lane: _Lane, escape, fast: list[_Send],
                     written: list[tuple[_Send, dict[str, Any]]]) -> list[tuple]:
        """Seqs and messages, members and outbox rows, COMMIT: two round trips. Fills
        `written` with the acks and returns the claimed event rows to deliver."""
        now = utcnow()
        now_sql = f"'{now:%Y-%m-%d %H:%M:%S.%f}'"
        created_at = chat.timestamp(now)
        # WeChat subscribe messages for recipients still offline after the grace period
        # (subscribe_messages.schedule_push for the whole batch in one Redis call), asked
        # while the database works.
        pushes = asyncio.ensure_future(subscribe_messages.message_pushes_due(
            self.resources.cache, [(item.recipient_id, item.target_id) for item in fast]))
        try:
            claimed = await self._write_rows(lane, escape, fast, written, now, now_sql,
                                             created_at, pushes)
        finally:
            if not pushes.done():
                pushes.cancel()
        return claimed

    async def _write_rows(self, lane, escape, fast, written, now, now_sql, created_at, pushes):
        counts: dict[int, int] = {}
        for item in fast:
            counts[item.target_id] = counts.get(item.target_id, 0) + 1
        ids = ",".join(str(c) for c in counts)
        bump = " ".join(f"WHEN {c} THEN {n}" for c, n in counts.items())
        # The UPDATE locks the conversations (in id order, so two writers never deadlock on
        # them) and moves last_seq past the batch; each message takes its seq from the new
        # value under that lock, in arrival order (INSERT ... SELECT ... RETURNING).
        left = dict(counts)
        top: dict[tuple[int, int], int] = {}  # (conversation, sender) -> their last seq
        selects = []
        for item in fast:
            left[item.target_id] -= 1
            selects.append(
                f"SELECT id, last_seq - {left[item.target_id]}, {item.sender_id}, 'text', "
                f"{escape(codec.dumps_str({'text': item.body.text}))}, "
                f"{_id_literal(item.body.client_msg_id)}, {now_sql} FROM conversations "
                f"WHERE id = {item.target_id}")
        # A copy of a client_msg_id committed meanwhile (another process) fails here on the
        # unique key: the batch falls back and the single path returns the first ack.
        results = await lane.execute(
            f"UPDATE conversations SET last_seq = last_seq + CASE id {bump} END, "
            f"last_message_at = {now_sql} WHERE id IN ({ids});"
            "INSERT INTO messages (conversation_id, seq, sender_id, kind, content, "
            f"client_msg_id, created_at) {' UNION ALL '.join(selects)} "
            "RETURNING id, conversation_id, seq")
        inserted = results[1][1]
        if results[0][0] != len(counts) or len(inserted) != len(fast):
            raise _Fallback("a conversation vanished")
        for item, (message_id, conversation_id, seq) in zip(fast, inserted):
            if int(conversation_id) != item.target_id:
                raise _Fallback("messages came back out of order")
            item.seq = int(seq)
            item.message_id = int(message_id)
            top[(item.target_id, item.sender_id)] = item.seq
        # Both members: visible again, last_message_at; each sender's read mark moves up to
        # their last message in the batch.
        by_conversation: dict[int, list[str]] = {}
        for (c, u), seq in top.items():
            by_conversation.setdefault(c, []).append(f"WHEN {u} THEN {seq}")
        marks = " ".join(f"WHEN {c} THEN CASE user_id {' '.join(whens)} ELSE 0 END"
                         for c, whens in by_conversation.items())
        statements = [
            f"UPDATE {_MEMBERS} SET hidden = 0, last_message_at = {now_sql}, "
            f"updated_at = {now_sql}, "
            f"read_seq = GREATEST(read_seq, CASE conversation_id {marks} ELSE 0 END) "
            f"WHERE conversation_id IN ({ids})"]
        settings = self.resources.settings
        available_sql = f"'{now + _seconds(settings.outbox_claim_seconds):%Y-%m-%d %H:%M:%S.%f}'"
        ts = int(time.time() * 1000)
        event_rows: list[tuple[str, str, str]] = []
        for item in fast:
            data = {"id": item.message_id, "conversation_id": item.target_id, "seq": item.seq,
                    "sender_id": item.sender_id, "kind": "text",
                    "content": {"text": item.body.text},
                    "client_msg_id": item.body.client_msg_id, "created_at": created_at,
                    "recalled": False}
            data_json = codec.dumps_str(data)
            # To the recipient, and to the sender's other devices.
            event_rows.append(events.encode_user_event(item.recipient_id, "chat.message",
                                                       data_json, ts))
            event_rows.append(events.encode_user_event(item.sender_id, "chat.message",
                                                       data_json, ts))
            ack = {"client_msg_id": item.body.client_msg_id,
                   "conversation_id": item.target_id, "id": item.message_id, "seq": item.seq,
                   "created_at": created_at}
            if item.warnings:
                ack["warnings"] = item.warnings
            written.append((item, ack))
        # All the batch's events in ONE outbox row (outbox.events_row_payload): one row to
        # write and delete per batch instead of two per message.
        rows = [("'events'", "'ws:users'", escape(outbox.events_row_payload(event_rows)),
                 available_sql)]
        for name, payload, countdown in await pushes:
            rows.append(("'task'", escape(name), escape(codec.dumps_str(payload)),
                         f"'{now + _seconds(countdown):%Y-%m-%d %H:%M:%S.%f}'"))
        statements.append(outbox.raw_insert_sql(rows, now_sql))
        deleting, self._delivered = self._delivered, []
        if deleting:  # earlier batches' delivered rows go with this commit
            statements.append(outbox.raw_delete_sql(deleting))
        statements.append("COMMIT")
        try:
            results = await lane.execute(";".join(statements))
        except BaseException:
            self._delivered.extend(deleting)  # not deleted: a later commit takes them
            raise
        events_row_id = int(results[1][1][0][0])  # ids come back in row order
        return [(events_row_id, channel, event_id, payload)
                for channel, event_id, payload in event_rows]


async def _release_all(lanes: list[_Lane]) -> None:
    for lane in lanes:
        await lane.release()


def _id_literal(client_msg_id: str) -> str:
    """A client_msg_id as an SQL literal: MessageBody allows only A-Z a-z 0-9 . _ : -"""
    if not _SAFE_ID.match(client_msg_id):
        raise ValueError("client_msg_id outside its pattern")
    return f"'{client_msg_id}'"


_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=max(0.0, float(value)))


def _resolve(item: _Send, ack: dict[str, Any]) -> None:
    if not item.future.done():
        item.future.set_result(ack)
    if item.copies:
        copy_ack = {k: v for k, v in ack.items() if k != "warnings"}
        for copy in item.copies:
            if not copy.future.done():
                copy.future.set_result(dict(copy_ack))


def _fail(item: _Send, error: BaseException) -> None:
    for one in (item, *item.copies):
        if not one.future.done():
            one.future.set_exception(error)
