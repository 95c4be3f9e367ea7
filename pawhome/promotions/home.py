"""The mall home (GET /v1/home/mall): admin-configured banners, pop-ups with display rules and
product slots (recommended, hot, group-buy), plus "for you" products from pawhome.recommend.
docs/promotions.md ("Home slots").

The part every viewer shares — live banners and pop-ups, the slots' product cards — is built
once and cached in Redis for HOME_MALL_CACHE_SECONDS (1 h), stored under the catalogue's list
generation (pawhome/mall/catalogue_cache.py): a product that changes status (or anything
else a product list could show) bumps that generation, so the cached home stops counting at
once; an admin's change to the home content deletes it after commit. What depends on the
viewer is applied after the cache: the date windows (checked on every read, so a banner
starting within the hour needs no drop), the pop-up rules from the viewer's record in
Redis (which pop-ups they acknowledged, and on which Asia/Shanghai day), and `for_you`.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import delete, desc, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.groupbuy import GroupBuyRule
from models.home import HomeBanner, HomePopup, HomeSlotItem
from models.mall import Product
from models.users import User
from pawhome.mall import catalogue_cache
from pawhome.mall.product_rendering import cards
from pawhome.platform import audit, codec
from pawhome.platform.cache import UNAVAILABLE_ERRORS
from pawhome.platform.errors import NotFound, ValidationFailed, field_error
from pawhome.platform.fields import SPACE_OR_CONTROL
from pawhome.platform.resources import Resources
from pawhome.recommend.products import cards_key, recommended_products

SHANGHAI = ZoneInfo("Asia/Shanghai")
LinkType = Literal["none", "product", "category", "page", "url"]
PopupRule = Literal["once", "daily", "new_users"]
Slot = Literal["recommended", "hot", "group_buy"]
SLOTS: tuple[Slot, ...] = ("recommended", "hot", "group_buy")
# What a slot shows when no product is picked for it.
FALLBACKS: dict[str, str] = {"hot": "best sellers",
                             "group_buy": "products with an active group-buy rule"}


def slot_named(name: str) -> Slot:
    """The slot of a path segment; an unknown one is 404."""
    for slot in SLOTS:
        if slot == name:
            return slot
    raise NotFound("No such slot")
MAX_PICKED = 20
SEEN_RECORD_SECONDS = 400 * 24 * 3600  # a viewer's pop-up record outlives any campaign


# -- bodies ---------------------------------------------------------------------------------------


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Naive UTC, as stored; a campaign's times are within 2000-2100 (which also keeps the
    ends of the calendar from overflowing on conversion)."""
    if value is None:
        return None
    if not 2000 <= value.year <= 2100:
        raise ValueError("must be between the years 2000 and 2100")
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


class _ContentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field("", max_length=64)
    image_url: str = Field(min_length=9, max_length=512,
                           pattern=rf"^https://[^{SPACE_OR_CONTROL}]+$")
    link_type: LinkType = "none"
    # validate_default: a link_type given without its link_value is refused by `_link`
    link_value: str = Field("", max_length=512, validate_default=True,
                            description="a product or category id, a mini-program page "
                                        "path or an https URL")
    sort: int = Field(0, ge=-1_000_000, le=1_000_000)
    starts_at: dt.datetime | None = Field(None, description="open when left out")
    ends_at: dt.datetime | None = Field(None, description="open when left out")
    enabled: bool = True

    @field_validator("starts_at")
    @classmethod
    def _start(cls, value: dt.datetime | None) -> dt.datetime | None:
        return _naive_utc(value)

    @field_validator("ends_at")
    @classmethod
    def _end(cls, value: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        value = _naive_utc(value)
        starts = info.data.get("starts_at")
        if value is not None and starts is not None and value <= starts:
            raise ValueError("must be after starts_at")
        return value

    @field_validator("link_value")
    @classmethod
    def _link(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("link_type")
        if kind in ("product", "category") and not (
                value.isascii() and value.isdigit() and 0 < int(value) < 2**53):
            raise ValueError(f"must be a {kind} id")
        if kind == "page" and not (value.startswith("/") and value.isprintable()
                                   and " " not in value):
            raise ValueError("must be a page path starting with /")
        if kind == "url" and not (value.startswith("https://") and len(value) > 8
                                  and value.isprintable() and " " not in value):
            raise ValueError("must be an https URL")
        if kind == "none" and value:
            raise ValueError("must be empty when link_type is none")
        return value


class BannerBody(_ContentBody):
    pass


class PopupBody(_ContentBody):
    rule: PopupRule = Field("once", description="once per user, once per day (Asia/Shanghai), "
                                                "or to new users only (once)")


class SlotBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_ids: list[Annotated[int, Field(ge=1, le=2**53)]] = Field(
        max_length=MAX_PICKED, description="in display order")


# -- views ----------------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _content_view(row: HomeBanner | HomePopup) -> dict[str, Any]:
    view = {"id": row.id, "title": row.title, "image_url": row.image_url,
            "link_type": row.link_type, "link_value": row.link_value, "sort": row.sort,
            "starts_at": _iso(row.starts_at), "ends_at": _iso(row.ends_at)}
    if isinstance(row, HomePopup):
        view["rule"] = row.rule
    return view


def _admin_view(row: HomeBanner | HomePopup) -> dict[str, Any]:
    return {**_content_view(row), "enabled": row.enabled, "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at)}


# -- the shared part (cached) ---------------------------------------------------------------------


def home_key(resources: Resources) -> str:
    return resources.cache.key("home", "mall")


def home_reads(resources: Resources, viewer_id: int | None = None) -> list[str]:
    """The Redis keys the home reads (read ahead by the gateway's admission call): the list
    generation, the shared part and the viewer's cached `for_you` cards."""
    return [catalogue_cache.list_generation_key(resources.cache), home_key(resources),
            cards_key(resources.cache, viewer_id)]


def _live(model: type[HomeBanner] | type[HomePopup], until: dt.datetime) -> list[Any]:
    """Enabled content not over, and starting before `until` (the cache's life)."""
    now = utcnow()
    return [model.enabled.is_(True),
            (model.ends_at.is_(None)) | (model.ends_at > now),
            (model.starts_at.is_(None)) | (model.starts_at < until)]


async def _slot_products(session: AsyncSession, resources: Resources,
                         slot: Slot) -> list[dict[str, Any]]:
    size = resources.settings.home_slot_size
    on_sale = [Product.status == "on_sale", Product.deleted_at.is_(None)]
    picked = list((await session.execute(
        select(Product).join(HomeSlotItem, HomeSlotItem.product_id == Product.id)
        .where(HomeSlotItem.slot == slot, *on_sale)
        .order_by(HomeSlotItem.sort, HomeSlotItem.id).limit(size))).scalars())
    if not picked and slot == "hot":  # nothing picked: the best sellers
        picked = list((await session.execute(
            select(Product).where(*on_sale).order_by(desc(Product.sales_count),
                                                     desc(Product.id))
            .limit(size))).scalars())
    if not picked and slot == "group_buy":  # nothing picked: products with active rules
        picked = list((await session.execute(
            select(Product).where(*on_sale, Product.id.in_(
                select(GroupBuyRule.product_id).where(GroupBuyRule.status == "active")))
            .order_by(desc(Product.sales_count), desc(Product.id)).limit(size))).scalars())
    return await cards(session, resources.settings, picked)


async def _build_shared(resources: Resources) -> dict[str, Any]:
    until = utcnow() + dt.timedelta(seconds=max(resources.settings.home_mall_cache_seconds, 0))
    async with resources.db.session() as session:
        banners = (await session.execute(select(HomeBanner).where(*_live(HomeBanner, until))
                                         .order_by(HomeBanner.sort, HomeBanner.id))).scalars()
        popups = (await session.execute(select(HomePopup).where(*_live(HomePopup, until))
                                        .order_by(HomePopup.sort, HomePopup.id))).scalars()
        shared = {"banners": [_content_view(b) for b in banners],
                  "popups": [_content_view(p) for p in popups],
                  "slots": {slot: await _slot_products(session, resources, slot)
                            for slot in SLOTS}}
    return shared


async def shared_home(resources: Resources, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """The part of the home every viewer shares, from the cache when it is current."""
    gen_key, key, _ = home_reads(resources)
    generation, payload = await catalogue_cache.read(resources.cache, gen_key, key, known)
    if payload is not None:
        found: dict[str, Any] = codec.loads(payload)
        return found
    shared = await _build_shared(resources)
    await catalogue_cache.fill(resources.cache, key, generation, codec.dumps(shared),
                               resources.settings.home_mall_cache_seconds)
    return shared


async def forget_home(resources: Resources) -> None:
    """After an admin's committed change: the next read builds the home afresh."""
    with contextlib.suppress(*UNAVAILABLE_ERRORS):  # the TTL bounds the staleness
        await resources.cache.redis.delete(home_key(resources))


# -- the viewer's part ----------------------------------------------------------------------------


def seen_key(resources: Resources, user_id: int) -> str:
    return resources.cache.key("home", "popups-seen", int(user_id))


def shanghai_day(now: dt.datetime | None = None) -> str:
    moment = (now or utcnow()).replace(tzinfo=dt.UTC).astimezone(SHANGHAI)
    return moment.date().isoformat()


def _parsed(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.rstrip("Z")) if value else None


def _in_window(item: dict[str, Any], now: dt.datetime) -> bool:
    starts, ends = _parsed(item["starts_at"]), _parsed(item["ends_at"])
    return (starts is None or starts <= now) and (ends is None or ends > now)


NEW_UNTIL = "new_until"  # a field of the viewer's record beside the pop-up ids


async def _is_new_user(resources: Resources, user_id: int, seen: dict[str, str]) -> bool:
    """Whether the account is younger than HOME_NEW_USER_DAYS. The moment it stops being new
    is kept in the viewer's record (read with it), so only the first look reads the user."""
    until = seen.get(NEW_UNTIL)
    if until is None:
        async with resources.db.session() as session:
            created = (await session.execute(select(User.created_at).where(
                User.id == user_id))).scalar_one_or_none()
        if created is None:
            return False
        until = (created + dt.timedelta(days=resources.settings.home_new_user_days)).isoformat()
        key = seen_key(resources, user_id)
        async with resources.cache.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, NEW_UNTIL, until)
            pipe.expire(key, SEEN_RECORD_SECONDS)
            await pipe.execute()
    return dt.datetime.fromisoformat(until) > utcnow()


async def _popups_for(resources: Resources, viewer_id: int | None,
                      popups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pop-ups this viewer should see: `once` and `new_users` until acknowledged,
    `daily` until acknowledged today; `new_users` to accounts younger than
    HOME_NEW_USER_DAYS (and to visitors, who may be about to sign up)."""
    if not popups or viewer_id is None:
        return popups
    raw = await resources.cache.redis.hgetall(seen_key(resources, viewer_id))
    seen = {(k.decode() if isinstance(k, bytes) else str(k)):
            (v.decode() if isinstance(v, bytes) else str(v)) for k, v in raw.items()}
    today = shanghai_day()
    shown = []
    new_user: bool | None = None
    for popup in popups:
        last = seen.get(str(popup["id"]))
        if popup["rule"] == "daily" and last == today:
            continue
        if popup["rule"] != "daily" and last is not None:
            continue
        if popup["rule"] == "new_users":
            if new_user is None:
                new_user = await _is_new_user(resources, viewer_id, seen)
            if not new_user:
                continue
        shown.append(popup)
    return shown


async def mall_home(resources: Resources, viewer_id: int | None,
                    known: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET /v1/home/mall: what this viewer should see on the mall home."""
    shared = await shared_home(resources, known)
    now = utcnow()
    banners = [b for b in shared["banners"] if _in_window(b, now)]
    popups = [p for p in shared["popups"] if _in_window(p, now)]
    for_you = await recommended_products(resources, viewer_id,
                                         resources.settings.home_slot_size, known)
    return {"banners": banners, "popups": await _popups_for(resources, viewer_id, popups),
            "slots": shared["slots"], "for_you": for_you}


async def popup_seen(resources: Resources, user_id: int, popup_id: int) -> dict[str, Any]:
    """The client showed a pop-up: noted in the viewer's record (with the Asia/Shanghai day,
    for `daily`), so the home stops offering it. Acknowledging again is harmless."""
    async with resources.db.session() as session:
        if await session.get(HomePopup, popup_id) is None:
            raise NotFound("No such pop-up")
    day = shanghai_day()
    key = seen_key(resources, user_id)
    async with resources.cache.redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, str(popup_id), day)
        pipe.expire(key, SEEN_RECORD_SECONDS)
        await pipe.execute()
    return {"popup_id": popup_id, "seen_on": day}


# -- the admins' side -----------------------------------------------------------------------------


async def _check_links(session: AsyncSession, body: _ContentBody) -> None:
    if body.link_type == "product" and await session.get(Product, int(body.link_value)) is None:
        raise ValidationFailed(errors=[field_error("link_value", "no such product")])


async def _find(session: AsyncSession, kind: str,
                content_id: int) -> HomeBanner | HomePopup | None:
    """A banner or pop-up, locked."""
    if kind == "banner":
        return await session.get(HomeBanner, content_id, with_for_update=True)
    return await session.get(HomePopup, content_id, with_for_update=True)


async def list_content(resources: Resources, kind: Literal["banner", "popup"]) -> dict[str, Any]:
    """Every banner or pop-up, enabled or not, in display order."""
    async with resources.db.session() as session:
        rows: list[HomeBanner] | list[HomePopup] = list((await session.execute(
            select(HomeBanner).order_by(HomeBanner.sort, HomeBanner.id))).scalars()) \
            if kind == "banner" else list((await session.execute(
                select(HomePopup).order_by(HomePopup.sort, HomePopup.id))).scalars())
        return {"items": [_admin_view(r) for r in rows]}


async def save_content(resources: Resources, admin_id: int, kind: Literal["banner", "popup"],
                       body: BannerBody | PopupBody, content_id: int | None = None
                       ) -> dict[str, Any]:
    """Create (content_id None) or replace a banner or pop-up; audited."""
    async with resources.db.session() as session, session.begin():
        await _check_links(session, body)
        before = None
        if content_id is None:
            row: HomeBanner | HomePopup = HomeBanner() if kind == "banner" else HomePopup()
            session.add(row)
        else:
            found = await _find(session, kind, content_id)
            if found is None:
                raise NotFound(f"No such {kind}")
            row, before = found, _content_view(found)
        for name, value in body.model_dump().items():
            setattr(row, name, value)
        await session.flush()
        audit.record(session, actor_id=admin_id, actor_role="admin",
                     action=f"home.{kind}_{'create' if content_id is None else 'update'}",
                     target_type=f"home_{kind}", target_id=row.id, before=before,
                     after={**_content_view(row), "enabled": row.enabled})
        await session.refresh(row)
        view = _admin_view(row)
    await forget_home(resources)
    return view


async def delete_content(resources: Resources, admin_id: int, kind: Literal["banner", "popup"],
                         content_id: int) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        found = await _find(session, kind, content_id)
        if found is None:
            raise NotFound(f"No such {kind}")
        audit.record(session, actor_id=admin_id, actor_role="admin",
                     action=f"home.{kind}_delete", target_type=f"home_{kind}",
                     target_id=content_id, before=_content_view(found))
        await session.delete(found)
    await forget_home(resources)
    return {"id": content_id, "deleted": True}


async def _slot_view(session: AsyncSession, resources: Resources,
                     slot: Slot) -> dict[str, Any]:
    ids = list((await session.execute(select(HomeSlotItem.product_id).where(
        HomeSlotItem.slot == slot).order_by(HomeSlotItem.sort, HomeSlotItem.id))).scalars())
    return {"slot": slot, "product_ids": ids,
            "fallback": FALLBACKS.get(slot),
            "shown": await _slot_products(session, resources, slot)}


async def get_slot(resources: Resources, slot: Slot) -> dict[str, Any]:
    """A slot's picked products and what the home shows for it now."""
    async with resources.db.session() as session:
        return await _slot_view(session, resources, slot)


async def put_slot(resources: Resources, admin_id: int, slot: Slot,
                   body: SlotBody) -> dict[str, Any]:
    """Replace a slot's picked products (in order); each must exist and be on sale."""
    async with resources.db.session() as session, session.begin():
        wanted = [int(i) for i in body.product_ids]
        found = {p.id: p for p in (await session.execute(select(Product).where(
            Product.id.in_(set(wanted))))).scalars()} if wanted else {}
        problems, seen = [], set()
        for position, product_id in enumerate(wanted):
            product = found.get(product_id)
            where = f"product_ids.{position}"
            if product_id in seen:
                problems.append(field_error(where, "is listed twice"))
            elif product is None or product.deleted_at is not None:
                problems.append(field_error(where, "no such product"))
            elif product.status != "on_sale":
                problems.append(field_error(where, f"is {product.status}, not on sale"))
            seen.add(product_id)
        if problems:
            raise ValidationFailed("Some products cannot be shown", errors=problems)
        before = list((await session.execute(select(HomeSlotItem.product_id).where(
            HomeSlotItem.slot == slot).order_by(HomeSlotItem.sort, HomeSlotItem.id))).scalars())
        await session.execute(delete(HomeSlotItem).where(HomeSlotItem.slot == slot))
        session.add_all([HomeSlotItem(slot=slot, product_id=product_id, sort=index)
                         for index, product_id in enumerate(wanted)])
        await session.flush()
        audit.record(session, actor_id=admin_id, actor_role="admin", action="home.slot_set",
                     target_type="home_slot", target_id=slot, before={"product_ids": before},
                     after={"product_ids": wanted})
        view = await _slot_view(session, resources, slot)
    await forget_home(resources)
    return view
