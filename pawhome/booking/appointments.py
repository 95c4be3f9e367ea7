"""Appointments: a hold confirmed into an appointment, the user's lists and detail (with the
timeline), cancellation, and the provider's lists and actions on its own. Every status
change goes through pawhome/booking/appointment_states.py. docs/booking.md.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import (
    Appointment,
    AppointmentEvent,
    AppointmentHold,
    Provider,
    Service,
    SlotUnit,
)
from pawhome.booking import (
    appointment_states,
    availability,
    booking_cache,
    deposits,
    holds,
    reminders,
    reviews,
    slots,
)
from pawhome.platform import topics
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import (
    AppointmentStateConflict,
    BookingInvalid,
    CancellationClosed,
    DepositRequired,
    HoldExpired,
    NotFound,
    field_error,
)
from pawhome.platform.fields import Id
from pawhome.platform.pagination import MAX_LIMIT, page_result
from pawhome.platform.resources import Resources


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hold_id: Id
    remark: str = Field("", max_length=255)


class RescheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime = Field(description="the new start, ISO 8601 with its offset")
    staff_id: Id | None = Field(None, description="null: any staff member who is free")


RESCHEDULE_REFUSALS = {"start": "a free start of the service (hours, notice, horizon)",
                       "staff_id": "a staff member performing the service",
                       "kind": "slot services only (boarding: cancel and book again)"}


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=255)


class ProviderActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["confirm", "check_in", "complete", "cancel", "no_show"]
    reason: str = Field("", max_length=255, description="required to cancel")


class MyAppointmentsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    when: Literal["upcoming", "past", "all"] = "upcoming"
    pet_id: Id | None = None
    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(10, ge=1, le=MAX_LIMIT)


class ProviderAppointmentsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    status: Literal["pending_confirmation", "confirmed", "checked_in", "completed",
                    "cancelled", "no_show"] | None = None
    date: dt.date | None = Field(None, description="an Asia/Shanghai day")
    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(20, ge=1, le=MAX_LIMIT)


def appointment_view(a: Appointment) -> dict[str, Any]:
    return {"id": a.id, "user_id": a.user_id, "provider_id": a.provider_id,
            "service_id": a.service_id, "staff_id": a.staff_id, "pet_id": a.pet_id,
            "kind": a.kind, "start": slots.iso_local(a.start_at),
            "end": slots.iso_local(a.end_at), "price": a.price, "remark": a.remark,
            **deposits.deposit_view(a), "status": a.status,
            "cancel_deadline": slots.iso_local(a.cancel_deadline_at),
            "created_at": slots.iso_local(a.created_at)}


def _event_view(e: AppointmentEvent) -> dict[str, Any]:
    return {"action": e.action, "from": e.from_status, "to": e.to_status,
            "actor_type": e.actor_type, "actor_id": e.actor_id, "reason": e.reason,
            "at": slots.iso_local(e.created_at)}


def _resource(hold: AppointmentHold) -> str:
    return f"s{hold.staff_id}" if hold.staff_id else f"p{hold.provider_id}"


async def confirm(resources: Resources, user_id: int, body: ConfirmBody) -> dict[str, Any]:
    """Turn the caller's live hold into an appointment (confirmed, or pending the provider's
    confirmation). Someone else's hold → 404; an expired or released one → 409. A hold whose
    service takes a deposit is booked by paying it (deposit_payments.py): 409 DepositRequired
    until then. A hold confirmed already answers with its appointment."""
    async with resources.db.session() as session, session.begin():
        hold = await lock_hold(session, body.hold_id)
        if hold is None or hold.user_id != user_id:
            raise NotFound("No such hold")
        if hold.status == "confirmed" and hold.appointment_id is not None:
            done = await session.get(Appointment, hold.appointment_id)
            assert done is not None
            return appointment_view(done)
        now = utcnow()
        if hold.status != "held" or hold.expires_at <= now:
            raise HoldExpired(errors=[field_error("hold_id", hold.status)])
        if hold.deposit:
            raise DepositRequired(errors=[field_error(
                "hold_id", f"pay the deposit of {hold.deposit} fen first")])
        view = appointment_view(await book_hold(session, hold, remark=body.remark, now=now))
    return view


async def lock_hold(session: AsyncSession, hold_id: int) -> AppointmentHold | None:
    return (await session.execute(select(AppointmentHold).where(
        AppointmentHold.id == hold_id).with_for_update())).scalar_one_or_none()


async def book_hold(session: AsyncSession, hold: AppointmentHold, *, remark: str,
                    now: dt.datetime, deposit: int = 0) -> Appointment:
    """The one way a hold becomes an appointment, in the caller's transaction, the hold locked
    and `held`: its units' expiry cleared (all must still be there, else HoldExpired), the
    appointment, its timeline, its reminders. `deposit` fen were paid on this hold: then the
    hold may be past its expiry as long as it is still `held` (releasing a hold frees its
    units or nights and changes its status under that same lock). Caller commits."""
    service = await session.get(Service, hold.service_id)
    provider = await session.get(Provider, hold.provider_id)
    assert service is not None and provider is not None
    if service.kind != "boarding":
        expected = len(slots.unit_starts(hold.start_at, service.duration_minutes,
                                         service.buffer_before, service.buffer_after))
        units = update(SlotUnit).where(SlotUnit.hold_id == hold.id)
        if not deposit:
            units = units.where(SlotUnit.expires_at > now)
        kept: Any = await session.execute(units.values(expires_at=None))
        if (kept.rowcount if isinstance(kept, CursorResult) else 0) != expected:
            raise HoldExpired(errors=[field_error("hold_id", "expired")])
    appointment = Appointment(
        user_id=hold.user_id, provider_id=hold.provider_id, owner_id=provider.owner_id,
        service_id=service.id, staff_id=hold.staff_id, pet_id=hold.pet_id,
        hold_id=hold.id, kind=service.kind, start_at=hold.start_at, end_at=hold.end_at,
        price=service.price, remark=remark,
        status="pending_confirmation" if service.needs_confirmation else "confirmed",
        cancel_deadline_at=hold.start_at - dt.timedelta(hours=service.cancel_deadline_hours),
        deposit=deposit, deposit_hold_id=hold.id if deposit else None,
        deposit_status="paid" if deposit else "none", created_at=now, updated_at=now)
    session.add(appointment)
    await session.flush()
    hold.status = "confirmed"
    hold.appointment_id = appointment.id
    appointment_states.record_booked(session, appointment, hold.user_id)
    if appointment.status == "confirmed":
        await reminders.schedule_appointment(session, appointment, service.name)
    return appointment


async def _locked(session: AsyncSession, appointment_id: int) -> Appointment | None:
    return (await session.execute(select(Appointment).where(
        Appointment.id == appointment_id).with_for_update())).scalar_one_or_none()


async def _free(session: AsyncSession, appointment: Appointment) -> str:
    hold = (await session.execute(select(AppointmentHold).where(
        AppointmentHold.id == appointment.hold_id).with_for_update())).scalar_one()
    await holds.free_time(session, hold)
    hold.status = "released"
    return _resource(hold)


async def cancel_by_user(resources: Resources, user_id: int, appointment_id: int,
                         body: CancelBody) -> dict[str, Any]:
    """The user cancels before the service's cancellation deadline; the time is freed."""
    async with resources.db.session() as session, session.begin():
        appointment = await _locked(session, appointment_id)
        if appointment is None or appointment.user_id != user_id:
            raise NotFound("No such appointment")
        appointment_states.check(appointment, "cancel")
        if utcnow() >= appointment.cancel_deadline_at:
            raise CancellationClosed(errors=[field_error(
                "status", f"the deadline was {slots.iso_local(appointment.cancel_deadline_at)}")])
        appointment_states.transition(session, appointment, "cancel", actor_type="user",
                                      actor_id=user_id, reason=body.reason)
        resource = await _free(session, appointment)
        await deposits.refund_deposit(session, appointment)
        await reminders.cancel_for_appointment(session, appointment.id)
        view = appointment_view(appointment)
    await booking_cache.forget(resources.cache, resources=[resource])
    await availability.refill_day(resources, appointment.service_id, appointment.staff_id,
                                  slots.local_day(appointment.start_at))
    return view


async def reschedule(resources: Resources, user_id: int, appointment_id: int,
                     body: RescheduleBody) -> dict[str, Any]:
    """Move the caller's appointment to a new slot, atomically: in one transaction the old
    slot's units are freed and the new slot's taken (the new may overlap the old), the
    appointment moves, its timeline says from where, its reminders are redone. If the new
    slot cannot be had, nothing changes (409 SlotTaken / 422). Before the cancellation
    deadline of the current slot only."""
    async def work(session: AsyncSession) -> tuple[dict[str, Any], list[str]]:
        appointment = await _locked(session, appointment_id)
        if appointment is None or appointment.user_id != user_id:
            raise NotFound("No such appointment")
        appointment_states.check(appointment, "reschedule")
        if utcnow() >= appointment.cancel_deadline_at:
            raise CancellationClosed(errors=[field_error(
                "status", f"the deadline was {slots.iso_local(appointment.cancel_deadline_at)}")])
        service = await session.get(Service, appointment.service_id)
        assert service is not None
        if service.kind == "boarding":
            raise BookingInvalid(errors=[field_error("kind", "boarding cannot be moved")])
        old_resource = await _free(session, appointment)
        new_hold, new_resource = await holds.slot_hold(
            session, user_id, service, appointment.pet_id, holds.HoldBody(
                service_id=service.id, pet_id=appointment.pet_id, staff_id=body.staff_id,
                start=body.start), ttl=resources.settings.booking_hold_seconds)
        await session.execute(update(SlotUnit).where(SlotUnit.hold_id == new_hold.id)
                              .values(expires_at=None))
        new_hold.status, new_hold.appointment_id = "confirmed", appointment.id
        moved_from = slots.iso_local(appointment.start_at)
        appointment.start_at, appointment.end_at = new_hold.start_at, new_hold.end_at
        appointment.staff_id, appointment.hold_id = new_hold.staff_id, new_hold.id
        appointment.cancel_deadline_at = new_hold.start_at - dt.timedelta(
            hours=service.cancel_deadline_hours)
        appointment_states.transition(session, appointment, "reschedule", actor_type="user",
                                      actor_id=user_id, reason=f"from {moved_from}")
        await reminders.cancel_for_appointment(session, appointment.id)
        if appointment.status == "confirmed":
            await reminders.schedule_appointment(session, appointment, service.name)
        return appointment_view(appointment), [old_resource, new_resource]

    view, dropped = await run_transaction(resources.db, work)
    await booking_cache.forget(resources.cache, resources=dropped)
    return view


async def provider_action(resources: Resources, user_id: int, role: str, appointment_id: int,
                          body: ProviderActionBody) -> dict[str, Any]:
    """The provider (its owner, or an admin) moves its appointment on: confirm, check in,
    complete, cancel (with a reason), no-show (after the start and the grace)."""
    resource = None
    async with resources.db.session() as session, session.begin():
        appointment = await _locked(session, appointment_id)
        if appointment is None or (role != "admin" and appointment.owner_id != user_id):
            raise NotFound("No such appointment")
        appointment_states.check(appointment, body.action)
        if body.action == "cancel" and not body.reason.strip():
            raise BookingInvalid(errors=[field_error("reason", "required to cancel")])
        if body.action == "no_show":
            grace = dt.timedelta(minutes=resources.settings.booking_no_show_grace_minutes)
            if utcnow() < appointment.start_at + grace:
                raise AppointmentStateConflict(
                    "No-show can be marked only after the start and the grace period",
                    errors=[field_error("action", "too early")])
        actor: appointment_states.ActorType = \
            "admin" if role == "admin" and appointment.owner_id != user_id else "provider"
        appointment_states.transition(session, appointment, body.action, actor_type=actor,
                                      actor_id=user_id, reason=body.reason)
        if body.action in appointment_states.FREES_TIME:
            resource = await _free(session, appointment)
            await deposits.refund_deposit(session, appointment)
        if body.action == "confirm":
            service = await session.get(Service, appointment.service_id)
            await reminders.schedule_appointment(session, appointment,
                                                 service.name if service else "")
        elif body.action in ("cancel", "no_show", "check_in"):
            await reminders.cancel_for_appointment(session, appointment.id)
        view = appointment_view(appointment)
    if resource:
        await booking_cache.forget(resources.cache, resources=[resource])
    return view


async def my_appointments(resources: Resources, user_id: int,
                          query: MyAppointmentsQuery) -> dict[str, Any]:
    now = utcnow()
    conditions: list[Any] = [Appointment.user_id == user_id]
    order: Any = Appointment.start_at
    if query.when == "upcoming":
        conditions += [Appointment.end_at > now,
                       Appointment.status.in_(appointment_states.LIVE)]
    elif query.when == "past":
        conditions.append((Appointment.end_at <= now) | Appointment.status.not_in(
            appointment_states.LIVE))
        order = Appointment.start_at.desc()
    if query.pet_id is not None:
        conditions.append(Appointment.pet_id == query.pet_id)
    async with resources.db.session() as session:
        total = (await session.execute(select(func.count()).select_from(Appointment)
                                       .where(*conditions))).scalar_one()
        rows = (await session.execute(select(Appointment).where(*conditions).order_by(
            order, Appointment.id).offset((query.page - 1) * query.limit).limit(query.limit)
        )).scalars().all()
    return page_result([appointment_view(a) for a in rows], total, query)  # type: ignore[arg-type]


async def get_appointment(resources: Resources, user_id: int, role: str,
                          appointment_id: int) -> dict[str, Any]:
    """An appointment with its timeline and its review, for its user, its provider's owner
    or an admin."""
    async with resources.db.session() as session:
        appointment = await session.get(Appointment, appointment_id)
        if appointment is None or (role != "admin" and user_id not in (
                appointment.user_id, appointment.owner_id)):
            raise NotFound("No such appointment")
        timeline = (await session.execute(select(AppointmentEvent).where(
            AppointmentEvent.appointment_id == appointment_id).order_by(
            AppointmentEvent.id))).scalars().all()
        review = await reviews.review_of_appointment(session, resources.settings, appointment,
                                                     user_id, role)
        return {**appointment_view(appointment), "timeline": [_event_view(e) for e in timeline],
                "reviewed": review is not None, "review": review}


async def provider_appointments(resources: Resources, user_id: int, role: str,
                                provider_id: int,
                                query: ProviderAppointmentsQuery) -> dict[str, Any]:
    """A provider's appointments (its owner or an admin), by start."""
    conditions: list[Any] = [Appointment.provider_id == provider_id]
    if query.status:
        conditions.append(Appointment.status == query.status)
    if query.date:
        midnight = slots.local_midnight_utc(query.date)
        conditions += [Appointment.start_at >= midnight,
                       Appointment.start_at < midnight + dt.timedelta(days=1)]
    async with resources.db.session() as session:
        provider = await session.get(Provider, provider_id)
        if provider is None or (role != "admin" and provider.owner_id != user_id):
            raise NotFound("No such provider")
        total = (await session.execute(select(func.count()).select_from(Appointment)
                                       .where(*conditions))).scalar_one()
        rows = (await session.execute(select(Appointment).where(*conditions).order_by(
            Appointment.start_at, Appointment.id).offset((query.page - 1) * query.limit)
            .limit(query.limit))).scalars().all()
    return page_result([appointment_view(a) for a in rows], total, query)  # type: ignore[arg-type]


async def _may_watch_appointment(resources: Resources, user_id: int, topic_id: str) -> bool:
    """"appointment:<id>" is watched by its user and its provider's owner."""
    if not topic_id.isdigit() or len(topic_id) > 18:
        raise NotFound("Unknown topic")
    async with resources.db.session() as session:
        appointment = await session.get(Appointment, int(topic_id))
    if appointment is None or user_id not in (appointment.user_id, appointment.owner_id):
        raise NotFound("No such appointment")
    return True


topics.register_topic_kind("appointment", _may_watch_appointment)
