"""The organisers' side: admins (every activity; theirs are the platform's own) and merchants
(only their own: another merchant's activity is not found, even by id) create and edit
activities, publish and cancel them, list their registrations and check registrants in by
code. Every write records an audit entry in its transaction.

Cancelling an activity cancels every live registration, tells each registrant and gives the
money back (cash refunds through payments, points through the ledger), in batches of
CANCEL_BATCH, each its own transaction. It is safe to retry: cancelling a cancelled activity
settles what is left, and the transaction that cancels also queues the task that does the
same (`settle_cancelled`), so a crash halfway loses nothing.

A published activity whose time, place or cancel deadline changes tells its live registrants
the same way: the updating transaction records a `change` event and queues `tell_changed`,
which the update also runs right after its commit; each registrant told gets a `change`
event of their own, so a rerun tells nobody twice. The organiser's text (title,
description, place, the form's labels and options, a cancellation's reason) passes the
sensitive-word filter.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.activities import Activity, ActivityEvent, ActivityRegistration, ActivityReminder
from models.base import utcnow
from pawhome.activities import forms, listing, seats, states
from pawhome.booking.slots import iso_local
from pawhome.mall.products import Actor
from pawhome.media.uploads import require_ready
from pawhome.platform import audit, outbox
from pawhome.platform.errors import (
    ActivityNotFound,
    ActivityStateConflict,
    ActivityTermsLocked,
    AlreadyCheckedInToActivity,
    CheckInCodeUnknown,
    RegistrationStateConflict,
    field_error,
)
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.platform.wordfilter import screen_text

CANCEL_BATCH = 100
SETTLE_TASK = "activities.settle_cancelled"
TELL_CHANGED_TASK = "activities.tell_changed"
LOCKED_WHEN_REGISTERED = ("price_type", "price", "form_fields")
# What registrants planned around: a change of these to a published activity is told to them.
TOLD_WHEN_CHANGED = ("start_at", "end_at", "place_name", "place_address", "lat", "lng",
                     "cancel_deadline_at")


class OrganiserActivitiesQuery(PageQuery):
    status: states.ActivityStatus | None = None


class RegistrationsQuery(PageQuery):
    status: states.RegistrationStatus | None = None


def actor_type(actor: Actor) -> Literal["admin", "merchant"]:
    return "admin" if actor.is_admin else "merchant"


def _mine(actor: Actor) -> list[Any]:
    return [] if actor.is_admin else [Activity.merchant_id == actor.user_id]


async def _owned(session: AsyncSession, actor: Actor, activity_id: int, *,
                 lock: bool = False) -> Activity:
    """The activity if this organiser may see it (admins: any); else ActivityNotFound, the
    same as a missing one."""
    activity = (await seats.lock_activity(session, activity_id) if lock
                else await session.get(Activity, activity_id))
    if activity is None or not (actor.is_admin or activity.merchant_id == actor.user_id):
        raise ActivityNotFound()
    return activity


def _same(name: str, old: Any, new: Any) -> bool:
    """A sent value equals the stored one (coordinates compared at the column's 6 places)."""
    if name in ("lat", "lng") and old is not None and new is not None:
        return round(float(old), 6) == round(float(new), 6)
    return bool(old == new)


def _audited(values: dict[str, Any], soft_words: list[str]) -> dict[str, Any]:
    return {**values, "soft_words": soft_words} if soft_words else values


def _terms(activity: Activity) -> dict[str, Any]:
    return {name: getattr(activity, name) for name in (
        *forms.TIME_FIELDS, "price_type", "price", "form_fields", "cover_media_id",
        "cover_url", "capacity")}


async def _detail(session: AsyncSession, resources: Resources,
                  activity: Activity) -> dict[str, Any]:
    [view] = await listing.activity_views(session, resources.settings, [activity])
    counts = {status: count for status, count in (await session.execute(
        select(ActivityRegistration.status, func.count()).where(
            ActivityRegistration.activity_id == activity.id)
        .group_by(ActivityRegistration.status))).all()}
    view["registrations_by_status"] = {status: int(counts.get(status, 0)) for status in
                                       ("waitlisted", "pending_payment", "confirmed",
                                        "checked_in", "cancelled", "expired")}
    events = (await session.execute(select(ActivityEvent).where(
        ActivityEvent.activity_id == activity.id, ActivityEvent.registration_id.is_(None))
        .order_by(ActivityEvent.id))).scalars()
    view["timeline"] = [listing.event_view(e) for e in events]
    return view


async def create_activity(resources: Resources, actor: Actor,
                          body: forms.ActivityBody) -> dict[str, Any]:
    """A new activity, as a draft (publish it to open it to users). A merchant's is theirs;
    an admin's is the platform's own."""
    now = utcnow()
    values = forms.normalised(body.model_dump())
    values["registration_opens_at"] = values["registration_opens_at"] or now
    values["registration_closes_at"] = values["registration_closes_at"] or values["start_at"]
    values["cancel_deadline_at"] = (values["cancel_deadline_at"]
                                    or values["registration_closes_at"])
    forms.check_terms(values, now, new=True)
    soft_words = forms.screen_texts(values)
    async with resources.db.session() as session, session.begin():
        if body.cover_media_id:
            await require_ready(session, actor.user_id, [body.cover_media_id], kind="image",
                                field="cover_media_id")
        activity = Activity(organiser_id=actor.user_id,
                            merchant_id=None if actor.is_admin else actor.user_id,
                            status="draft", seats_taken=0, waitlisted=0, checked_in=0,
                            cancel_reason="", created_at=now, updated_at=now, **values)
        session.add(activity)
        await session.flush()
        session.add(ActivityEvent(activity_id=activity.id, action="create", from_status="",
                                  to_status="draft", actor_type=actor_type(actor),
                                  actor_id=actor.user_id, created_at=now))
        audit.record(session, actor_id=actor.user_id, actor_role=actor.role,
                     action="activity.create", target_type="activity", target_id=activity.id,
                     after=_audited({"title": activity.title, "capacity": activity.capacity},
                                    soft_words))
        return await _detail(session, resources, activity)


async def update_activity(resources: Resources, actor: Actor, activity_id: int,
                          patch: forms.ActivityPatch) -> dict[str, Any]:
    """Change a draft or published activity. Once anyone registered, the price, the form and
    a capacity below the seats taken are fixed (409 ActivityTermsLocked). More capacity on a
    published activity promotes the waitlist at once."""
    changes = forms.normalised(patch.model_dump(exclude_unset=True))
    soft_words = forms.screen_texts(changes)
    now = utcnow()
    async with resources.db.session() as session, session.begin():
        activity = await _owned(session, actor, activity_id, lock=True)
        if activity.status not in ("draft", "published"):
            raise ActivityStateConflict(f"A {activity.status} activity cannot change",
                                        errors=[field_error("status", activity.status)])
        registered = (await session.execute(select(func.count()).select_from(
            ActivityRegistration).where(ActivityRegistration.activity_id == activity.id)
        )).scalar_one()
        locked = [name for name in LOCKED_WHEN_REGISTERED
                  if name in changes and changes[name] != getattr(activity, name)]
        if registered and locked:
            raise ActivityTermsLocked(errors=[field_error(n, "fixed once people registered")
                                              for n in locked])
        if changes.get("capacity", activity.capacity) < activity.seats_taken:
            raise ActivityTermsLocked(errors=[field_error(
                "capacity", f"{activity.seats_taken} seats are taken")])
        terms = {**_terms(activity), **changes}
        forms.check_terms(terms, now, new="start_at" in changes)
        if changes.get("cover_media_id") and changes["cover_media_id"] != activity.cover_media_id:
            await require_ready(session, actor.user_id, [changes["cover_media_id"]],
                                kind="image", field="cover_media_id")
        before = {name: getattr(activity, name) for name in changes}
        told = [name for name in TOLD_WHEN_CHANGED
                if name in changes and not _same(name, before[name], changes[name])]
        for name, value in changes.items():
            setattr(activity, name, value)
        activity.updated_at = now
        await seats.promote_waitlist(session, resources.settings, activity, now)
        tell = activity.status == "published" and bool(told)
        if tell:
            await _record_change(session, actor, activity, told, before, now)
        audit.record(session, actor_id=actor.user_id, actor_role=actor.role,
                     action="activity.update", target_type="activity", target_id=activity.id,
                     before=before, after=_audited(changes, soft_words))
        detail = await _detail(session, resources, activity)
    if tell:
        await tell_changed(resources, activity_id)
    return detail


async def _record_change(session: AsyncSession, actor: Actor, activity: Activity,
                         told: list[str], before: dict[str, Any], now: dt.datetime) -> None:
    """A published activity's time, place or cancel deadline changed: the `change` event of
    its timeline (naming the fields) and the task that tells the registrants. A later start
    forgets the reminders already sent, so they go again before the new one."""
    session.add(ActivityEvent(activity_id=activity.id, action="change",
                              from_status=activity.status, to_status=activity.status,
                              actor_type=actor_type(actor), actor_id=actor.user_id,
                              reason=",".join(told), created_at=now))
    if "start_at" in told and activity.start_at > before["start_at"]:
        await session.execute(delete(ActivityReminder).where(
            ActivityReminder.registration_id.in_(select(ActivityRegistration.id).where(
                ActivityRegistration.activity_id == activity.id))))
    outbox.enqueue_task(session, TELL_CHANGED_TASK, activity.id)


async def tell_changed(resources: Resources, activity_id: int) -> int:
    """Tell the live registrants of a published activity about its latest `change` event
    (the new time and place), a batch per transaction under the activity's lock, and give
    each told registration a `change` event of its own: a registration with a `change` or
    `register` event newer than the activity's has been told (or registered knowing), so a
    rerun, or the task after the update's own run, tells nobody twice. Returns how many."""
    done = 0
    while True:
        async with resources.db.session() as session, session.begin():
            activity = await seats.lock_activity(session, activity_id)
            if activity is None or activity.status != "published":
                return done
            change = (await session.execute(select(ActivityEvent).where(
                ActivityEvent.activity_id == activity_id,
                ActivityEvent.registration_id.is_(None), ActivityEvent.action == "change")
                .order_by(ActivityEvent.id.desc()).limit(1))).scalar_one_or_none()
            if change is None:
                return done
            knows = select(ActivityEvent.id).where(
                ActivityEvent.registration_id == ActivityRegistration.id,
                ActivityEvent.action.in_(("change", "register")),
                ActivityEvent.id > change.id)
            batch = list((await session.execute(select(ActivityRegistration).where(
                ActivityRegistration.activity_id == activity_id,
                ActivityRegistration.status.in_(states.LIVE), ~knows.exists())
                .order_by(ActivityRegistration.id).limit(CANCEL_BATCH))).scalars())
            if not batch:
                return done
            place = " ".join(p for p in (activity.place_name, activity.place_address) if p)
            text = (f"「{activity.title}」有变动：时间 {iso_local(activity.start_at)[:16]} 至 "
                    f"{iso_local(activity.end_at)[:16]}，地点 {place}，"
                    f"取消截止 {iso_local(activity.cancel_deadline_at)[:16]}")
            for registration in batch:
                session.add(ActivityEvent(
                    activity_id=activity_id, registration_id=registration.id,
                    action="change", from_status=registration.status,
                    to_status=registration.status, actor_type=change.actor_type,
                    actor_id=change.actor_id, reason=change.reason))
            for registration in batch:
                await seats.tell(session, registration, activity, "activity_changed",
                                 "活动有变动", text)
            done += len(batch)


async def publish_activity(resources: Resources, actor: Actor,
                           activity_id: int) -> dict[str, Any]:
    """draft → published: users see it and may register within its window."""
    async with resources.db.session() as session, session.begin():
        activity = await _owned(session, actor, activity_id, lock=True)
        if activity.status == "draft":
            forms.check_terms(_terms(activity), utcnow(), new=True)
        states.apply_activity(session, activity, "publish", actor_type=actor_type(actor),
                              actor_id=actor.user_id)
        audit.record(session, actor_id=actor.user_id, actor_role=actor.role,
                     action="activity.publish", target_type="activity",
                     target_id=activity.id)
        return await _detail(session, resources, activity)


async def cancel_activity(resources: Resources, actor: Actor, activity_id: int,
                          reason: str) -> dict[str, Any]:
    """draft or published → cancelled; every live registration is cancelled, told and paid
    back. Cancelling a cancelled activity again settles whatever is left (a retry)."""
    screen_text(reason, "reason")
    async with resources.db.session() as session, session.begin():
        activity = await _owned(session, actor, activity_id, lock=True)
        if activity.status != "cancelled":
            states.apply_activity(session, activity, "cancel", actor_type=actor_type(actor),
                                  actor_id=actor.user_id, reason=reason or "主办方取消")
            audit.record(session, actor_id=actor.user_id, actor_role=actor.role,
                         action="activity.cancel", target_type="activity",
                         target_id=activity.id, after={"reason": reason})
        outbox.enqueue_task(session, SETTLE_TASK, activity.id)
    await settle_cancelled(resources, activity_id, actor_id=actor.user_id,
                           actor=actor_type(actor))
    async with resources.db.session() as session:
        return await _detail(session, resources, await _owned(session, actor, activity_id))


async def settle_cancelled(resources: Resources, activity_id: int, *, actor_id: int | None = None,
                           actor: states.ActorType = "system") -> int:
    """Cancel, tell and pay back the live registrations of a cancelled activity, a batch per
    transaction, until none is left; returns how many. Idempotent (the task's work too)."""
    done = 0
    while True:
        async with resources.db.session() as session, session.begin():
            activity = await seats.lock_activity(session, activity_id)
            if activity is None or activity.status != "cancelled":
                return done
            batch = list((await session.execute(select(ActivityRegistration).where(
                ActivityRegistration.activity_id == activity_id,
                ActivityRegistration.status.in_(states.LIVE))
                .order_by(ActivityRegistration.id).limit(CANCEL_BATCH).with_for_update()
                .execution_options(populate_existing=True))).scalars())
            if not batch:
                return done
            reason = activity.cancel_reason or "主办方取消了活动"
            for registration in batch:
                if registration.status == "checked_in":  # cannot happen before the start
                    registration.live_user_id = None
                    continue
                previous = states.apply_registration(
                    session, registration, "cancel", "cancelled", actor_type=actor,
                    actor_id=actor_id, reason=reason)
                seats.release(activity, previous)
                await seats.give_back(session, registration, "活动已取消，费用退回")
            for registration in batch:
                await seats.tell(session, registration, activity, "activity_cancelled",
                                 "活动已取消", f"「{activity.title}」已取消：{reason}"
                                 + ("，费用将原路退回" if registration.payment_status
                                    in ("refunding", "refunded") else ""))
            done += len(batch)


# -- reads ------------------------------------------------------------------------------------


async def list_activities(resources: Resources, actor: Actor,
                          query: OrganiserActivitiesQuery) -> dict[str, Any]:
    """The organiser's activities (admins: everyone's), newest first."""
    conditions = _mine(actor)
    if query.status:
        conditions.append(Activity.status == query.status)
    async with resources.db.session() as session:
        total = (await session.execute(select(func.count()).select_from(Activity)
                                       .where(*conditions))).scalar_one()
        rows = list((await session.execute(select(Activity).where(*conditions)
                                           .order_by(Activity.id.desc())
                                           .offset(query.offset).limit(query.limit)))
                    .scalars())
        return page_result(await listing.activity_views(session, resources.settings, rows),
                           int(total), query)


async def get_activity(resources: Resources, actor: Actor, activity_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        return await _detail(session, resources, await _owned(session, actor, activity_id))


async def list_registrations(resources: Resources, actor: Actor, activity_id: int,
                             query: RegistrationsQuery) -> dict[str, Any]:
    """One activity's registrations, in the order they came, with the registrants' nicknames
    and answers (the organiser needs the phone to reach them; it is never logged)."""
    async with resources.db.session() as session:
        await _owned(session, actor, activity_id)
        conditions: list[Any] = [ActivityRegistration.activity_id == activity_id]
        if query.status:
            conditions.append(ActivityRegistration.status == query.status)
        total = (await session.execute(select(func.count()).select_from(ActivityRegistration)
                                       .where(*conditions))).scalar_one()
        rows = list((await session.execute(
            select(ActivityRegistration).where(*conditions).order_by(ActivityRegistration.id)
            .offset(query.offset).limit(query.limit))).scalars())
        names = await listing.nicknames(session, {r.user_id for r in rows})
        items = [{**listing.registration_view(r), "nickname": names.get(r.user_id, "")}
                 for r in rows]
        return page_result(items, int(total), query)


def normalise_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


async def check_in(resources: Resources, actor: Actor, activity_id: int,
                   body: forms.CheckInBody) -> dict[str, Any]:
    """Check a confirmed registrant of this activity in by their code (typed or scanned).
    Unknown code (or another activity's) → 404; checked in already → 409 with the
    registration; waiting, unpaid or cancelled → 409 RegistrationStateConflict."""
    code = normalise_code(body.code)
    async with resources.db.session() as session, session.begin():
        activity = await _owned(session, actor, activity_id, lock=True)
        registration = (await session.execute(select(ActivityRegistration).where(
            ActivityRegistration.activity_id == activity.id,
            ActivityRegistration.check_in_code == code).with_for_update())).scalar_one_or_none()
        if registration is None:
            raise CheckInCodeUnknown(errors=[field_error("code", "no such code here")])
        names = await listing.nicknames(session, {registration.user_id})
        view = {**listing.registration_view(registration),
                "nickname": names.get(registration.user_id, "")}
        if registration.status == "checked_in":
            raise AlreadyCheckedInToActivity(errors=[field_error("code", "checked in at "
                                                                 + str(view["checked_in_at"]))],
                                             data=view)
        if activity.status != "published":
            raise ActivityStateConflict(f"The activity is {activity.status}",
                                        errors=[field_error("status", activity.status)])
        if registration.status != "confirmed":
            raise RegistrationStateConflict(
                f"This registration is {registration.status}, not confirmed",
                errors=[field_error("code", registration.status)], data=view)
        states.apply_registration(session, registration, "check_in", "checked_in",
                                  actor_type=actor_type(actor), actor_id=actor.user_id)
        registration.checked_in_by = actor.user_id
        activity.checked_in += 1
        audit.record(session, actor_id=actor.user_id, actor_role=actor.role,
                     action="activity.check_in", target_type="activity_registration",
                     target_id=registration.id)
        return {**listing.registration_view(registration), "nickname": view["nickname"]}
