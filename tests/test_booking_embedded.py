"""Booking as a new user meets it in `make run` (embedded mode: SQLite, the in-process store
and tasks), on the demo data: find a grooming service near a point, see its slots, hold and
confirm one for the demo dog, the shop checks it in and completes it; a boarding stay in the
demo clinic's rooms; a second user cannot take the booked slot. And issue 12's "done when":
the shop confirms, checks in and completes an appointment with a record while its user
watches live, and a vaccine record's next due date produces a reminder the beat sends."""
from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys

import httpx
from sqlalchemy import select
from tornado.websocket import websocket_connect

from models.booking_records import BookingReminder
from pawhome.booking import slots
from pawhome.platform import codec
from tests.test_embedded import ROOT, dev_login, embedded  # noqa: F401
from tests.test_growth_embedded import Caller
from tests.test_mall_catalogue_embedded import _until as until


def test_a_demo_user_books_grooming_and_boarding_in_make_run(embedded):
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=120)
    user = Caller(embedded, "demo-user-1")
    other = Caller(embedded, "demo-user-2")
    shop = Caller(embedded, "demo-merchant")
    found = user("GET", "/v1/services", params={"kind": "grooming", "pet_type": "dog",
                                                "near": "22.5431,114.0579"})["items"]
    bath = found[0]
    assert bath["provider"]["name"].startswith("萌宠美容馆") and bath["distance_km"] < 1
    page = user("GET", f"/v1/providers/{bath['provider']['id']}")
    assert len(page["staff"]) == 2 and page["next_available_day"] is not None
    day = slots.local_day(dt.datetime.now(dt.UTC).replace(tzinfo=None)) + dt.timedelta(days=2)
    free = user("GET", f"/v1/services/{bath['id']}/slots", params={"date": day.isoformat()})
    starts = free["days"][0]["any"]
    assert starts and all("T12:" not in s for s in starts)  # lunch break
    pet = user("GET", "/v1/pets")["items"][0]
    held = user("POST", "/v1/appointments/holds", 201, json={
        "service_id": bath["id"], "start": starts[0], "pet_id": pet["id"],
        "staff_id": free["days"][0]["staff"][0]["staff_id"]})
    made = user("POST", "/v1/appointments", 201, json={"hold_id": held["id"], "remark": "怕吹风"})
    assert made["status"] == "confirmed" and made["start"] == starts[0]
    their_pet = other("GET", "/v1/pets")["items"][0]
    taken = httpx.post(embedded.base + "/v1/appointments/holds", timeout=15, headers={
        "Authorization": f"Bearer {other.token}"}, json={
        "service_id": bath["id"], "start": starts[0], "pet_id": their_pet["id"],
        "staff_id": free["days"][0]["staff"][0]["staff_id"]})
    assert (taken.status_code, taken.json()["code"]) == (409, 40980), taken.text
    for action in ("check_in", "complete"):
        shop("POST", f"/v1/merchant/appointments/{made['id']}/actions", json={"action": action})
    timeline = user("GET", f"/v1/appointments/{made['id']}")["timeline"]
    assert [e["to"] for e in timeline] == ["confirmed", "checked_in", "completed"]

    boarding = user("GET", "/v1/services", params={"kind": "boarding"})["items"][0]
    stay = {"service_id": boarding["id"], "pet_id": pet["id"], "check_in": day.isoformat(),
            "check_out": (day + dt.timedelta(days=2)).isoformat()}
    held = user("POST", "/v1/appointments/holds", 201, json=stay)
    user("POST", "/v1/appointments", 201, json={"hold_id": held["id"]})
    nights = user("GET", f"/v1/services/{boarding['id']}/slots",
                  params={"from": day.isoformat(),
                          "to": (day + dt.timedelta(days=2)).isoformat()})["nights"]
    assert [n["left"] for n in nights] == [2, 2, 3]


def test_issue_12_done_when_a_new_user_books_grooming_and_watches_it_live(embedded):
    """Issue 12's "done when", in `make run` on the demo data: a user finds a grooming service
    near a point, sees its slots, holds and confirms one (the trim needs the shop's
    confirmation); the shop confirms, checks in and completes it with a grooming record while
    the user watches each step live on a socket (the status events and their notifications)
and reviews it once;
    a vaccine record's next due date produces a reminder that the gateway's beat sends."""
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=120)
    user = Caller(embedded, "demo-user-1")
    shop = Caller(embedded, "demo-merchant")
    clinic = Caller(embedded, "demo-merchant-2")
    found = user("GET", "/v1/services", params={"kind": "grooming", "pet_type": "dog",
                                                "near": "22.5410,114.0560"})["items"]
    trim = next(s for s in found if s["name"] == "造型修剪")
    assert trim["distance_km"] < 1 and trim["needs_confirmation"] is True
    day = slots.local_day(dt.datetime.now(dt.UTC).replace(tzinfo=None)) + dt.timedelta(days=3)
    free = user("GET", f"/v1/services/{trim['id']}/slots", params={"date": day.isoformat()})
    start = free["days"][0]["any"][-1]
    pet = next(p for p in user("GET", "/v1/pets")["items"] if p["species"] == "dog")
    held = user("POST", "/v1/appointments/holds", 201, json={
        "service_id": trim["id"], "start": start, "pet_id": pet["id"]})
    made = user("POST", "/v1/appointments", 201, json={"hold_id": held["id"]})
    assert made["status"] == "pending_confirmation"
    path = f"/v1/merchant/appointments/{made['id']}"

    async def watch_the_shop_work() -> list[dict]:
        sock = await websocket_connect(f"ws://127.0.0.1:{embedded.port}/v1/ws?token="
                                       + user.token)
        frames: list[dict] = []
        try:
            await sock.write_message(codec.dumps(
                {"type": "sub", "topic": f"appointment:{made['id']}"}).decode())
            while True:
                frame = codec.loads(await asyncio.wait_for(sock.read_message(), 10))
                if frame["type"] == "sub.ok":
                    break
            for action in ("confirm", "check_in"):
                await asyncio.to_thread(shop, "POST", f"{path}/actions", json={"action": action})
            await asyncio.to_thread(shop, "POST", f"{path}/record", 201, json={"details": {
                "kind": "grooming", "items": ["洗澡", "造型修剪"], "notes": "很乖"}})
            await asyncio.to_thread(shop, "POST", f"{path}/actions", json={"action": "complete"})
            while not any(f["type"] == "notify.new"
                          and f["data"]["kind"] == "appointment_complete" for f in frames):
                frames.append(codec.loads(await asyncio.wait_for(sock.read_message(), 10)))
        finally:
            sock.close()
        return frames

    frames = asyncio.run(watch_the_shop_work())
    mine = [(f["data"]["action"], f["data"]["status"]) for f in frames  # (and maybe "book")
            if f["type"] == "appointment.status" and f["data"]["role"] == "user"
            and f["data"]["action"] != "book"]
    assert mine == [("confirm", "confirmed"), ("check_in", "checked_in"),
                    ("complete", "completed")]
    watched = [f["data"]["action"] for f in frames
               if f["type"] == "appointment.status" and f["data"]["role"] == "watcher"]
    # (the booking's own event may reach the topic before or after the watcher joined)
    assert [a for a in watched if a != "book"] == ["confirm", "check_in", "complete"]
    told = [f["data"]["kind"] for f in frames if f["type"] == "notify.new"]
    assert told == ["appointment_confirm", "appointment_check_in", "appointment_complete"]
    assert [n["kind"] for n in user("GET", "/v1/notifications",
                                    params={"category": "appointment"})["items"]][:3] == [
        "appointment_complete", "appointment_check_in", "appointment_confirm"]
    timeline = user("GET", f"/v1/appointments/{made['id']}")["timeline"]
    assert [e["to"] for e in timeline] == ["pending_confirmation", "confirmed", "checked_in",
                                           "completed"]
    records = user("GET", f"/v1/pets/{pet['id']}/records")["items"]
    assert records[0]["kind"] == "grooming" and records[0]["appointment_id"] == made["id"]

    # The review: moderated in-process, then it counts in the shop's and the groomer's rating.
    shop_id = trim["provider"]["id"]
    before = user("GET", f"/v1/providers/{shop_id}/reviews")["summary"]["count"]
    review = user("POST", f"/v1/appointments/{made['id']}/reviews", 201, json={
        "rating": 5, "text": "修剪得很漂亮，店员很耐心"})
    shown = until(lambda: next((r for r in user("GET", f"/v1/providers/{shop_id}/reviews")[
        "items"] if r["id"] == review["id"]), None), "the published review")
    assert shown["rating"] == 5 and shown["appointment_id"] == made["id"]
    summary = user("GET", f"/v1/providers/{shop_id}/reviews")["summary"]
    assert summary["count"] == before + 1 and summary["stars"]["5"] >= 1
    assert user("GET", f"/v1/appointments/{made['id']}")["reviewed"] is True
    httpx_reply = httpx.post(f"{embedded.base}/v1/appointments/{made['id']}/reviews",
                             timeout=15, headers={"Authorization": f"Bearer {user.token}"},
                             json={"rating": 1})
    assert (httpx_reply.status_code, httpx_reply.json()["code"]) == (409, 40987)  # once

    # The vaccine: its record's next due date (in 3 days) makes a reminder, due at once.
    vaccine = user("GET", "/v1/services", params={"kind": "vaccine"})["items"][0]
    jab_start = user("GET", f"/v1/services/{vaccine['id']}/slots", params={
        "date": (day + dt.timedelta(days=1)).isoformat()})["days"][0]["any"][0]
    held = user("POST", "/v1/appointments/holds", 201, json={
        "service_id": vaccine["id"], "start": jab_start, "pet_id": pet["id"]})
    jab = user("POST", "/v1/appointments", 201, json={"hold_id": held["id"]})
    clinic("POST", f"/v1/merchant/appointments/{jab['id']}/actions", json={"action": "check_in"})
    today = slots.local_day(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    next_due = today + dt.timedelta(days=3)
    clinic("POST", f"/v1/merchant/appointments/{jab['id']}/record", 201, json={"details": {
        "kind": "vaccine", "vaccine_name": "狂犬疫苗", "batch_no": "B-2026-12",
        "given_on": today.isoformat(), "next_due_on": next_due.isoformat()}})

    async def due_reminders(session):
        return [(r.kind, r.status, r.pet_id) for r in (await session.execute(
            select(BookingReminder).where(BookingReminder.user_id == user_id,
                                          BookingReminder.kind == "vaccine_due"))).scalars()]

    user_id = user("GET", "/v1/users/me")["id"]
    [(kind, status, pet_id)] = embedded.run_in_its_database(due_reminders)  # due at once
    assert (kind, pet_id) == ("vaccine_due", pet["id"]) and status in ("pending", "sent")
    # The embedded gateway runs the beat's jobs itself: the reminder goes out on its own.
    reminder = until(lambda: next((n for n in user("GET", "/v1/notifications", params={
        "category": "appointment"})["items"] if n["kind"] == "vaccine_due_reminder"), None),
        "the vaccine reminder")
    assert next_due.isoformat() in reminder["text"]
    assert embedded.run_in_its_database(due_reminders) == [("vaccine_due", "sent", pet["id"])]
