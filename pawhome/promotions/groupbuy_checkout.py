"""Group-buy at checkout and in an order's life (the seam of pawhome/mall/order_hooks.py).

The STAGE_PRICE adjuster prices a checkout's `group_buy` (a buy-now of that one SKU) at the
rule's group price — a "group_buy" discount line, so coupons and points then apply to what
is left — and checks what it can without locks: a SKU without an active rule (422 42250), a
checkout that is not that one SKU (422 42251), a group that is not open (409 40951), full
(409 40950), joined already (409 40952), beyond the per-user limit (409 40953).

The order_placed hook takes the seat for real, under the rule's and then the group's row
lock, checking all of it again (two checkouts racing for the last seat: one gets it, the
other is refused and nothing of it is written). order_paid, order_cancelled and
order_refunded move the member (pawhome/promotions/groupbuy.py has the states).
"""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.groupbuy import GroupBuy, GroupBuyMember, GroupBuyRule
from models.mall import Order, RefundRequest
from pawhome.mall import order_hooks
from pawhome.mall.checkout import CheckoutBody, Plan, PlannedOrder
from pawhome.platform.errors import (
    GroupAlreadyJoined,
    GroupBuyInvalid,
    GroupBuyLimitReached,
    GroupBuyUnavailable,
    GroupClosed,
    GroupFull,
    NotFound,
    field_error,
)
from pawhome.promotions import groupbuy
from settings import Settings

FIELD = "group_buy.group_id"


async def _refuse_join(session: AsyncSession, group: GroupBuy | None, rule: GroupBuyRule,
                       user_id: int, *, lock: bool = False) -> None:
    """Raise why `user_id` cannot take a seat in `group` now (nothing when they can)."""
    if group is None or group.status == "opening" or group.rule_id != rule.id:
        raise NotFound("No such group", errors=[field_error(FIELD, "no such group")])
    if group.status != "open" or group.expires_at is None or group.expires_at <= utcnow():
        raise GroupClosed(errors=[field_error(FIELD, f"this group is {group.status}" if
                                              group.status != "open" else "time is up")])
    joined = await groupbuy.member_in_group(session, group.id, user_id, lock=lock)
    if joined:
        raise GroupAlreadyJoined(errors=[field_error(
            FIELD, "you opened this group" if group.opener_id == user_id
            else "you are in this group already")])
    if group.seats_taken >= group.size:
        raise GroupFull(errors=[field_error(FIELD, f"all {group.size} seats are taken")])


async def _refuse_limit(session: AsyncSession, rule: GroupBuyRule, user_id: int,
                        quantity: int, *, lock: bool = False) -> None:
    held = await groupbuy.units_held(session, user_id, rule.id, lock=lock)
    if held + quantity > rule.limit_per_user:
        raise GroupBuyLimitReached(errors=[field_error(
            "items.0.quantity", f"at most {rule.limit_per_user} per person at the group "
                                f"price; you hold {held}")])


async def apply_group_price(session: AsyncSession, settings: Settings, plan: Plan,
                            body: CheckoutBody) -> None:
    """The STAGE_PRICE adjuster (read-only)."""
    choice = body.group_buy
    if choice is None:
        return
    if body.items is None or len(body.items) != 1 or body.items[0].sku_id != choice.sku_id:
        raise GroupBuyInvalid(errors=[field_error(
            "group_buy.sku_id", "a group-buy checkout buys this one SKU now: items must be "
                                "[{sku_id, quantity}] of it")])
    rule = await groupbuy.active_rule(session, choice.sku_id)
    if rule is None:
        raise GroupBuyUnavailable(errors=[field_error("group_buy.sku_id",
                                                      "no group-buy for this item")])
    if choice.group_id is not None:
        await _refuse_join(session, await session.get(GroupBuy, choice.group_id), rule,
                           plan.user_id)
    await _refuse_limit(session, rule, plan.user_id, body.items[0].quantity)
    if not plan.orders:
        return
    order = plan.orders[0]
    line = order.lines[0]
    saving = max(0, line.unit_price - rule.group_price) * line.quantity
    if saving:
        order.breakdown.append({"kind": "discount", "code": "group_buy",
                                "label": f"拼团价 {rule.group_size}人团", "amount": -saving})
    order.adjustments["group_buy"] = {"rule_id": rule.id, "group_id": choice.group_id,
                                      "quantity": line.quantity}
    order.offers["group_buy"] = {"rule_id": rule.id, "group_id": choice.group_id,
                                 "group_size": rule.group_size,
                                 "group_price": rule.group_price, "saving": saving}


order_hooks.register_adjuster(order_hooks.STAGE_PRICE, apply_group_price)


@order_hooks.order_placed.connect
async def take_seat(session: AsyncSession, order: Order, planned: PlannedOrder, plan: Plan,
                    body: CheckoutBody) -> None:
    """Open a group (the opener's seat) or take a seat in one, checked again under the rule's
    and the group's row locks; refused, the whole checkout is."""
    choice = planned.adjustments.get("group_buy")
    if not choice:
        return
    rule = await groupbuy.active_rule(session, planned.lines[0].sku_id, lock=True)
    if rule is None or rule.id != int(choice["rule_id"]):
        raise GroupBuyUnavailable(errors=[field_error("group_buy.sku_id",
                                                      "no group-buy for this item")])
    quantity = int(choice["quantity"])
    now = utcnow()
    if choice["group_id"] is None:
        group = GroupBuy(rule_id=rule.id, sku_id=rule.sku_id, product_id=rule.product_id,
                         merchant_id=rule.merchant_id, opener_id=order.user_id,
                         size=rule.group_size, group_price=rule.group_price,
                         time_limit_minutes=rule.time_limit_minutes, status="opening",
                         seats_taken=0, paid_count=0, created_at=now, updated_at=now)
        session.add(group)
        await session.flush()
    else:
        found = await groupbuy.lock_group(session, int(choice["group_id"]))
        await _refuse_join(session, found, rule, order.user_id, lock=True)
        assert found is not None
        group = found
    await _refuse_limit(session, rule, order.user_id, quantity, lock=True)
    member = GroupBuyMember(group_id=group.id, rule_id=rule.id, user_id=order.user_id,
                            order_id=order.id, quantity=quantity,
                            is_opener=choice["group_id"] is None, status="", joined_at=now)
    session.add(member)
    await session.flush()
    groupbuy.move_member(session, group, member, "join")
    group.seats_taken += 1
    group.updated_at = now
    if group.status == "open":
        groupbuy.publish_progress(session, group, "member_joined")


@order_hooks.order_paid.connect
async def member_paid(session: AsyncSession, order: Order) -> None:
    await groupbuy.member_paid(session, order)


@order_hooks.order_cancelled.connect
async def member_cancelled(session: AsyncSession, order: Order) -> None:
    await groupbuy.member_cancelled(session, order)


@order_hooks.order_refunded.connect
async def member_refunded(session: AsyncSession, order: Order, request: RefundRequest,
                          whole: bool) -> None:
    await groupbuy.member_refunded(session, order, whole)
