"""WeChat subscribe messages: one-time authorisations per template, and the push to users
who stayed offline after a DM or a notification (the notify queue's task calls `deliver`).

WeChat only delivers a subscribe message the user authorised (wx.requestSubscribeMessage,
one send per "accept"), so we count what is left per template and never send without one:
43101 is the exception, not the rule. Every attempt is recorded in `subscribe_sends`.
What a push is about is registered here by the module that schedules it (`register_push_reason`:
chat.py for "message", notifications.py for "notification:<category>"), so this module
imports neither. Templates and field values: subscribe_templates.py. docs/notifications.md
walks through the flow and the field-limit table.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import CursorResult, Table, case, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.realtime import SubscribeQuota, SubscribeSend
from models.users import User, UserSettings
from pawhome.identity import users
from pawhome.integrations.wechat import EXPIRED_TOKEN_ERRCODES, WeChatClient
from pawhome.messaging.subscribe_templates import (  # noqa: F401
    FIELD_LIMITS,
    Template,
    build_data,
    build_page,
    field_type,
    field_value,
    format_time,
    purpose_of,
    template_for,
    templates,
)
from pawhome.platform import presence
from pawhome.platform.cache import Cache
from pawhome.platform.errors import (
    ValidationFailed,
    WeChatError,
    WeChatRateLimited,
    WeChatUnavailable,
    field_error,
)
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.resources import Resources
from settings import Settings, get_settings

log = logging.getLogger("pawhome.subscribe")

SEND_PATH = "/cgi-bin/message/subscribe/send"
TASK_NAME = "notify.send_subscribe_message"
RESULT_VALUES = ("accept", "reject", "ban", "filter")
# WeChat: 43101 the user refused / has no authorisation left; 47003 the data is invalid.
FINAL_ERRCODES = {43101, 47003}
NO_AUTHORISATION = 43101
BAD_DATA = 47003
# How long a push remembers what it already did (spent an authorisation, finished), so a
# retried or redelivered task neither spends twice nor sends twice.
PUSH_STATE_TTL = 2 * 24 * 3600


class TransientSendError(Exception):
    """WeChat could not take the message now; the task retries it later."""


# -- push reasons -------------------------------------------------------------------------------
#
# A push's reason says what it is about: "message" (a direct message) or
# "notification:<category>". The module that schedules pushes of a kind registers it: which
# notification_prefs switch allows them (by purpose: "message", "reply", ...), and how to read
# what the push says when it is due (None when it no longer is: read meanwhile, recalled).


class PushContext(Protocol):
    def __call__(self, session: AsyncSession, user_id: int, *, conversation_id: int | None,
                 notification_id: int | None) -> Awaitable[dict[str, Any] | None]: ...


@dataclass(frozen=True)
class PushReason:
    pref_of: Callable[[str], str]
    context: PushContext


_reasons: dict[str, PushReason] = {}


def register_push_reason(kind: str, *, pref_of: Callable[[str], str],
                         context: PushContext) -> None:
    """Let pushes of `kind` ("message", "notification") be sent."""
    _reasons[kind] = PushReason(pref_of, context)


def push_reason(reason: str) -> PushReason:
    kind = reason.split(":", 1)[0]
    found = _reasons.get(kind)
    if found is None:  # a wiring error, not a skip: the push would be lost silently
        raise RuntimeError(f"no push reason {kind!r} registered: is the module that "
                           "registers it imported by pawhome.domains?")
    return found


def pref_for(reason: str) -> str:
    """The notification_prefs switch that allows this push."""
    return push_reason(reason).pref_of(purpose_of(reason))


# -- authorisations (wx.requestSubscribeMessage results) ----------------------------------------


class SubscriptionResults(BaseModel):
    """POST /v1/users/me/subscriptions: what wx.requestSubscribeMessage answered, template id
    -> accept | reject | ban | filter. Its `errMsg` entry may be passed along and is ignored."""
    model_config = ConfigDict(extra="forbid")
    results: dict[str, str] = Field(min_length=1, max_length=20)


def _checked_results(settings: Settings, results: dict[str, str]) -> dict[str, str]:
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
    table = cast(Table, SubscribeQuota.__table__)
    values = {"user_id": user_id, "template_id": template_id, "remaining": min(1, cap),
              "updated_at": utcnow()}
    grown = case((table.c.remaining + 1 > cap, cap), else_=table.c.remaining + 1)
    statement: Any
    if session.get_bind().dialect.name in ("mysql", "mariadb"):
        statement = mysql_insert(table).values(**values)
        statement = statement.on_duplicate_key_update(
            remaining=grown, updated_at=statement.inserted.updated_at)
    else:
        statement = sqlite_insert(table).values(**values)
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


async def record_results(resources: Resources, user_id: int,
                         results: dict[str, str]) -> list[dict[str, Any]]:
    """POST /v1/users/me/subscriptions. Each "accept" adds one authorisation (up to
    SUBSCRIBE_QUOTA_CAP per template); "ban" (the user turned the template off for good)
    drops what was left; reject and filter change nothing. Returns the remaining
    authorisations per template."""
    settings = resources.settings
    clean = _checked_results(settings, results)
    async with resources.db.session() as session, session.begin():
        for template_id, value in sorted(clean.items()):
            if value == "accept":
                await _add_one(session, user_id, template_id, settings.subscribe_quota_cap)
            elif value == "ban":
                await _set_remaining(session, user_id, template_id, 0)
        await session.flush()
        return await _remaining_by_template(session, settings, user_id)


async def remaining_by_template(resources: Resources, user_id: int) -> list[dict[str, Any]]:
    """GET /v1/users/me/subscriptions: [{template_id, purposes, remaining}] for every
    configured template."""
    async with resources.db.session() as session:
        return await _remaining_by_template(session, resources.settings, user_id)


async def _remaining_by_template(session: AsyncSession, settings: Settings,
                                 user_id: int) -> list[dict[str, Any]]:
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
    changed = cast(CursorResult[Any], await session.execute(
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


async def message_pushes_due(
        cache: Cache, recipients: list[tuple[int, int]],
) -> list[tuple[str, list[Any], dict[str, Any], float]]:
    """`schedule_push(..., reason="message", cache=...)` for many (recipient, conversation)
    pairs at once (the chat group commit): one Redis call applies the online and pending
    filters to all of them. Returns the tasks to enqueue in the caller's transaction, as
    (task name, args, kwargs, countdown seconds) — what `schedule_push` would pass to
    `enqueue_task` (the group commit writes them with outbox.claimed_batch_insert)."""
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
    return [(TASK_NAME, [int(user_id), "message"],
             {"conversation_id": conversation_id, "notification_id": None,
              "push_id": uuid.uuid4().hex}, max(0.0, float(grace)))
            for (user_id, conversation_id), wanted in zip(pairs, due, strict=True)
            if int(wanted)]


# -- delivery (the notify task) ------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # sent | failed | skipped | duplicate
    detail: str = ""
    errcode: int | None = None


async def _is_online(cache: Cache, user_id: int) -> bool:
    return bool(await presence.is_online(cache, user_id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _PushState:
    """Per-push memory in Redis, so retries and redeliveries stay idempotent."""

    def __init__(self, cache: Cache, push_id: str) -> None:
        self.redis = cache.redis
        self.key = cache.key("subscribe", "push", push_id)

    async def get(self) -> dict[str, str]:
        raw = await self.redis.hgetall(self.key)
        return {_text(k): _text(v) for k, v in raw.items()}

    async def set(self, field: str, value: str = "1") -> None:
        await self.redis.hset(self.key, field, value)
        await self.redis.expire(self.key, PUSH_STATE_TTL)

    async def clear(self, field: str) -> None:
        await self.redis.hdel(self.key, field)


def quiet_key(cache: Cache, user_id: int, reason: str, conversation_id: int | None) -> str:
    scope = f"c{conversation_id}" if conversation_id is not None else f"n:{purpose_of(reason)}"
    return cache.key("subscribe", "quiet", user_id, scope)


async def _record(resources: Resources, user_id: int, template_id: str, reason: str,
                  outcome: Outcome) -> Outcome:
    async with resources.db.session() as session, session.begin():
        session.add(SubscribeSend(user_id=user_id, template_id=template_id, reason=reason[:32],
                                  status=outcome.status, errcode=outcome.errcode,
                                  detail=outcome.detail[:255], created_at=utcnow()))
    log.info("subscribe message to user %s (%s): %s %s", user_id, reason, outcome.status,
             outcome.detail or outcome.errcode or "")
    return outcome


async def deliver(resources: Resources, user_id: int, reason: str, *,
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
        context = await push_reason(reason).context(
            session, user_id, conversation_id=conversation_id, notification_id=notification_id)
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
        if holder is None or _text(holder) != state.key:  # not our own earlier attempt
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


async def _release_quiet(cache: Cache, key: str, owner: str) -> None:
    holder = await cache.redis.get(key)
    if holder is not None and _text(holder) == owner:
        await cache.redis.delete(key)


async def _transient(resources: Resources, state: _PushState, user_id: int,
                     template: Template, reason: str, quiet: str, error: Exception,
                     final_attempt: bool,
                     finish: Callable[[Outcome], Awaitable[Outcome]]) -> Outcome:
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
