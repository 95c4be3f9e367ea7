"""Delivery addresses: the one module that writes `addresses` (docs/mall.md, "Shops,
delivery, addresses and the cart").

A user has at most ADDRESS_MAX_PER_USER live addresses and, as soon as they have one,
exactly one default. Every write that can move the default first locks the user's row
(pawhome/mall/locks.py), so concurrent creates, switches and deletes of one user queue
behind each other and each sees the others' commits: two first addresses can never both
become the default, and the 21st can never slip in beside the 20th. Deleting is soft
(orders keep their own snapshot anyway). The contact phone never reaches a log unmasked.
"""
from __future__ import annotations

import logging
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Address
from pawhome.mall.locks import lock_user
from pawhome.platform.errors import NotFound, ValidationFailed, field_error
from pawhome.platform.fields import NOT_BLANK, no_null_default
from pawhome.platform.logs import mask_phone
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.mall.addresses")

# China's provincial-level divisions, as the mini-program's region picker and
# wx.chooseAddress name them. Express fee rules are set per province, so a province is one of
# these names exactly (a typo would otherwise silently miss its surcharge).
Province = Literal[
    "北京市", "天津市", "河北省", "山西省", "内蒙古自治区", "辽宁省", "吉林省", "黑龙江省",
    "上海市", "江苏省", "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省",
    "湖南省", "广东省", "广西壮族自治区", "海南省", "重庆市", "四川省", "贵州省", "云南省",
    "西藏自治区", "陕西省", "甘肃省", "青海省", "宁夏回族自治区", "新疆维吾尔自治区",
    "台湾省", "香港特别行政区", "澳门特别行政区"]
PROVINCES: tuple[str, ...] = get_args(Province)
# A mainland mobile number. [0-9], not \d: pydantic's regexes take any Unicode digit for \d.
MOBILE = r"^1[3-9][0-9]{9}$"
ADDRESS_LIMIT_RULE = "at most ADDRESS_MAX_PER_USER (20) live addresses per user"


def _stripped(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class AddressFields(BaseModel):
    """An address's fields; in an update every field is optional and only those sent change
    (none may be null; an empty community or tag clears it)."""
    model_config = ConfigDict(extra="forbid")

    contact_name: str = Field(None, min_length=1, max_length=32,  # type: ignore[assignment]
                              pattern=NOT_BLANK, json_schema_extra=no_null_default)
    phone: str = Field(None, pattern=MOBILE,  # type: ignore[assignment]
                       description="mainland mobile number, 11 digits",
                       json_schema_extra=no_null_default)
    province: Province = Field(None,  # type: ignore[arg-type]
                               json_schema_extra=no_null_default)
    city: str = Field(None, min_length=1, max_length=32,  # type: ignore[assignment]
                      pattern=NOT_BLANK, json_schema_extra=no_null_default)
    district: str = Field(None, min_length=1, max_length=32,  # type: ignore[assignment]
                          pattern=NOT_BLANK, json_schema_extra=no_null_default)
    community: str = Field(None, max_length=64,  # type: ignore[assignment]
                           description="residential community (小区); local delivery areas "
                                       "may be narrowed to communities",
                           json_schema_extra=no_null_default)
    detail: str = Field(None, min_length=1, max_length=128,  # type: ignore[assignment]
                        pattern=NOT_BLANK, description="building, unit, room",
                        json_schema_extra=no_null_default)
    tag: str = Field(None, max_length=16,  # type: ignore[assignment]
                     description="家, 公司, ...", json_schema_extra=no_null_default)

    # After the length checks, so the limits are the document's (on what was sent).
    _strip = field_validator("contact_name", "city", "district", "community", "detail",
                             "tag")(_stripped)


class AddressCreate(AddressFields):
    contact_name: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    phone: str = Field(pattern=MOBILE, description="mainland mobile number, 11 digits")
    province: Province
    city: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    district: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    community: str = Field("", max_length=64)
    detail: str = Field(min_length=1, max_length=128, pattern=NOT_BLANK)
    tag: str = Field("", max_length=16)
    is_default: bool = Field(False, description="make it the default (a first address is "
                                                "the default anyway)")


class AddressView(BaseModel):
    """An address as its owner sees it (the phone in full: it is theirs)."""
    id: int
    contact_name: str
    phone: str
    province: str
    city: str
    district: str
    community: str
    detail: str
    tag: str
    is_default: bool
    full_address: str
    created_at: str
    updated_at: str


class AddressList(BaseModel):
    items: list[AddressView]
    max: int = Field(description="how many live addresses a user may have")


class AddressDeleted(BaseModel):
    id: int
    deleted: bool
    default_id: int | None = Field(description="the default address now (None: none left)")


def full_address(address: Address) -> str:
    """The address on one line, as a courier's label reads it."""
    return "".join(part for part in (address.province, address.city, address.district,
                                     address.community, address.detail) if part)


def address_view(address: Address) -> dict[str, Any]:
    return {"id": address.id, "contact_name": address.contact_name, "phone": address.phone,
            "province": address.province, "city": address.city,
            "district": address.district, "community": address.community,
            "detail": address.detail, "tag": address.tag, "is_default": address.is_default,
            "full_address": full_address(address),
            "created_at": address.created_at.isoformat(),
            "updated_at": address.updated_at.isoformat()}


def address_snapshot(address: Address) -> dict[str, Any]:
    """What an order stores: the address as it was at checkout (later edits or a delete of
    the address leave the order's copy alone)."""
    return {"address_id": address.id, "contact_name": address.contact_name,
            "phone": address.phone, "province": address.province, "city": address.city,
            "district": address.district, "community": address.community,
            "detail": address.detail, "full_address": full_address(address)}


# -- reads other mall modules build on (Caller commits) -----------------------------------------


async def get_address(session: AsyncSession, user_id: int, address_id: int) -> Address:
    """The user's live address; another user's, a deleted or a missing one is NotFound
    (naming address_id, so a checkout body's reference reads as such). Caller commits."""
    address = await session.get(Address, address_id)
    if address is None or address.user_id != user_id or address.deleted_at is not None:
        raise NotFound("Address not found", errors=[field_error("address_id",
                                                                "no such address")])
    return address


async def default_address(session: AsyncSession, user_id: int) -> Address | None:
    """The user's default address, None if they have none. Caller commits."""
    return (await session.execute(select(Address).where(
        Address.user_id == user_id, Address.deleted_at.is_(None),
        Address.is_default.is_(True)).order_by(Address.id.desc()).limit(1))).scalars().first()


async def _live(session: AsyncSession, user_id: int) -> list[Address]:
    """The user's live addresses, the default first, then the newest."""
    return list((await session.execute(select(Address).where(
        Address.user_id == user_id, Address.deleted_at.is_(None))
        .order_by(Address.is_default.desc(), Address.id.desc()))).scalars())


async def _clear_default(session: AsyncSession, user_id: int) -> None:
    await session.execute(update(Address).where(
        Address.user_id == user_id, Address.is_default.is_(True))
        .values(is_default=False).execution_options(synchronize_session=False))


async def _own(session: AsyncSession, user_id: int, address_id: int) -> Address:
    address = await session.get(Address, address_id, populate_existing=True)
    if address is None or address.user_id != user_id or address.deleted_at is not None:
        raise NotFound("Address not found")
    return address


# -- REST-facing units of work ------------------------------------------------------------------


async def list_addresses(resources: Resources, user_id: int) -> dict[str, Any]:
    """{"items", "max"}: the user's live addresses, the default first, then the newest."""
    async with resources.db.session() as session:
        return {"items": [address_view(a) for a in await _live(session, user_id)],
                "max": resources.settings.address_max_per_user}


async def get_own_address(resources: Resources, user_id: int,
                          address_id: int) -> dict[str, Any]:
    async with resources.db.session() as session:
        return address_view(await _own(session, user_id, address_id))


async def create_address(resources: Resources, user_id: int,
                         body: AddressCreate) -> dict[str, Any]:
    """A new address; the default when asked, or when it is the user's first. Refused (422)
    beyond ADDRESS_MAX_PER_USER live ones."""
    limit = resources.settings.address_max_per_user
    async with resources.db.session(read_committed=True) as session, session.begin():
        await lock_user(session, user_id)
        live = await _live(session, user_id)
        if len(live) >= limit:
            raise ValidationFailed(f"At most {limit} addresses per user", errors=[
                field_error("body", f"you already have {limit} addresses: delete one first")])
        make_default = body.is_default or not any(a.is_default for a in live)
        if make_default:
            await _clear_default(session, user_id)
        address = Address(user_id=user_id, contact_name=body.contact_name, phone=body.phone,
                          province=body.province, city=body.city, district=body.district,
                          community=body.community, detail=body.detail, tag=body.tag,
                          is_default=make_default)
        session.add(address)
        await session.flush()
        view = address_view(address)
    log.info("address %s added by user %s (contact phone %s)", view["id"], user_id,
             mask_phone(body.phone))
    return view


async def update_address(resources: Resources, user_id: int, address_id: int,
                         body: AddressFields) -> dict[str, Any]:
    """Change the fields sent. Which address is the default is not changed here (POST
    .../default), so no lock is needed."""
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:  # the schema has no null; a model default never reaches here
            raise ValidationFailed(errors=[field_error(name, "must not be null")])
    async with resources.db.session() as session, session.begin():
        address = await _own(session, user_id, address_id)
        for name, value in changes.items():
            setattr(address, name, value)
        address.updated_at = utcnow()
        await session.flush()
        view = address_view(address)
    if "phone" in changes:
        log.info("address %s changed by user %s (contact phone %s)", address_id, user_id,
                 mask_phone(str(changes["phone"])))
    return view


async def make_default(resources: Resources, user_id: int, address_id: int) -> dict[str, Any]:
    """Make one of the user's addresses the default (the previous default stops being it)."""
    async with resources.db.session(read_committed=True) as session, session.begin():
        await lock_user(session, user_id)
        address = await _own(session, user_id, address_id)
        if not address.is_default:
            await _clear_default(session, user_id)
            address.is_default = True
            address.updated_at = utcnow()
            await session.flush()
        return address_view(address)


async def delete_address(resources: Resources, user_id: int, address_id: int) -> dict[str, Any]:
    """Soft delete. Deleting the default makes the newest remaining address the default.
    Returns {"id", "deleted", "default_id"} (default_id: the default now, None if none)."""
    async with resources.db.session(read_committed=True) as session, session.begin():
        await lock_user(session, user_id)
        address = await _own(session, user_id, address_id)
        was_default = address.is_default
        address.deleted_at = utcnow()
        address.is_default = False
        await session.flush()
        default_id: int | None = None
        newest = (await session.execute(select(Address).where(
            Address.user_id == user_id, Address.deleted_at.is_(None))
            .order_by(Address.id.desc()).limit(1))).scalars().first()
        if was_default and newest is not None:
            newest.is_default = True
            await session.flush()
        current = await default_address(session, user_id)
        default_id = current.id if current is not None else None
    return {"id": address_id, "deleted": True, "default_id": default_id}


async def seed_demo_address(session: AsyncSession, user_id: int) -> int:
    """A default address in Hangzhou (inside the demo shop's local delivery area) for a demo
    buyer who has none. Returns the rows created. Caller commits."""
    if await _live(session, user_id):
        return 0
    session.add(Address(user_id=user_id, contact_name="豆豆妈", phone="13800138000",
                        province="浙江省", city="杭州市", district="西湖区",
                        community="翠苑一区", detail="3 幢 2 单元 501", tag="家",
                        is_default=True))
    await session.flush()
    return 1
