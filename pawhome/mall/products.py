"""Products: the one module that writes `products` and `skus` (stock itself moves only
through pawhome/mall/stock.py), and the merchant's side of the catalogue.

A product belongs to a merchant; admins may act on every product. It starts as a draft;
putting it on sale sends its text and images to moderation (`product_submitted`, connected
by pawhome/moderation/product_reviews.py), which puts it on sale or rejects it with a reason.
Editing the text or images of a product on sale sends it back to review, off sale until
moderation passes it again (as an edited post is hidden until then); prices, stock, weight,
codes and limits change without a review. Every merchant and admin write is audit-logged.
After each commit the cached pages that show the product are dropped (`forget_products`).
docs/mall.md ("Catalogue").
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from models.base import utcnow
from models.mall import Product, Sku, StockMovement
from models.media import Media
from pawhome.mall import catalogue_cache, categories, stock
from pawhome.mall.merchants import ensure_merchant
from pawhome.mall.product_forms import (
    ProductBody,
    ProductPatch,
    SkuSetBody,
    StockAdjustmentBody,
    check_sku_set,
)
from pawhome.mall.product_rendering import live_skus, merchant_row, merchant_view, summary
from pawhome.media import uploads as media
from pawhome.platform import audit, events
from pawhome.platform.errors import Conflict, NotFound, ValidationFailed, field_error
from pawhome.platform.hooks import Hook
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.platform.wordfilter import screen_text
from pawhome.search import index as search

ProductStatus = Literal["draft", "reviewing", "on_sale", "off_sale", "rejected"]
# Fields whose change a moderator must see again (text and images the public reads).
REVIEWED_FIELDS = ("name", "subtitle", "description", "brand", "tags", "media_ids",
                   "video_media_id")
TEXT_FIELDS = ("name", "subtitle", "description", "brand")


class ProductStatusEvent(BaseModel):
    """`product.status`: a merchant's product changed status (review verdicts included)."""
    product_id: int
    status: ProductStatus
    reason: str = ""


events.register_event_schema("product.status", ProductStatusEvent)

# Run in the transaction that sends a product to review, with (session, product_id):
# moderation connects its review task (pawhome/moderation/product_reviews.py).
product_submitted: Hook[[AsyncSession, int]] = Hook("mall.product_submitted")


@dataclass(frozen=True)
class Actor:
    """Who writes: a merchant (their own products only) or an admin (every product)."""
    user_id: int
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# -- the cache ---------------------------------------------------------------------------------


async def forget_products(resources: Resources, product_ids: Iterable[int], *,
                          lists: bool = False) -> None:
    """Stop serving the cached detail pages of these products, at once; with `lists` also
    every cached list page. Call it after every commit that changed what a product page
    shows: the SKUs' stock (orders call it after taking or returning stock), prices, text,
    status. List pages show no stock, so a stock move alone need not drop them; the
    catalogue's own writes pass lists=True when a list could show the change. Never raises
    for a Redis outage (the TTLs bound the staleness then)."""
    await catalogue_cache.forget(resources.cache, product_ids=product_ids, lists=lists)


# -- loading -----------------------------------------------------------------------------------


async def own_product(session: AsyncSession, actor: Actor, product_id: int,
                      lock: bool = False) -> Product:
    """The product if the actor may manage it (its merchant, or an admin); 404 otherwise,
    another merchant's product included."""
    query = select(Product).where(Product.id == product_id)
    if lock:
        query = query.with_for_update()
    product = (await session.execute(query)).scalar_one_or_none()
    if product is None or product.deleted_at is not None or \
            not (actor.is_admin or product.merchant_id == actor.user_id):
        raise NotFound("Product not found")
    return product


async def _own_sku(session: AsyncSession, actor: Actor, sku_id: int) -> Sku:
    sku = await session.get(Sku, sku_id)
    if sku is None or sku.deleted_at is not None:
        raise NotFound("SKU not found")
    await own_product(session, actor, sku.product_id)
    return sku


# -- status ------------------------------------------------------------------------------------


async def set_status(session: AsyncSession, product_id: int, status: str,
                     reason: str = "") -> Product:
    """Move a product to a status (moderation verdicts, admins, merchants): the merchant
    hears `product.status`, search re-indexes it, and a move to review runs
    `product_submitted`. The same status and reason again is a no-op. Caller commits, then
    calls forget_products(..., lists=True)."""
    product = (await session.execute(select(Product).where(Product.id == product_id)
                                     .with_for_update())).scalar_one_or_none()
    if product is None or product.deleted_at is not None:
        raise NotFound("Product not found")
    await _enter_status(session, product, status, reason)
    return product


async def _enter_status(session: AsyncSession, product: Product, status: str,
                        reason: str = "", *, again: bool = False) -> None:
    """set_status on a product the caller holds locked; `again` re-enters the status it
    has (a product in review whose content changed is reviewed again)."""
    if status not in ("draft", "reviewing", "on_sale", "off_sale", "rejected"):
        raise ValueError(f"unknown product status {status!r}")
    if not again and product.status == status and product.status_reason == reason[:255]:
        return
    product.status, product.status_reason = status, reason[:255]
    if status == "on_sale":
        product.on_sale_at = utcnow()
    await session.flush()
    events.emit_to_user(session, product.merchant_id, "product.status",
                        {"product_id": product.id, "status": status,
                         "reason": product.status_reason})
    search.index_later(session, "product", product.id)
    if status == "reviewing":
        await product_submitted.run(session, product.id)


async def hold_in_review(session: AsyncSession, product: Product, reason: str) -> None:
    """Moderation could not pass the product by itself: it stays in review, for an admin,
    with the reason the merchant sees. Caller holds the product locked, and commits."""
    if product.status != "reviewing" or product.status_reason == reason[:255]:
        return
    product.status_reason = reason[:255]
    await session.flush()
    events.emit_to_user(session, product.merchant_id, "product.status",
                        {"product_id": product.id, "status": product.status,
                         "reason": product.status_reason})


def review_text(product: Product) -> str:
    """Everything of a product a moderator reads: its texts, tags and spec texts."""
    parts = [product.name, product.subtitle, product.brand, *(product.tags or []),
             *(f"{a.get('name', '')} {' '.join(a.get('values', []))}"
               for a in (product.spec_attrs or []) if isinstance(a, dict)),
             product.description]
    return "\n".join(p for p in parts if p)


async def review_media_ids(session: AsyncSession, product: Product) -> list[int]:
    """Every image (and the video) a product shows: its own and its live SKUs'."""
    ids = [int(m) for m in (product.media_ids or [])]
    if product.video_media_id:
        ids.append(int(product.video_media_id))
    ids += [int(s.image_media_id) for s in await live_skus(session, product.id)
            if s.image_media_id]
    return list(dict.fromkeys(ids))


def _record(session: AsyncSession, actor: Actor, action: str, target_type: str,
            target_id: int, before: dict[str, Any] | None,
            after: dict[str, Any] | None) -> None:
    audit.record(session, actor_id=actor.user_id, actor_role=actor.role, action=action,
                 target_type=target_type, target_id=target_id, before=before, after=after)


# -- product fields ----------------------------------------------------------------------------


async def _apply_fields(session: AsyncSession, product: Product,
                        values: dict[str, Any]) -> bool:
    """Check and copy the fields given onto the product; True when a reviewed field (text
    or images) changed."""
    for name in TEXT_FIELDS:
        if values.get(name):
            screen_text(values[name], name)
    for tag in values.get("tags") or []:
        screen_text(tag, "tags")
    if values.get("media_ids"):
        await media.require_ready(session, product.merchant_id, values["media_ids"],
                                  kind="image")
    if values.get("video_media_id") is not None:
        await media.require_ready(session, product.merchant_id, [values["video_media_id"]],
                                  kind="video", field="video_media_id")
    if values.get("category_id") is not None and values["category_id"] != product.category_id:
        await categories.usable_category(session, values["category_id"])
    changed = False
    for name, value in values.items():
        current = getattr(product, name)
        if isinstance(value, list):
            value = list(value)
        if name in REVIEWED_FIELDS and value != current:
            changed = True
        setattr(product, name, value)
    return changed


async def _back_to_review(session: AsyncSession, product: Product) -> None:
    """A reviewed field of a product on sale (or in review) changed: review it again."""
    if product.status in ("on_sale", "reviewing"):
        await _enter_status(session, product, "reviewing", again=True)


def _keeps_what_sale_needs(changes: dict[str, Any]) -> None:
    problems = []
    if "media_ids" in changes and not changes["media_ids"]:
        problems.append(field_error("media_ids", "a product on sale shows at least one image"))
    if "category_id" in changes and changes["category_id"] is None:
        problems.append(field_error("category_id", "a product on sale is filed in a category"))
    if problems:
        raise ValidationFailed("Take the product off sale first", errors=problems)


async def create_product(resources: Resources, actor: Actor,
                         body: ProductBody) -> dict[str, Any]:
    """A merchant adds a product, as a draft (not shown, not reviewed until put on sale)."""
    async with resources.db.session() as session, session.begin():
        merchant = await ensure_merchant(session, actor.user_id)
        product = Product(merchant_id=merchant.user_id, status="draft", name="",
                          description="", media_ids=[], tags=[], pet_types=[], spec_attrs=[])
        await _apply_fields(session, product, body.model_dump())
        session.add(product)
        await session.flush()
        _record(session, actor, "product.create", "product", product.id, None,
                summary(product))
        return await merchant_view(session, resources.settings, product)


async def update_product(resources: Resources, actor: Actor, product_id: int,
                         patch: ProductPatch) -> dict[str, Any]:
    """Change a product's fields; a change of its text or images sends a product on sale
    back to review. The cached pages showing it are dropped after the commit."""
    async with resources.db.session() as session, session.begin():
        product = await own_product(session, actor, product_id, lock=True)
        before = summary(product)
        changes = patch.changes()
        if product.status in ("on_sale", "reviewing"):
            _keeps_what_sale_needs(changes)
        if await _apply_fields(session, product, changes):
            await _back_to_review(session, product)
        product.updated_at = utcnow()
        await session.flush()
        search.index_later(session, "product", product.id)
        _record(session, actor, "product.update", "product", product.id, before,
                summary(product))
        view = await merchant_view(session, resources.settings, product)
    await forget_products(resources, [product_id], lists=True)
    return view


# -- SKUs --------------------------------------------------------------------------------------


async def _check_sku_images(session: AsyncSession, merchant_id: int,
                            image_ids: list[int | None]) -> None:
    wanted = {int(i) for i in image_ids if i}
    rows = {m.id: m for m in (await session.execute(
        select(Media).where(Media.id.in_(wanted)))).scalars()} if wanted else {}
    problems = []
    for position, media_id in enumerate(image_ids):
        if not media_id:
            continue
        found = rows.get(int(media_id))
        where = f"skus.{position}.image_media_id"
        if found is None or found.owner_id != merchant_id or found.kind != "image":
            problems.append(field_error(where, "no such image of the merchant's"))
        elif found.status != "ready":
            problems.append(field_error(where, f"is not ready ({found.status})"))
    if problems:
        raise ValidationFailed("Some media cannot be attached", errors=problems)


def _sku_summary(skus: list[Sku]) -> list[dict[str, Any]]:
    return [{"id": s.id, "spec": s.spec_text, "price": s.price, "stock": s.stock}
            for s in skus]


async def put_skus(resources: Resources, actor: Actor, product_id: int,
                   body: SkuSetBody) -> dict[str, Any]:
    """Replace a product's spec attributes and SKU set. A SKU is known by its spec values:
    an existing one is updated in place (same id, so carts and orders keep pointing at it,
    and its stock stays), a new one is added with its initial stock (a ledger row), and one
    left out is retired (deleted_at; an order or cart still names it). price_min/max follow.
    New spec texts or SKU images send a product on sale back to review."""
    attrs, checked = check_sku_set(body)
    for attr in attrs:
        for text in (attr["name"], *attr["values"]):
            screen_text(text, "spec_attrs")
    async with resources.db.session() as session, session.begin():
        product = await own_product(session, actor, product_id, lock=True)
        await _check_sku_images(session, product.merchant_id,
                                [c.item.image_media_id for c in checked])
        rows = {s.spec_key: s for s in (await session.execute(
            select(Sku).where(Sku.product_id == product.id).with_for_update())).scalars()}
        live_before = [s for s in rows.values() if s.deleted_at is None]
        before = {"spec_attrs": product.spec_attrs, "skus": _sku_summary(live_before)}
        images_before = sorted(s.image_media_id or 0 for s in live_before)
        now = utcnow()
        initial: list[tuple[Sku, int]] = []
        for entry in checked:
            item, row = entry.item, rows.get(entry.key)
            if row is None:
                # Stock -1: unlimited (virtual goods), set once when the SKU is made.
                row = Sku(product_id=product.id, spec_key=entry.key,
                          stock=stock.UNLIMITED if item.stock == stock.UNLIMITED else 0)
                session.add(row)
                rows[entry.key] = row
                initial.append((row, max(0, item.stock)))
            elif row.deleted_at is not None:  # a retired SKU comes back: as a new one
                row.deleted_at = None
                initial.append((row, item.stock - row.stock))
            row.spec_values, row.spec_text = entry.values, entry.text
            row.price, row.original_price = item.price, item.original_price
            row.points_price = item.points_price
            row.weight_g, row.image_media_id = item.weight_g, item.image_media_id
            row.code, row.purchase_limit = item.code, item.purchase_limit
            row.updated_at = now
        keys = {entry.key for entry in checked}
        for key, row in rows.items():
            if key not in keys and row.deleted_at is None:
                row.deleted_at = now
        await session.flush()
        for row, delta in initial:
            if delta:
                await stock.adjust(session, row.id, delta, actor_id=actor.user_id,
                                   note="initial stock", reason="initial")
        prices = [entry.item.price for entry in checked]
        product.price_min, product.price_max = min(prices), max(prices)
        reviewed_change = attrs != list(product.spec_attrs or []) or images_before != sorted(
            entry.item.image_media_id or 0 for entry in checked)
        product.spec_attrs = attrs
        product.updated_at = now
        if reviewed_change:
            await _back_to_review(session, product)
        await session.flush()
        search.index_later(session, "product", product.id)
        live = await live_skus(session, product.id)
        _record(session, actor, "product.skus", "product", product.id, before,
                {"spec_attrs": attrs, "skus": _sku_summary(live)})
        view = await merchant_view(session, resources.settings, product)
    await forget_products(resources, [product_id], lists=True)
    return view


# -- status changes ----------------------------------------------------------------------------


async def _ready_for_sale(session: AsyncSession, product: Product) -> None:
    problems = []
    if not product.media_ids:
        problems.append(field_error("media_ids", "a product on sale shows at least one image"))
    if product.category_id is None:
        problems.append(field_error("category_id", "a product on sale is filed in a category"))
    else:
        try:
            await categories.usable_category(session, product.category_id)
        except ValidationFailed as error:
            problems.extend(error.errors)
    if not await live_skus(session, product.id):
        problems.append(field_error("skus", "a product on sale has at least one SKU"))
    if problems:
        raise Conflict("The product is not ready for sale", errors=problems)


async def submit_product(resources: Resources, actor: Actor,
                         product_id: int) -> dict[str, Any]:
    """Put a product on sale: it goes to review (on sale once moderation passes it). A
    product already on sale or in review is left as it is."""
    async with resources.db.session() as session, session.begin():
        product = await own_product(session, actor, product_id, lock=True)
        if product.status not in ("on_sale", "reviewing"):
            await _ready_for_sale(session, product)
            before = product.status
            await _enter_status(session, product, "reviewing")
            _record(session, actor, "product.submit", "product", product.id,
                    {"status": before}, {"status": "reviewing"})
        view = await merchant_view(session, resources.settings, product)
    await forget_products(resources, [product_id])
    return view


async def take_off_sale(resources: Resources, actor: Actor, product_id: int,
                        reason: str = "") -> dict[str, Any]:
    """Take a product off sale (or out of review), by its merchant or an admin with a
    reason; the cached pages and the search index drop it. Off sale already: a no-op."""
    async with resources.db.session() as session, session.begin():
        product = await own_product(session, actor, product_id, lock=True)
        if product.status in ("draft", "rejected"):
            raise Conflict(f"The product is not on sale ({product.status})")
        if product.status != "off_sale":
            before = product.status
            await _enter_status(session, product, "off_sale", reason)
            _record(session, actor, "product.off_sale", "product", product.id,
                    {"status": before}, {"status": "off_sale", "reason": reason})
        view = await merchant_view(session, resources.settings, product)
    await forget_products(resources, [product_id], lists=True)
    return view


async def delete_product(resources: Resources, actor: Actor, product_id: int) -> dict[str, Any]:
    """Delete a product (soft: its SKUs stay for the orders and carts that name them, no
    longer sold); it leaves sale, search and favorites lists."""
    async with resources.db.session() as session, session.begin():
        product = await own_product(session, actor, product_id, lock=True)
        before = summary(product)
        now = utcnow()
        product.deleted_at = now
        if product.status in ("on_sale", "reviewing"):
            product.status = "off_sale"
        await session.execute(update(Sku).where(Sku.product_id == product.id,
                                                Sku.deleted_at.is_(None))
                              .values(deleted_at=now)
                              .execution_options(synchronize_session=False))
        search.index_later(session, "product", product.id)
        _record(session, actor, "product.delete", "product", product.id, before, None)
    await forget_products(resources, [product_id], lists=True)
    return {"id": product_id, "deleted": True}


# -- stock -------------------------------------------------------------------------------------


async def adjust_stock(resources: Resources, actor: Actor, sku_id: int,
                       body: StockAdjustmentBody) -> dict[str, Any]:
    """Move a SKU's stock by `delta` with a reason (a ledger row and an audit entry). Never
    below zero: 409 with the current stock instead. The product's cached page is dropped."""
    if body.delta == 0:
        raise ValidationFailed(errors=[field_error("delta", "must not be 0")])
    async with resources.db.session() as session, session.begin():
        sku = await _own_sku(session, actor, sku_id)
        product_id = sku.product_id
        after = await stock.adjust(session, sku.id, body.delta, actor_id=actor.user_id,
                                   note=body.reason.strip())
        if after is None:
            current = int((await session.execute(select(Sku.stock).where(
                Sku.id == sku_id))).scalar_one())
            raise Conflict(f"The stock is {current}: it cannot go below zero",
                           errors=[field_error("delta", f"at least -{current}")],
                           data={"sku_id": sku_id, "stock": current})
        _record(session, actor, "sku.stock_adjust", "sku", sku.id,
                {"stock": after - body.delta},
                {"stock": after, "delta": body.delta, "reason": body.reason.strip()})
    await forget_products(resources, [product_id])
    return {"sku_id": sku_id, "product_id": product_id, "stock": after, "delta": body.delta}


def _movement_view(row: StockMovement) -> dict[str, Any]:
    return {"id": row.id, "sku_id": row.sku_id, "delta": row.delta,
            "stock_after": row.stock_after, "reason": row.reason, "note": row.note,
            "ref_type": row.ref_type, "ref_id": row.ref_id, "actor_id": row.actor_id,
            "created_at": row.created_at}


async def list_stock_movements(resources: Resources, actor: Actor, sku_id: int,
                               query: PageQuery) -> dict[str, Any]:
    """A SKU's stock ledger, newest first (a retired SKU's too)."""
    async with resources.db.session() as session:
        sku = await session.get(Sku, sku_id)
        if sku is None:
            raise NotFound("SKU not found")
        await own_product(session, actor, sku.product_id)
        total = int((await session.execute(select(func.count()).select_from(StockMovement)
                                           .where(StockMovement.sku_id == sku_id)))
                    .scalar_one())
        rows = (await session.execute(
            select(StockMovement).where(StockMovement.sku_id == sku_id)
            .order_by(StockMovement.id.desc()).offset(query.offset).limit(query.limit)
        )).scalars()
        return page_result([_movement_view(r) for r in rows], total, query)


# -- the merchant's reads ----------------------------------------------------------------------


async def get_product(resources: Resources, actor: Actor, product_id: int) -> dict[str, Any]:
    """One of the actor's products, in any status (404 for another merchant's)."""
    async with resources.db.session() as session:
        product = await own_product(session, actor, product_id)
        return await merchant_view(session, resources.settings, product)


async def list_products(resources: Resources, actor: Actor, query: PageQuery,
                        status: str | None = None, merchant_id: int | None = None,
                        kind: str | None = None) -> dict[str, Any]:
    """The actor's products (an admin's: everyone's, or one merchant's), newest first; `kind`
    keeps one kind (a virtual kind: the points mall's virtual items)."""
    conditions: list[ColumnElement[bool]] = [Product.deleted_at.is_(None)]
    if not actor.is_admin:
        conditions.append(Product.merchant_id == actor.user_id)
    elif merchant_id is not None:
        conditions.append(Product.merchant_id == merchant_id)
    if status:
        conditions.append(Product.status == status)
    if kind:
        conditions.append(Product.kind == kind)
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count()).select_from(Product)
                                           .where(*conditions))).scalar_one())
        rows = list((await session.execute(
            select(Product).where(*conditions).order_by(Product.id.desc())
            .offset(query.offset).limit(query.limit))).scalars())
        skus: dict[int, tuple[int, int]] = {}
        if rows:
            skus = {int(pid): (int(total_stock or 0), int(points or 0))
                    for pid, total_stock, points in (await session.execute(
                        select(Sku.product_id, func.sum(Sku.stock), func.max(Sku.points_price))
                        .where(Sku.product_id.in_([p.id for p in rows]),
                               Sku.deleted_at.is_(None))
                        .group_by(Sku.product_id))).all()}
        return page_result([merchant_row(p, *skus.get(p.id, (0, 0))) for p in rows], total,
                           query)
