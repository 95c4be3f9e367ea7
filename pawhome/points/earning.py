"""Earning points by the rules (pawhome/points/rules.py): daily check-ins and their streak
bonuses, make-up check-ins (a cost), and orders — points per yuan paid when an order
completes, taken back in proportion when it is refunded.

The check-in functions are the API the virtual pet (issue 13) builds its check-in on: it owns
the check-in itself (the day, the streak, make-up rules) and calls these inside its own
transaction, so the points commit with the check-in. Order points follow the mall's hooks
(pawhome/mall/order_hooks.py) and run in the mall's transaction. docs/points.md.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Order, RefundRequest
from pawhome.mall import order_hooks
from pawhome.points import ledger
from pawhome.points import rules as points_rules

ORDER_REF = "order"


@dataclass(frozen=True)
class CheckinAward:
    points: int  # the base points of the day
    bonus: int  # the streak bonus (0: none today)
    balance: int  # after both
    replayed: bool  # this day's check-in was awarded before: nothing changed


async def award_checkin(session: AsyncSession, user_id: int, day: dt.date,
                        streak: int) -> CheckinAward:
    """Award the check-in of `day` (the user's local calendar day) that makes a streak of
    `streak` days: the rules' base points (reason `checkin`) and, on every n-th day of a
    streak a bonus is set for, that bonus (reason `checkin_bonus`). Once per user and day:
    calling again for the same day changes nothing. Caller commits (the caller's check-in
    row and these points commit together)."""
    rules = await points_rules.load(session)
    expires = rules.expires_at(utcnow())
    balance, base, bonus, replayed = await ledger.balance_of(session, user_id), 0, 0, False
    if rules.checkin_points:
        moved = await ledger.change(session, user_id, rules.checkin_points, reason="checkin",
                                    key=f"checkin:{day.isoformat()}", ref_type="checkin",
                                    ref_id=day.isoformat(), expires_at=expires)
        base, balance, replayed = moved.delta, moved.balance_after, moved.replayed
    extra = rules.streak_bonus(streak)
    if extra:
        moved = await ledger.change(session, user_id, extra, reason="checkin_bonus",
                                    key=f"checkin_bonus:{day.isoformat()}", ref_type="checkin",
                                    ref_id=day.isoformat(), note=f"{streak}-day streak",
                                    expires_at=expires)
        bonus, balance, replayed = moved.delta, moved.balance_after, moved.replayed
    return CheckinAward(base, bonus, balance, replayed)


async def makeup_checkin_cost(session: AsyncSession) -> int:
    """What a make-up check-in costs now (the rules). Caller commits."""
    return (await points_rules.load(session)).makeup_checkin_cost


async def charge_makeup_checkin(session: AsyncSession, user_id: int,
                                day: dt.date) -> ledger.Movement | None:
    """Take the make-up check-in cost for the missed `day` (reason `makeup_checkin`), once
    per day; InsufficientPoints (422) when the balance is short, and then the caller's
    transaction rolls back with it. None when make-up check-ins are free. Caller commits."""
    cost = await makeup_checkin_cost(session)
    if not cost:
        return None
    return await ledger.change(session, user_id, -cost, reason="makeup_checkin",
                               key=f"makeup_checkin:{day.isoformat()}", ref_type="checkin",
                               ref_id=day.isoformat())


# -- orders ---------------------------------------------------------------------------------------


def order_points(paid_fen: int, per_yuan: int) -> int:
    """Points for an order: per whole yuan paid in cash (points paid with earn nothing)."""
    return paid_fen * per_yuan // 100


@order_hooks.order_completed.connect
async def award_order_points(session: AsyncSession, order: Order) -> None:
    """An order completed: points per yuan of its cash payment less refunds, within the
    daily cap (a capped award is noted on its ledger row). Once per order."""
    rules = await points_rules.load(session)
    points = order_points(order.paid_amount - order.refunded_amount, rules.order_points_per_yuan)
    if points <= 0:
        return
    await ledger.change(session, order.user_id, points, reason="order_completed",
                        key=f"order_completed:{order.id}", ref_type=ORDER_REF, ref_id=order.id,
                        expires_at=rules.expires_at(utcnow()),
                        daily_cap=rules.order_points_daily_cap)


def proportional(total: int, before: int, after: int, whole: int) -> int:
    """The part of `total` that goes with moving from `before` to `after` out of `whole`
    (cumulative, so several partial refunds add up to exactly `total`)."""
    if whole <= 0:
        return 0
    return total * min(after, whole) // whole - total * min(before, whole) // whole


@order_hooks.order_refunded.connect
async def take_back_order_points(session: AsyncSession, order: Order, request: RefundRequest,
                                 whole: bool) -> None:
    """A refund was paid back: the points this order earned go in proportion to the money
    refunded (all that is left on a whole refund). Points already spent cannot be taken:
    the balance goes to zero and the shortfall is written on the ledger row; the order is
    not refused for it (docs/points.md "Refunds")."""
    earned = await ledger.ledger_total(session, order.user_id, ref_type=ORDER_REF,
                                       ref_id=order.id, reasons=("order_completed",))
    if earned <= 0:
        return
    before = order.refunded_amount - request.amount
    # What earlier refunds meant to take (a shortfall then is not collected again now).
    share = earned - proportional(earned, 0, before, order.paid_amount) if whole \
        else proportional(earned, before, order.refunded_amount, order.paid_amount)
    if share <= 0:
        return
    await ledger.change(session, order.user_id, -share, reason="order_refunded",
                        key=f"order_refunded:{request.id}", ref_type=ORDER_REF,
                        ref_id=order.id, floor=True)
