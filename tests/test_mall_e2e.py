"""The mall end to end, as a new buyer meets it: browse, add two SKUs of two shops to the
cart, check out one for delivery and one for pick-up, pay both with WeChat Pay (the fake
server, its signed notifies), watch each order move live on the socket while the merchants
ship and hand over, and get a partial refund sent by the real worker and settled by WeChat's
refund notify. Real MariaDB, Redis and worker; nothing of ours mocked."""
from __future__ import annotations

import pytest

from tests.fixtures_worker import wait_until
from tests.mall_support import (
    assert_stock_matches_ledger,
    make_address,
    make_member,
    make_product,
    make_shop,
    stock_of,
)
from tests.test_chat_socket import ChatSocket

NOTIFY = "/v1/payments/wechat/notify"
REFUND_NOTIFY = "/v1/payments/wechat/refund-notify"


def order_status(order_id: int, status: str, topic: bool = False):
    """The buyer's stored event (it has an eid), or with `topic` the order page's live one."""
    return lambda f: (f["type"] == "order.status" and f["data"]["order_id"] == order_id
                      and f["data"]["status"] == status
                      and ("topic" in f if topic else "eid" in f))


async def pay(api, wechatpay, buyer, order: dict) -> dict:
    params = (await api.post(f"/v1/orders/{order['id']}/pay", token=buyer.token)).ok()
    assert params["package"].startswith("prepay_id=") and params["signType"] == "RSA"
    again = (await api.post(f"/v1/orders/{order['id']}/pay", token=buyer.token)).ok()
    assert again["package"] == params["package"]  # the live prepay is reused
    sent = wechatpay.requests_to("/v3/pay/transactions/jsapi")[-1].body
    assert sent["out_trade_no"] == order["order_no"]
    assert sent["amount"]["total"] == order["payable_amount"]
    wechatpay.pay(order["order_no"])
    headers, body = wechatpay.payment_notification(order["order_no"])
    for _ in range(2):  # WeChat retries: applied once
        reply = await api.request("POST", NOTIFY, headers=headers, body=body)
        assert (reply.status, reply.json["code"]) == (200, "SUCCESS")
    return params


@pytest.mark.gen_test(timeout=180)
async def test_a_new_buyer_shops_two_merchants_pays_watches_and_gets_a_partial_refund(
        api, base_url, resources, wechatpay, celery_worker_process):
    groomer, point = await make_shop(resources, "萌宠美容")
    grocer, _ = await make_shop(resources, "宠粮铺", express_fee=1000, free_over=None)
    shampoo_product, (shampoo,) = await make_product(resources, groomer.user_id,
                                       [{"price": 3900, "stock": 20}], name="宠物香波")
    food_product, (food,) = await make_product(resources, grocer.user_id,
                                    [{"price": 12800, "stock": 20}], name="冻干猫粮")
    buyer, stranger = await make_member(resources), await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)

    listed = (await api.get("/v1/products?limit=100&sort=newest")).ok()
    assert {shampoo_product, food_product} <= {p["id"] for p in listed["items"]}
    page = (await api.get(f"/v1/products/{food_product}", token=buyer.token)).ok()
    assert [s["id"] for s in page["skus"]] == [food]
    for sku, quantity in ((shampoo, 1), (food, 2)):
        (await api.post("/v1/cart/items", token=buyer.token,
                        json={"sku_id": sku, "quantity": quantity})).ok()
    cart = (await api.get("/v1/cart", token=buyer.token)).ok()
    assert len(cart["groups"]) == 2

    shipments = [{"merchant_id": groomer.user_id, "fulfilment": "pickup",
                  "pickup_point_id": point}]
    preview = (await api.post("/v1/orders/preview", token=buyer.token,
                              json={"address_id": address_id, "shipments": shipments})).ok()
    assert preview["payable_amount"] == 3900 + 2 * 12800 + 1000
    placed = (await api.post("/v1/orders", token=buyer.token, headers={"Idempotency-Key": "e2e"},
                             json={"address_id": address_id, "shipments": shipments})).ok(201)
    assert placed["payable_amount"] == preview["payable_amount"]
    by_shop = {o["merchant_id"]: o for o in placed["orders"]}
    pickup, delivery = by_shop[groomer.user_id], by_shop[grocer.user_id]
    assert (await api.get("/v1/cart/count", token=buyer.token)).ok()["count"] == 0

    sock = await ChatSocket.connect(base_url, buyer.token)
    try:
        await sock.send({"type": "sub", "topic": f"order:{delivery['id']}"})
        await sock.expect(lambda f: f["type"] == "sub.ok")
        (await api.post(f"/v1/orders/{delivery['id']}/pay", token=stranger.token)).error(404)
        await pay(api, wechatpay, buyer, pickup)
        await pay(api, wechatpay, buyer, delivery)
        await sock.expect(order_status(pickup["id"], "paid"))
        await sock.expect(order_status(delivery["id"], "paid"))

        (await api.post(f"/v1/merchant/orders/{delivery['id']}/ship", token=grocer.token,
                        json={"carrier": "顺丰", "tracking_no": "SF100200300"})).ok()
        await sock.expect(order_status(delivery["id"], "shipped"))
        watched = await sock.expect(order_status(delivery["id"], "shipped", topic=True))
        assert watched["topic"] == f"order:{delivery['id']}"
        assert watched["data"]["role"] == "watcher"

        (await api.post(f"/v1/merchant/orders/{pickup['id']}/ready-for-pickup",
                        token=groomer.token)).ok()
        await sock.expect(order_status(pickup["id"], "ready_for_pickup"))
        code = (await api.get(f"/v1/orders/{pickup['id']}", token=buyer.token)).ok()["pickup_code"]
        (await api.post(f"/v1/merchant/orders/{pickup['id']}/pick-up", token=groomer.token,
                        json={"pickup_code": code})).ok()
        await sock.expect(order_status(pickup["id"], "completed"))

        # One of the two bags of food arrived damaged: a partial refund.
        item_id = (await api.get(f"/v1/orders/{delivery['id']}",
                                 token=buyer.token)).ok()["items"][0]["id"]
        asked = (await api.post(f"/v1/orders/{delivery['id']}/refunds", token=buyer.token,
                                json={"lines": [{"item_id": item_id, "quantity": 1}],
                                      "reason": "包装破损"})).ok(201)
        assert asked["amount"] == 12800 and asked["status"] == "requested"
        await sock.expect(order_status(delivery["id"], "refunding"))
        (await api.post(f"/v1/merchant/refunds/{asked['id']}/approve", token=groomer.token,
                        json={})).error(404)  # another shop's refund
        (await api.post(f"/v1/merchant/refunds/{asked['id']}/approve", token=grocer.token,
                        json={"reason": "同意"})).ok()

        async def sent_to_wechat():
            return asked["refund_no"] in wechatpay.refunds
        await wait_until(sent_to_wechat, timeout=30, what="the worker asks WeChat to refund")
        headers, body = wechatpay.refund_notification(asked["refund_no"], "SUCCESS")
        reply = await api.request("POST", REFUND_NOTIFY, headers=headers, body=body)
        assert (reply.status, reply.json["code"]) == (200, "SUCCESS")
        await sock.expect(order_status(delivery["id"], "shipped"))  # partial: back to shipped

        (await api.post(f"/v1/orders/{delivery['id']}/confirm-receipt", token=buyer.token)).ok()
        await sock.expect(order_status(delivery["id"], "completed"))
    finally:
        sock.close()

    done = (await api.get(f"/v1/orders/{delivery['id']}", token=buyer.token)).ok()
    assert done["status"] == "completed" and done["refunded_amount"] == 12800
    assert done["items"][0]["refunded_quantity"] == 1
    assert [t["action"] for t in done["timeline"]] == [
        "place", "pay", "ship", "request_refund", "partially_refunded", "confirm_receipt"]
    mine = (await api.get("/v1/refunds", token=buyer.token)).ok()
    assert [(r["id"], r["status"]) for r in mine["items"]] == [(asked["id"], "refunded")]
    # Shipped goods are not restocked; nothing else moved.
    assert await stock_of(resources, food) == 18 and await stock_of(resources, shampoo) == 19
    await assert_stock_matches_ledger(resources, food, shampoo)
