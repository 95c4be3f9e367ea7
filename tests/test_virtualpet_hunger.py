"""Hungry reminders: every write of a pet's statuses sets the moment its fullness falls under
the threshold; a beat job sends the due ones as `system` notifications — once however many
runs race, late after an outage, never for a pet fed meanwhile, at most one a pet a day."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select

from models.base import utcnow
from models.realtime import Notification
from pawhome.virtualpet import hunger
from tests.fixtures_worker import wait_until
from tests.virtualpet_support import make_pet, pet_row


async def reminded(resources, user_id: int) -> list[Notification]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Notification).where(
            Notification.user_id == user_id, Notification.kind == "pet_hungry"))).scalars())


def test_the_morning_after_is_nine_in_shanghai():
    assert hunger.local_day(dt.datetime(2027, 3, 13, 16, 0)) == dt.date(2027, 3, 14)
    assert hunger.morning_after(dt.date(2027, 3, 14)) == dt.datetime(2027, 3, 15, 1, 0)


@pytest.mark.gen_test(timeout=30)
async def test_an_interaction_sets_the_hungry_moment(api, resources):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id, personality="plain", fullness=60_000)
    before = utcnow()
    (await api.post(f"/v1/virtual-pets/{pet_id}/interactions", token=owner.token,
                    json={"type": "petting"})).ok()
    remind_at = (await pet_row(resources, pet_id)).hungry_remind_at
    # fullness 60 falls under 20 at 4/h: 10 hours after the interaction.
    assert remind_at is not None
    assert before + dt.timedelta(hours=10) <= remind_at <= utcnow() + dt.timedelta(hours=10, seconds=2)


@pytest.mark.gen_test(timeout=60)
async def test_a_due_reminder_is_sent_once_even_late(api, resources):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id, fullness=10_000, hours_ago=1,
                            hungry_remind_at=utcnow() - dt.timedelta(days=3))
    assert await hunger.send_due(resources) >= 1
    [notice] = await reminded(resources, owner.user_id)
    assert notice.category == "system" and notice.target_id == pet_id
    assert notice.payload["pet_id"] == pet_id and notice.payload["fullness"] < 20
    row = await pet_row(resources, pet_id)
    assert row.hungry_remind_at is None and row.hungry_reminded_on == hunger.local_day(utcnow())
    await hunger.send_due(resources)
    assert len(await reminded(resources, owner.user_id)) == 1


@pytest.mark.gen_test(timeout=60)
async def test_racing_runs_send_each_reminder_exactly_once(api, resources):
    owners = [await api.login() for _ in range(3)]
    for owner in owners:
        await make_pet(resources, owner.user_id, fullness=5_000,
                       hungry_remind_at=utcnow() - dt.timedelta(minutes=1))
    await asyncio.gather(*[hunger.send_due(resources) for _ in range(4)])
    for owner in owners:
        assert len(await reminded(resources, owner.user_id)) == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_fed_pet_or_one_reminded_today_is_not_reminded(api, resources):
    owner = await api.login()
    fed = await make_pet(resources, owner.user_id, fullness=90_000,
                         hungry_remind_at=utcnow() - dt.timedelta(minutes=1))
    today = await make_pet(resources, owner.user_id, fullness=5_000,
                           hungry_remind_at=utcnow() - dt.timedelta(minutes=1),
                           hungry_reminded_on=hunger.local_day(utcnow()))
    await hunger.send_due(resources)
    assert await reminded(resources, owner.user_id) == []
    # The fed one waits for its new moment; the other for tomorrow morning.
    assert (await pet_row(resources, fed)).hungry_remind_at > utcnow() + dt.timedelta(hours=10)
    assert (await pet_row(resources, today)).hungry_remind_at == \
        hunger.morning_after(hunger.local_day(utcnow()))


@pytest.mark.gen_test(timeout=30)
async def test_a_released_pet_is_not_reminded(api, resources):
    owner = await api.login()
    pet_id = await make_pet(resources, owner.user_id, fullness=5_000,
                            hungry_remind_at=utcnow() - dt.timedelta(minutes=1))
    (await api.delete(f"/v1/virtual-pets/{pet_id}", token=owner.token)).ok()
    await hunger.send_due(resources)
    assert await reminded(resources, owner.user_id) == []


@pytest.mark.gen_test(timeout=90)
async def test_the_beat_task_sends_due_reminders_on_the_real_worker(
        api, resources, celery_worker_process):
    from workers.celery_app import celery_app
    from workers.schedule import beat_schedule

    entry = beat_schedule(resources.settings)["send-hungry-pet-reminders"]
    owner = await api.login()
    await make_pet(resources, owner.user_id, fullness=5_000,
                   hungry_remind_at=utcnow() - dt.timedelta(seconds=1))
    celery_app.send_task(entry["task"])

    async def sent():
        return await reminded(resources, owner.user_id)

    await wait_until(sent, timeout=40, what="the hungry reminder sent by the worker")


@pytest.mark.gen_test(timeout=30)
async def test_an_adopted_pet_gets_its_first_hungry_moment(api, resources):
    from models.virtual_pets import PetGeneration
    from pawhome.virtualpet import adoption

    owner = await api.login()
    now = utcnow()
    async with resources.db.session() as session, session.begin():
        gen = PetGeneration(user_id=owner.user_id, media_id=1, status="done",
                            params={"species": "cat"}, personality="calm",
                            expires_at=now + dt.timedelta(hours=1))
        session.add(gen)
        await session.flush()
        pet = await adoption.adopt_generation(session, gen, "小花", now)
        pet_id = pet.id
    # calm: fullness 80 falls under 20 at 3.6/h: 16.7 hours after adoption.
    remind_at = (await pet_row(resources, pet_id)).hungry_remind_at
    assert remind_at is not None
    assert abs((remind_at - now).total_seconds() - 60 / 3.6 * 3600) < 5
