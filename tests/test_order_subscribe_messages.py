"""The buyer's order notifications become WeChat subscribe messages: paying and shipping an
order each queue the push task (after the grace period), and the push renders the order
template from the notification and is sent to the fake WeChat server, spending the buyer's
quota; a second order push within the quiet period waits for it to pass."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models.platform import OutboxMessage
from models.realtime import Notification
from models.users import User
from pawhome.messaging import subscribe_messages
from tests.mall_support import make_address, make_member, make_product, make_shop
from tests.test_mall_e2e import pay
from tests.test_subscribe_messages import grant, remaining

ORDER_TEMPLATE = "dev-tmpl-order"


async def order_push(resources, user_id: int, kind: str) -> tuple[int, dict]:
    """The user's `kind` notification and the push task queued for it (its kwargs)."""
    async with resources.db.session() as session:
        told = (await session.execute(select(Notification).where(
            Notification.user_id == user_id, Notification.kind == kind))).scalar_one()
        tasks = list((await session.execute(select(OutboxMessage).where(
            OutboxMessage.name == subscribe_messages.TASK_NAME))).scalars())
    queued = [t.payload for t in tasks if t.payload["args"] == [user_id, "notification:order"]
              and t.payload["kwargs"].get("notification_id") == told.id]
    assert len(queued) <= 1
    return told.id, (queued[0]["kwargs"] if queued else {})


@pytest.mark.gen_test(timeout=120)
async def test_paid_and_shipped_orders_send_the_order_subscribe_message(
        api, resources, wechat, wechatpay):
    shop, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, shop.user_id, [{"price": 3900, "stock": 5}])
    buyer = await make_member(resources)
    async with resources.db.session() as session:
        openid = (await session.get(User, buyer.user_id)).openid
    address = await make_address(resources, buyer.user_id)
    await grant(resources, buyer.user_id, ORDER_TEMPLATE, 2)
    order = (await api.post("/v1/orders", token=buyer.token, json={
        "items": [{"sku_id": sku, "quantity": 1}], "address_id": address})).ok(201)["orders"][0]
    await pay(api, wechatpay, buyer, order)

    paid_id, queued = await order_push(resources, buyer.user_id, "order_paid")
    assert queued["push_id"] and queued["notification_id"] == paid_id
    outcome = await subscribe_messages.deliver(resources, buyer.user_id, "notification:order",
                                               notification_id=paid_id, push_id="paid-1")
    assert outcome.status == "sent", outcome
    [paid] = [m for m in wechat.sent_messages if m["touser"] == openid]
    assert paid["template_id"] == ORDER_TEMPLATE
    assert paid["page"] == "pages/notifications/index?category=order"
    assert paid["data"]["thing1"]["value"] == "支付成功"
    assert order["order_no"][:8] in paid["data"]["thing2"]["value"]

    (await api.post(f"/v1/merchant/orders/{order['id']}/ship", token=shop.token,
                    json={"carrier": "顺丰", "tracking_no": "SF42"})).ok()
    shipped_id, _ = await order_push(resources, buyer.user_id, "order_shipped")
    again = await subscribe_messages.deliver(resources, buyer.user_id, "notification:order",
                                             notification_id=shipped_id, push_id="ship-1")
    assert (again.status, again.detail) == ("skipped", "quiet period")
    # The quiet period over, the shipped order's message goes.
    await resources.cache.redis.delete(subscribe_messages.quiet_key(
        resources.cache, buyer.user_id, "notification:order", None))
    later = await subscribe_messages.deliver(resources, buyer.user_id, "notification:order",
                                             notification_id=shipped_id, push_id="ship-2")
    assert later.status == "sent", later
    shipped = [m for m in wechat.sent_messages if m["touser"] == openid][-1]
    assert shipped["data"]["thing1"]["value"] == "订单已发货"
    assert shipped["data"]["thing2"]["value"] == "顺丰 SF42"
    assert await remaining(resources, buyer.user_id, ORDER_TEMPLATE) == 0
