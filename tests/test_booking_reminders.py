"""Booking reminders: a vaccine record's next due date schedules its reminder; due reminders
are sent once as `appointment` notifications — late ones too after the workers were down,
never twice however many runs race — and an appointment's reminders go with it when it is
cancelled or has started. The beat task runs on the real worker."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from models.base import utcnow
from models.booking import Appointment
from models.booking_records import BookingReminder
from models.realtime import Notification
from pawhome.booking import reminders
from tests.fixtures_worker import wait_until
from tests.test_booking_records import VACCINE, make_appointment, record_path


async def reminders_of(resources, **where) -> list[BookingReminder]:
    async with resources.db.session() as session:
        return list((await session.execute(select(BookingReminder).filter_by(**where)
                                           .order_by(BookingReminder.id))).scalars())


async def told(resources, user_id: int, kind: str) -> list[Notification]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Notification).where(
            Notification.user_id == user_id, Notification.category == "appointment",
            Notification.kind == kind))).scalars())


async def make_due(resources, ids: list[int], ago: dt.timedelta = dt.timedelta(0)) -> None:
    """Time passes: these reminders are due (`ago` in the past)."""
    async with resources.db.session() as session, session.begin():
        await session.execute(update(BookingReminder).where(BookingReminder.id.in_(ids))
                              .values(due_at=utcnow() - ago - dt.timedelta(seconds=1)))


@pytest.mark.gen_test(timeout=60)
async def test_a_vaccine_record_schedules_the_next_dose_reminder_sent_once(api, resources):
    merchant, owner, pet_id, appointment_id = await make_appointment(api, resources)
    record = (await api.post(record_path(appointment_id), token=merchant.token,
                             json={"details": VACCINE})).ok(201)
    [reminder] = await reminders_of(resources, record_id=record["id"])
    assert (reminder.kind, reminder.status, reminder.user_id, reminder.pet_id) == \
        ("vaccine_due", "pending", owner.user_id, pet_id)
    # A week before 2027-12-05, 10:00 in Shanghai = 02:00 UTC.
    assert reminder.due_at == dt.datetime(2027, 11, 28, 2, 0)
    await reminders.send_due(resources)  # not due yet: ours stays pending
    assert await told(resources, owner.user_id, "vaccine_due_reminder") == []
    assert (await reminders_of(resources, id=reminder.id))[0].status == "pending"

    await make_due(resources, [reminder.id], ago=dt.timedelta(days=3))  # workers were down
    await reminders.send_due(resources)
    [notice] = await told(resources, owner.user_id, "vaccine_due_reminder")
    assert notice.payload["next_due_on"] == "2027-12-05" and notice.target_id == pet_id
    assert (await reminders_of(resources, id=reminder.id))[0].status == "sent"
    await reminders.send_due(resources)  # a second run sends nothing more
    assert len(await told(resources, owner.user_id, "vaccine_due_reminder")) == 1


@pytest.mark.gen_test(timeout=60)
async def test_racing_runs_send_each_reminder_exactly_once(api, resources):
    _, owner, _, appointment_id = await make_appointment(api, resources, status="confirmed")
    async with resources.db.session() as session, session.begin():
        appointment = await session.get(Appointment, appointment_id)
        appointment.start_at = utcnow() + dt.timedelta(days=3)
        made = await reminders.schedule_appointment(session, appointment, "狂犬疫苗")
        again = await reminders.schedule_appointment(session, appointment, "狂犬疫苗")
        await session.flush()
        ids = [r.id for r in made]
    assert len(ids) == 2 and again == []  # 24 h and 2 h before; scheduling twice adds none
    await make_due(resources, ids)
    sent = await asyncio.gather(*[reminders.send_due(resources) for _ in range(4)])
    assert sum(sent) == 2
    assert len(await told(resources, owner.user_id, "appointment_reminder")) == 2


@pytest.mark.gen_test(timeout=60)
async def test_a_cancelled_or_started_appointment_sends_no_reminder(api, resources):
    _, owner, _, cancelled_id = await make_appointment(api, resources, status="confirmed")
    _, _, _, started_id = await make_appointment(api, resources, status="confirmed")
    ids = {}
    async with resources.db.session() as session, session.begin():
        for appointment_id in (cancelled_id, started_id):
            appointment = await session.get(Appointment, appointment_id)
            appointment.start_at = utcnow() + dt.timedelta(days=2)
            made = await reminders.schedule_appointment(session, appointment, "洗护")
            await session.flush()
            ids[appointment_id] = [r.id for r in made]
        assert await reminders.cancel_for_appointment(session, cancelled_id) == 2
        # The other one started while the workers were down.
        await session.execute(update(Appointment).where(Appointment.id == started_id)
                              .values(start_at=utcnow() - dt.timedelta(minutes=5)))
    await make_due(resources, ids[cancelled_id] + ids[started_id])
    await reminders.send_due(resources)
    states = {r.id: r.status for r in await reminders_of(resources, kind="appointment")
              if r.appointment_id in ids}
    assert set(states.values()) == {"cancelled"}
    assert await told(resources, owner.user_id, "appointment_reminder") == []


@pytest.mark.gen_test(timeout=90)
async def test_the_beat_task_sends_due_reminders_on_the_real_worker(
        api, resources, celery_worker_process):
    from workers.celery_app import celery_app
    from workers.schedule import beat_schedule

    entry = beat_schedule(resources.settings)["send-booking-reminders"]
    merchant, owner, _, appointment_id = await make_appointment(api, resources)
    record = (await api.post(record_path(appointment_id), token=merchant.token,
                             json={"details": VACCINE})).ok(201)
    [reminder] = await reminders_of(resources, record_id=record["id"])
    await make_due(resources, [reminder.id])
    celery_app.send_task(entry["task"])

    async def sent():
        return await told(resources, owner.user_id, "vaccine_due_reminder")

    await wait_until(sent, timeout=40, what="the reminder sent by the worker")
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(BookingReminder.id)).where(
            BookingReminder.id == reminder.id, BookingReminder.status == "sent"))
        ).scalar_one() == 1
