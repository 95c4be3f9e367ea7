"""After-sale and payments meeting orders: refund amounts to the fen, one open request at a
time, withdraw, reject and an admin's arbitration, force-cancel, stock back only for goods
that never left, and a payment that lands on a cancelled order refunded by itself."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from models.payments import Payment, PaymentRefund
from tests.fixtures_worker import wait_until
from tests.mall_support import (
    assert_stock_matches_ledger,
    make_address,
    make_member,
    make_product,
    make_shop,
    stock_of,
)
from tests.test_mall_e2e import NOTIFY, REFUND_NOTIFY, pay


async def paid_order(api, resources, wechatpay, *, quantity=3, price=1000, stock=10):
    merchant, _ = await make_shop(resources, express_fee=500, free_over=None)
    _, (sku,) = await make_product(resources, merchant.user_id,
                                   [{"price": price, "stock": stock}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    order = (await api.post("/v1/orders", token=buyer.token, json={
        "items": [{"sku_id": sku, "quantity": quantity}], "address_id": address_id})).ok(201)
    order = order["orders"][0]
    await pay(api, wechatpay, buyer, order)
    return merchant, buyer, sku, order


async def refunds_of(resources, out_trade_no: str) -> list[PaymentRefund]:
    async with resources.db.session() as session:
        payment_id = select(Payment.id).where(Payment.out_trade_no == out_trade_no)
        return list((await session.execute(select(PaymentRefund).where(
            PaymentRefund.payment_id.in_(payment_id)).order_by(PaymentRefund.id))).scalars())


async def settle(api, wechatpay, refund_no: str, status: str = "SUCCESS") -> None:
    """The worker sends the refund to WeChat; WeChat settles it and notifies."""
    async def sent():
        return refund_no in wechatpay.refunds
    await wait_until(sent, timeout=30, what=f"refund {refund_no} reaches WeChat")
    headers, body = wechatpay.refund_notification(refund_no, status)
    reply = await api.request("POST", REFUND_NOTIFY, headers=headers, body=body)
    assert (reply.status, reply.json["code"]) == (200, "SUCCESS"), reply.body


@pytest.mark.gen_test(timeout=120)
async def test_refunding_everything_before_shipping_returns_the_fee_and_the_stock(
        api, resources, wechatpay, celery_worker_process):
    merchant, buyer, sku, order = await paid_order(api, resources, wechatpay)
    assert await stock_of(resources, sku) == 7
    asked = (await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                            json={"reason": "不想要了"})).ok(201)
    assert asked["amount"] == 3500 and asked["restock"] is True  # 3 x 1000 + the 500 fee
    again = await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                           json={"reason": "再来一次"})
    again.error(409, code=40910)  # one open request at a time: the order is refunding
    (await api.post(f"/v1/merchant/refunds/{asked['id']}/approve", token=merchant.token,
                    json={})).ok()
    await settle(api, wechatpay, asked["refund_no"])
    detail = (await api.get(f"/v1/orders/{order['id']}", token=buyer.token)).ok()
    assert detail["status"] == "refunded" and detail["refunded_amount"] == 3500
    assert await stock_of(resources, sku) == 10
    await assert_stock_matches_ledger(resources, sku)


@pytest.mark.gen_test(timeout=60)
async def test_line_refunds_add_up_to_what_was_paid_and_no_more(api, resources, wechatpay,
                                                              celery_worker_process):
    merchant, buyer, _sku, order = await paid_order(api, resources, wechatpay, quantity=3,
                                                    price=1001)
    item_id = (await api.get(f"/v1/orders/{order['id']}",
                             token=buyer.token)).ok()["items"][0]["id"]
    too_many = await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                              json={"lines": [{"item_id": item_id, "quantity": 4}],
                                    "reason": "坏了"})
    too_many.error(422, field="lines")
    foreign = await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                             json={"lines": [{"item_id": item_id + 10_000, "quantity": 1}],
                                   "reason": "坏了"})
    foreign.error(422, field="lines.0.item_id")
    stranger = await make_member(resources)
    (await api.post(f"/v1/orders/{order['id']}/refunds", token=stranger.token,
                    json={"reason": "坏了"})).error(404)
    one = (await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                          json={"lines": [{"item_id": item_id, "quantity": 1}],
                                "reason": "坏了"})).ok(201)
    assert one["amount"] == 1001
    # The merchant rejects; the buyer disputes; an admin approves (arbitration).
    (await api.post(f"/v1/merchant/refunds/{one['id']}/reject", token=merchant.token,
                    json={"reason": "不支持"})).ok()
    detail = (await api.get(f"/v1/orders/{order['id']}", token=buyer.token)).ok()
    assert detail["status"] == "paid"
    (await api.post(f"/v1/merchant/refunds/{one['id']}/approve", token=merchant.token,
                    json={})).error(409)
    admin = await make_member(resources, "admin")
    (await api.post(f"/v1/merchant/refunds/{one['id']}/approve", token=admin.token,
                    json={"reason": "仲裁同意"})).ok()
    assert (await api.get(f"/v1/orders/{order['id']}",
                          token=buyer.token)).ok()["status"] == "refunding"
    await settle(api, wechatpay, one["refund_no"])
    rest = (await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                           json={"reason": "都退了吧"})).ok(201)
    assert rest["amount"] == 3003 + 500 - 1001  # everything left, the fee included
    audit = (await api.get("/v1/admin/audit-log?action=refund.", token=admin.token)).ok()
    assert [(e["action"], e["actor_role"]) for e in audit["items"][:2]] == [
        ("refund.approve", "admin"), ("refund.reject", "merchant")]


@pytest.mark.gen_test(timeout=60)
async def test_a_buyer_may_withdraw_and_the_order_goes_back(api, resources, wechatpay):
    merchant, buyer, _sku, order = await paid_order(api, resources, wechatpay)
    (await api.post(f"/v1/merchant/orders/{order['id']}/ship", token=merchant.token,
                    json={"carrier": "圆通", "tracking_no": "YT1"})).ok()
    asked = (await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                            json={"reason": "坏了"})).ok(201)
    assert asked["amount"] == 3000 and asked["restock"] is False  # shipped: fee stays
    (await api.post(f"/v1/refunds/{asked['id']}/withdraw", token=merchant.token)).error(404)
    (await api.post(f"/v1/refunds/{asked['id']}/withdraw", token=buyer.token)).ok()
    (await api.post(f"/v1/refunds/{asked['id']}/withdraw", token=buyer.token)).error(409)
    detail = (await api.get(f"/v1/orders/{order['id']}", token=buyer.token)).ok()
    assert detail["status"] == "shipped"


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_refund_requests_open_one(api, resources, wechatpay):
    _merchant, buyer, _sku, order = await paid_order(api, resources, wechatpay)
    replies = await asyncio.gather(*[
        api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                 json={"reason": f"第{i}次"}) for i in range(10)])
    assert sorted(r.status for r in replies) == [201] + [409] * 9


@pytest.mark.gen_test(timeout=60)
async def test_admin_force_cancel_refunds_a_paid_order_in_full(api, resources, wechatpay,
                                                                celery_worker_process):
    _merchant, buyer, sku, order = await paid_order(api, resources, wechatpay)
    admin = await make_member(resources, "admin")
    (await api.post(f"/v1/admin/orders/{order['id']}/cancel", token=buyer.token,
                    json={"reason": "x"})).error(403)
    done = (await api.post(f"/v1/admin/orders/{order['id']}/cancel", token=admin.token,
                           json={"reason": "商家缺货"})).ok()
    assert done["refund"]["amount"] == 3500 and done["refund"]["status"] == "refunding"
    await settle(api, wechatpay, done["refund"]["refund_no"])
    detail = (await api.get(f"/v1/admin/orders/{order['id']}", token=admin.token)).ok()
    assert detail["status"] == "refunded"
    assert [(t["action"], t["actor_type"]) for t in detail["timeline"]][-2:] == [
        ("request_refund", "admin"), ("refunded", "system")]
    assert await stock_of(resources, sku) == 10


@pytest.mark.gen_test(timeout=60)
async def test_a_payment_landing_on_a_cancelled_order_is_refunded_by_itself(api, resources,
                                                                          wechatpay):
    merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 700, "stock": 5}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    order = (await api.post("/v1/orders", token=buyer.token, json={
        "items": [{"sku_id": sku, "quantity": 1}], "address_id": address_id})).ok(201)
    order = order["orders"][0]
    (await api.post(f"/v1/orders/{order['id']}/pay", token=buyer.token)).ok()
    (await api.post(f"/v1/orders/{order['id']}/cancel", token=buyer.token, json={})).ok()
    wechatpay.pay(order["order_no"])  # the payer had already confirmed in WeChat
    headers, body = wechatpay.payment_notification(order["order_no"])
    reply = await api.request("POST", NOTIFY, headers=headers, body=body)
    assert (reply.status, reply.json["code"]) == (200, "SUCCESS")
    detail = (await api.get(f"/v1/orders/{order['id']}", token=buyer.token)).ok()
    assert detail["status"] == "cancelled" and detail["paid_amount"] == 0
    automatic = await refunds_of(resources, order["order_no"])
    assert [(r.source_type, r.amount) for r in automatic] == [
        ("payment", order["payable_amount"])]
    assert automatic[0].out_refund_no.startswith("AUTO-")
    assert await stock_of(resources, sku) == 5
