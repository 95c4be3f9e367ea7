"""Delivery: each merchant's set-up (express fee rules, local delivery areas and time windows,
pick-up points), the shop page buyers see, and the quote checkout prices an order's delivery
with (docs/mall.md, "Shops, delivery, addresses and the cart").

The fee rules, in fen: express costs the base fee, waived when the goods amount reaches
`free_over` (>=, to the fen), plus the surcharge of the address's province, which free
shipping does not waive ("满99包邮, 偏远地区除外"); a province marked not deliverable gets
no express. Local delivery goes to the merchant's areas (a district, or only some of its
communities) at one fee, waived from its own `free_over`. Pick-up is free.

`options_for` and `quote` are building blocks of checkout (pawhome/mall/checkout.py): they
read, never write, and take the caller's session.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import FULFILMENTS, Address, DeliveryArea, Merchant, PickupPoint
from pawhome.mall import addresses
from pawhome.mall.addresses import Province
from pawhome.mall.addresses import address_snapshot as address_snapshot
from pawhome.mall.addresses import default_address as default_address
from pawhome.mall.addresses import get_address as get_address
from pawhome.mall.merchants import lock_shop, open_shop
from pawhome.platform import audit
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import NotFound, ValidationFailed, field_error
from pawhome.platform.fields import NOT_BLANK, distinct, no_null_default
from pawhome.platform.resources import Resources

MAX_FEE = 1_000_000  # fen (10,000 yuan): a delivery fee above this is a typo
MAX_AMOUNT = 10**10  # fen: a free-over threshold above this never applies anyway
MAX_AREAS = 100  # delivery areas per merchant
MAX_POINTS = 50  # pick-up points per merchant
MAX_WINDOWS = 12
WINDOW = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"
# Shop phones are landlines as often as mobiles: digits with optional dashes.
SHOP_PHONE = r"^([0-9][0-9-]{4,19})?$"

Fee = Annotated[int, Field(ge=0, le=MAX_FEE)]
Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
Window = Annotated[str, Field(pattern=WINDOW, description='"HH:MM-HH:MM", start before end')]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def ordered_windows(windows: list[str]) -> list[str]:
    """The windows sorted by start; ValueError when one ends before it starts or two
    overlap (touching is fine: 09:00-12:00 and 12:00-14:00)."""
    spans = sorted((_minutes(w[:5]), _minutes(w[6:]), w) for w in windows)
    previous_end, previous = -1, ""
    for start, end, window in spans:
        if start >= end:
            raise ValueError(f"{window}: the start must be before the end")
        if start < previous_end:
            raise ValueError(f"{window} overlaps {previous}")
        previous_end, previous = end, window
    return [window for _, _, window in spans]


# -- the set-up, as merchants send it -------------------------------------------------------------


class ExpressRegion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    province: Province
    deliverable: bool = Field(True, description="false: no express to this province")
    surcharge: Fee = Field(0, description="fen, added to the fee (free shipping does not "
                                          "waive it)")


class ExpressSetup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool
    base_fee: Fee = 0
    free_over: Amount | None = Field(None, description="goods amount (fen) from which the "
                                                       "base fee is waived; null: never")
    regions: list[ExpressRegion] = Field(default_factory=list, max_length=len(
        addresses.PROVINCES), description="per-province rules (each province once)")

    @field_validator("regions")
    @classmethod
    def _each_province_once(cls, regions: list[ExpressRegion]) -> list[ExpressRegion]:
        seen: set[str] = set()
        for region in regions:
            if region.province in seen:
                raise ValueError(f"{region.province} is listed twice")
            seen.add(region.province)
        return regions


class LocalSetup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool
    fee: Fee = 0
    free_over: Amount | None = None
    windows: list[Window] = Field(default_factory=list, max_length=MAX_WINDOWS,
                                  description="delivery time windows a buyer picks from; "
                                              "none: no choice of time")

    @field_validator("windows")
    @classmethod
    def _windows_apart(cls, windows: list[str]) -> list[str]:
        return ordered_windows(windows)


class PickupSetup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class DeliverySetup(BaseModel):
    """A section sent replaces that section; a section left out stays as it is."""
    model_config = ConfigDict(extra="forbid")
    express: ExpressSetup = Field(None,  # type: ignore[assignment]
                                  json_schema_extra=no_null_default)
    local: LocalSetup = Field(None,  # type: ignore[assignment]
                              json_schema_extra=no_null_default)
    pickup: PickupSetup = Field(None,  # type: ignore[assignment]
                                json_schema_extra=no_null_default)


SETUP_RULES = {"express": "regions name each province once",
               "local": "windows start before they end and do not overlap"}


Community = Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]
COMMUNITIES = "the communities (小区) served; empty: the whole district"


def _distinct_not_null(schema: dict[str, Any]) -> None:
    no_null_default(schema)
    schema.update(distinct(COMMUNITIES))


class AreaFields(BaseModel):
    """A local delivery area: a district, or only the communities listed in it."""
    model_config = ConfigDict(extra="forbid")
    name: str = Field(None, min_length=1, max_length=64,  # type: ignore[assignment]
                      pattern=NOT_BLANK, json_schema_extra=no_null_default)
    province: Province = Field(None,  # type: ignore[arg-type]
                               json_schema_extra=no_null_default)
    city: str = Field(None, min_length=1, max_length=32,  # type: ignore[assignment]
                      pattern=NOT_BLANK, json_schema_extra=no_null_default)
    district: str = Field(None, min_length=1, max_length=32,  # type: ignore[assignment]
                          pattern=NOT_BLANK, json_schema_extra=no_null_default)
    communities: list[Community] = Field(None, max_length=200,  # type: ignore[arg-type]
                                         json_schema_extra=_distinct_not_null)
    enabled: bool = Field(None, json_schema_extra=no_null_default)  # type: ignore[assignment]

    @field_validator("name", "city", "district")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("communities")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        stripped = [value.strip() for value in values]
        if len(set(stripped)) != len(stripped):
            raise ValueError("communities must not repeat")
        return stripped


class AreaCreate(AreaFields):
    name: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    province: Province
    city: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    district: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    communities: list[Community] = Field(default_factory=list, max_length=200,
                                         json_schema_extra=distinct(COMMUNITIES))
    enabled: bool = True


class PointFields(BaseModel):
    """A pick-up point: where buyers collect their orders, and when."""
    model_config = ConfigDict(extra="forbid")
    name: str = Field(None, min_length=1, max_length=64,  # type: ignore[assignment]
                      pattern=NOT_BLANK, json_schema_extra=no_null_default)
    province: Province = Field(None,  # type: ignore[arg-type]
                               json_schema_extra=no_null_default)
    city: str = Field(None, min_length=1, max_length=32,  # type: ignore[assignment]
                      pattern=NOT_BLANK, json_schema_extra=no_null_default)
    district: str = Field(None, min_length=1, max_length=32,  # type: ignore[assignment]
                          pattern=NOT_BLANK, json_schema_extra=no_null_default)
    detail: str = Field(None, min_length=1, max_length=128,  # type: ignore[assignment]
                        pattern=NOT_BLANK, json_schema_extra=no_null_default)
    phone: str = Field(None, max_length=20, pattern=SHOP_PHONE,  # type: ignore[assignment]
                       json_schema_extra=no_null_default)
    hours: str = Field(None, max_length=64,  # type: ignore[assignment]
                       description='opening hours as shown, e.g. "09:00-21:00"',
                       json_schema_extra=no_null_default)
    enabled: bool = Field(None, json_schema_extra=no_null_default)  # type: ignore[assignment]

    @field_validator("name", "city", "district", "detail", "hours")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class PointCreate(PointFields):
    name: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    province: Province
    city: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    district: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    detail: str = Field(min_length=1, max_length=128, pattern=NOT_BLANK)
    phone: str = Field("", max_length=20, pattern=SHOP_PHONE)
    hours: str = Field("", max_length=64, description='opening hours, e.g. "09:00-21:00"')
    enabled: bool = True


COUNT_RULE = {"body": f"at most {MAX_AREAS} delivery areas / {MAX_POINTS} pick-up points "
                      "per shop"}


# -- views ----------------------------------------------------------------------------------------


class RegionView(BaseModel):
    province: str
    deliverable: bool
    surcharge: int


class AreaView(BaseModel):
    id: int
    name: str
    province: str
    city: str
    district: str
    communities: list[str]
    enabled: bool


class PointView(BaseModel):
    id: int
    name: str
    province: str
    city: str
    district: str
    detail: str
    full_address: str
    phone: str
    hours: str
    enabled: bool


class ExpressView(BaseModel):
    enabled: bool
    base_fee: int
    free_over: int | None
    regions: list[RegionView]


class LocalView(BaseModel):
    enabled: bool
    fee: int
    free_over: int | None
    windows: list[str]
    areas: list[AreaView]


class PickupView(BaseModel):
    enabled: bool
    points: list[PointView]


class SetupView(BaseModel):
    express: ExpressView
    local: LocalView
    pickup: PickupView


class AreaList(BaseModel):
    items: list[AreaView]


class PointList(BaseModel):
    items: list[PointView]


class Deleted(BaseModel):
    id: int
    deleted: bool


class OptionView(BaseModel):
    fulfilment: str = Field(description="express | local | pickup")
    available: bool
    fee: int = Field(description="fen, for this goods amount")
    reason: str = Field(description="why it is not available")
    windows: list[str]
    pickup_points: list[PointView]


class OptionsView(BaseModel):
    merchant_id: int
    address_id: int | None
    goods_amount: int
    options: list[OptionView]


class ShopPage(BaseModel):
    id: int
    name: str
    logo_url: str
    intro: str
    fulfilments: list[str] = Field(description="what the shop offers: express, local, pickup")
    express: ExpressView | None
    local: LocalView | None
    pickup_points: list[PointView]


def area_view(area: DeliveryArea) -> dict[str, Any]:
    return {"id": area.id, "name": area.name, "province": area.province, "city": area.city,
            "district": area.district, "communities": list(area.communities or []),
            "enabled": area.enabled}


def point_view(point: PickupPoint) -> dict[str, Any]:
    return {"id": point.id, "name": point.name, "province": point.province,
            "city": point.city, "district": point.district, "detail": point.detail,
            "full_address": point.province + point.city + point.district + point.detail,
            "phone": point.phone, "hours": point.hours, "enabled": point.enabled}


def pickup_snapshot(point: PickupPoint) -> dict[str, Any]:
    """What an order stores for pick-up (the point may change or go later)."""
    view = point_view(point)
    del view["id"], view["enabled"]
    return {"pickup_point_id": point.id, **view}


def _regions_view(merchant: Merchant) -> list[dict[str, Any]]:
    return [{"province": r["province"], "deliverable": r.get("surcharge") is not None,
             "surcharge": int(r.get("surcharge") or 0)}
            for r in merchant.express_regions or []]


def _express_view(merchant: Merchant) -> dict[str, Any]:
    return {"enabled": merchant.express_enabled, "base_fee": merchant.express_base_fee,
            "free_over": merchant.express_free_over, "regions": _regions_view(merchant)}


def _local_view(merchant: Merchant, areas: list[DeliveryArea]) -> dict[str, Any]:
    return {"enabled": merchant.local_enabled, "fee": merchant.local_fee,
            "free_over": merchant.local_free_over,
            "windows": list(merchant.local_windows or []),
            "areas": [area_view(a) for a in areas]}


async def _areas(session: AsyncSession, merchant_id: int,
                 enabled_only: bool = False) -> list[DeliveryArea]:
    query = select(DeliveryArea).where(DeliveryArea.merchant_id == merchant_id)
    if enabled_only:
        query = query.where(DeliveryArea.enabled.is_(True))
    return list((await session.execute(query.order_by(DeliveryArea.id))).scalars())


async def _points(session: AsyncSession, merchant_id: int,
                  enabled_only: bool = False) -> list[PickupPoint]:
    query = select(PickupPoint).where(PickupPoint.merchant_id == merchant_id)
    if enabled_only:
        query = query.where(PickupPoint.enabled.is_(True))
    return list((await session.execute(query.order_by(PickupPoint.id))).scalars())


async def _setup_view(session: AsyncSession, merchant: Merchant) -> dict[str, Any]:
    return {"express": _express_view(merchant),
            "local": _local_view(merchant, await _areas(session, merchant.user_id)),
            "pickup": {"enabled": merchant.pickup_enabled,
                       "points": [point_view(p) for p in
                                  await _points(session, merchant.user_id)]}}


def _setup_summary(merchant: Merchant) -> dict[str, Any]:
    """The audit log's before/after of a set-up change."""
    return {"express_enabled": merchant.express_enabled,
            "express_base_fee": merchant.express_base_fee,
            "express_free_over": merchant.express_free_over,
            "express_regions": list(merchant.express_regions or []),
            "local_enabled": merchant.local_enabled, "local_fee": merchant.local_fee,
            "local_free_over": merchant.local_free_over,
            "local_windows": list(merchant.local_windows or []),
            "pickup_enabled": merchant.pickup_enabled}


def _audit(session: AsyncSession, merchant_id: int, action: str, target_type: str,
           target_id: int, before: dict[str, Any] | None,
           after: dict[str, Any] | None) -> None:
    audit.record(session, actor_id=merchant_id, actor_role="merchant", action=action,
                 target_type=target_type, target_id=target_id, before=before, after=after)


# -- the merchant's set-up (REST-facing units of work) -------------------------------------------


async def get_setup(resources: Resources, merchant_id: int) -> dict[str, Any]:
    """The merchant's whole delivery set-up: express, local (with its areas), pick-up (with
    its points)."""
    async def work(session: AsyncSession) -> dict[str, Any]:
        return await _setup_view(session, await lock_shop(session, merchant_id))

    return await run_transaction(resources.db, work)


async def put_setup(resources: Resources, merchant_id: int,
                    body: DeliverySetup) -> dict[str, Any]:
    """Replace the sections sent (audited); returns the whole set-up."""
    async def work(session: AsyncSession) -> dict[str, Any]:
        merchant = await lock_shop(session, merchant_id)
        before = _setup_summary(merchant)
        if body.express is not None:
            express = body.express
            merchant.express_enabled = express.enabled
            merchant.express_base_fee = express.base_fee
            merchant.express_free_over = express.free_over
            merchant.express_regions = [
                {"province": r.province, "surcharge": r.surcharge if r.deliverable else None}
                for r in express.regions]
        if body.local is not None:
            local = body.local
            merchant.local_enabled, merchant.local_fee = local.enabled, local.fee
            merchant.local_free_over, merchant.local_windows = local.free_over, local.windows
        if body.pickup is not None:
            merchant.pickup_enabled = body.pickup.enabled
        after = _setup_summary(merchant)
        if after != before:
            _audit(session, merchant_id, "merchant.delivery_update", "merchant", merchant_id,
                   {k: v for k, v in before.items() if after[k] != v},
                   {k: v for k, v in after.items() if before[k] != v})
        await session.flush()
        return await _setup_view(session, merchant)

    return await run_transaction(resources.db, work)


async def _own_area(session: AsyncSession, merchant_id: int, area_id: int) -> DeliveryArea:
    area = await session.get(DeliveryArea, area_id)
    if area is None or area.merchant_id != merchant_id:
        raise NotFound("Delivery area not found")
    return area


async def _own_point(session: AsyncSession, merchant_id: int, point_id: int) -> PickupPoint:
    point = await session.get(PickupPoint, point_id)
    if point is None or point.merchant_id != merchant_id:
        raise NotFound("Pick-up point not found")
    return point


async def _count(session: AsyncSession, model: type[DeliveryArea] | type[PickupPoint],
                 merchant_id: int) -> int:
    return int((await session.execute(select(func.count()).select_from(model).where(
        model.merchant_id == merchant_id))).scalar_one())


async def list_areas(resources: Resources, merchant_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        return {"items": [area_view(a) for a in await _areas(session, merchant_id)]}


async def create_area(resources: Resources, merchant_id: int,
                      body: AreaCreate) -> dict[str, Any]:
    async def work(session: AsyncSession) -> dict[str, Any]:
        await lock_shop(session, merchant_id)
        if await _count(session, DeliveryArea, merchant_id) >= MAX_AREAS:
            raise ValidationFailed(errors=[field_error(
                "body", f"at most {MAX_AREAS} delivery areas per shop")])
        area = DeliveryArea(merchant_id=merchant_id, **body.model_dump())
        session.add(area)
        await session.flush()
        view = area_view(area)
        _audit(session, merchant_id, "merchant.delivery_area_create", "delivery_area",
               area.id, None, view)
        return view

    return await run_transaction(resources.db, work)


async def update_area(resources: Resources, merchant_id: int, area_id: int,
                      body: AreaFields) -> dict[str, Any]:
    changes = _changes(body)

    async def work(session: AsyncSession) -> dict[str, Any]:
        await lock_shop(session, merchant_id)
        area = await _own_area(session, merchant_id, area_id)
        before = area_view(area)
        for name, value in changes.items():
            setattr(area, name, value)
        await session.flush()
        after = area_view(area)
        if after != before:
            _audit(session, merchant_id, "merchant.delivery_area_update", "delivery_area",
                   area_id, before, after)
        return after

    return await run_transaction(resources.db, work)


async def delete_area(resources: Resources, merchant_id: int, area_id: int) -> dict[str, Any]:
    async def work(session: AsyncSession) -> dict[str, Any]:
        await lock_shop(session, merchant_id)
        area = await _own_area(session, merchant_id, area_id)
        before = area_view(area)
        await session.execute(delete(DeliveryArea).where(DeliveryArea.id == area_id))
        _audit(session, merchant_id, "merchant.delivery_area_delete", "delivery_area",
               area_id, before, None)
        return {"id": area_id, "deleted": True}

    return await run_transaction(resources.db, work)


async def list_points(resources: Resources, merchant_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        return {"items": [point_view(p) for p in await _points(session, merchant_id)]}


async def create_point(resources: Resources, merchant_id: int,
                       body: PointCreate) -> dict[str, Any]:
    async def work(session: AsyncSession) -> dict[str, Any]:
        await lock_shop(session, merchant_id)
        if await _count(session, PickupPoint, merchant_id) >= MAX_POINTS:
            raise ValidationFailed(errors=[field_error(
                "body", f"at most {MAX_POINTS} pick-up points per shop")])
        point = PickupPoint(merchant_id=merchant_id, **body.model_dump())
        session.add(point)
        await session.flush()
        view = point_view(point)
        _audit(session, merchant_id, "merchant.pickup_point_create", "pickup_point",
               point.id, None, view)
        return view

    return await run_transaction(resources.db, work)


async def update_point(resources: Resources, merchant_id: int, point_id: int,
                       body: PointFields) -> dict[str, Any]:
    changes = _changes(body)

    async def work(session: AsyncSession) -> dict[str, Any]:
        await lock_shop(session, merchant_id)
        point = await _own_point(session, merchant_id, point_id)
        before = point_view(point)
        for name, value in changes.items():
            setattr(point, name, value)
        await session.flush()
        after = point_view(point)
        if after != before:
            _audit(session, merchant_id, "merchant.pickup_point_update", "pickup_point",
                   point_id, before, after)
        return after

    return await run_transaction(resources.db, work)


async def delete_point(resources: Resources, merchant_id: int,
                       point_id: int) -> dict[str, Any]:
    """Orders keep their own copy of the point, so deleting it is safe at any time."""
    async def work(session: AsyncSession) -> dict[str, Any]:
        await lock_shop(session, merchant_id)
        point = await _own_point(session, merchant_id, point_id)
        before = point_view(point)
        await session.execute(delete(PickupPoint).where(PickupPoint.id == point_id))
        _audit(session, merchant_id, "merchant.pickup_point_delete", "pickup_point",
               point_id, before, None)
        return {"id": point_id, "deleted": True}

    return await run_transaction(resources.db, work)


def _changes(body: BaseModel) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:  # the schema has no null; a model default never reaches here
            raise ValidationFailed(errors=[field_error(name, "must not be null")])
    return changes


# -- what buyers see -------------------------------------------------------------------------------


async def shop_page(resources: Resources, merchant_id: int) -> dict[str, Any]:
    """A shop as buyers see it: profile, what it offers (express, local, pickup) with the
    fee rules, and its open pick-up points. A suspended or unknown shop is NotFound."""
    async with resources.db.session() as session:
        merchant = await open_shop(session, merchant_id)
        areas = await _areas(session, merchant_id, enabled_only=True)
        points = await _points(session, merchant_id, enabled_only=True)
    local_offered = merchant.local_enabled and bool(areas)
    pickup_offered = merchant.pickup_enabled and bool(points)
    fulfilments = [name for name, offered in (("express", merchant.express_enabled),
                                              ("local", local_offered),
                                              ("pickup", pickup_offered)) if offered]
    return {"id": merchant.user_id, "name": merchant.name, "logo_url": merchant.logo_url,
            "intro": merchant.intro, "fulfilments": fulfilments,
            "express": _express_view(merchant) if merchant.express_enabled else None,
            "local": _local_view(merchant, areas) if local_offered else None,
            "pickup_points": [point_view(p) for p in points] if pickup_offered else []}


# -- checkout's building blocks (Caller commits) -------------------------------------------------


@dataclass(frozen=True)
class DeliveryOption:
    """What checkout offers for one merchant and one address."""
    fulfilment: str  # "express" | "local" | "pickup"
    available: bool
    fee: int  # fen, for this goods amount
    reason: str  # why not available ("not deliverable to 西藏自治区", ...); "" when it is
    windows: list[str] = field(default_factory=list)  # local delivery time windows
    pickup_points: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DeliveryQuote:
    """The delivery an order is placed with: what it costs and where it goes."""
    fulfilment: str
    fee: int
    address: dict[str, Any] | None  # address_snapshot (express, local)
    pickup_point: dict[str, Any] | None  # pickup_snapshot (pickup)
    window: str  # "" when there is no window to pick


def _reached(goods_amount: int, free_over: int | None) -> bool:
    return free_over is not None and goods_amount >= free_over


def _express(merchant: Merchant, address: Address | None, goods_amount: int) -> DeliveryOption:
    base = 0 if _reached(goods_amount, merchant.express_free_over) else \
        merchant.express_base_fee
    if address is None:
        return DeliveryOption("express", False, base, "choose a delivery address")
    region = next((r for r in merchant.express_regions or []
                   if r.get("province") == address.province), None)
    if region is not None and region.get("surcharge") is None:
        return DeliveryOption("express", False, base,
                              f"not deliverable to {address.province}")
    surcharge = int(region["surcharge"]) if region is not None else 0
    return DeliveryOption("express", True, base + surcharge, "")


def _area_problem(areas: list[DeliveryArea], address: Address) -> str:
    """"" when an area covers the address, else why not."""
    same_district = [a for a in areas if (a.province, a.city.strip(), a.district.strip()) ==
                     (address.province, address.city.strip(), address.district.strip())]
    if not same_district:
        return "outside the delivery area"
    for area in same_district:
        if not area.communities or address.community.strip() in area.communities:
            return ""
    if not address.community.strip():
        return f"this shop delivers only to some communities of {address.district}: " \
               "add your community to the address"
    return f"outside the delivery area: {address.community} is not among the " \
           f"communities served in {address.district}"


def _local(merchant: Merchant, areas: list[DeliveryArea], address: Address | None,
           goods_amount: int) -> DeliveryOption:
    fee = 0 if _reached(goods_amount, merchant.local_free_over) else merchant.local_fee
    windows = list(merchant.local_windows or [])
    if not areas:
        return DeliveryOption("local", False, fee, "no delivery area is open", windows)
    if address is None:
        return DeliveryOption("local", False, fee, "choose a delivery address", windows)
    problem = _area_problem(areas, address)
    return DeliveryOption("local", not problem, fee, problem, windows)


def _pickup(points: list[PickupPoint]) -> DeliveryOption:
    if not points:
        return DeliveryOption("pickup", False, 0, "no pick-up point is open")
    return DeliveryOption("pickup", True, 0, "", [], [point_view(p) for p in points])


async def options_for(session: AsyncSession, merchant_id: int, address: Address | None,
                      goods_amount: int) -> list[DeliveryOption]:
    """The fulfilment modes the merchant has switched on, in the order express, local,
    pickup, each with whether it serves this address and its fee for this goods amount.
    An unknown or suspended shop offers nothing. Caller commits."""
    merchant = await session.get(Merchant, merchant_id)
    if merchant is None or merchant.status != "active":
        return []
    options = []
    if merchant.express_enabled:
        options.append(_express(merchant, address, goods_amount))
    if merchant.local_enabled:
        options.append(_local(merchant, await _areas(session, merchant_id, enabled_only=True),
                              address, goods_amount))
    if merchant.pickup_enabled:
        options.append(_pickup(await _points(session, merchant_id, enabled_only=True)))
    return options


def _refuse(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[field_error(name, message)])


async def quote(session: AsyncSession, merchant_id: int, *, fulfilment: str,
                address: Address | None, pickup_point_id: int | None, window: str | None,
                goods_amount: int, offered: list[DeliveryOption] | None = None
                ) -> DeliveryQuote:
    """The delivery of one merchant's order as asked, priced; ValidationFailed naming the
    field at fault (fulfilment, address_id, pickup_point_id or delivery_window) with the
    reason when the merchant cannot deliver it so. `offered`: what options_for returned
    for the same merchant, address and amount in this transaction (not read again).
    Caller commits."""
    if fulfilment not in FULFILMENTS:
        raise _refuse("fulfilment", f"unknown fulfilment {fulfilment!r}")
    if offered is None:
        offered = await options_for(session, merchant_id, address, goods_amount)
    options = {o.fulfilment: o for o in offered}
    option = options.get(fulfilment)
    if option is None:
        names = {"express": "express delivery", "local": "local delivery",
                 "pickup": "pick-up"}
        raise _refuse("fulfilment", f"this shop does not offer {names[fulfilment]}")
    if fulfilment == "pickup":
        if pickup_point_id is None:
            raise _refuse("pickup_point_id", "choose a pick-up point")
        point = await session.get(PickupPoint, pickup_point_id)
        if point is None or point.merchant_id != merchant_id:
            raise _refuse("pickup_point_id", "not a pick-up point of this shop")
        if not point.enabled:
            raise _refuse("pickup_point_id", "this pick-up point is closed")
        return DeliveryQuote("pickup", 0, None, pickup_snapshot(point), "")
    if address is None:
        raise _refuse("address_id", "choose a delivery address")
    if not option.available:
        raise _refuse("address_id" if option.reason != "no delivery area is open"
                      else "fulfilment", option.reason)
    chosen = ""
    if fulfilment == "local":
        if option.windows:
            if not window:
                raise _refuse("delivery_window", "choose a delivery time: "
                              + ", ".join(option.windows))
            if window not in option.windows:
                raise _refuse("delivery_window", f"{window} is not one of this shop's "
                              "delivery times: " + ", ".join(option.windows))
            chosen = window
        elif window:
            raise _refuse("delivery_window", "this shop takes no delivery time")
    elif window:
        raise _refuse("delivery_window", "a delivery time is for local delivery only")
    return DeliveryQuote(fulfilment, option.fee, address_snapshot(address), None, chosen)


async def delivery_options(resources: Resources, user_id: int, merchant_id: int,
                           address_id: int | None, goods_amount: int) -> dict[str, Any]:
    """What checkout would offer the user for this shop: for the address given, else their
    default address (none: express and local say so)."""
    async with resources.db.session() as session:
        await open_shop(session, merchant_id)
        address = await get_address(session, user_id, address_id) \
            if address_id is not None else await default_address(session, user_id)
        options = await options_for(session, merchant_id, address, goods_amount)
    return {"merchant_id": merchant_id, "address_id": address.id if address else None,
            "goods_amount": goods_amount,
            "options": [{"fulfilment": o.fulfilment, "available": o.available, "fee": o.fee,
                         "reason": o.reason, "windows": o.windows,
                         "pickup_points": o.pickup_points} for o in options]}


# -- demo data (pawhome/demo.py) -------------------------------------------------------------------

DEMO_POINTS = [
    {"name": "文三路门店", "province": "浙江省", "city": "杭州市", "district": "西湖区",
     "detail": "文三路 100 号", "phone": "0571-88886666", "hours": "09:00-21:00"},
    {"name": "滨江自提点", "province": "浙江省", "city": "杭州市", "district": "滨江区",
     "detail": "江南大道 588 号", "phone": "0571-86668888", "hours": "10:00-20:00"},
]


async def seed_demo_shop(session: AsyncSession, merchant_id: int) -> int:
    """Give a demo shop every fulfilment mode (express with a free-over and a remote-region
    rule, local delivery in two Hangzhou districts, two pick-up points), unless it has
    pick-up points already (then it was set up before). Returns the rows created. Caller
    commits."""
    merchant = await lock_shop(session, merchant_id)
    if await _count(session, PickupPoint, merchant_id):
        return 0
    merchant.express_enabled, merchant.express_base_fee = True, 800
    merchant.express_free_over = 9900
    merchant.express_regions = [{"province": "新疆维吾尔自治区", "surcharge": 1500},
                                {"province": "西藏自治区", "surcharge": None}]
    merchant.local_enabled, merchant.local_fee, merchant.local_free_over = True, 500, 5000
    merchant.local_windows = ["09:00-12:00", "14:00-18:00", "18:00-21:00"]
    merchant.pickup_enabled = True
    session.add_all([
        DeliveryArea(merchant_id=merchant_id, name="西湖区", province="浙江省", city="杭州市",
                     district="西湖区", communities=[]),
        DeliveryArea(merchant_id=merchant_id, name="滨江区两个小区", province="浙江省",
                     city="杭州市", district="滨江区", communities=["星耀城", "江南岸"])])
    session.add_all([PickupPoint(merchant_id=merchant_id, **point) for point in DEMO_POINTS])
    await session.flush()
    return 1 + len(DEMO_POINTS) + 2
