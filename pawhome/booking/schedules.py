"""Schedules: weekly hours, date overrides (extra hours, days off, holidays) and breaks, per
staff member or for the whole provider (staff_id null: the provider's own hours for services
without staff; its overrides and breaks apply to everyone). The writes answer with the
booked appointments the new schedule no longer covers — never dropped, listed for the
provider to move or cancel. `day_windows` is what the slot computation reads.
docs/booking.md ("Schedules").
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import Appointment, ScheduleBreak, ScheduleOverride, Staff, WorkingHours
from pawhome.booking import appointment_states, booking_cache, slots
from pawhome.booking.catalogue import own_provider
from pawhome.booking.slots import UNIT_MINUTES, Window
from pawhome.platform.errors import BookingInvalid, NotFound, field_error
from pawhome.platform.fields import Id
from pawhome.platform.resources import Resources

# Statuses that hold their time: the schedule must keep covering them.
LIVE_STATUSES = appointment_states.LIVE

Clock = Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5][05]|24:00)$",
                             description="HH:MM, Asia/Shanghai, a multiple of 5 minutes")]


def minutes(clock: str) -> int:
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


def clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _window(start: str, end: str, field: str = "end") -> Window:
    lo, hi = minutes(start), minutes(end)
    if lo % UNIT_MINUTES or hi % UNIT_MINUTES:
        raise BookingInvalid(errors=[field_error(
            field, f"times must be multiples of {UNIT_MINUTES} minutes")])
    if lo >= hi:
        raise BookingInvalid(errors=[field_error(field, "must be after start")])
    return lo, hi


class WeeklyWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    start: Clock
    end: Clock



class HoursBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff_id: Id | None = Field(None, description="null: the provider's own hours")
    windows: list[WeeklyWindow] = Field(max_length=70,
                                        description="replaces this staff member's week")


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff_id: Id | None = Field(None, description="null: the whole provider")
    day: dt.date
    kind: Literal["extra", "day_off", "holiday"]
    start: Clock | None = Field(None, description="extra hours only")
    end: Clock | None = None
    note: str = Field("", max_length=128)



class BreakBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff_id: Id | None = Field(None, description="null: the whole provider")
    weekday: int | None = Field(None, ge=0, le=6, description="every week on this day, or")
    day: dt.date | None = Field(None, description="on this date only")
    start: Clock
    end: Clock



# -- reading ---------------------------------------------------------------------------------


async def day_windows(session: AsyncSession, provider_id: int, staff_id: int | None,
                      days: list[dt.date]) -> dict[dt.date, list[Window]]:
    """The open windows of a staff member (or the provider, staff_id None) on each day."""
    who: list[Any] = [ScheduleOverride.staff_id.is_(None)]
    if staff_id is not None:
        who.append(ScheduleOverride.staff_id == staff_id)
    hours = (await session.execute(select(WorkingHours).where(
        WorkingHours.provider_id == provider_id,
        WorkingHours.staff_id.is_(None) if staff_id is None
        else WorkingHours.staff_id == staff_id))).scalars().all()
    overrides = (await session.execute(select(ScheduleOverride).where(
        ScheduleOverride.provider_id == provider_id, or_(*who),
        ScheduleOverride.day.in_(days)))).scalars().all()
    breaks = (await session.execute(select(ScheduleBreak).where(
        ScheduleBreak.provider_id == provider_id,
        or_(ScheduleBreak.staff_id.is_(None),
            *([ScheduleBreak.staff_id == staff_id] if staff_id is not None else [])),
        or_(ScheduleBreak.day.in_(days), ScheduleBreak.day.is_(None))))).scalars().all()
    weekly: dict[int, list[Window]] = defaultdict(list)
    for h in hours:
        weekly[h.weekday].append((h.start_minute, h.end_minute))
    out: dict[dt.date, list[Window]] = {}
    for day in days:
        todays = [o for o in overrides if o.day == day]
        closed = any(o.kind in ("day_off", "holiday") for o in todays)
        extra = [(o.start_minute, o.end_minute) for o in todays
                 if o.kind == "extra" and o.start_minute is not None
                 and o.end_minute is not None]
        pauses = [(b.start_minute, b.end_minute) for b in breaks
                  if b.day == day or (b.day is None and b.weekday == day.weekday())]
        out[day] = slots.open_windows(weekly[day.weekday()], extra, pauses, closed)
    return out


def _covered(windows: list[Window], start: int, end: int) -> bool:
    return any(lo <= start and end <= hi for lo, hi in windows)


def _conflict(a: Appointment, reason: str) -> dict[str, Any]:
    return {"appointment_id": a.id, "staff_id": a.staff_id, "service_id": a.service_id,
            "status": a.status, "start": slots.iso_local(a.start_at),
            "end": slots.iso_local(a.end_at), "reason": reason}


async def conflicts(session: AsyncSession, provider_id: int) -> list[dict[str, Any]]:
    """The provider's live future slot appointments its schedule no longer covers
    (`outside_hours`), or whose staff member was deactivated (`staff_inactive`)."""
    booked = (await session.execute(select(Appointment).where(
        Appointment.provider_id == provider_id, Appointment.status.in_(LIVE_STATUSES),
        Appointment.kind != "boarding", Appointment.end_at > utcnow())
        .order_by(Appointment.start_at).limit(2000))).scalars().all()
    inactive = set((await session.execute(select(Staff.id).where(
        Staff.provider_id == provider_id, Staff.active.is_(False)))).scalars())
    by_resource: dict[int | None, list[Appointment]] = defaultdict(list)
    for appointment in booked:
        by_resource[appointment.staff_id].append(appointment)
    found = []
    for staff_id, appointments in by_resource.items():
        if staff_id in inactive:
            found += [_conflict(a, "staff_inactive") for a in appointments]
            continue
        days = sorted({slots.local_day(a.start_at) for a in appointments})
        windows = await day_windows(session, provider_id, staff_id, days)
        for a in appointments:
            day = slots.local_day(a.start_at)
            midnight = slots.local_midnight_utc(day)
            start = int((a.start_at - midnight).total_seconds() // 60)
            end = int((a.end_at - midnight).total_seconds() // 60)
            if not _covered(windows[day], start, end):
                found.append(_conflict(a, "outside_hours"))
    return sorted(found, key=lambda c: (c["start"], c["appointment_id"]))


async def _resources_of(session: AsyncSession, provider_id: int) -> list[str]:
    staff_ids = (await session.execute(select(Staff.id).where(
        Staff.provider_id == provider_id))).scalars().all()
    return [f"p{provider_id}", *(f"s{i}" for i in staff_ids)]


async def _check_staff(session: AsyncSession, provider_id: int, staff_id: int | None) -> None:
    if staff_id is None:
        return
    staff = await session.get(Staff, staff_id)
    if staff is None or staff.provider_id != provider_id:
        raise BookingInvalid(errors=[field_error("staff_id", "not staff of this provider")])


def _hours_view(h: WorkingHours) -> dict[str, Any]:
    return {"id": h.id, "staff_id": h.staff_id, "weekday": h.weekday,
            "start": clock(h.start_minute), "end": clock(h.end_minute)}


def _override_view(o: ScheduleOverride) -> dict[str, Any]:
    return {"id": o.id, "staff_id": o.staff_id, "day": o.day.isoformat(), "kind": o.kind,
            "start": clock(o.start_minute) if o.start_minute is not None else None,
            "end": clock(o.end_minute) if o.end_minute is not None else None, "note": o.note}


def _break_view(b: ScheduleBreak) -> dict[str, Any]:
    return {"id": b.id, "staff_id": b.staff_id, "weekday": b.weekday,
            "day": b.day.isoformat() if b.day else None,
            "start": clock(b.start_minute), "end": clock(b.end_minute)}


async def _schedule_view(session: AsyncSession, provider_id: int) -> dict[str, Any]:
    hours = (await session.execute(select(WorkingHours).where(
        WorkingHours.provider_id == provider_id).order_by(
        WorkingHours.staff_id, WorkingHours.weekday, WorkingHours.start_minute))).scalars()
    overrides = (await session.execute(select(ScheduleOverride).where(
        ScheduleOverride.provider_id == provider_id).order_by(ScheduleOverride.day))).scalars()
    breaks = (await session.execute(select(ScheduleBreak).where(
        ScheduleBreak.provider_id == provider_id).order_by(ScheduleBreak.id))).scalars()
    return {"provider_id": provider_id, "hours": [_hours_view(h) for h in hours],
            "overrides": [_override_view(o) for o in overrides],
            "breaks": [_break_view(b) for b in breaks]}


async def get_schedule(resources: Resources, user_id: int, role: str,
                       provider_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        await own_provider(session, user_id, role, provider_id)
        view = await _schedule_view(session, provider_id)
        view["conflicts"] = await conflicts(session, provider_id)
        return view


async def _change(resources: Resources, user_id: int, role: str, provider_id: int,
                  staff_id: int | None, write: Any) -> dict[str, Any]:
    """Run `write(session)` on the provider's schedule (locked: schedule writes of one
    provider go one at a time), answer with the schedule and its conflicts, then drop the
    provider's cached slots."""
    async with resources.db.session() as session, session.begin():
        await own_provider(session, user_id, role, provider_id, lock=True)
        await _check_staff(session, provider_id, staff_id)
        await write(session)
        await session.flush()
        view = await _schedule_view(session, provider_id)
        view["conflicts"] = await conflicts(session, provider_id)
        dropped = await _resources_of(session, provider_id)
    await booking_cache.forget(resources.cache, catalogue=True, resources=dropped,
                               schedules=True)
    return view


async def set_weekly_hours(resources: Resources, user_id: int, role: str, provider_id: int,
                           body: HoursBody) -> dict[str, Any]:
    """Replace a staff member's (or the provider's) weekly hours."""
    async def write(session: AsyncSession) -> None:
        await session.execute(delete(WorkingHours).where(
            WorkingHours.provider_id == provider_id,
            WorkingHours.staff_id.is_(None) if body.staff_id is None
            else WorkingHours.staff_id == body.staff_id))
        for w in body.windows:
            lo, hi = _window(w.start, w.end, "windows")
            session.add(WorkingHours(provider_id=provider_id, staff_id=body.staff_id,
                                     weekday=w.weekday, start_minute=lo, end_minute=hi))
    return await _change(resources, user_id, role, provider_id, body.staff_id, write)


async def add_override(resources: Resources, user_id: int, role: str, provider_id: int,
                       body: OverrideBody) -> dict[str, Any]:
    if body.kind == "extra" and (body.start is None or body.end is None):
        raise BookingInvalid(errors=[field_error("start", "extra hours need start and end")])
    if body.kind != "extra" and (body.start is not None or body.end is not None):
        raise BookingInvalid(errors=[field_error("start", "a day off or holiday has no hours")])
    lo, hi = _window(body.start, body.end) if body.start and body.end else (None, None)

    async def write(session: AsyncSession) -> None:
        session.add(ScheduleOverride(provider_id=provider_id, staff_id=body.staff_id,
                                     day=body.day, kind=body.kind, start_minute=lo,
                                     end_minute=hi, note=body.note))
    return await _change(resources, user_id, role, provider_id, body.staff_id, write)


async def add_break(resources: Resources, user_id: int, role: str, provider_id: int,
                    body: BreakBody) -> dict[str, Any]:
    if (body.weekday is None) == (body.day is None):
        raise BookingInvalid(errors=[field_error("weekday", "give exactly one of weekday and day")])
    lo, hi = _window(body.start, body.end)

    async def write(session: AsyncSession) -> None:
        session.add(ScheduleBreak(provider_id=provider_id, staff_id=body.staff_id,
                                  weekday=body.weekday, day=body.day, start_minute=lo,
                                  end_minute=hi))
    return await _change(resources, user_id, role, provider_id, body.staff_id, write)


async def remove_entry(resources: Resources, user_id: int, role: str, provider_id: int,
                       kind: Literal["overrides", "breaks"], entry_id: int) -> dict[str, Any]:
    """Delete one override or break of the provider."""
    table = ScheduleOverride if kind == "overrides" else ScheduleBreak

    async def write(session: AsyncSession) -> None:
        done = await session.execute(delete(table).where(
            table.id == entry_id, table.provider_id == provider_id))
        if not getattr(done, "rowcount", 0):
            raise NotFound("No such schedule entry")
    return await _change(resources, user_id, role, provider_id, None, write)


HOURS_REFUSALS = {"windows": "each window's end after its start",
                  "staff_id": "staff of this provider"}
OVERRIDE_REFUSALS = {"start": "extra hours need start and end; days off and holidays none",
                     "end": "after start", "staff_id": "staff of this provider"}
BREAK_REFUSALS = {"weekday": "exactly one of weekday and day", "end": "after start",
                  "staff_id": "staff of this provider"}
