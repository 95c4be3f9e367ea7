"""Coupons at checkout and in an order's life: the preview picks the best coupon and lists
the alternatives with their saving, named coupons are checked (someone else's, expired,
under the threshold: 422 with the reason, nothing written), a coupon discounts one shop's
order, it is locked by the order, released on cancel, used on payment, and given back by
a full refund; two checkouts racing for one coupon make one order. Real MariaDB and Redis;
the refund through the real worker and the fake WeChat Pay."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from models.base import utcnow
from models.coupons import UserCoupon
from models.mall import Order
from tests.coupon_support import claim, coupon_row, make_template, trail
from tests.mall_support import make_address, make_member, make_product, make_shop, stock_of
from tests.points_support import (
    assert_balance_matches_ledger,
    default_rules,  # noqa: F401  (fixture)
    give_points,
)
from tests.test_mall_e2e import pay
from tests.test_mall_refunds import settle
from tests.test_orders import paid


async def shop_with(resources, price: int, stock: int = 20):
    shop, _ = await make_shop(resources, express_fee=500, free_over=None)
    product, (sku,) = await make_product(resources, shop.user_id,
                                         [{"price": price, "stock": stock}])
    return shop, product, sku


async def checkout(api, buyer, items, address_id, coupon_ids=None, preview=False, key=None):
    body = {"items": [{"sku_id": s, "quantity": q} for s, q in items],
            "address_id": address_id}
    if coupon_ids is not None:
        body["coupon_ids"] = coupon_ids
    path = "/v1/orders/preview" if preview else "/v1/orders"
    headers = {"Idempotency-Key": key} if key else None
    return await api.post(path, token=buyer.token, json=body, headers=headers)


async def orders_of(resources, user_id: int) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(select(func.count(Order.id)).where(
            Order.user_id == user_id))).scalar_one())


@pytest.mark.gen_test(timeout=90)
async def test_the_preview_picks_the_best_coupon_and_shows_the_others_with_their_saving(
        api, resources):
    admin = await make_member(resources, "admin")
    shop, _, sku = await shop_with(resources, 6000)
    buyer = await make_member(resources)
    address = await make_address(resources, buyer.user_id)
    small = await make_template(api, admin)  # 满50减10
    percent = await make_template(api, admin, kind="percent", amount_off=0, percent_off=20,
                                  max_discount=1500, min_spend=0)
    too_high = await make_template(api, shop, min_spend=50000, amount_off=5000)
    mine = {t["id"]: (await claim(api, buyer, t["id"])).ok(201)["id"]
            for t in (small, percent, too_high)}
    preview = (await checkout(api, buyer, [(sku, 2)], address, preview=True)).ok()
    part = preview["orders"][0]
    # 2 x 60.00 = 120.00: 20% is 24.00, capped at 15.00; 满50减10 saves 10.00.
    assert part["coupon"]["id"] == mine[percent["id"]] and part["coupon"]["saving"] == 1500
    assert [(o["id"], o["saving"], o["chosen"]) for o in part["coupon_options"]] == [
        (mine[percent["id"]], 1500, True), (mine[small["id"]], 1000, False)]
    assert part["price_breakdown"][-1] == {"kind": "discount", "code": "coupon",
                                           "label": f"优惠券 {percent['name']}",
                                           "amount": -1500}
    assert part["payable_amount"] == 12000 + 500 - 1500
    unusable = preview["coupons"]["unusable"]
    assert [u["id"] for u in unusable] == [mine[too_high["id"]]]
    assert unusable[0]["reason"] == "spend ¥380.00 more on covered items"
    chosen = (await checkout(api, buyer, [(sku, 2)], address, [mine[small["id"]]],
                             preview=True)).ok()
    assert chosen["payable_amount"] == 12000 + 500 - 1000
    none = (await checkout(api, buyer, [(sku, 2)], address, [], preview=True)).ok()
    assert none["payable_amount"] == 12500 and none["orders"][0]["coupon"] is None


@pytest.mark.gen_test(timeout=90)
async def test_named_coupons_that_cannot_be_used_refuse_the_order_with_the_reason(
        api, resources):
    admin = await make_member(resources, "admin")
    shop, _, sku = await shop_with(resources, 3000)
    other_shop, _, other_sku = await shop_with(resources, 3000)
    buyer, stranger = await make_member(resources), await make_member(resources)
    address = await make_address(resources, buyer.user_id)
    template = await make_template(api, admin, per_user_limit=3)
    theirs = (await claim(api, stranger, template["id"])).ok(201)["id"]
    lapsed = (await claim(api, buyer, template["id"])).ok(201)["id"]
    usable = (await claim(api, buyer, template["id"])).ok(201)["id"]
    shop_only = await make_template(api, other_shop, amount_off=500, min_spend=1000)
    foreign = (await claim(api, buyer, shop_only["id"])).ok(201)["id"]
    async with resources.db.session() as session, session.begin():
        await session.execute(update(UserCoupon).where(UserCoupon.id == lapsed).values(
            valid_until=utcnow() - dt.timedelta(minutes=1)))
    cases = [([theirs], "no such coupon in your wallet"),
             ([2**50], "no such coupon in your wallet"),
             ([lapsed], "this coupon has expired"),
             ([foreign], "no item of this checkout is covered by this coupon")]
    for ids, reason in cases:
        refused = (await checkout(api, buyer, [(sku, 1)], address, ids)).error(
            422, code=42220, field="coupon_ids.0")
        assert reason in [e["message"] for e in refused["errors"]], refused["errors"]
    refused = (await checkout(api, buyer, [(sku, 1)], address, [usable])).error(
        422, field="coupon_ids.0")  # 30.00 of goods, 满50减10
    assert "spend ¥20.00 more on covered items" in [e["message"] for e in refused["errors"]]
    (await checkout(api, buyer, [(sku, 2)], address, [usable, usable])).error(
        422, field="coupon_ids.1")
    assert await orders_of(resources, buyer.user_id) == 0
    assert await stock_of(resources, sku) == 20
    assert (await coupon_row(resources, theirs)).status == "unused"
    # A shop's coupon discounts that shop's order only; the platform coupon the other.
    placed = (await checkout(api, buyer, [(sku, 2), (other_sku, 1)], address,
                             [foreign, usable])).ok(201)
    by_shop = {o["merchant_id"]: o["payable_amount"] for o in placed["orders"]}
    assert by_shop == {shop.user_id: 6000 + 500 - 1000, other_shop.user_id: 3000 + 500 - 500}


@pytest.mark.gen_test(timeout=90)
async def test_a_coupon_is_locked_by_its_order_released_on_cancel_and_used_on_payment(
        api, resources):
    admin = await make_member(resources, "admin")
    _, _, sku = await shop_with(resources, 6000)
    buyer = await make_member(resources)
    address = await make_address(resources, buyer.user_id)
    template = await make_template(api, admin)
    coupon = (await claim(api, buyer, template["id"])).ok(201)["id"]
    first = (await checkout(api, buyer, [(sku, 1)], address, key="c1")).ok(201)["orders"][0]
    assert first["payable_amount"] == 6000 + 500 - 1000
    row = await coupon_row(resources, coupon)
    assert (row.status, row.order_id, row.discount_amount) == ("locked", first["id"], 1000)
    wallet = (await api.get("/v1/coupons/wallet", token=buyer.token)).ok()["items"]
    assert [(c["id"], c["state"], c["usable_now"]) for c in wallet] == [
        (coupon, "locked", False)]
    # A locked coupon is not offered to another checkout.
    second = (await checkout(api, buyer, [(sku, 1)], address, preview=True)).ok()
    assert second["orders"][0]["coupon"] is None
    (await api.post(f"/v1/orders/{first['id']}/cancel", token=buyer.token, json={})).ok()
    assert (await coupon_row(resources, coupon)).status == "unused"
    again = (await checkout(api, buyer, [(sku, 1)], address, [coupon])).ok(201)["orders"][0]
    await paid(resources, again["id"])
    row = await coupon_row(resources, coupon)
    assert (row.status, row.order_id) == ("used", again["id"]) and row.used_at is not None
    used = (await api.get("/v1/coupons/wallet?state=used", token=buyer.token)).ok()["items"]
    assert [(c["id"], c["order_id"]) for c in used] == [(coupon, again["id"])]
    assert await trail(resources, coupon) == [
        ("claim", "", "unused"), ("lock", "unused", "locked"), ("release", "locked", "unused"),
        ("lock", "unused", "locked"), ("use", "locked", "used")]


@pytest.mark.gen_test(timeout=90)
async def test_an_order_the_coupon_pays_in_full_is_paid_at_once_and_uses_it(api, resources):
    admin = await make_member(resources, "admin")
    shop, _ = await make_shop(resources, express_fee=0, free_over=None)
    _, (sku,) = await make_product(resources, shop.user_id, [{"price": 800, "stock": 5}])
    buyer = await make_member(resources)
    address = await make_address(resources, buyer.user_id)
    template = await make_template(api, admin, kind="no_threshold", amount_off=1000,
                                   min_spend=0)
    coupon = (await claim(api, buyer, template["id"])).ok(201)["id"]
    order = (await checkout(api, buyer, [(sku, 1)], address)).ok(201)["orders"][0]
    assert (order["payable_amount"], order["status"]) == (0, "paid")
    row = await coupon_row(resources, coupon)
    assert (row.status, row.discount_amount) == ("used", 800)  # never more than the goods


@pytest.mark.gen_test(timeout=120)
async def test_two_checkouts_racing_for_one_coupon_make_one_order(api, resources):
    admin = await make_member(resources, "admin")
    _, _, sku = await shop_with(resources, 6000)
    buyer = await make_member(resources)
    address = await make_address(resources, buyer.user_id)
    template = await make_template(api, admin)
    coupon = (await claim(api, buyer, template["id"])).ok(201)["id"]
    for _ in range(3):  # a few rounds: the race must never let both through
        replies = await asyncio.gather(*[
            checkout(api, buyer, [(sku, 1)], address, [coupon]) for _ in range(4)])
        statuses = sorted(r.status for r in replies)
        assert statuses.count(201) == 1, statuses
        assert set(statuses) <= {201, 409, 422}, statuses
        assert all(r.json["code"] in (40944, 42220) for r in replies if r.status != 201)
        order_id = next(r for r in replies if r.status == 201).json["data"]["orders"][0]["id"]
        (await api.post(f"/v1/orders/{order_id}/cancel", token=buyer.token, json={})).ok()
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(Order.id)).where(
            Order.user_id == buyer.user_id, Order.discount_amount == 1000))).scalar_one() == 3
    assert await stock_of(resources, sku) == 20
    assert (await coupon_row(resources, coupon)).status == "unused"


@pytest.mark.gen_test(timeout=120)
async def test_checkouts_racing_for_the_automatic_coupon_all_succeed(api, resources):
    """Left to the server, a coupon taken by the buyer's other checkout is not a refusal:
    the loser is planned again and takes the next free coupon, then none."""
    admin = await make_member(resources, "admin")
    _, _, sku = await shop_with(resources, 6000)
    buyer = await make_member(resources)
    address = await make_address(resources, buyer.user_id)
    template = await make_template(api, admin, per_user_limit=2)
    coupons = [(await claim(api, buyer, template["id"], key=f"c{n}")).ok(201)["id"]
               for n in range(2)]
    replies = await asyncio.gather(*[checkout(api, buyer, [(sku, 1)], address)
                                     for _ in range(4)])
    assert sorted(r.status for r in replies) == [201] * 4, [r.json for r in replies]
    orders = [r.json["data"]["orders"][0]["id"] for r in replies]
    async with resources.db.session() as session:
        discounts = sorted((await session.execute(select(Order.discount_amount).where(
            Order.id.in_(orders)))).scalars())
    assert discounts == [0, 0, 1000, 1000]
    rows = [await coupon_row(resources, c) for c in coupons]
    assert {r.status for r in rows} == {"locked"}
    assert {r.order_id for r in rows} < set(orders) and rows[0].order_id != rows[1].order_id


@pytest.mark.gen_test(timeout=180)
async def test_a_full_refund_gives_the_coupon_back(api, resources, wechatpay,
                                                   celery_worker_process):
    admin = await make_member(resources, "admin")
    shop, _, sku = await shop_with(resources, 6000)
    buyer = await make_member(resources)
    address = await make_address(resources, buyer.user_id)
    template = await make_template(api, admin)
    coupon = (await claim(api, buyer, template["id"])).ok(201)["id"]
    order = (await checkout(api, buyer, [(sku, 1)], address)).ok(201)["orders"][0]
    await pay(api, wechatpay, buyer, order)
    assert (await coupon_row(resources, coupon)).status == "used"
    asked = (await api.post(f"/v1/orders/{order['id']}/refunds", token=buyer.token,
                            json={"reason": "不想要了"})).ok(201)
    assert asked["amount"] == 6000 + 500 - 1000  # what was paid, not the list price
    (await api.post(f"/v1/merchant/refunds/{asked['id']}/approve", token=shop.token,
                    json={})).ok()
    await settle(api, wechatpay, asked["refund_no"])
    row = await coupon_row(resources, coupon)
    assert (row.status, row.order_id) == ("unused", None)
    assert (await trail(resources, coupon))[-1] == ("return", "used", "unused")
    wallet = (await api.get("/v1/coupons/wallet", token=buyer.token)).ok()["items"]
    assert [(c["id"], c["state"]) for c in wallet] == [(coupon, "unused")]


@pytest.mark.gen_test(timeout=90)
async def test_points_pay_part_of_what_the_coupon_leaves_and_cancel_returns_both(
        api, resources, default_rules):
    admin = await make_member(resources, "admin")
    _, _, sku = await shop_with(resources, 6000)  # + 5.00 delivery
    buyer = await make_member(resources)
    address = await make_address(resources, buyer.user_id)
    await give_points(resources, buyer.user_id, 10_000)
    template = await make_template(api, admin)
    coupon = (await claim(api, buyer, template["id"])).ok(201)["id"]
    body = {"items": [{"sku_id": sku, "quantity": 1}], "address_id": address, "points": 10_000}
    placed = (await api.post("/v1/orders", token=buyer.token, json=body)).ok(201)["orders"][0]
    detail = (await api.get(f"/v1/orders/{placed['id']}", token=buyer.token)).ok()
    codes = [(b["code"], b["amount"]) for b in detail["price_breakdown"]]
    # 65.00 - 10.00 coupon = 55.00; points pay at most half of that (the default rule).
    assert codes[:3] == [("goods", 6000), ("delivery", 500), ("coupon", -1000)]
    assert codes[3][0] == "points" and placed["payable_amount"] == 5500 + codes[3][1] > 0
    assert (await coupon_row(resources, coupon)).status == "locked"
    (await api.post(f"/v1/orders/{placed['id']}/cancel", token=buyer.token, json={})).ok()
    assert (await coupon_row(resources, coupon)).status == "unused"
    assert await assert_balance_matches_ledger(resources, buyer.user_id) == 10_000
