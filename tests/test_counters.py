"""Counters: relative bumps, and the reconciliation that recounts every counter from its rows,
repairs drift (also while likes pour in, without breaking them) and reports what it fixed."""
from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update

from models.community import Comment, Post, UserStats
from pawhome.community import comments, counters, favorites, likes
from settings import get_settings
from tests.interactions_support import (
    assert_counters_true,
    comment_row,
    follow_row,
    make_post,
    make_user,
    post_row,
    stats,
    stats_row,
)
from workers import runtime
from workers.default import reconcile_counters, reconcile_counters_now
from workers.schedule import beat_schedule


def repaired_metric(kind: str) -> float:
    return REGISTRY.get_sample_value("pawhome_counters_repaired_total", {"kind": kind}) or 0.0


@pytest.mark.gen_test(timeout=30)
async def test_bump_creates_the_row_and_moves_counters_relatively(resources):
    user = await make_user(resources)
    assert await stats_row(resources, user.user_id) is None
    async with resources.db.session() as session, session.begin():
        await counters.bump(session, user.user_id, posts=+1, followers=+2)
    async with resources.db.session() as session, session.begin():
        await counters.bump(session, user.user_id, posts=+1, followers=-1)
    assert await stats(resources, user.user_id) == {"followers": 1, "following": 0,
                                                    "likes_received": 0, "posts": 2}
    with pytest.raises(ValueError):
        async with resources.db.session() as session:
            await counters.bump(session, user.user_id, karma=+1)


@pytest.mark.gen_test(timeout=60)
async def test_reconciliation_repairs_drift_introduced_by_hand(resources):
    author, fan, other = [await make_user(resources) for _ in range(3)]
    post_id = await make_post(resources, author.user_id)
    await likes.set_like(resources, fan.user_id, "post", post_id, True)
    await favorites.set_favorite(resources, fan.user_id, post_id, True)
    top = await comments.create_comment(resources, fan.user_id, post_id,
                                        comments.CommentBody(text="好"))
    await comments.create_comment(resources, other.user_id, post_id, comments.CommentBody(
        text="嗯", reply_to_comment_id=top["id"]))
    await likes.set_like(resources, author.user_id, "comment", top["id"], True)
    await follow_row(resources, fan.user_id, author.user_id)

    async with resources.db.session() as session, session.begin():
        await session.execute(update(Post).where(Post.id == post_id).values(
            like_count=99, comment_count=0, favorite_count=-3))
        await session.execute(update(Comment).where(Comment.id == top["id"]).values(
            like_count=7, reply_count=0))
        await session.execute(update(UserStats).where(UserStats.user_id == author.user_id)
                              .values(likes_received=0, followers=10, posts=5))
    before = repaired_metric("post")

    report = await reconcile_counters_now(resources)
    assert report["fixed"]["post"] >= 1 and report["fixed"]["comment"] >= 1
    assert report["fixed"]["user_stats"] >= 1
    assert repaired_metric("post") >= before + 1
    post = await post_row(resources, post_id)
    assert (post.like_count, post.comment_count, post.favorite_count) == (1, 2, 1)
    comment = await comment_row(resources, top["id"])
    assert (comment.like_count, comment.reply_count) == (1, 1)
    assert await stats(resources, author.user_id) == {
        "followers": 1, "following": 0, "likes_received": 1, "posts": 1}
    assert await stats(resources, fan.user_id) == {
        "followers": 0, "following": 1, "likes_received": 1, "posts": 0}
    # Repaired means repaired: the next pass finds nothing of ours to fix.
    await assert_counters_true(resources, post_ids=(post_id,), comment_ids=(top["id"],),
                               user_ids=(author.user_id, fan.user_id, other.user_id))


@pytest.mark.gen_test(timeout=60)
async def test_a_user_without_a_stats_row_gets_one_when_rows_say_so(resources):
    star, fan = await make_user(resources), await make_user(resources)
    await follow_row(resources, fan.user_id, star.user_id)
    async with resources.db.session() as session, session.begin():
        await session.delete(await session.get(UserStats, star.user_id))
    await reconcile_counters_now(resources)
    assert (await stats(resources, star.user_id))["followers"] == 1


@pytest.mark.gen_test(timeout=120)
async def test_reconciliation_during_a_like_storm_leaves_counters_exact(resources):
    author = await make_user(resources)
    post_id = await make_post(resources, author.user_id)
    fans = [await make_user(resources) for _ in range(60)]
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Post).where(Post.id == post_id).values(like_count=500))

    async def reconcile_repeatedly() -> None:
        for _ in range(3):
            await counters.reconcile_all(resources.db, batch_size=200)

    await asyncio.gather(reconcile_repeatedly(), *[
        likes.set_like(resources, fan.user_id, "post", post_id, True) for fan in fans])
    await counters.reconcile_all(resources.db, batch_size=200)
    post = await post_row(resources, post_id)
    assert post.like_count == 60
    await assert_counters_true(resources, post_ids=(post_id,), user_ids=(author.user_id,))


def test_the_reconciliation_runs_on_beat():
    entry = beat_schedule(get_settings())["reconcile-counters"]
    assert entry["task"] == "default.reconcile_counters"
    assert entry["schedule"] == get_settings().counter_reconcile_seconds


def test_the_beat_task_repairs_drift_in_a_worker_process_runtime():
    """The task body as a worker runs it: its own loop and resources (workers/runtime.py)."""
    from pawhome.platform.resources import Resources

    async def make_drift() -> int:
        resources = Resources(get_settings())
        try:
            author = await make_user(resources)
            post_id = await make_post(resources, author.user_id)
            async with resources.db.session() as session, session.begin():
                await session.execute(update(Post).where(Post.id == post_id)
                                      .values(like_count=3, share_count=4))
            return post_id
        finally:
            await resources.close()

    post_id = asyncio.run(make_drift())
    try:
        result = reconcile_counters.apply().get()
        assert result["fixed"]["post"] >= 1
        post = runtime.run(post_row(runtime.resources(), post_id))
    finally:
        runtime.close()
    assert post.like_count == 0
    assert post.share_count == 4  # shares are an event count, not rows: left alone
