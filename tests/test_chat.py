"""Direct messages over REST: conversations, seqs, idempotent sends, who may message whom,
content rules, read marks, unread counts, recall, hiding and the events each write emits."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from models.realtime import Conversation, ConversationMember, Message
from pawhome.community import follows
from pawhome.identity import auth
from pawhome.messaging import chat
from tests.event_contract import assert_events_valid, capture_events, types_of


def _cid() -> str:
    return uuid.uuid4().hex


def _text(text: str, client_msg_id: str | None = None) -> dict:
    return {"client_msg_id": client_msg_id or _cid(), "kind": "text", "text": text}


async def _open(api, me, peer) -> int:
    data = (await api.post("/v1/conversations", json={"to_user_id": peer.user_id},
                           token=me.token)).ok()
    return data["id"]


async def _send(api, me, conversation_id: int, text: str = "hello 🐶", **extra) -> dict:
    reply = await api.post(f"/v1/conversations/{conversation_id}/messages",
                           json={**_text(text), **extra}, token=me.token)
    return reply.ok()


async def _messages(api, me, conversation_id: int, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return (await api.get(f"/v1/conversations/{conversation_id}/messages?{query}",
                          token=me.token)).ok()


async def _pair(api):
    a, b = await api.login(), await api.login()
    return a, b, await _open(api, a, b)


async def _count_messages(resources, conversation_id: int) -> int:
    async with resources.db.session() as session:
        return (await session.execute(select(func.count(Message.id)).where(
            Message.conversation_id == conversation_id))).scalar_one()


# -- conversations and sending ------------------------------------------------------------


@pytest.mark.gen_test
async def test_opening_twice_from_either_side_gives_one_conversation(api):
    a, b = await api.login(), await api.login()
    first = await _open(api, a, b)
    assert await _open(api, a, b) == first
    assert await _open(api, b, a) == first
    detail = (await api.get(f"/v1/conversations/{first}", token=b.token)).ok()
    assert detail["peer"]["id"] == a.user_id and detail["last_seq"] == 0
    assert detail["last_message"] is None


@pytest.mark.gen_test
async def test_send_acks_with_the_stored_seq_and_the_peer_sees_it(api):
    a, b, conversation = await _pair(api)
    ack = await _send(api, a, conversation, "第一条 🐱")
    assert set(ack) == {"client_msg_id", "conversation_id", "id", "seq", "created_at"}
    assert ack["conversation_id"] == conversation and ack["seq"] == 1
    page = await _messages(api, b, conversation)
    [message] = page["items"]
    assert message["id"] == ack["id"] and message["content"] == {"text": "第一条 🐱"}
    assert message["sender_id"] == a.user_id and message["created_at"] == ack["created_at"]
    assert page["read_seq"] == 0 and page["peer_read_seq"] == 1  # a read what a wrote


@pytest.mark.gen_test(timeout=120)
async def test_concurrent_senders_get_distinct_gap_free_seqs(api, resources):
    a, b, conversation = await _pair(api)

    async def send(user, n):
        reply = await api.post(f"/v1/conversations/{conversation}/messages",
                               json=_text(f"{user.user_id}-{n}"), token=user.token)
        return reply.ok()["seq"]

    seqs = await asyncio.gather(*[send(user, n) for n in range(25) for user in (a, b)])
    assert sorted(seqs) == list(range(1, 51))
    async with resources.db.session() as session:
        stored = (await session.execute(select(Message.seq).where(
            Message.conversation_id == conversation).order_by(Message.seq))).scalars().all()
        last_seq = (await session.get(Conversation, conversation)).last_seq
    assert stored == list(range(1, 51)) and last_seq == 50


@pytest.mark.gen_test(timeout=60)
async def test_first_messages_from_both_sides_at_once_share_one_conversation(api, resources):
    a, b = await api.login(), await api.login()
    body = chat.MessageBody(client_msg_id=_cid(), kind="text", text="hi")
    acks = await asyncio.gather(*[
        chat.send_message(resources, sender.user_id,
                          body.model_copy(update={"client_msg_id": _cid()}),
                          to_user_id=peer.user_id)
        for sender, peer in [(a, b), (b, a)] * 4])
    assert len({ack["conversation_id"] for ack in acks}) == 1
    assert sorted(ack["seq"] for ack in acks) == list(range(1, 9))
    async with resources.db.session() as session:
        members = (await session.execute(select(ConversationMember.user_id).where(
            ConversationMember.conversation_id == acks[0]["conversation_id"]))).scalars().all()
    assert sorted(members) == sorted([a.user_id, b.user_id])


@pytest.mark.gen_test
async def test_repeating_a_client_msg_id_returns_the_same_ack_and_stores_nothing(api, resources):
    a, b, conversation = await _pair(api)
    body = _text("once", client_msg_id="retry-1")
    first = (await api.post(f"/v1/conversations/{conversation}/messages", json=body,
                            token=a.token)).ok()
    again = (await api.post(f"/v1/conversations/{conversation}/messages", json=body,
                            token=a.token)).ok()
    assert again == first
    assert await _count_messages(resources, conversation) == 1
    # The id is the sender's own: another sender may use the same string.
    other = (await api.post(f"/v1/conversations/{conversation}/messages", json=body,
                            token=b.token)).ok()
    assert other["seq"] == 2


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_copies_of_one_send_store_one_message(api, resources):
    a, b, conversation = await _pair(api)
    body = _text("racing", client_msg_id="dup-" + _cid())
    replies = await asyncio.gather(*[
        api.post(f"/v1/conversations/{conversation}/messages", json=body, token=a.token)
        for _ in range(10)])
    acks = [reply.ok() for reply in replies]
    assert all(ack == acks[0] for ack in acks) and acks[0]["seq"] == 1
    assert await _count_messages(resources, conversation) == 1
    assert (await _send(api, b, conversation))["seq"] == 2  # no seq was burnt


@pytest.mark.gen_test
async def test_nobody_messages_themselves(api):
    a = await api.login()
    (await api.post("/v1/conversations", json={"to_user_id": a.user_id},
                    token=a.token)).error(422, code=42200, field="to_user_id")


@pytest.mark.gen_test
async def test_unknown_or_banned_recipient_is_404(api, resources):
    a, b, conversation = await _pair(api)
    (await api.post("/v1/conversations", json={"to_user_id": 2**62},
                    token=a.token)).error(404, code=40400)
    admin = await api.login(role="admin")
    await auth.ban_user(resources, admin.user_id, b.user_id, "spam")
    (await api.post("/v1/conversations", json={"to_user_id": b.user_id},
                    token=a.token)).error(404, code=40400)
    (await api.post(f"/v1/conversations/{conversation}/messages", json=_text("hi?"),
                    token=a.token)).error(404, code=40400)


# -- who may message whom ---------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_block_in_either_direction_refuses_messages_both_ways(api, resources):
    a, b, conversation = await _pair(api)
    await _send(api, a, conversation)
    (await api.post("/v1/users/me/blocks", json={"user_id": a.user_id}, token=b.token)).ok()
    for sender in (a, b):
        (await api.post(f"/v1/conversations/{conversation}/messages", json=_text("hey"),
                        token=sender.token)).error(403, code=40310)
    c = await api.login()
    (await api.post("/v1/users/me/blocks", json={"user_id": c.user_id}, token=a.token)).ok()
    (await api.post("/v1/conversations", json={"to_user_id": a.user_id},
                    token=c.token)).error(403, code=40310)
    assert await _count_messages(resources, conversation) == 1
    (await api.delete(f"/v1/users/me/blocks/{a.user_id}", token=b.token)).ok()
    assert (await _send(api, a, conversation))["seq"] == 2


async def _set_privacy(api, user, allow: str) -> None:
    (await api.put("/v1/users/me/settings",
                   json={"privacy_prefs": {"allow_messages_from": allow}},
                   token=user.token)).ok()


@pytest.mark.gen_test
async def test_following_only_recipient_refuses_strangers_and_admits_those_they_follow(
        api, resources):
    stranger, friend, picky = await api.login(), await api.login(), await api.login()
    await _set_privacy(api, picky, "following")
    async with resources.db.session() as session, session.begin():
        assert await follows.follow(session, picky.user_id, friend.user_id)
        # Following the picky user is not enough: the rule is whom *they* follow.
        assert await follows.follow(session, stranger.user_id, picky.user_id)
    refused = (await api.post("/v1/conversations", json={"to_user_id": picky.user_id},
                              token=stranger.token)).error(403, code=40311)
    assert "follow" in refused["message"]
    conversation = await _open(api, friend, picky)
    assert (await _send(api, friend, conversation))["seq"] == 1
    async with resources.db.session() as session, session.begin():
        assert await follows.unfollow(session, picky.user_id, friend.user_id)
    (await api.post(f"/v1/conversations/{conversation}/messages", json=_text("still?"),
                    token=friend.token)).error(403, code=40311)


@pytest.mark.gen_test
async def test_nobody_setting_refuses_new_messages_but_allows_replies(api):
    a, shy = await api.login(), await api.login()
    await _set_privacy(api, shy, "nobody")
    (await api.post("/v1/conversations", json={"to_user_id": shy.user_id},
                    token=a.token)).error(403, code=40311)
    # shy writes first: a may answer in that conversation.
    conversation = await _open(api, shy, a)
    await _send(api, shy, conversation, "hi, I saw your cat")
    assert (await _send(api, a, conversation, "thanks!"))["seq"] == 2


# -- content ------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_hard_sensitive_word_is_refused_with_the_reason(api, resources):
    a, _b, conversation = await _pair(api)
    refused = (await api.post(f"/v1/conversations/{conversation}/messages",
                              json=_text("一起 赌 博 吧"), token=a.token)).error(
        422, code=42202, field="text")
    assert "赌博" in refused["errors"][0]["message"]
    assert await _count_messages(resources, conversation) == 0


@pytest.mark.gen_test
async def test_soft_word_is_delivered_with_a_warning_to_the_sender(api):
    a, b, conversation = await _pair(api)
    ack = await _send(api, a, conversation, "加微信 聊猫粮")
    assert ack["seq"] == 1 and "加微信" in ack["warnings"][0]["message"]
    [message] = (await _messages(api, b, conversation))["items"]
    assert message["content"] == {"text": "加微信 聊猫粮"}


@pytest.mark.gen_test
async def test_text_must_be_one_to_max_characters_and_fields_must_fit_the_kind(api, settings):
    a, b, conversation = await _pair(api)
    url = f"/v1/conversations/{conversation}/messages"
    for text in ("", "   ", "猫" * (settings.chat_max_text + 1)):
        (await api.post(url, json=_text(text), token=a.token)).error(422, field="text")
    assert (await _send(api, a, conversation, "猫" * settings.chat_max_text))["seq"] == 1
    (await api.post(url, json={"client_msg_id": _cid(), "kind": "text"},
                    token=a.token)).error(422, field="text")
    (await api.post(url, json={**_text("x"), "media_id": 5},
                    token=a.token)).error(422, field="media_id")
    (await api.post(url, json={**_text("x"), "client_msg_id": "has spaces"},
                    token=a.token)).error(422, field="client_msg_id")
    (await api.post(url, json={**_text("x"), "to_user_id": b.user_id},
                    token=a.token)).error(422, field="to_user_id")


@pytest.mark.gen_test
async def test_attachments_go_through_the_check_their_service_registered(api, resources):
    a, b, conversation = await _pair(api)
    url = f"/v1/conversations/{conversation}/messages"
    # Pet services do not exist yet: their cards are refused, nothing is stored unchecked.
    card = {"client_msg_id": _cid(), "kind": "share", "card": {"kind": "service", "id": 3}}
    refused = (await api.post(url, json=card, token=a.token)).error(
        422, code=42210, field="card.kind")
    assert "service" in refused["message"]

    async def own_media_only(session, sender_id, recipient_id, media_id):
        if media_id != 7:
            raise chat.NotFound("Media not found")
        return {"url": "https://cdn.example/7.jpg", "media_id": 999}  # cannot override the id

    image = {"client_msg_id": _cid(), "kind": "image", "media_id": 7}
    previous = chat._attachment_checks.get("image")  # the media service's, restored below
    chat.register_attachment_check("image", own_media_only)
    try:
        ack = (await api.post(url, json=image, token=a.token)).ok()
        (await api.post(url, json={**image, "client_msg_id": _cid(), "media_id": 8},
                        token=a.token)).error(404)
    finally:
        if previous is not None:
            chat.register_attachment_check("image", previous)
        else:
            chat.unregister_attachment_check("image")
    [message] = (await _messages(api, b, conversation))["items"]
    assert message["seq"] == ack["seq"] and message["kind"] == "image"
    assert message["content"] == {"media_id": 7, "url": "https://cdn.example/7.jpg"}
    with pytest.raises(ValueError):
        chat.register_attachment_check("video", own_media_only)


# -- membership -----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_outsiders_get_404_for_anothers_conversation(api):
    a, _b, conversation = await _pair(api)
    await _send(api, a, conversation)
    mallory = await api.login()
    base = f"/v1/conversations/{conversation}"
    (await api.get(base, token=mallory.token)).error(404, code=40400)
    (await api.get(base + "/messages", token=mallory.token)).error(404, code=40400)
    (await api.post(base + "/messages", json=_text("hi"), token=mallory.token)).error(404)
    (await api.post(base + "/read", json={"seq": 1}, token=mallory.token)).error(404)
    (await api.post(base + "/messages/1/recall", token=mallory.token)).error(404)
    (await api.delete(base, token=mallory.token)).error(404)
    (await api.get("/v1/conversations/999999999999/messages", token=a.token)).error(404)
    (await api.get(base + "/messages")).error(401)


# -- read marks and unread counts -------------------------------------------------------------


@pytest.mark.gen_test
async def test_read_mark_moves_forward_only_and_never_past_the_last_message(api):
    a, b, conversation = await _pair(api)
    for n in range(3):
        await _send(api, a, conversation, f"m{n}")
    read = f"/v1/conversations/{conversation}/read"
    assert (await api.post(read, json={"seq": 2}, token=b.token)).ok() == {
        "conversation_id": conversation, "read_seq": 2, "unread": 1}
    assert (await api.post(read, json={"seq": 1}, token=b.token)).ok()["read_seq"] == 2
    assert (await api.post(read, json={"seq": 10**6}, token=b.token)).ok() == {
        "conversation_id": conversation, "read_seq": 3, "unread": 0}
    (await api.post(read, json={"seq": -1}, token=b.token)).error(422, field="seq")
    assert (await _messages(api, a, conversation))["peer_read_seq"] == 3


@pytest.mark.gen_test
async def test_unread_counts_per_conversation_and_in_total(api):
    me, x, y = await api.login(), await api.login(), await api.login()
    with_x, with_y = await _open(api, x, me), await _open(api, y, me)
    for n in range(3):
        await _send(api, x, with_x, f"x{n}")
    await _send(api, y, with_y, "y0")
    await _send(api, me, with_y, "my reply reads what came before")
    await _send(api, y, with_y, "y1")
    counts = (await api.get("/v1/conversations/unread-count", token=me.token)).ok()
    assert counts == {"total": 4, "conversations": [
        {"conversation_id": with_y, "unread": 1}, {"conversation_id": with_x, "unread": 3}]}
    listed = (await api.get("/v1/conversations", token=me.token)).ok()["items"]
    assert [(c["id"], c["unread"]) for c in listed] == [(with_y, 1), (with_x, 3)]
    (await api.post(f"/v1/conversations/{with_x}/read", json={"seq": 3},
                    token=me.token)).ok()
    counts = (await api.get("/v1/conversations/unread-count", token=me.token)).ok()
    assert counts["total"] == 1
    assert (await api.get("/v1/conversations/unread-count", token=x.token)).ok() == {
        "total": 0, "conversations": []}


# -- list -------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_conversation_list_is_newest_first_with_cursor_pages(api):
    me = await api.login()
    peers = [await api.login() for _ in range(5)]
    ids = []
    for peer in peers:
        conversation = await _open(api, peer, me)
        await _send(api, peer, conversation, f"from {peer.user_id}")
        ids.append(conversation)
    await _open(api, me, await api.login())  # opened, never used: not listed
    seen, cursor = [], None
    while True:
        path = "/v1/conversations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(path, token=me.token)).ok()
        seen += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert [c["id"] for c in seen] == ids[::-1]
    newest = seen[0]
    assert newest["peer"]["id"] == peers[-1].user_id
    assert newest["preview"] == f"from {peers[-1].user_id}" and newest["unread"] == 1
    (await api.get("/v1/conversations?cursor=bm9wZQ", token=me.token)).error(422, field="cursor")


# -- recall -----------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_recall_blanks_the_message_for_both_and_is_only_for_the_sender(api):
    a, b, conversation = await _pair(api)
    ack = await _send(api, a, conversation, "oops")
    url = f"/v1/conversations/{conversation}/messages/{ack['seq']}/recall"
    (await api.post(url, token=b.token)).error(403, code=40300)
    recalled = (await api.post(url, token=a.token)).ok()
    assert recalled["recalled"] is True and recalled["content"] is None
    assert (await api.post(url, token=a.token)).ok()["recalled"] is True  # again: no-op
    for user in (a, b):
        [message] = (await _messages(api, user, conversation))["items"]
        assert message["content"] is None and message["recalled"] is True
    listed = (await api.get("/v1/conversations", token=b.token)).ok()["items"][0]
    assert listed["preview"] == "[recalled]" and listed["last_message"]["content"] is None
    (await api.post(f"/v1/conversations/{conversation}/messages/99/recall",
                    token=a.token)).error(404)


@pytest.mark.gen_test
async def test_recall_after_the_window_is_refused(api, resources, settings):
    a, b, conversation = await _pair(api)
    ack = await _send(api, a, conversation, "too late to take back")
    async with resources.db.session() as session, session.begin():
        message = await session.get(Message, ack["id"])
        message.created_at -= dt.timedelta(seconds=settings.chat_recall_seconds + 1)
    (await api.post(f"/v1/conversations/{conversation}/messages/1/recall",
                    token=a.token)).error(403, code=40312)
    [message] = (await _messages(api, b, conversation))["items"]
    assert message["content"] == {"text": "too late to take back"}


# -- hiding -----------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_hidden_conversation_returns_with_only_newer_messages(api):
    a, b, conversation = await _pair(api)
    await _send(api, a, conversation, "old 1")
    await _send(api, b, conversation, "old 2")
    hidden = (await api.delete(f"/v1/conversations/{conversation}", token=b.token)).ok()
    assert hidden == {"conversation_id": conversation, "cleared_seq": 2, "hidden": True}
    assert (await api.get("/v1/conversations", token=b.token)).ok()["items"] == []
    assert (await _messages(api, b, conversation))["items"] == []
    assert (await api.get("/v1/conversations/unread-count", token=b.token)).ok()["total"] == 0
    assert len((await api.get("/v1/conversations", token=a.token)).ok()["items"]) == 1
    assert len((await _messages(api, a, conversation))["items"]) == 2  # only b's view

    await _send(api, a, conversation, "new")
    [listed] = (await api.get("/v1/conversations", token=b.token)).ok()["items"]
    assert listed["id"] == conversation and listed["unread"] == 1
    assert [m["content"]["text"] for m in (await _messages(api, b, conversation))["items"]] \
        == ["new"]
    (await api.post(f"/v1/conversations/{conversation}/hide", token=a.token)).ok()
    assert (await api.get("/v1/conversations", token=a.token)).ok()["items"] == []


@pytest.mark.gen_test
async def test_history_pages_back_with_before_seq(api):
    a, b, conversation = await _pair(api)
    for n in range(5):
        await _send(api, a, conversation, f"m{n}")
    first = await _messages(api, b, conversation, limit=2)
    assert [m["seq"] for m in first["items"]] == [5, 4] and first["next_before_seq"] == 4
    second = await _messages(api, b, conversation, limit=2, before_seq=4)
    assert [m["seq"] for m in second["items"]] == [3, 2]
    last = await _messages(api, b, conversation, limit=2, before_seq=2)
    assert [m["seq"] for m in last["items"]] == [1] and last["next_before_seq"] is None


# -- events -----------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_a_send_tells_the_recipient_and_the_senders_other_devices(app, api):
    a, b, conversation = await _pair(api)
    async with capture_events(app, a.user_id) as to_a, capture_events(app, b.user_id) as to_b:
        before = await _messages(api, b, conversation)
        ack = await _send(api, a, conversation, "event me")
    for captured in (to_a, to_b):
        events = await captured.events()
        assert types_of(events) == ["chat.message"]
        assert_events_valid(events)
        data = events[0]["data"]
        assert data["seq"] == ack["seq"] and data["id"] == ack["id"]
        assert data["client_msg_id"] == ack["client_msg_id"] and data["sender_id"] == a.user_id
    after = await _messages(api, b, conversation)
    # Applying the event to the state fetched before gives the state fetched after.
    assert [events[0]["data"]] + before["items"] == after["items"]


@pytest.mark.gen_test(timeout=60)
async def test_read_and_recall_and_hide_emit_their_events(app, api):
    a, b, conversation = await _pair(api)
    await _send(api, a, conversation, "one")
    ack = await _send(api, a, conversation, "two")
    async with capture_events(app, a.user_id) as to_a, capture_events(app, b.user_id) as to_b:
        (await api.post(f"/v1/conversations/{conversation}/read", json={"seq": 2},
                        token=b.token)).ok()
        (await api.post(f"/v1/conversations/{conversation}/read", json={"seq": 1},
                        token=b.token)).ok()  # does not move: no event
        (await api.post(f"/v1/conversations/{conversation}/messages/2/recall",
                        token=a.token)).ok()
        (await api.post(f"/v1/conversations/{conversation}/hide", token=b.token)).ok()
    a_events, b_events = await to_a.events(), await to_b.events()
    assert_events_valid(a_events + b_events)
    assert types_of(a_events) == ["chat.read", "chat.recalled"]
    assert types_of(b_events) == ["chat.read", "chat.recalled", "chat.hidden"]
    read = {"conversation_id": conversation, "reader_id": b.user_id, "seq": 2}
    recalled = {"conversation_id": conversation, "seq": 2, "id": ack["id"]}
    assert [e["data"] for e in a_events] == [read, recalled]
    assert b_events[2]["data"] == {"conversation_id": conversation, "cleared_seq": 2}


@pytest.mark.gen_test(timeout=30)
async def test_refused_send_emits_nothing(app, api):
    a, b, conversation = await _pair(api)
    async with capture_events(app, b.user_id) as to_b:
        (await api.post(f"/v1/conversations/{conversation}/messages",
                        json=_text("毒品"), token=a.token)).error(422)
    assert await to_b.events() == []


@pytest.mark.gen_test(timeout=30)
async def test_typing_is_relayed_live_at_most_once_per_interval_and_never_stored(
        app, api, resources):
    from pawhome.platform import codec
    from pawhome.platform.events import user_channel_key

    a, b, conversation = await _pair(api)
    pubsub = resources.cache.redis.pubsub()
    await pubsub.subscribe(user_channel_key(resources.cache, b.user_id))
    try:
        async with capture_events(app, b.user_id) as to_b:
            assert await chat.relay_typing(resources, a.user_id, conversation) is True
            assert await chat.relay_typing(resources, a.user_id, conversation) is False
            message = None
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            relayed = codec.loads(message["data"])
            assert relayed["k"] == "eph" and relayed["ev"]["type"] == "chat.typing"
            assert relayed["ev"]["data"] == {"conversation_id": conversation,
                                             "user_id": a.user_id}
            assert_events_valid([relayed["ev"]])
        assert await to_b.events() == []
        with pytest.raises(chat.NotFound):
            await chat.relay_typing(resources, (await api.login()).user_id, conversation)
    finally:
        await pubsub.aclose()


# -- follows (the privacy rule's input) -------------------------------------------------------


@pytest.mark.gen_test
async def test_follow_is_idempotent_and_refuses_self_unknown_and_blocked(api, resources):
    a, b, c = await api.login(), await api.login(), await api.login()
    (await api.post("/v1/users/me/blocks", json={"user_id": a.user_id}, token=c.token)).ok()
    async with resources.db.session() as session, session.begin():
        assert await follows.follow(session, a.user_id, b.user_id) is True
        assert await follows.follow(session, a.user_id, b.user_id) is False
        assert await follows.is_following(session, a.user_id, b.user_id)
        assert not await follows.is_following(session, b.user_id, a.user_id)
        with pytest.raises(chat.ValidationFailed):
            await follows.follow(session, a.user_id, a.user_id)
        with pytest.raises(chat.NotFound):
            await follows.follow(session, a.user_id, 2**62)
        with pytest.raises(chat.Forbidden):
            await follows.follow(session, a.user_id, c.user_id)
        assert await follows.unfollow(session, a.user_id, b.user_id) is True
        assert await follows.unfollow(session, a.user_id, b.user_id) is False
