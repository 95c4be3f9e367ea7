"""Group-buy under pressure and when time runs out, on real MariaDB: ten buyers going for a
group's last two seats at once make exactly two members, who pay at the same moment and fill
it (never more paid members than its size, the stock right); a group that does not fill
expires — by the job run directly and by the real worker — and every paid member's order is
refunded through the WeChat Pay refund flow, the unpaid ones cancelled, the stock back; a
payment arriving after the group's time is refunded at once."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import delete, select

from models.groupbuy import GroupBuy
from models.mall import Order, RefundRequest
from models.payments import Payment, PaymentRefund
from models.realtime import Notification
from pawhome.messaging import subscribe_messages
from pawhome.promotions import groupbuy
from tests.fixtures_worker import wait_until
from tests.groupbuy_support import (
    buyer_with_address,
    group_order,
    group_shop,
    join_group,
    member_states,
    notify_paid,
    open_group,
    order_status,
    prepay,
    run_out_of_time,
)
from tests.mall_support import assert_stock_matches_ledger, stock_of
from tests.test_mall_refunds import settle
from tests.test_subscribe_messages import grant
from workers.celery_app import celery_app

ORDER_TEMPLATE = "dev-tmpl-order"


async def refund_no_of(resources, order_id: int) -> str:
    """The out_refund_no of the order's refund (its refund request's refund_no)."""
    async with resources.db.session() as session:
        request = (await session.execute(select(RefundRequest).where(
            RefundRequest.order_id == order_id))).scalar_one()
        refund = (await session.execute(select(PaymentRefund).where(
            PaymentRefund.out_refund_no == request.refund_no))).scalar_one()
        assert refund.amount == request.amount
        return refund.out_refund_no


async def group_row(resources, group_id: int) -> GroupBuy:
    async with resources.db.session() as session:
        return (await session.execute(select(GroupBuy).where(GroupBuy.id == group_id))
                ).scalar_one()


@pytest.mark.gen_test(timeout=180)
async def test_ten_buyers_for_the_last_two_seats_make_exactly_two_members_who_fill_it(
        api, resources, wechatpay):
    _, _, sku, _ = await group_shop(api, resources, size=4, stock=100)
    _, opener_order, group_id = await open_group(api, resources, wechatpay, sku)
    await join_group(api, resources, wechatpay, sku, group_id)  # 2 of 4 paid
    buyers = [await buyer_with_address(resources) for _ in range(10)]

    replies = await asyncio.gather(*(group_order(api, buyer, sku, address, group_id)
                                     for buyer, address in buyers))
    statuses = sorted(r.status for r in replies)
    assert statuses == [201, 201] + [409] * 8, [r.body[:200] for r in replies]
    assert {r.json["code"] for r in replies if r.status == 409} == {40950}
    winners = [(buyer, r.json["data"]["orders"][0])
               for (buyer, _), r in zip(buyers, replies, strict=True) if r.status == 201]
    assert (await group_row(resources, group_id)).seats_taken == 4

    # The two pay at the same moment: both become members, the group fills once.
    for buyer, order in winners:
        await prepay(api, buyer, order)
    await asyncio.gather(*(notify_paid(api, wechatpay, order) for _, order in winners))
    group = await group_row(resources, group_id)
    assert (group.status, group.paid_count, group.seats_taken) == ("filled", 4, 4)
    states = await member_states(resources, group_id)
    assert sorted(states.values()) == ["paid"] * 4
    for order_id in states:
        assert await order_status(resources, order_id) == "paid"
    assert await stock_of(resources, sku) == 100 - 4
    await assert_stock_matches_ledger(resources, sku)
    assert opener_order["id"] in states


async def expiring_group(api, resources, wechatpay, stock: int = 30):
    """A group of 3: two members paid, one seat held by an unpaid order; time is up."""
    _, _, sku, _ = await group_shop(api, resources, size=4, stock=stock)
    _, first, group_id = await open_group(api, resources, wechatpay, sku)
    _, second = await join_group(api, resources, wechatpay, sku, group_id)
    _, unpaid = await join_group(api, resources, wechatpay, sku, group_id, paying=False)
    assert await stock_of(resources, sku) == stock - 3
    await run_out_of_time(resources, group_id)
    return sku, group_id, [first, second], unpaid


@pytest.mark.gen_test(timeout=180)
async def test_an_unfilled_group_expires_its_paid_orders_refunded_and_the_stock_back(
        api, resources, wechatpay, wechat, celery_worker_process):
    sku, group_id, paid, unpaid = await expiring_group(api, resources, wechatpay)
    await groupbuy.expire_due(resources)  # the beat sweep, run directly
    assert (await group_row(resources, group_id)).status == "expired"
    assert await order_status(resources, unpaid["id"]) == "cancelled"
    for order in paid:
        assert await order_status(resources, order["id"]) == "refunding"
    again = await groupbuy.expire_group(resources, group_id)  # a second run does nothing
    assert again == {"refunded": 0, "cancelled": 0}
    # Each paid member is told, and the notification's subscribe message says why.
    async with resources.db.session() as session:
        buyer_id = (await session.execute(select(Order.user_id).where(
            Order.id == paid[0]["id"]))).scalar_one()
        told = (await session.execute(select(Notification).where(
            Notification.user_id == buyer_id, Notification.kind == "group_buy_failed"))
        ).scalar_one()
    await grant(resources, buyer_id, ORDER_TEMPLATE, 1)
    outcome = await subscribe_messages.deliver(resources, buyer_id, "notification:order",
                                               notification_id=told.id,
                                               push_id=uuid.uuid4().hex)
    assert outcome.status == "sent"
    [sent] = [m for m in wechat.sent_messages if m["template_id"] == ORDER_TEMPLATE]
    assert sent["data"]["thing1"]["value"] == "拼团失败"

    for order in paid:  # the worker sends each refund; WeChat settles it
        await settle(api, wechatpay, await refund_no_of(resources, order["id"]))
    for order in paid:
        assert await order_status(resources, order["id"]) == "refunded"
    states = await member_states(resources, group_id)
    assert sorted(states.values()) == ["cancelled", "refunded", "refunded"]
    assert await stock_of(resources, sku) == 30
    await assert_stock_matches_ledger(resources, sku)


@pytest.mark.gen_test(timeout=180)
async def test_the_worker_expires_a_group_through_its_task(api, resources, wechatpay,
                                                           celery_worker_process):
    sku, group_id, paid, unpaid = await expiring_group(api, resources, wechatpay)
    celery_app.send_task(groupbuy.EXPIRE_TASK, args=[group_id])

    async def settled():
        return all([await order_status(resources, o["id"]) == "refunding" for o in paid]) \
            and await order_status(resources, unpaid["id"]) == "cancelled"
    await wait_until(settled, timeout=30, what="the worker expires the group")
    assert (await group_row(resources, group_id)).status == "expired"
    for order in paid:
        await settle(api, wechatpay, await refund_no_of(resources, order["id"]))
    for order in paid:
        assert await order_status(resources, order["id"]) == "refunded"
    assert await stock_of(resources, sku) == 30


@pytest.mark.gen_test(timeout=180)
async def test_a_payment_after_the_groups_time_is_refunded_at_once(
        api, resources, wechatpay, celery_worker_process):
    _, _, sku, _ = await group_shop(api, resources, size=3, stock=10)
    _, opener_order, group_id = await open_group(api, resources, wechatpay, sku)
    buyer, address = await buyer_with_address(resources)
    order = (await group_order(api, buyer, sku, address, group_id)).ok(201)["orders"][0]
    await prepay(api, buyer, order)
    await run_out_of_time(resources, group_id)  # the buyer pays as the time runs out
    await notify_paid(api, wechatpay, order)
    assert await order_status(resources, order["id"]) == "refunding"
    states = await member_states(resources, group_id)
    assert states[order["id"]] == "refunding"
    group = await group_row(resources, group_id)
    assert group.paid_count == 1  # the opener only: never a member after the time
    await settle(api, wechatpay, await refund_no_of(resources, order["id"]))
    assert await order_status(resources, order["id"]) == "refunded"
    assert (await member_states(resources, group_id))[order["id"]] == "refunded"
    assert await stock_of(resources, sku) == 10 - 1  # the opener's unit is still out
    await groupbuy.expire_due(resources)
    assert (await group_row(resources, group_id)).status == "expired"
    await settle(api, wechatpay, await refund_no_of(resources, opener_order["id"]))
    assert await order_status(resources, opener_order["id"]) == "refunded"
    assert await stock_of(resources, sku) == 10
    await assert_stock_matches_ledger(resources, sku)


@pytest.mark.gen_test(timeout=120)
async def test_a_members_refused_refund_does_not_hold_up_the_others(api, resources, wechatpay):
    sku, group_id, paid, unpaid = await expiring_group(api, resources, wechatpay)
    async with resources.db.session() as session, session.begin():  # its payment is gone
        await session.execute(delete(Payment).where(Payment.payable_type == "order",
                                                    Payment.payable_id == paid[0]["id"]))
    done = await groupbuy.expire_group(resources, group_id)
    assert done == {"refunded": 1, "cancelled": 1, "failed": 1}
    assert await order_status(resources, paid[0]["id"]) == "paid_waiting_group"
    assert await order_status(resources, paid[1]["id"]) == "refunding"
    states = await member_states(resources, group_id)
    assert (states[paid[0]["id"]], states[paid[1]["id"]]) == ("paid", "refunding")
    assert (await group_row(resources, group_id)).status == "expired"
    assert await order_status(resources, unpaid["id"]) == "cancelled"
    assert await stock_of(resources, sku) == 30 - 2  # the unpaid seat's unit is back
