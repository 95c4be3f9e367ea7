"""Users' reports: once per reporter and target, only of what the reporter can see, and
enough distinct reports hide a post pending review."""
from __future__ import annotations

import pytest

from models.community import Comment, Post
from tests.test_moderation import make_comment, make_post, status_of


def report(target_type: str, target_id: int, reason: str = "spam", **extra) -> dict:
    return {"target_type": target_type, "target_id": target_id, "reason": reason, **extra}


@pytest.mark.gen_test(timeout=30)
async def test_second_report_of_the_same_target_by_the_same_user_conflicts(api, resources):
    author, reporter = await api.login(), await api.login()
    post_id = await make_post(resources, author.user_id, "帖子", status="visible")
    data = (await api.post("/v1/reports", json=report("post", post_id, detail="广告"),
                           token=reporter.token)).ok(201)
    assert data["status"] == "open" and data["target_hidden"] is False
    (await api.post("/v1/reports", json=report("post", post_id, "abuse"),
                    token=reporter.token)).error(409)


@pytest.mark.gen_test(timeout=30)
async def test_reporting_what_you_cannot_see_is_not_found(api, resources):
    author, reporter = await api.login(), await api.login()
    private = await make_post(resources, author.user_id, "私密", visibility="private",
                              status="visible")
    followers = await make_post(resources, author.user_id, "仅粉丝", visibility="followers",
                                status="visible")
    held = await make_post(resources, author.user_id, "待审", status="hidden")
    for post_id in (private, followers, held, 999999999):
        (await api.post("/v1/reports", json=report("post", post_id),
                        token=reporter.token)).error(404)
    visible = await make_post(resources, author.user_id, "公开", status="visible")
    hidden_comment = await make_comment(resources, visible, author.user_id, "隐藏评论",
                                        status="hidden")
    comment_on_private = await make_comment(resources, private, author.user_id, "评论")
    for comment_id in (hidden_comment, comment_on_private):
        (await api.post("/v1/reports", json=report("comment", comment_id),
                        token=reporter.token)).error(404)
    (await api.post("/v1/reports", json=report("user", 999999999),
                    token=reporter.token)).error(404)


@pytest.mark.gen_test(timeout=30)
async def test_report_body_is_validated_and_self_reports_refused(api, resources):
    reporter = await api.login()
    own = await make_post(resources, reporter.user_id, "自己的帖子", status="visible")
    (await api.post("/v1/reports", json=report("post", own, "because"),
                    token=reporter.token)).error(422, field="reason")
    (await api.post("/v1/reports", json=report("order", own), token=reporter.token)).error(
        422, field="target_type")
    (await api.post("/v1/reports", json=report("post", own, detail="x" * 501),
                    token=reporter.token)).error(422, field="detail")
    (await api.post("/v1/reports", json=report("post", own), token=reporter.token)).error(
        422, field="target_id")
    (await api.post("/v1/reports", json=report("user", reporter.user_id),
                    token=reporter.token)).error(422, field="target_id")
    (await api.post("/v1/reports", json=report("post", own))).error(401)


@pytest.mark.gen_test(timeout=30)
async def test_enough_distinct_reports_hide_a_post_pending_review(api, resources, settings):
    threshold = settings.moderation_report_hide_threshold
    author, other = await api.login(), await api.login()
    post_id = await make_post(resources, author.user_id, "被多人举报", status="visible")
    reporters = [await api.login() for _ in range(threshold)]
    hidden = []
    for reporter in reporters:
        data = (await api.post("/v1/reports", json=report("post", post_id),
                               token=reporter.token)).ok(201)
        hidden.append(data["target_hidden"])
    assert hidden == [False] * (threshold - 1) + [True]
    assert await status_of(resources, Post, post_id) == "hidden"
    # now nobody else can see it, so nobody else can report it either
    (await api.post("/v1/reports", json=report("post", post_id),
                    token=other.token)).error(404)


@pytest.mark.gen_test(timeout=30)
async def test_comments_and_users_can_be_reported(api, resources, settings):
    author, commenter, reporter = await api.login(), await api.login(), await api.login()
    post_id = await make_post(resources, author.user_id, "帖子", status="visible")
    comment_id = await make_comment(resources, post_id, commenter.user_id, "评论")
    (await api.post("/v1/reports", json=report("comment", comment_id, "abuse"),
                    token=reporter.token)).ok(201)
    (await api.post("/v1/reports", json=report("user", commenter.user_id, "abuse"),
                    token=reporter.token)).ok(201)
    assert await status_of(resources, Comment, comment_id) == "visible"
