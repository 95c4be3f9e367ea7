"""Group commit of direct messages sent over the WebSocket: many sends, one transaction.

`queue_message` / `send_message` take the same arguments and give the same answers as
`pawhome.messaging.chat.send_message`, which stays the one-message path (REST, and the fallback
below). Sends that arrive while a batch is being written queue up and go into the next
transaction together, written by the process's `ChatWriter` on a connection it keeps while
it has work. A batch is three round trips to MariaDB (their SQL is in chat_writer_sql.py) —
the facts the rules need for every send plus the client_msg_ids already stored; the seq
UPDATE of all its conversations with `INSERT ... SELECT ... RETURNING` of the messages under
those row locks; the members UPDATE, ONE outbox row holding all its events and COMMIT — then
one Redis call appends every event to the users' streams and the acks go out, while the next
batch is already being written. A second lane (connection) starts only when a backlog builds
up behind a slow batch. Under sustained traffic a lane that finds only a few sends queued
waits a few milliseconds for more (CHAT_GROUP_COMMIT_WAIT_MS): at moderate rates that halves
the transactions, and with them most of the CPU a message costs here and in MariaDB.

The rules are chat_rules.py's, as on the single path: the same facts statement (rendered for
the raw connection) and the same decision on its rows.

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
import logging
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from models.base import utcnow
from pawhome.messaging import chat, chat_rules, chat_writer_sql, subscribe_messages
from pawhome.messaging.chat_rules import MessageBody, Target
from pawhome.messaging.chat_views import ack_of, new_message_view, timestamp
from pawhome.messaging.chat_writer_sql import Lane
from pawhome.platform import codec, events, outbox
from pawhome.platform.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.messaging.chat_writer")

# Queued sends that make a second lane worth it while one is writing.
_BACKLOG = 24
# How long idle lanes keep their connections before giving them back to the pool.
_LINGER_SECONDS = 2.0


@dataclass(slots=True)
class _Send:
    """One queued send and the future its caller awaits."""
    sender_id: int
    body: MessageBody
    to_user_id: int | None
    conversation_id: int | None
    warnings: list[dict[str, str]]
    future: asyncio.Future[dict[str, Any]]
    # Filled while the batch is decided.
    target_id: int = 0
    recipient_id: int = 0
    seq: int = 0
    message_id: int = 0
    copies: list[_Send] = field(default_factory=list)  # same client_msg_id, same batch


async def send_message(resources: Resources, sender_id: int, body: MessageBody, *,
                       to_user_id: int | None = None,
                       conversation_id: int | None = None) -> dict[str, Any]:
    """`chat.send_message` through the process's group commit."""
    return await queue_message(resources, sender_id, body, to_user_id=to_user_id,
                               conversation_id=conversation_id)


def queue_message(resources: Resources, sender_id: int, body: MessageBody, *,
                  to_user_id: int | None = None,
                  conversation_id: int | None = None) -> asyncio.Future[dict[str, Any]]:
    """Queue a send; the future resolves to its ack (or its error) once it committed. The
    checks that need no database raise here. Sends of one sender are stored in the order
    they were queued (the socket's chat.send)."""
    warnings = chat_rules.checked_send(resources.settings, sender_id, body, to_user_id,
                                       conversation_id)
    settings = resources.settings
    if settings.is_sqlite or settings.chat_group_commit_max <= 1:
        return asyncio.ensure_future(chat.send_message(
            resources, sender_id, body, to_user_id=to_user_id,
            conversation_id=conversation_id))
    return writer_for(resources).enqueue(sender_id, body, to_user_id, conversation_id,
                                         warnings)


_writers: weakref.WeakKeyDictionary[Resources, ChatWriter] = weakref.WeakKeyDictionary()


async def close(resources: Resources) -> None:
    """Resources.close: the process's writer finishes and returns its connections."""
    writer = _writers.pop(resources, None)
    if writer is not None:
        await writer.close()


def writer_for(resources: Resources) -> ChatWriter:
    writer = _writers.get(resources)
    if writer is None:
        writer = _writers[resources] = ChatWriter(resources)
        # Its connections go back before the pool closes.
        resources.on_close(lambda: close(resources))
    return writer


class _Fallback(Exception):
    """The batch could not be written as a whole: its sends go through the single path."""


class ChatWriter:
    """The queue and the writing lanes of one process (one per Resources)."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.queue: list[_Send] = []
        self._lanes = 0  # lanes running
        self._tasks: set[asyncio.Task] = set()
        self._busy: dict[int, int] = {}  # sender -> sends in a batch being written
        # Lanes out of work, with their connections, for the next burst.
        self._parked: list[Lane] = []
        self._linger: asyncio.TimerHandle | None = None
        self._delivered: list[int] = []  # outbox rows delivered, not yet deleted
        self._flushing: asyncio.Future[None] | None = None  # the last batch's delivery
        # Counters for tests and the benchmark: batches written, sends they carried, sends
        # that went through the single path.
        self.batches = 0
        self.batched = 0
        self.fallbacks = 0
        self._last_batch_at = float("-inf")  # when the last batch committed (monotonic)

    def enqueue(self, sender_id: int, body: MessageBody, to_user_id: int | None,
                conversation_id: int | None,
                warnings: list[dict[str, str]]) -> asyncio.Future[dict[str, Any]]:
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
            lane = self._parked.pop() if self._parked else Lane(self.resources.db)
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
    async def _lane(self, lane: Lane) -> None:
        settings = self.resources.settings
        limit = settings.chat_group_commit_max
        batch: list[_Send] = []
        try:
            while True:
                if self._gathering(settings):
                    await asyncio.sleep(settings.chat_group_commit_wait_ms / 1000)
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

    def _gathering(self, settings: Settings) -> bool:
        """Whether the lane should wait for more sends before it writes: only one lane is
        running, few sends are queued, and a batch was written a moment ago (sustained
        traffic, where the wait buys bigger batches; after a quiet spell a send goes at
        once)."""
        return (settings.chat_group_commit_wait_ms > 0 and self._lanes == 1
                and 0 < len(self.queue) < settings.chat_group_commit_gather
                and time.monotonic() - self._last_batch_at
                < settings.chat_group_commit_busy_seconds)

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

    async def _delete_delivered(self, lane: Lane) -> None:
        ids, self._delivered = self._delivered, []
        try:
            await lane.execute(outbox.delete_rows_sql(ids) + ";COMMIT")
        except Exception as error:
            log.warning("deleting %s delivered outbox row(s) failed: %r", len(ids), error)
            await lane.release(broken=True)

    # -- one batch -------------------------------------------------------------------------------
    async def _write_batch(self, lane: Lane, batch: list[_Send]) -> None:
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
        except Exception as error:
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
        self._last_batch_at = time.monotonic()
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
                except Exception as error:
                    _fail(item, error)
                else:
                    _resolve(item, ack)

        await asyncio.gather(*(in_order(chain) for chain in by_sender.values()))

    async def _transaction(self, lane: Lane, items: list[_Send]) -> tuple[
            list[tuple[_Send, dict[str, Any]]], list[_Send], list[outbox.ClaimedRow]]:
        """Decide and write the batch in one transaction. Returns (written [(item, ack)],
        sends for the single path, claimed outbox rows); raises to fall back entirely."""
        literal = (await lane.connection()).escape
        facts, existing = await self._rules(lane, items, literal)
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
            known = facts.get(_target(item)) if item.body.kind == "text" else None
            # Attachments (checked by their services), a first message (the conversation is
            # created) and an unknown target: the single path.
            if known is None or known.conversation_id is None:
                slow.append(item)
                held_back.add(item.sender_id)
                continue
            try:
                outright = chat_rules.decide(known)
            except Exception as error:
                _fail(item, error)
                continue
            if not outright:  # "the recipient wrote here" needs a query: the single path
                slow.append(item)
                held_back.add(item.sender_id)
                continue
            item.target_id, item.recipient_id = known.conversation_id, known.recipient_id
            fast.append(item)
        if not fast:
            await lane.execute("COMMIT")  # nothing written: end the read snapshot
            return written, slow, []
        claimed = await self._write(lane, literal, fast, written)
        return written, slow, claimed

    async def _rules(self, lane: Lane, items: list[_Send], escape: chat_writer_sql.Literal
                     ) -> tuple[dict[Target, chat_rules.Facts], dict[tuple[int, str], Any]]:
        """One round trip: the rules' facts of every text send and the stored messages of
        the batch's client_msg_ids (a retry returns the first ack)."""
        results = await lane.execute(chat_writer_sql.facts_and_stored_sql(
            lane.dialect, [_target(item) for item in items if item.body.kind == "text"],
            [(item.sender_id, item.body.client_msg_id) for item in items], escape))
        existing = chat.stored_acks_of_rows(results[0][1])
        facts = chat_rules.facts_of_rows(results[1][1]) if len(results) > 1 else {}
        return facts, existing

    async def _write(self, lane: Lane, literal: chat_writer_sql.Literal, fast: list[_Send],
                     written: list[tuple[_Send, dict[str, Any]]]) -> list[outbox.ClaimedRow]:
        """Seqs and messages, members and outbox rows, COMMIT: two round trips. Fills
        `written` with the acks and returns the claimed event rows to deliver."""
        # WeChat subscribe messages for recipients still offline after the grace period
        # (subscribe_messages.schedule_push for the whole batch in one Redis call), asked
        # while the database works.
        pushes = asyncio.ensure_future(subscribe_messages.message_pushes_due(
            self.resources.cache, [(item.recipient_id, item.target_id) for item in fast]))
        try:
            claimed = await self._write_rows(lane, literal, fast, written, pushes)
        finally:
            if not pushes.done():
                pushes.cancel()
        return claimed

    async def _write_rows(self, lane: Lane, literal: chat_writer_sql.Literal,
                          fast: list[_Send], written: list[tuple[_Send, dict[str, Any]]],
                          pushes: asyncio.Future[list[outbox.TaskSpec]]
                          ) -> list[outbox.ClaimedRow]:
        now = utcnow()
        created_at = timestamp(now)
        sql, conversations = chat_writer_sql.messages_sql(
            [(item.target_id, item.sender_id, item.body.text or "", item.body.client_msg_id)
             for item in fast], now, literal)
        results = await lane.execute(sql)
        inserted = results[1][1]
        if results[0][0] != conversations or len(inserted) != len(fast):
            raise _Fallback("a conversation vanished")
        last_seqs: dict[tuple[int, int], int] = {}  # (conversation, sender) -> their last seq
        for item, (message_id, conversation_id, seq) in zip(fast, inserted, strict=True):
            if int(conversation_id) != item.target_id:
                raise _Fallback("messages came back out of order")
            item.seq = int(seq)
            item.message_id = int(message_id)
            last_seqs[(item.target_id, item.sender_id)] = item.seq
        ts = int(time.time() * 1000)
        event_rows: list[tuple[str, str, str]] = []
        for item in fast:
            data_json = codec.dumps_str(new_message_view(
                item.message_id, item.target_id, item.seq, item.sender_id, "text",
                {"text": item.body.text}, item.body.client_msg_id, created_at))
            # To the recipient, and to the sender's other devices.
            event_rows.append(events.encode_user_event(item.recipient_id, "chat.message",
                                                       data_json, ts))
            event_rows.append(events.encode_user_event(item.sender_id, "chat.message",
                                                       data_json, ts))
            ack = ack_of(item.body.client_msg_id, item.target_id, item.message_id, item.seq,
                         created_at)
            if item.warnings:
                ack["warnings"] = item.warnings
            written.append((item, ack))
        # All the batch's events in ONE outbox row: one row to write and delete per batch
        # instead of two per message.
        statements = [
            chat_writer_sql.members_sql(last_seqs, now, literal),
            outbox.claimed_batch_insert(
                event_rows, await pushes, now=now,
                claim_seconds=self.resources.settings.outbox_claim_seconds, literal=literal)]
        deleting, self._delivered = self._delivered, []
        if deleting:  # earlier batches' delivered rows go with this commit
            statements.append(outbox.delete_rows_sql(deleting))
        statements.append("COMMIT")
        try:
            results = await lane.execute(";".join(statements))
        except BaseException:
            self._delivered.extend(deleting)  # not deleted: a later commit takes them
            raise
        return outbox.claimed_batch_rows(event_rows, [row[0] for row in results[1][1]])


def _target(item: _Send) -> Target:
    return Target(item.sender_id, item.conversation_id, item.to_user_id)


async def _release_all(lanes: list[Lane]) -> None:
    for lane in lanes:
        await lane.release()


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
