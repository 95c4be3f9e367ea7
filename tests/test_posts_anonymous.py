"""Anonymous posts (seed 003): only on a board that allows them, public only; the author is
named to nobody but admins — in lists, the post page, search, the recommended feed, share
cards, comments and notifications — while the author still hears what happens to the post."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from models.users import User
from pawhome.community import feeds, follows
from pawhome.identity.users import ANONYMOUS_NAME
from pawhome.recommend import feed
from pawhome.search import index as search
from tests.test_posts import boards, publish  # noqa: F401


async def named(api, resources, nickname: str | None = None):
    """A logged-in user with a nickname no other test uses."""
    user = await api.login()
    nickname = nickname or "anon-" + uuid.uuid4().hex[:10]
    async with resources.db.session() as session, session.begin():
        await session.execute(update(User).where(User.id == user.user_id)
                              .values(nickname=nickname))
    return user, nickname


async def anonymous_post(api, resources, author, text: str, **fields) -> dict:
    return await publish(api, resources, author, text=text, board="help", anonymous=True,
                         **fields)


def hidden_author(item: dict) -> None:
    assert item["anonymous"] is True
    assert item["author"] == {"id": None, "nickname": ANONYMOUS_NAME, "avatar_url": ""}
    assert item.get("pet_ids", []) == []


@pytest.mark.gen_test
async def test_an_anonymous_post_needs_a_board_that_allows_it_and_public(api, resources,
                                                                           boards):
    author = await api.login()
    for body in ({"text": "no board", "anonymous": True},
                 {"text": "wrong board", "board": "show", "anonymous": True},
                 {"text": "followers", "board": "help", "anonymous": True,
                  "visibility": "followers"}):
        (await api.post("/v1/posts", json=body, token=author.token)).error(
            422, code=42270, field="anonymous")
    listed = (await api.get("/v1/boards")).ok()["items"]
    assert {b["slug"]: b["allow_anonymous"] for b in listed}["help"] is True
    assert {b["slug"]: b["allow_anonymous"] for b in listed}["show"] is False
    post = (await api.post("/v1/posts", json={"text": "求助匿名", "board": "help",
                                              "anonymous": True}, token=author.token)).ok(201)
    hidden_author(post)


@pytest.mark.gen_test
async def test_the_author_is_hidden_on_every_surface_but_from_admins(api, resources, boards):
    author, nickname = await named(api, resources)
    reader = await api.login()
    admin = await api.login(role="admin")
    pet = (await api.post("/v1/pets", json={"name": "豆豆", "species": "dog"},
                          token=author.token)).ok(201)
    word = "zz" + uuid.uuid4().hex[:8]
    topic = "t" + uuid.uuid4().hex[:8]
    post = await anonymous_post(api, resources, author, f"{word} 狗狗不吃饭 #{topic}",
                                pet_ids=[pet["id"]], pet_types=["dog"])
    async with resources.db.session() as session, session.begin():
        await follows.follow(session, reader.user_id, author.user_id)
    await feeds.invalidate_first_pages(resources.cache)
    await search.index_document(resources, "post", post["id"])
    await resources.cache.redis.delete(feed.pool_key(resources.cache))

    replies = {
        "detail": await api.get(f"/v1/posts/{post['id']}", token=reader.token),
        "visitor detail": await api.get(f"/v1/posts/{post['id']}"),
        "latest": await api.get("/v1/posts?limit=100", token=reader.token),
        "board": await api.get("/v1/posts?board=help&limit=100", token=reader.token),
        "topic": await api.get(f"/v1/topics/{topic}", token=reader.token),
        "search": await api.get(f"/v1/search/posts?q={word}", token=reader.token),
        "recommend": await api.get("/v1/feed/recommend?limit=100", token=reader.token),
        "share": await api.post(f"/v1/posts/{post['id']}/share", token=reader.token),
    }
    for name, reply in replies.items():
        assert reply.status == 200, (name, reply.body)
        assert nickname.encode() not in reply.body, name
    hidden_author(replies["detail"].ok())
    hidden_author(replies["visitor detail"].ok())
    for name in ("latest", "board", "recommend"):
        found = [p for p in replies[name].ok()["items"] if p["id"] == post["id"]]
        assert len(found) == 1, name
        hidden_author(found[0])
    hidden_author(next(p for p in replies["topic"].ok()["posts"]["items"]))
    hit = replies["search"].ok()["items"][0]
    assert hit["id"] == post["id"] and hit["author"]["id"] is None
    assert replies["share"].ok()["card"]["author"]["id"] is None
    # Lists that would name the author leave it out for others.
    by_author = await api.get(f"/v1/posts?author={author.user_id}", token=reader.token)
    assert post["id"] not in [p["id"] for p in by_author.ok()["items"]]
    following = await api.get("/v1/posts?following=true", token=reader.token)
    assert post["id"] not in [p["id"] for p in following.ok()["items"]]
    mine = await api.get(f"/v1/posts?author={author.user_id}", token=author.token)
    assert post["id"] in [p["id"] for p in mine.ok()["items"]]
    # Browse history and favorites show the post as lists do.
    (await api.post(f"/v1/posts/{post['id']}/favorite", token=reader.token)).ok()
    for path in ("/v1/users/me/history", "/v1/users/me/favorites"):
        reply = await api.get(path, token=reader.token)
        assert nickname.encode() not in reply.body, path
    # An admin sees who wrote it.
    seen = (await api.get(f"/v1/posts/{post['id']}", token=admin.token)).ok()
    assert seen["anonymous"] is True
    assert seen["author"]["id"] == author.user_id and seen["author"]["nickname"] == nickname
    assert seen["pet_ids"] == [pet["id"]]


@pytest.mark.gen_test
async def test_comments_and_notifications_never_name_the_anonymous_author(api, resources,
                                                                          boards):
    author, nickname = await named(api, resources)
    reader, reader_name = await named(api, resources)
    post = await anonymous_post(api, resources, author, "匿名求助")
    comment = (await api.post(f"/v1/posts/{post['id']}/comments", json={"text": "看医生"},
                              token=reader.token)).ok(201)
    # The author still hears about comments and likes on the post.
    (await api.post(f"/v1/posts/{post['id']}/like", token=reader.token)).ok()
    theirs = (await api.get("/v1/notifications", token=author.token)).ok()["items"]
    assert {n["kind"] for n in theirs} >= {"post_commented", "post_liked"}
    # The author answers the comment and likes it: the reader learns nothing of who.
    reply = (await api.post(f"/v1/posts/{post['id']}/comments",
                            json={"text": "谢谢", "reply_to_comment_id": comment["id"]},
                            token=author.token)).ok(201)
    assert reply["author"]["id"] is None
    (await api.post(f"/v1/comments/{comment['id']}/like", token=author.token)).ok()
    notices = await api.get("/v1/notifications", token=reader.token)
    assert nickname.encode() not in notices.body
    kinds = {n["kind"]: n for n in notices.ok()["items"]}
    for kind in ("comment_replied", "comment_liked"):
        assert kinds[kind]["actors"] == [{"id": None, "nickname": ANONYMOUS_NAME,
                                          "avatar_url": ""}], kinds[kind]
        assert ANONYMOUS_NAME in kinds[kind]["text"]
    thread = await api.get(f"/v1/posts/{post['id']}/comments", token=reader.token)
    assert nickname.encode() not in thread.body
    top = thread.ok()["items"][0]
    assert top["author"]["nickname"] == reader_name  # other people stay named
    # Replies to the anonymous author name them as the anonymous author too.
    answer = (await api.post(f"/v1/posts/{post['id']}/comments",
                             json={"text": "不客气", "reply_to_comment_id": reply["id"]},
                             token=reader.token)).ok(201)
    assert answer["reply_to_user"]["id"] is None
    assert nickname.encode() not in (await api.get(
        f"/v1/comments/{comment['id']}/replies", token=reader.token)).body


@pytest.mark.gen_test
async def test_blocks_still_hide_an_anonymous_post_on_the_cached_page(api, resources, boards):
    author, _ = await named(api, resources)
    reader = await api.login()
    post = await anonymous_post(api, resources, author, "匿名")
    await feeds.invalidate_first_pages(resources.cache)
    listed = (await api.get("/v1/posts?limit=100", token=reader.token)).ok()["items"]
    assert post["id"] in [p["id"] for p in listed]
    (await api.post("/v1/users/me/blocks", json={"user_id": author.user_id},
                    token=reader.token)).ok()
    listed = (await api.get("/v1/posts?limit=100", token=reader.token)).ok()["items"]
    assert post["id"] not in [p["id"] for p in listed]
    (await api.get(f"/v1/posts/{post['id']}", token=reader.token)).error(404)
