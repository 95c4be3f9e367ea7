"""The users' side: register (a seat, or the waitlist when full and the activity has one),
pay a cash registration, cancel before the deadline (money back, the seat to the waitlist),
read their registrations with the check-in code.

Registering locks the activity row first and decides under that lock, so however many
people register at once, `seats_taken` never passes `capacity` (tests/test_activities.py
fires many at a small capacity on MariaDB). One live registration per user and activity
(the unique `live_user_id` index backs the check); the endpoint takes an Idempotency-Key, so
a retried request answers what the first did.
"""
from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.activities import Activity, ActivityRegistration
from models.base import utcnow
from pawhome.activities import forms, listing, seats, states
from pawhome.payments import payments
from pawhome.platform.errors import (
    ActivityFull,
    ActivityNotFound,
    AlreadyRegistered,
    CancellationDeadlinePassed,
    PaymentNotDue,
    RegistrationClosed,
    RegistrationNotFound,
    RegistrationStateConflict,
    field_error,
)
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: typed from a screen
CODE_LENGTH = 8
DESCRIPTION_CHARS = 127  # WeChat Pay's limit on `description`


class MyRegistrationsQuery(PageQuery):
    status: states.RegistrationStatus | None = None


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


async def _add(session: AsyncSession, registration: ActivityRegistration) -> None:
    """Insert with a fresh check-in code (a collision, one in 10^12, draws again)."""
    for attempt in range(3):
        registration.check_in_code = new_code()
        try:
            async with session.begin_nested():
                session.add(registration)
                await session.flush()
            return
        except IntegrityError:
            if attempt == 2:
                raise


async def _live_of(session: AsyncSession, activity_id: int,
                   user_id: int) -> ActivityRegistration | None:
    return (await session.execute(select(ActivityRegistration).where(
        ActivityRegistration.activity_id == activity_id,
        ActivityRegistration.live_user_id == user_id))).scalar_one_or_none()


def _check_open(activity: Activity | None, now: Any) -> Activity:
    if activity is None or activity.status == "draft":
        raise ActivityNotFound()
    if activity.status != "published":
        raise RegistrationClosed(f"The activity is {activity.status}",
                                 errors=[field_error("status", activity.status)])
    if now < activity.registration_opens_at:
        raise RegistrationClosed("Registration has not opened yet", errors=[field_error(
            "registration_opens_at", str(listing.local_time(activity.registration_opens_at)))])
    if now >= activity.registration_closes_at or now >= activity.start_at:
        raise RegistrationClosed("Registration has closed",
                                 errors=[field_error("registration_closes_at", "passed")])
    return activity


async def register(resources: Resources, user_id: int, activity_id: int,
                   body: forms.RegisterBody) -> dict[str, Any]:
    """Register the caller: confirmed (free, or points paid now), pending_payment (cash: pay
    by the deadline or the seat goes), or waitlisted (full, with a waitlist). Full without
    a waitlist → 409 ActivityFull; registered already → 409 AlreadyRegistered with the
    registration; wrong answers → 422 naming them; too few points → 422."""
    now = utcnow()
    async with resources.db.session() as session, session.begin():
        activity = _check_open(await seats.lock_activity(session, activity_id), now)
        existing = await _live_of(session, activity_id, user_id)
        if existing is not None:
            raise AlreadyRegistered(errors=[field_error("activity_id", existing.status)],
                                    data=listing.registration_view(existing))
        answers = forms.check_answers(activity.form_fields or [], body.answers)
        has_seat = activity.seats_taken < activity.capacity
        if not has_seat and not activity.waitlist_enabled:
            raise ActivityFull(errors=[field_error("activity_id",
                                                   f"all {activity.capacity} seats taken")])
        registration = ActivityRegistration(
            activity_id=activity.id, user_id=user_id, live_user_id=user_id,
            status="confirmed" if has_seat else "waitlisted", price_type=activity.price_type,
            amount=activity.price, payment_status="none", answers=answers,
            created_at=now, updated_at=now)
        try:
            await _add(session, registration)
        except IntegrityError:  # the live index: a registration slipped in (it cannot, locked)
            raise AlreadyRegistered() from None
        if has_seat:
            registration.status = await seats.seat(session, resources.settings, activity,
                                                   registration, now)
            activity.seats_taken += 1
            if registration.status == "confirmed":
                registration.confirmed_at = now
        else:
            activity.waitlisted += 1
        states.record_registered(session, registration)
        view = await listing.user_registration_view(session, registration)
        [view["activity"]] = await listing.activity_views(session, resources.settings,
                                                          [activity])
        return view


async def _own(session: AsyncSession, user_id: int,
               registration_id: int) -> ActivityRegistration:
    registration = await session.get(ActivityRegistration, registration_id)
    if registration is None or registration.user_id != user_id:
        raise RegistrationNotFound()
    return registration


async def cancel_registration(resources: Resources, user_id: int, registration_id: int,
                              body: forms.ReasonBody) -> dict[str, Any]:
    """The caller leaves: from the waitlist at any time before the start; with a seat until
    the activity's cancel deadline (then 409 CancellationDeadlinePassed). The money goes back
    (cash refund, points to the ledger) and the seat to the waitlist at once."""
    now = utcnow()
    async with resources.db.session() as session, session.begin():
        found = await _own(session, user_id, registration_id)
        activity = await seats.lock_activity(session, found.activity_id)
        registration = await seats.lock_registration(session, registration_id)
        assert activity is not None and registration is not None
        if registration.status not in states.REGISTRATION_TRANSITIONS["cancel"][0]:
            raise RegistrationStateConflict(
                f"The registration is {registration.status}: it cannot be cancelled",
                errors=[field_error("status", registration.status)])
        deadline = (activity.start_at if registration.status == "waitlisted"
                    else activity.cancel_deadline_at)
        if now >= deadline:
            raise CancellationDeadlinePassed(errors=[field_error(
                "cancel_deadline_at", f"passed at {listing.local_time(deadline)}")])
        previous = states.apply_registration(session, registration, "cancel", "cancelled",
                                             actor_type="user", actor_id=user_id,
                                             reason=body.reason)
        seats.release(activity, previous)
        await seats.give_back(session, registration, "活动报名已取消，费用退回")
        await seats.promote_waitlist(session, resources.settings, activity, now)
        return await listing.user_registration_view(session, registration)


async def pay_registration(resources: Resources, user_id: int,
                           registration_id: int) -> dict[str, Any]:
    """wx.requestPayment's parameters for the caller's pending cash registration, payable
    until its deadline (a repeated call reuses the live prepay)."""
    now = utcnow()
    async with resources.db.session() as session:
        registration = await _own(session, user_id, registration_id)
        if registration.price_type != "cash":
            raise PaymentNotDue(errors=[field_error("registration_id",
                                                    f"{registration.price_type}, not cash")])
        if registration.status != "pending_payment" or registration.pay_deadline is None \
                or registration.pay_deadline <= now:
            raise RegistrationStateConflict(
                f"The registration is {registration.status}: nothing to pay now",
                errors=[field_error("status", registration.status)])
        activity = await session.get(Activity, registration.activity_id)
        title = activity.title if activity is not None else ""
        amount, deadline = registration.amount, registration.pay_deadline
    return await payments.prepare_payment(
        resources, payable_type=seats.PAYABLE_TYPE, payable_id=registration_id,
        user_id=user_id, out_trade_no=seats.trade_no(registration_id), amount=amount,
        description=f"PAWHome 活动报名 {title}"[:DESCRIPTION_CHARS], time_expire=deadline)


async def my_registrations(resources: Resources, user_id: int,
                           query: MyRegistrationsQuery) -> dict[str, Any]:
    """The caller's registrations, newest first, each with its activity's summary."""
    conditions: list[Any] = [ActivityRegistration.user_id == user_id]
    if query.status:
        conditions.append(ActivityRegistration.status == query.status)
    async with resources.db.session() as session:
        total = (await session.execute(select(func.count()).select_from(ActivityRegistration)
                                       .where(*conditions))).scalar_one()
        rows = list((await session.execute(
            select(ActivityRegistration).where(*conditions)
            .order_by(ActivityRegistration.id.desc()).offset(query.offset)
            .limit(query.limit))).scalars())
        activities = {a.id: a for a in (await session.execute(select(Activity).where(
            Activity.id.in_({r.activity_id for r in rows})))).scalars()} if rows else {}
        items = []
        for registration in rows:
            activity = activities[registration.activity_id]
            items.append({**listing.registration_view(registration), "activity": {
                "id": activity.id, "title": activity.title, "status": activity.status,
                "start_at": listing.local_time(activity.start_at),
                "end_at": listing.local_time(activity.end_at), "place_name": activity.place_name,
                "cover_url": activity.cover_url}})
        return page_result(items, int(total), query)


async def my_registration(resources: Resources, user_id: int,
                          registration_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        registration = await _own(session, user_id, registration_id)
        view = await listing.user_registration_view(session, registration)
        activity = await session.get(Activity, registration.activity_id)
        assert activity is not None
        [view["activity"]] = await listing.activity_views(session, resources.settings,
                                                          [activity])
        return view
