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
from pawhome.mall import order_hooks
from pawhome.mall.checkout import CheckoutBody, Plan, PlannedOrder
from pawhome.platform.errors import field_error
from pawhome.points import earning, ledger
from pawhome.points import rules as points_rules
from settings import Settings

ORDER_REF = earning.ORDER_REF
SPENT = ("points_payment", "points_mall")
GIVEN_BACK = {"points_payment": "points_payment_refund", "points_mall": "points_mall_refund"}


def _redeem(order: PlannedOrder, wanted: set[int]) -> tuple[int, int]:
    """(points, cash fen) of the order's lines bought with points."""
    points = cash = 0
    for line in order.lines:
        if line.points_price and (line.unit_price == 0 or line.sku_id in wanted):
            points += line.points_price * line.quantity
            cash += line.line_total
    return points, cash


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
        redeem_points, redeem_cash = _redeem(order, wanted)
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
                                       "redeem": redeem_points}
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
    """Take the order's points in the checkout's transaction: redeemed goods (points_mall)
    and the points payment (points_payment). InsufficientPoints (422) refuses the checkout."""
    decided: dict[str, Any] = planned.adjustments.get("points") or {}
    for reason, points in (("points_mall", int(decided.get("redeem", 0))),
                           ("points_payment", int(decided.get("payment", 0)))):
        if points > 0:
            await ledger.change(session, order.user_id, -points, reason=reason,
                                key=f"{reason}:{order.id}", ref_type=ORDER_REF,
                                ref_id=order.id, note=order.order_no)


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
    """A refund was paid back: the order's points come back in proportion to the money
    refunded (of the cash paid), everything still held on a whole refund."""
    before = order.refunded_amount - request.amount
    for reason in SPENT:
        spent = -await ledger.ledger_total(session, order.user_id, ref_type=ORDER_REF,
                                           ref_id=order.id, reasons=(reason,))
        if spent <= 0:
            continue
        if whole:
            back = spent - await ledger.ledger_total(
                session, order.user_id, ref_type=ORDER_REF, ref_id=order.id,
                reasons=(GIVEN_BACK[reason],))
        else:
            back = earning.proportional(spent, before, order.refunded_amount, order.paid_amount)
        if back > 0:
            await ledger.change(session, order.user_id, back, reason=GIVEN_BACK[reason],
                                key=f"{GIVEN_BACK[reason]}:refund:{request.id}",
                                ref_type=ORDER_REF, ref_id=order.id,
                                note=f"refund {request.refund_no}")
