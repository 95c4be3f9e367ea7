"""Seats, the waitlist and money back: the building blocks every registration change composes
inside its unit of work. Every function here expects the activity row locked by the caller
(`lock_activity`, always first), so `seats_taken` never passes `capacity` under any
concurrency: the registrations of one activity are decided one after another.

- A registration that gets a seat is `confirmed` (free; points charged through the ledger at
  once) or `pending_payment` (cash) until its payment deadline (ACTIVITY_PAYMENT_MINUTES, never
  past the start), whose task frees the seat if nobody paid.
- A freed seat goes to the oldest waitlisted registration at once (`promote_waitlist`).
- Money goes back the way it came: cash through payments' refund flow, points through the
  ledger (one idempotency key per registration, so a retry never pays twice).
Caller commits.
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.activities import Activity, ActivityRegistration
from pawhome.activities import states
from pawhome.booking.slots import iso_local
from pawhome.messaging import notifications
from pawhome.payments import payments
from pawhome.platform import outbox
from pawhome.platform.errors import InsufficientPoints
from pawhome.points import ledger
from settings import Settings

log = logging.getLogger("pawhome.activities")

PAYABLE_TYPE = "activity_reg"  # payable_id: the registration
REFUND_SOURCE = "activity_reg"  # a cancellation's refund: source_id is the registration
EXPIRE_TASK = "activities.expire_registration"
CATEGORY = "activity"  # the notification category of everything here
TARGET = "activity"


def trade_no(registration_id: int) -> str:
    """A cash registration's out_trade_no: one per registration (orders and deposits number
    theirs otherwise)."""
    return f"AC{registration_id:012d}"


def refund_no(registration_id: int) -> str:
    """The out_refund_no of a registration's refund: one per registration, so a rerun never
    refunds twice."""
    return f"ACR{registration_id:012d}"


def points_key(registration_id: int, what: str) -> str:
    return f"activity:{registration_id}:{what}"


async def lock_activity(session: AsyncSession, activity_id: int) -> Activity | None:
    """The activity, locked for the rest of the transaction: the lock every seat change takes
    first."""
    return (await session.execute(
        select(Activity).where(Activity.id == activity_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one_or_none()


async def lock_registration(session: AsyncSession,
                            registration_id: int) -> ActivityRegistration | None:
    return (await session.execute(
        select(ActivityRegistration).where(ActivityRegistration.id == registration_id)
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()


async def tell(session: AsyncSession, registration: ActivityRegistration, activity: Activity,
               kind: str, title: str, text: str) -> None:
    """An `activity` notification to the registrant (and so a subscribe message when they are
    offline). Locks the recipient's settings: call it last in a step."""
    await notifications.notify(
        session, registration.user_id, CATEGORY, kind, target_type=TARGET,
        target_id=activity.id,
        payload={"title": title, "text": text, "activity_id": activity.id,
                 "registration_id": registration.id, "activity_title": activity.title,
                 "start_at": iso_local(activity.start_at), "place": activity.place_name})


def _pay_deadline(settings: Settings, activity: Activity, now: dt.datetime) -> dt.datetime:
    return min(now + dt.timedelta(minutes=settings.activity_payment_minutes), activity.start_at)


async def seat(session: AsyncSession, settings: Settings, activity: Activity,
               registration: ActivityRegistration, now: dt.datetime) -> str:
    """What a (flushed) registration given one of the activity's seats pays and the status it
    should take — confirmed (free; points charged now: InsufficientPoints when short) or
    pending_payment (cash: the deadline and its task set here). The caller counts the seat
    (after this returns: a savepoint rolled back over a refusal would undo it) and applies
    the status."""
    if activity.price_type == "points":
        await ledger.change(session, registration.user_id, -registration.amount,
                            reason="activity", key=points_key(registration.id, "pay"),
                            ref_type="activity", ref_id=activity.id,
                            note=activity.title[:200])
        registration.payment_status = "paid"
        return "confirmed"
    if activity.price_type == "cash":
        registration.payment_status = "unpaid"
        registration.pay_deadline = _pay_deadline(settings, activity, now)
        wait = (registration.pay_deadline - now).total_seconds()
        outbox.enqueue_task(session, EXPIRE_TASK, registration.id, countdown=max(wait, 0) + 1)
        return "pending_payment"
    return "confirmed"


async def give_back(session: AsyncSession, registration: ActivityRegistration,
                    reason: str) -> None:
    """What the registration paid goes back (it is being cancelled or dropped): a paid cash
    registration is refunded in full through payments (the refund row and its task commit
    with the caller), an unpaid one's payment is closed, points return through the ledger."""
    if registration.price_type == "cash":
        if registration.payment_status == "paid":
            await payments.refund_later(
                session, payable_type=PAYABLE_TYPE, payable_id=registration.id,
                out_refund_no=refund_no(registration.id), amount=registration.amount,
                reason=reason[:80] or "活动报名已取消，费用退回", source_type=REFUND_SOURCE,
                source_id=registration.id)
            registration.payment_status = "refunding"
        elif registration.payment_status == "unpaid":
            payments.close_later(session, payable_type=PAYABLE_TYPE, payable_id=registration.id)
            registration.payment_status = "closed"
    elif registration.price_type == "points" and registration.payment_status == "paid":
        await ledger.change(session, registration.user_id, registration.amount,
                            reason="activity_refund", key=points_key(registration.id, "refund"),
                            ref_type="activity", ref_id=registration.activity_id,
                            note="活动报名取消退回")
        registration.payment_status = "refunded"


def release(activity: Activity, previous_status: str) -> None:
    """A registration left `previous_status` for an ending one: its seat or waitlist place is
    free."""
    if previous_status in states.SEATED:
        activity.seats_taken -= 1
    elif previous_status == "waitlisted":
        activity.waitlisted -= 1


async def promote_waitlist(session: AsyncSession, settings: Settings, activity: Activity,
                           now: dt.datetime) -> list[int]:
    """Free seats of a published activity that has not started go to the waitlist, oldest
    first; each promoted registrant is told (a cash one: pay by the deadline). One whose
    points no longer cover the price is dropped (told why) and the next one gets the seat.
    Returns the registrations promoted."""
    promoted: list[int] = []
    while (activity.status == "published" and activity.start_at > now
           and activity.seats_taken < activity.capacity and activity.waitlisted > 0):
        registration = (await session.execute(
            select(ActivityRegistration).where(
                ActivityRegistration.activity_id == activity.id,
                ActivityRegistration.status == "waitlisted")
            .order_by(ActivityRegistration.id).limit(1).with_for_update()
            .execution_options(populate_existing=True))).scalar_one_or_none()
        if registration is None:  # the counter drifted: trust the rows
            log.warning("activity %s counts %s waitlisted but has none", activity.id,
                        activity.waitlisted)
            activity.waitlisted = 0
            break
        activity.waitlisted -= 1
        try:
            async with session.begin_nested():
                target = await seat(session, settings, activity, registration, now)
        except InsufficientPoints:
            states.apply_registration(session, registration, "drop", "cancelled",
                                      actor_type="system", actor_id=None,
                                      reason="积分不足，候补未能转为正式报名")
            await tell(session, registration, activity, "waitlist_dropped", "候补未成功",
                       f"「{activity.title}」有空位了，但你的积分不足 {registration.amount}，"
                       "候补已取消")
            continue
        activity.seats_taken += 1
        states.apply_registration(session, registration, "promote", target,
                                  actor_type="system", actor_id=None)
        promoted.append(registration.id)
        if target == "pending_payment":
            await tell(session, registration, activity, "waitlist_promoted", "候补成功，请付款",
                       f"「{activity.title}」为你留了名额，请在 "
                       f"{iso_local(registration.pay_deadline or now)[:16]} 前完成支付")
        else:
            await tell(session, registration, activity, "waitlist_promoted", "候补成功",
                       f"「{activity.title}」候补已转为正式报名")
    return promoted
