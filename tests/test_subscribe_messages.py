"""WeChat subscribe messages: authorisations per template, and the push to offline users,
run for real against the fake WeChat server (in-process, and once through the worker)."""
from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import pytest
from sqlalchemy import select

from models.base import utcnow
from models.realtime import Conversation, ConversationMember, Message, SubscribeQuota, SubscribeSend
from pawhome.messaging import subscribe_messages as sm
from pawhome.platform import presence
from tests.fixtures_worker import wait_until
from tests.test_notifications import make_user

MESSAGE_TEMPLATE = "dev-tmpl-message"
COMMENT_TEMPLATE = "dev-tmpl-comment"


# -- helpers ----------------------------------------------------------------------------------


async def message_from(resources, recipient: int, sender: int, text: str = "hello",
                       read: bool = False) -> int:
    """A conversation between the two with one message from `sender`; its id."""
    low, high = sorted((recipient, sender))
    now = utcnow()
    async with resources.db.session() as session, session.begin():
        conversation = Conversation(user_a_id=low, user_b_id=high, last_seq=1,
                                    last_message_at=now)
        session.add(conversation)
        await session.flush()
        session.add(ConversationMember(conversation_id=conversation.id, user_id=recipient,
                                       peer_id=sender, read_seq=1 if read else 0,
                                       last_message_at=now))
        session.add(ConversationMember(conversation_id=conversation.id, user_id=sender,
                                       peer_id=recipient, read_seq=1, last_message_at=now))
        session.add(Message(conversation_id=conversation.id, seq=1, sender_id=sender,
                            kind="text", content={"text": text},
                            client_msg_id=uuid.uuid4().hex, created_at=now))
        return conversation.id


async def grant(resources, user_id: int, template_id: str, remaining: int) -> None:
    async with resources.db.session() as session, session.begin():
        await session.merge(SubscribeQuota(user_id=user_id, template_id=template_id,
                                           remaining=remaining, updated_at=utcnow()))


async def remaining(resources, user_id: int, template_id: str = MESSAGE_TEMPLATE) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(select(SubscribeQuota.remaining).where(
            SubscribeQuota.user_id == user_id,
            SubscribeQuota.template_id == template_id))).scalar() or 0)


async def sends(resources, user_id: int) -> list[SubscribeSend]:
    async with resources.db.session() as session:
        return list((await session.execute(select(SubscribeSend).where(
            SubscribeSend.user_id == user_id).order_by(SubscribeSend.id))).scalars())


async def push_message(resources, user_id: int, conversation_id: int,
                       push_id: str | None = None, **kw) -> sm.Outcome:
    return await sm.deliver(resources, user_id, "message", conversation_id=conversation_id,
                            push_id=push_id or uuid.uuid4().hex, **kw)


async def offline_user_with_message(resources, quota: int = 3, text: str = "hello",
                                    sender_name: str = "Mimi") -> tuple[int, int, int]:
    me = await make_user(resources, "Me")
    sender = await make_user(resources, sender_name)
    conversation = await message_from(resources, me, sender, text)
    await grant(resources, me, MESSAGE_TEMPLATE, quota)
    return me, sender, conversation


def sent_to(wechat) -> list[dict]:
    return [r.body for r in wechat.requests_to(sm.SEND_PATH)]


# -- authorisations over REST ---------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_accepted_templates_add_authorisations_up_to_the_cap(api, resources):
    me = await api.login()
    empty = (await api.get("/v1/users/me/subscriptions", token=me.token)).ok()["items"]
    assert {i["template_id"]: i["remaining"] for i in empty}[MESSAGE_TEMPLATE] == 0
    assert next(i for i in empty if i["template_id"] == MESSAGE_TEMPLATE)["purposes"] == [
        "message"]
    # What wx.requestSubscribeMessage answers, errMsg included.
    result = {"errMsg": "requestSubscribeMessage:ok", MESSAGE_TEMPLATE: "accept",
              COMMENT_TEMPLATE: "reject"}
    for _ in range(2):
        items = (await api.post("/v1/users/me/subscriptions", json={"results": result},
                                token=me.token)).ok()["items"]
    left = {i["template_id"]: i["remaining"] for i in items}
    assert left[MESSAGE_TEMPLATE] == 2 and left[COMMENT_TEMPLATE] == 0
    await grant(resources, me.user_id, MESSAGE_TEMPLATE, 49)
    for _ in range(3):
        (await api.post("/v1/users/me/subscriptions",
                        json={"results": {MESSAGE_TEMPLATE: "accept"}}, token=me.token)).ok()
    assert await remaining(resources, me.user_id) == 50  # SUBSCRIBE_QUOTA_CAP
    # "ban": the user switched the template off for good.
    (await api.post("/v1/users/me/subscriptions", json={"results": {MESSAGE_TEMPLATE: "ban"}},
                    token=me.token)).ok()
    assert await remaining(resources, me.user_id) == 0


@pytest.mark.gen_test(timeout=30)
async def test_unknown_templates_and_answers_are_refused(api, resources):
    me = await api.login()
    (await api.post("/v1/users/me/subscriptions", json={"results": {"forged-tmpl": "accept"}},
                    token=me.token)).error(422, field="results.forged-tmpl")
    (await api.post("/v1/users/me/subscriptions",
                    json={"results": {MESSAGE_TEMPLATE: "yes please"}},
                    token=me.token)).error(422, field=f"results.{MESSAGE_TEMPLATE}")
    (await api.post("/v1/users/me/subscriptions", json={"results": {}},
                    token=me.token)).error(422)
    (await api.post("/v1/users/me/subscriptions", json={"results": {MESSAGE_TEMPLATE: 1}},
                    token=me.token)).error(422)
    (await api.post("/v1/users/me/subscriptions",
                    json={"results": {MESSAGE_TEMPLATE: "accept"}})).error(401)
    assert await remaining(resources, me.user_id) == 0


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_accepts_all_count(api, resources):
    me = await api.login()
    replies = await asyncio.gather(*(api.post(
        "/v1/users/me/subscriptions", json={"results": {MESSAGE_TEMPLATE: "accept"}},
        token=me.token) for _ in range(10)))
    assert all(r.status == 200 for r in replies)
    assert await remaining(resources, me.user_id) == 10


# -- the push, in-process
# ---------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_offline_user_with_quota_gets_exactly_one_message(resources, wechat):
    me, _, conversation = await offline_user_with_message(resources, quota=3, text="想你了 🐶")
    push_id = uuid.uuid4().hex
    outcome = await push_message(resources, me, conversation, push_id=push_id)
    assert outcome.status == "sent"
    [body] = sent_to(wechat)
    assert body["template_id"] == MESSAGE_TEMPLATE and body["touser"].startswith("t-")
    assert body["page"] == f"pages/chat/chat?conversation_id={conversation}"
    assert body["data"]["name1"] == {"value": "Mimi"}
    assert body["data"]["thing2"] == {"value": "想你了 🐶"}
    assert "年" in body["data"]["time3"]["value"]
    assert await remaining(resources, me) == 2
    [record] = await sends(resources, me)
    assert (record.status, record.template_id, record.reason) == ("sent", MESSAGE_TEMPLATE,
                                                                   "message")
    # The same push again (a retry, a redelivery) neither sends nor spends.
    assert (await push_message(resources, me, conversation, push_id=push_id)).status == \
        "duplicate"
    assert len(sent_to(wechat)) == 1 and await remaining(resources, me) == 2


@pytest.mark.gen_test(timeout=30)
async def test_online_user_is_skipped(resources, wechat):
    me, _, conversation = await offline_user_with_message(resources)
    await presence.mark_online(resources.cache, "gw-test", [me])  # as a gateway does
    try:
        outcome = await push_message(resources, me, conversation)
    finally:
        await presence.mark_offline(resources.cache, "gw-test", me)
    assert (outcome.status, outcome.detail) == ("skipped", "online")
    assert sent_to(wechat) == [] and await remaining(resources, me) == 3
    assert [(s.status, s.detail) for s in await sends(resources, me)] == [("skipped", "online")]


@pytest.mark.gen_test(timeout=30)
async def test_no_authorisation_left_means_no_wechat_call(resources, wechat):
    me, _, conversation = await offline_user_with_message(resources, quota=0)
    outcome = await push_message(resources, me, conversation)
    assert (outcome.status, outcome.detail) == ("skipped", "no authorisation left")
    assert wechat.requests == []


@pytest.mark.gen_test(timeout=30)
async def test_second_message_in_the_quiet_period_is_skipped(resources, wechat):
    me, _sender, conversation = await offline_user_with_message(resources, quota=5)
    assert (await push_message(resources, me, conversation)).status == "sent"
    second = await push_message(resources, me, conversation)
    assert (second.status, second.detail) == ("skipped", "quiet period")
    # Another conversation has its own quiet period.
    other = await message_from(resources, me, await make_user(resources, "Other"))
    assert (await push_message(resources, me, other)).status == "sent"
    assert len(sent_to(wechat)) == 2 and await remaining(resources, me) == 3


@pytest.mark.gen_test(timeout=30)
async def test_read_message_or_switched_off_preference_is_skipped(resources, wechat):
    me = await make_user(resources, "Me")
    read_conversation = await message_from(resources, me, await make_user(resources), read=True)
    await grant(resources, me, MESSAGE_TEMPLATE, 3)
    outcome = await push_message(resources, me, read_conversation)
    assert (outcome.status, outcome.detail) == ("skipped", "already read")
    quiet_me = await make_user(resources, prefs={"messages": False})
    conversation = await message_from(resources, quiet_me, await make_user(resources))
    await grant(resources, quiet_me, MESSAGE_TEMPLATE, 3)
    outcome = await push_message(resources, quiet_me, conversation)
    assert outcome.status == "skipped" and "preferences" in outcome.detail
    assert sent_to(wechat) == []


@pytest.mark.gen_test(timeout=30)
async def test_43101_is_final_and_zeroes_the_template(resources, wechat):
    me, _, conversation = await offline_user_with_message(resources, quota=7)
    wechat.subscribe_errcode(MESSAGE_TEMPLATE, 43101)
    outcome = await push_message(resources, me, conversation)  # returns: no retry
    assert (outcome.status, outcome.errcode) == ("failed", 43101)
    assert await remaining(resources, me) == 0
    [record] = await sends(resources, me)
    assert (record.status, record.errcode) == ("failed", 43101)
    assert len(sent_to(wechat)) == 1


@pytest.mark.gen_test(timeout=30)
async def test_47003_is_final_and_gives_the_authorisation_back(resources, wechat):
    me, _, conversation = await offline_user_with_message(resources, quota=2)
    wechat.subscribe_errcode(MESSAGE_TEMPLATE, 47003)
    outcome = await push_message(resources, me, conversation)
    assert (outcome.status, outcome.errcode) == ("failed", 47003)
    assert await remaining(resources, me) == 2
    assert [(s.status, s.errcode) for s in await sends(resources, me)] == [("failed", 47003)]


@pytest.mark.gen_test(timeout=30)
async def test_rejected_token_is_reread_once_and_the_send_succeeds(resources, wechat):
    me, _, conversation = await offline_user_with_message(resources)
    # A token another process cached that WeChat no longer accepts (40001).
    await resources.cache.redis.set(resources.cache.key("wechat", "access_token"),
                                    "stale-token", ex=600)
    outcome = await push_message(resources, me, conversation)
    assert outcome.status == "sent"
    attempts = wechat.requests_to(sm.SEND_PATH)
    assert next(r.query["access_token"] for r in attempts) == "stale-token"
    assert len(attempts) == 2 and attempts[1].query["access_token"] != "stale-token"
    assert wechat.stable_token_calls == 1
    assert len(wechat.sent_messages) == 1 and await remaining(resources, me) == 2


@pytest.mark.gen_test(timeout=30)
async def test_wechat_outage_is_retried_without_losing_the_authorisation(resources, wechat):
    me, _, conversation = await offline_user_with_message(resources, quota=1)
    push_id = uuid.uuid4().hex
    wechat.fail_next(sm.SEND_PATH, status=503, body="<html>bad gateway</html>")
    with pytest.raises(sm.TransientSendError):
        await push_message(resources, me, conversation, push_id=push_id)
    assert await remaining(resources, me) == 1  # given back for the retry
    assert await sends(resources, me) == []
    # The retry (same push) is not stopped by the quiet period it took itself.
    assert (await push_message(resources, me, conversation, push_id=push_id)).status == "sent"
    assert await remaining(resources, me) == 0
    # Out of retries: recorded as failed, quota intact.
    other = await message_from(resources, me, await make_user(resources))
    await grant(resources, me, MESSAGE_TEMPLATE, 1)
    wechat.fail_next(sm.SEND_PATH, status=502, body="<html>bad gateway</html>")
    outcome = await push_message(resources, me, other, final_attempt=True)
    assert outcome.status == "failed" and outcome.detail.startswith("gave up")
    assert await remaining(resources, me) == 1


@pytest.mark.gen_test(timeout=30)
async def test_long_values_are_trimmed_to_wechats_limits(resources, wechat):
    me, _, conversation = await offline_user_with_message(
        resources, text="这是一条非常非常长的消息，" * 5, sender_name="Bartholomew the Great Dane")
    assert (await push_message(resources, me, conversation)).status == "sent"
    [body] = wechat.sent_messages  # the fake refuses (47003) anything over a limit
    assert len(body["data"]["thing2"]["value"]) == 20
    assert body["data"]["thing2"]["value"].endswith("…")
    assert body["data"]["name1"]["value"] == "Bartholomew the Grea"  # ASCII names: 20


def test_field_values_follow_the_limit_table():
    assert sm.field_type("thing12") == "thing" and sm.field_type("character_string3") == \
        "character_string"
    assert sm.field_value("thing1", "a" * 30) == "a" * 19 + "…"
    assert sm.field_value("thing1", "") == "-"
    assert sm.field_value("thing1", "  two\n lines ") == "two lines"
    assert sm.field_value("name1", "王小明王小明王小明王小明") == "王小明王小明王小明王"
    assert sm.field_value("phrase1", "已发货 ok") == "已发货"
    assert sm.field_value("phrase2", "进行中进行中") == "进行中进行"
    assert sm.field_value("number1", "¥12.50 元") == "12.50"
    assert sm.field_value("character_string1", "SN-" + "9" * 40) == ("SN-" + "9" * 40)[:32]
    assert sm.field_value("letter1", "abc123def") == "abcdef"
    assert sm.field_value("symbol1", "!!!!!!!!") == "!!!!!"
    assert sm.field_value("phone_number1", "+86 138 0013 8000 0000") == "+8613800138000000"
    assert sm.field_value("car_number1", "粤B12345678") == "粤B123456"
    when = dt.datetime(2024, 5, 1, 7, 1)  # UTC
    assert sm.field_value("time3", when) == "2024年5月1日 15:01"
    assert sm.field_value("date2", when) == "2024年5月1日 15:01"


@pytest.mark.gen_test(timeout=30)
async def test_notification_push_uses_its_categorys_template(resources, wechat):
    from pawhome.messaging import notifications

    me, fan = await make_user(resources, "Me"), await make_user(resources, "Fan")
    await grant(resources, me, COMMENT_TEMPLATE, 1)
    async with resources.db.session() as session, session.begin():
        row = await notifications.notify(session, me, "reply", "comment_replied", actor_id=fan,
                                         target_type="comment", target_id=3)
    outcome = await sm.deliver(resources, me, "notification:reply", notification_id=row.id,
                               push_id=uuid.uuid4().hex)
    assert outcome.status == "sent"
    [body] = wechat.sent_messages
    assert body["template_id"] == COMMENT_TEMPLATE  # replies use the comment template
    assert body["data"]["name1"]["value"] == "Fan"
    assert body["data"]["thing2"]["value"] == "Fan replied to your…"  # of "... comment"
    assert body["page"] == "pages/notifications/index?category=reply"


# -- through the real worker -----------------------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_worker_sends_to_an_offline_user_after_the_grace_period(
        celery_worker_process, app, resources, wechat):
    me, _, conversation = await offline_user_with_message(resources, quota=2)
    async with resources.db.session() as session, session.begin():
        assert await sm.schedule_push(session, me, "message", conversation_id=conversation,
                                      grace_seconds=0)

    async def recorded():
        return [s for s in await sends(resources, me)]
    [record] = await wait_until(recorded, timeout=40, what="the worker's send record")
    assert record.status == "sent", record.detail
    assert len(wechat.sent_messages) == 1 and await remaining(resources, me) == 1


@pytest.mark.gen_test(timeout=90)
async def test_worker_does_not_retry_43101(celery_worker_process, app, resources, wechat):
    me, _, conversation = await offline_user_with_message(resources, quota=2)
    wechat.subscribe_errcode(MESSAGE_TEMPLATE, 43101)
    async with resources.db.session() as session, session.begin():
        await sm.schedule_push(session, me, "message", conversation_id=conversation,
                               grace_seconds=0)

    async def recorded():
        return await sends(resources, me)
    [record] = await wait_until(recorded, timeout=40, what="the worker's send record")
    assert (record.status, record.errcode) == ("failed", 43101)
    # The test worker retries after 1-2 s; nothing more may reach WeChat meanwhile.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert len(sent_to(wechat)) == 1
        await asyncio.sleep(0.2)
    assert len(await sends(resources, me)) == 1 and await remaining(resources, me) == 0


def test_each_push_reason_is_allowed_by_its_owners_preference_switch():
    """chat and notifications register what their pushes are about; a reason nobody
    registered is a wiring error, never a silently skipped push."""
    assert sm.pref_for("message") == "messages"
    assert sm.pref_for("notification:reply") == "comments"
    assert sm.pref_for("notification:order") == "orders"
    assert sm.pref_for("notification:unheard-of") == "system"
    with pytest.raises(RuntimeError, match="no push reason 'mystery'"):
        sm.pref_for("mystery")
