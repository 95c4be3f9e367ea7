"""Service records: what the provider writes about the pet when an appointment is checked in
or completed — a vaccine (name, batch, date given, the next dose's due date), a grooming
(items done, notes), a medical visit (diagnosis, prescription), a stay (a note a day) — with
up to nine of the provider's images. One record an appointment; the pet's owner reads the
pet's history (GET /v1/pets/{id}/records), nobody else does. docs/booking.md ("Service
records").

The details are checked against the appointment's kind (a grooming cannot carry a vaccine).
A vaccine's `next_due_on` is kept in its own column and schedules, in the same transaction,
the reminder of the next dose (pawhome/booking/reminders.py).
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.booking import Appointment
from models.booking_records import ServiceRecord
from models.community import Pet
from pawhome.booking import reminders
from pawhome.mall.product_rendering import image_view, media_by_id
from pawhome.media.uploads import require_ready
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import (
    AppointmentStateConflict,
    NotFound,
    RecordExists,
    ValidationFailed,
    field_error,
)
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

MAX_IMAGES = 9
WRITABLE = ("checked_in", "completed")  # the appointment's states a record may be written in
Text = Annotated[str, Field(max_length=500)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]


class VaccineDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["vaccine"]
    vaccine_name: Name
    batch_no: str = Field("", max_length=64)
    given_on: dt.date
    next_due_on: dt.date | None = Field(None, description="the next dose (after given_on)")
    notes: Text = ""

    @model_validator(mode="after")
    def _due_after_given(self) -> VaccineDetails:
        if self.next_due_on is not None and self.next_due_on <= self.given_on:
            raise ValueError("next_due_on must be after given_on")
        return self


class GroomingDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["grooming"]
    items: list[Name] = Field(min_length=1, max_length=20, description="what was done")
    notes: Text = ""


class MedicalDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["medical"]
    diagnosis: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK)
    prescription: str = Field("", max_length=1000)
    notes: Text = ""


class BoardingDay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: dt.date
    note: Text = ""


class BoardingDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["boarding"]
    days: list[BoardingDay] = Field(min_length=1, max_length=60)
    notes: Text = ""


Details = Annotated[VaccineDetails | GroomingDetails | MedicalDetails | BoardingDetails,
                    Field(discriminator="kind")]


class RecordBody(BaseModel):
    """POST /v1/merchant/appointments/{id}/record."""
    model_config = ConfigDict(extra="forbid")
    details: Details
    media_ids: list[int] = Field(default_factory=list, max_length=MAX_IMAGES,
                                 description="the provider's ready images")


class RecordsQuery(PageQuery):
    kind: Literal["vaccine", "grooming", "medical", "boarding"] | None = None


async def _record_view(session: AsyncSession, resources: Resources,
                       records: list[ServiceRecord]) -> list[dict[str, Any]]:
    media = await media_by_id(session, [int(m) for r in records for m in (r.media_ids or [])])
    return [{"id": r.id, "appointment_id": r.appointment_id, "pet_id": r.pet_id,
             "provider_id": r.provider_id, "staff_id": r.staff_id, "kind": r.kind,
             "details": r.details, "next_due_on": r.next_due_on,
             "images": [image for image in (image_view(resources.settings, media.get(int(m)))
                                            for m in (r.media_ids or [])) if image],
             "created_at": r.created_at} for r in records]


async def write_record(resources: Resources, caller_id: int, caller_role: str,
                       appointment_id: int, body: RecordBody) -> dict[str, Any]:
    """The provider (its merchant account, or an admin) writes the appointment's record."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        appointment = (await session.execute(select(Appointment).where(
            Appointment.id == appointment_id).with_for_update())).scalar_one_or_none()
        if appointment is None or (caller_role != "admin"
                                   and appointment.owner_id != caller_id):
            raise NotFound("No such appointment")
        if appointment.status not in WRITABLE:
            raise AppointmentStateConflict(
                f"A record is written once the pet is checked in, not while {appointment.status}",
                data={"status": appointment.status})
        if body.details.kind != appointment.kind:
            raise ValidationFailed(errors=[field_error(
                "details.kind", f"this is a {appointment.kind} appointment")])
        if (await session.execute(select(ServiceRecord.id).where(
                ServiceRecord.appointment_id == appointment_id))).first() is not None:
            raise RecordExists()
        await require_ready(session, caller_id, body.media_ids, kind="image")
        details = body.details.model_dump(mode="json")
        record = ServiceRecord(
            appointment_id=appointment.id, pet_id=appointment.pet_id,
            user_id=appointment.user_id, provider_id=appointment.provider_id,
            staff_id=appointment.staff_id, kind=appointment.kind, details=details,
            media_ids=list(body.media_ids), written_by=caller_id,
            next_due_on=getattr(body.details, "next_due_on", None))
        session.add(record)
        await session.flush()
        if isinstance(body.details, VaccineDetails) and body.details.next_due_on is not None:
            await reminders.schedule_vaccine_due(
                session, record_id=record.id, user_id=appointment.user_id,
                pet_id=appointment.pet_id, vaccine_name=body.details.vaccine_name,
                next_due_on=body.details.next_due_on)
        return (await _record_view(session, resources, [record]))[0]

    # The appointment row lock orders two writers; the unique key settles a race past it.
    return await run_transaction(resources.db, work)


async def pet_records(resources: Resources, owner_id: int, pet_id: int,
                      query: RecordsQuery) -> dict[str, Any]:
    """GET /v1/pets/{id}/records: the pet's service records, newest first (owner only)."""
    async with resources.db.session() as session:
        pet = await session.get(Pet, pet_id)
        if pet is None or pet.owner_id != owner_id or pet.deleted_at is not None:
            raise NotFound("Pet not found")
        conditions = [ServiceRecord.pet_id == pet_id]
        if query.kind is not None:
            conditions.append(ServiceRecord.kind == query.kind)
        total = int((await session.execute(select(func.count(ServiceRecord.id))
                                           .where(*conditions))).scalar_one())
        rows = list((await session.execute(
            select(ServiceRecord).where(*conditions).order_by(ServiceRecord.id.desc())
            .offset(query.offset).limit(query.limit))).scalars())
        return page_result(await _record_view(session, resources, rows), total, query)
