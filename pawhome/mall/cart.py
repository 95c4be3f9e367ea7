"""The cart: the one module that writes `cart_items` (docs/mall.md, "Shops, delivery,
addresses and the cart").

A user's cart holds one line per SKU (unique user_id + sku_id), at most CART_MAX_LINES lines,
each of 1 to min(CART_MAX_QUANTITY, the SKU's purchase limit) units. Every write locks the
user's row first (pawhome/mall/locks.py), so two adds of the same SKU at once queue: they
never make two lines, and their sum is checked against the cap as a whole. Reading the cart
checks each line against the catalogue as it is now and flags what cannot be bought (off
sale, SKU deleted, out of stock, over the purchase limit) and what costs something else
than when it was added; totals count the selected lines that can be bought.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import CartItem, Merchant, Product, Sku
from pawhome.mall.locks import lock_user
from pawhome.mall.product_rendering import image_view, media_by_id
from pawhome.platform.errors import NotFound, ValidationFailed, field_error
from pawhome.platform.fields import MAX_ID, distinct, no_null_default
from pawhome.platform.resources import Resources
from settings import Settings, get_settings

_settings = get_settings()
Quantity = Annotated[int, Field(ge=1, le=_settings.cart_max_quantity)]
SkuId = Annotated[int, Field(ge=1, le=MAX_ID)]


class CartAdd(BaseModel):
    """Add units of a SKU; a SKU already in the cart gets them added to its line."""
    model_config = ConfigDict(extra="forbid")
    sku_id: SkuId
    quantity: Quantity = 1


class CartLineChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quantity: Quantity = Field(None,  # type: ignore[assignment]
                               description="the line's new quantity (not added)",
                               json_schema_extra=no_null_default)
    selected: bool = Field(None,  # type: ignore[assignment]
                           json_schema_extra=no_null_default)


def _distinct_not_null(schema: dict[str, Any]) -> None:
    no_null_default(schema)
    schema.update(distinct())


class CartSelection(BaseModel):
    """Select or unselect the lines named, or every line with all: true."""
    model_config = ConfigDict(extra="forbid")
    sku_ids: list[SkuId] = Field(None,  # type: ignore[arg-type]
                                 max_length=_settings.cart_max_lines,
                                 json_schema_extra=_distinct_not_null)
    all: bool = False
    selected: bool

    @field_validator("sku_ids")
    @classmethod
    def _distinct(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise ValueError("sku_ids must not repeat")
        return values


class CartClearQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    selected: bool = Field(False, description="true: clear only the selected lines")


ADD_RULES = {
    "sku_id": "a SKU on sale; a new line only while the cart has fewer than CART_MAX_LINES "
              "(100) lines",
    "quantity": "with what the line holds already, at most the SKU's purchase limit (else "
                "CART_MAX_QUANTITY, 999) and its stock"}
CHANGE_RULES = {"quantity": "at most the SKU's purchase limit (else CART_MAX_QUANTITY, 999); "
                            "more than the line holds only as far as the stock goes"}
SELECTION_RULES = {"sku_ids": "either sku_ids or all: true"}


# -- views ----------------------------------------------------------------------------------------


class CartItemResult(BaseModel):
    sku_id: int
    quantity: int
    selected: bool
    count: int = Field(description="lines in the cart now")


class MerchantRef(BaseModel):
    id: int
    name: str
    logo_url: str


class CartLineView(BaseModel):
    sku_id: int
    product_id: int
    name: str
    image_url: str
    spec_text: str
    unit_price: int = Field(description="fen, the price now")
    price_when_added: int = Field(description="fen")
    quantity: int
    line_total: int = Field(description="fen: unit_price x quantity")
    selected: bool
    stock: int
    max_quantity: int = Field(description="the most this line may hold")
    purchasable: bool = Field(description="false when any of off_sale, sku_deleted, "
                                          "out_of_stock, over_limit")
    off_sale: bool
    sku_deleted: bool
    out_of_stock: bool = Field(description="stock < quantity")
    over_limit: bool = Field(description="quantity > max_quantity (the limit was lowered)")
    price_changed: bool = Field(description="unit_price != price_when_added (still "
                                            "purchasable, at unit_price)")
    problems: list[str]


class CartGroup(BaseModel):
    merchant: MerchantRef
    lines: list[CartLineView]
    selected_amount: int = Field(description="fen: the group's selected purchasable lines")


class CartTotals(BaseModel):
    lines: int
    selected_lines: int = Field(description="selected purchasable lines")
    selected_quantity: int
    goods_amount: int = Field(description="fen: selected purchasable lines")
    all_selected: bool
    invalid_lines: int


class CartView(BaseModel):
    groups: list[CartGroup]
    totals: CartTotals


class CartCount(BaseModel):
    count: int = Field(description="lines in the cart (the badge)")
    quantity: int = Field(description="units in the cart")


class CartChanged(BaseModel):
    changed: int = Field(description="lines changed or removed")
    count: int = Field(description="lines in the cart now")


# -- what checkout uses (Caller commits) -----------------------------------------------------------


@dataclass(frozen=True)
class CartLine:
    sku_id: int
    quantity: int
    selected: bool
    price_when_added: int


async def selected_lines(session: AsyncSession, user_id: int) -> list[CartLine]:
    """The user's selected lines, oldest first, as they are (checkout judges whether each
    can be bought). Caller commits."""
    rows = (await session.execute(select(CartItem).where(
        CartItem.user_id == user_id, CartItem.selected.is_(True))
        .order_by(CartItem.id))).scalars()
    return [CartLine(row.sku_id, row.quantity, row.selected, row.price_when_added)
            for row in rows]


async def remove_lines(session: AsyncSession, user_id: int, sku_ids: Iterable[int]) -> None:
    """Take these SKUs' lines out of the user's cart (they were ordered). Caller commits."""
    wanted = sorted(set(sku_ids))
    if wanted:
        await session.execute(delete(CartItem).where(
            CartItem.user_id == user_id, CartItem.sku_id.in_(wanted))
            .execution_options(synchronize_session=False))


def _image_id(sku: Sku, product: Product) -> int | None:
    if sku.image_media_id:
        return sku.image_media_id
    return int(product.media_ids[0]) if product.media_ids else None


def max_quantity(settings: Settings, sku: Sku) -> int:
    """The most one cart line (and one order line) of this SKU may hold."""
    cap = settings.cart_max_quantity
    return min(cap, sku.purchase_limit) if sku.purchase_limit > 0 else cap


# -- the writes ------------------------------------------------------------------------------------


async def _count(session: AsyncSession, user_id: int) -> int:
    return int((await session.execute(select(func.count()).select_from(CartItem).where(
        CartItem.user_id == user_id))).scalar_one())


async def _line(session: AsyncSession, user_id: int, sku_id: int) -> CartItem | None:
    return (await session.execute(select(CartItem).where(
        CartItem.user_id == user_id, CartItem.sku_id == sku_id)
        .execution_options(populate_existing=True))).scalars().first()


async def _on_sale_sku(session: AsyncSession, sku_id: int) -> Sku:
    """The SKU if it can be put in a cart: 404 (naming sku_id) for one that does not exist
    or was deleted, 422 for one whose product is not on sale or whose shop is closed."""
    found = (await session.execute(
        select(Sku, Product, Merchant).join(Product, Product.id == Sku.product_id)
        .join(Merchant, Merchant.user_id == Product.merchant_id)
        .where(Sku.id == sku_id))).first()
    if found is None or found[0].deleted_at is not None or found[1].deleted_at is not None:
        raise NotFound("No such SKU", errors=[field_error("sku_id", "no such SKU")])
    sku, product, merchant = found
    if product.status != "on_sale" or merchant.status != "active":
        raise ValidationFailed("This product is not on sale", errors=[
            field_error("sku_id", "not on sale")])
    return sku


def _check_quantity(settings: Settings, sku: Sku, quantity: int, held: int,
                    field: str = "quantity") -> None:
    """Refuse `quantity` units in the line (which holds `held` now) beyond the SKU's cap, or
    more than its stock when the line grows."""
    cap = max_quantity(settings, sku)
    if quantity > cap:
        detail = f" (the cart has {held})" if held else ""
        raise ValidationFailed(f"At most {cap} of this item{detail}", errors=[
            field_error(field, f"at most {cap}{detail}")], data={"max_quantity": cap})
    if quantity > held and 0 <= sku.stock < quantity:  # stock -1: unlimited
        message = f"only {sku.stock} in stock" if sku.stock > 0 else "out of stock"
        raise ValidationFailed(message[0].upper() + message[1:], errors=[
            field_error(field, message + (f" (the cart has {held})" if held else ""))],
            data={"stock": sku.stock})


def _result(line: CartItem, count: int) -> dict[str, Any]:
    return {"sku_id": line.sku_id, "quantity": line.quantity, "selected": line.selected,
            "count": count}


async def add_item(resources: Resources, user_id: int, body: CartAdd) -> dict[str, Any]:
    """Put `quantity` units of a SKU on sale in the cart (added to its line if it has one),
    selected, at today's price. Refused (422) over the line's cap or the stock, or when a new
    line would exceed CART_MAX_LINES."""
    settings = resources.settings
    async with resources.db.session(read_committed=True) as session, session.begin():
        await lock_user(session, user_id)
        sku = await _on_sale_sku(session, body.sku_id)
        line = await _line(session, user_id, body.sku_id)
        held = line.quantity if line is not None else 0
        _check_quantity(settings, sku, held + body.quantity, held)
        if line is None:
            count = await _count(session, user_id)
            if count >= settings.cart_max_lines:
                raise ValidationFailed(f"The cart is full ({settings.cart_max_lines} items)",
                                       errors=[field_error("sku_id", "the cart is full: at "
                                                           f"most {settings.cart_max_lines} "
                                                           "lines")])
            line = CartItem(user_id=user_id, sku_id=sku.id, quantity=body.quantity,
                            selected=True, price_when_added=sku.price)
            session.add(line)
        else:
            # The buyer has seen today's price on the page they added from.
            line.quantity, line.selected, line.price_when_added = held + body.quantity, \
                True, sku.price
            line.updated_at = utcnow()
        await session.flush()
        return _result(line, await _count(session, user_id))


async def change_item(resources: Resources, user_id: int, sku_id: int,
                      body: CartLineChange) -> dict[str, Any]:
    """Set a line's quantity or selection (the fields sent)."""
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:  # the schema has no null; a model default never reaches here
            raise ValidationFailed(errors=[field_error(name, "must not be null")])
    async with resources.db.session(read_committed=True) as session, session.begin():
        await lock_user(session, user_id)
        line = await _line(session, user_id, sku_id)
        if line is None:
            raise NotFound("This item is not in the cart")
        if "quantity" in changes and changes["quantity"] != line.quantity:
            sku = await session.get(Sku, sku_id)
            if sku is None:
                raise NotFound("This item is not in the cart")
            _check_quantity(resources.settings, sku, int(changes["quantity"]), line.quantity)
            line.quantity = int(changes["quantity"])
        if "selected" in changes:
            line.selected = bool(changes["selected"])
        line.updated_at = utcnow()
        await session.flush()
        return _result(line, await _count(session, user_id))


async def remove_item(resources: Resources, user_id: int, sku_id: int) -> dict[str, Any]:
    async with resources.db.session(read_committed=True) as session, session.begin():
        await lock_user(session, user_id)
        removed = (await session.execute(delete(CartItem).where(
            CartItem.user_id == user_id, CartItem.sku_id == sku_id))).rowcount  # type: ignore[attr-defined]
        if not removed:
            raise NotFound("This item is not in the cart")
        return {"changed": 1, "count": await _count(session, user_id)}


async def select_items(resources: Resources, user_id: int,
                       body: CartSelection) -> dict[str, Any]:
    """Select or unselect the lines named (SKUs not in the cart are passed over), or all."""
    if body.all == (body.sku_ids is not None):
        raise ValidationFailed(errors=[field_error(
            "sku_ids", "send sku_ids, or all: true" if not body.all
            else "send sku_ids or all: true, not both")])
    condition = [CartItem.user_id == user_id]
    if body.sku_ids is not None:
        condition.append(CartItem.sku_id.in_(set(body.sku_ids)))
    async with resources.db.session(read_committed=True) as session, session.begin():
        await lock_user(session, user_id)
        changed = (await session.execute(update(CartItem).where(
            *condition, CartItem.selected.is_not(body.selected))
            .values(selected=body.selected, updated_at=utcnow())
            .execution_options(synchronize_session=False))).rowcount  # type: ignore[attr-defined]
        return {"changed": int(changed), "count": await _count(session, user_id)}


async def clear(resources: Resources, user_id: int, selected_only: bool) -> dict[str, Any]:
    """Empty the cart, or take the selected lines out of it."""
    condition = [CartItem.user_id == user_id]
    if selected_only:
        condition.append(CartItem.selected.is_(True))
    async with resources.db.session(read_committed=True) as session, session.begin():
        await lock_user(session, user_id)
        removed = (await session.execute(delete(CartItem).where(*condition))).rowcount  # type: ignore[attr-defined]
        return {"changed": int(removed), "count": await _count(session, user_id)}


# -- the reads ------------------------------------------------------------------------------------


async def count(resources: Resources, user_id: int) -> dict[str, Any]:
    """{"count": lines, "quantity": units}: the cart badge."""
    async with resources.db.session() as session:
        found = (await session.execute(select(func.count(), func.coalesce(
            func.sum(CartItem.quantity), 0)).where(CartItem.user_id == user_id))).one()
    return {"count": int(found[0]), "quantity": int(found[1])}


def _line_view(settings: Settings, line: CartItem, sku: Sku, product: Product,
               merchant: Merchant, image_url: str) -> dict[str, Any]:
    off_sale = product.status != "on_sale" or merchant.status != "active"
    sku_deleted = sku.deleted_at is not None or product.deleted_at is not None
    out_of_stock = not sku_deleted and 0 <= sku.stock < line.quantity  # -1: unlimited
    cap = max_quantity(settings, sku)
    over_limit = line.quantity > cap
    price_changed = sku.price != line.price_when_added
    problems = []
    if sku_deleted:
        problems.append("this item no longer exists")
    elif off_sale:
        problems.append("not on sale")
    if out_of_stock:
        problems.append(f"only {sku.stock} in stock" if sku.stock > 0 else "out of stock")
    if over_limit:
        problems.append(f"at most {cap} per order")
    return {"sku_id": sku.id, "product_id": product.id, "name": product.name,
            "image_url": image_url, "spec_text": sku.spec_text, "unit_price": sku.price,
            "price_when_added": line.price_when_added, "quantity": line.quantity,
            "line_total": sku.price * line.quantity, "selected": line.selected,
            "stock": sku.stock, "max_quantity": cap,
            "purchasable": not (off_sale or sku_deleted or out_of_stock or over_limit),
            "off_sale": off_sale, "sku_deleted": sku_deleted, "out_of_stock": out_of_stock,
            "over_limit": over_limit, "price_changed": price_changed, "problems": problems}


async def view_cart(resources: Resources, user_id: int) -> dict[str, Any]:
    """The cart grouped by shop (the shop of the most recently touched line first, lines
    newest first), each line checked against the catalogue as it is now, and the totals of
    the selected lines that can be bought."""
    settings = resources.settings
    async with resources.db.session() as session:
        rows = (await session.execute(
            select(CartItem, Sku, Product, Merchant)
            .join(Sku, Sku.id == CartItem.sku_id)
            .join(Product, Product.id == Sku.product_id)
            .join(Merchant, Merchant.user_id == Product.merchant_id)
            .where(CartItem.user_id == user_id)
            .order_by(CartItem.updated_at.desc(), CartItem.id.desc()))).all()
        media = await media_by_id(session, [_image_id(sku, product)
                                            for _, sku, product, _ in rows])
    groups: dict[int, dict[str, Any]] = {}
    for line, sku, product, merchant in rows:
        image_id = _image_id(sku, product)
        image = image_view(settings, media.get(image_id)) if image_id is not None else None
        view = _line_view(settings, line, sku, product, merchant,
                          str(image["thumb_url"]) if image is not None else "")
        group = groups.setdefault(merchant.user_id, {
            "merchant": {"id": merchant.user_id, "name": merchant.name,
                         "logo_url": merchant.logo_url},
            "lines": [], "selected_amount": 0})
        group["lines"].append(view)
        if view["selected"] and view["purchasable"]:
            group["selected_amount"] += view["line_total"]
    lines = [view for group in groups.values() for view in group["lines"]]
    chosen = [view for view in lines if view["selected"] and view["purchasable"]]
    return {"groups": list(groups.values()), "totals": {
        "lines": len(lines), "selected_lines": len(chosen),
        "selected_quantity": sum(view["quantity"] for view in chosen),
        "goods_amount": sum(view["line_total"] for view in chosen),
        "all_selected": bool(lines) and all(view["selected"] for view in lines),
        "invalid_lines": sum(1 for view in lines if not view["purchasable"])}}
