"""Posts: create with topics, board, pets and media; edit, delete, admin take-down and
pinning; who can read a post; view counts buffered in Redis and flushed by the beat job."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models.community import Post, Topic, UserStats
from models.media import Media
from pawhome.community import feeds, post_topics, posts
from pawhome.community.boards import ensure_boards as ensure_standard_boards
from tests.event_contract import assert_events_valid, capture_events, types_of

# -- helpers (test_feeds imports these) ---------------------------------------------------------


async def ensure_boards(resources) -> None:
    async with resources.db.session() as session, session.begin():
        await ensure_standard_boards(session)


async def publish(api, resources, user, text: str = "今天遛狗", status: str = "visible",
                  **fields) -> dict:
    """Create a post through the API and move it to `status` as moderation would."""
    post = (await api.post("/v1/posts", json={"text": text, **fields},
                           token=user.token)).ok(201)
    if status != "pending":
        await set_status(resources, post["id"], status)
    return post


async def insert_post(resources, user, status: str = "pending", text: str = "held",
                      **fields) -> dict:
    """A post row written directly, with no moderation task queued: it stays in `status`
    even while a test worker is reviewing other posts."""
    async with resources.db.session() as session, session.begin():
        post = Post(author_id=user.user_id, text=text, status=status, **fields)
        session.add(post)
        await session.flush()
        return {"id": post.id}


async def set_status(resources, post_id: int, status: str, reason: str = "") -> None:
    async with resources.db.session() as session, session.begin():
        await posts.set_status(session, post_id, status, reason)


async def make_media(resources, owner_id: int, kind: str = "image",
                     status: str = "ready") -> int:
    async with resources.db.session() as session, session.begin():
        media = Media(owner_id=owner_id, kind=kind, status=status,
                      storage_key=f"test/{uuid.uuid4().hex}", content_type="image/jpeg")
        session.add(media)
        await session.flush()
        return media.id


async def topic_count(resources, name: str) -> int | None:
    async with resources.db.session() as session:
        return (await session.execute(select(Topic.post_count)
                                      .where(Topic.name == name))).scalar()


async def post_row(resources, post_id: int) -> Post:
    async with resources.db.session() as session:
        return await session.get(Post, post_id)


@pytest.fixture
def boards(resources, io_loop):
    io_loop.run_sync(lambda: ensure_boards(resources))


def tag() -> str:
    return "t" + uuid.uuid4().hex[:10]


# -- create ------------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_new_post_is_pending_with_topics_board_pets_and_counted(api, resources, boards):
    me = await api.login()
    pet = (await api.post("/v1/pets", json={"name": "豆豆", "species": "dog"},
                          token=me.token)).ok(201)
    a, b = tag(), tag()
    post = (await api.post("/v1/posts", token=me.token, json={
        "text": f"今天的 #{a}# 和 #{b.upper()} 还有 #{a}", "topics": ["柯基", f"#{b}"],
        "board": "show", "pet_types": ["dog", "dog"], "pet_ids": [pet["id"]],
        "location_name": " 上海 ", "visibility": "public"})).ok(201)
    assert post["status"] == "pending" and post["board"] == "show"
    assert post["topics"] == sorted(post["topics"], key=lambda n: post["topics"].index(n))
    assert set(post["topics"]) == {"柯基", a, b}
    assert post["pet_types"] == ["dog"] and post["pet_ids"] == [pet["id"]]
    assert post["location_name"] == "上海" and post["media_kind"] == "none"
    assert post["author"]["id"] == me.user_id
    assert await topic_count(resources, a) == 1 and await topic_count(resources, b) == 1
    async with resources.db.session() as session:
        stats = await session.get(UserStats, me.user_id)
    assert stats is not None and stats.posts == 1


def test_topics_in_text_follow_the_documented_rule():
    assert post_topics.topics_in_text("#柯基#好可爱 #Corgi! #ＣＯＲＧＩ #a_b2 # 空 ## #柯基") == \
        ["柯基", "corgi", "a_b2"]
    assert post_topics.topics_in_text("#柯基 好可爱") == ["柯基"]
    assert post_topics.topics_in_text("email a#b? ok") == []
    assert post_topics.topics_in_text("#" + "长" * 33) == []
    assert post_topics.topics_in_text("#" + "长" * 32 + "!") == ["长" * 32]


@pytest.mark.gen_test
async def test_invalid_posts_are_refused_with_the_field_named(api, resources, boards):
    me, other = await api.login(), await api.login()
    others_pet = (await api.post("/v1/pets", json={"name": "x", "species": "cat"},
                                 token=other.token)).ok(201)
    many = " ".join(f"#{tag()}" for _ in range(11))
    cases = [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "长" * 5001}, "text"),
        ({"text": "hi", "topics": ["has space"]}, "topics.0"),
        ({"text": many}, "topics"),
        ({"text": "hi", "board": "nope"}, "board"),
        ({"text": "hi", "pet_ids": [others_pet["id"]]}, "pet_ids"),
        ({"text": "hi", "pet_types": ["dragon"]}, "pet_types.0"),
        ({"text": "hi", "visibility": "friends"}, "visibility"),
        ({"text": "hi", "media_ids": [1, 1]}, "media_ids"),
        ({"text": "hi", "author_id": other.user_id}, "author_id"),
    ]
    for body, field in cases:
        (await api.post("/v1/posts", json=body, token=me.token)).error(422, field=field)
    (await api.post("/v1/posts", json={"text": "加我 赌博 群"}, token=me.token)
     ).error(422, code=42202, field="text")
    (await api.post("/v1/posts", json={"text": "hi"})).error(401)
    async with resources.db.session() as session:
        mine = (await session.execute(select(Post.id).where(
            Post.author_id == me.user_id))).all()
    assert mine == []


@pytest.mark.gen_test
async def test_media_rules_up_to_nine_images_or_one_video_of_ones_own(api, resources):
    me, other = await api.login(), await api.login()
    images = [await make_media(resources, me.user_id) for _ in range(10)]
    video, video2 = (await make_media(resources, me.user_id, "video"),
                     await make_media(resources, me.user_id, "video"))
    not_ready = await make_media(resources, me.user_id, status="processing")
    theirs = await make_media(resources, other.user_id)
    refused = [images, [images[0], video], [video, video2], [not_ready], [theirs]]
    for media_ids in refused:
        (await api.post("/v1/posts", json={"text": "pics", "media_ids": media_ids},
                        token=me.token)).error(422)
    nine = (await api.post("/v1/posts", json={"text": "pics", "media_ids": images[:9]},
                           token=me.token)).ok(201)
    assert nine["media_kind"] == "image" and nine["media_ids"] == images[:9]
    one = (await api.post("/v1/posts", json={"text": "clip", "media_ids": [video]},
                          token=me.token)).ok(201)
    assert one["media_kind"] == "video"


# -- reading one post ----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_pending_and_hidden_posts_are_seen_only_by_their_author(api, resources):
    author, other = await api.login(), await api.login()
    post = await insert_post(resources, author)
    path = f"/v1/posts/{post['id']}"
    assert (await api.get(path, token=author.token)).ok()["status"] == "pending"
    (await api.get(path, token=other.token)).error(404)
    (await api.get(path)).error(404)
    await set_status(resources, post["id"], "hidden", "held for review")
    seen = (await api.get(path, token=author.token)).ok()
    assert seen["status"] == "hidden" and seen["status_reason"] == "held for review"
    (await api.get(path, token=other.token)).error(404)
    await set_status(resources, post["id"], "visible")
    assert (await api.get(path, token=other.token)).ok()["status_reason"] == ""
    assert (await api.get(path)).ok()["id"] == post["id"]
    (await api.get("/v1/posts/99999999999")).error(404)
    (await api.get(path, token="not-a-token")).error(401)


@pytest.mark.gen_test
async def test_followers_only_and_private_posts_by_id(api, resources):
    author, fan, stranger = await api.login(), await api.login(), await api.login()
    async with resources.db.session() as session, session.begin():
        from pawhome.community import follows
        await follows.follow(session, fan.user_id, author.user_id)
    followers = await publish(api, resources, author, visibility="followers")
    private = await publish(api, resources, author, visibility="private")
    path = "/v1/posts/{}".format
    assert (await api.get(path(followers["id"]), token=fan.token)).ok()["id"] == followers["id"]
    (await api.get(path(followers["id"]), token=stranger.token)).error(404)
    (await api.get(path(followers["id"]))).error(404)
    (await api.get(path(private["id"]), token=fan.token)).error(404)
    assert (await api.get(path(private["id"]), token=author.token)).ok()["visibility"] == \
        "private"


@pytest.mark.gen_test
async def test_blocked_users_cannot_open_each_others_posts(api, resources):
    author, blocked = await api.login(), await api.login()
    post = await publish(api, resources, author)
    (await api.post("/v1/users/me/blocks", json={"user_id": blocked.user_id},
                    token=author.token)).ok()
    (await api.get(f"/v1/posts/{post['id']}", token=blocked.token)).error(404)
    theirs = await publish(api, resources, blocked)
    (await api.get(f"/v1/posts/{theirs['id']}", token=author.token)).error(404)


# -- edit and delete -----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_edit_by_author_goes_back_to_pending_and_moves_topic_counts(api, resources):
    author, other = await api.login(), await api.login()
    old, new = tag(), tag()
    post = await publish(api, resources, author, text=f"#{old} first")
    path = f"/v1/posts/{post['id']}"
    (await api.put(path, json={"text": "hijack"}, token=other.token)).error(404)
    (await api.put(path, json={"text": "加我 赌博"}, token=author.token)).error(422, field="text")
    edited = (await api.put(path, json={"text": f"#{new} second", "visibility": "followers"},
                            token=author.token)).ok()
    assert edited["status"] == "pending" and edited["edited_at"] is not None
    assert edited["topics"] == [new] and edited["visibility"] == "followers"
    assert await topic_count(resources, old) == 0 and await topic_count(resources, new) == 1
    (await api.get(path, token=other.token)).error(404)


@pytest.mark.gen_test
async def test_delete_by_author_only_soft_deletes_and_uncounts(api, resources):
    author, other = await api.login(), await api.login()
    name = tag()
    post = await publish(api, resources, author, text=f"#{name}")
    path = f"/v1/posts/{post['id']}"
    (await api.delete(path, token=other.token)).error(404)
    (await api.delete(path, token=author.token)).ok()
    (await api.get(path, token=author.token)).error(404)
    (await api.delete(path, token=author.token)).error(404)
    (await api.put(path, json={"text": "back"}, token=author.token)).error(404)
    row = await post_row(resources, post["id"])
    assert row is not None and row.deleted_at is not None
    assert await topic_count(resources, name) == 0
    async with resources.db.session() as session:
        assert (await session.get(UserStats, author.user_id)).posts == 0


# -- moderation states and admin actions -----------------------------------------------------------


@pytest.mark.gen_test
async def test_set_status_tells_the_author_with_a_valid_event(api, app, resources):
    author = await api.login()
    post = await insert_post(resources, author)
    async with capture_events(app, author.user_id) as captured:
        await set_status(resources, post["id"], "visible")
        await set_status(resources, post["id"], "visible")  # no change: no event
        await set_status(resources, post["id"], "hidden", "held for review")
    found = await captured.events()
    assert_events_valid(found)
    assert types_of(found) == ["post.status", "post.status"]
    assert [e["data"] for e in found] == [
        {"post_id": post["id"], "status": "visible", "reason": ""},
        {"post_id": post["id"], "status": "hidden", "reason": "held for review"}]


@pytest.mark.gen_test
async def test_admin_takes_a_post_down_with_a_reason(api, app, resources):
    author, admin, reader = (await api.login(), await api.login(role="admin"),
                             await api.login())
    name = tag()
    post = await publish(api, resources, author, text=f"#{name} 出售")
    path = f"/v1/admin/posts/{post['id']}/remove"
    (await api.post(path, json={"reason": "ads"}, token=author.token)).error(403)
    (await api.post(path, json={}, token=admin.token)).error(422, field="reason")
    async with capture_events(app, author.user_id) as captured:
        removed = (await api.post(path, json={"reason": "advertising"},
                                  token=admin.token)).ok()
    assert removed["status"] == "removed"
    assert [e["data"] for e in await captured.events()] == [
        {"post_id": post["id"], "status": "removed", "reason": "advertising"}]
    (await api.get(f"/v1/posts/{post['id']}", token=reader.token)).error(404)
    mine = (await api.get(f"/v1/posts/{post['id']}", token=author.token)).ok()
    assert mine["status_reason"] == "advertising"
    assert await topic_count(resources, name) == 0
    (await api.post("/v1/admin/posts/99999999999/remove", json={"reason": "x"},
                    token=admin.token)).error(404)


@pytest.mark.gen_test
async def test_only_admins_pin_and_only_visible_public_board_posts(api, resources, boards):
    author, admin = await api.login(), await api.login(role="admin")
    on_board = await publish(api, resources, author, board="help")
    no_board = await publish(api, resources, author)
    pending = await insert_post(resources, author, board_id=(await post_row(
        resources, on_board["id"])).board_id)
    (await api.post(f"/v1/admin/posts/{on_board['id']}/pin", token=author.token)).error(403)
    (await api.post(f"/v1/admin/posts/{no_board['id']}/pin", token=admin.token)).error(422)
    (await api.post(f"/v1/admin/posts/{pending['id']}/pin", token=admin.token)).error(422)
    assert (await api.post(f"/v1/admin/posts/{on_board['id']}/pin",
                           token=admin.token)).ok()["pinned"] is True
    assert (await api.post(f"/v1/admin/posts/{on_board['id']}/unpin",
                           token=admin.token)).ok()["pinned"] is False


# -- view counts -----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_views_are_buffered_in_redis_and_flushed_in_one_batch(api, resources):
    author, reader = await api.login(), await api.login()
    post = await publish(api, resources, author)
    for token in (reader.token, reader.token, None):
        (await api.get(f"/v1/posts/{post['id']}", token=token)).ok()
    redis, cache = resources.cache.redis, resources.cache
    assert int(await redis.hget(posts.views_key(cache), str(post["id"]))) == 3
    assert (await post_row(resources, post["id"])).view_count == 0  # not written per view
    written = await feeds.flush_view_counts(resources.db, cache)
    assert written >= 3
    assert (await post_row(resources, post["id"])).view_count == 3
    assert await redis.hget(posts.views_key(cache), str(post["id"])) is None
    (await api.get(f"/v1/posts/{post['id']}", token=reader.token)).ok()
    await feeds.flush_view_counts(resources.db, cache)
    assert (await post_row(resources, post["id"])).view_count == 4


@pytest.mark.gen_test
async def test_a_batch_left_by_a_crashed_flush_is_written_by_the_next(api, resources):
    author = await api.login()
    post = await publish(api, resources, author)
    cache = resources.cache
    leftover = cache.key("posts", "views", "batch", "crashed-" + uuid.uuid4().hex)
    await cache.redis.hset(leftover, str(post["id"]), 5)
    await feeds.flush_view_counts(resources.db, cache)
    assert (await post_row(resources, post["id"])).view_count == 5
    assert not await cache.redis.exists(leftover)
