"""Booking end to end on real MariaDB and Redis: the catalogue and its cache, slots that
follow hours, breaks and bookings, holds confirmed into appointments, the provider's
actions, the schedule conflicts, and hostile callers."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from models.booking import AppointmentEvent
from models.booking_records import BookingReminder
from tests.booking_support import at, book, hold, make_provider, pet_owner, tomorrow, unique


async def reminder_states(resources, appointment_id: int) -> list[str]:
    async with resources.db.session() as session:
        return list((await session.execute(select(BookingReminder.status).where(
            BookingReminder.appointment_id == appointment_id).order_by(
            BookingReminder.id))).scalars())


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


@pytest.mark.gen_test(timeout=60)
async def test_services_near_a_point_come_nearest_first_and_filter_by_kind_and_pet(
        api, resources):
    kind_tag = unique("far")
    near = await make_provider(api, resources, lat=31.2300, lng=121.4700,
                               service={"name": kind_tag, "pet_types": ["cat"]})
    far = await make_provider(api, resources, lat=31.3000, lng=121.6000,
                              service={"name": kind_tag})
    data = (await api.get("/v1/services?kind=grooming&near=31.2301,121.4701&limit=100")).ok()
    mine = [i for i in data["items"] if i["name"] == kind_tag]
    assert [i["provider"]["id"] for i in mine] == [near["provider"]["id"],
                                                   far["provider"]["id"]]
    assert mine[0]["distance_km"] < 0.1 < mine[1]["distance_km"]
    dogs = (await api.get("/v1/services?kind=grooming&pet_type=dog&near=31.23,121.47"
                          "&limit=100")).ok()
    assert [i["provider"]["id"] for i in dogs["items"] if i["name"] == kind_tag] == [
        far["provider"]["id"]]
    (await api.get("/v1/services?near=91,0")).error(422, field="near")
    (await api.get("/v1/services?near=abc")).error(422)


@pytest.mark.gen_test(timeout=60)
async def test_a_provider_page_shows_services_staff_and_next_day_and_drops_its_cache(
        api, resources):
    setup = await make_provider(api, resources, staff=2)
    pid = setup["provider"]["id"]
    page = (await api.get(f"/v1/providers/{pid}")).ok()
    assert [s["id"] for s in page["services"]] == [setup["service"]["id"]]
    assert [s["id"] for s in page["staff"]] == setup["staff"]
    assert page["next_available_day"] is not None
    staff = (await api.get(f"/v1/providers/{pid}/staff")).ok()["items"]
    assert [s["service_ids"] for s in staff] == [[setup["service"]["id"]]] * 2
    # A change is seen at once: the cached page is dropped.
    (await api.request("PATCH", f"/v1/merchant/providers/{pid}", json={"name": "新名字"},
                       token=setup["merchant"].token)).ok()
    assert (await api.get(f"/v1/providers/{pid}")).ok()["name"] == "新名字"
    (await api.request("PATCH", f"/v1/merchant/providers/{pid}", json={"status": "closed"},
                       token=setup["merchant"].token)).ok()
    (await api.get(f"/v1/providers/{pid}")).error(404)


@pytest.mark.gen_test(timeout=60)
async def test_slots_follow_hours_breaks_and_bookings_per_staff_and_any(api, resources):
    setup = await make_provider(api, resources, staff=2, hours=[
        {"weekday": d, "start": "09:00", "end": "12:00"} for d in range(7)])
    pid, sid = setup["provider"]["id"], setup["service"]["id"]
    a, b = setup["staff"]
    day = tomorrow()
    token = setup["merchant"].token
    (await api.post(f"/v1/merchant/providers/{pid}/breaks", json={
        "staff_id": a, "day": day.isoformat(), "start": "10:00", "end": "10:30"},
        token=token)).ok(201)
    user, pet = await pet_owner(resources)
    await book(api, user, pet, sid, at(day, "09:00"), b)
    data = (await api.get(f"/v1/services/{sid}/slots?date={day.isoformat()}")).ok()
    (today,) = data["days"]
    by_staff = {s["staff_id"]: [t[11:16] for t in s["starts"]] for s in today["staff"]}
    assert by_staff[a] == ["09:00", "10:30", "10:45", "11:00"]
    assert by_staff[b] == ["10:00", "10:15", "10:30", "10:45", "11:00"]
    assert [t[11:16] for t in today["any"]] == ["09:00", "10:00", "10:15", "10:30", "10:45",
                                                "11:00"]
    assert all(t.endswith("+08:00") for t in today["any"])
    # A day off for everyone empties the day; removing it brings the slots back.
    override = (await api.post(f"/v1/merchant/providers/{pid}/overrides", json={
        "day": day.isoformat(), "kind": "holiday", "note": "元旦"}, token=token)).ok(201)
    assert (await api.get(f"/v1/services/{sid}/slots?date={day.isoformat()}")).ok()[
        "days"][0]["any"] == []
    # ...and the appointment it no longer covers is listed, not dropped.
    assert [c["staff_id"] for c in override["conflicts"]] == [b]
    entry = override["overrides"][-1]["id"]
    (await api.delete(f"/v1/merchant/providers/{pid}/overrides/{entry}", token=token)).ok()
    assert (await api.get(f"/v1/services/{sid}/slots?date={day.isoformat()}")).ok()[
        "days"][0]["any"]


@pytest.mark.gen_test(timeout=60)
async def test_a_deactivated_groomer_keeps_their_bookings_listed_as_conflicts(api, resources):
    setup = await make_provider(api, resources, staff=2)
    pid, sid, token = setup["provider"]["id"], setup["service"]["id"], setup["merchant"].token
    a, b = setup["staff"]
    user, pet = await pet_owner(resources)
    kept = await book(api, user, pet, sid, at(tomorrow(), "15:00"), b)
    other = await book(api, user, pet, sid, at(tomorrow(), "15:00"), a)
    changed = (await api.request("PATCH", f"/v1/merchant/staff/{b}", json={"active": False},
                                 token=token)).ok()
    assert changed["active"] is False and changed["upcoming_appointments"] == [kept["id"]]
    schedule = (await api.get(f"/v1/merchant/providers/{pid}/schedule", token=token)).ok()
    assert [(c["appointment_id"], c["reason"]) for c in schedule["conflicts"]] == [
        (kept["id"], "staff_inactive")]
    assert (await api.get(f"/v1/appointments/{kept['id']}", token=user.token)).ok()[
        "status"] == "confirmed"  # listed, never dropped
    starts = (await api.get(f"/v1/services/{sid}/slots?date={tomorrow()}")).ok()["days"][0]
    assert [s["staff_id"] for s in starts["staff"]] == [a]  # b offers no more slots
    assert other["staff_id"] == a


@pytest.mark.gen_test(timeout=60)
async def test_hold_confirm_and_the_provider_moves_it_to_completed_with_a_timeline(
        api, resources):
    setup = await make_provider(api, resources, service={"needs_confirmation": True})
    sid, merchant = setup["service"]["id"], setup["merchant"]
    user, pet = await pet_owner(resources)
    start = at(tomorrow(), "14:00")
    held = (await hold(api, user, pet, sid, start)).ok(201)
    assert held["staff_id"] == setup["staff"][0] and held["status"] == "held"
    headers = key()
    made = (await api.post("/v1/appointments", json={"hold_id": held["id"], "remark": "怕水"},
                           token=user.token, headers=headers)).ok(201)
    again = (await api.post("/v1/appointments", json={"hold_id": held["id"], "remark": "怕水"},
                            token=user.token, headers=headers)).ok(201)
    assert again["id"] == made["id"] and made["status"] == "pending_confirmation"
    assert made["start"] == start and made["price"] == 8800
    for action in ("confirm", "check_in", "complete"):
        (await api.post(f"/v1/merchant/appointments/{made['id']}/actions",
                        json={"action": action}, token=merchant.token)).ok()
    (await api.post(f"/v1/merchant/appointments/{made['id']}/actions",
                    json={"action": "check_in"}, token=merchant.token)).error(409, code=40983)
    detail = (await api.get(f"/v1/appointments/{made['id']}", token=user.token)).ok()
    assert detail["status"] == "completed"
    assert [(e["action"], e["to"], e["actor_type"]) for e in detail["timeline"]] == [
        ("book", "pending_confirmation", "user"), ("confirm", "confirmed", "provider"),
        ("check_in", "checked_in", "provider"), ("complete", "completed", "provider")]
    mine = (await api.get("/v1/appointments?when=past", token=user.token)).ok()
    assert [a["id"] for a in mine["items"]] == [made["id"]]
    theirs = (await api.get(f"/v1/merchant/providers/{setup['provider']['id']}/appointments",
                            token=merchant.token)).ok()
    assert [a["id"] for a in theirs["items"]] == [made["id"]]


@pytest.mark.gen_test(timeout=60)
async def test_a_confirmed_slot_is_gone_from_the_slots_and_a_second_hold_is_409(api, resources):
    setup = await make_provider(api, resources)
    sid = setup["service"]["id"]
    day = tomorrow()
    first, pet1 = await pet_owner(resources)
    second, pet2 = await pet_owner(resources)
    await book(api, first, pet1, sid, at(day, "11:00"))
    (await hold(api, second, pet2, sid, at(day, "11:30"))).error(409, code=40980)
    starts = (await api.get(f"/v1/services/{sid}/slots?date={day}")).ok()["days"][0]["any"]
    assert at(day, "11:00") not in starts and at(day, "10:00") in starts
    assert at(day, "10:15") not in starts and at(day, "12:00") in starts


@pytest.mark.gen_test(timeout=60)
async def test_hostile_holds_and_appointments_are_refused_and_change_nothing(api, resources):
    setup = await make_provider(api, resources, service={
        "pet_types": ["dog"], "max_weight_kg": 20, "min_notice_minutes": 120,
        "horizon_days": 7})
    sid = setup["service"]["id"]
    day = tomorrow()
    user, pet = await pet_owner(resources)
    stranger, their_pet = await pet_owner(resources)
    cat_owner, cat = await pet_owner(resources, species="cat")
    big_owner, big = await pet_owner(resources, weight=35)
    (await hold(api, user, their_pet, sid, at(day, "10:00"))).error(404)
    (await hold(api, cat_owner, cat, sid, at(day, "10:00"))).error(422, field="pet_id")
    (await hold(api, big_owner, big, sid, at(day, "10:00"))).error(422, field="pet_id")
    naive = (await api.post("/v1/appointments/holds", json={
        "service_id": sid, "start": f"{day}T10:00:00", "pet_id": pet}, token=user.token))
    naive.error(422, field="start")
    (await hold(api, user, pet, sid, at(day, "10:07"))).error(422, field="start")
    (await hold(api, user, pet, sid, at(day, "19:00"))).error(422, field="start")
    (await hold(api, user, pet, sid, at(day + dt.timedelta(days=30), "10:00"))).error(
        422, field="start")
    (await hold(api, user, pet, sid, at(day - dt.timedelta(days=2), "10:00"))).error(
        422, field="start")
    (await hold(api, user, pet, sid, at(day, "10:00"), staff_id=10**12)).error(
        422, field="staff_id")
    held = (await hold(api, user, pet, sid, at(day, "10:00"))).ok(201)
    (await api.post("/v1/appointments", json={"hold_id": held["id"]}, token=stranger.token,
                    headers=key())).error(404)
    made = (await api.post("/v1/appointments", json={"hold_id": held["id"]},
                           token=user.token, headers=key())).ok(201)
    (await api.get(f"/v1/appointments/{made['id']}", token=stranger.token)).error(404)
    (await api.post(f"/v1/appointments/{made['id']}/cancel", json={},
                    token=stranger.token)).error(404)
    other_merchant = (await make_provider(api, resources))["merchant"]
    (await api.post(f"/v1/merchant/appointments/{made['id']}/actions",
                    json={"action": "cancel", "reason": "x"},
                    token=other_merchant.token)).error(404)
    (await api.get(f"/v1/merchant/providers/{setup['provider']['id']}/appointments",
                   token=other_merchant.token)).error(404)
    (await api.put(f"/v1/merchant/providers/{setup['provider']['id']}/hours",
                   json={"windows": []}, token=other_merchant.token)).error(404)
    (await api.post(f"/v1/merchant/appointments/{made['id']}/actions",
                    json={"action": "cancel"}, token=setup["merchant"].token)).error(
        422, field="reason")
    (await api.post(f"/v1/merchant/appointments/{made['id']}/actions",
                    json={"action": "no_show"}, token=setup["merchant"].token)).error(409)
    assert (await api.get(f"/v1/appointments/{made['id']}", token=user.token)).ok()[
        "status"] == "confirmed"


@pytest.mark.gen_test(timeout=60)
async def test_cancellation_deadline_is_enforced_and_a_cancel_frees_the_slot(api, resources):
    setup = await make_provider(api, resources, service={"cancel_deadline_hours": 48})
    sid = setup["service"]["id"]
    day = tomorrow()
    user, pet = await pet_owner(resources)
    late = await book(api, user, pet, sid, at(day, "15:00"))  # within 48 h: too late
    (await api.post(f"/v1/appointments/{late['id']}/cancel", json={"reason": "有事"},
                    token=user.token)).error(409, code=40984)
    # The provider may still cancel, with a reason, and the slot is free again.
    cancelled = (await api.post(f"/v1/merchant/appointments/{late['id']}/actions",
                                json={"action": "cancel", "reason": "美容师病假"},
                                token=setup["merchant"].token)).ok()
    assert cancelled["status"] == "cancelled"
    other, their_pet = await pet_owner(resources)
    await book(api, other, their_pet, sid, at(day, "15:00"))
    early = await book(api, user, pet, sid, at(day + dt.timedelta(days=3), "15:00"))
    assert await reminder_states(resources, early["id"]) == ["pending", "pending"]
    done = (await api.post(f"/v1/appointments/{early['id']}/cancel", json={"reason": "有事"},
                           token=user.token)).ok()
    assert done["status"] == "cancelled"
    (await api.post(f"/v1/appointments/{early['id']}/cancel", json={},
                    token=user.token)).error(409, code=40983)
    assert await reminder_states(resources, early["id"]) == ["cancelled", "cancelled"]
    async with resources.db.session() as session:
        trail = (await session.execute(select(AppointmentEvent.action, AppointmentEvent.reason)
                                       .where(AppointmentEvent.appointment_id == late["id"])
                                       .order_by(AppointmentEvent.id))).all()
    assert [tuple(t) for t in trail] == [("book", ""), ("cancel", "美容师病假")]


@pytest.mark.gen_test(timeout=60)
async def test_boarding_capacity_changes_reach_the_nights_already_counted(api, resources):
    setup = await make_provider(api, resources, service={
        "kind": "boarding", "name": unique("寄养"), "capacity": 1})
    sid, token = setup["service"]["id"], setup["merchant"].token
    night = tomorrow()
    stay = {"service_id": sid, "check_in": night.isoformat(),
            "check_out": (night + dt.timedelta(days=1)).isoformat()}
    people = [await pet_owner(resources) for _ in range(3)]

    async def board(person):
        return await api.post("/v1/appointments/holds", json={**stay, "pet_id": person[1]},
                              token=person[0].token)

    (await board(people[0])).ok(201)
    (await board(people[1])).error(409, code=40981)
    (await api.request("PATCH", f"/v1/merchant/services/{sid}", json={"capacity": 2},
                       token=token)).ok()
    (await board(people[1])).ok(201)
    (await api.request("PATCH", f"/v1/merchant/services/{sid}", json={"capacity": 1},
                       token=token)).ok()
    (await board(people[2])).error(409, code=40981)
    nights = (await api.get(f"/v1/services/{sid}/slots?date={night}")).ok()["nights"]
    assert (nights[0]["capacity"], nights[0]["left"]) == (2, 0)  # two pets stay, none more


@pytest.mark.gen_test(timeout=60)
async def test_a_cached_slots_request_reads_no_table_and_a_change_is_seen_at_once(
        api, resources):
    from pawhome.booking import availability
    from tests.test_chat_rules import _statements_on

    setup = await make_provider(api, resources, staff=3)
    sid, a = setup["service"]["id"], setup["staff"][0]
    query = availability.SlotsQuery(date=tomorrow())
    first = await availability.service_slots(resources, sid, query)
    statements, stop = _statements_on(resources.db.engine)
    try:
        again = await availability.service_slots(resources, sid, query)
    finally:
        stop()
    assert again == first
    assert [s for s in statements if "booking" in s or "slot" in s] == []
    # a hold (another resource generation) and a staff change (the catalogue) are seen at once
    user, pet = await pet_owner(resources)
    start = first["days"][0]["staff"][0]["starts"][0]
    (await hold(api, user, pet, sid, start, a)).ok(201)
    held = await availability.service_slots(resources, sid, query)
    assert start not in held["days"][0]["staff"][0]["starts"]
    (await api.request("PATCH", f"/v1/merchant/staff/{a}", json={"active": False},
                       token=setup["merchant"].token)).ok()
    after = await availability.service_slots(resources, sid, query)
    assert a not in [s["staff_id"] for s in after["days"][0]["staff"]]
