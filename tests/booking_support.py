"""Booking test helpers: a merchant's provider with staff, a service and a week of hours
set up through the API, pet owners with a pet, and the Asia/Shanghai times tests book."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from models.community import Pet
from pawhome.booking import slots
from tests.helpers import Session
from tests.mall_support import make_member

WEEK_9_TO_6 = [{"weekday": d, "start": "09:00", "end": "18:00"} for d in range(7)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def tomorrow() -> dt.date:
    return slots.local_day(dt.datetime.now(dt.UTC).replace(tzinfo=None)) + dt.timedelta(days=1)


def at(day: dt.date, clock: str) -> str:
    """`day` at `clock` in Asia/Shanghai, ISO 8601 with +08:00."""
    hours, minutes = map(int, clock.split(":"))
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=slots.TZ).isoformat()


async def make_provider(api, resources, *, staff: int = 1, lat: float = 22.54,
                        lng: float = 114.06, service: dict[str, Any] | None = None,
                        hours: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A merchant, its provider, a service (grooming, 60 min by default), `staff` groomers
    performing it, each with hours 09:00-18:00 every day. Returns ids and the merchant."""
    merchant = await make_member(resources, "merchant")
    provider = (await api.post("/v1/merchant/providers", json={
        "name": unique("萌宠美容"), "address": "深圳市福田区", "lat": lat, "lng": lng,
        "hours_text": "09:00-18:00", "phone": "0755-1234"}, token=merchant.token)).ok(201)
    body = {"name": unique("洗澡"), "kind": "grooming", "duration_minutes": 60, "price": 8800,
            "min_notice_minutes": 0, "cancel_deadline_hours": 2, **(service or {})}
    svc = (await api.post(f"/v1/merchant/providers/{provider['id']}/services", json=body,
                          token=merchant.token)).ok(201)
    staff_ids = []
    for i in range(staff if svc["uses_staff"] else 0):
        member = (await api.post(f"/v1/merchant/providers/{provider['id']}/staff", json={
            "name": f"美容师{i}", "title": "高级美容师", "service_ids": [svc["id"]]},
            token=merchant.token)).ok(201)
        staff_ids.append(member["id"])
    owners = staff_ids if svc["uses_staff"] else [None]
    for staff_id in owners:
        (await api.put(f"/v1/merchant/providers/{provider['id']}/hours", json={
            "staff_id": staff_id, "windows": hours or WEEK_9_TO_6},
            token=merchant.token)).ok()
    return {"merchant": merchant, "provider": provider, "service": svc, "staff": staff_ids}


async def pet_owner(resources, species: str = "dog", weight: float | None = 8) -> tuple[Session, int]:
    """A user with one pet; returns the session and the pet id."""
    user = await make_member(resources)
    async with resources.db.session() as session, session.begin():
        pet = Pet(owner_id=user.user_id, name=unique("旺财")[:32], species=species,
                  weight_kg=weight)
        session.add(pet)
        await session.flush()
        return user, pet.id


async def hold(api, user: Session, pet_id: int, service_id: int, start: str,
               staff_id: int | None = None):
    return await api.post("/v1/appointments/holds", json={
        "service_id": service_id, "staff_id": staff_id, "start": start, "pet_id": pet_id},
        token=user.token)


async def book(api, user: Session, pet_id: int, service_id: int, start: str,
               staff_id: int | None = None) -> dict[str, Any]:
    held = (await hold(api, user, pet_id, service_id, start, staff_id)).ok(201)
    return (await api.post("/v1/appointments", json={"hold_id": held["id"]}, token=user.token,
                           headers={"Idempotency-Key": uuid.uuid4().hex})).ok(201)
