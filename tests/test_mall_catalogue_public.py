"""The public catalogue: product lists with their filters and sorts, product pages with SKUs,
media and the viewer's favorite flag, both cached and dropped at the instant a merchant, an
admin, moderation or an order changes what they show; product favorites and footprints."""
from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import update

from models.mall import Product, ProductView
from pawhome.mall import catalogue_cache, product_favorites, products, stock
from tests.catalogue_support import (
    make_category,
    make_product,
    make_seller,
    one_sku,
    product_on_sale,
    ready_media,
    review,
)
from tests.interactions_support import make_user


def ids(page: dict) -> list[int]:
    return [item["id"] for item in page["items"]]


async def listed(api, query: str = "", token: str | None = None) -> dict:
    return (await api.get(f"/v1/products?limit=100&{query}", token=token)).ok()


async def sneak(resources, product_id: int, **values) -> None:
    """Change a product row behind the catalogue's back (no cache drop): what a cached page
    would hide."""
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Product).where(Product.id == product_id).values(**values))


# -- lists -------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_lists_show_products_on_sale_filtered_and_sorted(api, resources, wechat):
    admin = await make_seller(resources, "admin")
    shop, other_shop = await make_seller(resources), await make_seller(resources)
    food = await make_category(api, admin)
    cat_food = await make_category(api, admin, parent_id=food["id"])
    toys = await make_category(api, admin)
    cheap = await product_on_sale(api, resources, shop, cat_food["id"], pet_types=["cat"],
                                  skus=[one_sku(price=990)])
    dear = await product_on_sale(api, resources, shop, food["id"], pet_types=["dog"],
                                 skus=[one_sku(price=9990)])
    toy = await product_on_sale(api, resources, other_shop, toys["id"], pet_types=["cat"],
                                skus=[one_sku(price=4990)])
    draft = await make_product(api, resources, shop, food["id"])
    await sneak(resources, toy["id"], sales_count=50)
    await catalogue_cache.forget(resources.cache, lists=True)

    assert ids(await listed(api, f"category_id={food['id']}")) == [dear["id"], cheap["id"]]
    assert ids(await listed(api, f"category_id={cat_food['id']}")) == [cheap["id"]]
    mine = {cheap["id"], dear["id"], toy["id"]}
    every = ids(await listed(api))
    assert mine <= set(every) and draft["id"] not in every
    cats = [i for i in ids(await listed(api, "pet_type=cat")) if i in mine]
    assert cats == [toy["id"], cheap["id"]]
    ranged = [i for i in ids(await listed(api, "price_min=1000&price_max=5000")) if i in mine]
    assert ranged == [toy["id"]]
    assert ids(await listed(api, f"merchant_id={shop.user_id}")) == [dear["id"], cheap["id"]]
    by = f"merchant_id={shop.user_id}&sort="
    assert ids(await listed(api, by + "price_asc")) == [cheap["id"], dear["id"]]
    assert ids(await listed(api, by + "price_desc")) == [dear["id"], cheap["id"]]
    assert ids(await listed(api, by + "newest")) == [dear["id"], cheap["id"]]
    assert next(i for i in ids(await listed(api, "sort=sales")) if i in mine) == toy["id"]
    page = (await api.get(f"/v1/products?merchant_id={shop.user_id}&limit=1&page=2")).ok()
    assert page["total"] == 2 and page["totalPages"] == 2 and ids(page) == [cheap["id"]]
    card = page["items"][0]
    assert card["price_min"] == 990 and card["cover_url"].endswith("w480.webp")
    assert card["merchant_id"] == shop.user_id and card["rating"] == {"count": 0,
                                                                      "average": None}
    (await api.get("/v1/products?sort=cheapest")).error(422, field="sort")
    (await api.get("/v1/products?price_min=-1")).error(422, field="price_min")
    (await api.get("/v1/products?price_min=9.5")).error(422, field="price_min")
    (await api.get("/v1/products?status=draft")).error(422, field="status")


@pytest.mark.gen_test(timeout=90)
async def test_a_cached_list_page_changes_at_once_with_every_kind_of_change(
        api, resources, wechat):
    admin, shop = await make_seller(resources, "admin"), await make_seller(resources)
    category = await make_category(api, admin)
    query = f"category_id={category['id']}"
    product = await product_on_sale(api, resources, shop, category["id"])
    pid = product["id"]
    assert ids(await listed(api, query)) == [pid]
    await sneak(resources, pid, name="偷偷改的名字")  # no drop: the cached page stays
    assert (await listed(api, query))["items"][0]["name"] == "冻干鸡肉粒"

    # A merchant's price change.
    (await api.put(f"/v1/merchant/products/{pid}/skus", json={"skus": [one_sku(price=777)]},
                   token=shop.token)).ok()
    assert (await listed(api, query))["items"][0]["price_min"] == 777
    # Off sale, and on sale again through moderation.
    (await api.post(f"/v1/merchant/products/{pid}/off-sale", token=shop.token)).ok()
    assert ids(await listed(api, query)) == []
    (await api.post(f"/v1/merchant/products/{pid}/on-sale", token=shop.token)).ok()
    assert ids(await listed(api, query)) == []
    assert await review(resources, pid) == "on_sale"
    assert ids(await listed(api, query)) == [pid]
    # An edit of its text (back to review: off the list until passed).
    (await api.request("PATCH", f"/v1/merchant/products/{pid}", json={"subtitle": "新版"},
                       token=shop.token)).ok()
    assert ids(await listed(api, query)) == []
    assert await review(resources, pid) == "on_sale"
    assert (await listed(api, query))["items"][0]["subtitle"] == "新版"
    # An admin takes it down; an admin moves the category.
    (await api.post(f"/v1/admin/products/{pid}/off-sale", json={"reason": "抽检"},
                    token=admin.token)).ok()
    assert ids(await listed(api, query)) == []
    (await api.post(f"/v1/merchant/products/{pid}/on-sale", token=shop.token)).ok()
    await review(resources, pid)
    parent = await make_category(api, admin)
    assert ids(await listed(api, f"category_id={parent['id']}")) == []
    (await api.request("PATCH", f"/v1/admin/categories/{category['id']}",
                       json={"parent_id": parent["id"]}, token=admin.token)).ok()
    assert ids(await listed(api, f"category_id={parent['id']}")) == [pid]
    # Deleted.
    (await api.delete(f"/v1/merchant/products/{pid}", token=shop.token)).ok()
    assert ids(await listed(api, query)) == []


# -- the product page -------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_the_product_page_shows_skus_media_merchant_and_the_viewers_flag(
        api, resources, wechat):
    shop = await make_seller(resources, nickname="喵星人小店")
    sku_image = await ready_media(resources, shop.user_id)
    video = await ready_media(resources, shop.user_id, kind="video")
    product = await product_on_sale(
        api, resources, shop, video_media_id=video,
        spec_attrs=[{"name": "规格", "values": ["100g", "500g"]}],
        skus=[{"spec_values": ["100g"], "price": 1990, "original_price": 2990, "stock": 7,
               "image_media_id": sku_image, "code": "SECRET-1"},
              {"spec_values": ["500g"], "price": 6990, "stock": 0}])
    fan, stranger = await make_user(resources), await make_user(resources)
    (await api.post(f"/v1/favorites/products/{product['id']}", token=fan.token)).ok()
    page = (await api.get(f"/v1/products/{product['id']}", token=fan.token)).ok()
    assert page["favorited"] is True
    assert page["merchant"] == {"id": shop.user_id, "name": "喵星人小店", "logo_url": ""}
    assert page["images"][0]["url"].endswith("w1080.webp")
    assert page["images"][0]["thumb_url"].endswith("w240.webp")
    assert page["video"]["url"].endswith("video.mp4") and page["video"]["poster_url"]
    assert [(s["spec_text"], s["price"], s["original_price"], s["stock"]) for s in
            page["skus"]] == [("规格:100g", 1990, 2990, 7), ("规格:500g", 6990, 0, 0)]
    assert page["skus"][0]["image_url"].endswith("w1080.webp")
    assert "code" not in page["skus"][0]  # the merchant's own codes stay private
    assert (page["price_min"], page["price_max"]) == (1990, 6990)
    assert page["rating"] == {"count": 0, "average": None}
    # The flag is the viewer's own, never the cached page's.
    assert (await api.get(f"/v1/products/{product['id']}", token=stranger.token)).ok()[
        "favorited"] is False
    assert (await api.get(f"/v1/products/{product['id']}")).ok()["favorited"] is False
    assert (await api.get(f"/v1/products/{product['id']}", token=fan.token)).ok()[
        "favorited"] is True
    (await api.get(f"/v1/products/{product['id']}", token="not-a-token")).error(401)
    (await api.get("/v1/products/999999999")).error(404)


@pytest.mark.gen_test(timeout=60)
async def test_a_cached_product_page_shows_stock_and_prices_at_once(api, resources, wechat):
    shop = await make_seller(resources)
    product = await product_on_sale(api, resources, shop, skus=[one_sku(price=1990, stock=5)])
    pid, sku_id = product["id"], product["skus"][0]["id"]

    async def page() -> dict:
        return (await api.get(f"/v1/products/{pid}")).ok()

    assert (await page())["skus"][0]["stock"] == 5
    await sneak(resources, pid, name="偷偷改的名字")
    assert (await page())["name"] == "冻干鸡肉粒"  # cached
    (await api.post(f"/v1/merchant/skus/{sku_id}/stock-adjustments",
                    json={"delta": 3, "reason": "到货"}, token=shop.token)).ok(201)
    assert (await page())["skus"][0]["stock"] == 8
    (await api.put(f"/v1/merchant/products/{pid}/skus",
                   json={"skus": [one_sku(price=1590, original_price=1990)]},
                   token=shop.token)).ok()
    assert (await page())["skus"][0]["price"] == 1590
    # An order takes stock through the stock module, then calls forget_products.
    async with resources.db.session() as session, session.begin():
        assert await stock.take(session, [stock.StockMove(sku_id, 2)], reason="order_placed",
                                ref_type="order", ref_id=1) == []
    await products.forget_products(resources, [pid])
    assert (await page())["skus"][0]["stock"] == 6
    (await api.post(f"/v1/merchant/products/{pid}/off-sale", token=shop.token)).ok()
    (await api.get(f"/v1/products/{pid}")).error(404)
    (await api.post(f"/v1/merchant/products/{pid}/on-sale", token=shop.token)).ok()
    await review(resources, pid)
    assert (await page())["name"] == "偷偷改的名字"


@pytest.mark.gen_test(timeout=30)
async def test_a_page_filled_from_rows_read_before_a_change_is_never_served(resources):
    cache = resources.cache
    # An id no product of the worker's database has (42 was cached by another test's page).
    pid = 10**12 + random.randrange(10**6)
    gen_key, key = catalogue_cache.detail_generation_key(cache, pid), \
        catalogue_cache.detail_key(cache, pid)
    generation, payload = await catalogue_cache.read(cache, gen_key, key)
    assert payload is None
    # A slow reader read the rows; meanwhile a change committed and dropped the page.
    await catalogue_cache.forget(cache, product_ids=[pid])
    await catalogue_cache.fill(cache, key, generation, b'{"stale":true}', 600)
    assert (await catalogue_cache.read(cache, gen_key, key))[1] is None
    generation, _ = await catalogue_cache.read(cache, gen_key, key)
    await catalogue_cache.fill(cache, key, generation, b'{"fresh":true}', 600)
    assert (await catalogue_cache.read(cache, gen_key, key))[1] == b'{"fresh":true}'


# -- favorites ----------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_favoriting_a_product_is_idempotent_and_counted_exactly(api, resources, wechat):
    shop, fan = await make_seller(resources), await make_user(resources)
    product = await product_on_sale(api, resources, shop)
    results = await asyncio.gather(*[
        product_favorites.set_favorite(resources, fan.user_id, product["id"], True)
        for _ in range(20)])
    assert sum(r["changed"] for r in results) == 1
    assert {r["favorite_count"] for r in results} == {1}
    dropped = (await api.delete(f"/v1/favorites/products/{product['id']}",
                                token=fan.token)).ok()
    assert dropped == {"favorited": False, "favorite_count": 0, "changed": True}
    assert (await api.delete(f"/v1/favorites/products/{product['id']}",
                             token=fan.token)).ok()["changed"] is False
    draft = await make_product(api, resources, shop, None)
    (await api.post(f"/v1/favorites/products/{draft['id']}", token=fan.token)).error(404)
    (await api.post("/v1/favorites/products/999999999", token=fan.token)).error(404)
    (await api.post(f"/v1/favorites/products/{product['id']}")).error(401)


@pytest.mark.gen_test(timeout=90)
async def test_my_favorite_products_newest_first_flagging_those_off_sale(api, resources, wechat):
    shop, fan = await make_seller(resources), await make_user(resources)
    made = [await product_on_sale(api, resources, shop, name=f"商品{n}") for n in range(3)]
    for product in made:
        (await api.post(f"/v1/favorites/products/{product['id']}", token=fan.token)).ok()
    first = (await api.get("/v1/favorites/products?limit=2", token=fan.token)).ok()
    assert ids(first) == [made[2]["id"], made[1]["id"]]
    rest = (await api.get(f"/v1/favorites/products?limit=2&cursor={first['nextCursor']}",
                          token=fan.token)).ok()
    assert ids(rest) == [made[0]["id"]] and rest["nextCursor"] is None
    (await api.post(f"/v1/merchant/products/{made[1]['id']}/off-sale", token=shop.token)).ok()
    (await api.delete(f"/v1/merchant/products/{made[2]['id']}", token=shop.token)).ok()
    now = (await api.get("/v1/favorites/products", token=fan.token)).ok()["items"]
    assert [(i["id"], i["available"]) for i in now] == [(made[1]["id"], False),
                                                        (made[0]["id"], True)]
    assert now[0]["favorited_at"] and now[0]["name"] == "商品1"
    (await api.get("/v1/favorites/products?cursor=garbage", token=fan.token)).error(
        422, field="cursor")
    assert (await api.get("/v1/favorites/products", token=shop.token)).ok()["items"] == []


# -- footprints ---------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_opening_products_leaves_footprints_newest_first_kept_to_the_limit(
        api, resources, wechat):
    shop, buyer = await make_seller(resources), await make_user(resources)
    made = [await product_on_sale(api, resources, shop, name=f"足迹{n}") for n in range(4)]
    resources.settings.product_footprints_kept = 3
    try:
        for product in (made[0], made[1], made[2], made[0], made[3]):
            (await api.get(f"/v1/products/{product['id']}", token=buyer.token)).ok()
            await asyncio.sleep(0.002)  # distinct milliseconds
        await api.get(f"/v1/products/{made[1]['id']}")  # a visitor leaves none
        first = (await api.get("/v1/users/me/footprints?limit=2", token=buyer.token)).ok()
        assert ids(first) == [made[3]["id"], made[0]["id"]]
        rest = (await api.get(f"/v1/users/me/footprints?limit=2&cursor={first['nextCursor']}",
                              token=buyer.token)).ok()
        assert ids(rest) == [made[2]["id"]]  # made[1] fell out: 3 kept
        assert rest["items"][0]["viewed_at"] and rest["items"][0]["available"] is True
    finally:
        resources.settings.product_footprints_kept = 100
    cleared = (await api.delete("/v1/users/me/footprints", token=buyer.token)).ok()
    assert cleared["items"] == []
    assert (await api.get("/v1/users/me/footprints", token=buyer.token)).ok()["items"] == []


@pytest.mark.gen_test(timeout=60)
async def test_the_beat_job_writes_buffered_footprints_to_the_table(api, resources, wechat):
    shop, buyer = await make_seller(resources), await make_user(resources)
    product = await product_on_sale(api, resources, shop)
    (await api.get(f"/v1/products/{product['id']}", token=buyer.token)).ok()
    assert await product_favorites.flush_all_footprints(resources) >= 1
    async with resources.db.session() as session:
        row = await session.get(ProductView, (buyer.user_id, product["id"]))
    assert row is not None
    assert await product_favorites.flush_footprints(resources, buyer.user_id) == 0
