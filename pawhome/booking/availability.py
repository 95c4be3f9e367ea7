"""What can be booked: a service's free start times per staff member and for "any staff"
(GET /v1/services/{id}/slots), a boarding service's rooms left per night, a provider's next
day with a free slot. Gathers the inputs of the pure computation (pawhome/booking/slots.py):
the schedule, the occupied units of live holds and appointments. A resource-day's free
starts are cached under the resource's generation, bumped by every hold, booking and
schedule change; its open windows apart, under a generation only schedule changes bump; the
readers missing one resource-day at once compute it once. The notice and horizon are applied
on every read (they move with the clock). docs/booking.md ("Slots").
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Hashable
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import BoardingNight, Provider, Service, SlotUnit, Staff, StaffService
from pawhome.booking import booking_cache, schedules, slots
from pawhome.platform import codec
from pawhome.platform.cache import UNAVAILABLE_ERRORS
from pawhome.platform.errors import BookingInvalid, NotFound, field_error
from pawhome.platform.hot_keys import KeyedBatches
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.booking.availability")

MAX_DAYS = 14  # one slots request covers at most this many days
NEXT_DAY_SCAN = 14  # a provider's next available day is looked for this far ahead


class SlotsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    date: dt.date | None = Field(None, description="one Asia/Shanghai day, or")
    from_: dt.date | None = Field(None, alias="from", description="first day")
    to: dt.date | None = Field(None, description="last day (at most 14 days)")


    def days(self) -> list[dt.date]:
        if self.date is not None:
            if self.from_ is not None or self.to is not None:
                raise BookingInvalid(errors=[field_error("date", "give date, or from and to")])
            return [self.date]
        if self.from_ is None or self.to is None:
            raise BookingInvalid(errors=[field_error("date", "give date, or from and to")])
        if not self.from_ <= self.to <= self.from_ + dt.timedelta(days=MAX_DAYS - 1):
            raise BookingInvalid(errors=[field_error("to", f"1 to {MAX_DAYS} days from from")])
        return [self.from_ + dt.timedelta(days=i) for i in range((self.to - self.from_).days + 1)]


def resource_of(service: Service, staff_id: int | None) -> str:
    """The slot-unit resource a booking of `service` occupies."""
    return f"s{staff_id}" if service.uses_staff else f"p{service.provider_id}"


async def live_service(session: AsyncSession, service_id: int) -> tuple[Service, Provider]:
    """An active service of an active provider; NotFound otherwise."""
    service = await session.get(Service, service_id)
    provider = await session.get(Provider, service.provider_id) if service else None
    if service is None or provider is None or service.status != "active" \
            or provider.status != "active":
        raise NotFound("No such service")
    return service, provider


async def performers(session: AsyncSession, service: Service) -> list[Staff]:
    """The active staff members performing a staff service."""
    return list((await session.execute(select(Staff).join(
        StaffService, StaffService.staff_id == Staff.id).where(
        StaffService.service_id == service.id, Staff.active.is_(True)).order_by(Staff.id)
    )).scalars())


async def busy_units(session: AsyncSession, resource: str, day: dt.date,
                     now: dt.datetime) -> tuple[list[dt.datetime], dt.datetime | None]:
    """The units of `resource` occupied around `day` (a day either side, for buffers), and
    when the first of the live holds among them expires."""
    midnight = slots.local_midnight_utc(day)
    rows = (await session.execute(select(SlotUnit.unit_start, SlotUnit.expires_at).where(
        SlotUnit.resource == resource,
        SlotUnit.unit_start >= midnight - dt.timedelta(days=1),
        SlotUnit.unit_start < midnight + dt.timedelta(days=2),
        or_(SlotUnit.expires_at.is_(None), SlotUnit.expires_at > now)))).all()
    expiries = [e for _, e in rows if e is not None]
    return [u for u, _ in rows], min(expiries) if expiries else None


@dataclass(frozen=True)
class SlotRules:
    """What a service's slots depend on besides schedules and bookings: its rules and its
    active performers. Cached under the catalogue generation (every service, staff and
    provider write bumps it), so a slots request whose days are cached reads no table."""
    id: int
    provider_id: int
    kind: str
    uses_staff: bool
    duration_minutes: int
    buffer_before: int
    buffer_after: int
    min_notice_minutes: int
    horizon_days: int
    capacity: int
    staff: tuple[tuple[int, str], ...]

    @classmethod
    def of(cls, service: Service, staff: list[Staff]) -> SlotRules:
        return cls(id=service.id, provider_id=service.provider_id, kind=service.kind,
                   uses_staff=service.uses_staff, duration_minutes=service.duration_minutes,
                   buffer_before=service.buffer_before, buffer_after=service.buffer_after,
                   min_notice_minutes=service.min_notice_minutes,
                   horizon_days=service.horizon_days, capacity=service.capacity,
                   staff=tuple((s.id, s.name) for s in staff))

    def resource(self, staff_id: int | None) -> str:
        return f"s{staff_id}" if self.uses_staff else f"p{self.provider_id}"


async def slot_rules(resources: Resources, service_id: int) -> SlotRules:
    """A live service's SlotRules, from the cache when the catalogue generation is current;
    NotFound (never cached) for a service that cannot be booked."""
    cache = resources.cache
    key = booking_cache.head_key(cache, service_id)
    generation, payload = await booking_cache.read(
        cache, booking_cache.catalogue_generation_key(cache), key)
    if payload is not None:
        fields = codec.loads(payload)
        return SlotRules(**{**fields, "staff": tuple((i, n) for i, n in fields["staff"])})
    async with resources.db.session() as session:
        service, _provider = await live_service(session, service_id)
        staff = await performers(session, service) if service.uses_staff else []
    rules = SlotRules.of(service, staff)
    await booking_cache.fill(cache, key, generation, codec.dumps(asdict(rules)),
                             resources.settings.booking_catalogue_cache_seconds)
    return rules


def _decode_starts(payload: bytes) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(s, dt.UTC).replace(tzinfo=None)
            for s in codec.loads(payload)]


async def _windows(resources: Resources, session: AsyncSession, rules: SlotRules,
                   staff_id: int | None, day: dt.date) -> list[slots.Window]:
    """A resource-day's open windows: cached under the resource's schedule generation,
    which holds and bookings leave alone (only schedule changes bump it)."""
    cache = resources.cache
    resource = rules.resource(staff_id)
    key = booking_cache.windows_key(cache, resource, day)
    generation, payload = await booking_cache.read(
        cache, booking_cache.windows_generation_key(cache, resource), key)
    if payload is not None:
        return [(start, end) for start, end in codec.loads(payload)]
    windows = (await schedules.day_windows(session, rules.provider_id,
                                           staff_id if rules.uses_staff else None,
                                           [day]))[day]
    await booking_cache.fill(cache, key, generation, codec.dumps(windows),
                             resources.settings.booking_windows_cache_seconds)
    return windows


@dataclass(frozen=True)
class _Miss:
    """One reader's missing resource-day, with the slots generation it read."""
    resources: Resources
    rules: SlotRules
    staff_id: int | None
    day: dt.date
    generation: bytes


async def _compute_starts(resources: Resources, session: AsyncSession, rules: SlotRules,
                          staff_id: int | None, day: dt.date,
                          generation: bytes) -> list[dt.datetime]:
    """A resource-day's free starts (before notice and horizon) from its windows and the
    units taken now, cached under `generation` (read before the tables)."""
    now = utcnow()
    resource = rules.resource(staff_id)
    windows = await _windows(resources, session, rules, staff_id, day)
    units, first_expiry = await busy_units(session, resource, day, now)
    starts = slots.free_starts(day, windows, slots.busy_from_units(units),
                               duration=rules.duration_minutes,
                               buffer_before=rules.buffer_before,
                               buffer_after=rules.buffer_after)
    ttl = resources.settings.booking_slots_cache_seconds
    if first_expiry is not None:  # an expiring hold frees its units: recompute by then
        ttl = min(ttl, int((first_expiry - now).total_seconds()))
    await booking_cache.fill(
        resources.cache, booking_cache.slots_key(resources.cache, resource, rules.id, day),
        generation, codec.dumps([int(s.replace(tzinfo=dt.UTC).timestamp()) for s in starts]),
        ttl)
    return starts


async def _compute_for_all(_key: Hashable,
                           misses: list[_Miss]) -> list[list[dt.datetime] | BaseException]:
    """One computation for every reader that missed the same resource-day while the previous
    one ran (so each reader's answer is read after it asked). Filled under the newest
    generation they read: every one of them was read before these tables."""
    last = misses[-1]
    generation = max((m.generation for m in misses), key=int)
    async with last.resources.db.session() as session:
        starts = await _compute_starts(last.resources, session, last.rules, last.staff_id,
                                       last.day, generation)
    outcomes: list[list[dt.datetime] | BaseException] = [starts] * len(misses)
    return outcomes


# Concurrent misses of one resource-day compute once (a hold drops the resource's days, and
# every reader of them missed at once: bench/bench_slots_contention.py).
_misses: KeyedBatches[_Miss, list[dt.datetime]] = KeyedBatches(_compute_for_all)


async def free_starts_of(resources: Resources, rules: SlotRules,
                         wanted: list[tuple[int | None, dt.date]],
                         session: AsyncSession | None = None,
                         ) -> dict[tuple[int | None, dt.date], list[dt.datetime]]:
    """The free starts (before notice and horizon) of each (staff id, day): the cached ones
    in one round trip, the others computed in `session` when given, else once per
    resource-day for all the readers missing it at the same time (each in a session of its
    own)."""
    cache = resources.cache
    pairs = [(booking_cache.slots_generation_key(cache, rules.resource(staff_id)),
              booking_cache.slots_key(cache, rules.resource(staff_id), rules.id, day))
             for staff_id, day in wanted]
    out: dict[tuple[int | None, dt.date], list[dt.datetime]] = {}
    missing: list[tuple[tuple[int | None, dt.date], bytes]] = []
    for want, (generation, payload) in zip(wanted, await booking_cache.read_many(cache, pairs),
                                           strict=True):
        if payload is not None:
            out[want] = _decode_starts(payload)
        else:
            missing.append((want, generation))
    if session is not None:
        for (staff_id, day), generation in missing:
            out[(staff_id, day)] = await _compute_starts(resources, session, rules, staff_id,
                                                         day, generation)
        return out
    computed = await asyncio.gather(*(
        _misses.submit((cache.key("booking", "slots", rules.resource(staff_id)), rules.id, day),
                       _Miss(resources, rules, staff_id, day, generation))
        for (staff_id, day), generation in missing))
    for ((staff_id, day), _), starts in zip(missing, computed, strict=True):
        out[(staff_id, day)] = starts
    return out


async def refill_day(resources: Resources, service_id: int, staff_id: int | None,
                     day: dt.date) -> None:
    """After a hold or cancellation committed and bumped its resource's generation: read the
    day as a reader would, so it is computed now (together with any readers missing it) and
    the next readers hit instead of missing together. Best effort: the write is committed,
    a failure here only leaves a miss."""
    try:
        rules = await slot_rules(resources, service_id)
        if rules.kind != "boarding":
            await free_starts_of(resources, rules, [(staff_id, day)])
    except (NotFound, SQLAlchemyError, *UNAVAILABLE_ERRORS) as error:
        log.warning("slots of service %s on %s not refilled: %r", service_id, day, error)


async def _boarding_nights(session: AsyncSession, rules: SlotRules,
                           days: list[dt.date]) -> list[dict[str, Any]]:
    rows = {n.night: n for n in (await session.execute(select(BoardingNight).where(
        BoardingNight.service_id == rules.id, BoardingNight.night.in_(days)))).scalars()}
    out = []
    for day in days:
        row = rows.get(day)
        capacity = row.capacity if row else rules.capacity
        out.append({"night": day.isoformat(), "capacity": capacity,
                    "left": max(0, capacity - (row.booked if row else 0))})
    return out


async def service_slots(resources: Resources, service_id: int,
                        query: SlotsQuery) -> dict[str, Any]:
    """The free start times of a service on each asked day, per staff member and for any
    staff (the union); a boarding service answers with rooms left per night instead. When
    the service and its days are cached: two Redis round trips, no table read."""
    now = utcnow()
    today = slots.local_day(now)
    rules = await slot_rules(resources, service_id)
    days = query.days()
    if rules.kind == "boarding":
        async with resources.db.session() as session:
            return {"service_id": rules.id, "kind": rules.kind,
                    "nights": await _boarding_nights(session, rules, days)}
    people: list[tuple[int | None, str]] = list(rules.staff) if rules.uses_staff \
        else [(None, "")]
    last_day = today + dt.timedelta(days=rules.horizon_days)
    open_days = [day for day in days if today <= day <= last_day]
    found = await free_starts_of(resources, rules, [(staff_id, day) for day in open_days
                                                    for staff_id, _ in people])
    out_days = []
    for day in days:
        per_staff = []
        union: set[dt.datetime] = set()
        for staff_id, name in people:
            starts = slots.bookable(found.get((staff_id, day), []), now=now,
                                    min_notice_minutes=rules.min_notice_minutes,
                                    horizon_days=rules.horizon_days)
            union.update(starts)
            if staff_id is not None:
                per_staff.append({"staff_id": staff_id, "name": name,
                                  "starts": [slots.iso_local(s) for s in starts]})
        out_days.append({"date": day.isoformat(), "staff": per_staff,
                         "any": [slots.iso_local(s) for s in sorted(union)]})
    return {"service_id": rules.id, "kind": rules.kind,
            "duration_minutes": rules.duration_minutes, "days": out_days}


async def next_available_day(resources: Resources, session: AsyncSession,
                             services: list[Service]) -> str | None:
    """The first Asia/Shanghai day (within two weeks) any of these slot services has a free
    start; None if none has."""
    now = utcnow()
    today = slots.local_day(now)
    rules = [SlotRules.of(s, await performers(session, s) if s.uses_staff else [])
             for s in services if s.kind != "boarding" and s.status == "active"]
    for offset in range(NEXT_DAY_SCAN):
        day = today + dt.timedelta(days=offset)
        for rule in rules:
            if offset > rule.horizon_days:
                continue
            ids: list[int | None] = [i for i, _ in rule.staff] if rule.uses_staff else [None]
            found = await free_starts_of(resources, rule, [(i, day) for i in ids],
                                         session=session)
            if any(slots.bookable(starts, now=now, min_notice_minutes=rule.min_notice_minutes,
                                  horizon_days=rule.horizon_days)
                   for starts in found.values()):
                return day.isoformat()
    return None


SLOTS_REFUSALS = {"date": "date, or from and to", "to": f"within {MAX_DAYS} days of from"}
