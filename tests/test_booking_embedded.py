"""Booking as a new user meets it in `make run` (embedded mode: SQLite, the in-process store
and tasks), on the demo data: find a grooming service near a point, see its slots, hold and
confirm one for the demo dog, the shop checks it in and completes it; a boarding stay in the
demo clinic's rooms; a second user cannot take the booked slot."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import httpx

from pawhome.booking import slots
from tests.test_embedded import ROOT, dev_login, embedded  # noqa: F401
from tests.test_growth_embedded import Caller


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
