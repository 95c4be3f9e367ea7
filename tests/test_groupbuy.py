"""Group-buy (拼团): a shop's rule, a buyer opens a group by paying, others join through the
group's page and pay, the last seat fills it and every order proceeds; while it waits an
order cannot be shipped nor refunded by hand. Refusals name the reason and write nothing: a
SKU without a rule, a checkout that is not that SKU, a full, closed or own group, beyond the
limit per buyer. Real MariaDB and Redis, payments through the fake WeChat Pay's signed
notifies."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update

from models.groupbuy import GroupBuyEvent, GroupBuyMember, GroupBuyRule
from models.mall import Order, Product
from models.realtime import Notification
from tests.groupbuy_support import (
    FEE,
    GROUP_PRICE,
    PRICE,
    buyer_with_address,
    group_body,
    group_of_order,
    group_order,
    group_shop,
    join_group,
    member_states,
    open_group,
    order_status,
    pay,
    run_out_of_time,
)
from tests.mall_support import (
    assert_stock_matches_ledger,
    make_address,
    make_member,
    make_product,
    put_in_cart,
    stock_of,
)
from tests.test_mall_refunds import settle


async def kinds_told(resources, user_id: int) -> list[str]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Notification.kind).where(
            Notification.user_id == user_id).order_by(Notification.id))).scalars())


async def orders_of(resources, user_id: int) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(select(func.count(Order.id)).where(
            Order.user_id == user_id))).scalar_one())


@pytest.mark.gen_test(timeout=120)
async def test_a_group_opens_when_paid_fills_with_its_last_seat_and_every_order_proceeds(
        api, resources, wechatpay):
    shop, product, sku, rule = await group_shop(api, resources, size=3, stock=50)
    assert (rule["group_size"], rule["group_price"], rule["status"]) == (3, GROUP_PRICE,
                                                                         "active")
    opener, address = await buyer_with_address(resources)
    preview = (await api.post("/v1/orders/preview", token=opener.token,
                              json=group_body(sku, address))).ok()
    part = preview["orders"][0]
    assert {"kind": "discount", "code": "group_buy", "label": "拼团价 3人团",
            "amount": -(PRICE - GROUP_PRICE)} in part["price_breakdown"]
    assert part["payable_amount"] == GROUP_PRICE + FEE
    assert part["group_buy"]["group_price"] == GROUP_PRICE

    placed = (await group_order(api, opener, sku, address)).ok(201)["orders"][0]
    assert placed["payable_amount"] == GROUP_PRICE + FEE
    group = await group_of_order(resources, placed["id"])
    assert (group.status, group.seats_taken, group.expires_at) == ("opening", 1, None)
    # Nobody joins, nor sees, a group its opener has not paid for.
    early, early_address = await buyer_with_address(resources)
    (await group_order(api, early, sku, early_address, group.id)).error(404)
    (await api.get(f"/v1/group-buys/{group.id}")).error(404)

    await pay(api, wechatpay, opener, placed)
    page = (await api.get(f"/v1/group-buys/{group.id}")).ok()
    assert (page["status"], page["paid_count"], page["seats_left"]) == ("open", 1, 2)
    assert page["expires_at"] is not None and page["topic"] == f"group:{group.id}"
    assert (page["product"]["id"], page["group_price"]) == (product, GROUP_PRICE)
    assert [m["id"] for m in page["members"]] == [opener.user_id]
    assert await order_status(resources, placed["id"]) == "paid_waiting_group"
    offer = (await api.get(f"/v1/group-buys?product_id={product}")).ok()
    assert [r["id"] for r in offer["rules"]] == [rule["id"]]
    assert group.id in [g["id"] for g in offer["groups"]]

    second, second_order = await join_group(api, resources, wechatpay, sku, group.id)
    assert await order_status(resources, second_order["id"]) == "paid_waiting_group"
    # Waiting: the shop cannot ship it, the buyer cannot ask for the money back by hand.
    (await api.post(f"/v1/merchant/orders/{placed['id']}/ship", token=shop.token,
                    json={"carrier": "顺丰", "tracking_no": "SF1"})).error(409, code=40910)
    (await api.post(f"/v1/orders/{second_order['id']}/refunds", token=second.token,
                    json={"reason": "不想等了"})).error(409, code=40910)

    third, third_order = await join_group(api, resources, wechatpay, sku, group.id)
    page = (await api.get(f"/v1/group-buys/{group.id}", token=third.token)).ok()
    assert (page["status"], page["paid_count"], page["seats_left"]) == ("filled", 3, 0)
    assert page["joined"] is True
    for order in (placed, second_order, third_order):
        assert await order_status(resources, order["id"]) == "paid"
    timeline = (await api.get(f"/v1/orders/{placed['id']}", token=opener.token)).ok()
    actions = [step["action"] for step in timeline["timeline"]]
    assert actions == ["place", "pay", "wait_for_group", "group_filled"]
    assert set((await member_states(resources, group.id)).values()) == {"paid"}
    for person in (opener, second, third):
        assert "group_buy_filled" in await kinds_told(resources, person.user_id)
    mine = (await api.get("/v1/group-buys/mine", token=second.token)).ok()
    assert [(i["group"]["id"], i["member_status"]) for i in mine["items"]] == [
        (group.id, "paid")]
    # Filled, it proceeds: the shop ships, and nobody else gets in.
    (await api.post(f"/v1/merchant/orders/{placed['id']}/ship", token=shop.token,
                    json={"carrier": "顺丰", "tracking_no": "SF1"})).ok()
    late, late_address = await buyer_with_address(resources)
    (await group_order(api, late, sku, late_address, group.id)).error(409, code=40951)
    assert await stock_of(resources, sku) == 50 - 3
    await assert_stock_matches_ledger(resources, sku)
    async with resources.db.session() as session:
        trail = list((await session.execute(select(GroupBuyEvent.action).where(
            GroupBuyEvent.group_id == group.id).order_by(GroupBuyEvent.id))).scalars())
    assert trail[0] == "member_join" and trail[-1] == "fill" and "open" in trail


@pytest.mark.gen_test(timeout=120)
async def test_refused_group_buys_name_the_reason_and_change_nothing(api, resources, wechatpay):
    shop, _product, sku, rule = await group_shop(api, resources, size=2, stock=20, limit=1)
    _, (plain_sku,) = await make_product(resources, shop.user_id,
                                         [{"price": 1000, "stock": 5}], name="无拼团")
    buyer, address = await buyer_with_address(resources)

    # A SKU without a rule; a checkout that is not that one SKU.
    (await group_order(api, buyer, plain_sku, address)).error(422, code=42250)
    mixed = group_body(sku, address)
    mixed["items"].append({"sku_id": plain_sku, "quantity": 1})
    (await api.post("/v1/orders", token=buyer.token, json=mixed)).error(422, code=42251)
    cart = group_body(sku, address)
    del cart["items"]
    await put_in_cart(resources, buyer.user_id, sku, 1)
    (await api.post("/v1/orders", token=buyer.token, json=cart)).error(422, code=42251)
    # Beyond the limit per buyer (1 unit), in one order.
    (await group_order(api, buyer, sku, address, quantity=2)).error(409, code=40953)
    # A group that does not exist.
    (await group_order(api, buyer, sku, address, 2**40)).error(404)

    opener, _opener_order, group_id = await open_group(api, resources, wechatpay, sku)
    # Your own group twice; and opening another beyond your limit.
    opener_address_id = await make_address(resources, opener.user_id)
    (await group_order(api, opener, sku, opener_address_id, group_id)).error(409, code=40952)
    (await group_order(api, opener, sku, opener_address_id)).error(409, code=40953)

    # The last seat is held by an unpaid joiner: the group is full for everyone else.
    joiner, joiner_order = await join_group(api, resources, wechatpay, sku, group_id,
                                            paying=False)
    stock_before = await stock_of(resources, sku)
    (await group_order(api, buyer, sku, address, group_id)).error(409, code=40950)
    assert await stock_of(resources, sku) == stock_before
    assert await orders_of(resources, buyer.user_id) == 0

    # The joiner cancels: the seat is free again; time runs out: the group is closed.
    (await api.post(f"/v1/orders/{joiner_order['id']}/cancel", token=joiner.token)).ok()
    page = (await api.get(f"/v1/group-buys/{group_id}")).ok()
    assert page["seats_left"] == 1
    await run_out_of_time(resources, group_id)
    (await group_order(api, buyer, sku, address, group_id)).error(409, code=40951)
    assert await orders_of(resources, buyer.user_id) == 0
    assert await stock_of(resources, sku) == stock_before + 1  # the cancelled seat's unit
    async with resources.db.session() as session:
        held = (await session.execute(select(func.count(GroupBuyMember.id)).where(
            GroupBuyMember.user_id == buyer.user_id))).scalar_one()
    assert held == 0

    # Rules: a price not below the SKU's, another shop's SKU, a second rule for a SKU.
    (await api.post("/v1/merchant/group-buy-rules", token=shop.token, json={
        "sku_id": plain_sku, "group_size": 2, "group_price": 1000})).error(422, code=42252)
    other_shop, _, _, _ = await group_shop(api, resources)
    (await api.post("/v1/merchant/group-buy-rules", token=other_shop.token, json={
        "sku_id": plain_sku, "group_size": 2, "group_price": 500})).error(404)
    (await api.post("/v1/merchant/group-buy-rules", token=shop.token, json={
        "sku_id": sku, "group_size": 2, "group_price": 500})).error(409, code=40954)
    (await api.post("/v1/merchant/group-buy-rules", token=buyer.token, json={
        "sku_id": sku, "group_size": 2, "group_price": 500})).error(403)
    rule_path = f"/v1/merchant/group-buy-rules/{rule['id']}"
    (await api.request("PATCH", rule_path, token=other_shop.token,
                       json={"status": "stopped"})).error(404)
    stopped = (await api.request("PATCH", rule_path, token=shop.token,
                                 json={"status": "stopped"})).ok()
    assert stopped["status"] == "stopped"
    (await group_order(api, buyer, sku, address)).error(422, code=42250)


@pytest.mark.gen_test(timeout=60)
async def test_the_homes_group_buy_slot_falls_back_to_products_with_active_rules(
        api, resources):
    admin = await make_member(resources, "admin")
    _, product, _, rule = await group_shop(api, resources)
    async with resources.db.session() as session, session.begin():  # first among the rest
        await session.execute(update(Product).where(Product.id == product)
                              .values(sales_count=10**9))
    (await api.put("/v1/admin/home/slots/group_buy", token=admin.token,
                   json={"product_ids": []})).ok()
    slot = (await api.get("/v1/admin/home/slots/group_buy", token=admin.token)).ok()
    assert slot["fallback"] == "products with an active group-buy rule"
    assert slot["shown"][0]["id"] == product
    page = (await api.get("/v1/home/mall")).ok()
    assert page["slots"]["group_buy"][0]["id"] == product
    async with resources.db.session() as session, session.begin():
        await session.execute(update(GroupBuyRule).where(GroupBuyRule.id == rule["id"])
                              .values(status="stopped"))
    slot = (await api.get("/v1/admin/home/slots/group_buy", token=admin.token)).ok()
    assert product not in [c["id"] for c in slot["shown"]]


@pytest.mark.gen_test(timeout=60)
async def test_a_group_is_shared_in_a_dm_as_a_card_inviting_to_join(api, resources, wechatpay):
    _, _, sku, _ = await group_shop(api, resources, size=3)
    opener, _, group_id = await open_group(api, resources, wechatpay, sku)
    friend = await make_member(resources)
    conversation = (await api.post("/v1/conversations", json={"to_user_id": friend.user_id},
                                   token=opener.token)).ok()["id"]
    path = f"/v1/conversations/{conversation}/messages"
    (await api.post(path, token=opener.token, json={
        "client_msg_id": uuid.uuid4().hex, "kind": "share",
        "card": {"kind": "group_buy", "id": group_id}})).ok()
    [message] = (await api.get(path, token=friend.token)).ok()["items"]
    card = message["content"]["card"]
    assert (card["kind"], card["id"], card["group_id"]) == ("group_buy", group_id, group_id)
    assert (card["group_price"], card["seats_left"], card["status"]) == (GROUP_PRICE, 2, "open")
    missing = await api.post(path, token=opener.token, json={
        "client_msg_id": uuid.uuid4().hex, "kind": "share",
        "card": {"kind": "group_buy", "id": 2**40}})
    missing.error(404)


@pytest.mark.gen_test(timeout=120)
async def test_a_waiting_member_refunded_by_an_admin_frees_the_seat(
        api, resources, wechatpay, celery_worker_process):
    admin = await make_member(resources, "admin")
    _, _, sku, _ = await group_shop(api, resources, size=3, stock=10)
    _, _, group_id = await open_group(api, resources, wechatpay, sku)
    _, waiting = await join_group(api, resources, wechatpay, sku, group_id)
    ended = (await api.post(f"/v1/admin/orders/{waiting['id']}/cancel", token=admin.token,
                            json={"reason": "用户申请取消"})).ok()
    await settle(api, wechatpay, ended["refund"]["refund_no"])
    assert await order_status(resources, waiting["id"]) == "refunded"
    assert (await member_states(resources, group_id))[waiting["id"]] == "refunded"
    page = (await api.get(f"/v1/group-buys/{group_id}")).ok()
    assert (page["paid_count"], page["seats_left"]) == (1, 2)  # the seat is free again
    await join_group(api, resources, wechatpay, sku, group_id)
    page = (await api.get(f"/v1/group-buys/{group_id}")).ok()
    assert (page["status"], page["paid_count"]) == ("open", 2)  # not filled by the refunded
    assert await stock_of(resources, sku) == 10 - 2
    await assert_stock_matches_ledger(resources, sku)
