"""Direct messages: opening conversations, sending, read marks, typing, recall and hiding.

With the group commit of chat_writer.py, the one module that writes `conversations`,
`conversation_members` and `messages` and emits the chat events. The REST handlers
(handlers/conversations.py) and the WebSocket frame handlers (handlers/chat_frames.py) both
call these functions, so a message sent either way is checked, stored and announced the same
way: who may send what to whom is decided by chat_rules.py for both paths (socket sends go
through the group commit, which falls back to `send_message`). What clients see — views,
history, the conversation list — is in chat_views.py. docs/chat.md describes the rules and
events.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.realtime import Conversation, ConversationMember, Message
from models.users import User
from pawhome.messaging import chat_rules, subscribe_messages
from pawhome.messaging.chat_rules import MAX_ID, MessageBody, ShareCard, Target, checked_send  # noqa: F401
from pawhome.messaging.chat_views import (  # noqa: F401
    ChatMessageEvent,
    ack_of,
    conversation_detail,
    membership,
    message_view,
    new_message_view,
    preview_of,
    timestamp,
    unread,
)
from pawhome.platform import codec, events, outbox
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import (  # noqa: F401
    AppError,
    AttachmentRefused,
    Forbidden,
    NotFound,
    RecallWindowPassed,
    ValidationFailed,
    field_error,
)
from pawhome.platform.resources import Resources

CARD_KINDS = ("post", "product", "pet", "service", "group_buy")
ATTACHMENT_KINDS = ("image", *CARD_KINDS)

# -- attachment checks ------------------------------------------------------------------------
#
# Image messages carry a media id of the sender's; share cards point at a post, product, pet
# or service. Those tables belong to later domains (media, community, mall, services), so each
# registers a check here: `await check(session, sender_id, recipient_id, target_id)` returns
# the display fields stored with the message (url, title, cover, ...) or raises an AppError
# (NotFound, Forbidden, AttachmentRefused) when the sender may not send it. A kind with no
# check registered is refused, never sent unchecked.

AttachmentCheck = Callable[[AsyncSession, int, int, int], Awaitable[dict[str, Any]]]
_attachment_checks: dict[str, AttachmentCheck] = {}


def register_attachment_check(kind: str, check: AttachmentCheck) -> None:
    """Let messages carry `kind` ("image", "post", "product", "pet", "service",
    "group_buy")."""
    if kind not in ATTACHMENT_KINDS:
        raise ValueError(f"unknown attachment kind {kind!r}; one of {ATTACHMENT_KINDS}")
    _attachment_checks[kind] = check


def unregister_attachment_check(kind: str) -> None:
    _attachment_checks.pop(kind, None)


_NO_CHECK_MESSAGES = {
    "image": "image messages need the media service",
    **{kind: f"{kind} cards need the {kind} service" for kind in CARD_KINDS},
}


async def _checked_attachment(session: AsyncSession, kind: str, sender_id: int,
                              recipient_id: int, target_id: int) -> dict[str, Any]:
    check = _attachment_checks.get(kind)
    if check is None:
        field = "media_id" if kind == "image" else "card.kind"
        raise AttachmentRefused(_NO_CHECK_MESSAGES[kind].capitalize(),
                                errors=[field_error(field, _NO_CHECK_MESSAGES[kind])])
    try:
        extra = await check(session, sender_id, recipient_id, target_id)
    except NotFound as missing:
        if missing.errors:
            raise
        # The conversation was found; what is missing is the thing the message points at.
        field = "media_id" if kind == "image" else "card.id"
        raise NotFound(missing.message, errors=[field_error(field, "not found")]) from None
    return dict(extra or {})


async def _content_of(session: AsyncSession, body: MessageBody, sender_id: int,
                      recipient_id: int) -> dict[str, Any]:
    if body.kind == "text":
        return {"text": body.text}
    if body.kind == "image":
        assert body.media_id is not None
        extra = await _checked_attachment(session, "image", sender_id, recipient_id,
                                          body.media_id)
        return {**extra, "media_id": body.media_id}
    assert body.card is not None
    extra = await _checked_attachment(session, body.card.kind, sender_id, recipient_id,
                                      body.card.id)
    return {"card": {**extra, "kind": body.card.kind, "id": body.card.id}}


# -- opening a conversation -------------------------------------------------------------------


async def _create_conversation(session: AsyncSession, user_id: int,
                               peer_id: int) -> Conversation:
    """Insert the pair's conversation and both members. Two first messages between the same
    pair at once both insert: the loser's duplicate key reruns its transaction
    (run_transaction), which then finds the winner's conversation."""
    a, b = sorted((user_id, peer_id))
    conversation = Conversation(user_a_id=a, user_b_id=b, last_seq=0)
    session.add(conversation)
    await session.flush()
    session.add_all([
        ConversationMember(conversation_id=conversation.id, user_id=a, peer_id=b, read_seq=0,
                           hidden=False, cleared_seq=0),
        ConversationMember(conversation_id=conversation.id, user_id=b, peer_id=a, read_seq=0,
                           hidden=False, cleared_seq=0),
    ])
    await session.flush()
    return conversation


async def open_conversation(resources: Resources, user_id: int,
                            peer_id: int) -> dict[str, Any]:
    """The conversation between the caller and `peer_id`, created if new (POST
    /v1/conversations). A new one is only created if the caller may message the peer; an
    existing one is returned as it is."""
    chat_rules.not_yourself(user_id, peer_id)
    target = Target(user_id, None, peer_id)

    async def work(session: AsyncSession) -> int:
        facts = chat_rules.ensure_recipient((await chat_rules.load_facts(session, [target]))
                                            .get(target))
        if facts.conversation_id is not None:
            return facts.conversation_id
        await chat_rules.ensure_allowed(session, facts)
        return (await _create_conversation(session, user_id, peer_id)).id

    conversation_id = await run_transaction(resources.db, work)
    async with resources.db.session() as session:
        return await conversation_detail(session, user_id, conversation_id)


# -- sending ----------------------------------------------------------------------------------


_CONVERSATIONS = cast(Table, Conversation.__table__)
_MEMBERS = cast(Table, ConversationMember.__table__)
_MESSAGES = cast(Table, Message.__table__)

# The send path's statements are built once (bindparams): building and cache-keying a
# statement per message cost more CPU than running it.
_SEQ_MYSQL = (update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == bindparam("cid"))
              .values(last_seq=func.last_insert_id(_CONVERSATIONS.c.last_seq + 1),
                      last_message_at=bindparam("now")))
_SEQ_PORTABLE = (update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == bindparam("cid"))
                 .values(last_seq=_CONVERSATIONS.c.last_seq + 1,
                         last_message_at=bindparam("now")))
_SEQ_READ = select(_CONVERSATIONS.c.last_seq).where(_CONVERSATIONS.c.id == bindparam("cid"))
_INSERT_MESSAGE = insert(_MESSAGES).values(
    conversation_id=bindparam("cid"), seq=bindparam("seq"), sender_id=bindparam("sender"),
    kind=bindparam("kind"), content=bindparam("content", type_=String),
    client_msg_id=bindparam("client_msg_id"), created_at=bindparam("now"))
# Both members: visible again, new last_message_at; the sender's read mark moves up to
# their own message.
_TOUCH_MEMBERS = (update(_MEMBERS).where(_MEMBERS.c.conversation_id == bindparam("cid"))
                  .values(hidden=False, last_message_at=bindparam("now"),
                          read_seq=case((and_(_MEMBERS.c.user_id == bindparam("sender"),
                                              _MEMBERS.c.read_seq < bindparam("seq")),
                                         bindparam("seq")), else_=_MEMBERS.c.read_seq)))
# The messages already stored under some (sender, client_msg_id) pairs: a repeated
# client_msg_id gets the first message's ack (both send paths look them up with it).
STORED_ACKS = (select(_MESSAGES.c.sender_id, _MESSAGES.c.client_msg_id, _MESSAGES.c.id,
                      _MESSAGES.c.conversation_id, _MESSAGES.c.seq, _MESSAGES.c.created_at)
               .where(tuple_(_MESSAGES.c.sender_id, _MESSAGES.c.client_msg_id).in_(
                   bindparam("sent", expanding=True))))


def stored_acks_of_rows(rows: Sequence[Sequence[Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """The first acks by (sender, client_msg_id), from rows of STORED_ACKS."""
    return {(int(sender_id), str(client_msg_id)): ack_of(
                str(client_msg_id), int(conversation_id), int(message_id), int(seq),
                timestamp(created_at))
            for sender_id, client_msg_id, message_id, conversation_id, seq, created_at in rows}


async def _next_seq(session: AsyncSession, conversation_id: int, now: dt.datetime) -> int:
    """Take the conversation's next seq. The UPDATE locks the conversation row until commit,
    so concurrent senders queue here and a rolled-back send leaves no gap. On MySQL/MariaDB
    the new value comes back with the UPDATE itself (LAST_INSERT_ID(expr) is reported in the
    OK packet), saving the read-back round trip."""
    params = {"cid": conversation_id, "now": now}
    if session.get_bind().dialect.name in ("mysql", "mariadb"):
        result = cast(CursorResult[Any], await session.execute(_SEQ_MYSQL, params))
        if result.rowcount != 1:
            raise NotFound("Conversation not found")
        return int(result.lastrowid)
    await session.execute(_SEQ_PORTABLE, params)
    return int((await session.execute(_SEQ_READ, {"cid": conversation_id})).scalar_one())


async def _existing_ack(session: AsyncSession, sender_id: int,
                        client_msg_id: str) -> dict[str, Any] | None:
    rows = (await session.execute(STORED_ACKS, {"sent": [(sender_id, client_msg_id)]})).all()
    return stored_acks_of_rows(rows).get((sender_id, client_msg_id))


async def send_message(resources: Resources, sender_id: int, body: MessageBody, *,
                       to_user_id: int | None = None,
                       conversation_id: int | None = None) -> dict[str, Any]:
    """Store a message and announce it; returns the ack {client_msg_id, conversation_id, id,
    seq, created_at} (plus `warnings` for delivered soft-word hits on a first send).

    The target is a user (the pair's conversation is created on first message) or a
    conversation the sender belongs to. The message, its seq, the read/visibility updates and
    the `chat.message` events to both users commit together, so the ack only ever names a
    stored message and nobody hears of one that was rolled back. The same client_msg_id again
    (a retry after a lost ack, or two concurrent copies) returns the first message's ack.

    The hot path is a handful of Core statements (the rules' one facts query, the seq
    UPDATE, the INSERT, one UPDATE of both members, one INSERT of both events); a repeated
    client_msg_id is caught by its unique key, and the rerun finds the first message. Right
    after the commit the events are appended to both users' streams by this request
    (outbox.flush_after_commit), not by a relay pass.
    """
    warnings = checked_send(resources.settings, sender_id, body, to_user_id, conversation_id)
    claim_seconds = resources.settings.outbox_claim_seconds
    target = Target(sender_id, conversation_id, to_user_id)
    runs = 0

    async def work(session: AsyncSession) -> tuple[dict[str, Any], list[Any]]:
        nonlocal runs
        runs += 1
        if runs > 1:  # a rerun after a duplicate key: maybe a copy of this message won
            existing = await _existing_ack(session, sender_id, body.client_msg_id)
            if existing is not None:
                return existing, []
        try:
            facts = await chat_rules.check_send(session, target)
            recipient_id = facts.recipient_id
            target_id = facts.conversation_id
            if target_id is None:
                target_id = (await _create_conversation(session, sender_id, recipient_id)).id
            content = await _content_of(session, body, sender_id, recipient_id)
        except AppError:
            # A retry of a message that was stored before the refusal (e.g. a block since)
            # still gets its first ack.
            existing = await _existing_ack(session, sender_id, body.client_msg_id)
            if existing is not None:
                return existing, []
            raise

        now = utcnow()
        seq = await _next_seq(session, target_id, now)
        # A copy of this client_msg_id (committed, or in flight) fails here on the unique
        # key: the transaction reruns and returns the first message's ack.
        inserted = cast(CursorResult[Any], await session.execute(_INSERT_MESSAGE, {
            "cid": target_id, "seq": seq, "sender": sender_id, "kind": body.kind,
            "content": codec.dumps_str(content), "client_msg_id": body.client_msg_id,
            "now": now}))
        key = inserted.inserted_primary_key
        assert key is not None  # an INSERT of one row
        message_id = int(key[0])
        await session.execute(_TOUCH_MEMBERS, {"cid": target_id, "now": now,
                                               "sender": sender_id, "seq": seq})
        created_at = timestamp(now)
        data = new_message_view(message_id, target_id, seq, sender_id, body.kind, content,
                                body.client_msg_id, created_at)
        # To the recipient, and to the sender's other devices.
        await events.emit_after_commit(session, [(recipient_id, "chat.message", data),
                                                 (sender_id, "chat.message", data)],
                                       claim_seconds)
        # A WeChat subscribe message if the recipient is still offline after a grace period
        # (the notify task decides; it commits with the message or not at all).
        await subscribe_messages.schedule_push(session, recipient_id, reason="message",
                                               conversation_id=target_id,
                                               cache=resources.cache)
        ack = ack_of(body.client_msg_id, target_id, message_id, seq, created_at)
        if warnings:
            ack["warnings"] = warnings
        return ack, outbox.take_claimed(session)

    ack, claimed = await run_transaction(resources.db, work)
    await outbox.flush_after_commit(resources, claimed)
    return ack


# -- read marks, typing, recall, hiding ---------------------------------------------------------


async def mark_read(resources: Resources, reader_id: int, conversation_id: int,
                    seq: int) -> dict[str, Any]:
    """Move the reader's read mark forward to `seq` (never back, never past the last
    message). A move tells both users (`chat.read`): the peer shows the receipt, the
    reader's other devices clear their badge."""
    async with resources.db.session() as session:
        async with session.begin():
            read = await _mark_read_in(session, resources, reader_id, conversation_id, seq)
        await outbox.flush_after_commit(resources, session)  # committed: deliver now
    return read


async def _mark_read_in(session: AsyncSession, resources: Resources, reader_id: int,
                        conversation_id: int, seq: int) -> dict[str, Any]:
    """mark_read's unit of work; its chat.read events are claimed for the caller's flush."""
    member = await membership(session, reader_id, conversation_id)
    last_seq = int((await session.execute(select(Conversation.last_seq).where(
        Conversation.id == conversation_id))).scalar_one())
    target = min(seq, last_seq)
    moved = cast(CursorResult[Any], await session.execute(
        update(ConversationMember)
        .where(ConversationMember.conversation_id == conversation_id,
               ConversationMember.user_id == reader_id,
               ConversationMember.read_seq < target)
        .values(read_seq=target)
        .execution_options(synchronize_session=False)))
    if moved.rowcount:
        data = {"conversation_id": conversation_id, "reader_id": reader_id, "seq": target}
        await events.emit_after_commit(
            session, [(member.peer_id, "chat.read", data), (reader_id, "chat.read", data)],
            resources.settings.outbox_claim_seconds)
    read_seq, cleared_seq = (await session.execute(
        select(ConversationMember.read_seq, ConversationMember.cleared_seq).where(
            ConversationMember.conversation_id == conversation_id,
            ConversationMember.user_id == reader_id))).one()
    return {"conversation_id": conversation_id, "read_seq": int(read_seq),
            "unread": unread(last_seq, int(read_seq), int(cleared_seq))}


async def relay_typing(resources: Resources, user_id: int, conversation_id: int) -> bool:
    """Tell the peer's live connections that the user is typing; never stored. At most one
    relay per conversation and user per CHAT_TYPING_INTERVAL (extra frames are dropped);
    nothing is relayed across a block. Returns whether it was relayed."""
    async with resources.db.session() as session:
        member = await membership(session, user_id, conversation_id)
        if await chat_rules.blocked_either_way(session, user_id, member.peer_id):
            return False
    cache = resources.cache
    interval_ms = max(1, int(resources.settings.chat_typing_interval * 1000))
    if not await cache.redis.set(cache.key("chat", "typing", conversation_id, user_id), b"1",
                                 nx=True, px=interval_ms):
        return False
    await events.send_ephemeral(cache, member.peer_id, "chat.typing",
                                {"conversation_id": conversation_id, "user_id": user_id})
    return True


async def recall_message(resources: Resources, user_id: int, conversation_id: int,
                         seq: int) -> dict[str, Any]:
    """Recall one's own message within CHAT_RECALL_SECONDS; both users get `chat.recalled`
    and every later read shows it without content. Recalling twice is a no-op."""
    async with resources.db.session() as session, session.begin():
        member = await membership(session, user_id, conversation_id)
        row = (await session.execute(select(Message).where(
            Message.conversation_id == conversation_id,
            Message.seq == seq))).scalar_one_or_none()
        if row is None or row.seq <= member.cleared_seq:
            raise NotFound("Message not found")
        if row.sender_id != user_id:
            raise Forbidden("You can only recall your own messages")
        if row.recalled_at is not None:
            return message_view(row)
        now = utcnow()
        window = resources.settings.chat_recall_seconds
        if now - row.created_at > dt.timedelta(seconds=window):
            raise RecallWindowPassed(f"Messages can only be recalled within {window} seconds")
        recalled = cast(CursorResult[Any], await session.execute(
            update(Message).where(Message.id == row.id, Message.recalled_at.is_(None))
            .values(recalled_at=now).execution_options(synchronize_session=False)))
        row.recalled_at = now
        if recalled.rowcount:  # a concurrent recall of the same message announces it once
            data = {"conversation_id": conversation_id, "seq": row.seq, "id": row.id}
            events.emit_to_user(session, member.peer_id, "chat.recalled", data)
            events.emit_to_user(session, user_id, "chat.recalled", data)
        return message_view(row)


async def hide_conversation(resources: Resources, user_id: int,
                            conversation_id: int) -> dict[str, Any]:
    """Hide a conversation for the caller only: it leaves their list with its messages so
    far; a new message (either way) brings it back, showing only what came after."""
    async with resources.db.session() as session, session.begin():
        await membership(session, user_id, conversation_id)
        # Lock the conversation like a sender does, so a message committing at the same time
        # is either hidden with the rest or brings the conversation back — never lost in it.
        query = select(Conversation.last_seq).where(Conversation.id == conversation_id)
        if not resources.settings.is_sqlite:
            query = query.with_for_update()
        last_seq = int((await session.execute(query)).scalar_one())
        await session.execute(
            update(ConversationMember)
            .where(ConversationMember.conversation_id == conversation_id,
                   ConversationMember.user_id == user_id)
            .values(hidden=True, cleared_seq=last_seq)
            .execution_options(synchronize_session=False))
        data = {"conversation_id": conversation_id, "cleared_seq": last_seq}
        events.emit_to_user(session, user_id, "chat.hidden", data)
    return {**data, "hidden": True}


# -- the WeChat subscribe message for a DM ------------------------------------------------------


async def _message_push_context(session: AsyncSession, user_id: int, *,
                                conversation_id: int | None,
                                notification_id: int | None) -> dict[str, Any] | None:
    """What a "message" push says: the newest message the user has not read in the
    conversation, or None when there is none (read meanwhile, recalled, hidden)."""
    if conversation_id is None:
        return None
    member = await session.get(ConversationMember, (conversation_id, user_id))
    if member is None:
        return None
    message = (await session.execute(
        select(Message).where(Message.conversation_id == conversation_id,
                              Message.sender_id != user_id, Message.recalled_at.is_(None))
        .order_by(Message.seq.desc()).limit(1))).scalar_one_or_none()
    if message is None or message.seq <= max(member.read_seq or 0, member.cleared_seq or 0):
        return None
    sender = await session.get(User, message.sender_id)
    return {"sender_name": sender.nickname if sender else "", "preview": preview_of(message),
            "time": message.created_at, "conversation_id": conversation_id,
            "message_id": message.id, "title": "New message", "text": preview_of(message)}


subscribe_messages.register_push_reason("message", pref_of=lambda _purpose: "messages",
                                        context=_message_push_context)
