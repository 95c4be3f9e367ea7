"""Coupons at checkout and in an order's life (the seam of pawhome/mall/order_hooks.py).

The STAGE_COUPON adjuster picks the coupons of a checkout: the ones the buyer named in
`coupon_ids`, checked (someone else's, used, expired, not covering anything, under the
threshold: a problem naming `coupon_ids.<i>`, so ordering is refused with the reason), or,
with `coupon_ids` left out, the best ones automatically; `[]` takes none. A checkout is
split into one order per merchant, and **a coupon discounts one order**: the one where it
saves the most; each order takes at most one coupon. A shop's coupon can only ever fit
that shop's order; a platform coupon goes to the order it saves most on (its threshold is
met by that order's covered goods alone). The automatic choice is greedy: the largest
saving first, ties to the coupon that expires soonest.

A held coupon's states: unused → locked (order placed) → used (order paid); locked →
unused (order cancelled); used → unused (the order refunded in full, the coupon still
valid). Expired is never stored: an unused coupon past valid_until shows as expired.
Every transition writes a coupon_events row. docs/promotions.md ("Coupons").
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.coupons import CouponTemplate, UserCoupon
from models.mall import Order, RefundRequest
from pawhome.mall import order_hooks
from pawhome.mall.checkout import CheckoutBody, Plan, PlannedOrder
from pawhome.platform.db import Overtaken
from pawhome.platform.errors import CouponTaken, field_error
from pawhome.promotions import coupons
from pawhome.promotions import coupons_terms as terms
from settings import Settings

MAX_UNUSABLE_SHOWN = 20


@dataclass
class Held:
    coupon: UserCoupon
    template: CouponTemplate
    savings: list[int]  # per order of the plan, fen (0: does not fit that order)
    eligible: list[int]  # covered goods per order, fen


def _problem(coupon: UserCoupon, user_id: int, now: dt.datetime) -> str:
    """Why a named coupon cannot be used at all ("" when it can, if it fits an order)."""
    if coupon.user_id != user_id:
        return "no such coupon in your wallet"
    if coupon.status == "locked":
        return "this coupon is held by another unpaid order"
    if coupon.status == "used":
        return "this coupon has been used"
    if coupon.valid_until <= now:
        return "this coupon has expired"
    if coupon.valid_from > now:
        return "this coupon is not valid yet"
    return ""


def _line(coupon: UserCoupon, template: CouponTemplate, saving: int) -> dict[str, Any]:
    return {"id": coupon.id, "template_id": template.id, "name": template.name,
            "kind": template.kind, "valid_until": terms.iso(coupon.valid_until),
            "saving": saving}


async def _held(session: AsyncSession, plan: Plan, named: list[int],
                now: dt.datetime) -> list[Held]:
    """The buyer's usable coupons and the named ones (whoever's: checked by the caller), with
    what each saves on each order of the plan."""
    usable = (UserCoupon.user_id == plan.user_id) & (UserCoupon.status == "unused") & \
        (UserCoupon.valid_from <= now) & (UserCoupon.valid_until > now)
    condition = usable | UserCoupon.id.in_(named) if named else usable
    rows = (await session.execute(
        select(UserCoupon, CouponTemplate).join(
            CouponTemplate, CouponTemplate.id == UserCoupon.template_id)
        .where(condition).order_by(UserCoupon.valid_until, UserCoupon.id))).all()
    if not rows:
        return []
    goods = [await coupons.goods_with_categories(session, [
        (line.product_id, order.merchant_id, line.line_total)
        for line in order.lines if line.product_id]) for order in plan.orders]
    trees = await coupons.subtrees(session, [template for _, template in rows])
    out = []
    for coupon, template in rows:
        tree = trees.get(template.id, frozenset())
        eligible = [_net(order, terms.eligible_amount(template, order_goods, tree))
                    for order_goods, order in zip(goods, plan.orders, strict=True)]
        savings = [min(terms.discount(template, amount),
                       max(0, order.goods_amount - order.discount_amount))
                   for amount, order in zip(eligible, plan.orders, strict=True)]
        out.append(Held(coupon, template, savings, eligible))
    return out


def _net(order: PlannedOrder, amount: int) -> int:
    """Covered goods at what the order charges for them: earlier discounts (a group-buy
    price) shrink every line alike, so a threshold is met by the price actually paid."""
    if not order.goods_amount or not order.discount_amount:
        return amount
    return amount * max(0, order.goods_amount - order.discount_amount) // order.goods_amount


def _why_not(held: Held) -> str:
    """Why a coupon fits no order: the closest order's shortfall."""
    best = max(range(len(held.eligible)), key=lambda i: held.eligible[i], default=None)
    return terms.shortfall_reason(held.template, held.eligible[best] if best is not None else 0)


async def apply_coupons(session: AsyncSession, settings: Settings, plan: Plan,
                        body: CheckoutBody) -> None:
    """The STAGE_COUPON adjuster (read-only): choose, discount, explain."""
    named = list(body.coupon_ids) if body.coupon_ids is not None else None
    if not plan.orders:
        return
    now = utcnow()
    held = await _held(session, plan, named or [], now)
    by_id = {h.coupon.id: h for h in held}
    chosen: dict[int, Held] = {}  # order index -> coupon
    if named is None:
        candidates = sorted(((h.savings[i], i, h) for h in held if h.coupon.user_id ==
                             plan.user_id for i in range(len(plan.orders)) if h.savings[i] > 0),
                            key=lambda c: (-c[0], c[2].coupon.valid_until, c[2].coupon.id))
        taken: set[int] = set()
        for _, index, h in candidates:
            if index not in chosen and h.coupon.id not in taken:
                chosen[index] = h
                taken.add(h.coupon.id)
    else:
        seen: set[int] = set()
        for position, coupon_id in enumerate(named):
            field = f"coupon_ids.{position}"
            found = by_id.get(coupon_id)
            problem = "no such coupon in your wallet" if found is None else \
                "named twice" if coupon_id in seen else \
                _problem(found.coupon, plan.user_id, now)
            seen.add(coupon_id)
            if not problem and found is not None:
                savings = found.savings
                fits = [i for i in range(len(plan.orders)) if savings[i] > 0]
                free = [i for i in fits if i not in chosen]
                if free:
                    chosen[max(free, key=lambda i: savings[i])] = found
                    continue
                problem = "one coupon per shop's order: another coupon is used there" \
                    if fits else _why_not(found)
            plan.problems.append(field_error(field, problem))

    for index, order in enumerate(plan.orders):
        _apply(order, index, chosen.get(index), held, plan.user_id, now)
    chosen_ids = {h.coupon.id for h in chosen.values()}
    plan.offers["coupons"] = {
        "auto": named is None,
        "chosen_ids": sorted(chosen_ids),
        "total_saving": sum(h.savings[i] for i, h in chosen.items()),
        "unusable": [{**_line(h.coupon, h.template, 0), "reason": _why_not(h)}
                     for h in held if h.coupon.user_id == plan.user_id
                     and not any(h.savings)][:MAX_UNUSABLE_SHOWN],
    }


def _apply(order: PlannedOrder, index: int, choice: Held | None, held: list[Held],
           user_id: int, now: dt.datetime) -> None:
    options = sorted((h for h in held if h.savings[index] > 0
                      and not _problem(h.coupon, user_id, now)),
                     key=lambda h: (-h.savings[index], h.coupon.valid_until, h.coupon.id))
    order.offers["coupon"] = None
    order.offers["coupon_options"] = [
        {**_line(h.coupon, h.template, h.savings[index]),
         "chosen": choice is not None and h.coupon.id == choice.coupon.id} for h in options]
    if choice is None:
        return
    saving = choice.savings[index]
    order.breakdown.append({"kind": "discount", "code": "coupon",
                            "label": f"优惠券 {choice.template.name}", "amount": -saving})
    order.adjustments["coupon"] = {"user_coupon_id": choice.coupon.id,
                                   "template_id": choice.template.id, "discount": saving}
    order.offers["coupon"] = _line(choice.coupon, choice.template, saving)


order_hooks.register_adjuster(order_hooks.STAGE_COUPON, apply_coupons)


# -- the order's life --------------------------------------------------------------------------


async def _locked_coupons(session: AsyncSession, order_id: int,
                          status: str) -> list[UserCoupon]:
    """The order's coupons in `status`, row-locked. Found by a plain read first: most orders
    have none, and a locking read that finds nothing would gap-lock the order index against
    every checkout locking a coupon meanwhile. The order itself is locked by the caller, so
    no other step of its life moves them in between."""
    ids = list((await session.execute(select(UserCoupon.id).where(
        UserCoupon.order_id == order_id))).scalars())
    if not ids:
        return []
    rows = (await session.execute(
        select(UserCoupon).where(UserCoupon.id.in_(ids)).order_by(UserCoupon.id)
        .with_for_update().execution_options(populate_existing=True))).scalars()
    return [c for c in rows if c.order_id == order_id and c.status == status]


@order_hooks.order_placed.connect
async def lock_for_order(session: AsyncSession, order: Order, planned: PlannedOrder,
                         plan: Plan, body: CheckoutBody) -> None:
    """Lock the chosen coupon for the new order. One the buyer named that was used or locked
    meanwhile refuses the whole checkout (409 CouponTaken), nothing written; one chosen
    automatically makes the checkout run again from a fresh snapshot (Overtaken), where it
    chooses among the coupons still free: the buyer's two checkouts at once both succeed."""
    choice = planned.adjustments.get("coupon")
    if not choice:
        return
    coupon = (await session.execute(
        select(UserCoupon).where(UserCoupon.id == int(choice["user_coupon_id"]))
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()
    problem = "this coupon is gone" if coupon is None else \
        _problem(coupon, order.user_id, utcnow())
    if problem or coupon is None:
        taken = CouponTaken(errors=[field_error("coupon_ids", problem)])
        raise Overtaken(taken) if body.coupon_ids is None else taken
    coupon.status, coupon.order_id = "locked", order.id
    coupon.locked_at, coupon.discount_amount = utcnow(), int(choice["discount"])
    coupons.record_event(session, coupon, "lock", "unused", order.id)


@order_hooks.order_paid.connect
async def use_for_order(session: AsyncSession, order: Order) -> None:
    for coupon in await _locked_coupons(session, order.id, "locked"):
        coupon.status, coupon.used_at = "used", utcnow()
        coupons.record_event(session, coupon, "use", "locked", order.id)


@order_hooks.order_cancelled.connect
async def release_for_order(session: AsyncSession, order: Order) -> None:
    for coupon in await _locked_coupons(session, order.id, "locked"):
        coupon.status, coupon.order_id = "unused", None
        coupon.locked_at, coupon.discount_amount = None, 0
        coupons.record_event(session, coupon, "release", "locked", order.id)


@order_hooks.order_refunded.connect
async def return_for_refund(session: AsyncSession, order: Order, request: RefundRequest,
                            whole: bool) -> None:
    """A full refund gives the coupon back if it is still valid; an expired one, or a
    partial refund, leaves it used."""
    if not whole:
        return
    now = utcnow()
    for coupon in await _locked_coupons(session, order.id, "used"):
        if coupon.valid_until <= now:
            continue
        coupon.status, coupon.order_id, coupon.used_at = "unused", None, None
        coupon.locked_at, coupon.discount_amount = None, 0
        coupons.record_event(session, coupon, "return", "used", order.id)
