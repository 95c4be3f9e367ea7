"""What clients see of direct messages: the message and conversation shapes that REST replies
and `chat.*` events share, the event schemas, and the read-only queries (conversation list,
one conversation, history, unread counts). Writes live in chat.py; docs/chat.md has the shapes.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models.realtime import Conversation, ConversationMember, Message
from models.users import User
from pawhome.platform import codec, events
from pawhome.platform.errors import NotFound, ValidationFailed, field_error
from pawhome.platform.resources import Resources

# -- shapes -----------------------------------------------------------------------------------


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


def new_message_view(message_id: int, conversation_id: int, seq: int, sender_id: int,
                     kind: str, content: dict[str, Any], client_msg_id: str,
                     created_at: str | None) -> dict[str, Any]:
    """`message_view` of a message just stored (both send paths build its event with it)."""
    return {"id": message_id, "conversation_id": conversation_id, "seq": seq,
            "sender_id": sender_id, "kind": kind, "content": content,
            "client_msg_id": client_msg_id, "created_at": created_at, "recalled": False}


def ack_of(client_msg_id: str, conversation_id: int, message_id: int, seq: int,
           created_at: str | None) -> dict[str, Any]:
    """The sender's answer to a send: REST `data` and the socket's `chat.ack`."""
    return {"client_msg_id": client_msg_id, "conversation_id": conversation_id,
            "id": message_id, "seq": seq, "created_at": created_at}


def ack_view(row: Message) -> dict[str, Any]:
    return ack_of(row.client_msg_id, row.conversation_id, row.id, row.seq,
                  timestamp(row.created_at))


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


def unread(last_seq: int, read_seq: int, cleared_seq: int) -> int:
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


# -- membership -------------------------------------------------------------------------------


async def membership(session: AsyncSession, user_id: int,
                     conversation_id: int) -> ConversationMember:
    """The caller's side of a conversation; 404 for anyone else's (never 403: a stranger
    does not learn that the conversation exists)."""
    member = await session.get(ConversationMember, (conversation_id, user_id))
    if member is None:
        raise NotFound("Conversation not found")
    return member


# -- reading ----------------------------------------------------------------------------------


PeerMember = aliased(ConversationMember)


def _conversation_query(user_id: int) -> Select:
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


def _conversation_view(row: Any, last: Message | None) -> dict[str, Any]:
    """A row of _conversation_query (member, conversation, peer, the peer's read mark) as
    the list shows it."""
    member: ConversationMember
    conversation: Conversation
    peer: User
    member, conversation, peer, peer_read_seq = row
    return {
        "id": conversation.id,
        "peer": {"id": peer.id, "nickname": peer.nickname, "avatar_url": peer.avatar_url},
        "last_seq": conversation.last_seq,
        "read_seq": member.read_seq,
        "peer_read_seq": peer_read_seq,
        "cleared_seq": member.cleared_seq,
        "unread": unread(conversation.last_seq, member.read_seq, member.cleared_seq),
        "hidden": member.hidden,
        "last_message": message_view(last) if last is not None else None,
        "preview": preview_of(last),
        "last_message_at": timestamp(member.last_message_at),
    }


async def conversation_detail(session: AsyncSession, user_id: int,
                              conversation_id: int) -> dict[str, Any]:
    """One of the caller's conversations, as the list shows it (404 for anyone else's)."""
    row = (await session.execute(_conversation_query(user_id).where(
        ConversationMember.conversation_id == conversation_id))).one_or_none()
    if row is None:
        raise NotFound("Conversation not found")
    last = (await _last_messages(session, [row])).get(conversation_id)
    return _conversation_view(row, last)


async def get_conversation(resources: Resources, user_id: int,
                           conversation_id: int) -> dict[str, Any]:
    """GET /v1/conversations/{id}."""
    async with resources.db.session() as session:
        return await conversation_detail(session, user_id, conversation_id)


def _cursor_position(cursor: dict[str, Any] | None) -> tuple[dt.datetime, int] | None:
    if cursor is None:
        return None
    try:
        return dt.datetime.fromisoformat(str(cursor["t"])), int(cursor["c"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")]) from error


async def list_conversations(resources: Resources, user_id: int,
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
    async with resources.db.session() as session:
        rows = list((await session.execute(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        last_messages = await _last_messages(session, rows)
    items = [_conversation_view(row, last_messages.get(row[1].id)) for row in rows]
    next_position = None
    if more and rows:
        member = rows[-1][0]
        next_position = {"t": member.last_message_at.isoformat(), "c": member.conversation_id}
    return items, next_position


async def list_messages(resources: Resources, user_id: int, conversation_id: int,
                        before_seq: int | None, limit: int) -> dict[str, Any]:
    """A page of the conversation's history, newest first, for members only; messages the
    caller hid (seq <= cleared_seq) are gone for them."""
    async with resources.db.session() as session:
        member = await membership(session, user_id, conversation_id)
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


async def unread_counts(resources: Resources, user_id: int) -> dict[str, Any]:
    """Total unread messages and the CHAT_UNREAD_TOP most recent conversations that have
    some."""
    seen = case((ConversationMember.read_seq > ConversationMember.cleared_seq,
                 ConversationMember.read_seq), else_=ConversationMember.cleared_seq)
    unread_column = (Conversation.last_seq - seen).label("unread")
    base = (select(ConversationMember.conversation_id, unread_column)
            .join(Conversation, Conversation.id == ConversationMember.conversation_id)
            .where(ConversationMember.user_id == user_id, Conversation.last_seq > seen))
    async with resources.db.session() as session:
        total = (await session.execute(
            select(func.coalesce(func.sum(base.subquery().c.unread), 0)))).scalar_one()
        rows = (await session.execute(
            base.order_by(ConversationMember.last_message_at.desc(),
                          ConversationMember.conversation_id.desc())
            .limit(resources.settings.chat_unread_top))).all()
    return {"total": int(total),
            "conversations": [{"conversation_id": r.conversation_id, "unread": int(r.unread)}
                              for r in rows]}
