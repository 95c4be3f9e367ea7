"""Booking reminders: rows due at a moment, sent by a beat job as notifications in the
`appointment` category (each notification schedules its WeChat subscribe message, within the
user's quota: pawhome/messaging/notifications.py). docs/booking.md ("Reminders").

- **Scheduled** in the transaction of the change that makes them due: a vaccine record with
  a next due date (VACCINE_REMINDER_DAYS before it, at 10:00 Asia/Shanghai), an appointment
  confirmed (`schedule_appointment`: APPOINTMENT_REMINDER_HOURS before its start). A
  `dedupe_key` names each, so scheduling twice adds nothing; an appointment's keys carry its
  start, so a rescheduled appointment gets new ones (`cancel_for_appointment` first).
- **Sent once**: the job takes due, pending rows oldest first; each is moved pending → sent
  by a conditional UPDATE in the same transaction that writes its notification, so two
  workers (or a retried job) never send one twice, and a crash before the commit leaves it
  pending for the next run.
- **Never lost**: the job has no lower bound on `due_at`, so reminders that fell due while
  the workers were down go out on the next run (a reminder for an appointment that has
  started meanwhile is cancelled instead of sent).
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import Appointment
from models.booking_records import BookingReminder
from pawhome.messaging import notifications
from pawhome.platform.resources import Resources

SHANGHAI = ZoneInfo("Asia/Shanghai")
VACCINE_REMINDER_DAYS = 7
VACCINE_REMINDER_HOUR = 10  # local time of day the vaccine reminder is due
APPOINTMENT_REMINDER_HOURS = (24, 2)
SEND_BATCH = 200


async def _schedule(session: AsyncSession, *, dedupe_key: str, kind: str, user_id: int,
                    pet_id: int, due_at: dt.datetime, payload: dict[str, Any],
                    appointment_id: int | None = None,
                    record_id: int | None = None) -> BookingReminder | None:
    """Add a pending reminder unless one with this key exists. Caller commits."""
    if (await session.execute(select(BookingReminder.id).where(
            BookingReminder.dedupe_key == dedupe_key))).first() is not None:
        return None
    reminder = BookingReminder(dedupe_key=dedupe_key, kind=kind, user_id=user_id,
                               pet_id=pet_id, due_at=due_at, payload=payload,
                               appointment_id=appointment_id, record_id=record_id)
    session.add(reminder)
    return reminder


def vaccine_due_at(next_due_on: dt.date, days_before: int = VACCINE_REMINDER_DAYS) -> dt.datetime:
    """10:00 Asia/Shanghai `days_before` days before the dose, as naive UTC."""
    local = dt.datetime.combine(next_due_on - dt.timedelta(days=days_before),
                                dt.time(VACCINE_REMINDER_HOUR), tzinfo=SHANGHAI)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


async def schedule_vaccine_due(session: AsyncSession, *, record_id: int, user_id: int,
                               pet_id: int, vaccine_name: str,
                               next_due_on: dt.date) -> BookingReminder | None:
    """The reminder of a vaccine record's next dose (due at once if that moment passed)."""
    return await _schedule(
        session, dedupe_key=f"vaccine_due:{record_id}", kind="vaccine_due", user_id=user_id,
        pet_id=pet_id, due_at=max(vaccine_due_at(next_due_on), utcnow()),
        record_id=record_id,
        payload={"title": "疫苗接种提醒",
                 "text": f"{vaccine_name} 下一针 {next_due_on.isoformat()}",
                 "next_due_on": next_due_on.isoformat(), "pet_id": pet_id})


async def schedule_appointment(session: AsyncSession, appointment: Appointment,
                               service_name: str) -> list[BookingReminder]:
    """The reminders of a confirmed appointment (those whose moment has not passed)."""
    now, made = utcnow(), []
    local = appointment.start_at.replace(tzinfo=dt.UTC).astimezone(SHANGHAI)
    for hours in APPOINTMENT_REMINDER_HOURS:
        due = appointment.start_at - dt.timedelta(hours=hours)
        if due <= now:
            continue
        key = f"appointment:{appointment.id}:{int(appointment.start_at.timestamp())}:{hours}"
        reminder = await _schedule(
            session, dedupe_key=key, kind="appointment", user_id=appointment.user_id,
            pet_id=appointment.pet_id, due_at=due, appointment_id=appointment.id,
            payload={"title": "预约提醒", "text": f"{service_name} {local:%m-%d %H:%M}",
                     "appointment_id": appointment.id, "hours_before": hours})
        if reminder is not None:
            made.append(reminder)
    return made


async def cancel_for_appointment(session: AsyncSession, appointment_id: int) -> int:
    """The appointment was cancelled or moved: its pending reminders will not be sent."""
    result = await session.execute(
        update(BookingReminder).where(BookingReminder.appointment_id == appointment_id,
                                      BookingReminder.status == "pending")
        .values(status="cancelled"))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _send_one(session: AsyncSession, reminder_id: int) -> bool:
    reminder = await session.get(BookingReminder, reminder_id)
    if reminder is None or reminder.status != "pending":
        return False
    if reminder.appointment_id is not None:
        appointment = await session.get(Appointment, reminder.appointment_id)
        if appointment is None or appointment.status not in ("pending_confirmation",
                                                             "confirmed") \
                or appointment.start_at <= utcnow():
            await session.execute(update(BookingReminder).where(
                BookingReminder.id == reminder_id, BookingReminder.status == "pending")
                .values(status="cancelled"))
            return False
    taken = await session.execute(
        update(BookingReminder).where(BookingReminder.id == reminder_id,
                                      BookingReminder.status == "pending")
        .values(status="sent", sent_at=utcnow()))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False  # another run sent it
    target = ("appointment", reminder.appointment_id) if reminder.appointment_id \
        else ("pet", reminder.pet_id)
    await notifications.notify(session, reminder.user_id, "appointment",
                               f"{reminder.kind}_reminder", target_type=target[0],
                               target_id=target[1], payload=dict(reminder.payload or {}))
    return True


async def send_due(resources: Resources, limit: int = SEND_BATCH) -> int:
    """Beat: send every pending reminder that is due (the late ones too). Returns how many
    were sent."""
    async with resources.db.session() as session:
        due = list((await session.execute(
            select(BookingReminder.id).where(BookingReminder.status == "pending",
                                             BookingReminder.due_at <= utcnow())
            .order_by(BookingReminder.due_at, BookingReminder.id).limit(limit))).scalars())
    sent = 0
    for reminder_id in due:
        async with resources.db.session() as session, session.begin():
            sent += await _send_one(session, reminder_id)
    return sent
