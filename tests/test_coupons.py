"""Coupon templates and claims: issuers keep to their own shop, terms freeze once claimed,
claims never exceed the quantity (300 users racing for 100) nor a user's limit (a concurrent
double claim), a retried claim returns the same coupon, codes, new-user coupons, the wallet
by state and what a product can use. Real MariaDB and Redis."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select, update

from models.base import utcnow
from models.coupons import UserCoupon
from models.mall import Order
from pawhome.platform.errors import IdempotencyMismatch
from pawhome.promotions import coupons
from tests.coupon_support import claim, coupon_row, make_template, template_row, terms, trail
from tests.mall_support import make_category, make_member, make_product, make_shop, put_in_cart


@pytest.mark.gen_test(timeout=60)
async def test_a_merchant_issues_only_for_its_own_shop_and_never_touches_another_s(
        api, resources):
    shop, _ = await make_shop(resources)
    rival, _ = await make_shop(resources)
    own, _ = await make_product(resources, shop.user_id)
    theirs, _ = await make_product(resources, rival.user_id)
    made = await make_template(api, shop, scope="products", product_ids=[own])
    assert made["issuer"] == "merchant" and made["issuer_merchant_id"] == shop.user_id
    refused = (await api.post("/v1/merchant/coupon-templates", token=shop.token, json=terms(
        scope="products", product_ids=[own, theirs]))).error(422, code=42240,
                                                             field="product_ids.1")
    assert refused["errors"][0]["message"] == "not one of your products"
    (await api.post("/v1/merchant/coupon-templates", token=shop.token, json=terms(
        scope="merchant", merchant_id=rival.user_id))).error(422, field="merchant_id")
    path = f"/v1/merchant/coupon-templates/{made['id']}"
    (await api.get(path, token=rival.token)).error(404)
    (await api.request("PATCH", path, token=rival.token, json={"name": "抢"})).error(404)
    (await api.post(path + "/stop", token=rival.token)).error(404)
    listed = (await api.get("/v1/merchant/coupon-templates", token=rival.token)).ok()
    assert made["id"] not in [t["id"] for t in listed["items"]]
    buyer = await make_member(resources)
    (await api.get("/v1/merchant/coupon-templates", token=buyer.token)).error(403)
    (await api.post("/v1/merchant/coupon-templates", token=buyer.token,
                    json=terms())).error(403)
    assert (await template_row(resources, made["id"])).name == "满50减10"


@pytest.mark.gen_test(timeout=60)
async def test_terms_that_make_no_sense_are_refused_with_the_field(api, resources):
    admin = await make_member(resources, "admin")
    post = "/v1/merchant/coupon-templates"
    cases = [({"min_spend": 500}, "min_spend"),  # 满5减10
             ({"kind": "percent", "amount_off": 0, "percent_off": 20}, "max_discount"),
             ({"kind": "no_threshold", "min_spend": 100}, "min_spend"),
             ({"valid_days": None, "valid_from": "2020-01-01", "valid_to": "2020-01-31"},
              "valid_to"),
             ({"valid_from": "2030-01-01", "valid_to": "2030-01-31"}, "valid_from"),
             ({"scope": "category", "category_id": 2**40}, "category_id"),
             ({"claim_method": "code"}, "code")]
    for fields, field in cases:
        (await api.post(post, token=admin.token, json=terms(**fields))).error(
            422, code=42240, field=field)
    made = await make_template(api, admin, kind="percent", amount_off=0, percent_off=20,
                               max_discount=1500, min_spend=0)
    assert made["issuer"] == "platform" and made["remaining"] == 100


@pytest.mark.gen_test(timeout=60)
async def test_terms_freeze_once_claimed_but_name_quantity_and_limit_may_change(
        api, resources):
    admin = await make_member(resources, "admin")
    made = await make_template(api, admin, total_quantity=5)
    path = f"/v1/merchant/coupon-templates/{made['id']}"
    changed = (await api.request("PATCH", path, token=admin.token, json={
        "terms": {"kind": "no_threshold", "amount_off": 300, "valid_days": 3}})).ok()
    assert (changed["kind"], changed["min_spend"]) == ("no_threshold", 0)
    buyer = await make_member(resources)
    (await claim(api, buyer, made["id"])).ok(201)
    (await api.request("PATCH", path, token=admin.token, json={
        "terms": {"kind": "no_threshold", "amount_off": 3000, "valid_days": 3}})).error(
        409, code=40943)
    (await api.request("PATCH", path, token=admin.token,
                       json={"total_quantity": 0})).error(422)
    renamed = (await api.request("PATCH", path, token=admin.token, json={
        "name": "无门槛3元", "total_quantity": 10, "per_user_limit": 2})).ok()
    assert (renamed["name"], renamed["total_quantity"], renamed["amount_off"]) == (
        "无门槛3元", 10, 300)
    stopped = (await api.post(path + "/stop", token=admin.token)).ok()
    assert stopped["status"] == "stopped"
    (await claim(api, buyer, made["id"])).error(409, code=40942)
    mine = (await api.get("/v1/coupons/wallet", token=buyer.token)).ok()
    assert [c["template_id"] for c in mine["items"]] == [made["id"]]  # still held, usable


@pytest.mark.gen_test(timeout=240)
async def test_300_users_racing_for_100_coupons_get_exactly_100(api, resources):
    admin = await make_member(resources, "admin")
    made = await make_template(api, admin, total_quantity=100)
    users = [await make_member(resources) for _ in range(300)]
    replies = await asyncio.gather(*[claim(api, u, made["id"], key=uuid.uuid4().hex)
                                     for u in users])
    statuses = sorted(r.status for r in replies)
    assert statuses.count(201) == 100 and statuses.count(409) == 200, statuses
    assert all(r.json["code"] == 40940 for r in replies if r.status == 409)
    async with resources.db.session() as session:
        issued = (await session.execute(select(func.count(UserCoupon.id)).where(
            UserCoupon.template_id == made["id"]))).scalar_one()
        holders = (await session.execute(select(func.count(func.distinct(
            UserCoupon.user_id))).where(UserCoupon.template_id == made["id"]))).scalar_one()
    assert issued == holders == 100
    assert (await template_row(resources, made["id"])).issued_count == 100


@pytest.mark.gen_test(timeout=60)
async def test_a_concurrent_double_claim_stays_within_the_per_user_limit(api, resources):
    admin = await make_member(resources, "admin")
    made = await make_template(api, admin, per_user_limit=2)
    buyer = await make_member(resources)
    replies = await asyncio.gather(*[claim(api, buyer, made["id"], key=f"k{i}")
                                     for i in range(10)])
    assert sorted(r.status for r in replies) == [201] * 2 + [409] * 8
    assert all(r.json["code"] == 40941 for r in replies if r.status == 409)
    # The same claim retried (its Idempotency-Key) returns the coupon it made.
    first = next(r for r in replies if r.status == 201)
    key = next(f"k{i}" for i, r in enumerate(replies) if r is first)
    again = await claim(api, buyer, made["id"], key=key)
    assert again.ok(201)["id"] == first.json["data"]["id"]
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(UserCoupon.id)).where(
            UserCoupon.user_id == buyer.user_id))).scalar_one() == 2
    assert (await template_row(resources, made["id"])).issued_count == 2


@pytest.mark.gen_test(timeout=60)
async def test_codes_claim_their_coupon_and_unknown_codes_are_refused(api, resources):
    admin = await make_member(resources, "admin")
    made = await make_template(api, admin, claim_method="code", code="PAW2026")
    buyer = await make_member(resources)
    (await api.post("/v1/coupons/claim-code", token=buyer.token,
                    json={"code": "NOPE1234"})).error(422, code=42241, field="code")
    (await claim(api, buyer, made["id"])).error(404)  # a code coupon is found by its code
    got = (await api.post("/v1/coupons/claim-code", token=buyer.token,
                          json={"code": "paw2026"})).ok(201)
    assert got["template_id"] == made["id"] and got["state"] == "unused"
    (await api.post("/v1/coupons/claim-code", token=buyer.token,
                    json={"code": "PAW2026"})).error(409, code=40941)
    (await api.post("/v1/merchant/coupon-templates", token=admin.token, json=terms(
        claim_method="code", code="paw2026"))).error(422, field="code")  # taken
    available = (await api.get("/v1/coupons/available", token=buyer.token)).ok()
    assert made["id"] not in [t["id"] for t in available["claimable"]]  # codes not listed


@pytest.mark.gen_test(timeout=60)
async def test_new_user_coupons_go_only_to_users_who_never_paid(api, resources):
    admin = await make_member(resources, "admin")
    made = await make_template(api, admin, new_users_only=True)
    shop, _ = await make_shop(resources)
    veteran, newcomer = await make_member(resources), await make_member(resources)
    async with resources.db.session() as session, session.begin():
        now = utcnow()
        session.add(Order(order_no=uuid.uuid4().hex[:20], user_id=veteran.user_id,
                          merchant_id=shop.user_id, status="completed", fulfilment="express",
                          goods_amount=100, payable_amount=100, paid_amount=100,
                          paid_at=now, pay_deadline=now, price_breakdown=[]))
    (await claim(api, veteran, made["id"])).error(409, code=40942)
    (await claim(api, newcomer, made["id"])).ok(201)
    listed = (await api.get("/v1/coupons/available", token=veteran.token)).ok()
    assert made["id"] not in [t["id"] for t in listed["claimable"]]


@pytest.mark.gen_test(timeout=60)
async def test_the_wallet_shows_expired_coupons_and_products_show_what_covers_them(
        api, resources):
    admin = await make_member(resources, "admin")
    food = await make_category(resources, "主粮")
    cat_food = await make_category(resources, "猫粮", parent_id=food)
    shop, _ = await make_shop(resources)
    product, _ = await make_product(resources, shop.user_id, [{"price": 8000, "stock": 5}],
                                    category_id=cat_food)
    other, _ = await make_product(resources, shop.user_id, [{"price": 8000, "stock": 5}])
    by_category = await make_template(api, admin, scope="category", category_id=food)
    percent = await make_template(api, admin, kind="percent", amount_off=0, percent_off=30,
                                  max_discount=2000, min_spend=0, scope="products",
                                  product_ids=[other])
    buyer = await make_member(resources)
    for_product = (await api.get(f"/v1/coupons/available?product_id={product}",
                                 token=buyer.token)).ok()
    offered = {t["id"]: t["saving"] for t in for_product["claimable"]}
    assert offered.get(by_category["id"]) == 1000 and percent["id"] not in offered
    for_other = (await api.get(f"/v1/coupons/available?product_id={other}",
                               token=buyer.token)).ok()
    assert {t["id"]: t["saving"] for t in for_other["claimable"]}[percent["id"]] == 2000
    kept = (await claim(api, buyer, by_category["id"])).ok(201)
    lapsed = (await claim(api, buyer, percent["id"])).ok(201)
    async with resources.db.session() as session, session.begin():
        await session.execute(update(UserCoupon).where(UserCoupon.id == lapsed["id"]).values(
            valid_until=utcnow() - dt.timedelta(seconds=1)))
    unused = (await api.get("/v1/coupons/wallet", token=buyer.token)).ok()
    expired = (await api.get("/v1/coupons/wallet?state=expired", token=buyer.token)).ok()
    used = (await api.get("/v1/coupons/wallet?state=used", token=buyer.token)).ok()
    assert [c["id"] for c in unused["items"]] == [kept["id"]]
    assert [(c["id"], c["state"]) for c in expired["items"]] == [(lapsed["id"], "expired")]
    assert used["items"] == [] and used["total"] == 0
    owned = (await api.get(f"/v1/coupons/available?product_id={product}",
                           token=buyer.token)).ok()["owned"]
    assert [c["id"] for c in owned] == [kept["id"]]
    assert (await coupon_row(resources, kept["id"])).status == "unused"
    assert await trail(resources, kept["id"]) == [("claim", "", "unused")]


@pytest.mark.gen_test(timeout=120)
async def test_claims_of_many_templates_at_once_all_succeed(api, resources):
    admin = await make_member(resources, "admin")
    made = [await make_template(api, admin) for _ in range(5)]
    users = [await make_member(resources) for _ in range(30)]
    replies = await asyncio.gather(*[claim(api, u, t["id"], key=uuid.uuid4().hex)
                                     for u in users for t in made])
    assert [r.status for r in replies] == [201] * 150
    for template in made:
        assert (await template_row(resources, template["id"])).issued_count == 30


@pytest.mark.gen_test(timeout=60)
async def test_a_claim_key_names_one_claim_even_after_the_gateway_forgot_it(api, resources):
    admin = await make_member(resources, "admin")
    first, second = await make_template(api, admin), await make_template(api, admin)
    buyer = await make_member(resources)
    made = await coupons.claim(resources, buyer.user_id, first["id"], key="k-once")
    again = await coupons.claim(resources, buyer.user_id, first["id"], key="k-once")
    assert again["id"] == made["id"]
    with pytest.raises(IdempotencyMismatch):
        await coupons.claim(resources, buyer.user_id, second["id"], key="k-once")
    assert (await template_row(resources, second["id"])).issued_count == 0
    (await claim(api, buyer, second["id"], key="k-once")).error(422, code=42201)


@pytest.mark.gen_test(timeout=60)
async def test_the_cart_shows_the_coupons_its_selected_lines_can_use(api, resources):
    shop, _ = await make_shop(resources)
    rival, _ = await make_shop(resources)
    _, (food,) = await make_product(resources, shop.user_id, [{"price": 3000, "stock": 9}])
    _, (toy,) = await make_product(resources, rival.user_id, [{"price": 9000, "stock": 9}])
    own = await make_template(api, shop, min_spend=5000)  # 满50减10 of the first shop
    theirs = await make_template(api, rival, min_spend=5000)
    buyer = await make_member(resources)
    await put_in_cart(resources, buyer.user_id, food, 2)
    await put_in_cart(resources, buyer.user_id, toy, 1, selected=False)
    listed = (await api.get("/v1/coupons/available?cart=true", token=buyer.token)).ok()
    offered = {t["id"]: t["saving"] for t in listed["claimable"]}
    assert offered[own["id"]] == 1000  # 2 x 30.00 covered: 满50减10
    assert theirs["id"] not in [t["id"] for t in listed["claimable"]]  # its line unselected
    everything = (await api.get("/v1/coupons/available", token=buyer.token)).ok()
    assert {own["id"], theirs["id"]} <= {t["id"] for t in everything["claimable"]}
    for template in (own, theirs):
        (await claim(api, buyer, template["id"])).ok(201)
    page = (await api.get("/v1/coupons/wallet?limit=1&page=2", token=buyer.token)).ok()
    assert (page["total"], page["totalPages"], len(page["items"])) == (2, 2, 1)
