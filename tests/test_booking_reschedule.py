"""Reschedule: a new slot held and swapped in atomically — the old slot freed and the new
taken in one transaction (so moving 30 minutes later onto its own time works), nothing
changed when the new slot is taken, the timeline and reminders follow, two appointments
racing into one free slot make one move, and only the owner, before the deadline."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from models.booking_records import BookingReminder
from tests.booking_support import at, book, make_provider, pet_owner, tomorrow


async def move(api, user, appointment_id: int, start: str, staff_id: int | None = None):
    return await api.post(f"/v1/appointments/{appointment_id}/reschedule",
                          json={"start": start, "staff_id": staff_id}, token=user.token,
                          headers={"Idempotency-Key": uuid.uuid4().hex})


async def starts_on(api, service_id: int, day: dt.date) -> list[str]:
    return (await api.get(f"/v1/services/{service_id}/slots?date={day}")).ok()["days"][0]["any"]


@pytest.mark.gen_test(timeout=90)
async def test_moving_onto_part_of_its_own_time_swaps_the_slot_and_records_it(api, resources):
    setup = await make_provider(api, resources)
    sid = setup["service"]["id"]
    day = tomorrow() + dt.timedelta(days=2)
    user, pet = await pet_owner(resources)
    made = await book(api, user, pet, sid, at(day, "10:00"))
    moved = (await move(api, user, made["id"], at(day, "10:30"))).ok()
    assert (moved["id"], moved["start"], moved["status"]) == (made["id"], at(day, "10:30"),
                                                              "confirmed")
    free = await starts_on(api, sid, day)
    assert at(day, "10:00") not in free and at(day, "09:30") in free  # 09:30-10:30 is free
    assert at(day, "11:00") not in free and at(day, "11:30") in free
    detail = (await api.get(f"/v1/appointments/{made['id']}", token=user.token)).ok()
    last = detail["timeline"][-1]
    assert (last["action"], last["from"], last["to"]) == ("reschedule", "confirmed",
                                                          "confirmed")
    assert last["reason"] == f"from {at(day, '10:00')}"
    async with resources.db.session() as session:
        states = sorted((await session.execute(select(BookingReminder.status).where(
            BookingReminder.appointment_id == made["id"]))).scalars())
    assert states == ["cancelled", "cancelled", "pending", "pending"]


@pytest.mark.gen_test(timeout=90)
async def test_a_taken_new_slot_changes_nothing(api, resources):
    setup = await make_provider(api, resources)
    sid = setup["service"]["id"]
    day = tomorrow() + dt.timedelta(days=2)
    user, pet = await pet_owner(resources)
    other, their_pet = await pet_owner(resources)
    mine = await book(api, user, pet, sid, at(day, "14:00"))
    await book(api, other, their_pet, sid, at(day, "16:00"))
    (await move(api, user, mine["id"], at(day, "16:30"))).error(409, code=40980)
    (await move(api, user, mine["id"], at(day, "19:30"))).error(422, field="start")
    (await move(api, other, mine["id"], at(day, "09:00"))).error(404)
    detail = (await api.get(f"/v1/appointments/{mine['id']}", token=user.token)).ok()
    assert detail["start"] == at(day, "14:00") and len(detail["timeline"]) == 1
    assert at(day, "14:00") not in await starts_on(api, sid, day)


@pytest.mark.gen_test(timeout=90)
async def test_two_appointments_racing_into_one_free_slot_make_one_move(api, resources):
    setup = await make_provider(api, resources)
    sid = setup["service"]["id"]
    day = tomorrow() + dt.timedelta(days=2)
    people = [await pet_owner(resources) for _ in range(6)]
    made = [await book(api, user, pet, sid, at(day, f"{9 + i}:00"))
            for i, (user, pet) in enumerate(people)]
    target = at(day, "16:00")
    replies = await asyncio.gather(*(move(api, user, a["id"], target)
                                     for (user, _), a in zip(people, made, strict=True)))
    assert sorted(r.status for r in replies) == [200] + [409] * 5
    listed = (await api.get(f"/v1/merchant/providers/{setup['provider']['id']}/appointments",
                            token=setup["merchant"].token)).ok()["items"]
    assert sum(a["start"] == target for a in listed) == 1
    assert len({a["start"] for a in listed}) == 6


@pytest.mark.gen_test(timeout=90)
async def test_no_reschedule_after_the_deadline_or_once_cancelled(api, resources):
    setup = await make_provider(api, resources, service={"cancel_deadline_hours": 72})
    sid = setup["service"]["id"]
    user, pet = await pet_owner(resources)
    soon = await book(api, user, pet, sid, at(tomorrow(), "10:00"))
    (await move(api, user, soon["id"], at(tomorrow(), "15:00"))).error(409, code=40984)
    later = await book(api, user, pet, sid, at(tomorrow() + dt.timedelta(days=5), "10:00"))
    (await api.post(f"/v1/appointments/{later['id']}/cancel", json={},
                    token=user.token)).ok()
    (await move(api, user, later["id"], at(tomorrow() + dt.timedelta(days=5), "15:00"))
     ).error(409, code=40983)
