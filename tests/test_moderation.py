"""Moderation: the word-filter screen, WeChat text and image checks, the push callback, the
state machine of posts and comments, and the openid-freshness fallback to the review queue."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import select, update

from models.base import utcnow
from models.community import Comment, Post
from models.media import Media
from models.users import User
from pawhome.community import posts
from pawhome.moderation import reviews as moderation
from pawhome.platform.errors import NotFound, SensitiveContent
from tests.event_contract import assert_events_valid, capture_events, types_of
from tests.fixtures_worker import wait_until
from tests.media_helpers import worker_variants

PUSH = "/v1/wechat/push"


# -- helpers -----------------------------------------------------------------------------------

async def make_post(resources, author_id: int, text: str, media_ids=(),
                    visibility: str = "public", status: str = "pending") -> int:
    async with resources.db.session() as session, session.begin():
        post = Post(author_id=author_id, text=text, media_ids=list(media_ids),
                    media_kind="image" if media_ids else "none", visibility=visibility,
                    status=status)
        session.add(post)
        await session.flush()
        return post.id


async def make_image(resources, owner_id: int) -> int:
    key = f"test/{uuid.uuid4().hex}.jpg"
    async with resources.db.session() as session, session.begin():
        media = Media(owner_id=owner_id, kind="image", status="ready", storage_key=key,
                      content_type="image/jpeg", size=1000, width=800, height=600,
                      variants=worker_variants(key + "."))
        session.add(media)
        await session.flush()
        return media.id


async def make_comment(resources, post_id: int, author_id: int, text: str,
                       status: str = "visible") -> int:
    async with resources.db.session() as session, session.begin():
        comment = Comment(post_id=post_id, author_id=author_id, text=text, status=status)
        session.add(comment)
        await session.flush()
        return comment.id


async def status_of(resources, model, row_id: int) -> str:
    async with resources.db.session() as session:
        return (await session.execute(select(model.status).where(model.id == row_id))).scalar()


async def media_moderation(resources, media_id: int) -> str:
    async with resources.db.session() as session:
        return (await session.get(Media, media_id)).moderation


async def last_login_hours_ago(resources, user_id: int, hours: float) -> None:
    async with resources.db.session() as session, session.begin():
        await session.execute(update(User).where(User.id == user_id).values(
            last_login_at=utcnow() - dt.timedelta(hours=hours)))


async def visible_to_other(resources, viewer_id: int, post_id: int) -> bool:
    async with resources.db.session() as session:
        try:
            await posts.get_visible_post(session, viewer_id, post_id)
        except NotFound:
            return False
        listed = (await session.execute(select(Post.id).where(
            posts.visible_to(viewer_id), Post.id == post_id))).scalar()
        return listed is not None


# -- the synchronous screen ---------------------------------------------------------------------

def test_screen_text_refuses_a_hard_word_naming_the_field_and_the_word():
    with pytest.raises(SensitiveContent) as caught:
        moderation.screen_text("一起来 賭 博", "text")
    error = caught.value
    assert error.status == 422
    assert error.errors[0]["field"] == "text" and "赌博" in error.errors[0]["message"]


def test_screen_text_returns_soft_hits_and_nothing_for_clean_text():
    assert moderation.screen_text("有事加 微 信", "text") == ["加微信"]
    assert moderation.screen_text("我家柯基好可爱", "text") == []


# -- posts: text ---------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=30)
async def test_clean_post_of_a_fresh_user_passes_wechat_and_becomes_visible(api, app, resources,
                                                                           wechat):
    author, other = await api.login(), await api.login()
    post_id = await make_post(resources, author.user_id, "我家柯基今天学会了握手")
    async with capture_events(app, author.user_id) as captured:
        assert await moderation.review_post(resources, post_id) == "visible"
    events = await captured.events()
    assert_events_valid(events)
    assert {"type": "post.status", "data": {"post_id": post_id, "status": "visible",
                                            "reason": ""}}.items() <= {
        "type": events[-1]["type"], "data": events[-1]["data"]}.items()
    call = wechat.requests_to("/wxa/msg_sec_check")[-1]
    assert call.body == {"version": 2, "openid": author.openid, "scene": 3,
                         "content": "我家柯基今天学会了握手"}
    assert call.query["access_token"]
    assert await visible_to_other(resources, other.user_id, post_id)


@pytest.mark.gen_test(timeout=30)
async def test_risky_text_removes_the_post_and_others_never_see_it(api, app, resources, wechat):
    author, other = await api.login(), await api.login()
    post_id = await make_post(resources, author.user_id, "看这个 FAKE_RISKY 链接")
    async with capture_events(app, author.user_id) as captured:
        assert await moderation.review_post(resources, post_id) == "removed"
    events = await captured.events()
    assert types_of(events) == ["post.status"]
    assert events[0]["data"]["status"] == "removed" and "20002" in events[0]["data"]["reason"]
    assert not await visible_to_other(resources, other.user_id, post_id)
    async with resources.db.session() as session:  # the author still sees it, with reason
        assert (await posts.get_visible_post(session, author.user_id, post_id)).status_reason


@pytest.mark.gen_test(timeout=30)
async def test_review_verdict_holds_the_post_hidden_for_an_admin(api, resources, wechat):
    author, other = await api.login(), await api.login()
    admin = await api.login(role="admin")
    post_id = await make_post(resources, author.user_id, "FAKE_REVIEW 这段话要人工看")
    assert await moderation.review_post(resources, post_id) == "hidden"
    assert not await visible_to_other(resources, other.user_id, post_id)
    queue = (await api.get("/v1/admin/moderation?kind=post&state=hidden&limit=100",
                           token=admin.token)).ok()
    item = next(i for i in queue["items"] if i["target_id"] == post_id)
    assert item["last_check"]["provider"] == "wechat_text"
    assert item["last_check"]["suggest"] == "review"


@pytest.mark.gen_test(timeout=30)
async def test_soft_word_holds_the_post_without_asking_wechat(api, resources, wechat):
    author = await api.login()
    post_id = await make_post(resources, author.user_id, "出柯基幼崽，加 V 信也行，加微信详聊")
    assert await moderation.review_post(resources, post_id) == "hidden"
    assert wechat.requests_to("/wxa/msg_sec_check") == []


@pytest.mark.gen_test(timeout=30)
async def test_stale_openid_goes_to_own_checks_and_the_review_queue(api, resources, wechat):
    author = await api.login()
    admin = await api.login(role="admin")
    await last_login_hours_ago(resources, author.user_id, 3)
    post_id = await make_post(resources, author.user_id, "很干净的一段话")
    assert await moderation.review_post(resources, post_id) == "hidden"
    assert wechat.requests_to("/wxa/msg_sec_check") == []  # WeChat would have refused
    queue = (await api.get("/v1/admin/moderation?kind=post&state=hidden&limit=100",
                           token=admin.token)).ok()
    item = next(i for i in queue["items"] if i["target_id"] == post_id)
    assert item["last_check"]["label"] == "unverified"
    assert item["status_reason"] == "held for review (unverified)"


@pytest.mark.gen_test(timeout=30)
async def test_user_without_openid_is_never_sent_to_wechat(api, resources, wechat):
    author = await api.login()
    async with resources.db.session() as session, session.begin():
        await session.execute(update(User).where(User.id == author.user_id).values(openid=None))
    post_id = await make_post(resources, author.user_id, "没有 openid 的用户")
    assert await moderation.review_post(resources, post_id) == "hidden"
    assert wechat.requests_to("/wxa/msg_sec_check") == []


@pytest.mark.gen_test(timeout=30)
async def test_a_second_review_of_the_same_text_reuses_the_verdict(api, resources, wechat):
    author = await api.login()
    post_id = await make_post(resources, author.user_id, "同一段文字只查一次")
    assert await moderation.review_post(resources, post_id) == "visible"
    async with resources.db.session() as session, session.begin():
        await posts.set_status(session, post_id, "pending")
    assert await moderation.review_post(resources, post_id) == "visible"
    assert len(wechat.requests_to("/wxa/msg_sec_check")) == 1


@pytest.mark.gen_test(timeout=30)
async def test_wechat_outage_is_raised_for_the_task_to_retry(api, resources, wechat):
    from pawhome.platform.errors import WeChatUnavailable

    author = await api.login()
    post_id = await make_post(resources, author.user_id, "微信挂了")
    wechat.fail_next("/wxa/msg_sec_check", status=502, body="<html>bad gateway</html>")
    with pytest.raises(WeChatUnavailable):
        await moderation.review_post(resources, post_id)
    assert await status_of(resources, Post, post_id) == "pending"
    assert await moderation.review_post(resources, post_id) == "visible"  # the retry


# -- posts with images and the push callback ------------------------------------------------------

async def push(api, wechat, trace_id: str, suggest: str, label: int = 100, **kw):
    query, body = wechat.media_check_push(trace_id, suggest, label, **kw)
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return await api.post(f"{PUSH}?{qs}", json=body)


@pytest.mark.gen_test(timeout=30)
async def test_post_with_images_waits_for_every_image_verdict(api, resources, wechat):
    author, other = await api.login(), await api.login()
    first, second = await make_image(resources, author.user_id), \
        await make_image(resources, author.user_id)
    post_id = await make_post(resources, author.user_id, "两张柯基照片", [first, second])
    assert await moderation.review_post(resources, post_id) == "pending"
    checks = wechat.requests_to("/wxa/media_check_async")
    assert len(checks) == 2
    assert all(c.body["media_type"] == 2 and c.body["version"] == 2 and
               c.body["openid"] == author.openid and c.body["media_url"].endswith(".w1080.jpg")
               for c in checks)
    trace_ids = list(wechat.media_checks)
    assert not await visible_to_other(resources, other.user_id, post_id)

    reply = await push(api, wechat, trace_ids[0], "pass")
    assert reply.status == 200 and reply.body == b"success"
    assert await moderation.review_post(resources, post_id) == "pending"  # one still due
    assert not await visible_to_other(resources, other.user_id, post_id)

    await push(api, wechat, trace_ids[1], "pass")
    assert await moderation.review_post(resources, post_id) == "visible"
    assert await visible_to_other(resources, other.user_id, post_id)
    assert len(wechat.requests_to("/wxa/media_check_async")) == 2  # no second check


@pytest.mark.gen_test(timeout=30)
async def test_risky_image_verdict_arriving_later_takes_down_a_visible_post(api, app, resources,
                                                                           wechat):
    author, other = await api.login(), await api.login()
    admin = await api.login(role="admin")
    image = await make_image(resources, author.user_id)
    post_id = await make_post(resources, author.user_id, "一张照片", [image])
    assert await moderation.review_post(resources, post_id) == "pending"
    trace_id = list(wechat.media_checks)[-1]
    # An admin published it before WeChat answered ...
    (await api.post(f"/v1/admin/moderation/post/{post_id}/approve", token=admin.token)).ok()
    assert await visible_to_other(resources, other.user_id, post_id)
    # ... and WeChat's verdict, 30 minutes later, says risky: it comes down at once.
    async with capture_events(app, author.user_id) as captured:
        assert (await push(api, wechat, trace_id, "risky", 20002)).status == 200
    events = await captured.events()
    assert [(e["type"], e["data"]["status"]) for e in events] == [("post.status", "removed")]
    assert await media_moderation(resources, image) == "risky"
    assert not await visible_to_other(resources, other.user_id, post_id)


@pytest.mark.gen_test(timeout=30)
async def test_review_image_verdict_holds_the_post(api, resources, wechat):
    author = await api.login()
    image = await make_image(resources, author.user_id)
    post_id = await make_post(resources, author.user_id, "照片待审", [image])
    await moderation.review_post(resources, post_id)
    await push(api, wechat, list(wechat.media_checks)[-1], "review", 21000)
    assert await media_moderation(resources, image) == "review"
    assert await moderation.review_post(resources, post_id) == "hidden"


@pytest.mark.gen_test(timeout=30)
async def test_an_image_whose_verdict_never_comes_goes_to_review_and_a_late_push_is_ignored(
        api, resources, wechat):
    author, other = await api.login(), await api.login()
    image = await make_image(resources, author.user_id)
    post_id = await make_post(resources, author.user_id, "等不到结果的照片", [image])
    assert await moderation.review_post(resources, post_id) == "pending"
    trace_id = list(wechat.media_checks)[-1]
    assert await moderation.expire_media_checks(resources) == 0  # not overdue yet
    overdue = utcnow() + dt.timedelta(
        seconds=resources.settings.moderation_media_check_timeout_seconds + 1)
    # (other tests' unanswered checks in this database are overdue too)
    assert await moderation.expire_media_checks(resources, now=overdue) >= 1
    assert await media_moderation(resources, image) == "review"
    assert await moderation.review_post(resources, post_id) == "hidden"  # for an admin
    assert not await visible_to_other(resources, other.user_id, post_id)
    await push(api, wechat, trace_id, "pass")  # WeChat after all, too late to count
    assert await media_moderation(resources, image) == "review"
    assert await moderation.expire_media_checks(resources, now=overdue) == 0  # done once


@pytest.mark.gen_test(timeout=30)
async def test_stale_openid_marks_images_for_review_without_asking_wechat(api, resources,
                                                                        wechat):
    author = await api.login()
    image = await make_image(resources, author.user_id)
    await last_login_hours_ago(resources, author.user_id, 3)
    assert await moderation.review_media(resources, image) == "review"
    assert wechat.requests_to("/wxa/media_check_async") == []


@pytest.mark.gen_test(timeout=30)
async def test_push_with_a_bad_signature_is_refused(api, resources, wechat):
    author = await api.login()
    image = await make_image(resources, author.user_id)
    await moderation.review_media(resources, image)
    trace_id = list(wechat.media_checks)[-1]
    query, body = wechat.media_check_push(trace_id, "pass", token="not-our-token")
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    (await api.post(f"{PUSH}?{qs}", json=body)).error(403)
    (await api.post(PUSH, json=body)).error(403)  # no signature at all
    assert await media_moderation(resources, image) == "pending"


@pytest.mark.gen_test(timeout=30)
async def test_url_verification_echoes_echostr_only_with_a_valid_signature(api, wechat):
    query, _ = wechat.media_check_push("any")
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    reply = await api.get(f"{PUSH}?{qs}&echostr=hello123")
    assert reply.status == 200 and reply.body == b"hello123"
    forged = qs.replace(query["nonce"], "other-nonce")
    (await api.get(f"{PUSH}?{forged}&echostr=hello123")).error(403)


@pytest.mark.gen_test(timeout=30)
async def test_unknown_trace_id_and_a_repeated_push_are_ignored(api, resources, wechat):
    reply = await push(api, wechat, "no-such-trace", "risky", 20002)
    assert reply.status == 200 and reply.body == b"success"
    author = await api.login()
    image = await make_image(resources, author.user_id)
    await moderation.review_media(resources, image)
    trace_id = list(wechat.media_checks)[-1]
    await push(api, wechat, trace_id, "pass")
    assert (await push(api, wechat, trace_id, "risky", 20002)).status == 200  # a late repeat
    assert await media_moderation(resources, image) == "pass"


@pytest.mark.gen_test(timeout=30)
async def test_encrypted_push_is_refused_as_unsupported(api, wechat):
    query, _ = wechat.media_check_push("any")
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    (await api.post(f"{PUSH}?{qs}", json={"ToUserName": "gh", "Encrypt": "abc"})).error(400)


# -- comments ------------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=30)
async def test_comments_stay_visible_when_clean_and_come_down_when_risky(api, app, resources,
                                                                        wechat):
    author, commenter = await api.login(), await api.login()
    post_id = await make_post(resources, author.user_id, "帖子", status="visible")
    clean = await make_comment(resources, post_id, commenter.user_id, "好可爱")
    risky = await make_comment(resources, post_id, commenter.user_id, "FAKE_RISKY 广告")
    async with capture_events(app, commenter.user_id) as captured:
        assert await moderation.review_comment(resources, clean) == "visible"
        assert await moderation.review_comment(resources, risky) == "removed"
    events = await captured.events()
    assert_events_valid(events)
    assert [(e["type"], e["data"]["comment_id"], e["data"]["status"]) for e in events] == [
        ("comment.status", risky, "removed")]
    assert wechat.requests_to("/wxa/msg_sec_check")[-1].body["scene"] == 2


@pytest.mark.gen_test(timeout=30)
async def test_held_comment_is_published_when_it_passes_and_hidden_when_reviewed(api,
                                                                               resources,
                                                                               wechat):
    author, commenter = await api.login(), await api.login()
    post_id = await make_post(resources, author.user_id, "帖子", status="visible")
    pending = await make_comment(resources, post_id, commenter.user_id, "正常评论",
                                 status="pending")
    review = await make_comment(resources, post_id, commenter.user_id, "FAKE_REVIEW 评论")
    assert await moderation.review_comment(resources, pending) == "visible"
    assert await moderation.review_comment(resources, review) == "hidden"
    assert await status_of(resources, Comment, review) == "hidden"


@pytest.mark.gen_test(timeout=30)
async def test_clean_comment_of_a_stale_user_stays_up_on_our_own_checks(api, resources,
                                                                       wechat):
    author, commenter = await api.login(), await api.login()
    await last_login_hours_ago(resources, commenter.user_id, 5)
    post_id = await make_post(resources, author.user_id, "帖子", status="visible")
    clean = await make_comment(resources, post_id, commenter.user_id, "好可爱")
    soft = await make_comment(resources, post_id, commenter.user_id, "要的话加微信",
                              status="pending")
    assert await moderation.review_comment(resources, clean) == "visible"
    assert await moderation.review_comment(resources, soft) == "hidden"
    assert wechat.requests_to("/wxa/msg_sec_check") == []


# -- through the worker ---------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_worker_reviews_a_post_enqueued_through_the_outbox(api, app, resources, wechat,
                                                                  celery_worker_process):
    author = await api.login()
    post_id = await make_post(resources, author.user_id, "经过任务队列的帖子")
    async with resources.db.session() as session, session.begin():
        await moderation.review_post_later(session, post_id)

    async def visible() -> bool:
        return await status_of(resources, Post, post_id) == "visible"
    await wait_until(visible, timeout=30, what="the worker to publish the post")


@pytest.mark.gen_test(timeout=60)
async def test_a_post_taken_down_by_a_worker_leaves_the_cached_first_page_at_once(
        api, app, resources, wechat, celery_worker_process):
    """The risky verdict is applied outside any request (a worker, here directly): the post
    must not stay on the cached discovery page until its TTL runs out."""
    from pawhome.community import feeds

    author = await api.login()
    post_id = await make_post(resources, author.user_id, "先通过后被下架的帖子")
    assert await moderation.review_post(resources, post_id) == "visible"
    await feeds.invalidate_first_pages(resources.cache)
    ids = [p["id"] for p in (await api.get("/v1/posts?limit=20")).ok()["items"]]
    assert post_id in ids  # and the first page is now cached (5 s)
    async with resources.db.session() as session, session.begin():
        await posts.set_status(session, post_id, "removed", "risky content (20002)")

    async def gone() -> bool:
        page = (await api.get("/v1/posts?limit=20")).ok()
        return post_id not in [p["id"] for p in page["items"]]
    await wait_until(gone, timeout=4, what="the task to drop the cached pages")


@pytest.mark.gen_test(timeout=30)
async def test_two_reviews_of_one_image_at_once_ask_wechat_once(api, resources, wechat):
    author = await api.login()
    image = await make_image(resources, author.user_id)
    before = len(wechat.requests_to("/wxa/media_check_async"))
    outcomes = await asyncio.gather(*(moderation.review_media(resources, image)
                                      for _ in range(4)))
    assert outcomes == ["pending"] * 4
    assert len(wechat.requests_to("/wxa/media_check_async")) == before + 1
    # The claim is released: a later review finds the pending check and asks nothing.
    assert await moderation.review_media(resources, image) == "pending"
    assert len(wechat.requests_to("/wxa/media_check_async")) == before + 1
