"""Feeds and lists: visibility in every list, blocks, filters, cursors, pinned posts, the hot
sorted set and topic heat, the cached first pages, the following feed, browse history."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from models.community import Post
from pawhome.community import feeds, follows
from pawhome.identity import users
from pawhome.platform.pagination import encode_cursor
from tests.test_posts import boards, ensure_boards, insert_post, publish, set_status, tag  # noqa: F401


async def follow(resources, follower, followee) -> None:
    async with resources.db.session() as session, session.begin():
        await follows.follow(session, follower.user_id, followee.user_id)


async def ids(api, path: str, token: str | None = None) -> list[int]:
    return [p["id"] for p in (await api.get(path, token=token)).ok()["items"]]


async def topic_page_ids(api, name: str, token: str | None = None) -> list[int]:
    page = (await api.get(f"/v1/topics/{name}", token=token)).ok()
    return [p["id"] for p in page["posts"]["items"]]


async def fresh_discovery(resources) -> None:
    await feeds.invalidate_first_pages(resources.cache)


@pytest.mark.gen_test
async def test_followers_only_post_never_reaches_a_non_follower(api, resources, boards):
    author, fan, stranger = await api.login(), await api.login(), await api.login()
    await follow(resources, fan, author)
    name = tag()
    post = await publish(api, resources, author, text=f"#{name} 只给粉丝",
                         visibility="followers", board="show", pet_types=["cat"])
    await feeds.recompute_hot(resources.db, resources.cache, resources.settings)
    await fresh_discovery(resources)
    lists = ["/v1/posts?limit=100", "/v1/posts?sort=hot&limit=100",
             f"/v1/posts?author={author.user_id}", f"/v1/posts?topic={name}",
             "/v1/posts?board=show&limit=100", "/v1/posts?pet_type=cat&limit=100",
             f"/v1/posts?author={author.user_id}&sort=hot"]
    for path in lists:
        assert post["id"] not in await ids(api, path, stranger.token), path
        assert post["id"] not in await ids(api, path), path
    assert post["id"] not in await ids(api, "/v1/posts?following=true", stranger.token)
    assert post["id"] not in await topic_page_ids(api, name, stranger.token)
    assert post["id"] not in await topic_page_ids(api, name)
    (await api.get(f"/v1/posts/{post['id']}", token=stranger.token)).error(404)
    # The follower sees it where followers-only posts belong.
    assert post["id"] in await ids(api, "/v1/posts?following=true", fan.token)
    assert post["id"] in await ids(api, f"/v1/posts?author={author.user_id}", fan.token)
    assert post["id"] in await topic_page_ids(api, name, fan.token)
    # ... but never in the public discovery feeds.
    assert post["id"] not in await ids(api, "/v1/posts?limit=100", fan.token)


@pytest.mark.gen_test
async def test_private_post_is_listed_only_for_its_author(api, resources):
    author, fan = await api.login(), await api.login()
    await follow(resources, fan, author)
    name = tag()
    post = await publish(api, resources, author, text=f"#{name}", visibility="private")
    for who in (fan, None):
        token = who.token if who else None
        assert await ids(api, f"/v1/posts?author={author.user_id}", token) == []
        assert await ids(api, "/v1/posts?following=true", fan.token) == []
        assert await topic_page_ids(api, name, token) == []
    assert await ids(api, f"/v1/posts?author={author.user_id}", author.token) == [post["id"]]


@pytest.mark.gen_test
async def test_blocked_users_posts_are_hidden_both_ways_in_lists(api, resources):
    alice, bob = await api.login(), await api.login()
    name = tag()
    a = await publish(api, resources, alice, text=f"#{name} a")
    b = await publish(api, resources, bob, text=f"#{name} b")
    await fresh_discovery(resources)
    assert {a["id"], b["id"]} <= set(await ids(api, "/v1/posts?limit=100", alice.token))
    (await api.post("/v1/users/me/blocks", json={"user_id": bob.user_id},
                    token=alice.token)).ok()
    for viewer, hidden, shown in ((alice, b, a), (bob, a, b)):
        for path in ("/v1/posts?limit=100", f"/v1/posts?topic={name}"):
            listed = await ids(api, path, viewer.token)  # the cached page is filtered too
            assert hidden["id"] not in listed and shown["id"] in listed, path
        assert await topic_page_ids(api, name, viewer.token) == [shown["id"]]


@pytest.mark.gen_test
async def test_the_cached_page_follows_blocks_and_unblocks_at_once(api, resources):
    """Each viewer's has-blocks flag (Redis) decides whether the shared cached page needs
    filtering: a block sets it before it commits, an unblock drops it after."""
    alice, bob = await api.login(), await api.login()
    b = await publish(api, resources, bob, text="bob's post")
    await fresh_discovery(resources)
    flag = users.blocks_flag_key(resources.cache, alice.user_id)
    assert b["id"] in await ids(api, "/v1/posts?limit=100", alice.token)
    assert await resources.cache.redis.get(flag) == b"0"  # counted once, then remembered
    (await api.post("/v1/users/me/blocks", json={"user_id": bob.user_id},
                    token=alice.token)).ok()
    assert await resources.cache.redis.get(flag) == b"1"
    assert b["id"] not in await ids(api, "/v1/posts?limit=100", alice.token)
    (await api.delete(f"/v1/users/me/blocks/{bob.user_id}", token=alice.token)).ok()
    assert await resources.cache.redis.get(flag) is None
    assert b["id"] in await ids(api, "/v1/posts?limit=100", alice.token)
    assert await resources.cache.redis.get(flag) == b"0"


@pytest.mark.gen_test
async def test_latest_pages_follow_the_cursor_without_gaps_or_repeats(api, resources):
    author = await api.login()
    made = [(await publish(api, resources, author, text=f"n{i}"))["id"] for i in range(5)]
    pending = await insert_post(resources, author)
    seen, cursor = [], None
    for _ in range(5):
        path = f"/v1/posts?author={author.user_id}&limit=2"
        page = (await api.get(path + (f"&cursor={cursor}" if cursor else ""))).ok()
        seen += [p["id"] for p in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == list(reversed(made)) and pending["id"] not in seen


@pytest.mark.gen_test
async def test_hostile_queries_are_refused(api):
    me = await api.login()
    for path, field in [("/v1/posts?cursor=%%%", "cursor"), ("/v1/posts?cursor=e30", None),
                        ("/v1/posts?sort=best", "sort"), ("/v1/posts?limit=1000", "limit"),
                        ("/v1/posts?pet_type=dragon", "pet_type"),
                        ("/v1/posts?author=abc", "author"), ("/v1/posts?bogus=1", "bogus")]:
        (await api.get(path, token=me.token)).error(422, field=field)
    hot_cursor = encode_cursor({"k": "hot", "h": "nan", "i": 1})
    (await api.get(f"/v1/posts?sort=hot&author=1&cursor={hot_cursor}")).error(422)
    latest_cursor = encode_cursor({"k": "latest", "c": "yesterday", "i": 1})
    (await api.get(f"/v1/posts?author=1&cursor={latest_cursor}")).error(422)
    (await api.get("/v1/posts?following=true")).error(401)
    (await api.get("/v1/posts?board=nope")).error(404)
    assert await ids(api, "/v1/posts?topic=never-used-topic") == []
    (await api.get("/v1/topics/never_used_topic_xyz")).error(404)


@pytest.mark.gen_test
async def test_filters_by_pet_type_and_board_with_pinned_posts_first(api, resources, boards):
    author, admin = await api.login(), await api.login(role="admin")
    cat = await publish(api, resources, author, pet_types=["cat", "rabbit"], board="adopt")
    dog = await publish(api, resources, author, pet_types=["dog"], board="adopt")
    later = await publish(api, resources, author, board="adopt")
    mine = f"&author={author.user_id}"
    assert await ids(api, "/v1/posts?pet_type=cat" + mine) == [cat["id"]]
    assert await ids(api, "/v1/posts?pet_type=dog" + mine) == [dog["id"]]
    assert await ids(api, "/v1/posts?pet_type=rabbit" + mine) == [cat["id"]]
    (await api.post(f"/v1/admin/posts/{cat['id']}/pin", token=admin.token)).ok()
    board = await ids(api, "/v1/posts?board=adopt&limit=100")
    assert board[0] == cat["id"] and board.index(later["id"]) < board.index(dog["id"])
    assert board.count(cat["id"]) == 1
    page = (await api.get("/v1/posts?board=adopt&limit=1")).ok()
    second = (await api.get(f"/v1/posts?board=adopt&limit=1&cursor={page['nextCursor']}")).ok()
    assert cat["id"] not in [p["id"] for p in second["items"]]  # pinned only on page one


@pytest.mark.gen_test
async def test_hot_feed_ranks_by_engagement_and_age_from_the_sorted_set(api, resources):
    author = await api.login()
    quiet = await publish(api, resources, author, text="quiet")
    loved = await publish(api, resources, author, text="loved")
    old = await publish(api, resources, author, text="old but loved")
    followers = await publish(api, resources, author, visibility="followers")
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Post).where(Post.id == loved["id"])
                              .values(like_count=50, comment_count=10, favorite_count=5))
        await session.execute(update(Post).where(Post.id == old["id"]).values(
            like_count=50, comment_count=10, favorite_count=5,
            created_at=dt.datetime.utcnow() - dt.timedelta(hours=48)))
    await feeds.recompute_hot(resources.db, resources.cache, resources.settings)
    ranked = [int(i) for i in await resources.cache.redis.zrevrange(
        feeds.hot_key(resources.cache), 0, -1)]
    assert followers["id"] not in ranked
    # loved: 86 / 2^1.5 = 30.4; quiet: 1 / 2^1.5 = 0.35; old: 86 / 50^1.5 = 0.24
    assert ranked.index(loved["id"]) < ranked.index(quiet["id"]) < ranked.index(old["id"])
    assert feeds.hot_score(50, 10, 5, 0, 48) < feeds.hot_score(50, 10, 5, 0, 0)
    hot = await ids(api, "/v1/posts?sort=hot&limit=100")
    assert hot.index(loved["id"]) < hot.index(quiet["id"]) and followers["id"] not in hot
    # Paging the sorted set continues after the first page.
    first = (await api.get("/v1/posts?sort=hot&limit=1")).ok()
    second = (await api.get(f"/v1/posts?sort=hot&limit=1&cursor={first['nextCursor']}")).ok()
    assert first["items"][0]["id"] != second["items"][0]["id"]
    # A post taken down after the recompute is filtered out when read.
    await set_status(resources, loved["id"], "removed", "spam")
    await fresh_discovery(resources)
    assert loved["id"] not in await ids(api, "/v1/posts?sort=hot&limit=100")
    hot_db = await ids(api, f"/v1/posts?sort=hot&author={author.user_id}")
    assert hot_db == [quiet["id"], old["id"]]  # ordered by the stored posts.hot_score


@pytest.mark.gen_test
async def test_topic_heat_is_recomputed_and_hot_topics_list_it(api, resources):
    author, stranger = await api.login(), await api.login()
    hot_name, cold_name = tag(), tag()
    post = await publish(api, resources, author, text=f"#{hot_name} #{cold_name}")
    await publish(api, resources, author, text=f"#{cold_name}", visibility="followers")
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Post).where(Post.id == post["id"])
                              .values(like_count=10_000))
    await feeds.recompute_hot(resources.db, resources.cache, resources.settings)
    topics = (await api.get("/v1/topics/hot?limit=50")).ok()["items"]
    names = [t["name"] for t in topics]
    assert hot_name in names and topics[names.index(hot_name)]["heat"] > 0
    page = (await api.get(f"/v1/topics/{cold_name.upper()}", token=stranger.token)).ok()
    assert page["topic"]["name"] == cold_name and page["topic"]["post_count"] == 2
    assert [p["id"] for p in page["posts"]["items"]] == [post["id"]]
    (await api.get("/v1/topics/hot?limit=500")).error(422, field="limit")


@pytest.mark.gen_test
async def test_first_page_is_served_from_redis_until_invalidated(api, resources):
    author = await api.login()
    await fresh_discovery(resources)
    before = await ids(api, "/v1/posts?limit=7")
    # Written directly: a post published through the API queues its review, and a test
    # worker running in this process would pass it and drop the cached page meanwhile.
    post = await insert_post(resources, author, status="visible", text="fresh")
    key = feeds.first_page_key(resources.cache, "latest", 7)
    assert await resources.cache.redis.exists(key)
    assert await resources.cache.redis.pttl(key) <= resources.settings.feed_cache_seconds * 1000
    assert await ids(api, "/v1/posts?limit=7") == before  # stale within the TTL
    await fresh_discovery(resources)
    assert (await ids(api, "/v1/posts?limit=7"))[0] == post["id"]
    (await api.delete(f"/v1/posts/{post['id']}", token=author.token)).ok()
    assert post["id"] not in await ids(api, "/v1/posts?limit=7")  # delete invalidates


@pytest.mark.gen_test
async def test_following_feed_reads_followees_posts_newest_first(api, resources):
    me, a, b, c = [await api.login() for _ in range(4)]
    await follow(resources, me, a)
    await follow(resources, me, b)
    pa = await publish(api, resources, a, visibility="followers")
    pb = await publish(api, resources, b)
    pc = await publish(api, resources, c)
    await insert_post(resources, a)
    assert await ids(api, "/v1/posts?following=true", me.token) == [pb["id"], pa["id"]]
    assert pc["id"] not in await ids(api, "/v1/posts?following=true", me.token)
    assert await ids(api, "/v1/posts?following=true", c.token) == []


@pytest.mark.gen_test
async def test_browse_history_is_newest_first_paged_and_clearable(api, resources):
    author, me = await api.login(), await api.login()
    made = [await publish(api, resources, author, text=f"h{i}") for i in range(3)]
    for post in [*made, made[0]]:  # re-opening moves a post to the top
        (await api.get(f"/v1/posts/{post['id']}", token=me.token)).ok()
    (await api.get(f"/v1/posts/{made[1]['id']}")).ok()  # anonymous: no history
    first = (await api.get("/v1/users/me/history?limit=2", token=me.token)).ok()
    second = (await api.get(f"/v1/users/me/history?limit=2&cursor={first['nextCursor']}",
                            token=me.token)).ok()
    order = [i["post"]["id"] for i in first["items"] + second["items"]]
    assert order == [made[0]["id"], made[2]["id"], made[1]["id"]]
    assert second["nextCursor"] is None
    await set_status(resources, made[2]["id"], "hidden", "review")
    listed = [i["post"]["id"] for i in
              (await api.get("/v1/users/me/history", token=me.token)).ok()["items"]]
    assert made[2]["id"] not in listed
    assert (await api.get("/v1/users/me/history", token=author.token)).ok()["items"] == []
    assert (await api.delete("/v1/users/me/history", token=me.token)).ok()["removed"] == 3
    assert (await api.get("/v1/users/me/history", token=me.token)).ok()["items"] == []
    (await api.get("/v1/users/me/history")).error(401)


@pytest.mark.gen_test
async def test_beat_jobs_are_scheduled_and_run_as_celery_tasks(api, resources):
    import asyncio

    from workers import default as community
    from workers.celery_app import celery_app
    from workers.schedule import beat_schedule

    tasks = {entry["task"] for entry in beat_schedule(resources.settings).values()}
    assert {"default.flush_post_views", "default.recompute_hot_posts"} <= tasks
    assert "default.flush_post_views" in celery_app.tasks
    author = await api.login()
    post = await publish(api, resources, author)
    (await api.get(f"/v1/posts/{post['id']}")).ok()
    loop = asyncio.get_running_loop()
    # The tasks drive their own event loop (workers/runtime.py): run them on a thread.
    flushed = await loop.run_in_executor(None, lambda: community.flush_post_views.apply().get())
    scored = await loop.run_in_executor(None,
                                        lambda: community.recompute_hot_posts.apply().get())
    assert flushed >= 1 and scored >= 1
    assert (await api.get(f"/v1/posts/{post['id']}")).ok()["view_count"] == 1
    assert await resources.cache.redis.zscore(feeds.hot_key(resources.cache),
                                              str(post["id"])) is not None
