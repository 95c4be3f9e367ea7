"""@mentions: the ids a post or comment names become `mention` notifications once the source
is visible, never twice for one source and person (edits included), never across a block
(either way), to someone whose privacy settings refuse the author, or to someone who cannot
see the source; at most ten people per source."""
from __future__ import annotations

import pytest

from pawhome.community import follows
from tests.test_posts import boards, publish, set_status  # noqa: F401


async def mentions_of(api, user) -> list[dict]:
    reply = await api.get("/v1/notifications?category=mention", token=user.token)
    return reply.ok()["items"]


async def refuse_mentions(api, user, choice: str) -> None:
    (await api.put("/v1/users/me/settings",
                   json={"privacy_prefs": {"allow_mentions_from": choice}},
                   token=user.token)).ok()


async def follow(resources, follower, followee) -> None:
    async with resources.db.session() as session, session.begin():
        await follows.follow(session, follower.user_id, followee.user_id)


@pytest.mark.gen_test
async def test_a_post_mention_is_told_once_when_visible_and_not_again_on_edit(api, resources):
    author, b, c, d = [await api.login() for _ in range(4)]
    post = await publish(api, resources, author, text="@b @c 看这只猫",
                         mentions=[b.user_id, c.user_id], status="pending")
    assert await mentions_of(api, b) == []  # pending: nobody may see it yet
    await set_status(resources, post["id"], "visible")
    for who in (b, c):
        found = await mentions_of(api, who)
        assert [(n["kind"], n["target_id"], n["actors"][0]["id"]) for n in found] == \
            [("post_mention", post["id"], author.user_id)]
        assert found[0]["payload"]["post_id"] == post["id"]
    # An edit keeps b and adds d: moderated again, only d hears of it.
    (await api.put(f"/v1/posts/{post['id']}", json={
        "text": "@b @d 看这只猫", "mentions": [b.user_id, d.user_id]},
        token=author.token)).ok()
    await set_status(resources, post["id"], "visible")
    assert len(await mentions_of(api, b)) == 1
    assert len(await mentions_of(api, d)) == 1
    # Hidden and shown again: nobody is told twice.
    await set_status(resources, post["id"], "hidden")
    await set_status(resources, post["id"], "visible")
    for who in (b, c, d):
        assert len(await mentions_of(api, who)) == 1


@pytest.mark.gen_test
async def test_mentions_respect_blocks_both_ways_and_privacy_settings(api, resources):
    author = await api.login()
    blocker, blocked, nobody, only_mine, follower, everyone = [await api.login()
                                                              for _ in range(6)]
    (await api.post("/v1/users/me/blocks", json={"user_id": author.user_id},
                    token=blocker.token)).ok()
    (await api.post("/v1/users/me/blocks", json={"user_id": blocked.user_id},
                    token=author.token)).ok()
    await refuse_mentions(api, nobody, "nobody")
    await refuse_mentions(api, only_mine, "following")
    await refuse_mentions(api, follower, "following")
    await follow(resources, follower, author)
    everyone_else = [blocker, blocked, nobody, only_mine, follower, everyone]
    await publish(api, resources, author, text="大家好",
                  mentions=[u.user_id for u in everyone_else])
    told = {u.user_id for u in everyone_else if await mentions_of(api, u)}
    assert told == {follower.user_id, everyone.user_id}


@pytest.mark.gen_test
async def test_someone_who_cannot_see_the_post_is_not_told(api, resources):
    author, fan, stranger = await api.login(), await api.login(), await api.login()
    await follow(resources, fan, author)
    await publish(api, resources, author, text="只给粉丝", visibility="followers",
                  mentions=[fan.user_id, stranger.user_id])
    assert len(await mentions_of(api, fan)) == 1
    assert await mentions_of(api, stranger) == []


@pytest.mark.gen_test
async def test_comment_mentions_are_told_at_once_and_anonymous_authors_stay_hidden(
        api, resources, boards):
    author, reader, friend = await api.login(), await api.login(), await api.login()
    post = await publish(api, resources, author, text="求助", board="help", anonymous=True)
    (await api.post(f"/v1/posts/{post['id']}/comments",
                    json={"text": "@friend 你看看", "mentions": [friend.user_id]},
                    token=reader.token)).ok(201)
    found = await mentions_of(api, friend)
    assert [(n["kind"], n["actors"][0]["id"]) for n in found] == \
        [("comment_mention", reader.user_id)]
    # The anonymous author mentioning someone in their own thread stays anonymous.
    (await api.post(f"/v1/posts/{post['id']}/comments",
                    json={"text": "@reader 谢谢", "mentions": [reader.user_id]},
                    token=author.token)).ok(201)
    told = await mentions_of(api, reader)
    assert [n["actors"][0]["id"] for n in told] == [None]


@pytest.mark.gen_test
async def test_at_most_ten_people_per_post_edits_included(api, resources):
    author = await api.login()
    people = [await api.login() for _ in range(11)]
    ids = [p.user_id for p in people]
    (await api.post("/v1/posts", json={"text": "人多", "mentions": ids},
                    token=author.token)).error(422, field="mentions")
    (await api.post("/v1/posts", json={"text": "重复", "mentions": [ids[0], ids[0]]},
                    token=author.token)).error(422, field="mentions")
    post = (await api.post("/v1/posts", json={"text": "十个", "mentions": ids[:10]},
                           token=author.token)).ok(201)
    (await api.put(f"/v1/posts/{post['id']}", json={"text": "换一个", "mentions": ids[1:]},
                   token=author.token)).error(422, code=42271, field="mentions")
    # Unknown people and the author are left out without a word.
    (await api.post("/v1/posts", json={"text": "谁", "mentions": [10**15, author.user_id]},
                    token=author.token)).ok(201)
