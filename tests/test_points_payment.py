"""Points payment and the points mall, through the real checkout: part of an order paid with
points within the rule, goods bought for points only, points taken in the order's own
transaction and given back exactly on cancel and in proportion on refund; virtual goods
delivered into the inventory the moment they are paid, their order completing at once;
refusals with the reason and nothing half done; a doubled checkout taking points once.
Real MariaDB and Redis; nothing of ours mocked."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from models.mall import Order, OrderEvent, OrderItem, RefundRequest
from models.points import InventoryMovement, PointsEntry
from pawhome.platform.errors import InsufficientInventory
from pawhome.points import inventory, payment
from tests.mall_support import make_address, make_member, make_product, make_shop, stock_of
from tests.points_support import (
    assert_balance_matches_ledger,
    balance_and_ledger,
    default_rules,  # noqa: F401  (fixture)
    give_points,
    make_points_product,
)


async def checkout(api, buyer, items, *, address_id=None, points=0, redeem=(), key=None,
                   preview=False):
    body = {"items": [{"sku_id": s, "quantity": q} for s, q in items]}
    if address_id:
        body["address_id"] = address_id
    if points:
        body["points"] = points
    if redeem:
        body["redeem_sku_ids"] = list(redeem)
    path = "/v1/orders/preview" if preview else "/v1/orders"
    headers = {"Idempotency-Key": key} if key else None
    return await api.post(path, json=body, token=buyer.token, headers=headers)


async def ledger_rows(resources, user_id: int) -> list[tuple[str, int]]:
    async with resources.db.session() as session:
        return [(r.reason, r.delta) for r in (await session.execute(
            select(PointsEntry).where(PointsEntry.user_id == user_id)
            .order_by(PointsEntry.id))).scalars()]


@pytest.mark.gen_test(timeout=60)
async def test_a_buyer_pays_part_of_an_order_with_points_within_the_rule_and_cancel_returns_them(
        api, resources, default_rules):
    merchant, _ = await make_shop(resources, express_fee=800, free_over=None)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 5000, "stock": 9}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    await give_points(resources, buyer.user_id, 3000)

    shown = (await checkout(api, buyer, [(sku, 1)], address_id=address_id, points=5000,
                            preview=True)).ok()
    # ¥58.00 payable; at most 50 % with points, 100 points a yuan: 2900 points for ¥29.00.
    assert shown["points"]["balance"] == 3000 and shown["points"]["max_usable"] == 2900
    assert (shown["points"]["using"], shown["points"]["value"]) == (2900, 2900)
    assert shown["payable_amount"] == 2900 and shown["purchasable"]
    placed = (await checkout(api, buyer, [(sku, 1)], address_id=address_id, points=5000,
                             key="part-points")).ok(201)
    order = placed["orders"][0]
    assert order["payable_amount"] == 2900 and order["status"] == "pending_payment"
    detail = (await api.get(f"/v1/orders/{order['id']}", token=buyer.token)).ok()
    assert detail["price_breakdown"][-1] == {"kind": "discount", "code": "points",
                                             "label": "积分抵扣", "amount": -2900,
                                             "points": 2900}
    assert await ledger_rows(resources, buyer.user_id) == [("activity", 3000),
                                                          ("points_payment", -2900)]
    (await api.post(f"/v1/orders/{order['id']}/cancel", token=buyer.token, json={})).ok()
    assert (await ledger_rows(resources, buyer.user_id))[-1] == ("points_payment_refund", 2900)
    assert await assert_balance_matches_ledger(resources, buyer.user_id) == 3000


@pytest.mark.gen_test(timeout=60)
async def test_spending_more_than_the_balance_is_refused_with_the_reason_and_nothing_changes(
        api, resources, default_rules):
    merchant, _ = await make_shop(resources, express_fee=0, free_over=None)
    _, sku = await make_points_product(resources, merchant.user_id, price=0, points_price=5000,
                                       stock=3)
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    await give_points(resources, buyer.user_id, 3000)
    refused = (await checkout(api, buyer, [(sku, 1)], address_id=address_id,
                              key="too-dear")).error(422, code=42220, field="points")
    assert "needs 5000 points, the balance is 3000" in str(refused["errors"])
    too_many = (await checkout(api, buyer, [(sku, 4)], address_id=address_id)).error(
        422, field="items")
    assert "out of stock: 3 left" in str(too_many["errors"])
    async with resources.db.session() as session:
        orders = (await session.execute(select(func.count()).select_from(Order).where(
            Order.user_id == buyer.user_id))).scalar_one()
    assert orders == 0 and await stock_of(resources, sku) == 3
    assert await balance_and_ledger(resources, buyer.user_id) == (3000, 3000, 1)
    stranger_sku = (await make_product(resources, merchant.user_id))[1][0]
    (await checkout(api, buyer, [(stranger_sku, 1)], address_id=address_id,
                    redeem=[stranger_sku])).error(422, field="redeem_sku_ids.0")
    (await checkout(api, buyer, [(sku, 1)], address_id=address_id,
                    redeem=[999_999_999])).error(422, field="redeem_sku_ids.0")


@pytest.mark.gen_test(timeout=60)
async def test_goods_for_points_only_are_paid_at_once_and_a_redeemed_sku_leaves_the_cash(
        api, resources, default_rules):
    merchant, _ = await make_shop(resources, express_fee=0, free_over=None)
    _, gift = await make_points_product(resources, merchant.user_id, price=0, points_price=800)
    _, both = await make_points_product(resources, merchant.user_id, price=2000,
                                        points_price=1500, name="积分或现金")
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    await give_points(resources, buyer.user_id, 5000)
    placed = (await checkout(api, buyer, [(gift, 2), (both, 1)], address_id=address_id,
                             redeem=[both], key="all-points")).ok(201)
    order = placed["orders"][0]
    assert order["payable_amount"] == 0 and order["status"] == "paid"  # nothing left to pay
    assert sorted(await ledger_rows(resources, buyer.user_id)) == sorted([
        ("activity", 5000), ("points_mall", -1600), ("points_mall", -1500)])  # a row a line
    detail = (await api.get(f"/v1/orders/{order['id']}", token=buyer.token)).ok()
    assert {"kind": "discount", "code": "points_redeem", "label": "积分兑换", "amount": -2000,
            "points": 3100} in detail["price_breakdown"]
    assert await assert_balance_matches_ledger(resources, buyer.user_id) == 1900


@pytest.mark.gen_test(timeout=60)
async def test_a_virtual_item_bought_with_points_lands_in_the_inventory_and_completes_at_once(
        api, resources, default_rules):
    merchant, _ = await make_shop(resources)
    _, food = await make_points_product(resources, merchant.user_id, price=0, points_price=300,
                                        stock=-1, kind="virtual_pet_food", name="小鱼干")
    buyer, other = await make_member(resources), await make_member(resources)
    await give_points(resources, buyer.user_id, 1000)
    placed = (await checkout(api, buyer, [(food, 3)], key="fish")).ok(201)  # no address
    order = placed["orders"][0]
    assert order["status"] == "completed" and order["payable_amount"] == 0
    async with resources.db.session() as session:
        actions = list((await session.execute(select(OrderEvent.action).where(
            OrderEvent.order_id == order["id"]).order_by(OrderEvent.id))).scalars())
    assert actions == ["place", "pay", "deliver_virtual"]
    held = (await api.get("/v1/inventory", token=buyer.token)).ok()
    assert [(i["sku_id"], i["kind"], i["name"], i["quantity"]) for i in held["items"]] == [
        (food, "virtual_pet_food", "小鱼干", 3)]
    assert (await api.get("/v1/inventory", token=other.token)).ok()["items"] == []
    assert (await api.get("/v1/inventory?kind=virtual_pet_toy",
                          token=buyer.token)).ok()["items"] == []
    assert await stock_of(resources, food) == -1  # unlimited stays unlimited
    assert await assert_balance_matches_ledger(resources, buyer.user_id) == 100

    # The virtual pet uses them: once per key, never below zero.
    async with resources.db.session() as session, session.begin():
        used = await inventory.consume(session, buyer.user_id, food, 2, key="feed-1")
    async with resources.db.session() as session, session.begin():
        again = await inventory.consume(session, buyer.user_id, food, 2, key="feed-1")
    assert (used.quantity, again.quantity, again.replayed) == (1, 1, True)
    with pytest.raises(InsufficientInventory):
        async with resources.db.session() as session, session.begin():
            await inventory.consume(session, buyer.user_id, food, 2, key="feed-2")
    async with resources.db.session() as session:
        moves = list((await session.execute(select(InventoryMovement.delta).where(
            InventoryMovement.user_id == buyer.user_id).order_by(InventoryMovement.id)))
            .scalars())
    assert moves == [3, -2]


@pytest.mark.gen_test(timeout=90)
async def test_a_doubled_points_checkout_with_one_key_makes_one_order_and_takes_points_once(
        api, resources, default_rules):
    merchant, _ = await make_shop(resources)
    _, toy = await make_points_product(resources, merchant.user_id, price=0, points_price=400,
                                       stock=-1, kind="virtual_pet_toy", name="逗猫棒")
    buyer = await make_member(resources)
    await give_points(resources, buyer.user_id, 1000)
    replies = await asyncio.gather(*[checkout(api, buyer, [(toy, 1)], key="double")
                                     for _ in range(6)])
    assert {r.status for r in replies} <= {201, 409}
    orders = {r.json["data"]["orders"][0]["id"] for r in replies if r.status == 201}
    assert len(orders) == 1
    async with resources.db.session() as session:
        placed = (await session.execute(select(func.count()).select_from(Order).where(
            Order.user_id == buyer.user_id))).scalar_one()
    assert placed == 1
    assert await ledger_rows(resources, buyer.user_id) == [("activity", 1000),
                                                          ("points_mall", -400)]
    assert await assert_balance_matches_ledger(resources, buyer.user_id) == 600


@pytest.mark.gen_test(timeout=60)
async def test_a_refund_gives_the_points_payment_back_in_proportion_to_the_cash(
        api, resources, default_rules):
    merchant, _ = await make_shop(resources, express_fee=0, free_over=None)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 4000, "stock": 9}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    await give_points(resources, buyer.user_id, 4000)
    placed = (await checkout(api, buyer, [(sku, 4)], address_id=address_id,
                             points=4000)).ok(201)
    order_id = placed["orders"][0]["id"]
    assert placed["payable_amount"] == 12000  # 4000 points paid ¥40.00 of ¥160.00
    async with resources.db.session() as session, session.begin():
        order = await session.get(Order, order_id)
        order.paid_amount = order.payable_amount  # as a payment leaves it
    assert await balance_and_ledger(resources, buyer.user_id) == (0, 0, 2)

    async def settle(request_id: int, quantity: int, amount: int) -> None:
        """What refunds.settle does before the hook: lines and amounts counted refunded."""
        async with resources.db.session() as session, session.begin():
            order = await session.get(Order, order_id)
            (item,) = (await session.execute(select(OrderItem).where(
                OrderItem.order_id == order_id))).scalars()
            item.refunded_quantity += quantity
            order.refunded_amount += amount
            request = RefundRequest(id=request_id, refund_no=f"R{request_id}", amount=amount,
                                    lines=[{"item_id": item.id, "quantity": quantity,
                                            "amount": amount}])
            await payment.give_back_on_refund(session, order, request, quantity == 3)

    await settle(10**9 + order_id, 1, 3000)  # a quarter of the cash back
    assert (await balance_and_ledger(resources, buyer.user_id))[0] == 1000
    await settle(10**9 + order_id + 1, 3, 9000)  # the rest
    await settle(10**9 + order_id + 1, 0, 0)  # settled twice: nothing more
    assert await ledger_rows(resources, buyer.user_id) == [
        ("activity", 4000), ("points_payment", -4000), ("points_payment_refund", 1000),
        ("points_payment_refund", 3000)]
    assert await assert_balance_matches_ledger(resources, buyer.user_id) == 4000


@pytest.mark.gen_test(timeout=60)
async def test_goods_paid_with_points_only_are_refunded_at_once_line_by_line(
        api, resources, default_rules):
    merchant, _ = await make_shop(resources, express_fee=0, free_over=None)
    _, tag = await make_points_product(resources, merchant.user_id, price=0, points_price=700,
                                       stock=10, name="定制名牌")
    _, bowl = await make_points_product(resources, merchant.user_id, price=0,
                                        points_price=1000, stock=10, name="饮水碗")
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    await give_points(resources, buyer.user_id, 3000)
    order = (await checkout(api, buyer, [(tag, 2), (bowl, 1)], address_id=address_id,
                            key="gifts")).ok(201)["orders"][0]
    assert order["status"] == "paid" and await stock_of(resources, tag) == 8
    assert (await balance_and_ledger(resources, buyer.user_id))[0] == 600
    items = {i["sku_id"]: i["id"] for i in
             (await api.get(f"/v1/orders/{order['id']}", token=buyer.token)).ok()["items"]}

    asked = (await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token, json={
        "lines": [{"item_id": items[tag], "quantity": 1}], "reason": "刻错字"})).ok(201)
    assert asked["amount"] == 0
    done = (await api.post(f"/v1/merchant/refunds/{asked['id']}/approve", token=merchant.token,
                           json={}, headers={"Idempotency-Key": "ok-1"})).ok()
    assert done["status"] == "refunded"  # nothing to send to WeChat Pay
    assert (await balance_and_ledger(resources, buyer.user_id))[0] == 1300  # one tag: 700
    assert await stock_of(resources, tag) == 9  # never shipped: back on the shelf

    rest = (await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                           json={"reason": "不要了"})).ok(201)
    (await api.post(f"/v1/merchant/refunds/{rest['id']}/approve", token=merchant.token,
                    json={}, headers={"Idempotency-Key": "ok-2"})).ok()
    detail = (await api.get(f"/v1/orders/{order['id']}", token=buyer.token)).ok()
    assert detail["status"] == "refunded"
    assert await assert_balance_matches_ledger(resources, buyer.user_id) == 3000
    assert [r for r in await ledger_rows(resources, buyer.user_id)
            if r[0] == "points_mall_refund"] == [("points_mall_refund", 700),
                                                 ("points_mall_refund", 1700)]


@pytest.mark.gen_test(timeout=60)
async def test_merchants_set_points_prices_kinds_and_unlimited_stock_through_the_product_api(
        api, resources):
    merchant, _ = await make_shop(resources)
    created = (await api.post("/v1/merchant/products", json={
        "name": "宠物小皇冠", "kind": "virtual_pet_accessory"}, token=merchant.token)).ok(201)
    assert created["kind"] == "virtual_pet_accessory"
    path = f"/v1/merchant/products/{created['id']}/skus"
    (await api.put(path, token=merchant.token, json={"skus": [
        {"price": 0, "stock": 5}]})).error(422, field="skus.0.price")
    (await api.put(path, token=merchant.token, json={"skus": [
        {"price": 0, "points_price": -1}]})).error(422)
    product = (await api.put(path, token=merchant.token, json={"skus": [
        {"price": 0, "points_price": 1200, "stock": -1}]})).ok()
    assert [(s["price"], s["points_price"], s["stock"]) for s in product["skus"]] == [
        (0, 1200, -1)]
    assert product["stock_total"] == -1
    (await api.post("/v1/merchant/products", json={"name": "x", "kind": "spaceship"},
                    token=merchant.token)).error(422, field="kind")


@pytest.mark.gen_test(timeout=60)
async def test_the_points_mall_is_the_product_list_filtered_to_points_goods_and_virtual_kinds(
        api, resources):
    merchant, _ = await make_shop(resources)
    _, toy = await make_points_product(resources, merchant.user_id, price=0, points_price=200,
                                       stock=-1, kind="virtual_pet_toy", name="毛线球")
    _, gift = await make_points_product(resources, merchant.user_id, price=0, points_price=900,
                                        name="定制名牌")
    cash, _ = await make_product(resources, merchant.user_id, name="普通猫粮")
    base = f"/v1/products?merchant_id={merchant.user_id}&limit=50"
    mall = (await api.get(base + "&points=true")).ok()["items"]
    assert {p["name"] for p in mall} == {"毛线球", "定制名牌"}
    virtual = (await api.get(base + "&kind=virtual_pet_toy")).ok()["items"]
    assert [(p["name"], p["kind"]) for p in virtual] == [("毛线球", "virtual_pet_toy")]
    plain = (await api.get(base + "&points=false")).ok()["items"]
    assert [p["id"] for p in plain] == [cash]
    page = (await api.get(f"/v1/products/{virtual[0]['id']}")).ok()
    assert page["kind"] == "virtual_pet_toy" and page["skus"][0]["points_price"] == 200
    assert page["skus"][0]["stock"] == -1
    (await api.get(base + "&kind=spaceship")).error(422, field="kind")
    assert toy and gift


@pytest.mark.gen_test(timeout=90)
async def test_buyers_racing_for_the_last_limited_virtual_items_never_oversell_or_lose_points(
        api, resources, default_rules):
    merchant, _ = await make_shop(resources)
    _, crown = await make_points_product(resources, merchant.user_id, price=0,
                                         points_price=500, stock=5,
                                         kind="virtual_pet_accessory", name="限量皇冠")
    buyers = [await make_member(resources) for _ in range(20)]
    for buyer in buyers:
        await give_points(resources, buyer.user_id, 600)
    replies = await asyncio.gather(*[checkout(api, b, [(crown, 1)], key="crown")
                                     for b in buyers])
    won = [b for b, r in zip(buyers, replies, strict=True) if r.status == 201]
    assert len(won) == 5 and {r.status for r in replies} <= {201, 409, 422}
    assert await stock_of(resources, crown) == 0
    for buyer in buyers:
        balance = await assert_balance_matches_ledger(resources, buyer.user_id)
        assert balance == (100 if buyer in won else 600)  # a refused checkout took nothing
        held = (await api.get("/v1/inventory", token=buyer.token)).ok()["items"]
        assert [i["quantity"] for i in held] == ([1] if buyer in won else [])
