"""The notification centre: the one writer of `notifications` and of its `notify.*` events.

Domains call `notify(...)` inside the transaction of the change that caused it (a like, an
order's new status); the row and its live event commit together. Bursts coalesce by group_key
into one row ("A and 99 others liked your post"); docs/notifications.md has the rules. The
REST actions (`list_notifications`, `mark_read`, `mark_all_read`, `send_system_notification`)
own their unit of work; a notification's WeChat subscribe message is scheduled through
subscribe_messages.py, with which this module registers the "notification" push reason.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.realtime import Notification
from models.users import User, UserSettings
from pawhome.identity import users
from pawhome.messaging import subscribe_messages
from pawhome.platform import codec, events
from pawhome.platform.errors import NotFound, ValidationFailed, field_error
from pawhome.platform.resources import Resources
from settings import Settings, get_settings

CATEGORIES = ("like", "comment", "reply", "follow", "mention", "order", "appointment", "system",
              "activity")

# Which switch of the user's notification_prefs (pawhome/identity/users.py) governs a category.
PREF_OF_CATEGORY = {
    "like": "likes", "comment": "comments", "reply": "comments", "mention": "comments",
    "follow": "follows", "order": "orders", "appointment": "appointments", "system": "system",
    "activity": "appointments",  # activities one registered for: the same switch
}

# A coalesced notification shows at most this many actors (most recent first).
MAX_ACTORS_SHOWN = 10

# Default texts of the categories whose notifications are about people acting.
_ACTOR_TEXTS = {
    "like": "{actors} liked your {target}",
    "comment": "{actors} commented on your {target}",
    "reply": "{actors} replied to your {target}",
    "follow": "{actors} followed you",
    "mention": "{actors} mentioned you in a {target}",
}


class _EventData(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActorView(_EventData):
    id: int | None  # None: an anonymous author
    nickname: str
    avatar_url: str


class NotificationEvent(_EventData):
    """`notify.new` / `notify.updated`: the notification's public shape plus `alert` (false
    when the user switched the category off: update the list and badge, no sound or toast)."""
    id: int
    category: Literal["like", "comment", "reply", "follow", "mention", "order", "appointment",
                      "system", "activity"]
    kind: str
    actors: list[ActorView]
    actor_count: int
    target_type: str
    target_id: int | None
    payload: dict[str, Any]
    read: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    text: str
    alert: bool


class UnreadCounts(_EventData):
    total: int
    by_category: dict[str, int]


class NotificationsReadEvent(_EventData):
    """`notify.read`: ids (one notification), or a category, or all; `unread` is the truth."""
    ids: list[int] | None
    category: str | None
    all: bool
    unread: UnreadCounts


events.register_event_schema("notify.new", NotificationEvent)
events.register_event_schema("notify.updated", NotificationEvent)
events.register_event_schema("notify.read", NotificationsReadEvent)


def coalesce_window(settings: Settings | None = None) -> int:
    return int((settings or get_settings()).notify_coalesce_seconds)


# -- writing ----------------------------------------------------------------------------------


async def _lock_recipient(session: AsyncSession, user_id: int) -> UserSettings | None:
    """Lock the recipient's settings row (or, lacking one, their user row) for the rest of the
    transaction. Every write to one user's notifications takes this lock first, so they run one
    at a time: concurrent likers cannot both miss an open group and insert two rows, and the
    row locks taken afterwards are always taken in the same order (no deadlocks)."""
    row = (await session.execute(
        select(UserSettings).where(UserSettings.user_id == user_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one_or_none()
    if row is not None:
        return row
    found = (await session.execute(
        select(User.id).where(User.id == user_id).with_for_update())).first()
    if found is None:
        raise NotFound("User not found")
    return None


async def notify(session: AsyncSession, user_id: int, category: str, kind: str,
                 actor_id: int | None = None, target_type: str = "",
                 target_id: int | None = None, payload: dict[str, Any] | None = None,
                 group_key: str | None = None, *,
                 coalesce_seconds: int | None = None,
                 anonymous_actor: bool = False) -> Notification | None:
    """Tell `user_id` about something; returns the new or coalesced row, or None when nothing
    is due (own action, a block between the two users).

    With a `group_key`, an unread notification of this user with the same key updated within
    the coalescing window absorbs this one: the actor moves to the front of `actor_ids`
    (deduplicated, capped), `actor_count` counts distinct actors, `updated_at` moves. A
    category the user switched off is still stored and counted, but its event carries
    `alert: false` and no WeChat subscribe message is sent for it.
    Holds a lock on the recipient's settings row until the caller's transaction ends: call it
    last in that transaction.

    `anonymous_actor`: the actor is an anonymous post's author acting on it (a reply, a
    mention): blocks are checked against the real actor, but the row names nobody
    (`payload.anonymous_actor`, no actor ids) and never coalesces with named actors.
    """
    return await _notify(session, user_id, category, kind,
                         [actor_id] if actor_id is not None else None, target_type,
                         target_id, payload, group_key, coalesce_seconds, anonymous_actor)


async def notify_actors(session: AsyncSession, user_id: int, category: str, kind: str,
                        actor_ids: list[int], target_type: str, target_id: int | None,
                        payload: dict[str, Any] | None, group_key: str) -> Notification | None:
    """The same action by several actors at once, in this order (a batch of likes on one
    post): the row ends as if `notify` had been called for each of them in turn, but it is
    written once and the user hears one event. None when nothing is due (no actor left after
    the own action and blocked pairs are left out)."""
    return await _notify(session, user_id, category, kind, actor_ids, target_type, target_id,
                         payload, group_key, None, False)


async def _notify(session: AsyncSession, user_id: int, category: str, kind: str,
                  actor_ids: list[int] | None, target_type: str, target_id: int | None,
                  payload: dict[str, Any] | None, group_key: str | None,
                  coalesce_seconds: int | None, anonymous_actor: bool) -> Notification | None:
    """notify / notify_actors. `actor_ids` None: nobody acted (a system notice)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown notification category {category!r}")
    if actor_ids is not None:
        actor_ids = [a for a in actor_ids if a != user_id]
        if not actor_ids:
            return None
    settings_row = await _lock_recipient(session, user_id)
    if actor_ids is not None:
        blocked = await users.blocked_either_way(session, user_id, sorted(set(actor_ids)))
        actor_ids = [a for a in actor_ids if a not in blocked]
        if not actor_ids:
            return None
    if anonymous_actor:
        group_key = None
        payload = {**(payload or {}), "anonymous_actor": True}
    prefs = users.notification_prefs_of_row(settings_row)
    alert = bool(getattr(prefs, PREF_OF_CATEGORY[category]))
    now = utcnow()
    row = None
    if group_key:
        window = coalesce_seconds if coalesce_seconds is not None else coalesce_window()
        # A locking read sees the latest committed rows, whatever this transaction's snapshot.
        row = (await session.execute(
            select(Notification).where(
                Notification.user_id == user_id, Notification.group_key == group_key,
                Notification.read_at.is_(None),
                Notification.updated_at >= now - dt.timedelta(seconds=window))
            .order_by(Notification.updated_at.desc(), Notification.id.desc()).limit(1)
            .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()
    if row is not None:  # never for an anonymous actor (no group)
        row.actor_ids, row.actor_count = _with_actors(
            [int(a) for a in (row.actor_ids or [])], row.actor_count or 0, actor_ids or [])
        if payload is not None:
            row.payload = dict(payload)  # the latest detail (e.g. comment excerpt) wins
        row.updated_at = now
        event_type = "notify.updated"
    else:
        actors, count = _with_actors([], 0, actor_ids or [])
        row = Notification(
            user_id=user_id, category=category, kind=kind, group_key=group_key or None,
            actor_ids=[] if anonymous_actor else actors, actor_count=count,
            target_type=target_type or "", target_id=target_id, payload=dict(payload or {}),
            created_at=now, updated_at=now)
        session.add(row)
        event_type = "notify.new"
    await session.flush()
    shape = (await public_shapes(session, [row]))[0]
    # Through the codec: the event carries timestamps exactly as the REST replies do.
    events.emit_to_user(session, user_id, event_type,
                        codec.loads(codec.dumps({**shape, "alert": alert})))
    if event_type == "notify.new" and alert:
        await subscribe_messages.schedule_push(session, user_id, f"notification:{category}",
                                               notification_id=row.id)
    return row


def _with_actors(actors: list[int], count: int, new: list[int]) -> tuple[list[int], int]:
    """Actors shown (most recent first, deduplicated, capped) and the distinct count after
    `new` acted in this order."""
    for actor in new:
        if actor not in actors:
            count += 1
        actors = ([actor] + [a for a in actors if a != actor])[:MAX_ACTORS_SHOWN]
    return actors, count


# -- reading ----------------------------------------------------------------------------------


def actors_phrase(names: list[str], count: int) -> str:
    """"A", "A and B", "A and 99 others"."""
    names = [n or "Someone" for n in names] or ["Someone"]
    count = max(count, len(names))
    if count <= 1:
        return names[0]
    if count == 2 and len(names) >= 2:
        return f"{names[0]} and {names[1]}"
    others = count - 1
    return f"{names[0]} and {others} other{'s' if others != 1 else ''}"


def render_text(category: str, target_type: str, payload: dict[str, Any],
                actor_names: list[str], actor_count: int) -> str:
    """The one-line text a client shows (clients may render their own from kind + actors)."""
    template = _ACTOR_TEXTS.get(category)
    if template is not None:
        return template.format(actors=actors_phrase(actor_names, actor_count),
                               target=target_type or "post")
    for key in ("text", "title", "body"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


async def public_shapes(session: AsyncSession,
                        rows: list[Notification]) -> list[dict[str, Any]]:
    """What clients see of notifications, actors' public names and avatars included."""
    wanted = {int(a) for row in rows for a in (row.actor_ids or [])}
    people: dict[int, dict[str, Any]] = {}
    if wanted:
        found = await session.execute(
            select(User.id, User.nickname, User.avatar_url).where(User.id.in_(wanted)))
        people = {r.id: {"id": r.id, "nickname": r.nickname, "avatar_url": r.avatar_url}
                  for r in found}
    shapes = []
    for row in rows:
        actors = [people[int(a)] for a in (row.actor_ids or []) if int(a) in people]
        payload = dict(row.payload or {})
        if payload.get("anonymous_actor"):
            actors = [dict(users.ANONYMOUS_PERSON)]
        shapes.append({
            "id": row.id, "category": row.category, "kind": row.kind, "actors": actors,
            "actor_count": row.actor_count, "target_type": row.target_type,
            "target_id": row.target_id, "payload": payload, "read": row.read_at is not None,
            "created_at": row.created_at, "updated_at": row.updated_at,
            "text": render_text(row.category, row.target_type, payload,
                                [a["nickname"] for a in actors], row.actor_count),
        })
    return shapes


async def list_notifications(resources: Resources, user_id: int, category: str | None,
                             position: dict[str, Any] | None,
                             limit: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Newest-updated first; `position` is the decoded cursor ({"u": updated_at, "i": id})."""
    query = select(Notification).where(Notification.user_id == user_id)
    if category:
        query = query.where(Notification.category == category)
    if position:
        try:
            after_updated = dt.datetime.fromisoformat(str(position["u"]))
            after_id = int(position["i"])
        except (KeyError, TypeError, ValueError):
            raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")]) from None
        query = query.where(or_(
            Notification.updated_at < after_updated,
            and_(Notification.updated_at == after_updated, Notification.id < after_id)))
    async with resources.db.session() as session:
        rows = list((await session.execute(
            query.order_by(Notification.updated_at.desc(), Notification.id.desc())
            .limit(limit + 1))).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        next_position = None
        if more and rows:
            next_position = {"u": rows[-1].updated_at.isoformat(), "i": rows[-1].id}
        return await public_shapes(session, rows), next_position


async def _unread_counts(session: AsyncSession, user_id: int) -> dict[str, Any]:
    """{"total": n, "by_category": {category: n for every category}}."""
    found = await session.execute(
        select(Notification.category, func.count()).where(
            Notification.user_id == user_id, Notification.read_at.is_(None))
        .group_by(Notification.category))
    by_category = {c: 0 for c in CATEGORIES}
    for category, count in found:
        by_category[category] = by_category.get(category, 0) + int(count)
    return {"total": sum(by_category.values()), "by_category": by_category}


async def unread_counts(resources: Resources, user_id: int) -> dict[str, Any]:
    """GET /v1/notifications/unread-count: {"total", "by_category"}."""
    async with resources.db.session() as session:
        return await _unread_counts(session, user_id)


async def get_notification(session: AsyncSession, user_id: int,
                           notification_id: int) -> Notification:
    """The user's own notification; anyone else's does not exist for them (404)."""
    row = await session.get(Notification, notification_id)
    if row is None or row.user_id != user_id:
        raise NotFound("Notification not found")
    return row


# -- marking read -----------------------------------------------------------------------------


async def mark_read(resources: Resources, user_id: int,
                    notification_id: int) -> dict[str, Any]:
    """Mark one notification read (idempotent); other devices hear `notify.read`."""
    async with resources.db.session() as session, session.begin():
        await get_notification(session, user_id, notification_id)
        changed = cast(CursorResult[Any], await session.execute(
            update(Notification).where(Notification.id == notification_id,
                                       Notification.user_id == user_id,
                                       Notification.read_at.is_(None))
            .values(read_at=utcnow()))).rowcount
        counts = await _unread_counts(session, user_id)
        if changed:
            events.emit_to_user(session, user_id, "notify.read",
                                {"ids": [notification_id], "category": None, "all": False,
                                 "unread": counts})
    return {"id": notification_id, "read": True, "updated": int(changed), "unread": counts}


async def mark_all_read(resources: Resources, user_id: int,
                        category: str | None = None) -> dict[str, Any]:
    """Mark every unread notification read, or only one category's; other devices hear
    `notify.read` with the unread counts that now hold."""
    async with resources.db.session() as session, session.begin():
        await _lock_recipient(session, user_id)  # same lock order as notify(): no deadlock
        conditions = [Notification.user_id == user_id, Notification.read_at.is_(None)]
        if category:
            conditions.append(Notification.category == category)
        changed = cast(CursorResult[Any], await session.execute(
            update(Notification).where(*conditions).values(read_at=utcnow()))).rowcount
        counts = await _unread_counts(session, user_id)
        if changed:
            events.emit_to_user(session, user_id, "notify.read",
                                {"ids": None, "category": category, "all": category is None,
                                 "unread": counts})
    return {"category": category, "updated": int(changed), "unread": counts}


# -- administration ---------------------------------------------------------------------------


async def send_system_notification(resources: Resources, user_id: int, title: str,
                                   body: str) -> dict[str, Any]:
    """An admin's message to one user, shown in the `system` category."""
    async with resources.db.session() as session, session.begin():
        row = await notify(session, user_id, "system", "system", target_type="", payload={
            "title": title, "body": body})
        assert row is not None  # no actor: nothing can suppress it
        return (await public_shapes(session, [row]))[0]


# -- the WeChat subscribe message for a notification --------------------------------------------


async def _push_context(session: AsyncSession, user_id: int, *, conversation_id: int | None,
                        notification_id: int | None) -> dict[str, Any] | None:
    """What a "notification:<category>" push says: the notification, if it is still the
    user's and unread, else None."""
    if notification_id is None:
        return None
    row = await session.get(Notification, notification_id)
    if row is None or row.user_id != user_id or row.read_at is not None:
        return None
    shape = (await public_shapes(session, [row]))[0]
    payload = shape["payload"]
    first_actor = shape["actors"][0]["nickname"] if shape["actors"] else ""
    return {"actor_name": first_actor, "text": shape["text"],
            "title": payload.get("title") or shape["text"], "body": payload.get("body", ""),
            "time": row.updated_at, "category": row.category, "kind": row.kind,
            "notification_id": row.id, "target_type": row.target_type,
            "target_id": row.target_id}


subscribe_messages.register_push_reason(
    "notification", pref_of=lambda category: PREF_OF_CATEGORY.get(category, "system"),
    context=_push_context)
