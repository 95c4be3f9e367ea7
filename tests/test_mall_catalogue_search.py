"""Product search: Chinese words over name, subtitle, brand, tags, category and description
(segmented as posts are), the list's filters and sorts plus relevance, highlights, products
leaving the index when they leave sale, and — with a real worker — searchable within 2 s of
going on sale."""
from __future__ import annotations

import statistics
import time
from urllib.parse import urlencode

import pytest

from pawhome.search import index as search
from tests.catalogue_support import (
    make_category,
    make_product,
    make_seller,
    one_sku,
    product_on_sale,
)
from tests.fixtures_worker import wait_until
from tests.interactions_support import make_user
from tests.test_search import document_of, marker

SEARCHABLE_WITHIN_SECONDS = 2.0


async def find(api, q: str, token: str | None = None, **params) -> dict:
    reply = await api.get("/v1/products/search?" + urlencode({"q": q, **params}), token=token)
    return reply.ok()


def ids(page: dict) -> list[int]:
    return [item["id"] for item in page["items"]]


async def index_now(resources, product_id: int) -> str:
    """What the search.index task does (run here, not by a worker)."""
    return await search.index_document(resources, "product", product_id)


@pytest.mark.gen_test(timeout=90)
async def test_words_find_products_on_sale_with_highlights_filters_and_sorts(
        api, resources, wechat):
    tag = marker()
    admin, shop = await make_seller(resources, "admin"), await make_seller(resources)
    treats = await make_category(api, admin, "冻干专区" + tag)
    best = await product_on_sale(api, resources, shop, treats["id"],
                                 name=f"{tag} 冻干鸡肉粒", subtitle="猫咪最爱的冻干",
                                 pet_types=["cat"], skus=[one_sku(price=3990)])
    other = await product_on_sale(api, resources, shop, None, name=f"{tag} 狗狗磨牙棒",
                                  description="牛肉冻干口味", pet_types=["dog"],
                                  skus=[one_sku(price=1990)])
    hidden = await make_product(api, resources, shop, treats["id"], name=f"{tag} 冻干草稿")
    for product_id in (best["id"], other["id"], hidden["id"]):
        await index_now(resources, product_id)
    assert await document_of(resources, "product", hidden["id"]) is None  # a draft

    found = await find(api, f"{tag} 冻干")
    assert ids(found) == [best["id"], other["id"]]  # the name and subtitle match best
    assert found["items"][0]["name_html"] == f"<em>{tag}</em> <em>冻干</em>鸡肉粒"
    assert found["items"][0]["subtitle_html"] == "猫咪最爱的<em>冻干</em>"
    assert found["items"][0]["price_min"] == 3990 and found["total"] == 2
    assert ids(await find(api, f"{tag} 冻干", pet_type="dog")) == [other["id"]]
    assert ids(await find(api, f"{tag} 冻干", category_id=treats["id"])) == [best["id"]]
    assert ids(await find(api, f"{tag} 冻干", sort="price_asc")) == [other["id"], best["id"]]
    assert ids(await find(api, f"{tag} 冻干", price_max=2000)) == [other["id"]]
    assert ids(await find(api, f"{tag} 专区")) == [best["id"]]  # its category's name
    assert ids(await find(api, f"{tag} cat")) == [best["id"]]  # its pet type's words
    (await api.get("/v1/products/search?q=")).error(422, field="q")
    (await api.get("/v1/products/search?q=%20%21")).error(422, field="q")


@pytest.mark.gen_test(timeout=90)
async def test_a_product_leaves_the_index_off_sale_and_results_follow_the_rows(
        api, resources, wechat):
    tag = marker()
    shop = await make_seller(resources)
    product = await product_on_sale(api, resources, shop, name=f"{tag} 猫抓板")
    await index_now(resources, product["id"])
    buyer = await make_user(resources)
    assert ids(await find(api, tag, token=buyer.token)) == [product["id"]]
    recent = (await api.get("/v1/search/recent", token=buyer.token)).ok()["items"]
    assert recent[0] == tag
    (await api.post(f"/v1/merchant/products/{product['id']}/off-sale", token=shop.token)).ok()
    # Before the index task runs, the row already keeps it out of the results.
    assert ids(await find(api, tag)) == []
    assert await index_now(resources, product["id"]) == "removed"
    assert await document_of(resources, "product", product["id"]) is None


@pytest.mark.gen_test(timeout=120)
async def test_with_a_worker_a_product_is_searchable_within_two_seconds_of_going_on_sale(
        api, resources, wechat, celery_worker_process):
    shop = await make_seller(resources)
    latencies = []
    for attempt in range(5):
        tag = marker()
        product = await make_product(api, resources, shop, None, name=f"{tag} 第{attempt}款猫砂")
        admin = await make_seller(resources, "admin")
        category = await make_category(api, admin)
        (await api.request("PATCH", f"/v1/merchant/products/{product['id']}",
                           json={"category_id": category["id"]}, token=shop.token)).ok()
        (await api.post(f"/v1/merchant/products/{product['id']}/on-sale",
                        token=shop.token)).ok()

        async def on_sale(product_id: int = product["id"]) -> bool:
            # The worker runs the review too; take the verdict from the row.
            reply = await api.get(f"/v1/merchant/products/{product_id}", token=shop.token)
            return reply.ok()["status"] == "on_sale"

        await wait_until(on_sale, timeout=20, interval=0.01, what="the product on sale")
        on_sale_at = time.monotonic()

        async def found(tag: str = tag, product_id: int = product["id"]) -> bool:
            return ids(await find(api, f"{tag} 猫砂")) == [product_id]

        await wait_until(found, timeout=10, interval=0.02, what="the product in search results")
        latencies.append(time.monotonic() - on_sale_at)
    print(f"\non sale -> searchable via worker: median "
          f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
          f"over {len(latencies)} products")
    assert max(latencies) < SEARCHABLE_WITHIN_SECONDS, latencies

