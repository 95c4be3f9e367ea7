"""Feedback: a user sends feedback with images and device details and follows its status;
an admin lists, searches, replies (the user is notified, live), closes and reopens, each
transition on the timeline; and the refusals: someone else's ticket or images, ten images,
oversized or prohibited text, too many submissions, forged tokens, non-admins on admin
routes."""
from __future__ import annotations

import asyncio
import uuid

import jwt
import pytest
from sqlalchemy import func, select

from models.feedback import Feedback
from tests.catalogue_support import ready_media
from tests.event_contract import assert_events_valid, capture_events, types_of
from tests.test_auth_tokens import claims_for
from tests.test_product_reviews import notifications_of

ADMIN_PATHS = ("/v1/admin/feedback", "/v1/admin/feedback/{id}")
ADMIN_WRITES = (("/v1/admin/feedback/{id}/replies", {"text": "您好"}),
                ("/v1/admin/feedback/{id}/actions", {"action": "close"}))


def body(**over) -> dict:
    return {"category": "bug", "text": "下单页面点击支付没有反应，重试了三次", "contact": "13800000000",
            "app_version": "1.4.2", "device": {"brand": "Apple", "model": "iPhone 15",
                                               "system": "iOS 17.2", "platform": "ios"},
            **over}


async def send(api, user, **over) -> dict:
    return (await api.post("/v1/feedback", token=user.token, json=body(**over))).ok(201)


async def tickets_of(resources, user_id: int) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Feedback).where(
            Feedback.user_id == user_id))).scalar_one())


@pytest.mark.gen_test(timeout=60)
async def test_user_sends_feedback_with_images_and_follows_its_status(api, resources):
    user = await api.login()
    photos = [await ready_media(resources, user.user_id) for _ in range(9)]
    sent = await send(api, user, media_ids=photos, text="  图片加载很慢，附上截图  ")
    assert sent["status"] == "open" and sent["category"] == "bug"
    assert sent["category_label"] == "功能异常" and sent["text"] == "图片加载很慢，附上截图"
    assert [i["media_id"] for i in sent["images"]] == photos
    assert sent["device"]["model"] == "iPhone 15" and sent["app_version"] == "1.4.2"
    assert sent["replies"] == [] and "user" not in sent and "events" not in sent
    mine = (await api.get("/v1/feedback", token=user.token)).ok()
    assert [t["id"] for t in mine["items"]] == [sent["id"]] and mine["total"] == 1
    detail = (await api.get(f"/v1/feedback/{sent['id']}", token=user.token)).ok()
    assert detail["id"] == sent["id"] and detail["status"] == "open"
    assert (await api.get("/v1/feedback?status=closed", token=user.token)).ok()["items"] == []
    labels = (await api.get("/v1/feedback/categories")).ok()["items"]
    assert {"value": "suggestion", "label": "产品建议"} in labels


@pytest.mark.gen_test(timeout=60)
async def test_admin_reply_notifies_the_user_live_and_every_transition_is_recorded(
        api, app, resources):
    user, admin = await api.login(), await api.login(role="admin")
    ticket = await send(api, user)
    path = f"/v1/admin/feedback/{ticket['id']}"
    async with capture_events(app, user.user_id) as captured:
        replied = (await api.post(path + "/replies", token=admin.token,
                                  json={"text": "您好，已修复，请更新到 1.4.3"})).ok(201)
    assert replied["status"] == "replied" and replied["reply_count"] == 1
    assert replied["replies"][0]["staff_id"] == admin.user_id
    events = await captured.events()
    assert_events_valid(events)
    assert types_of(events) == ["notify.new"]
    assert events[0]["data"]["kind"] == "feedback_replied"
    assert events[0]["data"]["target_id"] == ticket["id"]
    [told] = await notifications_of(resources, user.user_id, "feedback_replied")
    assert told.category == "system" and told.target_type == "feedback"
    # The user sees the reply, not which admin wrote it.
    seen = (await api.get(f"/v1/feedback/{ticket['id']}", token=user.token)).ok()
    assert seen["status"] == "replied"
    assert [(r["text"], "staff_id" in r) for r in seen["replies"]] == \
        [("您好，已修复，请更新到 1.4.3", False)]
    closed = (await api.post(path + "/actions", token=admin.token,
                             json={"action": "close", "reason": "已解决"})).ok()
    assert closed["status"] == "closed" and closed["closed_at"]
    # Closed: no reply and no second close until reopened.
    (await api.post(path + "/replies", token=admin.token, json={"text": "再补充一句"})) \
        .error(409, code=40963, field="status")
    (await api.post(path + "/actions", token=admin.token, json={"action": "close"})) \
        .error(409, code=40963)
    reopened = (await api.post(path + "/actions", token=admin.token,
                               json={"action": "reopen"})).ok()
    assert reopened["status"] == "open" and reopened["closed_at"] is None
    (await api.post(path + "/actions", token=admin.token, json={"action": "reopen"})) \
        .error(409, code=40963)
    again = (await api.post(path + "/replies", token=admin.token,
                            json={"text": "补充：请清理缓存"})).ok(201)
    assert again["reply_count"] == 2
    timeline = [(e["action"], e["from"], e["to"], e["actor_type"]) for e in again["events"]]
    assert timeline == [("submit", "", "open", "user"), ("reply", "open", "replied", "admin"),
                        ("close", "replied", "closed", "admin"),
                        ("reopen", "closed", "open", "admin"),
                        ("reply", "open", "replied", "admin")]
    assert again["events"][2]["reason"] == "已解决"
    assert again["user"]["id"] == user.user_id
    assert len(await notifications_of(resources, user.user_id, "feedback_replied")) == 2


@pytest.mark.gen_test(timeout=60)
async def test_admin_lists_filters_and_searches_feedback(api, resources):
    alice, bob, admin = await api.login(), await api.login(), await api.login(role="admin")
    marker = uuid.uuid4().hex[:10]
    a = await send(api, alice, category="payment", text=f"支付失败 {marker}%，扣款 100 元")
    b = await send(api, bob, category="suggestion", text=f"建议增加夜间模式 {marker}",
                   contact=f"wx_{marker}")
    (await api.post(f"/v1/admin/feedback/{b['id']}/replies", token=admin.token,
                    json={"text": "感谢建议"})).ok(201)

    async def ids(query: str) -> list[int]:
        data = (await api.get("/v1/admin/feedback?" + query, token=admin.token)).ok()
        return [t["id"] for t in data["items"]]

    assert await ids(f"q={marker}") == [b["id"], a["id"]]
    assert await ids(f"q={marker}&status=replied") == [b["id"]]
    assert await ids(f"q={marker}&category=payment") == [a["id"]]
    assert await ids(f"q=wx_{marker}") == [b["id"]]  # the contact
    assert await ids(f"q={a['id']}") == [a["id"]]  # a ticket id
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    c = await send(api, alice, contact=phone)
    assert await ids(f"q={phone[-6:]}") == [c["id"]]  # part of a phone number
    assert await ids(f"q={marker}%25") == [a["id"]]  # % is a character, not a wildcard
    assert await ids(f"user_id={alice.user_id}") == [c["id"], a["id"]]
    listed = (await api.get(f"/v1/admin/feedback?user_id={alice.user_id}",
                            token=admin.token)).ok()["items"][0]
    assert listed["user"]["id"] == alice.user_id
    (await api.get("/v1/admin/feedback?status=lost", token=admin.token)).error(422,
                                                                              field="status")
    detail = (await api.get(f"/v1/admin/feedback/{a['id']}", token=admin.token)).ok()
    assert detail["events"][0]["action"] == "submit"
    (await api.get("/v1/admin/feedback/999999999999", token=admin.token)).error(404)


@pytest.mark.gen_test(timeout=60)
async def test_someone_elses_feedback_and_images_are_not_yours(api, resources):
    alice, mallory = await api.login(), await api.login()
    ticket = await send(api, alice)
    (await api.get(f"/v1/feedback/{ticket['id']}", token=mallory.token)).error(404)
    assert (await api.get("/v1/feedback", token=mallory.token)).ok()["items"] == []
    alices_photo = await ready_media(resources, alice.user_id)
    (await api.post("/v1/feedback", token=mallory.token,
                    json=body(media_ids=[alices_photo]))).error(422, field="media_ids.0")
    pending = await ready_media(resources, mallory.user_id, status="processing")
    video = await ready_media(resources, mallory.user_id, kind="video")
    mine = await ready_media(resources, mallory.user_id)
    for media_ids, field in (([mine, pending], "media_ids.1"), ([video], "media_ids.0"),
                             ([mine, mine], "media_ids.1")):
        (await api.post("/v1/feedback", token=mallory.token,
                        json=body(media_ids=media_ids))).error(422, field=field)
    assert await tickets_of(resources, mallory.user_id) == 0


@pytest.mark.gen_test(timeout=60)
async def test_malformed_oversized_and_prohibited_feedback_is_refused(api, resources):
    user = await api.login()
    photos = [await ready_media(resources, user.user_id) for _ in range(10)]
    cases = [({"media_ids": photos}, "media_ids"), ({"text": "好" * 1001}, "text"),
             ({"text": "太短"}, "text"), ({"text": "     \n   "}, "text"),
             ({"category": "praise"}, "category"), ({"contact": "x" * 65}, "contact"),
             ({"contact": "a\u0007b"}, "contact"), ({"app_version": "1.0<script>"}, "app_version"),
             ({"device": {"model": "m" * 65}}, "device.model"),
             ({"device": {"imei": "123"}}, "device.imei"), ({"stars": 5}, "stars"),
             ({"media_ids": [0]}, "media_ids.0")]
    for over, field in cases:
        (await api.post("/v1/feedback", token=user.token, json=body(**over))) \
            .error(422, field=field)
    (await api.post("/v1/feedback", token=user.token, json=body(text="你们这里有人网赌吗？"))) \
        .error(422, code=42202, field="text")
    (await api.post("/v1/feedback", token=user.token, body=b"{not json")).error(400)
    (await api.post("/v1/feedback", token=user.token, body=b'{"text": "' + b"x" * 2_000_000
                    + b'"}')).error(413)
    assert await tickets_of(resources, user.user_id) == 0


@pytest.mark.gen_test(timeout=60)
async def test_submissions_are_limited_per_hour(api, resources, settings):
    user = await api.login()
    for n in range(settings.feedback_per_hour):
        await send(api, user, text=f"第 {n} 条反馈内容")
    refused = await api.post("/v1/feedback", token=user.token, json=body())
    refused.error(429)
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    assert await tickets_of(resources, user.user_id) == settings.feedback_per_hour
    other = await api.login()  # the limit is per user
    await send(api, other)


@pytest.mark.gen_test(timeout=60)
async def test_a_double_submit_with_one_idempotency_key_makes_one_ticket(api, resources):
    user = await api.login()
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    replies = await asyncio.gather(*(api.post("/v1/feedback", token=user.token, json=body(),
                                              headers=headers) for _ in range(3)))
    made = {r.json["data"]["id"] for r in replies if r.status == 201}
    assert len(made) == 1 and all(r.status in (201, 409) for r in replies)
    assert await tickets_of(resources, user.user_id) == 1


@pytest.mark.gen_test(timeout=60)
async def test_admin_routes_refuse_users_and_forged_tokens(api, settings):
    user = await api.login()
    ticket = await send(api, user)
    forged_admin = jwt.encode(claims_for(user.user_id, role="admin"), "not-our-secret-" * 3,
                              "HS256")
    for path in ADMIN_PATHS:
        path = path.format(id=ticket["id"])
        (await api.get(path, token=user.token)).error(403)
        (await api.get(path)).error(401)
        (await api.get(path, token=forged_admin)).error(401, code=40102)
    for path, payload in ADMIN_WRITES:
        path = path.format(id=ticket["id"])
        (await api.post(path, token=user.token, json=payload)).error(403)
        (await api.post(path, token=forged_admin, json=payload)).error(401, code=40102)
    (await api.get("/v1/feedback", token=user.token[:-4] + "AAAA")).error(401)
    seen = (await api.get(f"/v1/feedback/{ticket['id']}", token=user.token)).ok()
    assert seen["status"] == "open" and seen["replies"] == []


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_submits_at_the_limit_make_exactly_the_allowed_number(api, resources,
                                                                             settings):
    user = await api.login()
    for n in range(settings.feedback_per_hour - 2):
        await send(api, user, text=f"第 {n} 条反馈内容")
    replies = await asyncio.gather(*(api.post("/v1/feedback", token=user.token,
                                              json=body(text=f"同时发送的反馈 {n}"))
                                     for n in range(6)))
    assert sorted(r.status for r in replies) == [201, 201, 429, 429, 429, 429]
    assert await tickets_of(resources, user.user_id) == settings.feedback_per_hour
