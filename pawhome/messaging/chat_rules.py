"""Who may send what to whom: the one copy of the direct-message rules (docs/chat.md).

Both write paths use it — `chat.send_message` (REST, first messages, attachments, and the
fallback of the group commit) and the socket's group commit (chat_writer.py) — for a batch of
sends at once; a single send is a batch of one:

- `checked_send`: what needs no database (the target named once, not oneself, the body's
  fields, its length and the sensitive-word filter);
- `facts_query`: for every (sender, target) of a batch, ONE statement reads the conversation,
  the recipient, their status and privacy setting, a block either way and whether the
  recipient follows the sender. A session runs it with `load_facts`; the group commit renders
  the same statement for its raw connection (chat_writer_sql.py) and reads its rows with
  `facts_of_rows`;
- `decide` on those facts, and `ensure_allowed` for the one case that needs another look
  (a privacy setting that only "the recipient wrote in this conversation" can still lift).
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    bindparam,
    case,
    exists,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models.realtime import Conversation, ConversationMember, Message
from models.users import User, UserBlock, UserFollow, UserSettings
from pawhome.identity import users
from pawhome.platform import codec, wordfilter
from pawhome.platform.errors import (
    AppError,
    ChatBlocked,
    ChatNotAllowed,
    NotFound,
    SensitiveContent,
    ValidationFailed,
    field_error,
)
from pawhome.platform.fields import NOT_BLANK
from settings import Settings, get_settings

MAX_ID = 2**63 - 1

# -- request bodies (REST and WebSocket validate with the same models) -------------------------


class ShareCard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["post", "product", "pet", "service", "group_buy"]
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


def not_yourself(user_id: int, peer_id: int) -> None:
    if user_id == peer_id:
        raise ValidationFailed(errors=[field_error("to_user_id", "you cannot message yourself")])


def _checked_body(settings: Settings, body: MessageBody) -> list[dict[str, str]]:
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


def checked_send(settings: Settings, sender_id: int, body: MessageBody, to_user_id: int | None,
                 conversation_id: int | None) -> list[dict[str, str]]:
    """Everything about a send that needs no database (the target named once, not oneself,
    the body and the word filter); returns the soft-word warnings for the ack."""
    if (to_user_id is None) == (conversation_id is None):
        raise ValidationFailed(errors=[field_error(
            "to_user_id", "give exactly one of to_user_id and conversation_id")])
    if to_user_id is not None:
        not_yourself(sender_id, to_user_id)
    return _checked_body(settings, body)


# -- the facts of a batch -----------------------------------------------------------------------


class Target(NamedTuple):
    """Where one send goes: into a conversation, or to a user (exactly one is set)."""
    sender_id: int
    conversation_id: int | None
    to_user_id: int | None


class Facts(NamedTuple):
    """What the rules need about one send, read fresh in the send's transaction (a block or
    a privacy change applies at once)."""
    conversation_id: int | None  # None: the pair has no conversation yet
    recipient_id: int
    status: str | None  # None: no such user
    allow_messages_from: str  # the recipient's privacy setting
    blocked: bool  # a block in either direction
    follows_sender: bool  # the recipient follows the sender


def _blocked(sender: SQLColumnExpression[int],
             recipient: SQLColumnExpression[int]) -> ColumnElement[bool]:
    """A block in either direction between the two: the one definition of it. Two EXISTS,
    each a primary-key lookup (one EXISTS over an OR scans an index of user_blocks)."""
    return or_(exists().where(UserBlock.user_id == sender, UserBlock.blocked_id == recipient),
               exists().where(UserBlock.user_id == recipient, UserBlock.blocked_id == sender))


def _follows(recipient: SQLColumnExpression[int],
             sender: SQLColumnExpression[int]) -> ColumnElement[bool]:
    return exists().where(UserFollow.follower_id == recipient, UserFollow.followee_id == sender)


def _in_conversations() -> Select:
    """Sends into conversations: the sender's member row names the recipient (no row: not a
    member). Row-constructor IN: an index range on the member table's primary key."""
    member = ConversationMember
    return (select(literal_column("'c'").label("kind"), member.user_id.label("sender_id"),
                   member.conversation_id.label("conversation_id"),
                   member.peer_id.label("recipient_id"), User.status,
                   UserSettings.privacy_prefs,
                   _blocked(member.user_id, member.peer_id).label("blocked"),
                   _follows(member.peer_id, member.user_id).label("follows_sender"))
            .select_from(member)
            .outerjoin(User, User.id == member.peer_id)
            .outerjoin(UserSettings, UserSettings.user_id == member.peer_id)
            .where(tuple_(member.conversation_id, member.user_id).in_(
                bindparam("in_conversation", expanding=True))))


def _to_users() -> Select:
    """Sends to users: the recipient's row (none: unknown user) and the pair's conversation
    if there is one. The id lists give both user lookups an index range; the pair list then
    keeps only the batch's own pairs."""
    sender, recipient = aliased(User), aliased(User)
    low = case((sender.id < recipient.id, sender.id), else_=recipient.id)
    high = case((sender.id < recipient.id, recipient.id), else_=sender.id)
    return (select(literal_column("'u'").label("kind"), sender.id.label("sender_id"),
                   Conversation.id.label("conversation_id"),
                   recipient.id.label("recipient_id"), recipient.status,
                   UserSettings.privacy_prefs,
                   _blocked(sender.id, recipient.id).label("blocked"),
                   _follows(recipient.id, sender.id).label("follows_sender"))
            .select_from(sender)
            .join(recipient, recipient.id.in_(bindparam("recipients", expanding=True)))
            .outerjoin(Conversation, and_(Conversation.user_a_id == low,
                                          Conversation.user_b_id == high))
            .outerjoin(UserSettings, UserSettings.user_id == recipient.id)
            .where(sender.id.in_(bindparam("senders", expanding=True)),
                   tuple_(sender.id, recipient.id).in_(bindparam("to_user", expanding=True))))


# Built once: (any sends into conversations, any sends to users) -> the statement.
_FACTS: dict[tuple[bool, bool], Any] = {
    (True, False): _in_conversations(),
    (False, True): _to_users(),
    (True, True): union_all(_in_conversations(), _to_users()),
}


def facts_query(targets: Iterable[Target]) -> tuple[Any, dict[str, Any]] | None:
    """The one statement (and its parameters) that reads the facts of every target; None
    for no targets. Expanding parameters: SQLAlchemy compiles it once per dialect."""
    in_conversation: dict[tuple[int, int], None] = {}
    to_user: dict[tuple[int, int], None] = {}
    for target in targets:
        if target.conversation_id is not None:
            in_conversation[(int(target.conversation_id), int(target.sender_id))] = None
        elif target.to_user_id is not None:
            to_user[(int(target.sender_id), int(target.to_user_id))] = None
    if not in_conversation and not to_user:
        return None
    params: dict[str, Any] = {}
    if in_conversation:
        params["in_conversation"] = list(in_conversation)
    if to_user:
        params["to_user"] = list(to_user)
        params["senders"] = sorted({s for s, _r in to_user})
        params["recipients"] = sorted({r for _s, r in to_user})
    return _FACTS[(bool(in_conversation), bool(to_user))], params


def facts_of_rows(rows: Iterable[Sequence[Any]]) -> dict[Target, Facts]:
    """The facts by target, from the rows of `facts_query` (through a session or raw)."""
    found: dict[Target, Facts] = {}
    for kind, sender_id, conversation_id, recipient_id, status, prefs, blocked, follows in rows:
        conversation = None if conversation_id is None else int(conversation_id)
        facts = Facts(conversation, int(recipient_id), status, allow_messages_from(prefs),
                      bool(blocked), bool(follows))
        if kind == "c":
            found[Target(int(sender_id), conversation, None)] = facts
        else:
            found[Target(int(sender_id), None, int(recipient_id))] = facts
    return found


async def load_facts(session: AsyncSession, targets: Iterable[Target]) -> dict[Target, Facts]:
    """`facts_query` through a session; a target with no facts is not in the result."""
    query = facts_query(targets)
    if query is None:
        return {}
    statement, params = query
    return facts_of_rows((await session.execute(statement, params)).all())


def allow_messages_from(stored: dict[str, Any] | str | None) -> str:
    """The privacy rule as users.privacy_of reads it (stored prefs over the defaults); the
    stored value is a dict through a session, its JSON text on a raw connection."""
    if not stored:
        return "everyone"
    if isinstance(stored, str):
        return _allow_messages_from_json(stored)
    return users.privacy_of_stored(stored).allow_messages_from


@functools.lru_cache(maxsize=4096)
def _allow_messages_from_json(stored: str) -> str:
    return allow_messages_from(codec.loads(stored) or None)


# -- the decision -------------------------------------------------------------------------------


def unknown_target(target: Target) -> NotFound:
    """The answer for a target with no facts: not a member of the conversation, or no such
    user (404 either way: a stranger does not learn that a conversation exists)."""
    if target.conversation_id is not None:
        return NotFound("Conversation not found")
    return NotFound("User not found")


def ensure_recipient(facts: Facts | None) -> Facts:
    """An unknown or banned recipient is not found."""
    if facts is None or facts.status is None or facts.status == "banned":
        raise NotFound("User not found")
    return facts


def decide(facts: Facts) -> bool:
    """The rules that need nothing beyond the facts: raise for an unknown or banned recipient
    (404) and a block either way (403); True when the privacy setting lets the message
    through, False when only "the recipient wrote in this conversation" still could."""
    ensure_recipient(facts)
    if facts.blocked:
        raise ChatBlocked()
    allowed = facts.allow_messages_from
    return allowed == "everyone" or (allowed == "following" and facts.follows_sender)


def refusal(facts: Facts) -> ChatNotAllowed:
    if facts.allow_messages_from == "following":
        return ChatNotAllowed("This user only accepts messages from people they follow")
    return ChatNotAllowed("This user does not accept direct messages")


async def ensure_allowed(session: AsyncSession, facts: Facts) -> None:
    """Raise unless the recipient may get the message. Whoever wrote first in a
    conversation may be answered: a reply is not unsolicited (blocks have no exception)."""
    if decide(facts):
        return
    if facts.conversation_id is not None:
        wrote = await session.execute(select(Message.id).where(
            Message.conversation_id == facts.conversation_id,
            Message.sender_id == facts.recipient_id).limit(1))
        if wrote.first() is not None:
            return
    raise refusal(facts)


async def check_sends(session: AsyncSession,
                      targets: Sequence[Target]) -> dict[Target, Facts | AppError]:
    """Every target's verdict: its facts when the message may go, else the error its sender
    gets (each target's own: one refusal does not affect the others)."""
    loaded = await load_facts(session, targets)
    verdicts: dict[Target, Facts | AppError] = {}
    for target in targets:
        facts = loaded.get(target)
        try:
            if facts is None:
                raise unknown_target(target)
            await ensure_allowed(session, facts)
        except AppError as error:
            verdicts[target] = error
        else:
            verdicts[target] = facts
    return verdicts


async def check_send(session: AsyncSession, target: Target) -> Facts:
    """`check_sends` for one target: its facts, or its error raised."""
    verdict = (await check_sends(session, [target]))[target]
    if isinstance(verdict, AppError):
        raise verdict
    return verdict


async def blocked_either_way(session: AsyncSession, user_id: int, other_id: int) -> bool:
    """A block in either direction between two users (typing is not relayed across one)."""
    found = await session.execute(_BLOCKED, {"user": user_id, "other": other_id})
    return bool(found.scalar())


_BLOCKED = select(_blocked(bindparam("user", type_=BigInteger),
                           bindparam("other", type_=BigInteger)))
