"""Product reviews: a buyer reviews each line of a completed order once, moderation publishes
it, the product's rating and counts per star stay exact (also when many are published at
once and when an admin takes one down), filters and pagination, the merchant's one reply,
and the refusals: someone else's order, an order not completed, twice, bad photos."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from models.mall import Product
from models.realtime import Notification
from models.reviews import ProductRatingStats, ProductReview
from pawhome.moderation import buyer_reviews
from tests.catalogue_support import ready_media
from tests.mall_support import make_address, make_member, make_product, make_shop
from tests.test_mall_e2e import pay


async def completed_order(api, resources, wechatpay, *, lines: int = 2, complete: bool = True):
    """A buyer's order of `lines` SKUs of one product, paid, shipped and received."""
    merchant, _ = await make_shop(resources, express_fee=0, free_over=None)
    product_id, skus = await make_product(
        resources, merchant.user_id, [{"price": 1000 + i, "stock": 50} for i in range(lines)])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    order = (await api.post("/v1/orders", token=buyer.token, json={
        "items": [{"sku_id": s, "quantity": 1} for s in skus],
        "address_id": address_id})).ok(201)["orders"][0]
    await pay(api, wechatpay, buyer, order)
    if complete:
        (await api.post(f"/v1/merchant/orders/{order['id']}/ship", token=merchant.token,
                        json={"carrier": "SF", "tracking_no": "SF1234567"})).ok()
        (await api.post(f"/v1/orders/{order['id']}/confirm-receipt", token=buyer.token)).ok()
    detail = (await api.get(f"/v1/orders/{order['id']}", token=buyer.token)).ok()
    return merchant, buyer, product_id, order["id"], [i["id"] for i in detail["items"]]


async def review_count(resources, **where) -> int:
    async with resources.db.session() as session:
        query = select(func.count()).select_from(ProductReview).where(
            *[getattr(ProductReview, k) == v for k, v in where.items()])
        return int((await session.execute(query)).scalar_one())


async def notifications_of(resources, user_id: int, kind: str) -> list[Notification]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Notification).where(
            Notification.user_id == user_id, Notification.kind == kind))).scalars())


async def assert_rating_matches_visible_reviews(resources, product_id: int) -> None:
    """The invariant: the product's count and sum, and the counts per star, are exactly those
    of its visible reviews."""
    async with resources.db.session() as session:
        product = await session.get(Product, product_id)
        stats = await session.get(ProductRatingStats, product_id)
        rows = list((await session.execute(select(ProductReview).where(
            ProductReview.product_id == product_id,
            ProductReview.status == "visible"))).scalars())
    assert product.rating_count == len(rows)
    assert product.rating_sum == sum(r.rating for r in rows)
    for star in range(1, 6):
        expected = sum(1 for r in rows if r.rating == star)
        assert (getattr(stats, f"star_{star}") if stats else 0) == expected, star
    assert (stats.with_images if stats else 0) == sum(1 for r in rows if r.has_images)


@pytest.mark.gen_test(timeout=60)
async def test_a_review_shows_on_the_product_once_moderation_passes_it(api, resources, wechat,
                                                                         wechatpay):
    merchant, buyer, product_id, order_id, items = await completed_order(api, resources,
                                                                         wechatpay)
    page = (await api.get(f"/v1/products/{product_id}")).ok()  # fills the cached page
    assert page["rating"] == {"count": 0, "average": None}
    photos = [await ready_media(resources, buyer.user_id) for _ in range(2)]
    review = (await api.post(f"/v1/orders/{order_id}/reviews", token=buyer.token, json={
        "item_id": items[0], "rating": 4, "text": "猫很爱吃，包装完好",
        "media_ids": photos})).ok(201)
    assert review["status"] == "pending" and review["rating"] == 4
    assert review["product"]["id"] == product_id and len(review["images"]) == 2
    listed = (await api.get(f"/v1/products/{product_id}/reviews")).ok()
    assert listed["items"] == [] and listed["summary"]["count"] == 0  # not published yet

    assert await buyer_reviews.review_product_review(resources, review["id"]) == "visible"

    listed = (await api.get(f"/v1/products/{product_id}/reviews")).ok()
    assert [r["id"] for r in listed["items"]] == [review["id"]]
    shown = listed["items"][0]
    assert shown["text"] == "猫很爱吃，包装完好" and len(shown["images"]) == 2
    assert shown["author"]["id"] == buyer.user_id and "status" not in shown
    assert listed["summary"] == {"count": 1, "average": 4.0, "with_images": 1,
                                 "stars": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}}
    page = (await api.get(f"/v1/products/{product_id}")).ok()  # the cached page was dropped
    assert page["rating"] == {"count": 1, "average": 4.0}
    # Signed in: the author and a stranger see it; someone the author blocked does not.
    stranger, blocked = await api.login(), await api.login()
    for who in (buyer, stranger):
        seen = (await api.get(f"/v1/products/{product_id}/reviews", token=who.token)).ok()
        assert [r["id"] for r in seen["items"]] == [review["id"]]
    (await api.post("/v1/users/me/blocks", json={"user_id": blocked.user_id},
                    token=buyer.token)).ok()
    seen = (await api.get(f"/v1/products/{product_id}/reviews", token=blocked.token)).ok()
    assert seen["items"] == []
    told = await notifications_of(resources, merchant.user_id, "review_received")
    assert [n.target_id for n in told] == [review["id"]]

    mine = (await api.get("/v1/reviews", token=buyer.token)).ok()
    assert [(r["id"], r["status"]) for r in mine["items"]] == [(review["id"], "visible")]
    to_write = (await api.get("/v1/reviews/to-write", token=buyer.token)).ok()
    assert [line["item_id"] for line in to_write["items"]] == [items[1]]
    await assert_rating_matches_visible_reviews(resources, product_id)


@pytest.mark.gen_test(timeout=60)
async def test_reviewing_a_line_twice_is_refused_and_ten_submits_at_once_make_one_review(
        api, resources, wechat, wechatpay):
    _, buyer, _, order_id, items = await completed_order(api, resources, wechatpay)
    body = {"item_id": items[0], "rating": 5, "text": "好"}
    replies = await asyncio.gather(*[
        api.post(f"/v1/orders/{order_id}/reviews", token=buyer.token, json=body)
        for _ in range(10)])
    assert sorted(r.status for r in replies) == [201] + [409] * 9
    for reply in replies:
        if reply.status == 409:
            reply.error(409, code=40961, field="item_id")
    assert await review_count(resources, order_item_id=items[0]) == 1
    again = await api.post(f"/v1/orders/{order_id}/reviews", token=buyer.token, json=body)
    again.error(409, code=40961)
    # The other line is still the buyer's to review.
    (await api.post(f"/v1/orders/{order_id}/reviews", token=buyer.token,
                    json={**body, "item_id": items[1]})).ok(201)


@pytest.mark.gen_test(timeout=60)
async def test_someone_elses_order_an_unfinished_order_and_bad_input_are_refused_unchanged(
        api, resources, wechat, wechatpay):
    _, buyer, _, order_id, items = await completed_order(api, resources, wechatpay)
    _, other, _, paid_id, paid_items = await completed_order(api, resources, wechatpay,
                                                             complete=False)
    stranger = await make_member(resources)
    path = f"/v1/orders/{order_id}/reviews"
    ok_body = {"item_id": items[0], "rating": 5, "text": "不错"}
    (await api.post(path, token=stranger.token, json=ok_body)).error(404)
    (await api.post(f"/v1/orders/{paid_id}/reviews", token=other.token, json={
        **ok_body, "item_id": paid_items[0]})).error(409, code=40960)
    (await api.post(path, token=buyer.token, json={**ok_body, "item_id": paid_items[0]})) \
        .error(422, field="item_id")
    theirs = await ready_media(resources, stranger.user_id)
    (await api.post(path, token=buyer.token, json={**ok_body, "media_ids": [theirs]})) \
        .error(422, field="media_ids.0")
    mine = [await ready_media(resources, buyer.user_id) for _ in range(10)]
    (await api.post(path, token=buyer.token, json={**ok_body, "media_ids": mine})).error(422)
    for rating in (0, 6):
        (await api.post(path, token=buyer.token, json={**ok_body, "rating": rating})) \
            .error(422, field="rating")
    (await api.post(path, token=buyer.token, json={**ok_body, "text": "一起来网赌"})) \
        .error(422, code=42202, field="text")
    (await api.post(path, token=buyer.token, json={**ok_body, "score": 5})).error(422)
    (await api.post(path, json=ok_body)).error(401)
    assert await review_count(resources, order_id=order_id) == 0
    assert await review_count(resources, order_id=paid_id) == 0


@pytest.mark.gen_test(timeout=60)
async def test_filters_counts_per_star_and_an_admins_take_down_keep_the_summary_exact(
        api, resources, wechat, wechatpay):
    _, buyer, product_id, order_id, items = await completed_order(api, resources, wechatpay,
                                                                  lines=4)
    photo = await ready_media(resources, buyer.user_id)
    wanted = [(5, [photo]), (5, []), (2, []), (4, [])]
    ids = []
    for item_id, (rating, media) in zip(items, wanted, strict=True):
        ids.append((await api.post(f"/v1/orders/{order_id}/reviews", token=buyer.token, json={
            "item_id": item_id, "rating": rating, "text": f"{rating} 星",
            "media_ids": media})).ok(201)["id"])
    for review_id in ids:
        assert await buyer_reviews.review_product_review(resources, review_id) == "visible"
    base = f"/v1/products/{product_id}/reviews"
    listed = (await api.get(base + "?limit=2")).ok()
    assert listed["total"] == 4 and listed["totalPages"] == 2
    assert [r["id"] for r in listed["items"]] == [ids[3], ids[2]]  # newest first
    assert [r["id"] for r in (await api.get(base + "?limit=2&page=2")).ok()["items"]] == \
        [ids[1], ids[0]]
    assert {r["id"] for r in (await api.get(base + "?rating=5")).ok()["items"]} == \
        {ids[0], ids[1]}
    assert [r["id"] for r in (await api.get(base + "?with_images=true")).ok()["items"]] == \
        [ids[0]]
    summary = listed["summary"]
    assert summary["count"] == 4 and summary["average"] == 4.0
    assert summary["stars"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 2}
    (await api.get(base + "?rating=9")).error(422, field="rating")
    (await api.get("/v1/products/999999999/reviews")).error(404)

    admin = await make_member(resources, "admin")
    taken = (await api.post(f"/v1/admin/reviews/{ids[0]}/reject", token=admin.token,
                            json={"reason": "广告"})).ok()
    assert taken["status"] == "removed"
    summary = (await api.get(base)).ok()["summary"]
    assert summary["count"] == 3 and summary["stars"]["5"] == 1 and summary["with_images"] == 0
    assert (await api.get(f"/v1/products/{product_id}")).ok()["rating"] == \
        {"count": 3, "average": 3.7}
    assert await notifications_of(resources, buyer.user_id, "mall.review_removed")
    (await api.post(f"/v1/admin/reviews/{ids[0]}/reject", token=admin.token,
                    json={"reason": "again"})).error(409, code=40960)
    (await api.post(f"/v1/admin/reviews/{ids[0]}/approve", token=buyer.token)).error(403)
    (await api.post(f"/v1/admin/reviews/{ids[0]}/approve", token=admin.token)).ok()
    assert (await api.get(base)).ok()["summary"]["count"] == 4
    await assert_rating_matches_visible_reviews(resources, product_id)


@pytest.mark.gen_test(timeout=60)
async def test_risky_text_is_removed_and_a_soft_word_is_held_neither_counting(
        api, resources, wechat, wechatpay):
    _, buyer, product_id, order_id, items = await completed_order(api, resources, wechatpay)
    risky = (await api.post(f"/v1/orders/{order_id}/reviews", token=buyer.token, json={
        "item_id": items[0], "rating": 1, "text": "FAKE_RISKY 内容"})).ok(201)
    held = (await api.post(f"/v1/orders/{order_id}/reviews", token=buyer.token, json={
        "item_id": items[1], "rating": 1, "text": "有问题加微信"})).ok(201)
    assert await buyer_reviews.review_product_review(resources, risky["id"]) == "removed"
    assert await buyer_reviews.review_product_review(resources, held["id"]) == "hidden"
    assert await buyer_reviews.review_product_review(resources, held["id"]) == "hidden"
    listed = (await api.get(f"/v1/products/{product_id}/reviews")).ok()
    assert listed["items"] == [] and listed["summary"]["count"] == 0
    mine = {r["id"]: r for r in (await api.get("/v1/reviews", token=buyer.token)).ok()["items"]}
    assert mine[risky["id"]]["status"] == "removed" and mine[risky["id"]]["status_reason"]
    assert mine[held["id"]]["status"] == "hidden"
    await assert_rating_matches_visible_reviews(resources, product_id)


@pytest.mark.gen_test(timeout=60)
async def test_eight_reviews_published_at_once_add_up_exactly(api, resources, wechat,
                                                              wechatpay):
    _, buyer, product_id, order_id, items = await completed_order(api, resources, wechatpay,
                                                                  lines=8)
    ids = [(await api.post(f"/v1/orders/{order_id}/reviews", token=buyer.token, json={
        "item_id": item_id, "rating": 1 + n % 5, "text": "可以"})).ok(201)["id"]
        for n, item_id in enumerate(items)]
    outcomes = await asyncio.gather(*[buyer_reviews.review_product_review(resources, i)
                                      for i in ids])
    assert outcomes == ["visible"] * 8
    summary = (await api.get(f"/v1/products/{product_id}/reviews")).ok()["summary"]
    assert summary["count"] == 8 and summary["stars"] == {"1": 2, "2": 2, "3": 2, "4": 1,
                                                          "5": 1}
    await assert_rating_matches_visible_reviews(resources, product_id)


@pytest.mark.gen_test(timeout=60)
async def test_the_merchant_replies_once_and_an_anonymous_reviewer_stays_hidden(
        api, resources, wechat, wechatpay):
    merchant, buyer, product_id, order_id, items = await completed_order(api, resources,
                                                                         wechatpay)
    review = (await api.post(f"/v1/orders/{order_id}/reviews", token=buyer.token, json={
        "item_id": items[0], "rating": 3, "text": "一般", "anonymous": True})).ok(201)
    reply_path = f"/v1/merchant/reviews/{review['id']}/reply"
    (await api.post(reply_path, token=merchant.token, json={"text": "谢谢"})) \
        .error(409, code=40960)  # not published yet
    assert await buyer_reviews.review_product_review(resources, review["id"]) == "visible"
    other_shop, _ = await make_shop(resources)
    (await api.post(reply_path, token=other_shop.token, json={"text": "谢谢"})).error(404)
    (await api.post(reply_path, token=buyer.token, json={"text": "谢谢"})).error(403)
    replied = (await api.post(reply_path, token=merchant.token,
                              json={"text": "感谢反馈，我们会改进"})).ok()
    assert replied["reply"]["text"] == "感谢反馈，我们会改进"
    assert replied["author"]["id"] is None  # the merchant does not learn who it was
    (await api.post(reply_path, token=merchant.token, json={"text": "再回复"})) \
        .error(409, code=40962)
    told = await notifications_of(resources, buyer.user_id, "review_replied")
    assert [n.target_id for n in told] == [review["id"]]
    shown = (await api.get(f"/v1/products/{product_id}/reviews")).ok()["items"][0]
    assert shown["author"] == {"id": None, "nickname": "匿名用户", "avatar_url": ""}
    assert shown["reply"]["text"] == "感谢反馈，我们会改进"
    unreplied = (await api.get("/v1/merchant/reviews?replied=false",
                               token=merchant.token)).ok()
    assert unreplied["total"] == 0
    assert (await api.get("/v1/merchant/reviews", token=merchant.token)).ok()["total"] == 1
    assert (await api.get("/v1/merchant/reviews", token=other_shop.token)).ok()["total"] == 0
