"""Service records: the provider writes an appointment's record once the pet is checked in,
with details of the appointment's kind and its own images; the owner reads the pet's
history; everyone else gets 404, and bad or repeated records change nothing."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from models.base import utcnow
from models.booking import Appointment, Provider
from models.booking_records import ServiceRecord
from tests.catalogue_support import ready_media
from tests.mall_support import make_member


async def make_appointment(api, resources, kind: str = "vaccine",
                           status: str = "checked_in"):
    """A provider (its merchant), an owner with a pet, and an appointment of `kind` in
    `status` — written straight into the tables (booking's own flow is tested elsewhere)."""
    merchant = await make_member(resources, "merchant")
    owner = await api.login()
    pet = (await api.post("/v1/pets", json={"name": "豆豆", "species": "dog"},
                          token=owner.token)).ok(201)
    start = utcnow() - dt.timedelta(hours=1)
    async with resources.db.session() as session, session.begin():
        provider = Provider(owner_id=merchant.user_id, name="萌宠医院", lat=31.2, lng=121.4)
        session.add(provider)
        await session.flush()
        appointment = Appointment(
            user_id=owner.user_id, provider_id=provider.id, owner_id=merchant.user_id,
            service_id=1, staff_id=None, pet_id=pet["id"], hold_id=uuid.uuid4().int % 10**15,
            kind=kind, start_at=start, end_at=start + dt.timedelta(minutes=30), price=8800,
            status=status, cancel_deadline_at=start - dt.timedelta(hours=2))
        session.add(appointment)
        await session.flush()
        return merchant, owner, pet["id"], appointment.id


VACCINE = {"kind": "vaccine", "vaccine_name": "狂犬疫苗", "batch_no": "B2026-11",
           "given_on": "2026-12-05", "next_due_on": "2027-12-05"}


def record_path(appointment_id: int) -> str:
    return f"/v1/merchant/appointments/{appointment_id}/record"


@pytest.mark.gen_test(timeout=60)
async def test_the_provider_writes_a_vaccine_record_the_owner_reads_it(api, resources):
    merchant, owner, pet_id, appointment_id = await make_appointment(api, resources)
    photo = await ready_media(resources, merchant.user_id)
    written = (await api.post(record_path(appointment_id), token=merchant.token, json={
        "details": VACCINE, "media_ids": [photo]})).ok(201)
    assert written["kind"] == "vaccine" and written["next_due_on"] == "2027-12-05"
    assert [i["media_id"] for i in written["images"]] == [photo]
    history = (await api.get(f"/v1/pets/{pet_id}/records", token=owner.token)).ok()
    assert history["total"] == 1
    [shown] = history["items"]
    assert shown["details"]["vaccine_name"] == "狂犬疫苗"
    assert shown["appointment_id"] == appointment_id
    assert (await api.get(f"/v1/pets/{pet_id}/records?kind=grooming",
                          token=owner.token)).ok()["total"] == 0
    # Nobody but the owner reads it; nobody but the provider (or an admin) writes.
    stranger = await api.login()
    (await api.get(f"/v1/pets/{pet_id}/records", token=stranger.token)).error(404)
    (await api.get(f"/v1/pets/{pet_id}/records", token=merchant.token)).error(404)
    other_shop = await make_member(resources, "merchant")
    (await api.post(record_path(appointment_id), token=other_shop.token,
                    json={"details": VACCINE})).error(404)
    (await api.post(record_path(appointment_id), token=owner.token,
                    json={"details": VACCINE})).error(403)
    # Once only.
    (await api.post(record_path(appointment_id), token=merchant.token,
                    json={"details": VACCINE})).error(409, code=40985)


@pytest.mark.gen_test(timeout=60)
async def test_bad_records_are_refused_and_change_nothing(api, resources):
    merchant, owner, _pet_id, appointment_id = await make_appointment(api, resources,
                                                                     kind="grooming")
    someone_elses = await ready_media(resources, owner.user_id)
    bad = [
        ({"details": VACCINE}, "details.kind"),  # a vaccine record of a grooming
        ({"details": {"kind": "grooming", "items": []}}, "details.grooming.items"),
        ({"details": {"kind": "grooming", "items": ["洗澡"]}, "media_ids": [someone_elses]},
         "media_ids.0"),
        ({"details": {"kind": "grooming", "items": ["洗澡"], "extra": 1}},
         "details.grooming.extra"),
        ({"details": {"kind": "spa", "items": ["洗澡"]}}, "details"),
    ]
    for body, field in bad:
        reply = await api.post(record_path(appointment_id), token=merchant.token, json=body)
        reply.error(422)
        fields = {e["field"] for e in reply.json["errors"]}
        assert any(f.startswith(field) for f in fields), (body, fields)
    vaccine = await make_appointment(api, resources)
    (await api.post(record_path(vaccine[3]), token=vaccine[0].token, json={"details": {
        **VACCINE, "next_due_on": "2026-12-01"}})).error(422)
    # Not before the pet is checked in.
    early = await make_appointment(api, resources, kind="grooming", status="confirmed")
    (await api.post(record_path(early[3]), token=early[0].token, json={"details": {
        "kind": "grooming", "items": ["洗澡"]}})).error(409, code=40983)
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(ServiceRecord.id)).where(
            ServiceRecord.appointment_id.in_([appointment_id, vaccine[3], early[3]])))
        ).scalar_one() == 0


@pytest.mark.gen_test(timeout=60)
async def test_two_writers_at_once_make_one_record(api, resources):
    merchant, _owner, _pet_id, appointment_id = await make_appointment(api, resources,
                                                                     kind="medical",
                                                                     status="completed")
    body = {"details": {"kind": "medical", "diagnosis": "耳螨", "prescription": "滴耳液"}}
    replies = await asyncio.gather(*[api.post(record_path(appointment_id), token=merchant.token,
                                              json=body) for _ in range(5)])
    assert sorted(r.status for r in replies) == [201, 409, 409, 409, 409]
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(ServiceRecord.id)).where(
            ServiceRecord.appointment_id == appointment_id))).scalar_one() == 1
