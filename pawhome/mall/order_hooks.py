"""Where the growth domains — points, coupons, group-buy (docs/points.md, docs/promotions.md)
— take part in checkout and in an order's life without the mall importing them.

Two kinds of extension, both connected when the higher domain's module is imported
(pawhome/domains.py):

- **Checkout adjusters** (`register_adjuster`): run by `checkout.plan_checkout`, read-only,
  in stage order, after goods and delivery are priced. An adjuster may add signed discount
  lines to an order's `breakdown` (kind "discount", amount < 0, a `code` such as "coupon",
  "points", "group_buy"), note what it decided in `PlannedOrder.adjustments` (the coupon id,
  the points to spend, the group to join) and put what the preview should show in
  `PlannedOrder.offers` / `Plan.offers` (the best coupon and the alternatives, the points
  the buyer may use). Prices stay the server's: an adjuster reads the body's wishes and
  checks them; what cannot be honoured is a problem (`order.problems` / `plan.problems`),
  which makes the checkout 422 with the reason.
- **Order hooks** (pawhome/platform/hooks.py): run inside the mall's unit of work at each
  step of an order's life, so what a domain does there commits or rolls back with the order.
  Raising refuses the whole step (a coupon taken meanwhile, a balance too small): nothing is
  half done.

Stages run in this order; within a stage, in the order the adjusters were registered.
"""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import Order, RefundRequest
from pawhome.mall import checkout
from pawhome.mall.checkout import CheckoutBody, Plan, PlannedOrder
from pawhome.platform.hooks import Hook

# The adjusters' registry lives beside the checkout that runs them (the mall's checkout
# imports nothing of this module); the growth domains register through these names.
STAGE_PRICE, STAGE_COUPON, STAGE_POINTS = checkout.STAGE_PRICE, checkout.STAGE_COUPON, \
    checkout.STAGE_POINTS
Adjuster = checkout.Adjuster
register_adjuster = checkout.register_adjuster
adjusters = checkout.adjusters


# An order was written, its stock taken, in the checkout's transaction: take what the
# adjusters decided (lock the coupon, spend the points, join the group). Runs before an order
# that owes nothing is marked paid.
order_placed: Hook[[AsyncSession, Order, PlannedOrder, Plan, CheckoutBody]] = Hook(
    "mall.order_placed", required=False)
# The order took its payment (status paid, or paid already by points): consume the coupon,
# fulfil virtual goods, move a group-buy member to waiting.
order_paid: Hook[[AsyncSession, Order]] = Hook("mall.order_paid", required=False)
# An unpaid order was cancelled (buyer, timeout, admin): release the coupon, refund points.
order_cancelled: Hook[[AsyncSession, Order]] = Hook("mall.order_cancelled", required=False)
# The order completed (receipt confirmed, picked up, auto-completed, virtual goods delivered).
order_completed: Hook[[AsyncSession, Order]] = Hook("mall.order_completed", required=False)
# A refund request was paid back (`whole`: every line is now refunded in full): reverse
# points in proportion, return a coupon.
order_refunded: Hook[[AsyncSession, Order, RefundRequest, bool]] = Hook(
    "mall.order_refunded", required=False)
