"""Shops and delivery: the merchant's shop profile and delivery set-up (validated, audited,
own rows only), the shop page buyers see, and the options and quotes checkout prices an
order's delivery with — each fee rule to the fen."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models.mall import Address
from models.media import Media
from models.platform import AuditEntry
from pawhome.mall import addresses, delivery
from pawhome.platform.errors import ValidationFailed
from tests.interactions_support import make_user
from tests.media_helpers import worker_variants

EXPRESS = {"enabled": True, "base_fee": 800, "free_over": 9900,
           "regions": [{"province": "新疆维吾尔自治区", "surcharge": 1500},
                       {"province": "西藏自治区", "deliverable": False}]}
LOCAL = {"enabled": True, "fee": 500, "free_over": 5000,
         "windows": ["14:00-16:00", "09:00-12:00", "12:00-14:00"]}
WEST_LAKE = {"name": "西湖区全区", "province": "浙江省", "city": "杭州市", "district": "西湖区"}
BINJIANG = {"name": "滨江两个小区", "province": "浙江省", "city": "杭州市",
            "district": "滨江区", "communities": ["星耀城", "江南岸"]}
POINT = {"name": "文三路店", "province": "浙江省", "city": "杭州市", "district": "西湖区",
         "detail": "文三路100号", "phone": "0571-88886666", "hours": "09:00-21:00"}


def place(province="浙江省", city="杭州市", district="西湖区", community="") -> Address:
    """An address as checkout passes it (only where it is matters here)."""
    return Address(id=None, user_id=0, contact_name="李四", phone="13700001111",
                   province=province, city=city, district=district, community=community,
                   detail="1号")


async def audit_actions(resources, actor_id: int) -> list[str]:
    async with resources.db.session() as session:
        return list((await session.execute(select(AuditEntry.action).where(
            AuditEntry.actor_id == actor_id).order_by(AuditEntry.id))).scalars())


async def shop_with_everything(api):
    """A merchant with express, local delivery (two areas) and pick-up set up."""
    merchant = await api.login(role="merchant")
    (await api.put("/v1/merchant/delivery", json={
        "express": EXPRESS, "local": LOCAL, "pickup": {"enabled": True}},
        token=merchant.token)).ok()
    for area in (WEST_LAKE, BINJIANG):
        (await api.post("/v1/merchant/delivery-areas", json=area,
                        token=merchant.token)).ok(201)
    point = (await api.post("/v1/merchant/pickup-points", json=POINT,
                            token=merchant.token)).ok(201)
    return merchant, point


async def options(resources, merchant_id: int, address, goods: int) -> dict:
    async with resources.db.session() as session:
        return {o.fulfilment: o for o in
                await delivery.options_for(session, merchant_id, address, goods)}


async def quote(resources, merchant_id: int, **kwargs):
    kwargs = {"address": None, "pickup_point_id": None, "window": None, **kwargs}
    async with resources.db.session() as session:
        return await delivery.quote(session, merchant_id, **kwargs)


async def refused(resources, merchant_id: int, **kwargs) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        await quote(resources, merchant_id, **kwargs)
    return {e["field"]: e["message"] for e in caught.value.errors}


# -- the shop profile -------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_a_merchant_edits_its_shop_and_buyers_see_it(api, resources):
    merchant = await api.login(role="merchant")
    mine = (await api.get("/v1/merchant/shop", token=merchant.token)).ok()
    assert mine["id"] == merchant.user_id and mine["status"] == "active"
    changed = (await api.request("PATCH", "/v1/merchant/shop", json={
        "name": " 汪汪宠物店 ", "intro": "只卖好粮", "logo_url": "https://cdn.example.com/l.png"},
        token=merchant.token)).ok()
    assert changed["name"] == "汪汪宠物店" and changed["logo_url"].endswith("/l.png")
    page = (await api.get(f"/v1/merchants/{merchant.user_id}")).ok()  # no login needed
    assert page["name"] == "汪汪宠物店" and page["intro"] == "只卖好粮"
    assert page["fulfilments"] == ["express"]  # a new shop ships by express at no fee
    assert await audit_actions(resources, merchant.user_id) == ["merchant.shop_update"]
    # Nothing changed: nothing to audit.
    (await api.request("PATCH", "/v1/merchant/shop", json={"intro": "只卖好粮"},
                       token=merchant.token)).ok()
    assert len(await audit_actions(resources, merchant.user_id)) == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_logo_is_one_of_the_merchants_ready_images(api, resources):
    merchant, other = await api.login(role="merchant"), await api.login()
    async with resources.db.session() as session, session.begin():
        ready = Media(owner_id=merchant.user_id, kind="image", status="ready",
                      storage_key="t/logo.jpg", variants=worker_variants("t/logo/"))
        theirs = Media(owner_id=other.user_id, kind="image", status="ready",
                       storage_key="t/x.jpg", variants=worker_variants("t/x/"))
        session.add_all([ready, theirs])
        await session.flush()
        ready_id, theirs_id = ready.id, theirs.id
    shop = (await api.request("PATCH", "/v1/merchant/shop", json={"logo_media_id": ready_id},
                              token=merchant.token)).ok()
    assert shop["logo_media_id"] == ready_id and shop["logo_url"].endswith("t/logo/w240.jpg")
    (await api.request("PATCH", "/v1/merchant/shop", json={"logo_media_id": theirs_id},
                       token=merchant.token)).error(422, field="logo_media_id.0")
    (await api.request("PATCH", "/v1/merchant/shop", json={
        "logo_media_id": ready_id, "logo_url": "https://a.b/c.png"},
        token=merchant.token)).error(422, field="logo_url")
    (await api.request("PATCH", "/v1/merchant/shop", json={"logo_url": "javascript:alert(1)"},
                       token=merchant.token)).error(422, field="logo_url")
    cleared = (await api.request("PATCH", "/v1/merchant/shop", json={"logo_url": ""},
                                 token=merchant.token)).ok()
    assert cleared["logo_url"] == "" and cleared["logo_media_id"] is None


@pytest.mark.gen_test(timeout=60)
async def test_only_merchants_have_a_shop_and_unknown_shops_are_not_found(api, resources):
    user = await api.login()
    for method, path in (("GET", "/v1/merchant/shop"), ("GET", "/v1/merchant/delivery"),
                         ("GET", "/v1/merchant/delivery-areas"),
                         ("GET", "/v1/merchant/pickup-points")):
        (await api.request(method, path, token=user.token)).error(403)
    (await api.get(f"/v1/merchants/{user.user_id}")).error(404)  # a user, not a shop
    (await api.get("/v1/merchants/999999999")).error(404)


# -- the set-up ---------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_the_delivery_setup_round_trips_and_each_section_replaces_only_itself(
        api, resources):
    merchant, point = await shop_with_everything(api)
    setup = (await api.get("/v1/merchant/delivery", token=merchant.token)).ok()
    assert setup["express"] == {"enabled": True, "base_fee": 800, "free_over": 9900, "regions": [
        {"province": "新疆维吾尔自治区", "deliverable": True, "surcharge": 1500},
        {"province": "西藏自治区", "deliverable": False, "surcharge": 0}]}
    assert setup["local"]["windows"] == ["09:00-12:00", "12:00-14:00", "14:00-16:00"]
    assert [a["district"] for a in setup["local"]["areas"]] == ["西湖区", "滨江区"]
    assert setup["pickup"] == {"enabled": True, "points": [point]}
    after = (await api.put("/v1/merchant/delivery", json={"pickup": {"enabled": False}},
                           token=merchant.token)).ok()
    assert after["pickup"]["enabled"] is False and after["express"] == setup["express"]
    assert after["local"] == setup["local"]
    actions = await audit_actions(resources, merchant.user_id)
    assert actions == ["merchant.delivery_update", "merchant.delivery_area_create",
                       "merchant.delivery_area_create", "merchant.pickup_point_create",
                       "merchant.delivery_update"]
    async with resources.db.session() as session:
        last = (await session.execute(select(AuditEntry).where(
            AuditEntry.actor_id == merchant.user_id).order_by(AuditEntry.id.desc())
            .limit(1))).scalar_one()
    assert last.before == {"pickup_enabled": True} and last.after == {"pickup_enabled": False}


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("body,field", [
    ({"local": {**LOCAL, "windows": ["09:00-12:00", "11:00-13:00"]}}, "local.windows"),
    ({"local": {**LOCAL, "windows": ["12:00-09:00"]}}, "local.windows"),
    ({"local": {**LOCAL, "windows": ["09:00-09:00"]}}, "local.windows"),
    ({"local": {**LOCAL, "windows": ["9:00-12:00"]}}, "local.windows.0"),
    ({"local": {**LOCAL, "windows": ["09:00-24:30"]}}, "local.windows.0"),
    ({"local": {**LOCAL, "windows": ["09:00-12:00", "09:00-12:00"]}}, "local.windows"),
    ({"local": {**LOCAL, "fee": -1}}, "local.fee"),
    ({"express": {**EXPRESS, "base_fee": 8.5}}, "express.base_fee"),
    ({"express": {**EXPRESS, "base_fee": "800"}}, "express.base_fee"),
    ({"express": {**EXPRESS, "base_fee": 10**7}}, "express.base_fee"),
    ({"express": {**EXPRESS, "regions": [{"province": "西藏自治区"},
                                         {"province": "西藏自治区"}]}}, "express.regions"),
    ({"express": {**EXPRESS, "regions": [{"province": "火星", "surcharge": 1}]}},
     "express.regions.0.province"),
    ({"express": {"base_fee": 800}}, "express.enabled"),
    ({"express": None}, "express"),
    ({"couriers": []}, "couriers"),
])
async def test_a_bad_setup_is_refused_naming_the_field_and_changes_nothing(api, resources,
                                                                           body, field):
    merchant = await api.login(role="merchant")
    before = (await api.get("/v1/merchant/delivery", token=merchant.token)).ok()
    (await api.put("/v1/merchant/delivery", json=body, token=merchant.token)).error(
        422, field=field)
    assert (await api.get("/v1/merchant/delivery", token=merchant.token)).ok() == before


@pytest.mark.gen_test(timeout=60)
async def test_areas_and_points_belong_to_their_merchant(api, resources):
    owner, _ = await shop_with_everything(api)
    rival = await api.login(role="merchant")
    areas = (await api.get("/v1/merchant/delivery-areas", token=owner.token)).ok()["items"]
    points = (await api.get("/v1/merchant/pickup-points", token=owner.token)).ok()["items"]
    area, point = areas[1], points[0]
    assert area["communities"] == ["星耀城", "江南岸"]
    assert (await api.get("/v1/merchant/delivery-areas", token=rival.token)).ok()["items"] == []
    for path in (f"/v1/merchant/delivery-areas/{area['id']}",
                 f"/v1/merchant/pickup-points/{point['id']}"):
        (await api.request("PATCH", path, json={"enabled": False}, token=rival.token)).error(404)
        (await api.delete(path, token=rival.token)).error(404)
    changed = (await api.request("PATCH", f"/v1/merchant/delivery-areas/{area['id']}", json={
        "communities": ["星耀城"]}, token=owner.token)).ok()
    assert changed["communities"] == ["星耀城"] and changed["name"] == area["name"]
    (await api.request("PATCH", f"/v1/merchant/delivery-areas/{area['id']}", json={
        "communities": ["星耀城", "星耀城"]}, token=owner.token)).error(422, field="communities")
    (await api.request("PATCH", f"/v1/merchant/pickup-points/{point['id']}", json={
        "phone": "call me"}, token=owner.token)).error(422, field="phone")
    closed = (await api.request("PATCH", f"/v1/merchant/pickup-points/{point['id']}", json={
        "enabled": False, "hours": "10:00-20:00"}, token=owner.token)).ok()
    assert closed["enabled"] is False and closed["hours"] == "10:00-20:00"
    assert (await api.delete(f"/v1/merchant/delivery-areas/{area['id']}",
                             token=owner.token)).ok() == {"id": area["id"], "deleted": True}
    (await api.delete(f"/v1/merchant/delivery-areas/{area['id']}", token=owner.token)).error(404)
    actions = await audit_actions(resources, owner.user_id)
    assert actions[-3:] == ["merchant.delivery_area_update", "merchant.pickup_point_update",
                            "merchant.delivery_area_delete"]
    assert await audit_actions(resources, rival.user_id) == []


# -- fee rules ----------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_express_base_fee_is_waived_from_free_over_exactly_to_the_fen(api, resources):
    merchant, _ = await shop_with_everything(api)
    home = place()
    for goods, fee in ((0, 800), (5000, 800), (9899, 800), (9900, 0), (9901, 0)):
        assert (await options(resources, merchant.user_id, home, goods))["express"].fee == fee
        found = await quote(resources, merchant.user_id, fulfilment="express", address=home,
                            goods_amount=goods)
        assert (found.fulfilment, found.fee, found.window) == ("express", fee, "")
        assert found.address["province"] == "浙江省" and found.pickup_point is None


@pytest.mark.gen_test(timeout=60)
async def test_a_province_surcharge_is_added_and_free_shipping_does_not_waive_it(api, resources):
    merchant, _ = await shop_with_everything(api)
    far = place(province="新疆维吾尔自治区", city="乌鲁木齐市", district="天山区")
    assert (await quote(resources, merchant.user_id, fulfilment="express", address=far,
                        goods_amount=5000)).fee == 800 + 1500
    assert (await quote(resources, merchant.user_id, fulfilment="express", address=far,
                        goods_amount=9900)).fee == 1500


@pytest.mark.gen_test(timeout=60)
async def test_a_province_marked_not_deliverable_gets_no_express(api, resources):
    merchant, _ = await shop_with_everything(api)
    tibet = place(province="西藏自治区", city="拉萨市", district="城关区")
    offered = await options(resources, merchant.user_id, tibet, 5000)
    assert offered["express"].available is False
    assert offered["express"].reason == "not deliverable to 西藏自治区"
    assert offered["pickup"].available is True  # pick-up is still there
    assert await refused(resources, merchant.user_id, fulfilment="express", address=tibet,
                         goods_amount=5000) == {"address_id": "not deliverable to 西藏自治区"}
    assert "address_id" in await refused(resources, merchant.user_id, fulfilment="express",
                                         goods_amount=5000)


@pytest.mark.gen_test(timeout=60)
async def test_local_delivery_serves_its_districts_with_its_own_free_over(api, resources):
    merchant, _ = await shop_with_everything(api)
    west_lake = place()
    for goods, fee in ((4999, 500), (5000, 0)):
        found = await quote(resources, merchant.user_id, fulfilment="local", address=west_lake,
                            window="12:00-14:00", goods_amount=goods)
        assert (found.fee, found.window) == (fee, "12:00-14:00")
    elsewhere = place(district="拱墅区")
    offered = await options(resources, merchant.user_id, elsewhere, 1000)
    assert offered["local"].available is False
    assert offered["local"].reason == "outside the delivery area"
    assert offered["local"].windows == ["09:00-12:00", "12:00-14:00", "14:00-16:00"]
    assert await refused(resources, merchant.user_id, fulfilment="local", address=elsewhere,
                         window="09:00-12:00", goods_amount=1000) == {
        "address_id": "outside the delivery area"}


@pytest.mark.gen_test(timeout=60)
async def test_an_area_narrowed_to_communities_serves_only_those(api, resources):
    merchant, _ = await shop_with_everything(api)
    served = place(district="滨江区", community="江南岸")
    assert (await options(resources, merchant.user_id, served, 1000))["local"].available
    other = place(district="滨江区", community="白金海岸")
    reason = (await options(resources, merchant.user_id, other, 1000))["local"].reason
    assert reason.startswith("outside the delivery area") and "白金海岸" in reason
    unnamed = place(district="滨江区")
    reason = (await options(resources, merchant.user_id, unnamed, 1000))["local"].reason
    assert "add your community" in reason
    # A disabled area serves nobody.
    areas = (await api.get("/v1/merchant/delivery-areas", token=merchant.token)).ok()["items"]
    (await api.request("PATCH", f"/v1/merchant/delivery-areas/{areas[1]['id']}",
                       json={"enabled": False}, token=merchant.token)).ok()
    assert not (await options(resources, merchant.user_id, served, 1000))["local"].available


@pytest.mark.gen_test(timeout=60)
async def test_a_local_delivery_window_must_be_one_of_the_shops(api, resources):
    merchant, _ = await shop_with_everything(api)
    home = place()
    assert "delivery_window" in await refused(resources, merchant.user_id, fulfilment="local",
                                              address=home, goods_amount=1000)
    assert "delivery_window" in await refused(resources, merchant.user_id, fulfilment="local",
                                              address=home, window="08:00-09:00",
                                              goods_amount=1000)
    assert "delivery_window" in await refused(resources, merchant.user_id,
                                              fulfilment="express", address=home,
                                              window="09:00-12:00", goods_amount=1000)
    # A shop with no windows takes none.
    (await api.put("/v1/merchant/delivery", json={"local": {**LOCAL, "windows": []}},
                   token=merchant.token)).ok()
    assert (await quote(resources, merchant.user_id, fulfilment="local", address=home,
                        goods_amount=1000)).window == ""
    assert "delivery_window" in await refused(resources, merchant.user_id, fulfilment="local",
                                              address=home, window="09:00-12:00",
                                              goods_amount=1000)


@pytest.mark.gen_test(timeout=60)
async def test_pickup_needs_an_open_point_of_this_very_shop(api, resources):
    merchant, point = await shop_with_everything(api)
    _, rivals_point = await shop_with_everything(api)
    found = await quote(resources, merchant.user_id, fulfilment="pickup",
                        pickup_point_id=point["id"], goods_amount=100)
    assert (found.fee, found.address) == (0, None)
    assert found.pickup_point == {
        "pickup_point_id": point["id"], "name": "文三路店", "province": "浙江省",
        "city": "杭州市", "district": "西湖区", "detail": "文三路100号",
        "full_address": "浙江省杭州市西湖区文三路100号", "phone": "0571-88886666",
        "hours": "09:00-21:00"}
    assert await refused(resources, merchant.user_id, fulfilment="pickup",
                         pickup_point_id=rivals_point["id"], goods_amount=100) == {
        "pickup_point_id": "not a pick-up point of this shop"}
    assert "pickup_point_id" in await refused(resources, merchant.user_id, fulfilment="pickup",
                                              goods_amount=100)
    (await api.request("PATCH", f"/v1/merchant/pickup-points/{point['id']}",
                       json={"enabled": False}, token=merchant.token)).ok()
    assert "pickup_point_id" in await refused(resources, merchant.user_id, fulfilment="pickup",
                                              pickup_point_id=point["id"], goods_amount=100)
    offered = await options(resources, merchant.user_id, None, 100)
    assert offered["pickup"].available is False and offered["pickup"].pickup_points == []


@pytest.mark.gen_test(timeout=60)
async def test_modes_a_shop_has_switched_off_are_neither_offered_nor_quoted(api, resources):
    merchant = await api.login(role="merchant")
    (await api.put("/v1/merchant/delivery", json={
        "express": {"enabled": False}, "local": {"enabled": False},
        "pickup": {"enabled": False}}, token=merchant.token)).ok()
    assert await options(resources, merchant.user_id, place(), 100) == {}
    for fulfilment in ("express", "local", "pickup"):
        assert "fulfilment" in await refused(resources, merchant.user_id,
                                             fulfilment=fulfilment, address=place(),
                                             pickup_point_id=1, goods_amount=100)
    assert "fulfilment" in await refused(resources, merchant.user_id, fulfilment="drone",
                                         address=place(), goods_amount=100)
    assert (await api.get(f"/v1/merchants/{merchant.user_id}")).ok()["fulfilments"] == []


# -- what buyers see ------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_the_shop_page_and_the_delivery_options_for_a_buyers_address(api, resources):
    merchant, point = await shop_with_everything(api)
    page = (await api.get(f"/v1/merchants/{merchant.user_id}")).ok()
    assert page["fulfilments"] == ["express", "local", "pickup"]
    assert page["pickup_points"] == [point] and page["express"]["base_fee"] == 800
    assert [a["district"] for a in page["local"]["areas"]] == ["西湖区", "滨江区"]
    buyer, stranger = await make_user(resources), await make_user(resources)
    path = f"/v1/merchants/{merchant.user_id}/delivery-options"
    none_yet = (await api.get(path + "?goods_amount=100", token=buyer.token)).ok()
    assert none_yet["address_id"] is None
    assert {o["fulfilment"]: o["available"] for o in none_yet["options"]} == {
        "express": False, "local": False, "pickup": True}
    home = (await api.post("/v1/addresses", json={
        "contact_name": "王五", "phone": "13600001111", "province": "浙江省", "city": "杭州市",
        "district": "西湖区", "detail": "2号"}, token=buyer.token)).ok(201)
    found = (await api.get(path + "?goods_amount=9900", token=buyer.token)).ok()
    assert found["address_id"] == home["id"]  # the default address
    assert {o["fulfilment"]: (o["available"], o["fee"]) for o in found["options"]} == {
        "express": (True, 0), "local": (True, 0), "pickup": (True, 0)}
    (await api.get(path + f"?address_id={home['id']}", token=stranger.token)).error(404)
    (await api.get(path + "?goods_amount=-1", token=buyer.token)).error(422)
    (await api.put("/v1/merchant/delivery", json={"pickup": {"enabled": False}},
                   token=merchant.token)).ok()
    assert (await api.get(f"/v1/merchants/{merchant.user_id}")).ok()["pickup_points"] == []


@pytest.mark.gen_test(timeout=60)
async def test_the_demo_shop_offers_every_mode_and_seeding_twice_adds_nothing(api, resources):
    merchant, buyer = await api.login(role="merchant"), await make_user(resources)
    async with resources.db.session() as session, session.begin():
        assert await delivery.seed_demo_shop(session, merchant.user_id) > 0
        assert await delivery.seed_demo_shop(session, merchant.user_id) == 0
        assert await addresses.seed_demo_address(session, buyer.user_id) == 1
        assert await addresses.seed_demo_address(session, buyer.user_id) == 0
    path = f"/v1/merchants/{merchant.user_id}/delivery-options?goods_amount=3000"
    found = (await api.get(path, token=buyer.token)).ok()
    assert [(o["fulfilment"], o["available"], o["fee"]) for o in found["options"]] == [
        ("express", True, 800), ("local", True, 500), ("pickup", True, 0)]
