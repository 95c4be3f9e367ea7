"""The SQL of one group-commit batch (chat_writer.py), on the writer's own raw aiomysql
connection: no ORM, no pool ping or reset per batch, several statements per round trip.

1. `facts_and_stored_sql`: the rules' facts of every send — the statement of
   `chat_rules.facts_query`, the same one the single path runs through a session, rendered
   here for the raw connection — and the batch's `(sender_id, client_msg_id)` pairs already
   stored (`chat.STORED_ACKS`, which the single path runs too).
2. `messages_sql`: the seq UPDATE of all the batch's conversations and, under those row
   locks, `INSERT ... SELECT ... RETURNING` of its messages.
3. `members_sql`, then the batch's outbox rows (`outbox.claimed_batch_insert`), the DELETE of
   earlier batches' delivered rows (`outbox.delete_rows_sql`) and COMMIT, in one round trip.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from models.realtime import Conversation, ConversationMember, Message
from pawhome.messaging import chat, chat_rules
from pawhome.platform import codec
from pawhome.platform.db import Database

log = logging.getLogger("pawhome.messaging.chat_writer")

Literal = Callable[[Any], str]  # a value as an SQL literal for the connection (its escape)

_CONVERSATIONS = Conversation.__tablename__
_MEMBERS = ConversationMember.__tablename__
_MESSAGES = Message.__tablename__


class Lane:
    """One connection of the writer, held while its lane has work (no pool pre-ping or
    reset per batch); each lane writes one batch at a time."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn: AsyncConnection | None = None
        self.raw: Any = None  # its aiomysql connection

    @property
    def dialect(self) -> Dialect:
        return self.db.engine.dialect

    async def connection(self) -> Any:
        if self.raw is None:
            self.conn = await self.db.engine.connect()
            fairy = await self.conn.get_raw_connection()
            self.raw = fairy.driver_connection
        return self.raw

    async def execute(self, sql: str) -> list[tuple[int, list[Any]]]:
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
        except Exception:
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
        except Exception as error:
            log.debug("closing a chat writer connection: %r", error)


# -- rendering a Core statement for the raw connection ------------------------------------------


class _Rendered:
    """A Core statement compiled for one dialect, and its SQL text per shape (the lengths of
    its expanding IN lists), as `pawhome.platform.db.Prepared` keeps them."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        self.compiled = compiled = statement.compile(dialect=dialect)
        if not compiled.positional:
            raise TypeError(f"{dialect.name}: rendering needs a positional paramstyle")
        self.order = tuple(compiled.positiontup or ())
        self.expanding = frozenset(k for k, b in compiled.binds.items() if b.expanding)
        self.by_shape: dict[tuple[int, ...], str] = {}

    def sql(self, params: dict[str, Any], literal: Literal) -> str:
        values: list[Any] = []
        shape = []
        for name in self.order:
            value = params[name]
            if name in self.expanding:
                shape.append(len(value))
                for item in value:  # a row-constructor IN list: (a, b) pairs, flattened
                    if isinstance(item, tuple):
                        values.extend(item)
                    else:
                        values.append(item)
            else:
                values.append(value)
        key = tuple(shape)
        text = self.by_shape.get(key)
        if text is None:
            if len(self.by_shape) >= _SHAPES_KEPT:
                self.by_shape.clear()
            text = self.by_shape[key] = self.compiled.construct_expanded_state(params).statement
        return text % tuple(str(v) if type(v) is int else literal(v) for v in values)


_SHAPES_KEPT = 1024
_rendered: dict[tuple[Any, str], _Rendered] = {}


def render(statement: Any, params: dict[str, Any], dialect: Dialect, literal: Literal) -> str:
    """A Core statement with these parameters as SQL text for the raw connection, the values
    quoted by the connection's `literal`. Compiled once per dialect and expanded once per
    shape of its IN lists, so a batch pays for the formatting of its values only."""
    rendered = _rendered.get((statement, dialect.name))
    if rendered is None:
        rendered = _rendered[(statement, dialect.name)] = _Rendered(statement, dialect)
    return rendered.sql(params, literal)


# -- round trip 1: facts and stored messages ----------------------------------------------------


def facts_and_stored_sql(dialect: Dialect, targets: Iterable[chat_rules.Target],
                         sent: Sequence[tuple[int, str]], literal: Literal) -> str:
    """The stored messages of `sent` ((sender, client_msg_id) pairs) first, then the facts of
    `targets` when there are any: two statements, one round trip."""
    statements = [render(chat.STORED_ACKS, {"sent": list(dict.fromkeys(sent))}, dialect,
                         literal)]
    query = chat_rules.facts_query(targets)
    if query is not None:
        statements.append(render(*query, dialect, literal))
    return ";".join(statements)


# -- round trip 2: seqs and messages ------------------------------------------------------------


def messages_sql(sends: Sequence[tuple[int, int, str, str]], now: dt.datetime,
                 literal: Literal) -> tuple[str, int]:
    """`sends` are (conversation, sender, text, client_msg_id) in arrival order. The UPDATE
    locks the conversations (in id order, so two writers never deadlock on them) and moves
    last_seq past the batch; each message takes its seq from the new value under that lock,
    in arrival order (INSERT ... SELECT ... RETURNING id, conversation_id, seq). Returns the
    SQL and how many conversations the UPDATE must find."""
    counts: dict[int, int] = {}
    for conversation_id, *_rest in sends:
        counts[conversation_id] = counts.get(conversation_id, 0) + 1
    ids = ",".join(str(int(c)) for c in sorted(counts))
    bump = " ".join(f"WHEN {int(c)} THEN {n}" for c, n in counts.items())
    now_sql = literal(now)
    left = dict(counts)
    selects = []
    for conversation_id, sender_id, text, client_msg_id in sends:
        left[conversation_id] -= 1
        selects.append(
            f"SELECT id, last_seq - {left[conversation_id]}, {int(sender_id)}, 'text', "
            f"{literal(codec.dumps_str({'text': text}))}, {literal(client_msg_id)}, "
            f"{now_sql} FROM {_CONVERSATIONS} WHERE id = {int(conversation_id)}")
    # A copy of a client_msg_id committed meanwhile (another process) fails here on the
    # unique key: the batch falls back and the single path returns the first ack.
    return (f"UPDATE {_CONVERSATIONS} SET last_seq = last_seq + CASE id {bump} END, "
            f"last_message_at = {now_sql} WHERE id IN ({ids});"
            f"INSERT INTO {_MESSAGES} (conversation_id, seq, sender_id, kind, content, "
            f"client_msg_id, created_at) {' UNION ALL '.join(selects)} "
            "RETURNING id, conversation_id, seq"), len(counts)


# -- round trip 3: members, outbox rows, COMMIT -------------------------------------------------


def members_sql(last_seqs: dict[tuple[int, int], int], now: dt.datetime,
                literal: Literal) -> str:
    """Both members of each conversation: visible again, last_message_at; each sender's read
    mark moves up to their last message in the batch (`last_seqs`: (conversation, sender) ->
    seq)."""
    by_conversation: dict[int, list[str]] = {}
    for (conversation_id, sender_id), seq in last_seqs.items():
        by_conversation.setdefault(int(conversation_id), []).append(
            f"WHEN {int(sender_id)} THEN {int(seq)}")
    marks = " ".join(f"WHEN {c} THEN CASE user_id {' '.join(whens)} ELSE 0 END"
                     for c, whens in by_conversation.items())
    ids = ",".join(str(c) for c in sorted(by_conversation))
    now_sql = literal(now)
    return (f"UPDATE {_MEMBERS} SET hidden = 0, last_message_at = {now_sql}, "
            f"updated_at = {now_sql}, "
            f"read_seq = GREATEST(read_seq, CASE conversation_id {marks} ELSE 0 END) "
            f"WHERE conversation_id IN ({ids})")
