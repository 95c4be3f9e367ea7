"""The cart: one line per SKU, grouped by shop, each line checked against the catalogue as it
is now (price, stock, status, deletion flags), the limits (lines, quantity, purchase limit,
stock) held under concurrent adds, selection, clearing, and what checkout reads and removes."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, update

from models.base import utcnow
from models.mall import CartItem, Merchant, Product, Sku
from models.media import Media
from models.users import User
from pawhome.mall import cart
from pawhome.platform.errors import NotFound, ValidationFailed
from tests.interactions_support import make_user
from tests.media_helpers import worker_variants


async def make_shop(resources, name: str = "") -> int:
    """A merchant user with its shop row."""
    async with resources.db.session() as session, session.begin():
        user = User(openid="t-" + uuid.uuid4().hex[:24], nickname=name or "店主",
                    role="merchant", status="active")
        session.add(user)
        await session.flush()
        session.add(Merchant(user_id=user.id, name=name or f"店铺{user.id}",
                             express_regions=[], local_windows=[]))
        return user.id


async def make_skus(resources, merchant_id: int, *, prices=(1990,), stock: int = 100,
                    purchase_limit: int = 0, status: str = "on_sale",
                    name: str = "冻干鸡肉粒", media_ids=()) -> list[int]:
    """A product of the merchant with one SKU per price, as the catalogue leaves them."""
    async with resources.db.session() as session, session.begin():
        product = Product(merchant_id=merchant_id, name=name, description="好吃",
                          status=status, media_ids=list(media_ids), price_min=min(prices), price_max=max(prices),
                          spec_attrs=[{"name": "规格", "values": [str(p) for p in prices]}])
        session.add(product)
        await session.flush()
        skus = [Sku(product_id=product.id, spec_values=[f"{n}"], spec_key=f"{n}",
                    spec_text=f"规格:{n}号", price=price, stock=stock,
                    purchase_limit=purchase_limit) for n, price in enumerate(prices)]
        session.add_all(skus)
        await session.flush()
        return [s.id for s in skus]


async def set_sku(resources, sku_id: int, **values) -> None:
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Sku).where(Sku.id == sku_id).values(**values))


async def set_product_of(resources, sku_id: int, **values) -> None:
    async with resources.db.session() as session, session.begin():
        product_id = (await session.execute(select(Sku.product_id).where(
            Sku.id == sku_id))).scalar_one()
        await session.execute(update(Product).where(Product.id == product_id).values(**values))


async def lines_of(resources, user_id: int) -> list[tuple[int, int]]:
    async with resources.db.session() as session:
        return [tuple(row) for row in (await session.execute(
            select(CartItem.sku_id, CartItem.quantity).where(CartItem.user_id == user_id)
            .order_by(CartItem.sku_id))).all()]


def add(resources, user_id: int, sku_id: int, quantity: int = 1):
    return cart.add_item(resources, user_id, cart.CartAdd(sku_id=sku_id, quantity=quantity))


def by_sku(view: dict) -> dict[int, dict]:
    return {line["sku_id"]: line for group in view["groups"] for line in group["lines"]}


@pytest.mark.gen_test(timeout=60)
async def test_adding_a_sku_twice_adds_to_its_line_and_the_cart_groups_by_shop(api, resources):
    me = await make_user(resources)
    dogs, cats = await make_shop(resources, "汪汪店"), await make_shop(resources, "喵喵店")
    async with resources.db.session() as session, session.begin():
        photo = Media(owner_id=dogs, kind="image", status="ready", storage_key="t/k.jpg",
                      variants=worker_variants("t/k/"))
        session.add(photo)
        await session.flush()
        photo_id = photo.id
    kibble = await make_skus(resources, dogs, prices=(1990, 5990), media_ids=[photo_id])
    litter = await make_skus(resources, cats, prices=(3500,), name="豆腐猫砂")
    first = (await api.post("/v1/cart/items", json={"sku_id": kibble[0], "quantity": 2},
                            token=me.token)).ok()
    assert first == {"sku_id": kibble[0], "quantity": 2, "selected": True, "count": 1}
    assert (await api.post("/v1/cart/items", json={"sku_id": kibble[0]},
                           token=me.token)).ok()["quantity"] == 3
    (await api.post("/v1/cart/items", json={"sku_id": litter[0], "quantity": 1},
                    token=me.token)).ok()
    (await api.post("/v1/cart/items", json={"sku_id": kibble[1], "quantity": 1},
                    token=me.token)).ok()
    view = (await api.get("/v1/cart", token=me.token)).ok()
    assert [g["merchant"]["name"] for g in view["groups"]] == ["汪汪店", "喵喵店"]
    assert [line["sku_id"] for line in view["groups"][0]["lines"]] == [kibble[1], kibble[0]]
    line = by_sku(view)[kibble[0]]
    assert line["name"] == "冻干鸡肉粒" and line["spec_text"] == "规格:0号"
    assert line["image_url"].endswith("t/k/w240.webp")  # the product's first image, small
    assert by_sku(view)[litter[0]]["image_url"] == ""
    assert (line["unit_price"], line["quantity"], line["line_total"]) == (1990, 3, 5970)
    assert line["purchasable"] is True and line["problems"] == []
    assert not any(line[f] for f in ("off_sale", "sku_deleted", "out_of_stock", "over_limit",
                                     "price_changed"))
    assert view["groups"][0]["selected_amount"] == 5970 + 5990
    assert view["totals"] == {"lines": 3, "selected_lines": 3, "selected_quantity": 5,
                              "goods_amount": 5970 + 5990 + 3500, "all_selected": True,
                              "invalid_lines": 0}
    assert (await api.get("/v1/cart/count", token=me.token)).ok() == {"count": 3,
                                                                        "quantity": 5}
    assert await lines_of(resources, me.user_id) == sorted(
        [(kibble[0], 3), (kibble[1], 1), (litter[0], 1)])


@pytest.mark.gen_test(timeout=60)
async def test_each_line_is_flagged_by_what_changed_in_the_catalogue(api, resources):
    me = await make_user(resources)
    shop = await make_shop(resources)
    priced, scarce, shelved, deleted = [
        (await make_skus(resources, shop, prices=(1000,)))[0] for _ in range(4)]
    for sku_id in (priced, scarce, shelved, deleted):
        await add(resources, me.user_id, sku_id, 3)
    await set_sku(resources, priced, price=1200)
    await set_sku(resources, scarce, stock=2)
    await set_product_of(resources, shelved, status="off_sale")
    await set_sku(resources, deleted, deleted_at=utcnow())
    view = (await api.get("/v1/cart", token=me.token)).ok()
    lines = by_sku(view)
    assert lines[priced]["price_changed"] is True and lines[priced]["purchasable"] is True
    assert (lines[priced]["price_when_added"], lines[priced]["unit_price"],
            lines[priced]["line_total"]) == (1000, 1200, 3600)
    assert lines[scarce]["out_of_stock"] is True and lines[scarce]["stock"] == 2
    assert lines[scarce]["problems"] == ["only 2 in stock"]
    assert lines[shelved]["off_sale"] is True and lines[shelved]["problems"] == ["not on sale"]
    assert lines[deleted]["sku_deleted"] is True and not lines[deleted]["out_of_stock"]
    assert [sku for sku, line in lines.items() if not line["purchasable"]] == sorted(
        [scarce, shelved, deleted], key=list(lines).index)
    # Only the selected lines that can be bought count, at today's price.
    assert view["totals"]["goods_amount"] == 3600
    assert (view["totals"]["selected_lines"], view["totals"]["invalid_lines"]) == (1, 3)
    # A closed shop's lines are off sale too; re-adding takes today's price.
    await set_sku(resources, priced, stock=100)
    (await api.post("/v1/cart/items", json={"sku_id": priced}, token=me.token)).ok()
    assert by_sku((await api.get("/v1/cart", token=me.token)).ok())[priced][
        "price_changed"] is False
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Merchant).where(Merchant.user_id == shop)
                              .values(status="suspended"))
    assert by_sku((await api.get("/v1/cart", token=me.token)).ok())[priced]["off_sale"] is True


@pytest.mark.gen_test(timeout=60)
async def test_only_skus_on_sale_go_in_the_cart(api, resources):
    me = await make_user(resources)
    shop = await make_shop(resources)
    (draft,) = await make_skus(resources, shop, status="draft")
    (gone,) = await make_skus(resources, shop)
    await set_sku(resources, gone, deleted_at=utcnow())
    (await api.post("/v1/cart/items", json={"sku_id": draft}, token=me.token)).error(
        422, field="sku_id")
    (await api.post("/v1/cart/items", json={"sku_id": gone}, token=me.token)).error(
        404, field="sku_id")
    (await api.post("/v1/cart/items", json={"sku_id": 10**12}, token=me.token)).error(
        404, field="sku_id")
    (await api.post("/v1/cart/items", json={"sku_id": draft, "sku": 1}, token=me.token)).error(
        422, field="sku")
    assert await lines_of(resources, me.user_id) == []


@pytest.mark.gen_test(timeout=60)
async def test_a_line_holds_one_to_the_purchase_limit_and_grows_only_as_far_as_the_stock(
        api, resources, settings):
    me = await make_user(resources)
    shop = await make_shop(resources)
    (limited,) = await make_skus(resources, shop, purchase_limit=5)
    (plain,) = await make_skus(resources, shop, stock=10_000)
    (few,) = await make_skus(resources, shop, stock=4)
    for quantity in (0, -1, settings.cart_max_quantity + 1, 2**40):
        (await api.post("/v1/cart/items", json={"sku_id": plain, "quantity": quantity},
                        token=me.token)).error(422, field="quantity")
    (await api.post("/v1/cart/items", json={"sku_id": plain, "quantity": 2.5},
                    token=me.token)).error(422, field="quantity")
    (await api.post("/v1/cart/items", json={"sku_id": limited, "quantity": 3},
                    token=me.token)).ok()
    refused = (await api.post("/v1/cart/items", json={"sku_id": limited, "quantity": 3},
                              token=me.token)).error(422, field="quantity")
    assert refused["data"] == {"max_quantity": 5} and "at most 5" in refused["message"].lower()
    (await api.post("/v1/cart/items", json={"sku_id": plain, "quantity": 999},
                    token=me.token)).ok()
    (await api.post("/v1/cart/items", json={"sku_id": plain}, token=me.token)).error(
        422, field="quantity")
    out = (await api.post("/v1/cart/items", json={"sku_id": few, "quantity": 5},
                          token=me.token)).error(422, field="quantity")
    assert out["data"] == {"stock": 4}
    (await api.post("/v1/cart/items", json={"sku_id": few, "quantity": 4},
                    token=me.token)).ok()
    # PATCH sets the quantity: within the limit, and more only as far as the stock goes.
    path = f"/v1/cart/items/{limited}"
    (await api.request("PATCH", path, json={"quantity": 6}, token=me.token)).error(
        422, field="quantity")
    assert (await api.request("PATCH", path, json={"quantity": 5},
                              token=me.token)).ok()["quantity"] == 5
    await set_sku(resources, few, stock=2)
    (await api.request("PATCH", f"/v1/cart/items/{few}", json={"quantity": 3},
                       token=me.token)).ok()  # fewer than before, though still over stock
    assert await lines_of(resources, me.user_id) == sorted(
        [(limited, 5), (plain, 999), (few, 3)])


@pytest.mark.gen_test(timeout=120)
async def test_the_cart_holds_at_most_cart_max_lines_even_when_added_at_once(resources,
                                                                            settings):
    me = await make_user(resources)
    shop = await make_shop(resources)
    skus = await make_skus(resources, shop, prices=tuple(range(100, 110 + settings.cart_max_lines)))
    for sku_id in skus[:settings.cart_max_lines - 5]:
        await add(resources, me.user_id, sku_id)
    results = await asyncio.gather(*[add(resources, me.user_id, sku_id)
                                     for sku_id in skus[settings.cart_max_lines - 5:]],
                                   return_exceptions=True)
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == len(results) - 5
    assert all(isinstance(r, ValidationFailed) and r.errors[0]["field"] == "sku_id"
               and "full" in r.errors[0]["message"] for r in refused)
    assert len(await lines_of(resources, me.user_id)) == settings.cart_max_lines
    # A SKU already in the full cart can still get more units.
    assert (await add(resources, me.user_id, skus[0], 2))["quantity"] == 3


@pytest.mark.gen_test(timeout=120)
async def test_concurrent_adds_of_one_sku_make_one_line_and_never_pass_the_cap(resources):
    me = await make_user(resources)
    shop = await make_shop(resources)
    (sku_id,) = await make_skus(resources, shop, stock=100_000)
    results = await asyncio.gather(*[add(resources, me.user_id, sku_id, 100)
                                     for _ in range(20)], return_exceptions=True)
    done = [r for r in results if not isinstance(r, Exception)]
    assert len(done) == 9 and all(isinstance(r, ValidationFailed)
                                  for r in results if isinstance(r, Exception))
    assert sorted(r["quantity"] for r in done) == list(range(100, 1000, 100))
    assert await lines_of(resources, me.user_id) == [(sku_id, 900)]
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count()).select_from(CartItem).where(
            CartItem.user_id == me.user_id))).scalar_one() == 1


@pytest.mark.gen_test(timeout=60)
async def test_select_unselect_remove_and_clear(api, resources):
    me, other = await make_user(resources), await make_user(resources)
    shop = await make_shop(resources)
    a, b, c = await make_skus(resources, shop, prices=(100, 200, 300))
    for sku_id in (a, b, c):
        await add(resources, me.user_id, sku_id)
    assert (await api.post("/v1/cart/selection", json={"sku_ids": [a, b, 10**9],
                                                       "selected": False},
                           token=me.token)).ok() == {"changed": 2, "count": 3}
    view = (await api.get("/v1/cart", token=me.token)).ok()
    assert view["totals"]["goods_amount"] == 300 and view["totals"]["all_selected"] is False
    (await api.request("PATCH", f"/v1/cart/items/{a}", json={"selected": True},
                       token=me.token)).ok()
    assert (await api.get("/v1/cart", token=me.token)).ok()["totals"]["goods_amount"] == 400
    assert (await api.post("/v1/cart/selection", json={"all": True, "selected": True},
                           token=me.token)).ok()["changed"] == 1
    for body in ({"selected": True}, {"all": True, "sku_ids": [a], "selected": True},
                 {"all": False, "selected": True}):
        (await api.post("/v1/cart/selection", json=body, token=me.token)).error(
            422, field="sku_ids")
    # Someone else's cart is not reachable: their ids are simply not in mine.
    (await api.request("PATCH", f"/v1/cart/items/{a}", json={"quantity": 2},
                       token=other.token)).error(404)
    (await api.delete(f"/v1/cart/items/{a}", token=other.token)).error(404)
    assert (await api.delete(f"/v1/cart/items/{a}", token=me.token)).ok() == {
        "changed": 1, "count": 2}
    (await api.delete(f"/v1/cart/items/{a}", token=me.token)).error(404)
    (await api.request("PATCH", f"/v1/cart/items/{b}", json={"selected": False},
                       token=me.token)).ok()
    assert (await api.delete("/v1/cart?selected=true", token=me.token)).ok() == {
        "changed": 1, "count": 1}
    assert await lines_of(resources, me.user_id) == [(b, 1)]
    assert (await api.delete("/v1/cart", token=me.token)).ok() == {"changed": 1, "count": 0}
    assert (await api.get("/v1/cart", token=me.token)).ok() == {
        "groups": [], "totals": {"lines": 0, "selected_lines": 0, "selected_quantity": 0,
                                 "goods_amount": 0, "all_selected": False,
                                 "invalid_lines": 0}}


@pytest.mark.gen_test(timeout=60)
async def test_checkout_reads_the_selected_lines_and_removes_what_it_ordered(resources):
    me = await make_user(resources)
    shop = await make_shop(resources)
    a, b, c = await make_skus(resources, shop, prices=(100, 200, 300))
    for sku_id, quantity in ((a, 1), (b, 2), (c, 3)):
        await add(resources, me.user_id, sku_id, quantity)
    await cart.change_item(resources, me.user_id, b, cart.CartLineChange(selected=False))
    async with resources.db.session() as session:
        chosen = await cart.selected_lines(session, me.user_id)
    assert chosen == [cart.CartLine(a, 1, True, 100), cart.CartLine(c, 3, True, 300)]
    async with resources.db.session() as session, session.begin():
        await cart.remove_lines(session, me.user_id, [line.sku_id for line in chosen])
        await cart.remove_lines(session, me.user_id, [])
    assert await lines_of(resources, me.user_id) == [(b, 2)]
    with pytest.raises(NotFound):
        await cart.remove_item(resources, me.user_id, a)
