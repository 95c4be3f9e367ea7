"""Providers, staff and services: the merchant's (or an admin's) writes, the shapes every
reader shares, and the ownership check the other booking modules use. A write commits and
then drops the public catalogue reads. docs/booking.md ("Catalogue").
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import Appointment, BoardingNight, Provider, Service, Staff, StaffService
from pawhome.booking import appointment_states, booking_cache
from pawhome.booking.slots import UNIT_MINUTES
from pawhome.platform.errors import BookingInvalid, DepositInvalid, NotFound, field_error
from pawhome.platform.fields import Id
from pawhome.platform.resources import Resources

ServiceKind = Literal["vaccine", "grooming", "medical", "boarding"]
PetType = Literal["cat", "dog", "other"]


class ProviderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    address: str = Field("", max_length=255)
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    hours_text: str = Field("", max_length=128, description="e.g. 每天 09:00-18:00")
    photos: list[Id] = Field(default_factory=list, max_length=9, description="media ids")
    phone: str = Field("", max_length=32)


class ProviderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=64)
    address: str | None = Field(None, max_length=255)
    lat: float | None = Field(None, ge=-90, le=90)
    lng: float | None = Field(None, ge=-180, le=180)
    hours_text: str | None = Field(None, max_length=128)
    photos: list[Id] | None = Field(None, max_length=9)
    phone: str | None = Field(None, max_length=32)
    status: Literal["active", "closed"] | None = None


class StaffBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=32)
    title: str = Field("", max_length=32)
    photo_media_id: Id | None = None
    bio: str = Field("", max_length=500)
    service_ids: list[Id] = Field(default_factory=list, max_length=50,
                                  description="services of this provider they perform")


class StaffPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=32)
    title: str | None = Field(None, max_length=32)
    photo_media_id: Id | None = None
    bio: str | None = Field(None, max_length=500)
    service_ids: list[Id] | None = Field(None, max_length=50)
    active: bool | None = None


class ServiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    kind: ServiceKind
    duration_minutes: int = Field(60, ge=5, le=720, multiple_of=UNIT_MINUTES)
    price: int = Field(ge=0, le=10**9, description="fen")
    deposit: int = Field(0, ge=0, le=10**9, description="fen paid online to book, at most the "
                                                       "price; 0: all paid at the store")
    pet_types: list[PetType] = Field(default_factory=list, description="[] = any pet")
    max_weight_kg: int | None = Field(None, ge=1, le=200)
    buffer_before: int = Field(0, ge=0, le=240, multiple_of=UNIT_MINUTES)
    buffer_after: int = Field(0, ge=0, le=240, multiple_of=UNIT_MINUTES)
    min_notice_minutes: int = Field(120, ge=0, le=30 * 1440)
    horizon_days: int = Field(30, ge=1, le=365)
    needs_confirmation: bool = False
    cancel_deadline_hours: int = Field(24, ge=0, le=720,
                                       description="users may cancel until this long before")
    uses_staff: bool = Field(True, description="false: booked against the provider itself")
    capacity: int = Field(1, ge=1, le=1000, description="boarding: rooms per night")



class ServicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=64)
    price: int | None = Field(None, ge=0, le=10**9)
    deposit: int | None = Field(None, ge=0, le=10**9)
    pet_types: list[PetType] | None = None
    max_weight_kg: int | None = Field(None, ge=1, le=200)
    min_notice_minutes: int | None = Field(None, ge=0, le=30 * 1440)
    horizon_days: int | None = Field(None, ge=1, le=365)
    needs_confirmation: bool | None = None
    cancel_deadline_hours: int | None = Field(None, ge=0, le=720)
    capacity: int | None = Field(None, ge=1, le=1000)
    status: Literal["active", "stopped"] | None = None


# -- shapes ----------------------------------------------------------------------------------


def rating_view(count: int, total: int) -> dict[str, Any]:
    return {"count": count, "average": round(total / count, 2) if count else None}


def provider_view(provider: Provider) -> dict[str, Any]:
    return {"id": provider.id, "owner_id": provider.owner_id, "name": provider.name,
            "address": provider.address, "lat": float(provider.lat), "lng": float(provider.lng),
            "hours_text": provider.hours_text, "photos": list(provider.photos or []),
            "phone": provider.phone, "status": provider.status,
            "rating": rating_view(provider.rating_count, provider.rating_sum)}


def staff_view(staff: Staff, service_ids: list[int]) -> dict[str, Any]:
    return {"id": staff.id, "provider_id": staff.provider_id, "name": staff.name,
            "title": staff.title, "photo_media_id": staff.photo_media_id, "bio": staff.bio,
            "active": staff.active, "service_ids": sorted(service_ids),
            "rating": rating_view(staff.rating_count, staff.rating_sum)}


def service_view(service: Service) -> dict[str, Any]:
    return {"id": service.id, "provider_id": service.provider_id, "name": service.name,
            "kind": service.kind, "duration_minutes": service.duration_minutes,
            "price": service.price, "deposit": service.deposit,
            "pet_types": list(service.pet_types or []),
            "max_weight_kg": service.max_weight_kg, "buffer_before": service.buffer_before,
            "buffer_after": service.buffer_after,
            "min_notice_minutes": service.min_notice_minutes,
            "horizon_days": service.horizon_days,
            "needs_confirmation": service.needs_confirmation,
            "cancel_deadline_hours": service.cancel_deadline_hours,
            "uses_staff": service.uses_staff, "capacity": service.capacity,
            "status": service.status}


# -- ownership -------------------------------------------------------------------------------


async def own_provider(session: AsyncSession, user_id: int, role: str, provider_id: int,
                       *, lock: bool = False) -> Provider:
    """The provider if the caller owns it (admins: any); NotFound otherwise."""
    query = select(Provider).where(Provider.id == provider_id)
    if lock:
        query = query.with_for_update()
    provider = (await session.execute(query)).scalar_one_or_none()
    if provider is None or (role != "admin" and provider.owner_id != user_id):
        raise NotFound("No such provider")
    return provider


async def staff_service_ids(session: AsyncSession, staff_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {i: [] for i in staff_ids}
    if staff_ids:
        for staff_id, service_id in (await session.execute(select(
                StaffService.staff_id, StaffService.service_id).where(
                StaffService.staff_id.in_(staff_ids)))).all():
            out[staff_id].append(service_id)
    return out


async def _set_services(session: AsyncSession, staff: Staff, service_ids: list[int]) -> None:
    wanted = sorted(set(service_ids))
    if wanted:
        found = set((await session.execute(select(Service.id).where(
            Service.id.in_(wanted), Service.provider_id == staff.provider_id))).scalars())
        missing = [i for i in wanted if i not in found]
        if missing:
            raise BookingInvalid(errors=[field_error(
                "service_ids", f"not services of this provider: {missing}")])
    await session.execute(delete(StaffService).where(StaffService.staff_id == staff.id))
    session.add_all(StaffService(staff_id=staff.id, service_id=i) for i in wanted)


# -- writes ----------------------------------------------------------------------------------


async def create_provider(resources: Resources, user_id: int, body: ProviderBody) -> dict[str, Any]:
    """A provider owned by the calling merchant (an admin creating one owns it too)."""
    async with resources.db.session() as session, session.begin():
        provider = Provider(owner_id=user_id, name=body.name, address=body.address,
                            lat=Decimal(str(body.lat)), lng=Decimal(str(body.lng)),
                            hours_text=body.hours_text, photos=list(body.photos),
                            phone=body.phone)
        session.add(provider)
        await session.flush()
        view = provider_view(provider)
    await booking_cache.forget(resources.cache, catalogue=True)
    return view


async def update_provider(resources: Resources, user_id: int, role: str, provider_id: int,
                          body: ProviderPatch) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        provider = await own_provider(session, user_id, role, provider_id, lock=True)
        for name, value in body.model_dump(exclude_unset=True).items():
            if value is None and name not in ("photos",):
                continue
            setattr(provider, name, Decimal(str(value)) if name in ("lat", "lng") else value)
        await session.flush()
        view = provider_view(provider)
    await booking_cache.forget(resources.cache, catalogue=True)
    return view


async def list_own_providers(resources: Resources, user_id: int, role: str) -> dict[str, Any]:
    """The caller's providers (admins: every one)."""
    async with resources.db.session() as session:
        query = select(Provider).order_by(Provider.id)
        if role != "admin":
            query = query.where(Provider.owner_id == user_id)
        providers = (await session.execute(query.limit(500))).scalars().all()
        return {"items": [provider_view(p) for p in providers]}


async def create_staff(resources: Resources, user_id: int, role: str, provider_id: int,
                       body: StaffBody) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        await own_provider(session, user_id, role, provider_id)
        staff = Staff(provider_id=provider_id, name=body.name, title=body.title,
                      photo_media_id=body.photo_media_id, bio=body.bio)
        session.add(staff)
        await session.flush()
        await _set_services(session, staff, body.service_ids)
        view = staff_view(staff, sorted(set(body.service_ids)))
    await booking_cache.forget(resources.cache, catalogue=True)
    return view


async def update_staff(resources: Resources, user_id: int, role: str, staff_id: int,
                       body: StaffPatch) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        staff = await session.get(Staff, staff_id, with_for_update=True)
        if staff is None:
            raise NotFound("No such staff member")
        await own_provider(session, user_id, role, staff.provider_id)
        changes = body.model_dump(exclude_unset=True)
        service_ids = changes.pop("service_ids", None)
        for name, value in changes.items():
            if value is not None or name == "photo_media_id":
                setattr(staff, name, value)
        if service_ids is not None:
            await _set_services(session, staff, service_ids)
        await session.flush()
        view = staff_view(staff, (await staff_service_ids(session, [staff.id]))[staff.id])
        if not staff.active:
            view["upcoming_appointments"] = await _upcoming_of(session, staff.id)
    await booking_cache.forget(resources.cache, catalogue=True, resources=[f"s{staff_id}"])
    return view


async def _upcoming_of(session: AsyncSession, staff_id: int) -> list[int]:
    """The live future appointments an inactive staff member still has: kept, for the
    provider to move or cancel (also listed in the schedule's `conflicts`)."""
    return list((await session.execute(select(Appointment.id).where(
        Appointment.staff_id == staff_id,
        Appointment.status.in_(appointment_states.LIVE),
        Appointment.end_at > utcnow()).order_by(Appointment.start_at).limit(500))).scalars())


async def create_service(resources: Resources, user_id: int, role: str, provider_id: int,
                         body: ServiceBody) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        await own_provider(session, user_id, role, provider_id)
        fields = body.model_dump()
        if body.kind == "boarding":  # booked by nights against rooms, never by staff
            fields["uses_staff"] = False
        service = Service(provider_id=provider_id, **fields)
        _check_deposit(service)
        session.add(service)
        await session.flush()
        view = service_view(service)
    await booking_cache.forget(resources.cache, catalogue=True)
    return view


SERVICE_REFUSALS = {"deposit": "from 0 to the price (fen)"}


def _check_deposit(service: Service) -> None:
    """The database's CHECK (0 <= deposit <= price) as a field error."""
    if not 0 <= service.deposit <= service.price:
        raise DepositInvalid(errors=[field_error(
            "deposit", f"from 0 to the price, {service.price} fen")])


async def update_service(resources: Resources, user_id: int, role: str, service_id: int,
                         body: ServicePatch) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        service = await session.get(Service, service_id, with_for_update=True)
        if service is None:
            raise NotFound("No such service")
        await own_provider(session, user_id, role, service.provider_id)
        for name, value in body.model_dump(exclude_unset=True).items():
            if value is not None or name == "max_weight_kg":
                setattr(service, name, value)
        _check_deposit(service)
        if body.capacity is not None and service.kind == "boarding":
            # Nights already counted take the new room count, never below what they hold.
            await session.execute(update(BoardingNight).where(
                BoardingNight.service_id == service.id).values(capacity=case(
                    (BoardingNight.booked > body.capacity, BoardingNight.booked),
                    else_=body.capacity)))
        await session.flush()
        view = service_view(service)
    await booking_cache.forget(resources.cache, catalogue=True)
    return view


STAFF_REFUSALS = {"service_ids": "services of this provider"}
