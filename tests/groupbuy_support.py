"""Shared set-up of the group-buy tests: a shop selling a SKU by group-buy (the rule made
through the merchants' endpoint), group-buy checkouts, payments through the fake WeChat Pay,
and the rows as stored."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, update

from models.base import utcnow
from models.groupbuy import GroupBuy, GroupBuyMember
from models.mall import Order
from tests.mall_support import make_address, make_member, make_product, make_shop
from tests.test_mall_e2e import NOTIFY

PRICE, GROUP_PRICE, FEE = 5900, 3900, 500


async def group_shop(api, resources, *, size: int = 3, stock: int = 50, limit: int = 1,
                     minutes: int = 1440) -> tuple[Any, int, int, dict[str, Any]]:
    """A shop with one SKU at 59.00, sold in groups of `size` at 39.00. Returns (merchant,
    product id, SKU id, the rule)."""
    shop, _ = await make_shop(resources, express_fee=FEE, free_over=None)
    product, (sku,) = await make_product(resources, shop.user_id,
                                         [{"price": PRICE, "stock": stock}])
    rule = (await api.post("/v1/merchant/group-buy-rules", token=shop.token, json={
        "sku_id": sku, "group_size": size, "group_price": GROUP_PRICE,
        "time_limit_minutes": minutes, "limit_per_user": limit})).ok(201)
    return shop, product, sku, rule


async def buyer_with_address(resources) -> tuple[Any, int]:
    buyer = await make_member(resources)
    return buyer, await make_address(resources, buyer.user_id)


def group_body(sku: int, address_id: int, group_id: int | None = None,
               quantity: int = 1) -> dict[str, Any]:
    return {"items": [{"sku_id": sku, "quantity": quantity}], "address_id": address_id,
            "group_buy": {"sku_id": sku, "group_id": group_id}}


async def group_order(api, buyer, sku: int, address_id: int, group_id: int | None = None,
                      quantity: int = 1):
    """POST /v1/orders opening (group_id None) or joining a group; the raw reply."""
    return await api.post("/v1/orders", token=buyer.token,
                          headers={"Idempotency-Key": uuid.uuid4().hex},
                          json=group_body(sku, address_id, group_id, quantity))


async def prepay(api, buyer, order: dict[str, Any]) -> None:
    params = (await api.post(f"/v1/orders/{order['id']}/pay", token=buyer.token)).ok()
    assert params["package"].startswith("prepay_id=")


async def notify_paid(api, wechatpay, order: dict[str, Any]) -> None:
    """WeChat takes the money and sends its signed notify (prepay first)."""
    wechatpay.pay(order["order_no"])
    headers, body = wechatpay.payment_notification(order["order_no"])
    reply = await api.request("POST", NOTIFY, headers=headers, body=body)
    assert (reply.status, reply.json["code"]) == (200, "SUCCESS"), reply.body


async def pay(api, wechatpay, buyer, order: dict[str, Any]) -> None:
    await prepay(api, buyer, order)
    await notify_paid(api, wechatpay, order)


async def group_of_order(resources, order_id: int) -> GroupBuy:
    async with resources.db.session() as session:
        member = (await session.execute(select(GroupBuyMember).where(
            GroupBuyMember.order_id == order_id))).scalar_one()
        return (await session.execute(select(GroupBuy).where(
            GroupBuy.id == member.group_id))).scalar_one()


async def member_states(resources, group_id: int) -> dict[int, str]:
    """order id -> member status"""
    async with resources.db.session() as session:
        rows = (await session.execute(select(GroupBuyMember.order_id, GroupBuyMember.status)
                                      .where(GroupBuyMember.group_id == group_id))).all()
        return {int(order_id): status for order_id, status in rows}


async def order_status(resources, order_id: int) -> str:
    async with resources.db.session() as session:
        return (await session.execute(select(Order.status).where(Order.id == order_id))
                ).scalar_one()


async def run_out_of_time(resources, group_id: int) -> None:
    """The group's time to fill is over (as if its 24 h had passed)."""
    async with resources.db.session() as session, session.begin():
        await session.execute(update(GroupBuy).where(GroupBuy.id == group_id)
                              .values(expires_at=utcnow() - dt.timedelta(seconds=1)))


async def open_group(api, resources, wechatpay, sku: int) -> tuple[Any, dict[str, Any], int]:
    """A buyer opens a group and pays: (opener, their order, group id)."""
    opener, address = await buyer_with_address(resources)
    order = (await group_order(api, opener, sku, address)).ok(201)["orders"][0]
    await pay(api, wechatpay, opener, order)
    return opener, order, (await group_of_order(resources, order["id"])).id


async def join_group(api, resources, wechatpay, sku: int, group_id: int, *,
                     paying: bool = True) -> tuple[Any, dict[str, Any]]:
    buyer, address = await buyer_with_address(resources)
    order = (await group_order(api, buyer, sku, address, group_id)).ok(201)["orders"][0]
    if paying:
        await pay(api, wechatpay, buyer, order)
    return buyer, order
