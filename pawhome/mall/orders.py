"""Orders: the one module that writes `orders`, `order_items` and (through order_states)
`order_events` — placing a checkout's orders with their stock taken, cancelling (buyer,
unpaid timeout, admin), applying a payment, shipping, pick-up, receipt and auto-completion.

Stock is taken inside the transaction that writes the orders (pawhome/mall/stock.py: never
below zero, SKUs locked in one global order so concurrent checkouts cannot deadlock) and given
back exactly once, by the transition that frees it. An unpaid order is cancelled by a delayed
task queued with it and, should that task be lost, by the beat sweep; both go through
`cancel_order`, which does nothing to an order that is no longer unpaid.
"""
from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Order, OrderItem, Product, Sku
from pawhome.mall import cart, checkout, order_hooks, order_states, products, stock
from pawhome.mall.order_states import ActorType
from pawhome.messaging import notifications
from pawhome.payments import payments
from pawhome.platform import audit, outbox
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import NotFound, OutOfStock, ValidationFailed, field_error
from pawhome.platform.resources import Resources

CANCEL_TASK = "default.cancel_unpaid_order"
PAYABLE_TYPE = "order"  # what an order is to pawhome.payments
SWEEP_BATCH = 200


def new_order_no(now: dt.datetime) -> str:
    """yymmdd + 12 random digits: readable, sortable by day, not guessable in sequence."""
    return f"{now:%y%m%d}{secrets.randbelow(10**12):012d}"


async def lock_order(session: AsyncSession, order_id: int) -> Order:
    order = (await session.execute(select(Order).where(Order.id == order_id)
                                   .with_for_update()
                                   .execution_options(populate_existing=True))
             ).scalar_one_or_none()
    if order is None:
        raise NotFound("No such order")
    return order


async def items_of(session: AsyncSession, order_id: int) -> list[OrderItem]:
    return list((await session.execute(select(OrderItem).where(OrderItem.order_id == order_id)
                                       .order_by(OrderItem.id))).scalars())


# -- placing ------------------------------------------------------------------------------------


def _shortage_errors(plan: checkout.Plan, shortages: list[stock.Shortage]) -> list[dict[str, str]]:
    position = {sku_id: index for index, sku_id in enumerate(plan.sku_ids())}
    return [field_error(f"items.{position.get(s.sku_id, 0)}.quantity",
                        f"out of stock: {s.available} left" if s.available else "out of stock")
            for s in shortages]


async def _write_order(session: AsyncSession, planned: checkout.PlannedOrder, user_id: int,
                       checkout_key: str, now: dt.datetime, deadline: dt.datetime) -> Order:
    order = Order(order_no=new_order_no(now), user_id=user_id,
                  merchant_id=planned.merchant_id, checkout_key=checkout_key,
                  status="pending_payment", fulfilment=planned.fulfilment,
                  address=planned.address, pickup_point=planned.pickup_point,
                  delivery_window=planned.delivery_window, goods_amount=planned.goods_amount,
                  delivery_fee=planned.delivery_fee, discount_amount=planned.discount_amount,
                  payable_amount=planned.payable, price_breakdown=planned.breakdown,
                  remark=planned.remark, pay_deadline=deadline, created_at=now, updated_at=now)
    session.add(order)
    await session.flush()
    session.add_all([OrderItem(order_id=order.id, product_id=line.product_id,
                               sku_id=line.sku_id, name=line.name, image_url=line.image_url,
                               spec_text=line.spec_text, unit_price=line.unit_price,
                               quantity=line.quantity, line_total=line.line_total,
                               discount_share=line.discount_share)
                     for line in planned.lines])
    order_states.record_placed(session, order, user_id)
    return order


async def place_orders(resources: Resources, user_id: int, body: checkout.CheckoutBody,
                       checkout_key: str = "") -> dict[str, Any]:
    """Turn a checkout into one order per merchant, pending payment, with stock taken.
    Prices, fees and totals are computed here from current data. 422 NotPurchasable with
    the reasons when something cannot be bought; 409 OutOfStock when the stock is gone;
    nothing is written then. Bought cart lines leave the cart."""
    settings = resources.settings

    async def work(session: AsyncSession) -> tuple[list[int], list[int]]:
        plan = await checkout.plan_checkout(session, settings, user_id, body)
        checkout.refuse_problems(plan)
        now = utcnow()
        deadline = now + dt.timedelta(seconds=settings.order_unpaid_timeout_seconds)
        written = []
        # Merchant order, then SKU order within take(): one global locking order.
        for planned in sorted(plan.orders, key=lambda o: o.merchant_id):
            order = await _write_order(session, planned, user_id, checkout_key, now, deadline)
            shortages = await stock.take(
                session, [stock.StockMove(line.sku_id, line.quantity) for line in planned.lines],
                reason="order_placed", ref_type="order", ref_id=order.id, actor_id=user_id)
            if shortages:
                raise OutOfStock(errors=_shortage_errors(plan, shortages))
            await order_hooks.order_placed.run(session, order, planned, plan, body)
            if order.payable_amount == 0:  # covered by points or discounts: nothing to pay
                await mark_paid(session, order.id, 0)
            else:
                outbox.enqueue_task(session, CANCEL_TASK, order.id,
                                    countdown=settings.order_unpaid_timeout_seconds + 1)
            written.append(order.id)
        if plan.from_cart:
            await cart.remove_lines(session, user_id, plan.sku_ids())
        return written, sorted({line.product_id for o in plan.orders for line in o.lines})

    order_ids, product_ids = await run_transaction(resources.db, work)
    await products.forget_products(resources, product_ids)
    async with resources.db.session() as session:
        rows = list((await session.execute(select(Order).where(Order.id.in_(order_ids))
                                            .order_by(Order.id))).scalars())
        return {"orders": [{"id": o.id, "order_no": o.order_no, "merchant_id": o.merchant_id,
                            "status": o.status, "payable_amount": o.payable_amount,
                            "pay_deadline": o.pay_deadline} for o in rows],
                "payable_amount": sum(o.payable_amount for o in rows)}


# -- cancelling -----------------------------------------------------------------------------------


async def _release_stock(session: AsyncSession, order: Order, actor_id: int | None,
                         reason: str) -> list[int]:
    items = await items_of(session, order.id)
    await stock.give_back(session, [stock.StockMove(i.sku_id, i.quantity) for i in items],
                          reason=reason, ref_type="order", ref_id=order.id, actor_id=actor_id)
    return sorted({i.product_id for i in items})


async def cancel_in_session(session: AsyncSession, order: Order, *, actor_type: ActorType,
                            actor_id: int | None, reason: str) -> list[int]:
    """Cancel a locked, unpaid order: status, timeline, stock back (exactly once: only this
    transition frees it), the WeChat Pay transaction closed. Returns the product ids whose
    stock moved. Caller commits."""
    order_states.transition(session, order, "cancel", actor_type=actor_type, actor_id=actor_id,
                            reason=reason)
    order.cancelled_at, order.cancel_reason = order.updated_at, reason[:255]
    product_ids = await _release_stock(session, order, actor_id, "order_cancelled")
    await order_hooks.order_cancelled.run(session, order)
    payments.close_later(session, payable_type=PAYABLE_TYPE, payable_id=order.id)
    return product_ids


async def cancel_order(resources: Resources, order_id: int, *, actor_type: ActorType,
                       actor_id: int | None, reason: str, buyer_id: int | None = None,
                       if_unpaid: bool = False) -> dict[str, Any] | None:
    """Cancel an unpaid order. `buyer_id`: only that buyer's order (others' → 404).
    `if_unpaid`: an order that is no longer unpaid is left alone and None returned (the
    timeout task and the sweep), instead of 409."""
    async with resources.db.session() as session, session.begin():
        order = await lock_order(session, order_id)
        if buyer_id is not None and order.user_id != buyer_id:
            raise NotFound("No such order")
        if if_unpaid and order.status != "pending_payment":
            return None
        product_ids = await cancel_in_session(session, order, actor_type=actor_type,
                                              actor_id=actor_id, reason=reason)
        result = {"id": order.id, "status": order.status}
    await products.forget_products(resources, product_ids)
    return result


async def cancel_overdue(resources: Resources, limit: int = SWEEP_BATCH) -> int:
    """The sweep behind the timeout task: cancel unpaid orders past their deadline (a task
    that was lost — worker down, broker flushed — is caught here). Returns how many."""
    async with resources.db.session() as session:
        due = list((await session.execute(
            select(Order.id).where(Order.status == "pending_payment",
                                   Order.pay_deadline < utcnow())
            .order_by(Order.pay_deadline).limit(limit))).scalars())
    done = 0
    for order_id in due:
        if await cancel_order(resources, order_id, actor_type="system", actor_id=None,
                              reason="unpaid before the deadline", if_unpaid=True):
            done += 1
    return done


async def cancel_if_overdue(resources: Resources, order_id: int) -> bool:
    """The timeout task: cancel the order if it is still unpaid and past its deadline."""
    async with resources.db.session() as session:
        order = await session.get(Order, order_id)
        if order is None or order.status != "pending_payment" or order.pay_deadline > utcnow():
            return False
    return await cancel_order(resources, order_id, actor_type="system", actor_id=None,
                              reason="unpaid before the deadline", if_unpaid=True) is not None


# -- paid ---------------------------------------------------------------------------------------


async def _count_sales(session: AsyncSession, items: Iterable[OrderItem]) -> None:
    by_sku: dict[int, int] = {}
    by_product: dict[int, int] = {}
    for item in items:
        by_sku[item.sku_id] = by_sku.get(item.sku_id, 0) + item.quantity
        by_product[item.product_id] = by_product.get(item.product_id, 0) + item.quantity
    # Products before SKUs, each in id order: the order the catalogue's writes lock them.
    for product_id in sorted(by_product):
        await session.execute(update(Product).where(Product.id == product_id)
                              .values(sales_count=Product.sales_count + by_product[product_id])
                              .execution_options(synchronize_session=False))
    for sku_id in sorted(by_sku):
        await session.execute(update(Sku).where(Sku.id == sku_id)
                              .values(sales_count=Sku.sales_count + by_sku[sku_id])
                              .execution_options(synchronize_session=False))


async def mark_paid(session: AsyncSession, order_id: int, amount: int) -> bool:
    """Apply a confirmed payment of `amount` fen to an order (payments' on_paid): True when
    the order took it (or already had), False when it can no longer — cancelled meanwhile,
    or the amount is not what it owes — and the money must go back. Caller commits."""
    order = await lock_order(session, order_id)
    if order.status != "pending_payment":
        return order.paid_at is not None
    if amount != order.payable_amount:
        return False
    order_states.transition(session, order, "pay", actor_type="system", actor_id=None)
    order.paid_amount, order.paid_at = amount, order.updated_at
    if order.fulfilment == "pickup":
        order.pickup_code = f"{secrets.randbelow(10**6):06d}"
    await _count_sales(session, await items_of(session, order.id))
    await order_hooks.order_paid.run(session, order)
    yuan = f"{order.payable_amount / 100:.2f}"
    told = {order.merchant_id: {"title": "新订单",
                                "text": f"订单 {order.order_no} 已付款 ¥{yuan}"},
            order.user_id: {"title": "支付成功",
                            "text": f"订单 {order.order_no} 支付成功 ¥{yuan}"}}
    for user_id in sorted(told):  # notify() locks each recipient: one order for everyone
        await notifications.notify(session, user_id, "order", "order_paid",
                                   target_type="order", target_id=order.id,
                                   payload={**told[user_id], "order_no": order.order_no})
    return True


# -- fulfilment ---------------------------------------------------------------------------------


async def _merchant_order(session: AsyncSession, order_id: int, merchant_id: int | None) -> Order:
    """A locked order of this merchant (None: an admin, any order); others' → 404."""
    order = await lock_order(session, order_id)
    if merchant_id is not None and order.merchant_id != merchant_id:
        raise NotFound("No such order")
    return order


async def ship(resources: Resources, order_id: int, *, merchant_id: int | None, actor_id: int,
               actor_role: str, carrier: str, tracking_no: str) -> dict[str, Any]:
    """Hand a paid express or local-delivery order to the carrier (or the shop's courier)."""
    async with resources.db.session() as session, session.begin():
        order = await _merchant_order(session, order_id, merchant_id)
        if order.fulfilment == "pickup":
            raise ValidationFailed("A pick-up order is not shipped", errors=[
                field_error("fulfilment", "pickup: use ready-for-pickup")])
        order_states.transition(session, order, "ship", actor_type="merchant",
                                actor_id=actor_id)
        order.carrier, order.tracking_no = carrier, tracking_no
        order.shipped_at = order.updated_at
        order.auto_complete_at = order.updated_at + dt.timedelta(
            days=resources.settings.order_auto_complete_days)
        _audit(session, actor_id, actor_role, "order.ship", order,
                     {"carrier": carrier, "tracking_no": tracking_no})
        await notifications.notify(session, order.user_id, "order", "order_shipped",
                                   target_type="order", target_id=order.id,
                                   payload={"title": "订单已发货", "order_no": order.order_no,
                                            "text": f"{carrier} {tracking_no}".strip()})
        return {"id": order.id, "status": order.status}


async def ready_for_pickup(resources: Resources, order_id: int, *, merchant_id: int | None,
                           actor_id: int, actor_role: str) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        order = await _merchant_order(session, order_id, merchant_id)
        if order.fulfilment != "pickup":
            raise ValidationFailed("Only a pick-up order waits for pick-up", errors=[
                field_error("fulfilment", f"{order.fulfilment}: ship it instead")])
        order_states.transition(session, order, "ready_for_pickup", actor_type="merchant",
                                actor_id=actor_id)
        _audit(session, actor_id, actor_role, "order.ready_for_pickup", order, {})
        point = (order.pickup_point or {}).get("name", "")
        await notifications.notify(session, order.user_id, "order", "order_ready_for_pickup",
                                   target_type="order", target_id=order.id,
                                   payload={"title": "订单待自提", "order_no": order.order_no,
                                            "text": f"请到{point}自提，取货码 {order.pickup_code}"})
        return {"id": order.id, "status": order.status}


async def pick_up(resources: Resources, order_id: int, *, merchant_id: int | None,
                  actor_id: int, actor_role: str, pickup_code: str) -> dict[str, Any]:
    """The buyer collected the goods: the merchant confirms with the buyer's pick-up code."""
    async with resources.db.session() as session, session.begin():
        order = await _merchant_order(session, order_id, merchant_id)
        order_states.check(order, "pick_up")
        if not secrets.compare_digest(order.pickup_code, pickup_code):
            raise ValidationFailed(errors=[field_error("pickup_code", "wrong pick-up code")])
        order_states.transition(session, order, "pick_up", actor_type="merchant",
                                actor_id=actor_id)
        await completed(session, order)
        _audit(session, actor_id, actor_role, "order.pick_up", order, {})
        return {"id": order.id, "status": order.status}


async def confirm_receipt(resources: Resources, user_id: int, order_id: int) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        order = await lock_order(session, order_id)
        if order.user_id != user_id:
            raise NotFound("No such order")
        order_states.transition(session, order, "confirm_receipt", actor_type="buyer",
                                actor_id=user_id)
        await completed(session, order)
        return {"id": order.id, "status": order.status}


async def completed(session: AsyncSession, order: Order) -> None:
    """After a transition into `completed`: the time, and the domains' order_completed
    hook (points for the purchase). Caller commits."""
    order.completed_at = order.updated_at
    await order_hooks.order_completed.run(session, order)


async def complete_overdue(resources: Resources, limit: int = SWEEP_BATCH) -> int:
    """Shipped orders past auto_complete_at complete by themselves (beat)."""
    async with resources.db.session() as session:
        due = list((await session.execute(
            select(Order.id).where(Order.status == "shipped", Order.auto_complete_at < utcnow())
            .order_by(Order.auto_complete_at).limit(limit))).scalars())
    done = 0
    for order_id in due:
        async with resources.db.session() as session, session.begin():
            order = await lock_order(session, order_id)
            if order.status != "shipped" or order.auto_complete_at is None \
                    or order.auto_complete_at >= utcnow():
                continue
            order_states.transition(session, order, "auto_complete", actor_type="system",
                                    actor_id=None, reason="not confirmed in time")
            await completed(session, order)
            done += 1
    return done


def _audit(session: AsyncSession, actor_id: int, actor_role: str, action: str, order: Order,
           after: dict[str, Any]) -> None:
    audit.record(session, actor_id=actor_id, actor_role=actor_role, action=action,
                 target_type="order", target_id=order.id, after={"status": order.status, **after})
