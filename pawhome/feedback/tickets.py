"""Feedback tickets: the one writer of `feedback`, `feedback_replies` and (through
states.py) `feedback_events`.

A user sends a ticket (a category from CATEGORIES, text through the word filter, up to
MAX_IMAGES of their own ready images, optional contact, app version and device details) at
most FEEDBACK_PER_HOUR / FEEDBACK_PER_DAY times; they read their own tickets only (another
user's id is 404, as if it did not exist). Admins list, filter and search every ticket,
reply (the user is notified, live), close and reopen.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.feedback import Feedback, FeedbackEvent, FeedbackReply
from models.media import Media
from models.users import User
from pawhome.feedback import states
from pawhome.media.uploads import require_ready, variants_view
from pawhome.messaging import notifications
from pawhome.platform.errors import NotFound, RateLimited
from pawhome.platform.fields import NOT_BLANK, Id
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.platform.wordfilter import screen_text
from pawhome.stats.metrics import count_in_day, register_metric
from settings import Settings

MAX_IMAGES = 9
TEXT_MIN, TEXT_MAX = 5, 1000
REPLY_MAX = 1000
TARGET = "feedback"  # the notification's target_type
PHONE_DIGITS = 5  # a search of this many digits or more may be part of a contact

FeedbackCategory = Literal["bug", "suggestion", "complaint", "account", "payment", "order",
                           "service", "content", "other"]
# The fixed list, with the label a client shows.
CATEGORIES: dict[str, str] = {
    "bug": "功能异常", "suggestion": "产品建议", "complaint": "投诉", "account": "账号问题",
    "payment": "支付问题", "order": "订单与售后", "service": "宠物服务", "content": "内容举报",
    "other": "其他"}

_SAFE_TEXT = r"^[^\u0000-\u001f\u007f]*$"  # one line, no control characters


class DeviceInfo(BaseModel):
    """What the mini-program's wx.getSystemInfo says, as far as a client wants to tell."""
    model_config = ConfigDict(extra="forbid")
    brand: str = Field("", max_length=32, pattern=_SAFE_TEXT)
    model: str = Field("", max_length=64, pattern=_SAFE_TEXT)
    system: str = Field("", max_length=64, pattern=_SAFE_TEXT, description="e.g. iOS 17.2")
    platform: str = Field("", max_length=16, pattern=_SAFE_TEXT, description="ios, android…")
    wechat_version: str = Field("", max_length=32, pattern=_SAFE_TEXT)
    sdk_version: str = Field("", max_length=32, pattern=_SAFE_TEXT)


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: FeedbackCategory
    text: str = Field(min_length=TEXT_MIN, max_length=TEXT_MAX, pattern=NOT_BLANK)
    media_ids: list[Id] = Field(default_factory=list, max_length=MAX_IMAGES,
                                description="the caller's ready images")
    contact: str = Field("", max_length=64, pattern=_SAFE_TEXT,
                         description="a phone number, WeChat id or e-mail, if the user wants")
    app_version: str = Field("", max_length=32, pattern=r"^[0-9A-Za-z.+_\-]*$")
    device: DeviceInfo = Field(default_factory=DeviceInfo)


class ReplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=REPLY_MAX, pattern=NOT_BLANK)


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["close", "reopen"]
    reason: str = Field("", max_length=255, pattern=_SAFE_TEXT)


class MyFeedbackQuery(PageQuery):
    status: states.FeedbackStatus | None = None


class AdminFeedbackQuery(PageQuery):
    status: states.FeedbackStatus | None = None
    category: FeedbackCategory | None = None
    user_id: int | None = Field(None, ge=1, le=2**63 - 1)
    q: str | None = Field(None, min_length=1, max_length=64,
                          description="a ticket id (digits), words in the text, or part "
                                      "of the contact")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


# -- writing --------------------------------------------------------------------------------------


async def _check_rate(session: AsyncSession, settings: Settings, user_id: int) -> None:
    """At most feedback_per_hour and feedback_per_day tickets in those rolling windows. The
    user's row is locked first, so two submits at once count one after the other."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    now = utcnow()
    for limit, window in ((settings.feedback_per_hour, dt.timedelta(hours=1)),
                          (settings.feedback_per_day, dt.timedelta(days=1))):
        recent = list((await session.execute(
            select(Feedback.created_at).where(Feedback.user_id == user_id,
                                              Feedback.created_at > now - window)
            .order_by(Feedback.created_at.desc()).limit(limit))).scalars())
        if len(recent) >= limit:
            retry = max(1, math.ceil((recent[-1] + window - now).total_seconds()))
            raise RateLimited(f"Too much feedback; try again in {retry}s",
                              headers={"Retry-After": str(retry)})


async def submit_feedback(resources: Resources, user_id: int,
                          body: FeedbackBody) -> dict[str, Any]:
    """A user's new ticket, `open`. Text with a prohibited word is 422 (SensitiveContent);
    an image that is not the caller's ready image is 422 naming it (`media_ids.3`)."""
    text = body.text.strip()
    screen_text(text, "text")
    async with resources.db.session() as session, session.begin():
        await _check_rate(session, resources.settings, user_id)
        await require_ready(session, user_id, list(body.media_ids), kind="image")
        feedback = Feedback(user_id=user_id, category=body.category, text=text,
                            media_ids=list(body.media_ids), contact=body.contact.strip(),
                            app_version=body.app_version,
                            device=body.device.model_dump(exclude_defaults=True),
                            status="open", reply_count=0)
        session.add(feedback)
        await session.flush()
        states.record_submitted(session, feedback)
        return await _detail(session, resources.settings, feedback, staff=False)


async def _lock(session: AsyncSession, feedback_id: int) -> Feedback:
    feedback = (await session.execute(select(Feedback).where(Feedback.id == feedback_id)
                                      .with_for_update())).scalar_one_or_none()
    if feedback is None:
        raise NotFound("No such feedback")
    return feedback


async def reply(resources: Resources, admin_id: int, feedback_id: int,
                body: ReplyBody) -> dict[str, Any]:
    """An admin answers a ticket (open or replied; a closed one is 409 until reopened); the
    user gets a `system` notification, live."""
    text = body.text.strip()
    async with resources.db.session() as session, session.begin():
        feedback = await _lock(session, feedback_id)
        states.apply(session, feedback, "reply", actor_type="admin", actor_id=admin_id)
        now = feedback.updated_at
        session.add(FeedbackReply(feedback_id=feedback.id, staff_id=admin_id, text=text,
                                  created_at=now))
        feedback.reply_count += 1
        feedback.last_replied_at = now
        await session.flush()
        view = await _detail(session, resources.settings, feedback, staff=True)
        await notifications.notify(
            session, feedback.user_id, "system", "feedback_replied", target_type=TARGET,
            target_id=feedback.id,
            payload={"title": "客服回复了你的反馈", "feedback_id": feedback.id,
                     "text": text[:100]})
        return view


async def change_status(resources: Resources, admin_id: int, feedback_id: int,
                        body: ActionBody) -> dict[str, Any]:
    """An admin closes or reopens a ticket (409 FeedbackStateConflict from a status that does
    not allow it)."""
    async with resources.db.session() as session, session.begin():
        feedback = await _lock(session, feedback_id)
        states.apply(session, feedback, body.action, actor_type="admin", actor_id=admin_id,
                     reason=body.reason.strip())
        await session.flush()
        return await _detail(session, resources.settings, feedback, staff=True)


# -- reading --------------------------------------------------------------------------------------


async def _media(session: AsyncSession, rows: list[Feedback]) -> dict[int, Media]:
    ids = {int(m) for r in rows for m in (r.media_ids or [])}
    if not ids:
        return {}
    return {m.id: m for m in (await session.execute(
        select(Media).where(Media.id.in_(ids)))).scalars()}


def _images(settings: Settings, row: Feedback, media: dict[int, Media]) -> list[dict[str, Any]]:
    out = []
    for media_id in row.media_ids or []:
        item = media.get(int(media_id))
        if item is not None and item.status == "ready":
            out.append({"media_id": item.id, "width": item.width, "height": item.height,
                        "variants": variants_view(settings, item)})
    return out


def _summary(settings: Settings, row: Feedback, media: dict[int, Media]) -> dict[str, Any]:
    return {"id": row.id, "category": row.category,
            "category_label": CATEGORIES.get(row.category, row.category), "text": row.text,
            "images": _images(settings, row, media), "contact": row.contact,
            "app_version": row.app_version, "device": dict(row.device or {}),
            "status": row.status, "reply_count": row.reply_count,
            "last_replied_at": _iso(row.last_replied_at), "closed_at": _iso(row.closed_at),
            "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at)}


async def _users(session: AsyncSession, ids: set[int]) -> dict[int, User]:
    if not ids:
        return {}
    return {u.id: u for u in (await session.execute(
        select(User).where(User.id.in_(ids)))).scalars()}


def _user_view(user_id: int, users: dict[int, User]) -> dict[str, Any]:
    user = users.get(user_id)
    return {"id": user_id, "nickname": user.nickname if user else "",
            "avatar_url": user.avatar_url if user else ""}


async def _detail(session: AsyncSession, settings: Settings, row: Feedback, *,
                  staff: bool) -> dict[str, Any]:
    """One ticket with its replies; for staff also who wrote it, who replied and the
    timeline. A user sees that "staff" replied, not which admin."""
    view = _summary(settings, row, await _media(session, [row]))
    replies = list((await session.execute(select(FeedbackReply).where(
        FeedbackReply.feedback_id == row.id).order_by(FeedbackReply.id))).scalars())
    view["replies"] = [{"id": r.id, "text": r.text, "created_at": _iso(r.created_at),
                        **({"staff_id": r.staff_id} if staff else {})} for r in replies]
    if staff:
        view["user"] = _user_view(row.user_id, await _users(session, {row.user_id}))
        timeline = (await session.execute(select(FeedbackEvent).where(
            FeedbackEvent.feedback_id == row.id).order_by(FeedbackEvent.id))).scalars()
        view["events"] = [{"action": e.action, "from": e.from_status, "to": e.to_status,
                           "actor_type": e.actor_type, "actor_id": e.actor_id,
                           "reason": e.reason, "at": _iso(e.created_at)} for e in timeline]
    return view


async def my_feedback(resources: Resources, user_id: int,
                      query: MyFeedbackQuery) -> dict[str, Any]:
    """The user's own tickets, newest first."""
    conditions: list[Any] = [Feedback.user_id == user_id]
    if query.status:
        conditions.append(Feedback.status == query.status)
    return await _page(resources, conditions, query, staff=False)


async def my_ticket(resources: Resources, user_id: int, feedback_id: int) -> dict[str, Any]:
    """One of the user's tickets with the replies; anyone else's is 404."""
    async with resources.db.session() as session:
        row = await session.get(Feedback, feedback_id)
        if row is None or row.user_id != user_id:
            raise NotFound("No such feedback")
        return await _detail(session, resources.settings, row, staff=False)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def admin_list(resources: Resources, query: AdminFeedbackQuery) -> dict[str, Any]:
    """Every ticket, newest first, filtered by status, category, user and a search: a few
    digits are a ticket id, PHONE_DIGITS or more an id or part of a contact, anything else
    words in the text or the contact."""
    conditions: list[Any] = []
    if query.status:
        conditions.append(Feedback.status == query.status)
    if query.category:
        conditions.append(Feedback.category == query.category)
    if query.user_id:
        conditions.append(Feedback.user_id == query.user_id)
    if query.q:
        words = query.q.strip()
        contact = Feedback.contact.like(_like(words), escape="\\")
        if words.isdigit() and len(words) < PHONE_DIGITS:  # a ticket id
            conditions.append(Feedback.id == int(words))
        elif words.isdigit():  # a phone number (or a long id)
            ticket = Feedback.id == int(words) if int(words) < 2**63 else false()
            conditions.append(or_(ticket, contact))
        else:
            conditions.append(or_(Feedback.text.like(_like(words), escape="\\"), contact))
    return await _page(resources, conditions, query, staff=True)


async def admin_ticket(resources: Resources, feedback_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        row = await session.get(Feedback, feedback_id)
        if row is None:
            raise NotFound("No such feedback")
        return await _detail(session, resources.settings, row, staff=True)


async def _page(resources: Resources, conditions: list[Any], query: PageQuery, *,
                staff: bool) -> dict[str, Any]:
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count()).select_from(Feedback)
                                           .where(*conditions))).scalar_one())
        rows = list((await session.execute(select(Feedback).where(*conditions)
                                           .order_by(Feedback.id.desc())
                                           .offset(query.offset).limit(query.limit))).scalars())
        media = await _media(session, rows)
        items = [_summary(resources.settings, row, media) for row in rows]
        if staff:
            users = await _users(session, {row.user_id for row in rows})
            for item, row in zip(items, rows, strict=True):
                item["user"] = _user_view(row.user_id, users)
        return page_result(items, total, query)


def categories() -> list[dict[str, str]]:
    return [{"value": value, "label": label} for value, label in CATEGORIES.items()]


register_metric("feedback", count_in_day(Feedback.created_at), label="用户反馈")
