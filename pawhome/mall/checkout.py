"""Checkout: from the cart's selected lines or a buy-now item, with an address or a pick-up
point, to a plan per merchant — lines, goods total, delivery fee, discounts and the payable
total — computed on the server from current prices, never from the client's numbers.

`preview` shows the plan with the reasons anything cannot be bought; `pawhome.mall.orders.
place_orders` turns a plan without problems into orders. The price breakdown is a list of
signed lines (goods, delivery, then discounts) whose sum is the payable amount: coupons and
points payment arrive as discount lines of their own, and `allocate` spreads a discount over
the order's lines so a partial refund returns what was actually paid for them.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import VIRTUAL_KINDS, Address, Merchant, Product, Sku
from models.media import Media
from pawhome.integrations.storage import storage_for
from pawhome.mall import cart, delivery
from pawhome.media.uploads import jpeg_variant
from pawhome.platform.errors import NotPurchasable, ValidationFailed, field_error
from pawhome.platform.fields import Id
from pawhome.platform.resources import Resources
from settings import Settings

IMAGE_WIDTH = 240
Fulfilment = Literal["express", "local", "pickup"]


class CheckoutItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku_id: int = Field(ge=1, le=2**53)
    quantity: int = Field(ge=1, le=999)


class Shipment(BaseModel):
    """How one merchant's part is fulfilled. Left out: the first available option."""
    model_config = ConfigDict(extra="forbid")
    merchant_id: int = Field(ge=1, le=2**53)
    fulfilment: Fulfilment
    pickup_point_id: int | None = Field(None, ge=1, le=2**53)
    delivery_window: str | None = Field(None, max_length=16)
    remark: str = Field("", max_length=200)


class GroupBuyChoice(BaseModel):
    """Buy `sku_id` at its group-buy price: `group_id` null opens a new group, an id joins
    that group (docs/promotions.md "Group-buy")."""
    model_config = ConfigDict(extra="forbid")
    sku_id: int = Field(ge=1, le=2**53)
    group_id: int | None = Field(None, ge=1, le=2**53)


class CheckoutBody(BaseModel):
    """`items` buys those SKUs now; without it, the cart's selected lines are bought (and
    leave the cart once ordered)."""
    model_config = ConfigDict(extra="forbid")
    items: list[CheckoutItem] | None = Field(None, min_length=1, max_length=50)
    address_id: int | None = Field(None, ge=1, le=2**53)
    shipments: list[Shipment] = Field(default_factory=list, max_length=50)
    # Points payment (pawhome/points/payment.py, docs/points.md "Points payment").
    points: int = Field(0, ge=0, le=10**9, description="points to spend on what is left to "
                        "pay (N points = 1 yuan, within the rules' share of the payable)")
    redeem_sku_ids: list[Id] = Field(
        default_factory=list, max_length=50,
        description="SKUs of this checkout, with a points price, bought with points instead "
                    "of cash (SKUs sold for points only always are)")
    # Coupons (docs/promotions.md): left out, the best applicable are picked.
    coupon_ids: list[Id] | None = Field(
        None, max_length=10, description="wallet coupons to use; left out: the best "
                                         "applicable ones are picked; []: none")
    # Group-buy (pawhome/promotions/groupbuy_checkout.py): a buy-now of that one SKU.
    group_buy: GroupBuyChoice | None = Field(
        None, description="open a group (group_id null) or join one, at the group price; "
                          "`items` must be that one SKU")


@dataclass
class PlannedLine:
    sku_id: int
    product_id: int
    quantity: int
    name: str = ""
    image_url: str = ""
    spec_text: str = ""
    kind: str = "physical"  # the product's kind (models.mall.PRODUCT_KINDS)
    points_price: int = 0  # the SKU's points price (0: not for points)
    unit_price: int = 0
    line_total: int = 0
    discount_share: int = 0
    problem: str = ""  # why this line cannot be bought as asked ("" when it can)


@dataclass
class PlannedOrder:
    merchant_id: int
    merchant_name: str
    lines: list[PlannedLine] = field(default_factory=list)
    goods_amount: int = 0
    fulfilment: str = ""
    delivery_fee: int = 0
    address: dict[str, Any] | None = None
    pickup_point: dict[str, Any] | None = None
    delivery_window: str = ""
    remark: str = ""
    options: list[delivery.DeliveryOption] = field(default_factory=list)
    breakdown: list[dict[str, Any]] = field(default_factory=list)
    payable: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    # What checkout adjusters decided for this order (pawhome/mall/order_hooks.py): the
    # coupon taken, the points spent... read back by their order_placed hooks.
    adjustments: dict[str, Any] = field(default_factory=dict)
    # What the preview shows of them for this order (e.g. "coupons": chosen and alternatives).
    offers: dict[str, Any] = field(default_factory=dict)

    @property
    def discount_amount(self) -> int:
        return -sum(int(line["amount"]) for line in self.breakdown if line["kind"] == "discount")


@dataclass
class Plan:
    user_id: int
    from_cart: bool
    orders: list[PlannedOrder]
    problems: list[dict[str, str]]
    # Not enough stock as of the plan: shown by the preview; an order is still attempted
    # (stock may come back) and the stock take then decides (409 OutOfStock).
    stock_problems: list[dict[str, str]] = field(default_factory=list)
    # Checkout-wide offers from the adjusters, shown by the preview (e.g. "points").
    offers: dict[str, Any] = field(default_factory=dict)

    @property
    def payable(self) -> int:
        return sum(order.payable for order in self.orders)

    def sku_ids(self) -> list[int]:
        return [line.sku_id for order in self.orders for line in order.lines]


# -- checkout adjusters (the growth domains' part of the price: pawhome/mall/order_hooks.py) ---
# Registered through order_hooks, run by plan_checkout after goods and delivery are priced,
# in stage order, then in the order registered.
STAGE_PRICE = 10   # the price itself changes (a group-buy price)
STAGE_COUPON = 20  # coupons, on the goods after price changes
STAGE_POINTS = 30  # points payment, on what is left to pay after every cash discount

Adjuster = Callable[[AsyncSession, Settings, Plan, "CheckoutBody"], Awaitable[None]]
_ADJUSTERS: list[tuple[int, int, Adjuster]] = []


def register_adjuster(stage: int, adjuster: Adjuster) -> Adjuster:
    """Add a checkout adjuster at `stage` (usable as a decorator; registering twice is a
    no-op)."""
    if all(existing is not adjuster for _, _, existing in _ADJUSTERS):
        _ADJUSTERS.append((stage, len(_ADJUSTERS), adjuster))
        _ADJUSTERS.sort(key=lambda entry: (entry[0], entry[1]))
    return adjuster


def adjusters() -> list[Adjuster]:
    return [adjuster for _, _, adjuster in _ADJUSTERS]


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split `amount` fen over lines in proportion to `weights` (line totals), exactly:
    largest remainders get the leftover fen, so the shares always add up to `amount`."""
    total = sum(weights)
    if amount == 0 or total == 0:
        return [0] * len(weights)
    shares = [amount * w // total for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % total), i))
    for index in remainders[:amount - sum(shares)]:
        shares[index] += 1
    return shares


async def _image_urls(session: AsyncSession, settings: Settings,
                      media_ids: set[int]) -> dict[int, str]:
    if not media_ids:
        return {}
    rows = (await session.execute(select(Media).where(Media.id.in_(media_ids),
                                                      Media.status == "ready"))).scalars()
    storage = storage_for(settings)
    out: dict[int, str] = {}
    for media in rows:
        found = jpeg_variant(media, IMAGE_WIDTH)
        if found is not None:
            out[media.id] = storage.public_url(found[1])
    return out


def _line_problem(settings: Settings, user_id: int, sku: Sku | None, product: Product | None,
                  merchant: Merchant | None, quantity: int) -> str:
    if sku is None or product is None or sku.deleted_at is not None \
            or product.deleted_at is not None:
        return "this item no longer exists"
    if product.status != "on_sale":
        return "this product is not on sale"
    if merchant is None or merchant.status != "active":
        return "this shop is closed"
    if product.merchant_id == user_id:
        return "you cannot buy your own products"
    limit = min(settings.cart_max_quantity, sku.purchase_limit or settings.cart_max_quantity)
    if quantity > limit:
        return f"at most {limit} per order"
    return ""


def _stock_problem(sku: Sku | None, quantity: int) -> str:
    if sku is None or sku.stock < 0 or sku.stock >= quantity:  # stock -1: unlimited
        return ""
    return f"out of stock: {sku.stock} left" if sku.stock else "out of stock"


async def _wanted(session: AsyncSession, user_id: int,
                  body: CheckoutBody) -> tuple[list[tuple[int, int]], bool]:
    """(sku_id, quantity) in the order asked, and whether they came from the cart."""
    if body.items is not None:
        merged: dict[int, int] = {}
        for item in body.items:
            merged[item.sku_id] = merged.get(item.sku_id, 0) + item.quantity
        return list(merged.items()), False
    lines = [line for line in await cart.selected_lines(session, user_id)]
    if not lines:
        raise ValidationFailed("Nothing selected in the cart", errors=[
            field_error("items", "select cart items or name items to buy now")])
    return [(line.sku_id, line.quantity) for line in lines], True


async def plan_checkout(session: AsyncSession, settings: Settings, user_id: int,
                        body: CheckoutBody) -> Plan:
    """The plan for this checkout as things stand now (read-only). Caller commits."""
    wanted, from_cart = await _wanted(session, user_id, body)
    if len(wanted) > settings.order_max_lines:
        raise ValidationFailed(errors=[field_error(
            "items", f"at most {settings.order_max_lines} lines in one checkout")])
    sku_ids = [sku_id for sku_id, _ in wanted]
    skus = {s.id: s for s in (await session.execute(
        select(Sku).where(Sku.id.in_(sku_ids)))).scalars()}
    products = {p.id: p for p in (await session.execute(select(Product).where(
        Product.id.in_({s.product_id for s in skus.values()})))).scalars()}
    merchants = {m.user_id: m for m in (await session.execute(select(Merchant).where(
        Merchant.user_id.in_({p.merchant_id for p in products.values()})))).scalars()}
    images = await _image_urls(session, settings, {
        media_id for s in skus.values() for media_id in (
            [s.image_media_id] if s.image_media_id else
            [int(m) for m in (products[s.product_id].media_ids or [])[:1]]
            if s.product_id in products else [])})
    address: Address | None = None
    if body.address_id is not None:
        address = await delivery.get_address(session, user_id, body.address_id)

    problems: list[dict[str, str]] = []
    stock_problems: list[dict[str, str]] = []
    by_merchant: dict[int, PlannedOrder] = {}
    for index, (sku_id, quantity) in enumerate(wanted):
        sku = skus.get(sku_id)
        product = products.get(sku.product_id) if sku else None
        merchant = merchants.get(product.merchant_id) if product else None
        line = PlannedLine(sku_id=sku_id, product_id=product.id if product else 0,
                           quantity=quantity)
        line.problem = _line_problem(settings, user_id, sku, product, merchant, quantity)
        if line.problem:
            problems.append(field_error(f"items.{index}.sku_id", line.problem))
        else:
            line.problem = _stock_problem(sku, quantity)
            if line.problem:
                stock_problems.append(field_error(f"items.{index}.quantity", line.problem))
        if sku is None or product is None or merchant is None:
            continue
        line.name, line.spec_text = product.name, sku.spec_text
        line.kind, line.points_price = product.kind, sku.points_price
        line.unit_price, line.line_total = sku.price, sku.price * quantity
        image_id = sku.image_media_id or (int(product.media_ids[0])
                                          if product.media_ids else None)
        line.image_url = images.get(image_id, "") if image_id else ""
        order = by_merchant.setdefault(merchant.user_id,
                                       PlannedOrder(merchant.user_id, merchant.name))
        order.lines.append(line)

    shipments = {s.merchant_id: s for s in body.shipments}
    problems.extend(field_error("shipments", f"no items of merchant {merchant_id}")
                    for merchant_id in shipments if merchant_id not in by_merchant)
    for order in by_merchant.values():
        order.goods_amount = sum(line.line_total for line in order.lines)
        if all(line.kind in VIRTUAL_KINDS for line in order.lines):
            order.fulfilment = "virtual"  # into the buyer's inventory: no address, no fee
        else:
            await _plan_delivery(session, order, address, shipments.get(order.merchant_id),
                                 body.address_id)
        order.breakdown = [
            {"kind": "goods", "code": "goods", "label": "商品金额", "amount": order.goods_amount},
            {"kind": "delivery", "code": "delivery", "label": "运费", "amount": order.delivery_fee},
        ]
        order.payable = _payable(order)
    plan = Plan(user_id=user_id, from_cart=from_cart, orders=list(by_merchant.values()),
                problems=problems, stock_problems=stock_problems)
    for adjuster in adjusters():
        await adjuster(session, settings, plan, body)
    for order in plan.orders:
        order.payable = _payable(order)
        shares = allocate(min(order.discount_amount, order.goods_amount),
                          [line.line_total for line in order.lines])
        for line, share in zip(order.lines, shares, strict=True):
            line.discount_share = share
        plan.problems.extend(order.problems)
    return plan


def _payable(order: PlannedOrder) -> int:
    """The sum of the breakdown's signed lines; discounts never take it below zero."""
    return max(0, sum(int(line["amount"]) for line in order.breakdown))


async def _plan_delivery(session: AsyncSession, order: PlannedOrder, address: Address | None,
                         shipment: Shipment | None, address_id: int | None) -> None:
    order.options = await delivery.options_for(session, order.merchant_id, address,
                                               order.goods_amount)
    if shipment is None:
        chosen = next((o for o in order.options if o.available), None)
        if chosen is None:
            reasons = "; ".join(o.reason for o in order.options if o.reason) or \
                "this shop offers no delivery for this address"
            order.problems.append(field_error(f"shipments.{order.merchant_id}", reasons))
            return
        fulfilment = chosen.fulfilment
        pickup_point_id = int(chosen.pickup_points[0]["id"]) \
            if fulfilment == "pickup" and chosen.pickup_points else None
        window = chosen.windows[0] if fulfilment == "local" and chosen.windows else None
        remark = ""
    else:
        fulfilment, pickup_point_id = shipment.fulfilment, shipment.pickup_point_id
        window, remark = shipment.delivery_window, shipment.remark
    try:
        quote = await delivery.quote(session, order.merchant_id, fulfilment=fulfilment,
                                     address=address, pickup_point_id=pickup_point_id,
                                     window=window, goods_amount=order.goods_amount,
                                     offered=order.options)
    except ValidationFailed as refused:
        for error in refused.errors or [field_error("fulfilment", refused.message)]:
            order.problems.append(field_error(
                f"shipments.{order.merchant_id}.{error['field']}", error["message"]))
        return
    order.fulfilment, order.delivery_fee = quote.fulfilment, quote.fee
    order.address, order.pickup_point = quote.address, quote.pickup_point
    order.delivery_window, order.remark = quote.window, remark


def render_plan(plan: Plan) -> dict[str, Any]:
    """The preview reply: per merchant, the lines, the delivery options and the chosen one,
    the price breakdown and the payable amount (all fen); the problems, if any."""
    return {
        "orders": [{
            "merchant": {"id": order.merchant_id, "name": order.merchant_name},
            "lines": [{"sku_id": line.sku_id, "product_id": line.product_id,
                       "name": line.name, "image_url": line.image_url,
                       "spec_text": line.spec_text, "unit_price": line.unit_price,
                       "quantity": line.quantity, "line_total": line.line_total,
                       "purchasable": not line.problem, "problem": line.problem}
                      for line in order.lines],
            "delivery_options": [{"fulfilment": o.fulfilment, "available": o.available,
                                  "fee": o.fee, "reason": o.reason, "windows": o.windows,
                                  "pickup_points": o.pickup_points} for o in order.options],
            "fulfilment": order.fulfilment, "delivery_fee": order.delivery_fee,
            "address": order.address, "pickup_point": order.pickup_point,
            "delivery_window": order.delivery_window,
            "goods_amount": order.goods_amount, "discount_amount": order.discount_amount,
            "price_breakdown": order.breakdown, "payable_amount": order.payable,
            **order.offers,
        } for order in plan.orders],
        "goods_amount": sum(o.goods_amount for o in plan.orders),
        "delivery_fee": sum(o.delivery_fee for o in plan.orders),
        "discount_amount": sum(o.discount_amount for o in plan.orders),
        "payable_amount": plan.payable,
        "purchasable": not plan.problems and not plan.stock_problems,
        "problems": plan.problems + plan.stock_problems,
        **plan.offers,
    }


async def preview(resources: Resources, user_id: int, body: CheckoutBody) -> dict[str, Any]:
    async with resources.db.session() as session:
        plan = await plan_checkout(session, resources.settings, user_id, body)
    return render_plan(plan)


def refuse_problems(plan: Plan) -> None:
    """Raise NotPurchasable (422) with every reason when the plan cannot become orders."""
    if plan.problems:
        raise NotPurchasable(errors=plan.problems, data=render_plan(plan))
    if not plan.orders:
        raise NotPurchasable(errors=[field_error("items", "nothing to buy")])
