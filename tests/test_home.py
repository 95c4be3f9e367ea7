"""The mall home: admins configure banners, pop-ups and product slots (audited, admins only,
bad input refused); GET /v1/home/mall serves the shared part from its 1 h cache, dropped at
once by an admin's change or a slot's product going off sale; the pop-up rules (once, daily,
new users) are applied per viewer after the cache; visitors see the home too."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from models.base import utcnow
from models.home import HomeBanner
from models.mall import Product
from models.platform import AuditEntry
from models.users import User
from pawhome.promotions import home
from tests.mall_support import make_member, make_product, make_shop

PNG = "https://cdn.example.com/home/banner.png"


def iso(moment: dt.datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"


async def fresh_home(resources) -> None:
    await resources.cache.redis.delete(home.home_key(resources))


async def on_sale_products(resources, count: int, sales: int = 0) -> tuple[object, list[int]]:
    merchant, _ = await make_shop(resources)
    ids = [(await make_product(resources, merchant.user_id, name=f"首页商品{n}"))[0]
           for n in range(count)]
    if sales:
        async with resources.db.session() as session, session.begin():
            for n, product_id in enumerate(ids):  # the best sellers of the whole shop
                await session.execute(update(Product).where(Product.id == product_id)
                                      .values(sales_count=sales - n))
    return merchant, ids


async def add(api, admin, kind: str, **fields) -> dict:
    body = {"title": fields.pop("title", kind), "image_url": PNG, **fields}
    return (await api.post(f"/v1/admin/home/{kind}s", token=admin.token, json=body)).ok(201)


@pytest.mark.gen_test(timeout=60)
async def test_a_visitor_sees_live_banners_pop_ups_and_the_slots_an_admin_configured(
        api, resources):
    await fresh_home(resources)
    admin = await make_member(resources, "admin")
    _, (first, second, third) = await on_sale_products(resources, 3)
    _, best = await on_sale_products(resources, 2, sales=10**12)
    now = utcnow()
    live = await add(api, admin, "banner", link_type="product", link_value=str(first),
                     sort=-5, ends_at=iso(now + dt.timedelta(days=3)))
    later = await add(api, admin, "banner", starts_at=iso(now + dt.timedelta(days=2)))
    off = await add(api, admin, "banner", enabled=False)
    over = await add(api, admin, "banner", starts_at=iso(now - dt.timedelta(days=3)),
                     ends_at=iso(now - dt.timedelta(days=1)))
    popup = await add(api, admin, "popup", rule="daily", link_type="page",
                      link_value="/pages/coupons/index")
    (await api.put("/v1/admin/home/slots/recommended", token=admin.token,
                   json={"product_ids": [second, first]})).ok()
    slot = (await api.put("/v1/admin/home/slots/group_buy", token=admin.token,
                          json={"product_ids": [third]})).ok()
    assert slot["product_ids"] == [third] and [c["id"] for c in slot["shown"]] == [third]
    (await api.put("/v1/admin/home/slots/hot", token=admin.token,
                   json={"product_ids": []})).ok()

    page = (await api.get("/v1/home/mall")).ok()
    banner_ids = [b["id"] for b in page["banners"]]
    assert live["id"] in banner_ids and not {later["id"], off["id"], over["id"]} & set(banner_ids)
    shown = next(b for b in page["banners"] if b["id"] == live["id"])
    assert shown["link_type"] == "product" and shown["link_value"] == str(first)
    assert popup["id"] in [p["id"] for p in page["popups"]]
    assert [c["id"] for c in page["slots"]["recommended"]] == [second, first]
    assert [c["id"] for c in page["slots"]["group_buy"]] == [third]
    assert [c["id"] for c in page["slots"]["hot"]][:2] == best  # none picked: best sellers
    assert page["slots"]["recommended"][0]["price_min"] == 5900
    assert isinstance(page["for_you"], list)


@pytest.mark.gen_test(timeout=60)
async def test_the_cached_home_is_served_until_an_admin_or_a_slot_product_changes(
        api, resources):
    await fresh_home(resources)
    admin = await make_member(resources, "admin")
    merchant, (kept, leaving) = await on_sale_products(resources, 2)
    banner = await add(api, admin, "banner", title="双十二")
    (await api.put("/v1/admin/home/slots/recommended", token=admin.token,
                   json={"product_ids": [kept, leaving]})).ok()
    first = (await api.get("/v1/home/mall")).ok()
    assert await resources.cache.redis.ttl(home.home_key(resources)) > 3500
    # A change made behind the home's back is not seen while the cache lives ...
    async with resources.db.session() as session, session.begin():
        await session.execute(update(HomeBanner).where(HomeBanner.id == banner["id"])
                              .values(title="改过"))
    cached = (await api.get("/v1/home/mall")).ok()
    assert next(b for b in cached["banners"] if b["id"] == banner["id"])["title"] == "双十二"
    assert cached["slots"] == first["slots"]
    # ... an admin's change drops it at once ...
    (await api.put(f"/v1/admin/home/banners/{banner['id']}", token=admin.token,
                   json={"title": "年货节", "image_url": PNG})).ok()
    again = (await api.get("/v1/home/mall")).ok()
    assert next(b for b in again["banners"] if b["id"] == banner["id"])["title"] == "年货节"
    # ... and so does a product of a slot going off sale.
    (await api.post(f"/v1/merchant/products/{leaving}/off-sale", token=merchant.token)).ok()
    after = (await api.get("/v1/home/mall")).ok()
    assert [c["id"] for c in after["slots"]["recommended"]] == [kept]
    (await api.delete(f"/v1/admin/home/banners/{banner['id']}", token=admin.token)).ok()
    gone = (await api.get("/v1/home/mall")).ok()
    assert banner["id"] not in [b["id"] for b in gone["banners"]]


@pytest.mark.gen_test(timeout=60)
async def test_pop_up_rules_once_daily_and_new_users_are_applied_per_viewer(api, resources):
    await fresh_home(resources)
    admin = await make_member(resources, "admin")
    once = await add(api, admin, "popup", rule="once")
    daily = await add(api, admin, "popup", rule="daily")
    newcomers = await add(api, admin, "popup", rule="new_users")
    mine = {once["id"], daily["id"], newcomers["id"]}

    async def popups(session=None) -> set[int]:
        page = (await api.get("/v1/home/mall", token=session.token if session else None)).ok()
        return {p["id"] for p in page["popups"]} & mine

    newbie, veteran = await make_member(resources), await make_member(resources)
    async with resources.db.session() as session, session.begin():
        await session.execute(update(User).where(User.id == veteran.user_id).values(
            created_at=utcnow() - dt.timedelta(days=30)))
    assert await popups() == mine  # a visitor
    assert await popups(newbie) == mine
    assert await popups(veteran) == {once["id"], daily["id"]}

    for popup in (once, daily, newcomers):
        seen = (await api.post(f"/v1/home/popups/{popup['id']}/seen",
                               token=newbie.token)).ok()
        assert seen["seen_on"] == home.shanghai_day()
    assert await popups(newbie) == set()
    assert await popups(veteran) == {once["id"], daily["id"]}  # per viewer
    # The next day (Asia/Shanghai) the daily pop-up is back; the others stay acknowledged.
    await resources.cache.redis.hset(home.seen_key(resources, newbie.user_id),
                                     str(daily["id"]), "2020-01-01")
    assert await popups(newbie) == {daily["id"]}

    (await api.post("/v1/home/popups/999999999/seen", token=newbie.token)).error(404)
    (await api.post(f"/v1/home/popups/{once['id']}/seen")).error(401)


@pytest.mark.gen_test(timeout=60)
async def test_home_admin_endpoints_are_admins_only_audited_and_refuse_bad_input(api, resources):
    admin, user = await make_member(resources, "admin"), await make_member(resources)
    merchant, (product,) = await on_sale_products(resources, 1)
    _, off_sale = await make_product(resources, merchant.user_id, status="off_sale")
    (await api.get("/v1/admin/home/banners", token=user.token)).error(403)
    (await api.post("/v1/admin/home/banners", token=merchant.token,
                    json={"image_url": PNG})).error(403)
    (await api.get("/v1/admin/home/banners")).error(401)
    bad = [({"image_url": "http://insecure.example.com/a.png"}, "image_url"),
           ({"image_url": PNG, "starts_at": "2026-12-10T00:00:00Z",
             "ends_at": "2026-12-09T00:00:00Z"}, "ends_at"),
           ({"image_url": PNG, "link_type": "product", "link_value": "abc"}, "link_value"),
           ({"image_url": PNG, "link_type": "product"}, "link_value"),  # a 500 the fuzz found
           ({"image_url": PNG, "link_type": "page"}, "link_value"),
           ({"image_url": PNG, "link_type": "product", "link_value": "999999999"},
            "link_value"),
           ({"image_url": PNG, "link_type": "url", "link_value": "javascript:alert(1)"},
            "link_value"),
           ({"image_url": PNG, "link_value": "/pages/x"}, "link_value"),
           ({"image_url": PNG, "rule": "hourly"}, "rule"),
           ({"image_url": PNG, "starts_at": "0001-01-01T00:00:00+08:00"}, "starts_at")]
    for body, field in bad:
        (await api.post("/v1/admin/home/popups", token=admin.token, json=body)) \
            .error(422, field=field)
    slot = "/v1/admin/home/slots/hot"
    (await api.put(slot, token=admin.token, json={"product_ids": off_sale})) \
        .error(422, field="product_ids.0")
    (await api.put(slot, token=admin.token, json={"product_ids": [product, product]})) \
        .error(422, field="product_ids.1")
    (await api.put(slot, token=admin.token, json={"product_ids": list(range(1, 30))})).error(422)
    (await api.get("/v1/admin/home/slots/nope", token=admin.token)).error(404)

    popup = await add(api, admin, "popup", rule="new_users")
    listed = (await api.get("/v1/admin/home/popups", token=admin.token)).ok()
    assert popup["id"] in [p["id"] for p in listed["items"]]
    (await api.delete(f"/v1/admin/home/popups/{popup['id']}", token=admin.token)).ok()
    (await api.delete(f"/v1/admin/home/popups/{popup['id']}", token=admin.token)).error(404)
    async with resources.db.session() as session:
        actions = list((await session.execute(select(AuditEntry.action).where(
            AuditEntry.actor_id == admin.user_id).order_by(AuditEntry.id))).scalars())
    assert actions == ["home.popup_create", "home.popup_delete"]
