"""WeChat subscribe messages: one-time authorisations per template, and the push to users
who stayed offline after a DM or a notification (the notify queue's task calls `deliver`).

WeChat only delivers a subscribe message the user authorised (wx.requestSubscribeMessage,
one send per "accept"), so we count what is left per template and never send without one:
43101 is the exception, not the rule. Every attempt is recorded in `subscribe_sends`.
docs/notifications.md walks through the flow and the field-limit table.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.realtime import ConversationMember, Message, Notification, SubscribeQuota, \
    SubscribeSend
from models.users import User, UserSettings
from pawhome.platform import presence
from pawhome.identity import users
from pawhome.platform.cache import Cache
from pawhome.platform.errors import (ValidationFailed, WeChatError, WeChatRateLimited,
                            WeChatUnavailable, field_error)
from pawhome.platform.outbox import enqueue_task

log = logging.getLogger("pawhome.subscribe")

SEND_PATH = "/cgi-bin/message/subscribe/send"
TASK_NAME = "notify.send_subscribe_message"
RESULT_VALUES = ("accept", "reject", "ban", "filter")
# WeChat: 43101 the user refused / has no authorisation left; 47003 the data is invalid.
FINAL_ERRCODES = {43101, 47003}
NO_AUTHORISATION = 43101
BAD_DATA = 47003
# Categories without a template of their own use their family's (a reply is a comment).
PURPOSE_FALLBACK = {"reply": "comment", "mention": "comment"}
LOCAL_TIME = ZoneInfo("Asia/Shanghai")
# How long a push remembers what it already did (spent an authorisation, finished), so a
# retried or redelivered task neither spends twice nor sends twice.
PUSH_STATE_TTL = 2 * 24 * 3600


class TransientSendError(Exception):
    """WeChat could not take the message now; the task retries it later."""


@dataclass(frozen=True)
class Template:
    purpose: str
    template_id: str
    page: str
    fields: dict[str, str]


def templates(settings: Any) -> dict[str, Template]:
    """SUBSCRIBE_TEMPLATES by purpose ("message" or a notification category)."""
    out = {}
    for purpose, spec in (settings.subscribe_templates or {}).items():
        if isinstance(spec, dict) and spec.get("template_id"):
            out[purpose] = Template(purpose, str(spec["template_id"]), str(spec.get("page", "")),
                                    {str(k): str(v) for k, v in
                                     (spec.get("fields") or {}).items()})
    return out


def purpose_of(reason: str) -> str:
    """"message" -> "message"; "notification:reply" -> "reply"."""
    return reason.split(":", 1)[1] if reason.startswith("notification:") else reason


def template_for(settings: Any, reason: str) -> Template | None:
    known = templates(settings)
    purpose = purpose_of(reason)
    return known.get(purpose) or known.get(PURPOSE_FALLBACK.get(purpose, ""))


def pref_for(reason: str) -> str:
    """The notification_prefs switch that allows this push."""
    from pawhome.messaging.notifications import PREF_OF_CATEGORY

    if reason == "message":
        return "messages"
    return PREF_OF_CATEGORY.get(purpose_of(reason), "system")


# -- authorisations (wx.requestSubscribeMessage results) ----------------------------------------


class SubscriptionResults(BaseModel):
    """POST /v1/users/me/subscriptions: what wx.requestSubscribeMessage answered, template id
    -> accept | reject | ban | filter. Its `errMsg` entry may be passed along and is ignored."""
    model_config = ConfigDict(extra="forbid")
    results: dict[str, str] = Field(min_length=1, max_length=20)


def _checked_results(settings: Any, results: dict[str, str]) -> dict[str, str]:
    known = {t.template_id for t in templates(settings).values()}
    problems, clean = [], {}
    for template_id, value in results.items():
        if template_id == "errMsg":
            continue
        if template_id not in known:
            problems.append(field_error(f"results.{template_id}"[:100], "unknown template"))
        elif value not in RESULT_VALUES:
            problems.append(field_error(f"results.{template_id}"[:100],
                                        "must be accept, reject, ban or filter"))
        else:
            clean[template_id] = value
    if problems:
        raise ValidationFailed(errors=problems)
    return clean


async def _add_one(session: AsyncSession, user_id: int, template_id: str, cap: int) -> None:
    """One more authorisation (at most `cap`), in one upsert: concurrent first accepts of a
    template serialise on its row instead of racing an UPDATE-then-INSERT (whose savepoint
    an InnoDB deadlock would roll away with the whole transaction)."""
    table = SubscribeQuota.__table__
    values = {"user_id": user_id, "template_id": template_id, "remaining": min(1, cap),
              "updated_at": utcnow()}
    grown = case((table.c.remaining + 1 > cap, cap), else_=table.c.remaining + 1)
    if session.bind.dialect.name in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as upsert

        statement = upsert(table).values(**values)
        statement = statement.on_duplicate_key_update(
            remaining=grown, updated_at=statement.inserted.updated_at)
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert

        statement = upsert(table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.user_id, table.c.template_id],
            set_={"remaining": grown, "updated_at": statement.excluded.updated_at})
    await session.execute(statement)


async def _set_remaining(session: AsyncSession, user_id: int, template_id: str,
                         value: int) -> None:
    await session.execute(
        update(SubscribeQuota).where(SubscribeQuota.user_id == user_id,
                                     SubscribeQuota.template_id == template_id)
        .values(remaining=value, updated_at=utcnow())
        .execution_options(synchronize_session=False))


async def record_results(session: AsyncSession, settings: Any, user_id: int,
                         results: dict[str, str]) -> list[dict[str, Any]]:
    """Each "accept" adds one authorisation (up to SUBSCRIBE_QUOTA_CAP per template); "ban"
    (the user turned the template off for good) drops what was left; reject and filter
    change nothing. Returns the remaining authorisations per template."""
    for template_id, value in sorted(_checked_results(settings, results).items()):
        if value == "accept":
            await _add_one(session, user_id, template_id, settings.subscribe_quota_cap)
        elif value == "ban":
            await _set_remaining(session, user_id, template_id, 0)
    await session.flush()
    return await remaining_by_template(session, settings, user_id)


async def remaining_by_template(session: AsyncSession, settings: Any,
                                user_id: int) -> list[dict[str, Any]]:
    """[{template_id, purposes, remaining}] for every configured template."""
    purposes: dict[str, list[str]] = {}
    for template in templates(settings).values():
        purposes.setdefault(template.template_id, []).append(template.purpose)
    stored = dict((await session.execute(
        select(SubscribeQuota.template_id, SubscribeQuota.remaining).where(
            SubscribeQuota.user_id == user_id))).all())
    return [{"template_id": tid, "purposes": sorted(names), "remaining": int(stored.get(tid, 0))}
            for tid, names in sorted(purposes.items())]


async def spend_one(session: AsyncSession, user_id: int, template_id: str) -> bool:
    """Take one authorisation; False if none is left. Atomic: two sends never share one."""
    changed = (await session.execute(
        update(SubscribeQuota).where(SubscribeQuota.user_id == user_id,
                                     SubscribeQuota.template_id == template_id,
                                     SubscribeQuota.remaining > 0)
        .values(remaining=SubscribeQuota.remaining - 1, updated_at=utcnow())
        .execution_options(synchronize_session=False))).rowcount
    return bool(changed)


async def _give_back(session: AsyncSession, user_id: int, template_id: str) -> None:
    await session.execute(
        update(SubscribeQuota).where(SubscribeQuota.user_id == user_id,
                                     SubscribeQuota.template_id == template_id)
        .values(remaining=SubscribeQuota.remaining + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False))


# -- scheduling ---------------------------------------------------------------------------------


async def schedule_push(session: AsyncSession, user_id: int, reason: str,
                        conversation_id: int | None = None,
                        notification_id: int | None = None, *,
                        grace_seconds: float | None = None, cache: Cache | None = None) -> bool:
    """Queue a subscribe message for `user_id`, sent after SUBSCRIBE_GRACE_SECONDS if they
    are still offline then (and their preferences, quota and quiet period allow). `reason`:
    "message" (with conversation_id) or "notification:<category>" (with notification_id).
    Commits with the caller's transaction. False if nothing was queued.

    With `cache` (the chat path, many calls a second), two cheap filters come first: a
    recipient who is online now gets the event live and needs no push, and while one push
    for a conversation is pending, further messages in it queue nothing more — the task
    would skip them anyway (at most one per conversation per quiet period). If the caller's
    transaction rolls back after this, that conversation just gets no push for the window.
    """
    from settings import get_settings

    settings = get_settings()
    if template_for(settings, reason) is None:
        return False
    grace = settings.subscribe_grace_seconds if grace_seconds is None else grace_seconds
    if cache is not None:
        if await presence.is_online(cache, user_id):
            return False
        pending = cache.key("subscribe", "pending", int(user_id), conversation_id or reason)
        if not await cache.redis.set(pending, 1, nx=True, ex=max(1, int(grace) or 1)):
            return False
    enqueue_task(session, TASK_NAME, int(user_id), reason, conversation_id=conversation_id,
                 notification_id=notification_id, push_id=uuid.uuid4().hex,
                 countdown=max(0.0, float(grace)))
    return True


# KEYS: presence key, pending key per (user, conversation). ARGV: now ms, grace s.
# schedule_push's two filters for many recipients in one call: 1 = offline and no push
# pending for that conversation yet (the pending mark is now set), 0 = nothing to queue.
_PUSH_FILTER_LUA = """
local out = {}
for i = 1, #KEYS, 2 do
  if redis.call('ZCOUNT', KEYS[i], ARGV[1], '+inf') > 0 then
    out[#out + 1] = 0
  elseif redis.call('SET', KEYS[i + 1], 1, 'NX', 'EX', ARGV[2]) then
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


async def message_pushes_due(cache: Cache,
                             recipients: list[tuple[int, int]]) -> list[tuple[str, dict, float]]:
    """`schedule_push(..., reason="message", cache=...)` for many (recipient, conversation)
    pairs at once (the chat group commit): one Redis call applies the online and pending
    filters to all of them. Returns the task rows to enqueue in the caller's transaction, as
    (task name, payload, countdown seconds) — exactly what `enqueue_task` would write."""
    from settings import get_settings

    settings = get_settings()
    if not recipients or template_for(settings, "message") is None:
        return []
    grace = settings.subscribe_grace_seconds
    pairs = list(dict.fromkeys(recipients))
    keys: list[str] = []
    for user_id, conversation_id in pairs:
        keys += [presence.presence_key(cache, user_id),
                 cache.key("subscribe", "pending", int(user_id), conversation_id)]
    due = await cache.script(_PUSH_FILTER_LUA)(
        keys=keys, args=[int(time.time() * 1000), max(1, int(grace) or 1)])
    return [(TASK_NAME, {"args": [int(user_id), "message"],
                         "kwargs": {"conversation_id": conversation_id, "notification_id": None,
                                    "push_id": uuid.uuid4().hex}}, max(0.0, float(grace)))
            for (user_id, conversation_id), wanted in zip(pairs, due) if int(wanted)]


# -- field values ------------------------------------------------------------------------------

_ELLIPSIS = "…"
# Maximum length per template field type (WeChat's subscribe-message rules).
FIELD_LIMITS = {
    "thing": 20, "number": 32, "letter": 32, "symbol": 5, "character_string": 32,
    "time": 32, "date": 32, "amount": 11, "phone_number": 17, "car_number": 8, "name": 10,
    "phrase": 5,
}
_FIELD_TYPE = re.compile(r"^([a-z_]+?)\d*$")
_ASCII_NAME = re.compile(r"^[A-Za-z .'-]+$")


def field_type(field: str) -> str:
    """"thing2" -> "thing", "character_string10" -> "character_string"."""
    match = _FIELD_TYPE.match(field)
    return match.group(1) if match else field


def format_time(value: dt.datetime) -> str:
    """WeChat's time/date format: 2024年5月1日 15:01 (Asia/Shanghai)."""
    local = value.replace(tzinfo=dt.timezone.utc).astimezone(LOCAL_TIME)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _cut(text: str, limit: int, ellipsis: bool = True) -> str:
    if len(text) <= limit:
        return text
    return text[:limit - 1] + _ELLIPSIS if ellipsis and limit > 1 else text[:limit]


def field_value(field: str, value: Any) -> str:
    """A value as WeChat accepts it for this field's type: trimmed to the type's limit,
    characters the type forbids removed, never empty."""
    kind = field_type(field)
    if isinstance(value, dt.datetime):
        text = format_time(value)
    else:
        text = " ".join(str(value if value is not None else "").split())
    if kind in ("number",):
        text = re.sub(r"[^0-9.]", "", text)
    elif kind == "letter":
        text = re.sub(r"[^A-Za-z]", "", text)
    elif kind == "phrase":
        text = re.sub(r"[^\u4e00-\u9fff]", "", text)
    elif kind in ("character_string", "phone_number", "car_number", "amount", "symbol"):
        text = text.replace(" ", "")
    if kind == "name":
        limit = 20 if _ASCII_NAME.match(text) else 10
        text = _cut(text, limit, ellipsis=False)
    elif kind in ("thing",):
        text = _cut(text, FIELD_LIMITS[kind])
    else:
        text = _cut(text, FIELD_LIMITS.get(kind, 20), ellipsis=False)
    return text or ("-" if kind in ("thing", "name", "character_string", "symbol") else "0"
                    if kind in ("number", "amount") else "-")


def build_data(template: Template, context: dict[str, Any]) -> dict[str, dict[str, str]]:
    """subscribeMessage.send's `data` from the template's field mapping."""
    return {field: {"value": field_value(field, context.get(source, ""))}
            for field, source in template.fields.items()}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def build_page(template: Template, context: dict[str, Any]) -> str:
    try:
        return template.page.format_map(_Blank({k: "" if v is None else v
                                                for k, v in context.items()}))
    except (ValueError, IndexError):
        return template.page.split("?", 1)[0]


# -- delivery (the notify task) ------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # sent | failed | skipped | duplicate
    detail: str = ""
    errcode: int | None = None


async def _is_online(cache: Any, user_id: int) -> bool:
    return bool(await presence.is_online(cache, user_id))


async def _message_context(session: AsyncSession, user_id: int,
                           conversation_id: int | None) -> dict[str, Any] | None:
    """The newest message the user has not read in the conversation, or None."""
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
    from pawhome.messaging.chat import preview_of

    return {"sender_name": sender.nickname if sender else "", "preview": preview_of(message),
            "time": message.created_at, "conversation_id": conversation_id,
            "message_id": message.id, "title": "New message", "text": preview_of(message)}


async def _notification_context(session: AsyncSession, user_id: int,
                                notification_id: int | None) -> dict[str, Any] | None:
    """The notification, if it is still the user's and unread, or None."""
    if notification_id is None:
        return None
    row = await session.get(Notification, notification_id)
    if row is None or row.user_id != user_id or row.read_at is not None:
        return None
    from pawhome.messaging.notifications import public_shapes

    shape = (await public_shapes(session, [row]))[0]
    payload = shape["payload"]
    first_actor = shape["actors"][0]["nickname"] if shape["actors"] else ""
    return {"actor_name": first_actor, "text": shape["text"],
            "title": payload.get("title") or shape["text"], "body": payload.get("body", ""),
            "time": row.updated_at, "category": row.category, "kind": row.kind,
            "notification_id": row.id, "target_type": row.target_type,
            "target_id": row.target_id}


class _PushState:
    """Per-push memory in Redis, so retries and redeliveries stay idempotent."""

    def __init__(self, cache: Any, push_id: str) -> None:
        self.redis = cache.redis
        self.key = cache.key("subscribe", "push", push_id)

    async def get(self) -> dict[str, str]:
        raw = await self.redis.hgetall(self.key)
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set(self, field: str, value: str = "1") -> None:
        await self.redis.hset(self.key, field, value)
        await self.redis.expire(self.key, PUSH_STATE_TTL)

    async def clear(self, field: str) -> None:
        await self.redis.hdel(self.key, field)


def quiet_key(cache: Any, user_id: int, reason: str, conversation_id: int | None) -> str:
    scope = f"c{conversation_id}" if conversation_id is not None else f"n:{purpose_of(reason)}"
    return cache.key("subscribe", "quiet", user_id, scope)


async def _record(resources: Any, user_id: int, template_id: str, reason: str,
                  outcome: Outcome) -> Outcome:
    async with resources.db.session() as session, session.begin():
        session.add(SubscribeSend(user_id=user_id, template_id=template_id, reason=reason[:32],
                                  status=outcome.status, errcode=outcome.errcode,
                                  detail=outcome.detail[:255], created_at=utcnow()))
    log.info("subscribe message to user %s (%s): %s %s", user_id, reason, outcome.status,
             outcome.detail or outcome.errcode or "")
    return outcome


async def deliver(resources: Any, user_id: int, reason: str, *,
                  conversation_id: int | None = None, notification_id: int | None = None,
                  push_id: str | None = None, final_attempt: bool = False) -> Outcome:
    """Send one subscribe message if it is still due; the body of the notify task.

    Skips (recorded, with why) when the user is online, their preferences say no, the
    message or notification was read meanwhile, no authorisation is left, or the quiet period
    of this conversation (or notification category) is running. 43101 and 47003 are final;
    transient failures raise TransientSendError (after giving the authorisation back) so the
    task retries. Safe to run again for the same push_id.
    """
    settings, cache = resources.settings, resources.cache
    state = _PushState(cache, push_id or uuid.uuid4().hex)
    memory = await state.get()
    if memory.get("done"):
        return Outcome("duplicate", memory.get("done", ""))
    template = template_for(settings, reason)

    async def finish(outcome: Outcome) -> Outcome:
        await _record(resources, user_id, template.template_id if template else "", reason,
                      outcome)
        await state.set("done", outcome.status)
        return outcome

    if template is None:
        return await finish(Outcome("skipped", "no template for this reason"))
    async with resources.db.session() as session:
        user = await session.get(User, user_id)
        if user is None:
            return Outcome("skipped", "no such user")  # nothing to record it against
        openid, banned = user.openid, user.status == "banned"
        prefs = users.notification_prefs_of_row(await session.get(UserSettings, user_id))
        if reason == "message":
            context = await _message_context(session, user_id, conversation_id)
        else:
            context = await _notification_context(session, user_id, notification_id)
        remaining = (await session.execute(select(SubscribeQuota.remaining).where(
            SubscribeQuota.user_id == user_id,
            SubscribeQuota.template_id == template.template_id))).scalar() or 0
    spent = bool(memory.get("spent"))
    if not openid or banned:
        return await finish(Outcome("skipped", "no WeChat openid" if not openid else "banned"))
    if await _is_online(cache, user_id):
        return await finish(Outcome("skipped", "online"))
    if not getattr(prefs, pref_for(reason), True):
        return await finish(Outcome("skipped", "turned off in notification preferences"))
    if context is None:
        return await finish(Outcome("skipped", "already read"))
    if remaining <= 0 and not spent:
        return await finish(Outcome("skipped", "no authorisation left"))
    quiet = quiet_key(cache, user_id, reason, conversation_id)
    if not await cache.redis.set(quiet, state.key, nx=True,
                                 ex=max(1, settings.subscribe_quiet_seconds)):
        holder = await cache.redis.get(quiet)
        if holder is None or holder.decode() != state.key:  # not our own earlier attempt
            return await finish(Outcome("skipped", "quiet period"))
    if not spent:
        async with resources.db.session() as session, session.begin():
            spent = await spend_one(session, user_id, template.template_id)
        if not spent:
            await _release_quiet(cache, quiet, state.key)
            return await finish(Outcome("skipped", "no authorisation left"))
        await state.set("spent")
    body = {"touser": openid, "template_id": template.template_id,
            "page": build_page(template, context), "data": build_data(template, context),
            "miniprogram_state": settings.subscribe_miniprogram_state, "lang": "zh_CN"}
    from pawhome.integrations.wechat import EXPIRED_TOKEN_ERRCODES, WeChatClient

    try:
        await WeChatClient(resources).call("POST", SEND_PATH, json=body)
    except (WeChatUnavailable, WeChatRateLimited) as error:
        return await _transient(resources, state, user_id, template, reason, quiet, error,
                                final_attempt, finish)
    except WeChatError as error:
        errcode = getattr(error, "errcode", None)
        if errcode in EXPIRED_TOKEN_ERRCODES:  # still refused after one fresh token
            return await _transient(resources, state, user_id, template, reason, quiet, error,
                                    final_attempt, finish)
        async with resources.db.session() as session, session.begin():
            if errcode == NO_AUTHORISATION:  # our count was wrong: WeChat has none left
                await _set_remaining(session, user_id, template.template_id, 0)
            elif errcode == BAD_DATA:  # nothing was delivered, so nothing was used up
                await _give_back(session, user_id, template.template_id)
        return await finish(Outcome("failed", str(error)[:255], errcode))
    return await finish(Outcome("sent"))


async def _release_quiet(cache: Any, key: str, owner: str) -> None:
    holder = await cache.redis.get(key)
    if holder is not None and holder.decode() == owner:
        await cache.redis.delete(key)


async def _transient(resources: Any, state: _PushState, user_id: int, template: Template,
                     reason: str, quiet: str, error: Exception, final_attempt: bool,
                     finish: Any) -> Outcome:
    """Give the authorisation back (the retry takes it again) and let the task retry; on the
    last attempt record the failure instead."""
    async with resources.db.session() as session, session.begin():
        await _give_back(session, user_id, template.template_id)
    await state.clear("spent")
    if final_attempt:
        await _release_quiet(resources.cache, quiet, state.key)
        return await finish(Outcome("failed", f"gave up: {error}"[:255],
                                    getattr(error, "errcode", None)))
    raise TransientSendError(str(error)) from error


async def recent_sends(session: AsyncSession, user_id: int,
                       limit: int = 20) -> list[dict[str, Any]]:
    rows = (await session.execute(
        select(SubscribeSend).where(SubscribeSend.user_id == user_id)
        .order_by(SubscribeSend.id.desc()).limit(limit))).scalars()
    return [{"template_id": r.template_id, "reason": r.reason, "status": r.status,
             "errcode": r.errcode, "detail": r.detail, "created_at": r.created_at} for r in rows]
