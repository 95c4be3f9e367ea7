"""Holds: a slot (or boarding nights) reserved for a few minutes, and the double-booking
rule that makes them safe. docs/booking.md ("No double booking").

A slot hold inserts one booking_slot_units row per UNIT_MINUTES its service covers, buffers
included, keyed UNIQUE (resource, unit_start), in the hold's transaction: of two holds of the
same time the second insert fails on the key — there is no check-then-insert to race. A hold's
units carry its expiry; confirming clears it. When an insert collides with units of holds that
have expired, those holds are released in the same transaction and the insert is tried again.

A boarding hold takes one room on each night with `UPDATE ... SET booked = booked + 1 WHERE
booked < capacity` (the row lock serialises the takers, nights in date order so two stays
never wait on each other crosswise); a night with no room refuses the whole stay.

Expired holds are also released by the beat sweep (`release_expired_holds`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import CursorResult, and_, insert, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import AppointmentHold, BoardingNight, Service, SlotUnit
from models.community import Pet
from pawhome.booking import availability, booking_cache, deposits, schedules, slots
from pawhome.payments import payments
from pawhome.platform.db import Overtaken, run_transaction
from pawhome.platform.errors import (
    BoardingFull,
    BookingInvalid,
    NotFound,
    SlotTaken,
    SlotUnavailable,
    field_error,
)
from pawhome.platform.fields import Id
from pawhome.platform.resources import Resources

MAX_NIGHTS = 30
RERUN_ERRNOS = (1213, 1205, 1305)  # deadlock, lock wait timeout, savepoint gone with them
SWEEP_BATCH = 200


class HoldBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service_id: Id
    pet_id: Id = Field(description="one of the caller's pets")
    staff_id: Id | None = Field(None, description="null: any staff member who is free")
    start: AwareDatetime | None = Field(
        None, description="slot services: ISO 8601 with its offset, e.g. "
                          "2026-12-08T10:00:00+08:00 (a time without zone is refused)")
    check_in: dt.date | None = Field(None, description="boarding: first night")
    check_out: dt.date | None = Field(None, description="boarding: the day of leaving")


HOLD_REFUSALS = {
    "pet_id": "the caller's own pet, of a type and weight the service takes",
    "start": "a free start of the service (hours, notice, horizon); slot services only",
    "staff_id": "a staff member performing the service",
    "check_in": "boarding only: today or later, within the horizon, before check_out",
}


def hold_view(hold: AppointmentHold) -> dict[str, Any]:
    return {"id": hold.id, "service_id": hold.service_id, "staff_id": hold.staff_id,
            "pet_id": hold.pet_id, "start": slots.iso_local(hold.start_at),
            "end": slots.iso_local(hold.end_at), "status": hold.status,
            "expires_at": slots.iso_local(hold.expires_at), "deposit": hold.deposit}


async def own_pet(session: AsyncSession, user_id: int, pet_id: int) -> Pet:
    pet = await session.get(Pet, pet_id)
    if pet is None or pet.owner_id != user_id or pet.deleted_at is not None:
        raise NotFound("No such pet")
    return pet


def _check_pet(service: Service, pet: Pet) -> None:
    types = list(service.pet_types or [])
    species = pet.species if pet.species in ("cat", "dog") else "other"
    if types and species not in types:
        raise BookingInvalid(errors=[field_error("pet_id", f"this service takes {types}")])
    if service.max_weight_kg is not None and pet.weight_kg is not None \
            and float(pet.weight_kg) > service.max_weight_kg:
        raise BookingInvalid(errors=[field_error(
            "pet_id", f"this service takes pets up to {service.max_weight_kg} kg")])


# -- freeing time ------------------------------------------------------------------------------


async def free_time(session: AsyncSession, hold: AppointmentHold) -> None:
    """Give back what a hold (or its appointment) occupies: its units, or one room on each of
    its nights. The caller has the hold locked and sets its status."""
    await session.execute(sql_delete(SlotUnit).where(SlotUnit.hold_id == hold.id))
    service = await session.get(Service, hold.service_id)
    if service is not None and service.kind == "boarding":
        for night in _stay_nights(hold):
            await session.execute(update(BoardingNight).where(
                BoardingNight.service_id == hold.service_id, BoardingNight.night == night,
                BoardingNight.booked > 0).values(booked=BoardingNight.booked - 1))


def _stay_nights(hold: AppointmentHold) -> list[dt.date]:
    return slots.nights(slots.local_day(hold.start_at), slots.local_day(hold.end_at))


async def _expire(session: AsyncSession, hold_ids: list[int], now: dt.datetime) -> int:
    """Release the holds among `hold_ids` that are still held and past their expiry (each
    locked first, so a confirmation racing it either wins or sees it expired)."""
    released = 0
    for hold_id in sorted(set(hold_ids)):
        hold = (await session.execute(select(AppointmentHold).where(
            AppointmentHold.id == hold_id).with_for_update())).scalar_one_or_none()
        if hold is None or hold.status != "held" or hold.expires_at > now:
            continue
        await free_time(session, hold)
        hold.status = "expired"
        if hold.deposit:  # its deposit can no longer book it: close the payment, if any
            payments.close_later(session, payable_type=deposits.PAYABLE_TYPE,
                                 payable_id=hold.id)
        released += 1
    return released


# -- slot holds --------------------------------------------------------------------------------


async def _take_units(session: AsyncSession, resource: str, units: list[dt.datetime],
                      hold: AppointmentHold, now: dt.datetime) -> bool:
    """Insert the hold's units; on a duplicate key release expired holds in the way and try
    once more. False when live bookings hold some unit."""
    rows = [{"resource": resource, "unit_start": u, "hold_id": hold.id,
             "expires_at": hold.expires_at} for u in units]
    for attempt in range(2):
        try:
            async with session.begin_nested():
                await session.execute(insert(SlotUnit), rows)
            return True
        except IntegrityError:
            if attempt:
                return False
        except OperationalError as error:
            # A deadlock (or lock wait timeout) inside the savepoint rolled the whole
            # transaction back, the savepoint with it (hence "SAVEPOINT does not exist"):
            # run_transaction reruns the unit of work from the start.
            if getattr(error.orig, "args", (None,))[0] in RERUN_ERRNOS:
                raise Overtaken(SlotTaken(errors=[field_error("start", "taken")])) from error
            raise
        # A plain read: only rows committed long ago are expired, the snapshot has them.
        expired = list((await session.execute(select(SlotUnit.hold_id).where(
            SlotUnit.resource == resource, SlotUnit.unit_start.in_(units),
            SlotUnit.expires_at.is_not(None), SlotUnit.expires_at <= now))).scalars())
        if not expired or not await _expire(session, expired, now):
            return False
    return False


async def slot_hold(session: AsyncSession, user_id: int, service: Service, pet_id: int,
                    body: HoldBody, ttl: int) -> tuple[AppointmentHold, str]:
    """A new hold of `body.start` with its units, in the caller's transaction (placing a
    hold; a reschedule's new slot). SlotUnavailable / SlotTaken when it cannot be had."""
    if body.start is None or body.check_in is not None or body.check_out is not None:
        raise BookingInvalid(errors=[field_error("start", "slot services take start only")])
    now = utcnow()
    start = slots.to_utc(body.start)
    if not slots.bookable([start], now=now, min_notice_minutes=service.min_notice_minutes,
                          horizon_days=service.horizon_days):
        raise SlotUnavailable(errors=[field_error(
            "start", f"at least {service.min_notice_minutes} minutes ahead and within "
                     f"{service.horizon_days} days")])
    day = slots.local_day(start)
    candidates: list[int | None] = [None]
    if service.uses_staff:
        performers = [s.id for s in await availability.performers(session, service)]
        if body.staff_id is not None:
            if body.staff_id not in performers:
                raise BookingInvalid(errors=[field_error(
                    "staff_id", "not a staff member performing this service")])
            candidates = [body.staff_id]
        else:
            candidates = list(performers)
    elif body.staff_id is not None:
        raise BookingInvalid(errors=[field_error("staff_id", "this service has no staff")])
    end = start + dt.timedelta(minutes=service.duration_minutes)
    hold = AppointmentHold(user_id=user_id, provider_id=service.provider_id,
                           service_id=service.id, pet_id=pet_id, start_at=start, end_at=end,
                           expires_at=now + dt.timedelta(seconds=ttl), deposit=service.deposit)
    session.add(hold)
    await session.flush()
    units = slots.unit_starts(start, service.duration_minutes, service.buffer_before,
                              service.buffer_after)
    in_hours = False
    for staff_id in candidates:
        windows = (await schedules.day_windows(session, service.provider_id, staff_id,
                                               [day]))[day]
        if start not in slots.free_starts(day, windows, [], duration=service.duration_minutes):
            continue
        in_hours = True
        resource = availability.resource_of(service, staff_id)
        if await _take_units(session, resource, units, hold, now):
            hold.staff_id = staff_id
            return hold, resource
    if not in_hours:
        raise SlotUnavailable(errors=[field_error("start", "not a start time of the hours")])
    raise SlotTaken(errors=[field_error("start", "taken")])


# -- boarding holds ----------------------------------------------------------------------------


def _insert_ignore_nights() -> Any:
    return insert(BoardingNight).prefix_with("IGNORE", dialect="mysql") \
        .prefix_with("IGNORE", dialect="mariadb").prefix_with("OR IGNORE", dialect="sqlite")


async def _ensure_nights(resources: Resources, service_id: int, capacity: int,
                         stay: list[dt.date]) -> None:
    """Create the stay's night rows that do not exist yet, in their own short transaction,
    so the booking transaction only ever updates existing rows (in date order)."""
    async def work(session: AsyncSession) -> None:
        existing = set((await session.execute(select(BoardingNight.night).where(
            BoardingNight.service_id == service_id, BoardingNight.night.in_(stay)))).scalars())
        missing = [n for n in stay if n not in existing]
        if missing:
            await session.execute(_insert_ignore_nights(), [
                {"service_id": service_id, "night": n, "capacity": capacity, "booked": 0}
                for n in missing])
    await run_transaction(resources.db, work)


async def _take_room(session: AsyncSession, service_id: int, night: dt.date) -> bool:
    result = cast(CursorResult[Any], await session.execute(update(BoardingNight).where(
        BoardingNight.service_id == service_id, BoardingNight.night == night,
        BoardingNight.booked < BoardingNight.capacity).values(
        booked=BoardingNight.booked + 1)))
    return bool(result.rowcount)


async def _boarding_hold(session: AsyncSession, user_id: int, service: Service, pet_id: int,
                         body: HoldBody, ttl: int) -> AppointmentHold:
    now = utcnow()
    assert body.check_in is not None and body.check_out is not None
    stay = slots.nights(body.check_in, body.check_out)
    hold = AppointmentHold(user_id=user_id, provider_id=service.provider_id,
                           service_id=service.id, pet_id=pet_id,
                           start_at=slots.local_midnight_utc(body.check_in),
                           end_at=slots.local_midnight_utc(body.check_out),
                           expires_at=now + dt.timedelta(seconds=ttl), deposit=service.deposit)
    session.add(hold)
    await session.flush()
    for night in stay:  # date order: the lock order of every stay
        if await _take_room(session, service.id, night):
            continue
        expired = list((await session.execute(select(AppointmentHold.id).where(
            AppointmentHold.service_id == service.id, AppointmentHold.status == "held",
            AppointmentHold.expires_at <= now,
            AppointmentHold.start_at <= slots.local_midnight_utc(night),
            AppointmentHold.end_at > slots.local_midnight_utc(night)))).scalars())
        if not (expired and await _expire(session, expired, now)
                and await _take_room(session, service.id, night)):
            raise BoardingFull(errors=[field_error("check_in",
                                                   f"no room on {night.isoformat()}")])
    return hold


def _check_stay(service: Service, body: HoldBody) -> list[dt.date]:
    if body.check_in is None or body.check_out is None or body.start is not None \
            or body.staff_id is not None:
        raise BookingInvalid(errors=[field_error(
            "check_in", "boarding takes check_in and check_out only")])
    today = slots.local_day(utcnow())
    if body.check_in < today or body.check_in > today + dt.timedelta(days=service.horizon_days):
        raise SlotUnavailable(errors=[field_error(
            "check_in", f"from today to {service.horizon_days} days ahead")])
    stay = slots.nights(body.check_in, body.check_out)
    if not 1 <= len(stay) <= MAX_NIGHTS:
        raise BookingInvalid(errors=[field_error(
            "check_out", f"after check_in, at most {MAX_NIGHTS} nights")])
    return stay


async def place_hold(resources: Resources, user_id: int, body: HoldBody) -> dict[str, Any]:
    """Hold a slot (or a boarding stay) for the caller's pet for `booking_hold_seconds`.
    409 SlotTaken / BoardingFull when someone else holds it; the database decides."""
    ttl = resources.settings.booking_hold_seconds
    async with resources.db.session() as session:
        service, _provider = await availability.live_service(session, body.service_id)
        _check_pet(service, await own_pet(session, user_id, body.pet_id))
    if service.kind == "boarding":
        stay = _check_stay(service, body)
        await _ensure_nights(resources, service.id, service.capacity, stay)

    async def work(session: AsyncSession) -> tuple[AppointmentHold, str | None]:
        if service.kind == "boarding":
            return await _boarding_hold(session, user_id, service, body.pet_id, body,
                                        ttl), None
        return await slot_hold(session, user_id, service, body.pet_id, body, ttl)

    hold, resource = await run_transaction(resources.db, work)
    await booking_cache.forget(resources.cache, resources=[resource] if resource else [])
    if resource:  # the next readers of the day hit (docs/booking.md "Slots")
        await availability.refill_day(resources, service.id, hold.staff_id,
                                      slots.local_day(hold.start_at))
    return hold_view(hold)


async def release_expired_holds(resources: Resources, now: dt.datetime | None = None) -> int:
    """The beat sweep: release holds past their expiry (their units, their nights). Each
    batch is one transaction; safe to run anywhere, any number of times."""
    now = now or utcnow()
    released = 0
    while True:
        async with resources.db.session() as session:
            ids = list((await session.execute(select(AppointmentHold.id).where(
                and_(AppointmentHold.status == "held", AppointmentHold.expires_at <= now))
                .order_by(AppointmentHold.id).limit(SWEEP_BATCH))).scalars())
        if not ids:
            return released
        async with resources.db.session() as session, session.begin():
            done = await _expire(session, ids, now)
            dropped = [f"s{h.staff_id}" if h.staff_id else f"p{h.provider_id}"
                       for h in (await session.execute(select(AppointmentHold).where(
                           AppointmentHold.id.in_(ids)))).scalars()]
        released += done
        await booking_cache.forget(resources.cache, resources=dropped)
        if len(ids) < SWEEP_BATCH:
            return released
