"""Points payment at checkout and the points mall: one catalogue, one order pipeline.

- A SKU with a points price and no cash price (price 0) is sold for points only: its points
  are always charged. A SKU with both is bought with points when the checkout names it in
  `redeem_sku_ids`; its cash price then leaves the order as a "points_redeem" discount line.
- `points` (N) in the checkout pays part of what is left with points: at the rules'
  `payment_points_per_yuan` points a yuan, at most `payment_max_percent` % of each order's
  payable after every cash discount (coupons come first: STAGE_POINTS is the last stage). A
  "points" discount line carries it. Asking more than the rule allows uses the most allowed;
  asking more than the balance, or redeeming more than it, is refused (422) with the reason.

The adjuster (read-only) plans it; the `order_placed` hook takes the points in the checkout's
transaction (InsufficientPoints, 422, rolls the whole checkout back when the balance fell
meanwhile); `order_cancelled` gives back exactly what the order took; `order_refunded`
gives back in proportion to the money refunded (everything left on a whole refund). An order
that owes nothing then is paid at once by the mall (place_orders). docs/points.md.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import Order, RefundRequest
from pawhome.mall import order_hooks, orders
from pawhome.mall.checkout import CheckoutBody, Plan, PlannedOrder
from pawhome.platform.errors import field_error
from pawhome.points import earning, ledger
from pawhome.points import rules as points_rules
from settings import Settings

ORDER_REF = earning.ORDER_REF
SPENT = ("points_payment", "points_mall")
GIVEN_BACK = {"points_payment": "points_payment_refund", "points_mall": "points_mall_refund"}


def _redeem(order: PlannedOrder, wanted: set[int]) -> tuple[dict[int, int], int]:
    """The points of each of the order's lines bought with points (by SKU), and their cash."""
    points: dict[int, int] = {}
    cash = 0
    for line in order.lines:
        if line.points_price and (line.unit_price == 0 or line.sku_id in wanted):
            points[line.sku_id] = line.points_price * line.quantity
            cash += line.line_total
    return points, cash


def _line_key(order_id: int, sku_id: int) -> str:
    return f"points_mall:{order_id}:{sku_id}"


async def plan_points(session: AsyncSession, settings: Settings, plan: Plan,
                      body: CheckoutBody) -> None:
    """STAGE_POINTS: redeemed lines, then the points asked for, order by order."""
    rules = await points_rules.load(session)
    balance = await ledger.balance_of(session, plan.user_id)
    wanted = set(body.redeem_sku_ids)
    in_checkout = {line.sku_id: line for order in plan.orders for line in order.lines}
    for index, sku_id in enumerate(body.redeem_sku_ids):
        line = in_checkout.get(sku_id)
        if line is None or not line.points_price:
            plan.problems.append(field_error(
                f"redeem_sku_ids.{index}", "not in this checkout" if line is None
                else "this item has no points price"))
    for order in plan.orders:
        for line in order.lines:
            if line.points_price and line.problem.startswith("out of stock") \
                    and (line.unit_price == 0 or line.sku_id in wanted):
                # Redeeming beyond the stock: refused with the reason (422), not tried.
                plan.problems.append(field_error("items", f"SKU {line.sku_id}: {line.problem}"))
    left, redeem_total, pay_total, max_usable = body.points, 0, 0, 0
    for order in sorted(plan.orders, key=lambda o: o.merchant_id):
        by_line, redeem_cash = _redeem(order, wanted)
        redeem_points = sum(by_line.values())
        if redeem_cash:
            order.breakdown.append({"kind": "discount", "code": "points_redeem",
                                    "label": "积分兑换", "amount": -redeem_cash,
                                    "points": redeem_points})
        payable = max(0, sum(int(line["amount"]) for line in order.breakdown))
        cap = rules.points_within_fen(payable * rules.payment_max_percent // 100)
        using = min(left, cap)
        value = rules.points_value_fen(using)
        if using:
            order.breakdown.append({"kind": "discount", "code": "points",
                                    "label": "积分抵扣", "amount": -value, "points": using})
        left -= using
        redeem_total += redeem_points
        pay_total += using
        max_usable += cap
        order.adjustments["points"] = {"payment": using, "value": value,
                                       "redeem": redeem_points, "lines": by_line}
        order.offers["points"] = {"using": using, "value": value, "redeem": redeem_points}
    if redeem_total + pay_total > balance:
        plan.problems.append(field_error(
            "points", f"needs {redeem_total + pay_total} points, the balance is {balance}"))
    usable = min(max_usable, max(0, balance - redeem_total))
    plan.offers["points"] = {
        "balance": balance, "points_per_yuan": rules.payment_points_per_yuan,
        "max_percent": rules.payment_max_percent, "max_usable": usable,
        "max_value": rules.points_value_fen(usable), "using": pay_total,
        "value": sum(int(o.adjustments["points"]["value"]) for o in plan.orders),
        "redeem": redeem_total, "total": redeem_total + pay_total}


order_hooks.register_adjuster(order_hooks.STAGE_POINTS, plan_points)


@order_hooks.order_placed.connect
async def spend_points(session: AsyncSession, order: Order, planned: PlannedOrder, plan: Plan,
                       body: CheckoutBody) -> None:
    """Take the order's points in the checkout's transaction: each line bought with points
    (points_mall, one row a line so a refund of a line returns its own points) and the
    points payment (points_payment). InsufficientPoints (422) refuses the checkout."""
    decided: dict[str, Any] = planned.adjustments.get("points") or {}
    for sku_id, points in sorted((decided.get("lines") or {}).items()):
        await ledger.change(session, order.user_id, -int(points), reason="points_mall",
                            key=_line_key(order.id, sku_id), ref_type=ORDER_REF,
                            ref_id=order.id, note=f"{order.order_no} SKU {sku_id}")
    if int(decided.get("payment", 0)) > 0:
        await ledger.change(session, order.user_id, -int(decided["payment"]),
                            reason="points_payment", key=f"points_payment:{order.id}",
                            ref_type=ORDER_REF, ref_id=order.id, note=order.order_no)


async def _spent(session: AsyncSession, order: Order) -> dict[str, int]:
    """What the order took (positive) and what went back already, by spending reason."""
    out = {}
    for reason in SPENT:
        spent = -await ledger.ledger_total(session, order.user_id, ref_type=ORDER_REF,
                                           ref_id=order.id, reasons=(reason,))
        back = await ledger.ledger_total(session, order.user_id, ref_type=ORDER_REF,
                                         ref_id=order.id, reasons=(GIVEN_BACK[reason],))
        out[reason] = spent - back
    return out


@order_hooks.order_cancelled.connect
async def give_back_on_cancel(session: AsyncSession, order: Order) -> None:
    """An unpaid order was cancelled: every point it took goes back, exactly."""
    for reason, points in (await _spent(session, order)).items():
        if points > 0:
            await ledger.change(session, order.user_id, points, reason=GIVEN_BACK[reason],
                                key=f"{GIVEN_BACK[reason]}:cancel:{order.id}",
                                ref_type=ORDER_REF, ref_id=order.id, note="order cancelled")


@order_hooks.order_refunded.connect
async def give_back_on_refund(session: AsyncSession, order: Order, request: RefundRequest,
                              whole: bool) -> None:
    """A refund was settled (its lines are counted refunded already): each refunded line
    bought with points returns its points in proportion to the units refunded; the points
    payment returns in proportion to the cash refunded (to the goods refunded when points
    paid everything). Exact over several partial refunds; once per refund."""
    items = {item.id: item for item in await orders.items_of(session, order.id)}
    asked = {int(line["item_id"]): int(line["quantity"]) for line in request.lines}
    goods_back = 0
    for item_id, quantity in asked.items():
        item = items[item_id]
        spent = -await ledger.delta_of_key(session, order.user_id,
                                           _line_key(order.id, item.sku_id))
        goods_back += earning.proportional(spent, item.refunded_quantity - quantity,
                                           item.refunded_quantity, item.quantity)
    paid = -await ledger.ledger_total(session, order.user_id, ref_type=ORDER_REF,
                                      ref_id=order.id, reasons=("points_payment",))
    if order.paid_amount > 0:
        payment_back = earning.proportional(paid, order.refunded_amount - request.amount,
                                            order.refunded_amount, order.paid_amount)
    else:
        value = sum(i.line_total for i in items.values())
        after = sum(i.line_total * i.refunded_quantity // i.quantity for i in items.values())
        before = sum(i.line_total * (i.refunded_quantity - asked.get(i.id, 0)) // i.quantity
                     for i in items.values())
        payment_back = earning.proportional(paid, before, after, value)
    for reason, back in (("points_mall", goods_back), ("points_payment", payment_back)):
        if back > 0:
            await ledger.change(session, order.user_id, back, reason=GIVEN_BACK[reason],
                                key=f"{GIVEN_BACK[reason]}:refund:{request.id}",
                                ref_type=ORDER_REF, ref_id=order.id,
                                note=f"refund {request.refund_no}")
