"""The double-booking proofs on real MariaDB: fifty users racing for one slot make exactly
one hold (the unique slot-unit key decides, not a check before the insert); twenty
overlapping boarding stays against three rooms never put more than three pets in a night;
an expired hold frees its slot — reclaimed by the next hold's own transaction, and by the
sweep run by the real worker; live appointment.status to the user's and provider's sockets."""
from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid

import pytest
from sqlalchemy import func, select, update

from models.booking import AppointmentHold, BoardingNight, SlotUnit
from pawhome.booking import slots
from tests.booking_support import at, book, hold, make_provider, pet_owner, tomorrow
from tests.fixtures_worker import wait_until
from tests.mall_support import make_member
from tests.test_chat_socket import ChatSocket
from workers.celery_app import celery_app


async def units_of(resources, resource: str) -> int:
    async with resources.db.session() as session:
        return (await session.execute(select(func.count()).select_from(SlotUnit).where(
            SlotUnit.resource == resource))).scalar_one()


async def expire_now(resources, hold_id: int) -> None:
    """Time passes for one hold: its expiry (and its units') moves into the past."""
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
    async with resources.db.session() as session, session.begin():
        await session.execute(update(AppointmentHold).where(AppointmentHold.id == hold_id)
                              .values(expires_at=past))
        await session.execute(update(SlotUnit).where(SlotUnit.hold_id == hold_id)
                              .values(expires_at=past))


@pytest.mark.gen_test(timeout=180)
async def test_fifty_users_racing_for_one_slot_make_exactly_one_appointment(api, resources):
    setup = await make_provider(api, resources, service={"buffer_after": 10})
    sid, staff = setup["service"]["id"], setup["staff"][0]
    start = at(tomorrow(), "10:00")
    people = [await pet_owner(resources) for _ in range(50)]
    replies = await asyncio.gather(*(hold(api, user, pet, sid, start, staff)
                                     for user, pet in people))
    statuses = sorted(r.status for r in replies)
    assert statuses == [201] + [409] * 49, [r.body[:200] for r in replies if r.status >= 500]
    assert {r.json["code"] for r in replies if r.status == 409} == {40980}
    assert await units_of(resources, f"s{staff}") == (60 + 10) // slots.UNIT_MINUTES
    # The losers now race the winner's confirmation with holds of their own, "any staff".
    (winner, _pet), won = next((p, r) for p, r in zip(people, replies, strict=True)
                               if r.status == 201)
    confirm = api.post("/v1/appointments", json={"hold_id": won.json["data"]["id"]},
                       token=winner.token, headers={"Idempotency-Key": uuid.uuid4().hex})
    again = await asyncio.gather(confirm, *(hold(api, user, pet, sid, start)
                                            for user, pet in people[:20] if user != winner))
    assert again[0].ok(201)["status"] == "confirmed"
    assert {r.status for r in again[1:]} == {409}
    listed = (await api.get(f"/v1/merchant/providers/{setup['provider']['id']}/appointments",
                            token=setup["merchant"].token)).ok()
    assert listed["total"] == 1


@pytest.mark.gen_test(timeout=180)
async def test_any_staff_racers_fill_each_staff_member_once(api, resources):
    setup = await make_provider(api, resources, staff=3)
    sid = setup["service"]["id"]
    start = at(tomorrow(), "16:00")
    people = [await pet_owner(resources) for _ in range(30)]
    replies = await asyncio.gather(*(hold(api, user, pet, sid, start) for user, pet in people))
    won = [r.json["data"] for r in replies if r.status == 201]
    assert sorted(h["staff_id"] for h in won) == sorted(setup["staff"])
    assert sum(r.status == 409 for r in replies) == 27


@pytest.mark.gen_test(timeout=180)
async def test_boarding_with_three_rooms_never_takes_a_fourth_pet_on_any_night(api, resources):
    setup = await make_provider(api, resources, service={
        "kind": "boarding", "name": "寄养标准间", "capacity": 3, "price": 12000})
    sid = setup["service"]["id"]
    first = tomorrow()
    rng = random.Random(12)
    stays = []
    for _ in range(20):
        check_in = first + dt.timedelta(days=rng.randrange(0, 4))
        stays.append((check_in, check_in + dt.timedelta(days=rng.randrange(1, 4))))
    people = [await pet_owner(resources) for _ in stays]

    async def board(person, stay):
        (user, pet), (check_in, check_out) = person, stay
        return await api.post("/v1/appointments/holds", json={
            "service_id": sid, "pet_id": pet, "check_in": check_in.isoformat(),
            "check_out": check_out.isoformat()}, token=user.token)

    replies = await asyncio.gather(*(board(p, s) for p, s in zip(people, stays, strict=True)))
    assert {r.status for r in replies} <= {201, 409}, [r.body[:200] for r in replies]
    assert {r.json["code"] for r in replies if r.status == 409} <= {40981}
    held = [s for s, r in zip(stays, replies, strict=True) if r.status == 201]
    assert held, "someone got a room"
    async with resources.db.session() as session:
        booked = {n.night: n.booked for n in (await session.execute(select(BoardingNight).where(
            BoardingNight.service_id == sid))).scalars()}
    for night, count in booked.items():
        covering = sum(1 for a, b in held if a <= night < b)
        assert count == covering <= 3, (night, count, covering)
    assert max(booked.values()) == 3  # twenty stays over five nights fill some night
    rooms = (await api.get(f"/v1/services/{sid}/slots?from={first}"
                           f"&to={first + dt.timedelta(days=6)}")).ok()["nights"]
    assert all(n["left"] == 3 - booked.get(dt.date.fromisoformat(n["night"]), 0)
               for n in rooms)
    # Confirmed stays keep their rooms; a cancelled one gives them back.
    person = people[stays.index(held[0])]
    hold_id = next(r.json["data"]["id"] for r in replies if r.status == 201
                   and r.json["data"]["pet_id"] == person[1])
    made = (await api.post("/v1/appointments", json={"hold_id": hold_id}, token=person[0].token,
                           headers={"Idempotency-Key": uuid.uuid4().hex})).ok(201)
    (await api.post(f"/v1/merchant/appointments/{made['id']}/actions",
                    json={"action": "cancel", "reason": "房间维修"},
                    token=setup["merchant"].token)).ok()
    async with resources.db.session() as session:
        after = {n.night: n.booked for n in (await session.execute(select(BoardingNight).where(
            BoardingNight.service_id == sid))).scalars()}
    for night in slots.nights(*held[0]):
        assert after[night] == booked[night] - 1


@pytest.mark.gen_test(timeout=120)
async def test_an_expired_hold_frees_its_slot_for_the_next_hold_and_cannot_be_confirmed(
        api, resources):
    setup = await make_provider(api, resources)
    sid = setup["service"]["id"]
    start = at(tomorrow(), "13:00")
    first, pet1 = await pet_owner(resources)
    second, pet2 = await pet_owner(resources)
    stale = (await hold(api, first, pet1, sid, start)).ok(201)
    (await hold(api, second, pet2, sid, start)).error(409, code=40980)
    await expire_now(resources, stale["id"])
    fresh = (await hold(api, second, pet2, sid, start)).ok(201)  # reclaimed in its transaction
    (await api.post("/v1/appointments", json={"hold_id": stale["id"]}, token=first.token,
                    headers={"Idempotency-Key": uuid.uuid4().hex})).error(409, code=40982)
    made = (await api.post("/v1/appointments", json={"hold_id": fresh["id"]},
                           token=second.token,
                           headers={"Idempotency-Key": uuid.uuid4().hex})).ok(201)
    assert made["start"] == start


@pytest.mark.gen_test(timeout=120)
async def test_the_worker_sweep_releases_expired_holds_and_the_slot_shows_again(
        api, resources, celery_worker_process):
    setup = await make_provider(api, resources)
    sid, staff = setup["service"]["id"], setup["staff"][0]
    day = tomorrow()
    user, pet = await pet_owner(resources)
    held = (await hold(api, user, pet, sid, at(day, "17:00"))).ok(201)
    starts = (await api.get(f"/v1/services/{sid}/slots?date={day}")).ok()["days"][0]["any"]
    assert at(day, "17:00") not in starts
    await expire_now(resources, held["id"])
    celery_app.send_task("default.release_expired_holds")

    async def released() -> bool:
        async with resources.db.session() as session:
            status = (await session.execute(select(AppointmentHold.status).where(
                AppointmentHold.id == held["id"]))).scalar_one()
        return status == "expired"

    await wait_until(released, what="the sweep to release the hold")
    assert await units_of(resources, f"s{staff}") == 0
    starts = (await api.get(f"/v1/services/{sid}/slots?date={day}")).ok()["days"][0]["any"]
    assert at(day, "17:00") in starts


@pytest.mark.gen_test(timeout=120)
async def test_user_and_provider_see_each_step_live(api, base_url, resources):
    setup = await make_provider(api, resources, service={"needs_confirmation": True})
    user, pet = await pet_owner(resources)
    merchant = setup["merchant"]
    watcher = await make_member(resources)
    sockets = [await ChatSocket.connect(base_url, person.token) for person in (user, merchant)]
    try:
        made = await book(api, user, pet, setup["service"]["id"], at(tomorrow(), "09:30"))
        for sock, role in zip(sockets, ("user", "provider"), strict=True):
            event = await sock.expect(lambda f: f["type"] == "appointment.status"
                                      and f["data"]["appointment_id"] == made["id"])
            assert (event["data"]["status"], event["data"]["role"]) == (
                "pending_confirmation", role)
        await sockets[0].send({"type": "sub", "topic": f"appointment:{made['id']}"})
        await sockets[0].expect(lambda f: f["type"] == "sub.ok")
        (await api.post(f"/v1/merchant/appointments/{made['id']}/actions",
                        json={"action": "confirm"}, token=merchant.token)).ok()
        for sock in sockets:
            event = await sock.expect(lambda f: f["type"] == "appointment.status"
                                      and f["data"]["action"] == "confirm")
            assert event["data"]["status"] == "confirmed"
        on_topic = await sockets[0].expect(lambda f: f.get("topic") ==
                                           f"appointment:{made['id']}")
        assert on_topic["data"]["status"] == "confirmed"
        stranger = await ChatSocket.connect(base_url, watcher.token)
        try:
            await stranger.send({"type": "sub", "topic": f"appointment:{made['id']}"})
            refused = await stranger.expect(lambda f: f["type"] == "error")
            assert str(refused["code"]).startswith("404"), refused
        finally:
            stranger.close()
    finally:
        for sock in sockets:
            sock.close()
