"""The public catalogue reads: services by kind, pet type, distance from a point or rating
(GET /v1/services), a provider's page with its services, staff and next available day, and
its staff. The lists and pages are cached under the catalogue generation (every catalogue or
schedule write bumps it); the next available day comes from the slot cache, which moves with
every booking. Distance is haversine in Python, so it reads the same on SQLite (`make run`)
and MariaDB. docs/booking.md ("Catalogue").
"""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from models.booking import Provider, Service, Staff
from pawhome.booking import availability, booking_cache
from pawhome.booking.catalogue import (
    PetType,
    ServiceKind,
    provider_view,
    service_view,
    staff_service_ids,
    staff_view,
)
from pawhome.platform import codec
from pawhome.platform.errors import NotFound
from pawhome.platform.pagination import MAX_LIMIT, page_result
from pawhome.platform.resources import Resources

EARTH_RADIUS_KM = 6371.0
MAX_SCAN = 5000  # services considered by one list (a city's worth)


class ServicesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ServiceKind | None = None
    pet_type: PetType | None = None
    near: str | None = Field(None, description="lat,lng — sorts by distance from there",
                             pattern=r"^-?\d{1,3}(\.\d{1,8})?,-?\d{1,3}(\.\d{1,8})?$")
    sort: Literal["distance", "rating", "price"] | None = Field(
        None, description="default: distance with near, else rating")
    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(10, ge=1, le=MAX_LIMIT)

    @field_validator("near")
    @classmethod
    def _point(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            lat, lng = (float(x) for x in value.split(","))
        except ValueError:
            raise ValueError("near must be lat,lng") from None
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise ValueError("near is out of range")
        return f"{lat:.4f},{lng:.4f}"

    def point(self) -> tuple[float, float] | None:
        if self.near is None:
            return None
        lat, lng = (float(x) for x in self.near.split(","))
        return lat, lng


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + \
        math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


async def _cached(resources: Resources, canonical: str, build: Any) -> Any:
    cache = resources.cache
    key = booking_cache.catalogue_key(cache, canonical)
    generation, payload = await booking_cache.read(
        cache, booking_cache.catalogue_generation_key(cache), key)
    if payload is not None:
        return codec.loads(payload)
    value = await build()
    await booking_cache.fill(cache, key, generation, codec.dumps(value),
                             resources.settings.booking_catalogue_cache_seconds)
    return value


async def list_services(resources: Resources, query: ServicesQuery) -> dict[str, Any]:
    """Active services of active providers, filtered and sorted, one page."""
    async def build() -> dict[str, Any]:
        conditions: list[Any] = [Service.status == "active", Provider.status == "active"]
        if query.kind:
            conditions.append(Service.kind == query.kind)
        async with resources.db.session() as session:
            rows = (await session.execute(select(Service, Provider).join(
                Provider, Provider.id == Service.provider_id).where(*conditions)
                .order_by(Service.id).limit(MAX_SCAN))).all()
        point = query.point()
        items = []
        for service, provider in rows:
            if query.pet_type and service.pet_types and query.pet_type not in service.pet_types:
                continue
            distance = haversine_km(point, (float(provider.lat), float(provider.lng))) \
                if point else None
            items.append({**service_view(service), "provider": {
                "id": provider.id, "name": provider.name, "address": provider.address,
                "lat": float(provider.lat), "lng": float(provider.lng),
                "rating": provider_view(provider)["rating"]},
                "distance_km": round(distance, 3) if distance is not None else None})
        sort = query.sort or ("distance" if point else "rating")
        if sort == "distance" and point:
            items.sort(key=lambda i: (i["distance_km"], i["id"]))
        elif sort == "price":
            items.sort(key=lambda i: (i["price"], i["id"]))
        else:
            items.sort(key=lambda i: (-(i["provider"]["rating"]["average"] or 0),
                                      -i["provider"]["rating"]["count"], i["id"]))
        start = (query.page - 1) * query.limit
        return page_result(items[start:start + query.limit], len(items), query)  # type: ignore[arg-type]

    canonical = "services:" + codec.dumps(query.model_dump(mode="json")).decode()
    result: dict[str, Any] = await _cached(resources, canonical, build)
    return result


async def _provider_page(resources: Resources, provider_id: int) -> dict[str, Any] | None:
    async def build() -> dict[str, Any] | None:
        async with resources.db.session() as session:
            provider = await session.get(Provider, provider_id)
            if provider is None or provider.status != "active":
                return None
            services = (await session.execute(select(Service).where(
                Service.provider_id == provider_id, Service.status == "active")
                .order_by(Service.id))).scalars().all()
            staff = (await session.execute(select(Staff).where(
                Staff.provider_id == provider_id, Staff.active.is_(True))
                .order_by(Staff.id))).scalars().all()
            performs = await staff_service_ids(session, [s.id for s in staff])
            return {**provider_view(provider), "services": [service_view(s) for s in services],
                    "staff": [staff_view(s, performs[s.id]) for s in staff]}
    page: dict[str, Any] | None = await _cached(resources, f"provider:{int(provider_id)}", build)
    return page


async def provider_page(resources: Resources, provider_id: int) -> dict[str, Any]:
    """A provider with its services, staff and the next day with a free slot."""
    page = await _provider_page(resources, provider_id)
    if page is None:
        raise NotFound("No such provider")
    async with resources.db.session() as session:
        services = (await session.execute(select(Service).where(
            Service.provider_id == provider_id, Service.status == "active")
            .order_by(Service.id))).scalars().all()
        page["next_available_day"] = await availability.next_available_day(
            resources, session, list(services))
    return page


async def provider_staff(resources: Resources, provider_id: int) -> dict[str, Any]:
    page = await _provider_page(resources, provider_id)
    if page is None:
        raise NotFound("No such provider")
    return {"items": page["staff"]}


SERVICES_REFUSALS = {"near": "latitude within ±90, longitude within ±180"}
