"""The periodic work of activities (run by beat through workers/activities.py), each step
idempotent and safe to run twice or late:

- **Unpaid seats freed**: a pending cash registration past its payment deadline expires, its
  payment is closed and the seat goes to the waitlist (each registration's own delayed task,
  and a sweep as the net under it).
- **Reminders** before the start (REMINDER_HOURS: a day and two hours before), as an
  `activity` notification, which schedules the WeChat subscribe message for a registrant who
  is offline. Each (registration, kind) is inserted into `activity_reminders` in the
  transaction that notifies, under a unique key: sent once, whatever runs twice. A job that
  finds both due (it was down) sends only the nearer one.
- **Finishing**: published activities past their end become finished; registrations still on
  the waitlist end with them (cancelled, nothing was paid).
Also the daily statistics metric `activity_registrations`.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from models.activities import Activity, ActivityRegistration, ActivityReminder
from models.base import utcnow
from pawhome.activities import seats, states
from pawhome.booking.slots import iso_local
from pawhome.platform.resources import Resources
from pawhome.stats.metrics import count_in_day, register_metric

REMINDER_HOURS = (24, 2)
BATCH = 200


async def expire_registration(resources: Resources, registration_id: int,
                              now: dt.datetime | None = None) -> bool:
    """Free the seat of a pending cash registration past its deadline; True if it did."""
    now = now or utcnow()
    async with resources.db.session() as session, session.begin():
        found = await session.get(ActivityRegistration, registration_id)
        if found is None or found.status != "pending_payment":
            return False
        activity = await seats.lock_activity(session, found.activity_id)
        registration = await seats.lock_registration(session, registration_id)
        if activity is None or registration is None \
                or registration.status != "pending_payment" \
                or registration.pay_deadline is None or registration.pay_deadline > now:
            return False
        previous = states.apply_registration(session, registration, "expire", "expired",
                                             actor_type="system", actor_id=None,
                                             reason="payment deadline passed")
        seats.release(activity, previous)
        await seats.give_back(session, registration, "")
        await seats.promote_waitlist(session, resources.settings, activity, now)
        await seats.tell(session, registration, activity, "payment_expired", "报名已失效",
                         f"「{activity.title}」未在时限内付款，名额已释放")
        return True


async def expire_unpaid(resources: Resources, now: dt.datetime | None = None) -> int:
    """The sweep: every pending registration past its deadline. Returns how many expired."""
    now = now or utcnow()
    async with resources.db.session() as session:
        due = list((await session.execute(select(ActivityRegistration.id).where(
            ActivityRegistration.status == "pending_payment",
            ActivityRegistration.pay_deadline <= now)
            .order_by(ActivityRegistration.pay_deadline).limit(BATCH))).scalars())
    return sum([await expire_registration(resources, rid, now) for rid in due])


def _kind_due(start_at: dt.datetime, now: dt.datetime) -> str | None:
    """The nearest reminder whose moment has come ("2h" before "24h"), if any."""
    due = [hours for hours in REMINDER_HOURS if start_at - dt.timedelta(hours=hours) <= now]
    return f"{min(due)}h" if due else None


async def send_reminders(resources: Resources, now: dt.datetime | None = None) -> int:
    """Remind the confirmed registrants of published activities starting within the widest
    window, once per (registration, kind). Returns how many were sent."""
    now = now or utcnow()
    horizon = now + dt.timedelta(hours=max(REMINDER_HOURS))
    sent = 0
    async with resources.db.session() as session:
        activities = list((await session.execute(select(Activity).where(
            Activity.status == "published", Activity.start_at > now,
            Activity.start_at <= horizon).order_by(Activity.start_at))).scalars())
    for activity in activities:
        kind = _kind_due(activity.start_at, now)
        if kind is None:
            continue
        while True:
            async with resources.db.session() as session:
                pending = list((await session.execute(
                    select(ActivityRegistration.id).outerjoin(ActivityReminder, and_(
                        ActivityReminder.registration_id == ActivityRegistration.id,
                        ActivityReminder.kind == kind)).where(
                        ActivityRegistration.activity_id == activity.id,
                        ActivityRegistration.status == "confirmed",
                        ActivityReminder.id.is_(None))
                    .order_by(ActivityRegistration.id).limit(BATCH))).scalars())
            for registration_id in pending:
                sent += await _remind(resources, activity.id, registration_id, kind)
            if len(pending) < BATCH:
                break
    return sent


async def _remind(resources: Resources, activity_id: int, registration_id: int,
                  kind: str) -> int:
    async with resources.db.session() as session, session.begin():
        try:
            async with session.begin_nested():
                session.add(ActivityReminder(registration_id=registration_id, kind=kind,
                                             sent_at=utcnow()))
                await session.flush()
        except IntegrityError:
            return 0  # another run sent it
        registration = await session.get(ActivityRegistration, registration_id)
        activity = await session.get(Activity, activity_id)
        if registration is None or activity is None or registration.status != "confirmed":
            return 0
        when = "明天" if kind == "24h" else "即将"
        await seats.tell(session, registration, activity, f"reminder_{kind}", "活动提醒",
                         f"「{activity.title}」{when}开始：{iso_local(activity.start_at)[:16]}，"
                         f"地点 {activity.place_name}，签到码 {registration.check_in_code}")
        return 1


async def finish_past(resources: Resources, now: dt.datetime | None = None) -> int:
    """Published activities whose end has passed become finished. Returns how many."""
    now = now or utcnow()
    async with resources.db.session() as session:
        due = list((await session.execute(select(Activity.id).where(
            Activity.status == "published", Activity.end_at <= now).limit(BATCH))).scalars())
    done = 0
    for activity_id in due:
        async with resources.db.session() as session, session.begin():
            activity = await seats.lock_activity(session, activity_id)
            if activity is None or activity.status != "published" or activity.end_at > now:
                continue
            states.apply_activity(session, activity, "finish", actor_type="system",
                                  actor_id=None)
            waiting = (await session.execute(select(ActivityRegistration).where(
                ActivityRegistration.activity_id == activity.id,
                ActivityRegistration.status == "waitlisted").with_for_update())).scalars()
            for registration in waiting:  # never promoted: their place ends with it
                seats.release(activity, states.apply_registration(
                    session, registration, "drop", "cancelled", actor_type="system",
                    actor_id=None, reason="活动已结束，候补未能转为正式报名"))
            done += 1
    return done


register_metric("activity_registrations", count_in_day(ActivityRegistration.created_at),
                label="活动报名")
