"""Checkout and orders: prices computed on the server, one order per merchant, stock taken
exactly (never oversold, no deadlock), the state machine with its timeline, cancelling and
the unpaid timeout (task and sweep), fulfilment, lists, ownership and live events."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from models.base import utcnow
from models.mall import CartItem, Order, OrderEvent, StockMovement
from models.platform import OutboxMessage
from pawhome.mall import checkout, orders
from pawhome.platform.errors import OutOfStock
from tests.event_contract import assert_events_valid, capture_events, types_of
from tests.mall_support import (
    assert_stock_matches_ledger,
    make_address,
    make_member,
    make_product,
    make_shop,
    put_in_cart,
    stock_of,
)


async def buy(api, buyer, items, address_id=None, shipments=None, key=None):
    body = {"items": [{"sku_id": s, "quantity": q} for s, q in items]}
    if address_id:
        body["address_id"] = address_id
    if shipments:
        body["shipments"] = shipments
    headers = {"Idempotency-Key": key} if key else None
    return await api.post("/v1/orders", json=body, token=buyer.token, headers=headers)


async def paid(resources, order_id: int) -> None:
    """Mark an order paid the way a verified WeChat Pay notify does (payments' on_paid)."""
    async with resources.db.session() as session, session.begin():
        order = await session.get(Order, order_id)
        assert await orders.mark_paid(session, order_id, order.payable_amount)


@pytest.mark.gen_test(timeout=60)
async def test_buy_now_prices_on_the_server_and_takes_the_stock(api, resources):
    merchant, _ = await make_shop(resources, express_fee=800, free_over=9900)
    _, (sku,) = await make_product(resources, merchant.user_id,
                                   [{"price": 4550, "stock": 10}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    preview = (await api.post("/v1/orders/preview", token=buyer.token, json={
        "items": [{"sku_id": sku, "quantity": 2}], "address_id": address_id})).ok()
    assert preview["purchasable"] and preview["goods_amount"] == 9100
    assert preview["delivery_fee"] == 800 and preview["payable_amount"] == 9900
    part = preview["orders"][0]
    assert part["fulfilment"] == "express"
    assert [(b["kind"], b["amount"]) for b in part["price_breakdown"]] == [
        ("goods", 9100), ("delivery", 800)]

    placed = (await buy(api, buyer, [(sku, 2)], address_id, key="k-1")).ok(201)
    assert placed["payable_amount"] == 9900 and len(placed["orders"]) == 1
    order_id = placed["orders"][0]["id"]
    assert await stock_of(resources, sku) == 8
    await assert_stock_matches_ledger(resources, sku)
    detail = (await api.get(f"/v1/orders/{order_id}", token=buyer.token)).ok()
    assert detail["status"] == "pending_payment" and detail["address"]["phone"]
    assert detail["items"][0]["unit_price"] == 4550 and detail["items"][0]["line_total"] == 9100
    assert [t["action"] for t in detail["timeline"]] == ["place"]
    assert len(detail["order_no"]) == 18 and detail["order_no"].isdigit()

    again = (await buy(api, buyer, [(sku, 2)], address_id, key="k-1")).ok(201)
    assert again == placed  # the same Idempotency-Key: the same orders, no second take
    assert await stock_of(resources, sku) == 8


@pytest.mark.gen_test(timeout=60)
async def test_the_client_numbers_are_never_trusted(api, resources):
    merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 100, "stock": 5}])
    buyer = await make_member(resources)
    reply = await api.post("/v1/orders", token=buyer.token, json={
        "items": [{"sku_id": sku, "quantity": 1}], "payable_amount": 1})
    reply.error(422, field="payable_amount")
    for bad in (0, -1, 1000, 1.5, "2"):
        (await buy(api, buyer, [(sku, bad)])).error(422)
    assert await stock_of(resources, sku) == 5


@pytest.mark.gen_test(timeout=60)
async def test_cart_checkout_makes_one_order_per_merchant_and_empties_those_lines(api,
                                                                                resources):
    shop_a, point_a = await make_shop(resources, "宠物甲")
    shop_b, _ = await make_shop(resources, "宠物乙", express_fee=1000, free_over=None)
    _, (sku_a,) = await make_product(resources, shop_a.user_id, [{"price": 2000, "stock": 5}])
    _, (sku_b, sku_b2) = await make_product(resources, shop_b.user_id,
                                            [{"price": 3000, "stock": 5},
                                             {"price": 100, "stock": 5}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    await put_in_cart(resources, buyer.user_id, sku_a, 1)
    await put_in_cart(resources, buyer.user_id, sku_b, 2)
    await put_in_cart(resources, buyer.user_id, sku_b2, 1, selected=False)
    placed = (await api.post("/v1/orders", token=buyer.token, json={
        "address_id": address_id,
        "shipments": [{"merchant_id": shop_a.user_id, "fulfilment": "pickup",
                       "pickup_point_id": point_a, "remark": "下午来拿"}]})).ok(201)
    by_merchant = {o["merchant_id"]: o for o in placed["orders"]}
    assert by_merchant[shop_a.user_id]["payable_amount"] == 2000  # pick-up: no fee
    assert by_merchant[shop_b.user_id]["payable_amount"] == 7000  # 6000 + 1000 express
    detail = (await api.get(f"/v1/orders/{by_merchant[shop_a.user_id]['id']}",
                            token=buyer.token)).ok()
    assert detail["fulfilment"] == "pickup" and detail["pickup_point"]["name"] == "门店自提点"
    assert detail["address"] is None and detail["remark"] == "下午来拿"
    async with resources.db.session() as session:
        left = list((await session.execute(select(CartItem.sku_id).where(
            CartItem.user_id == buyer.user_id))).scalars())
    assert left == [sku_b2]


@pytest.mark.gen_test(timeout=60)
async def test_what_cannot_be_bought_is_refused_with_reasons_and_nothing_written(api,
                                                                               resources):
    merchant, _ = await make_shop(resources)
    _, (on_sale,) = await make_product(resources, merchant.user_id, [{"price": 100,
                                                                      "stock": 5}])
    _, (draft,) = await make_product(resources, merchant.user_id, [{"price": 100, "stock": 5}],
                                     status="draft")
    _, (limited,) = await make_product(resources, merchant.user_id,
                                       [{"price": 100, "stock": 50, "purchase_limit": 2}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    reply = await buy(api, buyer, [(on_sale, 1), (draft, 1), (limited, 3)], address_id)
    body = reply.error(422, code=42220)
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert fields == {"items.1.sku_id": "this product is not on sale",
                      "items.2.sku_id": "at most 2 per order"}
    (await buy(api, merchant, [(on_sale, 1)], address_id)).error(404)  # not the caller's
    own = await make_address(resources, merchant.user_id)
    reply = await buy(api, merchant, [(on_sale, 1)], own)
    assert reply.error(422)["errors"][0]["message"] == "you cannot buy your own products"
    far = await make_address(resources, buyer.user_id, province="新疆维吾尔自治区")
    shop, _ = await make_shop(resources, pickup=False,
                              regions=[{"province": "新疆维吾尔自治区", "surcharge": None}])
    _, (remote,) = await make_product(resources, shop.user_id, [{"price": 100, "stock": 5}])
    (await buy(api, buyer, [(remote, 1)], far)).error(422)
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(Order.id)).where(
            Order.user_id == buyer.user_id))).scalar_one() == 0
    assert await stock_of(resources, on_sale) == 5


@pytest.mark.gen_test(timeout=180)
async def test_200_buyers_racing_for_10_units_get_exactly_10_orders(api, resources):
    merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 990, "stock": 10}])
    buyers = [await make_member(resources) for _ in range(200)]
    addresses = [await make_address(resources, b.user_id) for b in buyers]
    replies = await asyncio.gather(*[buy(api, b, [(sku, 1)], a)
                                     for b, a in zip(buyers, addresses, strict=True)])
    statuses = sorted(r.status for r in replies)
    assert statuses.count(201) == 10 and statuses.count(409) == 190, statuses
    for reply in replies:
        if reply.status == 409:
            assert reply.error(409, code=40911)["message"] == "Out of stock"
    assert await stock_of(resources, sku) == 0
    await assert_stock_matches_ledger(resources, sku)
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(Order.id)).where(
            Order.merchant_id == merchant.user_id))).scalar_one() == 10


@pytest.mark.gen_test(timeout=180)
async def test_two_skus_bought_in_opposite_orders_never_deadlock(resources):
    shop, _ = await make_shop(resources)
    _, (first, second) = await make_product(resources, shop.user_id,
                                            [{"price": 100, "stock": 30},
                                             {"price": 200, "stock": 30}])
    buyers = [await make_member(resources) for _ in range(40)]
    addresses = [await make_address(resources, b.user_id) for b in buyers]

    async def attempt(index: int) -> str:
        pair = [(first, 1), (second, 1)] if index % 2 else [(second, 1), (first, 1)]
        body = checkout.CheckoutBody(items=[{"sku_id": s, "quantity": q} for s, q in pair],
                                     address_id=addresses[index])
        try:
            await orders.place_orders(resources, buyers[index].user_id, body)
            return "ok"
        except OutOfStock:
            return "out"

    results = await asyncio.gather(*[attempt(i) for i in range(40)])
    assert results.count("ok") == 30 and results.count("out") == 10
    assert await stock_of(resources, first) == 0 and await stock_of(resources, second) == 0
    await assert_stock_matches_ledger(resources, first, second)


@pytest.mark.gen_test(timeout=60)
async def test_cancel_gives_the_stock_back_exactly_once(api, resources):
    merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 500, "stock": 3}])
    buyer, stranger = await make_member(resources), await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    order_id = (await buy(api, buyer, [(sku, 2)], address_id)).ok(201)["orders"][0]["id"]
    assert await stock_of(resources, sku) == 1
    (await api.post(f"/v1/orders/{order_id}/cancel", token=stranger.token, json={})).error(404)
    replies = await asyncio.gather(*[api.post(f"/v1/orders/{order_id}/cancel",
                                              token=buyer.token, json={"reason": "不要了"})
                                     for _ in range(10)])
    assert sorted(r.status for r in replies) == [200] + [409] * 9
    conflict = next(r for r in replies if r.status == 409).error(409, code=40910)
    assert conflict["errors"] == [{"field": "status", "message": "cancelled"}]
    assert await stock_of(resources, sku) == 3
    await assert_stock_matches_ledger(resources, sku)
    detail = (await api.get(f"/v1/orders/{order_id}", token=buyer.token)).ok()
    assert detail["status"] == "cancelled" and detail["cancel_reason"] == "不要了"
    assert [(t["action"], t["actor_type"]) for t in detail["timeline"]] == [
        ("place", "buyer"), ("cancel", "buyer")]
    (await api.post(f"/v1/orders/{order_id}/confirm-receipt", token=buyer.token)).error(409)


@pytest.mark.gen_test(timeout=60)
async def test_the_sweep_cancels_unpaid_orders_whose_timeout_task_was_lost(api, resources):
    merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 500, "stock": 5}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    order_id = (await buy(api, buyer, [(sku, 1)], address_id)).ok(201)["orders"][0]["id"]
    async with resources.db.session() as session, session.begin():
        # The broker lost the timeout task, and the deadline has passed.
        await session.execute(OutboxMessage.__table__.delete().where(
            OutboxMessage.name == orders.CANCEL_TASK))
        await session.execute(update(Order).where(Order.id == order_id).values(
            pay_deadline=utcnow() - dt.timedelta(minutes=1)))
    assert await orders.cancel_overdue(resources) == 1
    assert await orders.cancel_overdue(resources) == 0  # a second sweep: nothing to do
    assert await orders.cancel_if_overdue(resources, order_id) is False  # the late task
    assert await stock_of(resources, sku) == 5
    detail = (await api.get(f"/v1/orders/{order_id}", token=buyer.token)).ok()
    assert detail["status"] == "cancelled" and detail["timeline"][-1]["actor_type"] == "system"


@pytest.mark.gen_test(timeout=60)
async def test_a_paid_order_is_not_cancelled_by_its_timeout(api, resources):
    merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 500, "stock": 5}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    order_id = (await buy(api, buyer, [(sku, 1)], address_id)).ok(201)["orders"][0]["id"]
    await paid(resources, order_id)
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Order).where(Order.id == order_id).values(
            pay_deadline=utcnow() - dt.timedelta(minutes=1)))
    assert await orders.cancel_if_overdue(resources, order_id) is False
    assert await orders.cancel_overdue(resources) == 0
    assert (await api.get(f"/v1/orders/{order_id}", token=buyer.token)).ok()["status"] == "paid"
    assert await stock_of(resources, sku) == 4


@pytest.mark.gen_test(timeout=90)
async def test_shipping_receipt_and_pick_up_with_live_events(api, app, resources):
    merchant, point = await make_shop(resources)
    other_merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 1500, "stock": 9}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    shipped_id = (await buy(api, buyer, [(sku, 1)], address_id)).ok(201)["orders"][0]["id"]
    pickup_id = (await buy(api, buyer, [(sku, 1)], address_id, shipments=[
        {"merchant_id": merchant.user_id, "fulfilment": "pickup",
         "pickup_point_id": point}])).ok(201)["orders"][0]["id"]
    ship = {"carrier": "顺丰", "tracking_no": "SF1234567890"}
    (await api.post(f"/v1/merchant/orders/{shipped_id}/ship", token=merchant.token,
                    json=ship)).error(409, code=40910)  # not paid yet
    await paid(resources, shipped_id)
    await paid(resources, pickup_id)
    async with capture_events(app, buyer.user_id) as captured:
        (await api.post(f"/v1/merchant/orders/{shipped_id}/ship", token=other_merchant.token,
                        json=ship)).error(404)
        (await api.post(f"/v1/merchant/orders/{shipped_id}/ship", token=buyer.token,
                        json=ship)).error(403)
        (await api.post(f"/v1/merchant/orders/{pickup_id}/ship", token=merchant.token,
                        json=ship)).error(422)
        assert (await api.post(f"/v1/merchant/orders/{shipped_id}/ship", token=merchant.token,
                               json=ship)).ok()["status"] == "shipped"
        (await api.post(f"/v1/orders/{shipped_id}/confirm-receipt", token=buyer.token)).ok()
        (await api.post(f"/v1/merchant/orders/{pickup_id}/ready-for-pickup",
                        token=merchant.token)).ok()
        code = (await api.get(f"/v1/orders/{pickup_id}", token=buyer.token)).ok()["pickup_code"]
        assert len(code) == 6
        wrong = "000000" if code != "000000" else "111111"
        (await api.post(f"/v1/merchant/orders/{pickup_id}/pick-up", token=merchant.token,
                        json={"pickup_code": wrong})).error(422, field="pickup_code")
        (await api.post(f"/v1/merchant/orders/{pickup_id}/pick-up", token=merchant.token,
                        json={"pickup_code": code})).ok()
    events = await captured.events()
    assert_events_valid(events)
    status_events = [e["data"] for e in events if e["type"] == "order.status"]
    assert [(e["order_id"], e["status"]) for e in status_events] == [
        (shipped_id, "shipped"), (shipped_id, "completed"), (pickup_id, "ready_for_pickup"),
        (pickup_id, "completed")]
    assert all(e["role"] == "buyer" for e in status_events)
    assert "notify.new" in types_of(events)  # shipped, ready for pick-up
    seen = (await api.get(f"/v1/merchant/orders/{shipped_id}", token=merchant.token)).ok()
    assert "pickup_code" not in seen and seen["carrier"] == "顺丰"
    assert [t["action"] for t in seen["timeline"]] == ["place", "pay", "ship",
                                                       "confirm_receipt"]


@pytest.mark.gen_test(timeout=60)
async def test_shipped_orders_complete_by_themselves_after_the_window(api, resources):
    merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 1500, "stock": 9}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    order_id = (await buy(api, buyer, [(sku, 1)], address_id)).ok(201)["orders"][0]["id"]
    await paid(resources, order_id)
    (await api.post(f"/v1/merchant/orders/{order_id}/ship", token=merchant.token,
                    json={"carrier": "中通", "tracking_no": "ZT1"})).ok()
    assert await orders.complete_overdue(resources) == 0
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Order).where(Order.id == order_id).values(
            auto_complete_at=utcnow() - dt.timedelta(minutes=1)))
    assert await orders.complete_overdue(resources) == 1
    detail = (await api.get(f"/v1/orders/{order_id}", token=buyer.token)).ok()
    assert detail["status"] == "completed"
    assert detail["timeline"][-1]["action"] == "auto_complete"


@pytest.mark.gen_test(timeout=60)
async def test_lists_count_per_status_and_show_only_ones_own(api, resources):
    merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 100, "stock": 50}])
    buyer, stranger = await make_member(resources), await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    ids = [(await buy(api, buyer, [(sku, 1)], address_id)).ok(201)["orders"][0]["id"]
           for _ in range(3)]
    await paid(resources, ids[0])
    (await api.post(f"/v1/orders/{ids[1]}/cancel", token=buyer.token, json={})).ok()
    page = (await api.get("/v1/orders?limit=2", token=buyer.token)).ok()
    assert page["total"] == 3 and page["totalPages"] == 2
    assert [o["id"] for o in page["items"]] == [ids[2], ids[1]]
    assert page["counts"]["pending_payment"] == 1 and page["counts"]["paid"] == 1
    assert page["counts"]["cancelled"] == 1 and page["counts"]["refunded"] == 0
    only_paid = (await api.get("/v1/orders?status=paid", token=buyer.token)).ok()
    assert [o["id"] for o in only_paid["items"]] == [ids[0]]
    (await api.get("/v1/orders?status=lost", token=buyer.token)).error(422)
    (await api.get(f"/v1/orders/{ids[0]}", token=stranger.token)).error(404)
    assert (await api.get("/v1/orders", token=stranger.token)).ok()["total"] == 0
    mine = (await api.get("/v1/merchant/orders?status=paid", token=merchant.token)).ok()
    assert [o["id"] for o in mine["items"]] == [ids[0]]
    (await api.get("/v1/merchant/orders", token=buyer.token)).error(403)
    today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date().isoformat()
    sales = (await api.get(f"/v1/merchant/sales?date_from={today}&date_to={today}",
                           token=merchant.token)).ok()
    assert sales["orders"] == 1 and sales["paid_amount"] == 100 + 800
    (await api.get(f"/v1/merchant/sales?date_from={today}&date_to=2020-01-01",
                   token=merchant.token)).error(422, field="date_to")
    for low, high in (("0001-01-01", "0001-01-02"), ("9999-12-30", "9999-12-31")):
        far = (await api.get(f"/v1/merchant/sales?date_from={low}&date_to={high}",
                             token=merchant.token)).ok()
        assert far["orders"] == 0 and len(far["items"]) == 2
    admin = await make_member(resources, "admin")
    edge = (await api.get("/v1/admin/orders?date_from=0001-01-01&date_to=9999-12-31",
                          token=admin.token)).ok()
    assert edge["total"] >= 3


@pytest.mark.gen_test(timeout=60)
async def test_every_transition_is_on_the_timeline_with_its_actor(resources, api):
    merchant, _ = await make_shop(resources)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": 100, "stock": 5}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    order_id = (await buy(api, buyer, [(sku, 1)], address_id)).ok(201)["orders"][0]["id"]
    await paid(resources, order_id)
    async with resources.db.session() as session:
        rows = list((await session.execute(select(OrderEvent).where(
            OrderEvent.order_id == order_id).order_by(OrderEvent.id))).scalars())
        ledger = list((await session.execute(select(StockMovement.reason, StockMovement.ref_id)
                                              .where(StockMovement.sku_id == sku)
                                              .order_by(StockMovement.id))).all())
    assert [(r.from_status, r.to_status, r.actor_type) for r in rows] == [
        ("", "pending_payment", "buyer"), ("pending_payment", "paid", "system")]
    assert ledger == [("initial", None), ("order_placed", order_id)]
