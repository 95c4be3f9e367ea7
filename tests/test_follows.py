"""Follows: idempotent follow/unfollow (also concurrent), the refusals, follower and following
lists by cursor, the profile counters and the follow notification."""
from __future__ import annotations

import asyncio

import pytest

from pawhome.community import follows
from tests.event_contract import assert_events_valid, capture_events, types_of
from tests.interactions_support import (
    assert_counters_true,
    block,
    follow_rows,
    make_post,
    make_user,
    stats,
)


@pytest.mark.gen_test(timeout=60)
async def test_follow_and_unfollow_are_idempotent_and_move_both_counters(api, resources):
    star, fan = await make_user(resources), await make_user(resources)
    results = await asyncio.gather(*[follows.set_following(resources, fan.user_id,
                                                           star.user_id, True)
                                     for _ in range(20)])
    assert sum(r["changed"] for r in results) == 1
    assert await follow_rows(resources, follower_id=fan.user_id) == 1
    assert (await stats(resources, star.user_id))["followers"] == 1
    assert (await stats(resources, fan.user_id))["following"] == 1
    again = (await api.post(f"/v1/users/{star.user_id}/follow", token=fan.token)).ok()
    assert again == {"following": True, "changed": False, "followers": 1}
    gone = (await api.delete(f"/v1/users/{star.user_id}/follow", token=fan.token)).ok()
    assert gone == {"following": False, "changed": True, "followers": 0}
    assert (await api.delete(f"/v1/users/{star.user_id}/follow",
                             token=fan.token)).ok()["changed"] is False
    await assert_counters_true(resources, user_ids=(star.user_id, fan.user_id))


@pytest.mark.gen_test(timeout=60)
async def test_mutual_follows_at_once_do_not_deadlock(resources):
    users = [await make_user(resources) for _ in range(6)]
    await asyncio.gather(*[follows.set_following(resources, a.user_id, b.user_id, True)
                           for a in users for b in users if a is not b])
    for user in users:
        assert await stats(resources, user.user_id) == {
            "followers": 5, "following": 5, "likes_received": 0, "posts": 0}


@pytest.mark.gen_test(timeout=60)
async def test_nobody_follows_themselves_an_unknown_user_or_across_a_block(api, resources):
    me, other, blocker = [await make_user(resources) for _ in range(3)]
    (await api.post(f"/v1/users/{me.user_id}/follow", token=me.token)).error(422,
                                                                             field="user_id")
    (await api.post(f"/v1/users/{2**62}/follow", token=me.token)).error(404)
    await block(resources, blocker.user_id, me.user_id)
    (await api.post(f"/v1/users/{blocker.user_id}/follow", token=me.token)).error(403)
    (await api.post(f"/v1/users/{me.user_id}/follow", token=blocker.token)).error(403)
    (await api.get(f"/v1/users/{blocker.user_id}/followers", token=me.token)).error(404)
    (await api.get(f"/v1/users/{blocker.user_id}/stats", token=me.token)).error(404)
    assert await follow_rows(resources, follower_id=me.user_id) == 0
    (await api.post(f"/v1/users/{other.user_id}/follow")).error(401)


@pytest.mark.gen_test(timeout=60)
async def test_follower_and_following_lists_page_most_recent_first(api, resources):
    star = await make_user(resources)
    fans = [await make_user(resources, f"fan{i}") for i in range(5)]
    for fan in fans:
        (await api.post(f"/v1/users/{star.user_id}/follow", token=fan.token)).ok()
    (await api.post(f"/v1/users/{fans[1].user_id}/follow", token=star.token)).ok()
    first = (await api.get(f"/v1/users/{star.user_id}/followers?limit=3",
                           token=fans[0].token)).ok()
    rest = (await api.get(f"/v1/users/{star.user_id}/followers?limit=3&cursor="
                          f"{first['nextCursor']}", token=fans[0].token)).ok()
    assert [u["id"] for u in first["items"] + rest["items"]] == \
        [f.user_id for f in reversed(fans)]
    assert rest["nextCursor"] is None
    following = (await api.get(f"/v1/users/{star.user_id}/following",
                               token=star.token)).ok()
    assert [u["id"] for u in following["items"]] == [fans[1].user_id]
    assert following["items"][0]["followed_by_me"] is True
    stats_view = (await api.get(f"/v1/users/{star.user_id}/stats", token=fans[1].token)).ok()
    assert stats_view["followers"] == 5 and stats_view["following"] == 1
    assert stats_view["followed_by_me"] is True and stats_view["follows_me"] is True


@pytest.mark.gen_test(timeout=60)
async def test_stats_count_posts_and_likes_received(api, resources):
    author, fan = await make_user(resources), await make_user(resources)
    post_ids = [await make_post(resources, author.user_id) for _ in range(2)]
    for post_id in post_ids:
        (await api.post(f"/v1/posts/{post_id}/like", token=fan.token)).ok()
    view = (await api.get(f"/v1/users/{author.user_id}/stats", token=fan.token)).ok()
    assert view == {"user_id": author.user_id, "followers": 0, "following": 0,
                    "likes_received": 2, "posts": 2, "followed_by_me": False,
                    "follows_me": False}


@pytest.mark.gen_test(timeout=60)
async def test_a_follow_notifies_the_followee(api, app, resources):
    star, fan = await make_user(resources), await make_user(resources)
    async with capture_events(app, star.user_id) as captured:
        (await api.post(f"/v1/users/{star.user_id}/follow", token=fan.token)).ok()
        (await api.delete(f"/v1/users/{star.user_id}/follow", token=fan.token)).ok()
        (await api.post(f"/v1/users/{star.user_id}/follow", token=fan.token)).ok()
    events = await captured.events()
    assert_events_valid(events)
    assert types_of(events) == ["notify.new", "notify.updated"]
    assert events[0]["data"]["category"] == "follow"
    assert events[-1]["data"]["actor_count"] == 1
