"""The merchant's and the admin's catalogue: categories as a tree, products and their SKU
sets, putting on sale through moderation, stock adjustments with a ledger, the audit log, and
everything a hostile or careless caller might send."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from models.mall import Sku, StockMovement
from models.realtime import Notification
from tests.catalogue_support import (
    make_category,
    make_product,
    make_seller,
    one_sku,
    product_on_sale,
    ready_media,
    review,
)
from tests.fixtures_worker import wait_until
from tests.interactions_support import make_user

FLAVOURS = [{"name": "口味", "values": ["鸡肉", "牛肉"]}, {"name": "规格", "values": ["1kg", "5kg"]}]


def sku(flavour: str, size: str, price: int, stock: int = 5, **fields) -> dict:
    return {"spec_values": [flavour, size], "price": price, "stock": stock, **fields}


async def audit_actions(api, admin, target_type: str, target_id: int) -> list[dict]:
    page = (await api.get(f"/v1/admin/audit-log?target_type={target_type}"
                          f"&target_id={target_id}&limit=100", token=admin.token)).ok()
    return page["items"]


# -- categories ---------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_category_tree_nests_children_hides_disabled_and_is_dropped_on_every_write(
        api, resources):
    admin = await make_seller(resources, "admin")
    # Names of their own: other tests of this worker's database make root categories too.
    tag = uuid.uuid4().hex[:6]
    food = await make_category(api, admin, "主粮" + tag, sort=1)
    toys = await make_category(api, admin, "玩具" + tag, sort=0)
    cat_food = await make_category(api, admin, "猫粮", parent_id=food["id"])
    hidden = await make_category(api, admin, "下架类目", parent_id=food["id"], enabled=False)
    tree = (await api.get("/v1/categories")).ok()["items"]
    mine = [c for c in tree if c["id"] in (food["id"], toys["id"])]
    assert [c["name"] for c in mine] == ["玩具" + tag, "主粮" + tag]  # by sort
    food_node = next(c for c in mine if c["id"] == food["id"])
    assert [c["id"] for c in food_node["children"]] == [cat_food["id"]]  # disabled hidden
    # The tree is cached; a write drops it at once.
    (await api.request("PATCH", f"/v1/admin/categories/{cat_food['id']}",
                       json={"name": "猫咪主粮"}, token=admin.token)).ok()
    tree = (await api.get("/v1/categories")).ok()["items"]
    food_node = next(c for c in tree if c["id"] == food["id"])
    assert food_node["children"][0]["name"] == "猫咪主粮"
    (await api.request("PATCH", f"/v1/admin/categories/{hidden['id']}", json={"enabled": True},
                       token=admin.token)).ok()
    tree = (await api.get("/v1/categories")).ok()["items"]
    assert len(next(c for c in tree if c["id"] == food["id"])["children"]) == 2
    whole = (await api.get("/v1/admin/categories", token=admin.token)).ok()["items"]
    assert any(c["id"] == food["id"] for c in whole)


@pytest.mark.gen_test(timeout=60)
async def test_a_category_cannot_move_under_itself_or_go_too_deep(api, resources):
    admin = await make_seller(resources, "admin")
    top = await make_category(api, admin)
    middle = await make_category(api, admin, parent_id=top["id"])
    low = await make_category(api, admin, parent_id=middle["id"])
    for parent in (top["id"], low["id"]):
        (await api.request("PATCH", f"/v1/admin/categories/{top['id']}",
                           json={"parent_id": parent}, token=admin.token)).error(
            422, field="parent_id")
    deepest = await make_category(api, admin, parent_id=low["id"])  # level 4
    (await api.post("/v1/admin/categories", json={"name": "第五层", "parent_id": deepest["id"]},
                    token=admin.token)).error(422, field="parent_id")
    (await api.post("/v1/admin/categories", json={"name": "x", "parent_id": 2**62},
                    token=admin.token)).error(422, field="parent_id")
    (await api.post("/v1/admin/categories", json={"name": top["name"]},
                    token=admin.token)).error(409, field="name")
    moved = (await api.request("PATCH", f"/v1/admin/categories/{low['id']}",
                               json={"parent_id": None}, token=admin.token)).ok()
    assert moved["parent_id"] is None


@pytest.mark.gen_test(timeout=60)
async def test_a_category_in_use_is_not_deleted_and_every_write_is_audited(api, resources):
    admin = await make_seller(resources, "admin")
    merchant = await make_seller(resources)
    parent = await make_category(api, admin)
    child = await make_category(api, admin, parent_id=parent["id"])
    (await api.delete(f"/v1/admin/categories/{parent['id']}", token=admin.token)).error(409)
    product = await make_product(api, resources, merchant, child["id"])
    (await api.delete(f"/v1/admin/categories/{child['id']}", token=admin.token)).error(409)
    (await api.delete(f"/v1/merchant/products/{product['id']}", token=merchant.token)).ok()
    assert (await api.delete(f"/v1/admin/categories/{child['id']}",
                             token=admin.token)).ok()["deleted"] is True
    (await api.delete(f"/v1/admin/categories/{child['id']}", token=admin.token)).error(404)
    actions = [e["action"] for e in await audit_actions(api, admin, "category", child["id"])]
    assert actions == ["category.delete", "category.create"]
    entry = (await audit_actions(api, admin, "category", child["id"]))[0]
    assert entry["actor_id"] == admin.user_id and entry["before"]["name"] == child["name"]


@pytest.mark.gen_test(timeout=60)
async def test_only_admins_write_categories_and_read_the_audit_log(api, resources):
    merchant, user = await make_seller(resources), await make_user(resources)
    for who in (merchant, user):
        (await api.post("/v1/admin/categories", json={"name": "x"}, token=who.token)).error(403)
        (await api.get("/v1/admin/audit-log", token=who.token)).error(403)
    admin = await make_seller(resources, "admin")
    (await api.post("/v1/admin/categories", json={"name": "x", "colour": "red"},
                    token=admin.token)).error(422, field="colour")


# -- products -----------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_a_merchant_builds_a_product_with_a_sku_set_and_it_is_audited(api, resources):
    admin, merchant = await make_seller(resources, "admin"), await make_seller(resources)
    category = await make_category(api, admin)
    image = await ready_media(resources, merchant.user_id)
    video = await ready_media(resources, merchant.user_id, kind="video")
    sku_image = await ready_media(resources, merchant.user_id)
    created = (await api.post("/v1/merchant/products", json={
        "name": "  全价猫粮  ", "subtitle": "鸡肉味", "media_ids": [image], "video_media_id": video,
        "category_id": category["id"], "brand": "PAW", "tags": ["猫粮", "猫粮", "无谷"],
        "pet_types": ["cat"]}, token=merchant.token)).ok(201)
    assert created["status"] == "draft" and created["name"] == "全价猫粮"
    assert created["tags"] == ["猫粮", "无谷"] and created["skus"] == []
    assert created["images"][0]["url"].endswith("w1080.webp")
    assert created["video"]["url"].endswith("video.mp4")
    product = (await api.put(f"/v1/merchant/products/{created['id']}/skus", json={
        "spec_attrs": FLAVOURS,
        "skus": [sku("鸡肉", "1kg", 5900, 10, original_price=6900, image_media_id=sku_image,
                     code="CK-1", weight_g=1100, purchase_limit=5),
                 sku("鸡肉", "5kg", 25900, 3), sku("牛肉", "1kg", 6900, 0)]},
        token=merchant.token)).ok()
    assert (product["price_min"], product["price_max"]) == (5900, 25900)
    assert product["stock_total"] == 13
    first = product["skus"][0]
    assert first["spec_text"] == "口味:鸡肉; 规格:1kg" and first["code"] == "CK-1"
    assert first["image_url"].endswith("w1080.webp") and first["purchase_limit"] == 5
    async with resources.db.session() as session:
        ledger = list((await session.execute(select(StockMovement).where(
            StockMovement.sku_id.in_([s["id"] for s in product["skus"]]))
            .order_by(StockMovement.id))).scalars())
    assert [(m.reason, m.delta) for m in ledger] == [("initial", 10), ("initial", 3)]
    actions = [e["action"] for e in await audit_actions(api, admin, "product", created["id"])]
    assert actions == ["product.skus", "product.create"]
    mine = (await api.get("/v1/merchant/products?status=draft", token=merchant.token)).ok()
    assert [p["id"] for p in mine["items"]] == [created["id"]]
    assert mine["items"][0]["stock_total"] == 13


@pytest.mark.gen_test(timeout=60)
async def test_a_new_sku_set_keeps_matching_skus_retires_the_rest_and_revives_them(
        api, resources):
    merchant = await make_seller(resources)
    product = await make_product(api, resources, merchant, None, spec_attrs=FLAVOURS,
                                 skus=[sku("鸡肉", "1kg", 5900), sku("牛肉", "1kg", 6900)])
    chicken, beef = product["skus"]
    changed = (await api.put(f"/v1/merchant/products/{product['id']}/skus", json={
        "spec_attrs": FLAVOURS, "skus": [sku("鸡肉", "1KG", 5500, stock=99)]},
        token=merchant.token)).ok()
    assert [s["id"] for s in changed["skus"]] == [chicken["id"]]  # same SKU, "1KG" = "1kg"
    assert changed["skus"][0]["stock"] == 5  # an existing SKU keeps its stock
    assert changed["skus"][0]["spec_values"] == ["鸡肉", "1kg"]
    assert (changed["price_min"], changed["price_max"]) == (5500, 5500)
    async with resources.db.session() as session:
        retired = await session.get(Sku, beef["id"])
        assert retired.deleted_at is not None  # kept for the orders and carts naming it
    back = (await api.put(f"/v1/merchant/products/{product['id']}/skus", json={
        "spec_attrs": FLAVOURS, "skus": [sku("鸡肉", "1kg", 5500), sku("牛肉", "1kg", 7000, 2)]},
        token=merchant.token)).ok()
    assert [s["id"] for s in back["skus"]] == [chicken["id"], beef["id"]]
    assert back["skus"][1]["stock"] == 2


@pytest.mark.gen_test(timeout=60)
async def test_sku_sets_that_do_not_fit_the_attributes_or_prices_are_refused(api, resources):
    merchant = await make_seller(resources)
    product = await make_product(api, resources, merchant, None)
    path = f"/v1/merchant/products/{product['id']}/skus"

    async def refused(body: dict, field: str, status: int = 422) -> None:
        (await api.put(path, json=body, token=merchant.token)).error(status, field=field)

    await refused({"spec_attrs": FLAVOURS, "skus": [sku("鸡肉", "2kg", 100)]}, "skus.0.spec_values")
    await refused({"spec_attrs": FLAVOURS, "skus": [{"spec_values": ["鸡肉"], "price": 100}]},
                  "skus.0.spec_values")
    await refused({"spec_attrs": FLAVOURS, "skus": [sku("鸡肉", "1kg", 100),
                                                    sku("鸡肉", "1kg", 200)]},
                  "skus.1.spec_values")
    await refused({"spec_attrs": [{"name": "口味", "values": ["鸡肉", "鸡肉"]}],
                   "skus": [{"spec_values": ["鸡肉"], "price": 100}]}, "spec_attrs.0.values")
    await refused({"skus": [one_sku(), one_sku()]}, "skus")
    await refused({"skus": [one_sku(price=0)]}, "skus.0.price")
    await refused({"skus": [one_sku(price=-100)]}, "skus.0.price")
    await refused({"skus": [one_sku(price=10**12)]}, "skus.0.price")
    await refused({"skus": [one_sku(price=19.9)]}, "skus.0.price")
    await refused({"skus": [one_sku(price="1990")]}, "skus.0.price")
    await refused({"skus": [one_sku(price=1990, original_price=1000)]}, "skus.0.original_price")
    await refused({"skus": [one_sku(stock=-2)]}, "skus.0.stock")  # -1: unlimited
    await refused({"skus": [one_sku(discount=5)]}, "skus.0.discount")
    await refused({"skus": []}, "skus")
    other = await make_seller(resources)
    theirs = await ready_media(resources, other.user_id)
    pending = await ready_media(resources, merchant.user_id, status="processing")
    await refused({"skus": [one_sku(image_media_id=theirs)]}, "skus.0.image_media_id")
    await refused({"skus": [one_sku(image_media_id=pending)]}, "skus.0.image_media_id")
    # 5.0 is the integer 5 (JSON has one number type); nothing above changed the product.
    assert (await api.put(path, json={"skus": [one_sku(price=5.0)]},
                          token=merchant.token)).ok()["price_min"] == 5


@pytest.mark.gen_test(timeout=60)
async def test_product_fields_are_checked_and_media_must_be_the_merchants_ready_images(
        api, resources):
    admin, merchant = await make_seller(resources, "admin"), await make_seller(resources)
    other = await make_seller(resources)
    disabled = await make_category(api, admin, enabled=False)
    theirs = await ready_media(resources, other.user_id)
    processing = await ready_media(resources, merchant.user_id, status="processing")
    video = await ready_media(resources, merchant.user_id, kind="video")

    async def refused(body: dict, field: str) -> None:
        (await api.post("/v1/merchant/products", json={"name": "猫砂", **body},
                        token=merchant.token)).error(422, field=field)

    await refused({"media_ids": [theirs]}, "media_ids.0")
    await refused({"media_ids": [processing]}, "media_ids.0")
    await refused({"media_ids": [video]}, "media_ids.0")
    await refused({"video_media_id": theirs}, "video_media_id.0")
    await refused({"category_id": disabled["id"]}, "category_id")
    await refused({"category_id": 2**60}, "category_id")
    await refused({"pet_types": ["dragon"]}, "pet_types.0")
    await refused({"price": 100}, "price")
    await refused({"name": "   "}, "name")
    await refused({"tags": ["x"] * 11}, "tags")


@pytest.mark.gen_test(timeout=60)
async def test_roles_and_ownership_another_merchants_product_is_not_found(api, resources):
    merchant, rival = await make_seller(resources), await make_seller(resources)
    user = await make_user(resources)
    product = await make_product(api, resources, merchant, None)
    sku_id = product["skus"][0]["id"]
    for method, path, body in (
            ("GET", f"/v1/merchant/products/{product['id']}", None),
            ("PATCH", f"/v1/merchant/products/{product['id']}", {"name": "抢来的"}),
            ("PUT", f"/v1/merchant/products/{product['id']}/skus", {"skus": [one_sku()]}),
            ("POST", f"/v1/merchant/products/{product['id']}/on-sale", None),
            ("POST", f"/v1/merchant/products/{product['id']}/off-sale", None),
            ("DELETE", f"/v1/merchant/products/{product['id']}", None),
            ("POST", f"/v1/merchant/skus/{sku_id}/stock-adjustments", {"delta": 5, "reason": "x"}),
            ("GET", f"/v1/merchant/skus/{sku_id}/stock-movements", None)):
        (await api.request(method, path, json=body, token=rival.token)).error(404)
        (await api.request(method, path, json=body, token=user.token)).error(403)
    assert (await api.get("/v1/merchant/products", token=rival.token)).ok()["items"] == []
    (await api.post("/v1/merchant/products", json={"name": "x"}, token=user.token)).error(403)
    # Admins act on every product, but have no shop of their own to add to.
    admin = await make_seller(resources, "admin")
    assert (await api.get(f"/v1/merchant/products/{product['id']}",
                          token=admin.token)).ok()["id"] == product["id"]
    (await api.post("/v1/merchant/products", json={"name": "x"}, token=admin.token)).error(403)


# -- on sale, through moderation ----------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_putting_on_sale_reviews_the_product_then_it_is_public(api, resources, wechat):
    merchant = await make_seller(resources)
    product = await product_on_sale(api, resources, merchant)
    assert product["status"] == "on_sale" and product["on_sale_at"]
    assert any(r.path == "/wxa/msg_sec_check" for r in wechat.requests)
    page = (await api.get(f"/v1/products/{product['id']}")).ok()
    assert page["name"] == "冻干鸡肉粒" and page["favorited"] is False
    # Again on sale: a no-op.
    again = (await api.post(f"/v1/merchant/products/{product['id']}/on-sale",
                            token=merchant.token)).ok()
    assert again["status"] == "on_sale"


@pytest.mark.gen_test(timeout=60)
async def test_a_product_not_ready_for_sale_is_refused_naming_what_is_missing(api, resources):
    merchant = await make_seller(resources)
    draft = (await api.post("/v1/merchant/products", json={"name": "空商品"},
                            token=merchant.token)).ok(201)
    body = (await api.post(f"/v1/merchant/products/{draft['id']}/on-sale",
                           token=merchant.token)).error(409)
    assert {e["field"] for e in body["errors"]} == {"media_ids", "category_id", "skus"}


@pytest.mark.gen_test(timeout=60)
async def test_risky_text_rejects_the_product_with_a_reason_the_merchant_sees(
        api, resources, wechat):
    merchant = await make_seller(resources)
    product = await make_product(api, resources, merchant, None, description="FAKE_RISKY 内容")
    admin = await make_seller(resources, "admin")
    category = await make_category(api, admin)
    (await api.request("PATCH", f"/v1/merchant/products/{product['id']}",
                       json={"category_id": category["id"]}, token=merchant.token)).ok()
    (await api.post(f"/v1/merchant/products/{product['id']}/on-sale", token=merchant.token)).ok()
    assert await review(resources, product["id"]) == "rejected"
    seen = (await api.get(f"/v1/merchant/products/{product['id']}", token=merchant.token)).ok()
    assert seen["status"] == "rejected" and seen["status_reason"].startswith("risky content")
    (await api.get(f"/v1/products/{product['id']}")).error(404)
    async with resources.db.session() as session:
        notes = list((await session.execute(select(Notification).where(
            Notification.user_id == merchant.user_id))).scalars())
    assert [n.kind for n in notes] == ["mall.product_rejected"]
    # Fixed and put on sale again: reviewed again, on sale.
    (await api.request("PATCH", f"/v1/merchant/products/{product['id']}",
                       json={"description": "高蛋白"}, token=merchant.token)).ok()
    (await api.post(f"/v1/merchant/products/{product['id']}/on-sale", token=merchant.token)).ok()
    assert await review(resources, product["id"]) == "on_sale"


@pytest.mark.gen_test(timeout=60)
async def test_held_for_review_an_admin_approves_or_rejects(api, resources, wechat):
    merchant, admin = await make_seller(resources), await make_seller(resources, "admin")
    category = await make_category(api, admin)
    first = await make_product(api, resources, merchant, category["id"], subtitle="FAKE_REVIEW")
    second = await make_product(api, resources, merchant, category["id"], subtitle="FAKE_REVIEW")
    for product in (first, second):
        (await api.post(f"/v1/merchant/products/{product['id']}/on-sale",
                        token=merchant.token)).ok()
        assert await review(resources, product["id"]) == "reviewing"
    held = (await api.get("/v1/merchant/products?status=reviewing", token=admin.token)).ok()
    assert {first["id"], second["id"]} <= {p["id"] for p in held["items"]}
    assert held["items"][0]["status_reason"].startswith("held for review")
    approved = (await api.post(f"/v1/admin/products/{first['id']}/approve",
                               token=admin.token)).ok()
    assert approved["status"] == "on_sale"
    (await api.get(f"/v1/products/{first['id']}")).ok()
    rejected = (await api.post(f"/v1/admin/products/{second['id']}/reject",
                               json={"reason": "图片与描述不符"}, token=admin.token)).ok()
    assert rejected["status"] == "rejected" and rejected["status_reason"] == "图片与描述不符"
    (await api.post(f"/v1/admin/products/{second['id']}/reject", json={"reason": "again"},
                    token=admin.token)).error(409)
    (await api.post(f"/v1/admin/products/{first['id']}/off-sale", json={"reason": "抽检不合格"},
                    token=admin.token)).ok()
    (await api.get(f"/v1/products/{first['id']}")).error(404)
    actions = [e["action"] for e in await audit_actions(api, admin, "product", first["id"])]
    assert actions[:2] == ["product.off_sale", "product.approve"]


@pytest.mark.gen_test(timeout=60)
async def test_editing_text_sends_a_product_back_to_review_but_prices_do_not(
        api, resources, wechat):
    merchant = await make_seller(resources)
    product = await product_on_sale(api, resources, merchant)
    path = f"/v1/merchant/products/{product['id']}"
    priced = (await api.put(path + "/skus", json={"skus": [one_sku(price=990)]},
                            token=merchant.token)).ok()
    assert priced["status"] == "on_sale"
    assert (await api.get(f"/v1/products/{product['id']}")).ok()["price_min"] == 990
    edited = (await api.request("PATCH", path, json={"name": "新名字"}, token=merchant.token)).ok()
    assert edited["status"] == "reviewing"
    (await api.get(f"/v1/products/{product['id']}")).error(404)  # off sale until passed
    assert await review(resources, product["id"]) == "on_sale"
    assert (await api.get(f"/v1/products/{product['id']}")).ok()["name"] == "新名字"
    # A product on sale keeps an image and a category.
    (await api.request("PATCH", path, json={"media_ids": []}, token=merchant.token)).error(
        422, field="media_ids")
    (await api.request("PATCH", path, json={"category_id": None}, token=merchant.token)).error(
        422, field="category_id")
    off = (await api.post(path + "/off-sale", token=merchant.token)).ok()
    assert off["status"] == "off_sale"
    (await api.get(f"/v1/products/{product['id']}")).error(404)


# -- stock ---------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_stock_adjustments_write_the_ledger_and_never_go_below_zero(api, resources):
    merchant = await make_seller(resources)
    product = await make_product(api, resources, merchant, None, skus=[one_sku(stock=3)])
    sku_id = product["skus"][0]["id"]
    path = f"/v1/merchant/skus/{sku_id}/stock-adjustments"
    added = (await api.post(path, json={"delta": 7, "reason": "到货"}, token=merchant.token)).ok(201)
    assert added["stock"] == 10
    body = (await api.post(path, json={"delta": -11, "reason": "盘点"},
                           token=merchant.token)).error(409, field="delta")
    assert body["data"] == {"sku_id": sku_id, "stock": 10}
    (await api.post(path, json={"delta": 0, "reason": "x"}, token=merchant.token)).error(
        422, field="delta")
    (await api.post(path, json={"delta": 1.5, "reason": "x"}, token=merchant.token)).error(
        422, field="delta")
    (await api.post(path, json={"delta": 1}, token=merchant.token)).error(422, field="reason")
    taken = (await api.post(path, json={"delta": -10, "reason": "损坏"},
                            token=merchant.token)).ok(201)
    assert taken["stock"] == 0
    ledger = (await api.get(f"/v1/merchant/skus/{sku_id}/stock-movements?limit=10",
                            token=merchant.token)).ok()
    assert [(m["reason"], m["delta"], m["stock_after"], m["note"]) for m in ledger["items"]] == [
        ("adjust", -10, 0, "损坏"), ("adjust", 7, 10, "到货"), ("initial", 3, 3, "initial stock")]
    assert ledger["total"] == 3


@pytest.mark.gen_test(timeout=90)
async def test_concurrent_stock_adjustments_take_exactly_what_is_there(api, resources):
    merchant = await make_seller(resources)
    product = await make_product(api, resources, merchant, None, skus=[one_sku(stock=10)])
    sku_id = product["skus"][0]["id"]
    replies = await asyncio.gather(*[
        api.post(f"/v1/merchant/skus/{sku_id}/stock-adjustments",
                 json={"delta": -1, "reason": f"出库 {n}"}, token=merchant.token)
        for n in range(25)])
    assert sorted(r.status for r in replies) == [201] * 10 + [409] * 15
    async with resources.db.session() as session:
        assert (await session.get(Sku, sku_id)).stock == 0
        moves = list((await session.execute(select(StockMovement.delta).where(
            StockMovement.sku_id == sku_id, StockMovement.reason == "adjust"))).scalars())
    assert moves == [-1] * 10


@pytest.mark.gen_test(timeout=60)
async def test_a_stock_adjustment_with_an_idempotency_key_happens_once(api, resources):
    merchant = await make_seller(resources)
    product = await make_product(api, resources, merchant, None, skus=[one_sku(stock=1)])
    sku_id = product["skus"][0]["id"]
    path = f"/v1/merchant/skus/{sku_id}/stock-adjustments"
    headers = {"Idempotency-Key": "restock-2026-12-05"}
    first = await api.post(path, json={"delta": 5, "reason": "补货"}, token=merchant.token,
                           headers=headers)
    again = await api.post(path, json={"delta": 5, "reason": "补货"}, token=merchant.token,
                           headers=headers)
    assert first.ok(201)["stock"] == 6 and again.ok(201)["stock"] == 6
    assert again.headers.get("Idempotent-Replayed") == "true"
    async with resources.db.session() as session:
        assert (await session.get(Sku, sku_id)).stock == 6


@pytest.mark.gen_test(timeout=60)
async def test_a_product_waits_for_its_image_verdict_and_a_risky_image_rejects_it(
        api, resources, wechat):
    from pawhome.moderation import reviews

    merchant, admin = await make_seller(resources), await make_seller(resources, "admin")
    category = await make_category(api, admin)
    clean = await ready_media(resources, merchant.user_id, moderation="pending")
    risky = await ready_media(resources, merchant.user_id, moderation="pending")
    waiting = await make_product(api, resources, merchant, category["id"], media_ids=[clean])
    doomed = await make_product(api, resources, merchant, category["id"], media_ids=[risky])
    for product in (waiting, doomed):
        (await api.post(f"/v1/merchant/products/{product['id']}/on-sale",
                        token=merchant.token)).ok()
        assert await review(resources, product["id"]) == "reviewing"  # the image is pending

    async def both_images_sent() -> bool:  # by this test's review, or by a test worker's
        return sum(r.path == "/wxa/media_check_async" for r in wechat.requests) == 2
    await wait_until(both_images_sent, timeout=10, what="two image checks sent to WeChat")
    await reviews.apply_media_verdict(resources, risky, "risky", "porn", "wechat_media")
    seen = (await api.get(f"/v1/merchant/products/{doomed['id']}", token=merchant.token)).ok()
    assert seen["status"] == "rejected" and "porn" in seen["status_reason"]
    await reviews.apply_media_verdict(resources, clean, "pass", "", "wechat_media")
    assert await review(resources, waiting["id"]) == "on_sale"
    (await api.get(f"/v1/products/{waiting['id']}")).ok()


@pytest.mark.gen_test(timeout=60)
async def test_the_merchant_list_filters_by_kind_and_shows_the_points_price(api, resources):
    """The console's virtual items page: GET /v1/merchant/products?kind=virtual_pet_toy."""
    from tests.mall_support import make_member, make_product, make_shop
    from tests.points_support import make_points_product

    merchant, _ = await make_shop(resources)
    toy, _ = await make_points_product(resources, merchant.user_id, price=0, points_price=250,
                                       stock=-1, kind="virtual_pet_toy", name="毛线球")
    await make_product(resources, merchant.user_id)  # a physical one
    admin = await make_member(resources, "admin")
    seen = (await api.get(f"/v1/merchant/products?kind=virtual_pet_toy&merchant_id="
                          f"{merchant.user_id}", token=admin.token)).ok()
    assert [(p["id"], p["kind"], p["points_price"], p["stock_total"]) for p in seen["items"]] \
        == [(toy, "virtual_pet_toy", 250, -1)]
    everything = (await api.get(f"/v1/merchant/products?merchant_id={merchant.user_id}",
                                token=admin.token)).ok()
    assert sorted(p["kind"] for p in everything["items"]) == ["physical", "virtual_pet_toy"]
    (await api.get("/v1/merchant/products?kind=gift", token=admin.token)).error(422)
