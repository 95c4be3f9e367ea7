"""Direct messages: conversations, messages, read marks, typing, recall and hiding.

The one module that writes `conversations`, `conversation_members` and `messages` and emits
the chat events. The REST handlers (handlers/conversations.py) and the WebSocket frame
handlers (handlers/chat_frames.py) both call these functions, so a message sent either way
is checked, stored and announced the same way (socket sends go through the group commit of
pawhome/messaging/chat_writer.py, which shares the rules here and falls back to `send_message`).
docs/chat.md describes the rules and events.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (String, and_, bindparam, case, exists, func, insert, or_, select,
                        update)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models.base import utcnow
from models.realtime import Conversation, ConversationMember, Message
from models.users import User, UserBlock, UserFollow, UserSettings
from pawhome.platform import codec, events, outbox, wordfilter
from pawhome.messaging import subscribe_messages
from pawhome.identity import users
from pawhome.platform.db import run_transaction
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.errors import (AppError, AttachmentRefused, ChatBlocked, ChatNotAllowed, Forbidden,
                            NotFound, RecallWindowPassed, SensitiveContent, ValidationFailed,
                            field_error)
from settings import get_settings

MAX_ID = 2**63 - 1
CARD_KINDS = ("post", "product", "pet", "service")
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
    """Let messages carry `kind` ("image", "post", "product", "pet", "service")."""
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
    extra = await check(session, sender_id, recipient_id, target_id)
    return dict(extra or {})


# -- request bodies (REST and WebSocket validate with the same models) -------------------------


class ShareCard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["post", "product", "pet", "service"]
    id: int = Field(ge=1, le=MAX_ID)


class MessageBody(BaseModel):
    """What a message carries: `text` for kind text, `media_id` for image, `card` for share.
    `client_msg_id` is the sender's own id for the message; repeating it resends nothing."""
    model_config = ConfigDict(extra="forbid")
    client_msg_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")
    kind: Literal["text", "image", "share"]
    text: str | None = Field(None, min_length=1, max_length=get_settings().chat_max_text,
                             pattern=NOT_BLANK)
    media_id: int | None = Field(None, ge=1, le=MAX_ID)
    card: ShareCard | None = None


_BODY_FIELD = {"text": "text", "image": "media_id", "share": "card"}


def _checked_body(settings: Any, body: MessageBody) -> list[dict[str, str]]:
    """Kind-specific checks that need no database. Returns the soft-word warnings."""
    wanted = _BODY_FIELD[body.kind]
    problems = [field_error(name, f"does not go with kind {body.kind!r}")
                for name in ("text", "media_id", "card")
                if name != wanted and getattr(body, name) is not None]
    if getattr(body, wanted) is None:
        problems.append(field_error(wanted, f"is required for kind {body.kind!r}"))
    if problems:
        raise ValidationFailed(errors=problems)
    if body.kind != "text":
        return []
    text = body.text or ""
    if not text.strip() or len(text) > settings.chat_max_text:
        raise ValidationFailed(errors=[field_error(
            "text", f"must be 1 to {settings.chat_max_text} characters")])
    verdict = wordfilter.check(text)
    if verdict.hard:
        reason = "contains a prohibited word: " + ", ".join(verdict.hard)
        raise SensitiveContent("Message not sent: it " + reason,
                               errors=[field_error("text", reason)])
    # Soft words (contact details, "刷单") are delivered: in a private conversation they are
    # usually legitimate, and refusing them would only teach people to misspell them.
    return [field_error("text", "contains a flagged word: " + w) for w in verdict.soft]


# -- views ------------------------------------------------------------------------------------


def timestamp(value: dt.datetime | None) -> str | None:
    """A stored timestamp exactly as the REST envelope renders it (events must match)."""
    return None if value is None else codec.loads(codec.dumps(value))


def message_view(row: Message) -> dict[str, Any]:
    """A message as REST lists it and as `chat.message` carries it; a recalled message keeps
    its place (id, seq) but not its content."""
    recalled = row.recalled_at is not None
    return {"id": row.id, "conversation_id": row.conversation_id, "seq": row.seq,
            "sender_id": row.sender_id, "kind": row.kind,
            "content": None if recalled else row.content,
            "client_msg_id": row.client_msg_id, "created_at": timestamp(row.created_at),
            "recalled": recalled}


def ack_view(row: Message) -> dict[str, Any]:
    return {"client_msg_id": row.client_msg_id, "conversation_id": row.conversation_id,
            "id": row.id, "seq": row.seq, "created_at": timestamp(row.created_at)}


def preview_of(row: Message | None) -> str:
    """One line for the conversation list."""
    if row is None:
        return ""
    if row.recalled_at is not None:
        return "[recalled]"
    if row.kind == "text":
        return str(row.content.get("text", ""))[:60]
    if row.kind == "image":
        return "[image]"
    return f"[{row.content.get('card', {}).get('kind', 'share')}]"


def _unread(last_seq: int, read_seq: int, cleared_seq: int) -> int:
    return max(0, last_seq - max(read_seq, cleared_seq))


# -- event schemas (docs/chat.md; tests check every emitted event against them) ----------------


class _EventData(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessageEvent(_EventData):
    id: int
    conversation_id: int
    seq: int
    sender_id: int
    kind: Literal["text", "image", "share"]
    content: dict[str, Any] | None
    client_msg_id: str
    created_at: str
    recalled: bool


class ChatReadEvent(_EventData):
    conversation_id: int
    reader_id: int
    seq: int


class ChatRecalledEvent(_EventData):
    conversation_id: int
    seq: int
    id: int


class ChatTypingEvent(_EventData):
    conversation_id: int
    user_id: int


class ChatHiddenEvent(_EventData):
    conversation_id: int
    cleared_seq: int


events.register_event_schema("chat.message", ChatMessageEvent)
events.register_event_schema("chat.read", ChatReadEvent)
events.register_event_schema("chat.recalled", ChatRecalledEvent)
events.register_event_schema("chat.typing", ChatTypingEvent)
events.register_event_schema("chat.hidden", ChatHiddenEvent)


# -- membership and the rules of who may message whom ------------------------------------------


async def _membership(session: AsyncSession, user_id: int,
                      conversation_id: int) -> ConversationMember:
    """The caller's side of a conversation; 404 for anyone else's (never 403: a stranger
    does not learn that the conversation exists)."""
    member = await session.get(ConversationMember, (conversation_id, user_id))
    if member is None:
        raise NotFound("Conversation not found")
    return member


async def _active_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None or user.status == "banned":
        raise NotFound("User not found")
    return user


async def _blocked_either_way(session: AsyncSession, user_id: int, other_id: int) -> bool:
    found = await session.execute(select(UserBlock.user_id).where(or_(
        and_(UserBlock.user_id == user_id, UserBlock.blocked_id == other_id),
        and_(UserBlock.user_id == other_id, UserBlock.blocked_id == user_id))).limit(1))
    return found.first() is not None


async def _ensure_may_message(session: AsyncSession, sender_id: int, recipient_id: int,
                              conversation_id: int | None) -> None:
    """Refuse a message the recipient must not get: unknown or banned (404), a block in
    either direction (403 ChatBlocked), their privacy setting (403 ChatNotAllowed)."""
    await _active_user(session, recipient_id)
    if await _blocked_either_way(session, sender_id, recipient_id):
        raise ChatBlocked()
    privacy = await users.privacy_of(session, recipient_id)
    if privacy.allow_messages_from == "everyone":
        return
    if privacy.allow_messages_from == "following" and \
            await users.is_following(session, recipient_id, sender_id):
        return
    # Whoever wrote first in this conversation may be answered: a reply is not unsolicited.
    if conversation_id is not None:
        wrote = await session.execute(select(Message.id).where(
            Message.conversation_id == conversation_id,
            Message.sender_id == recipient_id).limit(1))
        if wrote.first() is not None:
            return
    if privacy.allow_messages_from == "following":
        raise ChatNotAllowed("This user only accepts messages from people they follow")
    raise ChatNotAllowed("This user does not accept direct messages")


async def _conversation_between(session: AsyncSession, user_id: int,
                                peer_id: int) -> Conversation | None:
    a, b = sorted((user_id, peer_id))
    return (await session.execute(select(Conversation).where(
        Conversation.user_a_id == a, Conversation.user_b_id == b))).scalar_one_or_none()


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


def _not_yourself(user_id: int, peer_id: int) -> None:
    if user_id == peer_id:
        raise ValidationFailed(errors=[field_error("to_user_id", "you cannot message yourself")])


async def open_conversation(resources: Any, user_id: int, peer_id: int) -> dict[str, Any]:
    """The conversation between the caller and `peer_id`, created if new (POST
    /v1/conversations). A new one is only created if the caller may message the peer."""
    _not_yourself(user_id, peer_id)

    async def work(session: AsyncSession) -> int:
        await _active_user(session, peer_id)
        conversation = await _conversation_between(session, user_id, peer_id)
        if conversation is None:
            await _ensure_may_message(session, user_id, peer_id, None)
            conversation = await _create_conversation(session, user_id, peer_id)
        return conversation.id

    conversation_id = await run_transaction(resources.db, work)
    async with resources.db.session() as session:
        return await conversation_detail(session, user_id, conversation_id)


# -- sending ----------------------------------------------------------------------------------


_CONVERSATIONS = Conversation.__table__
_MEMBERS = ConversationMember.__table__
_MESSAGES = Message.__table__

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


async def _next_seq(session: AsyncSession, conversation_id: int, now: dt.datetime) -> int:
    """Take the conversation's next seq. The UPDATE locks the conversation row until commit,
    so concurrent senders queue here and a rolled-back send leaves no gap. On MySQL/MariaDB
    the new value comes back with the UPDATE itself (LAST_INSERT_ID(expr) is reported in the
    OK packet), saving the read-back round trip."""
    params = {"cid": conversation_id, "now": now}
    if session.bind.dialect.name in ("mysql", "mariadb"):
        result = await session.execute(_SEQ_MYSQL, params)
        if result.rowcount != 1:
            raise NotFound("Conversation not found")
        return int(result.lastrowid)
    await session.execute(_SEQ_PORTABLE, params)
    return int((await session.execute(_SEQ_READ, {"cid": conversation_id})).scalar_one())


async def _existing_ack(session: AsyncSession, sender_id: int,
                        client_msg_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(Message).where(
        Message.sender_id == sender_id,
        Message.client_msg_id == client_msg_id))).scalar_one_or_none()
    return None if row is None else ack_view(row)


def _rule_columns(sender: Any, recipient: Any) -> tuple[Any, Any]:
    """EXISTS columns: a block either way between sender and recipient; the recipient follows
    the sender."""
    blocked = exists().where(or_(
        and_(UserBlock.user_id == sender, UserBlock.blocked_id == recipient),
        and_(UserBlock.user_id == recipient, UserBlock.blocked_id == sender)))
    follows_sender = exists().where(UserFollow.follower_id == recipient,
                                    UserFollow.followee_id == sender)
    return blocked.label("blocked"), follows_sender.label("follows_sender")


def _rules_in_conversation():
    blocked, follows_sender = _rule_columns(bindparam("sender"), ConversationMember.peer_id)
    return (select(ConversationMember.conversation_id, ConversationMember.peer_id,
                   User.status, UserSettings.privacy_prefs, blocked, follows_sender)
            .select_from(ConversationMember)
            .outerjoin(User, User.id == ConversationMember.peer_id)
            .outerjoin(UserSettings, UserSettings.user_id == ConversationMember.peer_id)
            .where(ConversationMember.conversation_id == bindparam("cid"),
                   ConversationMember.user_id == bindparam("sender")))


def _rules_to_user():
    blocked, follows_sender = _rule_columns(bindparam("sender"), bindparam("recipient"))
    existing = (select(Conversation.id).where(Conversation.user_a_id == bindparam("a"),
                                              Conversation.user_b_id == bindparam("b"))
                .scalar_subquery().label("conversation_id"))
    return (select(existing, User.id.label("peer_id"), User.status,
                   UserSettings.privacy_prefs, blocked, follows_sender)
            .select_from(User)
            .outerjoin(UserSettings, UserSettings.user_id == User.id)
            .where(User.id == bindparam("recipient")))


_RULES_IN_CONVERSATION = _rules_in_conversation()
_RULES_TO_USER = _rules_to_user()


async def _target_and_rules(session: AsyncSession, sender_id: int, to_user_id: int | None,
                            conversation_id: int | None) -> Any:
    """One query for everything the rules need: the conversation (if any), the recipient's
    status and privacy setting, a block either way, whether the recipient follows the sender.
    Read fresh in the message's transaction: a block or privacy change applies at once."""
    if conversation_id is not None:
        row = (await session.execute(_RULES_IN_CONVERSATION, {
            "sender": sender_id, "cid": conversation_id})).one_or_none()
        if row is None:
            raise NotFound("Conversation not found")
        return row
    assert to_user_id is not None
    a, b = sorted((sender_id, to_user_id))
    row = (await session.execute(_RULES_TO_USER, {
        "sender": sender_id, "recipient": to_user_id, "a": a, "b": b})).one_or_none()
    if row is None:
        raise NotFound("User not found")
    return row


def _allow_messages_from(stored: dict | None) -> str:
    """The privacy rule as users.privacy_of reads it (stored prefs over the defaults)."""
    if not stored:
        return "everyone"
    return users._merged(users.PrivacyPrefs, stored).allow_messages_from  # type: ignore[attr-defined]


def allowed_outright(status: str | None, blocked: Any, privacy_prefs: dict | None,
                     follows_sender: Any) -> bool:
    """The rules that need no more than the rules row (the single send path and the group
    commit in pawhome/messaging/chat_writer.py share them): raise for an unknown or banned recipient
    (404) and a block either way (403); True when the privacy setting lets the message
    through, False when only "the recipient wrote in this conversation" still could."""
    if status is None or status == "banned":
        raise NotFound("User not found")
    if blocked:
        raise ChatBlocked()
    allowed = _allow_messages_from(privacy_prefs)
    return allowed == "everyone" or (allowed == "following" and bool(follows_sender))


async def _apply_rules(session: AsyncSession, sender_id: int, rules: Any) -> None:
    """The rules of _ensure_may_message, on the row of _target_and_rules."""
    if allowed_outright(rules.status, rules.blocked, rules.privacy_prefs,
                        rules.follows_sender):
        return
    allowed = _allow_messages_from(rules.privacy_prefs)
    if rules.conversation_id is not None:
        wrote = await session.execute(select(Message.id).where(
            Message.conversation_id == rules.conversation_id,
            Message.sender_id == rules.peer_id).limit(1))
        if wrote.first() is not None:
            return
    if allowed == "following":
        raise ChatNotAllowed("This user only accepts messages from people they follow")
    raise ChatNotAllowed("This user does not accept direct messages")


def checked_send(settings: Any, sender_id: int, body: MessageBody, to_user_id: int | None,
                 conversation_id: int | None) -> list[dict[str, str]]:
    """Everything about a send that needs no database (the target named once, not oneself,
    the body and the word filter); returns the soft-word warnings for the ack."""
    if (to_user_id is None) == (conversation_id is None):
        raise ValidationFailed(errors=[field_error(
            "to_user_id", "give exactly one of to_user_id and conversation_id")])
    if to_user_id is not None:
        _not_yourself(sender_id, to_user_id)
    return _checked_body(settings, body)


async def send_message(resources: Any, sender_id: int, body: MessageBody, *,
                       to_user_id: int | None = None,
                       conversation_id: int | None = None) -> dict[str, Any]:
    """Store a message and announce it; returns the ack {client_msg_id, conversation_id, id,
    seq, created_at} (plus `warnings` for delivered soft-word hits on a first send).

    The target is a user (the pair's conversation is created on first message) or a
    conversation the sender belongs to. The message, its seq, the read/visibility updates and
    the `chat.message` events to both users commit together, so the ack only ever names a
    stored message and nobody hears of one that was rolled back. The same client_msg_id again
    (a retry after a lost ack, or two concurrent copies) returns the first message's ack.

    The hot path is a handful of Core statements (one query for all the rules, the seq
    UPDATE, the INSERT, one UPDATE of both members, one INSERT of both events); a repeated
    client_msg_id is caught by its unique key, and the rerun finds the first message. Right
    after the commit the events are appended to both users' streams by this request
    (outbox.flush_after_commit), not by a relay pass.
    """
    warnings = checked_send(resources.settings, sender_id, body, to_user_id, conversation_id)
    claim_seconds = resources.settings.outbox_claim_seconds
    runs = 0

    async def work(session: AsyncSession) -> tuple[dict[str, Any], list[Any]]:
        nonlocal runs
        runs += 1
        if runs > 1:  # a rerun after a duplicate key: maybe a copy of this message won
            existing = await _existing_ack(session, sender_id, body.client_msg_id)
            if existing is not None:
                return existing, []
        try:
            rules = await _target_and_rules(session, sender_id, to_user_id, conversation_id)
            await _apply_rules(session, sender_id, rules)
            recipient_id = int(rules.peer_id)
            target_id = rules.conversation_id
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
        inserted = await session.execute(_INSERT_MESSAGE, {
            "cid": target_id, "seq": seq, "sender": sender_id, "kind": body.kind,
            "content": codec.dumps_str(content), "client_msg_id": body.client_msg_id,
            "now": now})
        message_id = int(inserted.inserted_primary_key[0])
        await session.execute(_TOUCH_MEMBERS, {"cid": target_id, "now": now,
                                               "sender": sender_id, "seq": seq})
        created_at = timestamp(now)
        data = {"id": message_id, "conversation_id": target_id, "seq": seq,
                "sender_id": sender_id, "kind": body.kind, "content": content,
                "client_msg_id": body.client_msg_id, "created_at": created_at,
                "recalled": False}
        # To the recipient, and to the sender's other devices.
        await events.emit_after_commit(session, [(recipient_id, "chat.message", data),
                                                 (sender_id, "chat.message", data)],
                                       claim_seconds)
        # A WeChat subscribe message if the recipient is still offline after a grace period
        # (the notify task decides; it commits with the message or not at all).
        await subscribe_messages.schedule_push(session, recipient_id, reason="message",
                                               conversation_id=target_id,
                                               cache=resources.cache)
        ack = {"client_msg_id": body.client_msg_id, "conversation_id": target_id,
               "id": message_id, "seq": seq, "created_at": created_at}
        if warnings:
            ack["warnings"] = warnings
        return ack, outbox.take_claimed(session)

    ack, claimed = await run_transaction(resources.db, work)
    await outbox.flush_after_commit(resources, claimed)
    return ack


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


# -- read marks, typing, recall, hiding ---------------------------------------------------------


async def mark_read(resources: Any, reader_id: int, conversation_id: int,
                    seq: int) -> dict[str, Any]:
    """Move the reader's read mark forward to `seq` (never back, never past the last
    message). A move tells both users (`chat.read`): the peer shows the receipt, the
    reader's other devices clear their badge."""
    async with resources.db.session() as session:
        async with session.begin():
            read = await _mark_read_in(session, resources, reader_id, conversation_id, seq)
        await outbox.flush_after_commit(resources, session)  # committed: deliver now
    return read


async def _mark_read_in(session: AsyncSession, resources: Any, reader_id: int,
                        conversation_id: int, seq: int) -> dict[str, Any]:
    """mark_read's unit of work; its chat.read events are claimed for the caller's flush."""
    member = await _membership(session, reader_id, conversation_id)
    last_seq = int((await session.execute(select(Conversation.last_seq).where(
        Conversation.id == conversation_id))).scalar_one())
    target = min(seq, last_seq)
    moved = await session.execute(
        update(ConversationMember)
        .where(ConversationMember.conversation_id == conversation_id,
               ConversationMember.user_id == reader_id,
               ConversationMember.read_seq < target)
        .values(read_seq=target)
        .execution_options(synchronize_session=False))
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
        "unread": _unread(last_seq, int(read_seq), int(cleared_seq))}


async def relay_typing(resources: Any, user_id: int, conversation_id: int) -> bool:
    """Tell the peer's live connections that the user is typing; never stored. At most one
    relay per conversation and user per CHAT_TYPING_INTERVAL (extra frames are dropped);
    nothing is relayed across a block. Returns whether it was relayed."""
    async with resources.db.session() as session:
        member = await _membership(session, user_id, conversation_id)
        if await _blocked_either_way(session, user_id, member.peer_id):
            return False
    cache = resources.cache
    interval_ms = max(1, int(resources.settings.chat_typing_interval * 1000))
    if not await cache.redis.set(cache.key("chat", "typing", conversation_id, user_id), b"1",
                                 nx=True, px=interval_ms):
        return False
    await events.send_ephemeral(cache, member.peer_id, "chat.typing",
                                {"conversation_id": conversation_id, "user_id": user_id})
    return True


async def recall_message(resources: Any, user_id: int, conversation_id: int,
                         seq: int) -> dict[str, Any]:
    """Recall one's own message within CHAT_RECALL_SECONDS; both users get `chat.recalled`
    and every later read shows it without content. Recalling twice is a no-op."""
    async with resources.db.session() as session, session.begin():
        member = await _membership(session, user_id, conversation_id)
        row = (await session.execute(select(Message).where(
            Message.conversation_id == conversation_id, Message.seq == seq))).scalar_one_or_none()
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
        recalled = await session.execute(
            update(Message).where(Message.id == row.id, Message.recalled_at.is_(None))
            .values(recalled_at=now).execution_options(synchronize_session=False))
        row.recalled_at = now
        if recalled.rowcount:  # a concurrent recall of the same message announces it once
            data = {"conversation_id": conversation_id, "seq": row.seq, "id": row.id}
            events.emit_to_user(session, member.peer_id, "chat.recalled", data)
            events.emit_to_user(session, user_id, "chat.recalled", data)
        return message_view(row)


async def hide_conversation(resources: Any, user_id: int, conversation_id: int) -> dict[str, Any]:
    """Hide a conversation for the caller only: it leaves their list with its messages so
    far; a new message (either way) brings it back, showing only what came after."""
    async with resources.db.session() as session, session.begin():
        await _membership(session, user_id, conversation_id)
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


# -- reading ----------------------------------------------------------------------------------


PeerMember = aliased(ConversationMember)


def _conversation_query(user_id: int):
    """The caller's member rows with their conversation, peer and the peer's read mark."""
    return (select(ConversationMember, Conversation, User, PeerMember.read_seq)
            .join(Conversation, Conversation.id == ConversationMember.conversation_id)
            .join(User, User.id == ConversationMember.peer_id)
            .join(PeerMember, and_(PeerMember.conversation_id == Conversation.id,
                                   PeerMember.user_id == ConversationMember.peer_id))
            .where(ConversationMember.user_id == user_id))


async def _last_messages(session: AsyncSession,
                         rows: list[Any]) -> dict[int, Message]:
    wanted = [(conversation.id, conversation.last_seq) for member, conversation, *_ in rows
              if conversation.last_seq > member.cleared_seq]
    if not wanted:
        return {}
    found = await session.execute(select(Message).where(or_(*[
        and_(Message.conversation_id == cid, Message.seq == seq) for cid, seq in wanted])))
    return {m.conversation_id: m for m in found.scalars()}


def _conversation_view(member: ConversationMember, conversation: Conversation, peer: User,
                       peer_read_seq: int, last: Message | None) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "peer": {"id": peer.id, "nickname": peer.nickname, "avatar_url": peer.avatar_url},
        "last_seq": conversation.last_seq,
        "read_seq": member.read_seq,
        "peer_read_seq": peer_read_seq,
        "cleared_seq": member.cleared_seq,
        "unread": _unread(conversation.last_seq, member.read_seq, member.cleared_seq),
        "hidden": member.hidden,
        "last_message": message_view(last) if last is not None else None,
        "preview": preview_of(last),
        "last_message_at": timestamp(member.last_message_at),
    }


async def conversation_detail(session: AsyncSession, user_id: int,
                              conversation_id: int) -> dict[str, Any]:
    row = (await session.execute(_conversation_query(user_id).where(
        ConversationMember.conversation_id == conversation_id))).one_or_none()
    if row is None:
        raise NotFound("Conversation not found")
    last = (await _last_messages(session, [row])).get(conversation_id)
    return _conversation_view(*row, last)


def _cursor_position(cursor: dict[str, Any] | None) -> tuple[dt.datetime, int] | None:
    if cursor is None:
        return None
    try:
        return dt.datetime.fromisoformat(str(cursor["t"])), int(cursor["c"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")]) from error


async def list_conversations(session: AsyncSession, user_id: int,
                             cursor: dict[str, Any] | None,
                             limit: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The caller's visible conversations, most recent message first; returns (items, the
    position after the last item, or None at the end)."""
    query = (_conversation_query(user_id)
             .where(ConversationMember.hidden.is_(False),
                    ConversationMember.last_message_at.is_not(None))
             .order_by(ConversationMember.last_message_at.desc(),
                       ConversationMember.conversation_id.desc())
             .limit(limit + 1))
    position = _cursor_position(cursor)
    if position is not None:
        at, cid = position
        query = query.where(or_(
            ConversationMember.last_message_at < at,
            and_(ConversationMember.last_message_at == at,
                 ConversationMember.conversation_id < cid)))
    rows = list((await session.execute(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    last_messages = await _last_messages(session, rows)
    items = [_conversation_view(*row, last_messages.get(row[1].id)) for row in rows]
    next_position = None
    if more and rows:
        member = rows[-1][0]
        next_position = {"t": member.last_message_at.isoformat(), "c": member.conversation_id}
    return items, next_position


async def list_messages(session: AsyncSession, user_id: int, conversation_id: int,
                        before_seq: int | None, limit: int) -> dict[str, Any]:
    """A page of the conversation's history, newest first, for members only; messages the
    caller hid (seq <= cleared_seq) are gone for them."""
    member = await _membership(session, user_id, conversation_id)
    query = (select(Message)
             .where(Message.conversation_id == conversation_id,
                    Message.seq > member.cleared_seq)
             .order_by(Message.seq.desc()).limit(limit + 1))
    if before_seq is not None:
        query = query.where(Message.seq < before_seq)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    conversation = await session.get(Conversation, conversation_id)
    peer = await session.get(ConversationMember, (conversation_id, member.peer_id))
    assert conversation is not None and peer is not None
    return {"items": [message_view(m) for m in rows],
            "next_before_seq": rows[-1].seq if more and rows else None,
            "last_seq": conversation.last_seq, "read_seq": member.read_seq,
            "peer_read_seq": peer.read_seq}


async def unread_counts(session: AsyncSession, user_id: int, top: int) -> dict[str, Any]:
    """Total unread messages and the `top` most recent conversations that have some."""
    seen = case((ConversationMember.read_seq > ConversationMember.cleared_seq,
                 ConversationMember.read_seq), else_=ConversationMember.cleared_seq)
    unread = (Conversation.last_seq - seen).label("unread")
    base = (select(ConversationMember.conversation_id, unread)
            .join(Conversation, Conversation.id == ConversationMember.conversation_id)
            .where(ConversationMember.user_id == user_id, Conversation.last_seq > seen))
    total = (await session.execute(
        select(func.coalesce(func.sum(base.subquery().c.unread), 0)))).scalar_one()
    rows = (await session.execute(
        base.order_by(ConversationMember.last_message_at.desc(),
                      ConversationMember.conversation_id.desc()).limit(top))).all()
    return {"total": int(total),
            "conversations": [{"conversation_id": r.conversation_id, "unread": int(r.unread)}
                              for r in rows]}
