"""The recommended post feed and "recommended for you" products: different users get
different pages from their signals, no post repeats within a session, the visibility rule
holds on every page (blocks both ways, private, hidden, deleted, taken down after the pool
was cached), new posts get their exploration places, and products follow pets and
categories while leaving out what is no longer on sale."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from models.mall import Product, ProductFavorite
from pawhome.community import follows
from pawhome.platform.pagination import decode_cursor, encode_cursor
from pawhome.recommend import feed, products
from tests.mall_support import make_category, make_product, make_shop
from tests.test_posts import insert_post, publish, set_status


async def fresh(resources, *users) -> None:
    """Forget the cached pool and these users' cached signals (both have short TTLs)."""
    await resources.cache.redis.delete(feed.pool_key(resources.cache))
    for user in users:
        await feed.forget_profile(resources, user.user_id)


async def pet(api, user, species: str) -> None:
    (await api.post("/v1/pets", json={"name": "咪咪", "species": species},
                    token=user.token)).ok(201)


async def follow(resources, follower, followee) -> None:
    async with resources.db.session() as session, session.begin():
        await follows.follow(session, follower.user_id, followee.user_id)


async def whole_session(api, token: str | None, limit: int = 50,
                        pages: int = 40) -> list[dict]:
    """Every item a session serves, page after page until the cursor ends."""
    items, cursor = [], None
    for _ in range(pages):
        path = f"/v1/feed/recommend?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(path, token=token)).ok()
        items += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            return items
    raise AssertionError("the session did not end")


def ranks_before(ranking: list[int], first: int, second: int) -> bool:
    """`first` is in the ranking and ahead of `second`, or `second` did not make the cut (the
    worker's database holds other tests' products, which may fill a page before it)."""
    return first in ranking and (second not in ranking
                                 or ranking.index(first) < ranking.index(second))


def about(page: list[dict], species: str) -> int:
    return sum(1 for p in page if species in p["pet_types"])


@pytest.mark.gen_test
async def test_cat_and_dog_owners_get_different_first_pages(api, resources):
    cat_owner, dog_owner = await api.login(), await api.login()
    # Eight authors (a page takes at most two posts of one author), so each owner's page can
    # fill with its pet type although other tests' posts share the worker's database.
    for i in range(8):
        author = await api.login()
        await publish(api, resources, author, text=f"猫 {i}", pet_types=["cat"])
        await publish(api, resources, author, text=f"狗 {i}", pet_types=["dog"])
    await pet(api, cat_owner, "cat")
    await pet(api, dog_owner, "dog")
    await fresh(resources, cat_owner, dog_owner)
    pages = {}
    for who in (cat_owner, dog_owner):
        pages[who.user_id] = (await api.get("/v1/feed/recommend?limit=10",
                                            token=who.token)).ok()["items"]
    cats, dogs = pages[cat_owner.user_id], pages[dog_owner.user_id]
    assert about(cats, "cat") > about(cats, "dog")
    assert about(dogs, "dog") > about(dogs, "cat")
    assert {p["id"] for p in cats} != {p["id"] for p in dogs}
    assert any(p["reason"] == "pet_type" for p in cats)


@pytest.mark.gen_test
async def test_liked_posts_teach_the_feed_a_pet_type(api, resources):
    author, reader = await api.login(), await api.login()
    rabbits = [await publish(api, resources, author, text=f"兔 {i}", pet_types=["rabbit"])
               for i in range(3)]
    (await api.post(f"/v1/posts/{rabbits[0]['id']}/like", token=reader.token)).ok()
    await fresh(resources, reader)
    profile = await feed.viewer_profile(resources, reader.user_id)
    assert profile["pets"] == {"rabbit": 1.0}
    served = await whole_session(api, reader.token)
    reasons = {p["id"]: p["reason"] for p in served}
    assert reasons[rabbits[1]["id"]] in ("pet_type", "new")


@pytest.mark.gen_test
async def test_follows_of_follows_are_recommended(api, resources):
    me, friend, their_friend = await api.login(), await api.login(), await api.login()
    await follow(resources, me, friend)
    await follow(resources, friend, their_friend)
    post = await publish(api, resources, their_friend, text="朋友的朋友")
    await fresh(resources, me)
    profile = await feed.viewer_profile(resources, me.user_id)
    assert profile["fof"] == {str(their_friend.user_id): 1.0}
    assert profile["followees"] == [friend.user_id]
    served = {p["id"]: p["reason"] for p in await whole_session(api, me.token)}
    assert served[post["id"]] in ("friends_of_friends", "new")


@pytest.mark.gen_test
async def test_a_session_never_repeats_a_post_and_a_new_session_starts_over(api, resources):
    author, reader = await api.login(), await api.login()
    made = {(await publish(api, resources, author, text=f"p{i}"))["id"] for i in range(12)}
    await fresh(resources, reader)
    served = await whole_session(api, reader.token, limit=5)
    ids = [p["id"] for p in served]
    assert len(ids) == len(set(ids))
    assert made <= set(ids)  # each author has at most 2 a page, the rest come later
    again = (await api.get("/v1/feed/recommend?limit=50", token=reader.token)).ok()["items"]
    assert {p["id"] for p in again} & made  # a new session may show them again


@pytest.mark.gen_test
async def test_nothing_the_visibility_rule_hides_is_ever_served(api, resources):
    me, blocked, blocker, stranger = (await api.login(), await api.login(),
                                      await api.login(), await api.login())
    await pet(api, me, "cat")
    hidden_posts = [
        await publish(api, resources, blocked, text="blocked", pet_types=["cat"]),
        await publish(api, resources, blocker, text="blocker", pet_types=["cat"]),
        await publish(api, resources, stranger, text="private", pet_types=["cat"],
                      visibility="private"),
        await publish(api, resources, stranger, text="followers", pet_types=["cat"],
                      visibility="followers"),
        await publish(api, resources, stranger, text="held", pet_types=["cat"],
                      status="hidden"),
        # Written directly: a post made through the API queues its review, and a test
        # worker running in this process would approve it.
        await insert_post(resources, stranger, status="pending", text="pending",
                          pet_types=["cat"]),
    ]
    deleted = await publish(api, resources, stranger, text="deleted", pet_types=["cat"])
    taken_down = await publish(api, resources, stranger, text="down", pet_types=["cat"])
    shown = await publish(api, resources, stranger, text="fine", pet_types=["cat"])
    await fresh(resources, me)
    await feed.shared_pool(resources)  # the pool is cached with the last two in it
    (await api.post("/v1/users/me/blocks", json={"user_id": blocked.user_id},
                    token=me.token)).ok()
    (await api.post("/v1/users/me/blocks", json={"user_id": me.user_id},
                    token=blocker.token)).ok()
    (await api.delete(f"/v1/posts/{deleted['id']}", token=stranger.token)).ok()
    await set_status(resources, taken_down["id"], "removed", "rule 3")
    hidden_posts += [deleted, taken_down]
    # The viewer's cached signals still hold no blocks: the page's check must catch them.
    served = {p["id"] for p in await whole_session(api, me.token)}
    assert shown["id"] in served
    assert not served & {p["id"] for p in hidden_posts}
    # Both ways: the blocked user is not served the blocker's... and mine are not served
    # to the user who blocked me.
    mine = await publish(api, resources, me, text="mine", pet_types=["cat"])
    await fresh(resources, blocked, blocker)
    for other in (blocked, blocker):
        assert mine["id"] not in {p["id"] for p in await whole_session(api, other.token)}


@pytest.mark.gen_test
async def test_visitors_get_hot_and_new_and_never_the_viewers_own_posts(api, resources):
    me = await api.login()
    mine = await publish(api, resources, me, text="mine")
    await fresh(resources, me)
    visitor = await whole_session(api, None)
    assert mine["id"] in {p["id"] for p in visitor}
    assert {p["reason"] for p in visitor} <= {"hot", "new"}
    assert mine["id"] not in {p["id"] for p in await whole_session(api, me.token)}


@pytest.mark.gen_test
async def test_a_cursor_of_another_list_or_a_forged_session_is_refused(api, resources):
    for cursor in (encode_cursor({"k": "latest", "c": "x", "i": 1}),
                   encode_cursor({"k": "rec", "s": "../../etc"}), "%%%"):
        (await api.get(f"/v1/feed/recommend?cursor={cursor}")).error(422, field="cursor")


@pytest.mark.gen_test
async def test_another_viewers_cursor_does_not_reveal_their_session(api, resources):
    author, alice, bob = await api.login(), await api.login(), await api.login()
    for i in range(4):
        await publish(api, resources, author, text=f"s{i}")
    await fresh(resources, alice, bob)
    page = (await api.get("/v1/feed/recommend?limit=1", token=alice.token)).ok()
    key = feed.seen_key(resources.cache, alice.user_id, decode_cursor(page["nextCursor"])["s"])
    assert await resources.cache.redis.scard(key) >= 1
    # Bob replaying Alice's cursor reads his own (empty) set under that session id.
    (await api.get(f"/v1/feed/recommend?limit=1&cursor={page['nextCursor']}",
                   token=bob.token)).ok()
    assert await resources.cache.redis.scard(key) >= 1
    assert await resources.cache.redis.ttl(key) > 0


def test_new_unproven_posts_take_every_fifth_place(settings):
    now = 1_000_000_000.0
    old = [{"i": i, "a": i, "t": now - 200 * 3600, "h": 50.0, "p": ["cat"], "c": [], "e": 90}
           for i in range(1, 21)]
    new = [{"i": 100, "a": 100, "t": now - 60, "h": 0.0, "p": [], "c": [], "e": 0}]
    profile = {"pets": {"cat": 1.0}, "topics": {}, "fof": {}, "followees": [], "hidden": []}
    order = list(feed.ranked_order(old + new, profile, settings, "s" * 16, now))
    assert [i for i, _, _ in order].index(100) == 4
    assert order[4][2] == "new"
    assert len(order) == 21
    # With no exploration share the new post only gets what its score earns.
    quiet = settings.model_copy(update={"recommend_explore_share": 0.0})
    assert [i for i, _, _ in feed.ranked_order(old + new, profile, quiet, "s" * 16,
                                               now)][-1] == 100


# -- products ------------------------------------------------------------------------------------


async def favorite(resources, user, product_id: int) -> None:
    async with resources.db.session() as session, session.begin():
        session.add(ProductFavorite(user_id=user.user_id, product_id=product_id))


async def set_product(resources, product_id: int, **values) -> None:
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Product).where(Product.id == product_id).values(**values))


@pytest.mark.gen_test
async def test_recommended_products_follow_pets_and_categories(api, resources):
    merchant, _ = await make_shop(resources)
    food = await make_category(resources, "宠物主粮")
    cat_food, _ = await make_product(resources, merchant.user_id, category_id=food,
                                     name="猫粮")
    dog_food, _ = await make_product(resources, merchant.user_id, category_id=food,
                                     name="狗粮")
    liked, _ = await make_product(resources, merchant.user_id, category_id=food, name="罐头")
    await set_product(resources, dog_food, pet_types=["dog"])
    await set_product(resources, liked, pet_types=[])
    cat_owner, dog_owner = await api.login(), await api.login()
    await pet(api, cat_owner, "cat")
    await pet(api, dog_owner, "dog")
    for who in (cat_owner, dog_owner):
        await favorite(resources, who, liked)
    lists = {}
    for who in (cat_owner, dog_owner):
        await products.forget_ranking(resources, who.user_id)
        items = (await api.get("/v1/products/recommended?limit=50",
                               token=who.token)).ok()["items"]
        lists[who.user_id] = [p["id"] for p in items]
        assert {"id", "name", "price_min", "cover_url", "rating"} <= set(items[0])
    cats, dogs = lists[cat_owner.user_id], lists[dog_owner.user_id]
    assert ranks_before(cats, cat_food, dog_food)
    assert ranks_before(dogs, dog_food, cat_food)
    # Taken off sale by its merchant: gone at once, although the ranking and the cards are
    # cached.
    assert cat_food in [p["id"] for p in await products.recommended_products(
        resources, cat_owner.user_id, 50)]
    (await api.post(f"/v1/merchant/products/{cat_food}/off-sale", token=merchant.token,
                    json={})).ok()
    again = await products.recommended_products(resources, cat_owner.user_id, 50)
    assert cat_food not in [p["id"] for p in again]


@pytest.mark.gen_test
async def test_visitors_get_best_sellers_and_limits_are_checked(api, resources):
    merchant, _ = await make_shop(resources)
    product, _ = await make_product(resources, merchant.user_id)
    # Other tests' products share the database: this one outsells and outrates them all
    # (ties go to the newest, and it is).
    await set_product(resources, product, sales_count=2 * 10**9, rating_count=1,
                      rating_sum=5)
    await products.forget_ranking(resources, None)
    items = (await api.get("/v1/products/recommended?limit=3")).ok()["items"]
    assert items[0]["id"] == product
    await set_product(resources, product, sales_count=0, rating_count=0, rating_sum=0,
                      on_sale_at=dt.datetime(2020, 1, 1))
    await products.forget_ranking(resources, None)
    for bad in ("0", "51", "x"):
        (await api.get(f"/v1/products/recommended?limit={bad}")).error(422, field="limit")
