"""The console's dashboard endpoints (figures by day, the fleet's live state; a merchant sees
only its shop) and the staff live topics (admins only)."""
from __future__ import annotations

import datetime as dt

import pytest

from models.base import utcnow
from models.community import Post
from pawhome.community import posts
from pawhome.mall import orders
from pawhome.platform import activity, topics
from pawhome.platform.errors import Forbidden, NotFound
from tests.mall_support import make_address, make_member, make_product, make_shop


async def paid_order(api, resources, price: int = 1000, quantity: int = 2) -> tuple[int, dict]:
    """(merchant user id, order) of a paid express order in a new shop."""
    merchant, _ = await make_shop(resources, express_fee=0, free_over=None)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": price, "stock": 10}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    placed = (await api.post("/v1/orders", token=buyer.token, json={
        "items": [{"sku_id": sku, "quantity": quantity}], "address_id": address_id})).ok(201)
    order = placed["orders"][0]
    async with resources.db.session() as session, session.begin():
        assert await orders.mark_paid(session, order["id"], order["payable_amount"])
    return merchant.user_id, order


@pytest.mark.gen_test(timeout=60)
async def test_admin_dashboard_counts_today_and_the_fleet(api, resources):
    admin = await api.login(role="admin")
    before = (await api.get("/v1/admin/dashboard?days=7", token=admin.token)).ok()
    assert len(before["days"]) == 7 and before["days"][-1]["date"] == activity.shanghai_day().isoformat()
    author = await api.login()
    post = (await api.post("/v1/posts", json={"text": "今天遛狗"}, token=author.token)).ok(201)
    # Held for review whatever a shared test worker's verdict was (moderation only acts on
    # a pending post), so the backlog has at least this one.
    async with resources.db.session() as session, session.begin():
        await posts.set_status(session, post["id"], "hidden", "待人工复核")
    await paid_order(api, resources, price=1500, quantity=2)
    await activity.report_gateway(resources.cache, "test-gateway", 7, 5, 60)
    after = (await api.get("/v1/admin/dashboard?days=7", token=admin.token)).ok()
    today, was = after["days"][-1], before["days"][-1]
    assert today["new_users"] >= was["new_users"] + 2  # the author and the buyer
    assert today["posts"] == was["posts"] + 1
    assert today["orders"] == was["orders"] + 1 and today["gmv"] == was["gmv"] + 3000
    fleet = after["fleet"]
    assert {"id": "test-gateway", "sockets": 7, "users": 5} in fleet["gateways"]
    assert {q["name"] for q in fleet["queues"]} >= {"default", "media", "moderation"}
    assert fleet["dead_letters_open"] >= 0 and fleet["posts_awaiting_review"] >= 1
    await activity.forget_gateway(resources.cache, "test-gateway")


@pytest.mark.gen_test(timeout=60)
async def test_a_merchants_dashboard_holds_only_its_own_shop(api, resources):
    mine, order = await paid_order(api, resources, price=2000, quantity=1)
    await paid_order(api, resources, price=9900, quantity=1)  # another shop's
    token = (await make_member(resources, "merchant")).token  # a shop with no orders
    empty = (await api.get("/v1/merchant/dashboard?days=3", token=token)).ok()
    assert sum(d["orders"] for d in empty["days"]) == 0 and empty["fleet"] is None
    from pawhome.identity import tokens
    own_token, _ = tokens.issue_access_token(resources.settings, mine, "merchant", "s-test")
    data = (await api.get("/v1/merchant/dashboard?days=3", token=own_token)).ok()
    today = data["days"][-1]
    assert (today["orders"], today["gmv"]) == (1, order["payable_amount"])
    assert "new_users" not in today
    (await api.get("/v1/admin/dashboard", token=own_token)).error(403)


@pytest.mark.gen_test(timeout=60)
async def test_days_are_shanghai_calendar_days_around_midnight(api, resources):
    """An order paid a minute before midnight in Shanghai counts on the day before, one paid a
    minute after on today, though both fall on the same UTC date (16:00 UTC is midnight)."""
    from sqlalchemy import update

    from models.mall import Order
    from pawhome.identity import tokens

    merchant_id, first = await paid_order(api, resources, price=1000, quantity=1)
    _, (sku,) = await make_product(resources, merchant_id, [{"price": 3000, "stock": 10}])
    buyer = await make_member(resources)
    address_id = await make_address(resources, buyer.user_id)
    second = (await api.post("/v1/orders", token=buyer.token, json={
        "items": [{"sku_id": sku, "quantity": 1}], "address_id": address_id})).ok(201)["orders"][0]
    async with resources.db.session() as session, session.begin():
        assert await orders.mark_paid(session, second["id"], second["payable_amount"])
    today = activity.shanghai_day()
    midnight, _ = activity.day_bounds(today)  # naive UTC, 16:00 of the UTC day before
    assert midnight.hour == 16 and midnight < utcnow()
    async with resources.db.session() as session, session.begin():
        for order_id, at in ((first["id"], midnight - dt.timedelta(minutes=1)),
                             (second["id"], midnight + dt.timedelta(minutes=1))):
            await session.execute(update(Order).where(Order.id == order_id).values(paid_at=at))
    token, _ = tokens.issue_access_token(resources.settings, merchant_id, "merchant", "s-tz")
    data = (await api.get("/v1/merchant/dashboard?days=2", token=token)).ok()
    assert data["timezone"] == "Asia/Shanghai"
    yesterday, now = data["days"]
    assert yesterday["date"] == (today - dt.timedelta(days=1)).isoformat()
    assert now["date"] == today.isoformat()
    assert (yesterday["orders"], yesterday["gmv"]) == (1, first["payable_amount"])
    assert (now["orders"], now["gmv"]) == (1, second["payable_amount"])


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("query", ["days=0", "days=93", "days=x", "since=1"])
async def test_bad_dashboard_queries_are_field_errors(api, query):
    admin = await api.login(role="admin")
    (await api.get(f"/v1/admin/dashboard?{query}", token=admin.token)).error(422)


@pytest.mark.gen_test(timeout=30)
async def test_staff_topics_are_for_admins_only(api, resources):
    admin, merchant = await api.login(role="admin"), await api.login(role="merchant")
    await topics.authorize(resources, admin.user_id, "staff:moderation")
    await topics.authorize(resources, admin.user_id, "staff:orders")
    for topic in ("staff:moderation", "staff:orders"):
        with pytest.raises(Forbidden):
            await topics.authorize(resources, merchant.user_id, topic)
    with pytest.raises(NotFound):
        await topics.authorize(resources, admin.user_id, "staff:everything")


@pytest.mark.gen_test(timeout=30)
async def test_the_moderation_queue_carries_the_posts_media(api, resources):
    from tests.catalogue_support import ready_media

    author = await api.login()
    media_id = await ready_media(resources, author.user_id)
    post = (await api.post("/v1/posts", json={"text": "看我家猫", "media_ids": [media_id]},
                           token=author.token)).ok(201)
    admin = await api.login(role="admin")
    queue = (await api.get("/v1/admin/moderation?kind=post&state=pending&limit=100",
                           token=admin.token)).ok()
    item = next((i for i in queue["items"] if i["target_id"] == post["id"]), None)
    if item is None:  # a shared test worker moderated it before the listing: hold it
        async with resources.db.session() as session, session.begin():
            assert (await session.get(Post, post["id"])).status != "pending"
            await posts.set_status(session, post["id"], "hidden", "待人工复核")
        queue = (await api.get("/v1/admin/moderation?kind=post&state=hidden&limit=100",
                               token=admin.token)).ok()
        item = next(i for i in queue["items"] if i["target_id"] == post["id"])
    assert [m["id"] for m in item["media"]] == [media_id]
    assert item["media"][0]["kind"] == "image"
