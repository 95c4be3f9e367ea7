"""Comments with one level of replies: threading, listing (newest, hot, cursors, reply
previews), deletion rights, exact counters, blocks, the word filter and notifications."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from models.community import Comment
from models.realtime import Notification
from pawhome.community import comments
from tests.event_contract import assert_events_valid, capture_events, types_of
from tests.interactions_support import (
    assert_counters_true,
    block,
    comment_row,
    make_post,
    make_user,
    post_row,
)


async def comment(api, post_id: int, who, text: str = "好可爱", reply_to: int | None = None,
                  status: int = 201) -> dict:
    body = {"text": text}
    if reply_to is not None:
        body["reply_to_comment_id"] = reply_to
    return (await api.post(f"/v1/posts/{post_id}/comments", json=body, token=who.token)).ok(
        status)


@pytest.mark.gen_test(timeout=60)
async def test_a_reply_to_a_reply_attaches_to_the_top_level_comment(api, resources):
    author, alice, bob = [await make_user(resources) for _ in range(3)]
    post_id = await make_post(resources, author.user_id)
    top = await comment(api, post_id, alice, "第一条")
    reply = await comment(api, post_id, bob, "回复", reply_to=top["id"])
    deeper = await comment(api, post_id, alice, "回复的回复", reply_to=reply["id"])
    assert reply["parent_id"] == top["id"] and reply["reply_to_user"]["id"] == alice.user_id
    assert deeper["parent_id"] == top["id"] and deeper["reply_to_user"]["id"] == bob.user_id
    assert (await post_row(resources, post_id)).comment_count == 3
    assert (await comment_row(resources, top["id"])).reply_count == 2
    await assert_counters_true(resources, post_ids=(post_id,), comment_ids=(top["id"],))
    # A reply must name a comment of the same post.
    other_post = await make_post(resources, author.user_id)
    (await api.post(f"/v1/posts/{other_post}/comments",
                    json={"text": "x", "reply_to_comment_id": top["id"]},
                    token=bob.token)).error(404)


@pytest.mark.gen_test(timeout=60)
async def test_comment_lists_page_newest_and_hot_with_reply_previews(api, resources):
    author, alice, bob = [await make_user(resources) for _ in range(3)]
    post_id = await make_post(resources, author.user_id)
    tops = [await comment(api, post_id, alice, f"评论{i}") for i in range(5)]
    for i in range(5):
        await comment(api, post_id, bob, f"回复{i}", reply_to=tops[0]["id"])
    for fan in [await make_user(resources) for _ in range(2)]:
        (await api.post(f"/v1/comments/{tops[2]['id']}/like", token=fan.token)).ok()
    (await api.post(f"/v1/comments/{tops[3]['id']}/like", token=bob.token)).ok()

    first = (await api.get(f"/v1/posts/{post_id}/comments?limit=2", token=bob.token)).ok()
    assert [c["id"] for c in first["items"]] == [tops[4]["id"], tops[3]["id"]]
    second = (await api.get(f"/v1/posts/{post_id}/comments?limit=2&cursor="
                            f"{first['nextCursor']}", token=bob.token)).ok()
    third = (await api.get(f"/v1/posts/{post_id}/comments?limit=2&cursor="
                           f"{second['nextCursor']}", token=bob.token)).ok()
    assert [c["id"] for c in second["items"] + third["items"]] == \
        [tops[2]["id"], tops[1]["id"], tops[0]["id"]]
    assert third["nextCursor"] is None
    oldest = third["items"][-1]
    assert oldest["reply_count"] == 5
    assert [r["text"] for r in oldest["replies"]] == ["回复0", "回复1", "回复2"]

    hot = (await api.get(f"/v1/posts/{post_id}/comments?sort=hot&limit=2",
                         token=bob.token)).ok()
    assert [c["id"] for c in hot["items"]] == [tops[2]["id"], tops[3]["id"]]
    assert hot["items"][1]["liked"] is True
    rest = (await api.get(f"/v1/posts/{post_id}/comments?sort=hot&limit=10&cursor="
                          f"{hot['nextCursor']}", token=bob.token)).ok()
    assert [c["id"] for c in rest["items"]] == [tops[4]["id"], tops[1]["id"], tops[0]["id"]]

    replies = (await api.get(f"/v1/comments/{tops[0]['id']}/replies?limit=3",
                             token=alice.token)).ok()
    more = (await api.get(f"/v1/comments/{tops[0]['id']}/replies?limit=3&cursor="
                          f"{replies['nextCursor']}", token=alice.token)).ok()
    assert [r["text"] for r in replies["items"] + more["items"]] == \
        [f"回复{i}" for i in range(5)]
    (await api.get(f"/v1/posts/{post_id}/comments?cursor=!!", token=bob.token)).error(
        422, field="cursor")
    (await api.get(f"/v1/posts/{post_id}/comments?sort=best", token=bob.token)).error(422)


@pytest.mark.gen_test(timeout=60)
async def test_who_may_delete_a_comment_and_the_counters_after(api, resources):
    author, alice, bob, stranger = [await make_user(resources) for _ in range(4)]
    post_id = await make_post(resources, author.user_id)
    top = await comment(api, post_id, alice)
    replies = [await comment(api, post_id, bob, f"r{i}", reply_to=top["id"]) for i in range(3)]
    (await api.delete(f"/v1/comments/{replies[0]['id']}", token=stranger.token)).error(403)
    (await api.delete(f"/v1/comments/{replies[0]['id']}", token=bob.token)).ok()
    (await api.delete(f"/v1/comments/{replies[0]['id']}", token=bob.token)).error(404)
    assert (await comment_row(resources, top["id"])).reply_count == 2
    # The post's author deletes alice's thread: its replies go with it.
    gone = (await api.delete(f"/v1/comments/{top['id']}", token=author.token)).ok()
    assert gone["replies_deleted"] == 2
    assert (await post_row(resources, post_id)).comment_count == 0
    listed = (await api.get(f"/v1/posts/{post_id}/comments", token=alice.token)).ok()
    assert listed["items"] == []
    (await api.get(f"/v1/comments/{top['id']}/replies", token=alice.token)).error(404)
    await assert_counters_true(resources, post_ids=(post_id,), comment_ids=(top["id"],))


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_replies_and_deletes_keep_counters_exact(api, resources):
    author, alice = await make_user(resources), await make_user(resources)
    repliers = [await make_user(resources) for _ in range(8)]
    post_id = await make_post(resources, author.user_id)
    top = await comment(api, post_id, alice)
    body = comments.CommentBody(text="同感", reply_to_comment_id=top["id"])
    made = await asyncio.gather(*[comments.create_comment(resources, r.user_id, post_id, body)
                                  for r in repliers])
    await asyncio.gather(*[comments.delete_comment(resources, r.user_id, m["id"])
                           for r, m in zip(repliers[:4], made[:4], strict=True)],
                         *[comments.create_comment(resources, r.user_id, post_id, body)
                           for r in repliers[4:]])
    await assert_counters_true(resources, post_ids=(post_id,), comment_ids=(top["id"],))
    assert (await comment_row(resources, top["id"])).reply_count == 8


@pytest.mark.gen_test(timeout=60)
async def test_blocked_users_do_not_see_each_others_comments(api, resources):
    author, alice, troll = [await make_user(resources) for _ in range(3)]
    post_id = await make_post(resources, author.user_id)
    nice = await comment(api, post_id, alice, "你好")
    nasty = await comment(api, post_id, troll, "哼")
    await comment(api, post_id, troll, "哼哼", reply_to=nice["id"])
    await block(resources, alice.user_id, troll.user_id)
    seen_by_alice = (await api.get(f"/v1/posts/{post_id}/comments", token=alice.token)).ok()
    assert [c["id"] for c in seen_by_alice["items"]] == [nice["id"]]
    assert seen_by_alice["items"][0]["replies"] == []
    seen_by_troll = (await api.get(f"/v1/posts/{post_id}/comments", token=troll.token)).ok()
    assert [c["id"] for c in seen_by_troll["items"]] == [nasty["id"]]
    # Neither can reply to or like the other's comments.
    (await api.post(f"/v1/posts/{post_id}/comments",
                    json={"text": "x", "reply_to_comment_id": nice["id"]},
                    token=troll.token)).error(404)
    (await api.post(f"/v1/comments/{nasty['id']}/like", token=alice.token)).error(404)
    seen_by_author = (await api.get(f"/v1/posts/{post_id}/comments", token=author.token)).ok()
    assert len(seen_by_author["items"]) == 2


@pytest.mark.gen_test(timeout=60)
async def test_the_word_filter_refuses_hard_words_and_holds_soft_ones(api, resources):
    author, alice, bob = [await make_user(resources) for _ in range(3)]
    post_id = await make_post(resources, author.user_id)
    (await api.post(f"/v1/posts/{post_id}/comments", json={"text": "来赌 博吧"},
                    token=alice.token)).error(422, code=42202, field="text")
    held = await comment(api, post_id, alice, "想要的私聊我")
    assert held["status"] == "pending"
    assert (await post_row(resources, post_id)).comment_count == 0
    mine = (await api.get(f"/v1/posts/{post_id}/comments", token=alice.token)).ok()
    assert [c["id"] for c in mine["items"]] == [held["id"]]
    assert (await api.get(f"/v1/posts/{post_id}/comments", token=bob.token)).ok()["items"] == []
    # Moderation passing it publishes it and counts it.
    async with resources.db.session() as session, session.begin():
        await comments.set_status(session, held["id"], "visible")
    assert (await post_row(resources, post_id)).comment_count == 1
    (await api.post(f"/v1/posts/{post_id}/comments", json={"text": "   "},
                    token=alice.token)).error(422, field="text")
    (await api.post(f"/v1/posts/{post_id}/comments", json={"text": "长" * 1001},
                    token=alice.token)).error(422, field="text")


@pytest.mark.gen_test(timeout=60)
async def test_comments_on_posts_you_cannot_see_are_404(api, resources):
    author, stranger = await make_user(resources), await make_user(resources)
    private = await make_post(resources, author.user_id, visibility="private")
    followers = await make_post(resources, author.user_id, visibility="followers")
    for post_id in (private, followers, 2**62):
        (await api.post(f"/v1/posts/{post_id}/comments", json={"text": "hi"},
                        token=stranger.token)).error(404)
        (await api.get(f"/v1/posts/{post_id}/comments", token=stranger.token)).error(404)
    own = await comment(api, private, author, "自己看")
    (await api.get(f"/v1/comments/{own['id']}/replies", token=stranger.token)).error(404)
    (await api.delete(f"/v1/comments/{own['id']}", token=stranger.token)).error(404)


@pytest.mark.gen_test(timeout=60)
async def test_comments_and_replies_notify_the_right_people(api, app, resources):
    author, alice, bob = [await make_user(resources) for _ in range(3)]
    post_id = await make_post(resources, author.user_id)
    async with capture_events(app, author.user_id) as to_author, \
            capture_events(app, alice.user_id) as to_alice:
        top = await comment(api, post_id, alice, "第一")
        await comment(api, post_id, bob, "同意", reply_to=top["id"])
    author_events, alice_events = await to_author.events(), await to_alice.events()
    assert_events_valid(author_events + alice_events)
    assert types_of(author_events) == ["notify.new"]
    assert author_events[0]["data"]["category"] == "comment"
    assert author_events[0]["data"]["payload"]["text"] == "第一"
    assert types_of(alice_events) == ["notify.new"]
    assert alice_events[0]["data"]["category"] == "reply"
    assert alice_events[0]["data"]["actors"][0]["id"] == bob.user_id
    # A reply to someone who can no longer see the post tells them nothing.
    private = await make_post(resources, author.user_id, visibility="private")
    mine = await comment(api, private, author, "备忘")
    await comment(api, private, author, "再记一笔", reply_to=mine["id"])
    async with resources.db.session() as session:
        rows = (await session.execute(select(Notification).where(
            Notification.user_id == author.user_id))).scalars().all()
    assert len(rows) == 1  # only alice's comment; own comments notify nobody
    assert (await comment_row(resources, mine["id"])).reply_count == 1
    assert isinstance(await comment_row(resources, mine["id"]), Comment)
