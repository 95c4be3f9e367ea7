"""The admin moderation queue: listing held and reported content, approving, rejecting with
a reason (the author is told over the socket and in the notification centre), roles."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models.community import Comment, Post, Report
from models.realtime import Notification
from tests.event_contract import assert_events_valid, capture_events
from tests.test_moderation import make_comment, make_post, status_of, visible_to_other


@pytest.mark.gen_test(timeout=30)
async def test_queue_and_decisions_need_the_admin_role(api, resources):
    user = await api.login()
    post_id = await make_post(resources, user.user_id, "x", status="hidden")
    (await api.get("/v1/admin/moderation", token=user.token)).error(403)
    (await api.post(f"/v1/admin/moderation/post/{post_id}/approve", token=user.token)).error(403)
    (await api.post(f"/v1/admin/moderation/post/{post_id}/reject", json={"reason": "x"},
                    token=user.token)).error(403)
    (await api.get("/v1/admin/moderation")).error(401)
    assert await status_of(resources, Post, post_id) == "hidden"


@pytest.mark.gen_test(timeout=30)
async def test_approve_publishes_a_held_post_and_tells_the_author(api, app, resources):
    author, other = await api.login(), await api.login()
    admin = await api.login(role="admin")
    post_id = await make_post(resources, author.user_id, "等待审核", status="hidden")
    queue = (await api.get("/v1/admin/moderation?kind=post&state=hidden&limit=100",
                           token=admin.token)).ok()
    assert post_id in [i["target_id"] for i in queue["items"]]
    async with capture_events(app, author.user_id) as captured:
        data = (await api.post(f"/v1/admin/moderation/post/{post_id}/approve",
                               token=admin.token)).ok()
    assert data["status"] == "visible"
    events = await captured.events()
    assert_events_valid(events)
    assert [(e["type"], e["data"]["status"]) for e in events] == [("post.status", "visible")]
    assert await visible_to_other(resources, other.user_id, post_id)
    queue = (await api.get("/v1/admin/moderation?kind=post&state=hidden&limit=100",
                           token=admin.token)).ok()
    assert post_id not in [i["target_id"] for i in queue["items"]]


@pytest.mark.gen_test(timeout=30)
async def test_reject_removes_the_post_and_notifies_the_author_with_the_reason(api, app,
                                                                            resources):
    author, other = await api.login(), await api.login()
    admin = await api.login(role="admin")
    post_id = await make_post(resources, author.user_id, "违规内容", status="visible")
    async with capture_events(app, author.user_id) as captured:
        (await api.post(f"/v1/admin/moderation/post/{post_id}/reject",
                        json={"reason": "广告引流"}, token=admin.token)).ok()
    events = await captured.events()
    assert_events_valid(events)
    kinds = [(e["type"], e["data"].get("status") or e["data"].get("kind")) for e in events]
    assert ("post.status", "removed") in kinds and ("notify.new", "moderation.post_removed") \
        in kinds
    assert not await visible_to_other(resources, other.user_id, post_id)
    async with resources.db.session() as session:
        note = (await session.execute(select(Notification).where(
            Notification.user_id == author.user_id,
            Notification.target_id == post_id))).scalar_one()
        post = await session.get(Post, post_id)
    assert note.category == "system" and note.payload["reason"] == "广告引流"
    assert post.status_reason == "广告引流"
    listed = (await api.get("/v1/notifications", token=author.token)).ok()
    assert any("广告引流" in n["text"] for n in listed["items"])


@pytest.mark.gen_test(timeout=30)
async def test_reject_needs_a_reason_and_a_known_target(api, resources):
    author = await api.login()
    admin = await api.login(role="admin")
    post_id = await make_post(resources, author.user_id, "x", status="hidden")
    (await api.post(f"/v1/admin/moderation/post/{post_id}/reject", json={},
                    token=admin.token)).error(422, field="reason")
    (await api.post(f"/v1/admin/moderation/post/{post_id}/reject", json={"reason": ""},
                    token=admin.token)).error(422, field="reason")
    (await api.post(f"/v1/admin/moderation/video/{post_id}/approve",
                    token=admin.token)).error(404)
    (await api.post("/v1/admin/moderation/post/999999999/approve", token=admin.token)).error(404)
    (await api.get("/v1/admin/moderation?kind=post&state=bogus", token=admin.token)).error(422)


@pytest.mark.gen_test(timeout=30)
async def test_comment_decisions_emit_comment_status_and_notify(api, app, resources):
    author, commenter = await api.login(), await api.login()
    admin = await api.login(role="admin")
    post_id = await make_post(resources, author.user_id, "帖子", status="visible")
    comment_id = await make_comment(resources, post_id, commenter.user_id, "待审评论",
                                    status="hidden")
    queue = (await api.get("/v1/admin/moderation?kind=comment&state=hidden&limit=100",
                           token=admin.token)).ok()
    assert comment_id in [i["target_id"] for i in queue["items"]]
    async with capture_events(app, commenter.user_id) as captured:
        (await api.post(f"/v1/admin/moderation/comment/{comment_id}/approve",
                        token=admin.token)).ok()
        (await api.post(f"/v1/admin/moderation/comment/{comment_id}/reject",
                        json={"reason": "辱骂"}, token=admin.token)).ok()
    events = await captured.events()
    assert_events_valid(events)
    statuses = [e["data"]["status"] for e in events if e["type"] == "comment.status"]
    assert statuses == ["visible", "removed"]
    assert "notify.new" in [e["type"] for e in events]
    assert await status_of(resources, Comment, comment_id) == "removed"


@pytest.mark.gen_test(timeout=30)
async def test_reported_content_is_listed_with_report_counts_and_reports_close(api, resources):
    author = await api.login()
    admin = await api.login(role="admin")
    reporters = [await api.login() for _ in range(2)]
    post_id = await make_post(resources, author.user_id, "被举报的帖子", status="visible")
    for reporter in reporters:
        (await api.post("/v1/reports", json={"target_type": "post", "target_id": post_id,
                                             "reason": "spam"}, token=reporter.token)).ok(201)
    queue = (await api.get("/v1/admin/moderation?kind=post&state=reported&limit=100",
                           token=admin.token)).ok()
    item = next(i for i in queue["items"] if i["target_id"] == post_id)
    assert item["report_count"] == 2
    (await api.post(f"/v1/admin/moderation/post/{post_id}/approve", token=admin.token)).ok()
    async with resources.db.session() as session:
        states = set((await session.execute(select(Report.status).where(
            Report.target_type == "post", Report.target_id == post_id))).scalars())
    assert states == {"dismissed"}
    queue = (await api.get("/v1/admin/moderation?kind=post&state=reported&limit=100",
                           token=admin.token)).ok()
    assert post_id not in [i["target_id"] for i in queue["items"]]


@pytest.mark.gen_test(timeout=30)
async def test_reported_users_are_listed_and_can_be_banned(api, resources):
    target, reporter = await api.login(), await api.login()
    admin = await api.login(role="admin")
    (await api.post("/v1/reports", json={"target_type": "user", "target_id": target.user_id,
                                         "reason": "fraud", "detail": "骗钱"},
                    token=reporter.token)).ok(201)
    queue = (await api.get("/v1/admin/moderation?kind=user&state=reported&limit=100",
                           token=admin.token)).ok()
    assert target.user_id in [i["target_id"] for i in queue["items"]]
    (await api.post(f"/v1/admin/users/{target.user_id}/ban", json={"reason": "fraud"},
                    token=admin.token)).ok()
    (await api.get("/v1/users/me", token=target.token)).error(401)
