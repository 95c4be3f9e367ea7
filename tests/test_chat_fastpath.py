"""The after-commit fast path of chat events: a send appends its `chat.message` events to
both streams itself right after the commit (no relay pass), and a request that dies between
commit and flush loses nothing — the relay delivers its claimed rows, once, after the claim."""
from __future__ import annotations

import asyncio
import time
import types
import uuid

import pytest
from sqlalchemy import func, select

from models.platform import OutboxMessage
from pawhome.identity import users
from pawhome.messaging import chat
from pawhome.platform import events, outbox, streams
from pawhome.platform.cache import Cache
from pawhome.platform.errors import ChatBlocked
from pawhome.platform.outbox import OutboxRelay


def _body(text: str = "hello", client_msg_id: str | None = None) -> chat.MessageBody:
    return chat.MessageBody(client_msg_id=client_msg_id or uuid.uuid4().hex, kind="text",
                            text=text)


async def _two_users(resources) -> tuple[int, int]:
    async with resources.db.session() as session, session.begin():
        a, _ = await users.get_or_create_by_openid(session, f"fast-{uuid.uuid4().hex}")
        b, _ = await users.get_or_create_by_openid(session, f"fast-{uuid.uuid4().hex}")
        return a.id, b.id


async def _stream(resources, user_id: int) -> list[dict]:
    replay = await streams.read_since(resources.cache, user_id, None, 0)
    if not replay.ok:  # no stream yet reads as ok/empty; anything else is a failure
        raise AssertionError(replay.reason)
    return [event for _eid, event in replay.events]


async def _outbox_rows(resources, channel: str) -> int:
    async with resources.db.session() as session:
        return (await session.execute(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.name == channel))).scalar_one()


async def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.gen_test
async def test_a_send_reaches_both_streams_before_it_returns_with_no_relay_running(resources):
    a, b = await _two_users(resources)
    ack = await chat.send_message(resources, a, _body("直达"), to_user_id=b)
    # No relay runs in this test: the events are there because the request put them there.
    [to_b] = await _stream(resources, b)
    [to_a] = await _stream(resources, a)
    assert to_b["type"] == to_a["type"] == "chat.message"
    assert to_b["id"] != to_a["id"] and to_b["data"] == to_a["data"]
    assert to_b["data"]["seq"] == ack["seq"] == 1 and to_b["data"]["id"] == ack["id"]
    assert to_b["data"]["content"] == {"text": "直达"}
    assert to_b["data"]["created_at"] == ack["created_at"]
    chat.ChatMessageEvent.model_validate(to_b["data"])

    async def rows_gone() -> bool:
        return (await _outbox_rows(resources, events.user_channel(b))
                + await _outbox_rows(resources, events.user_channel(a))) == 0
    await _wait_for(rows_gone)  # the delivered rows are deleted in the background


@pytest.mark.gen_test
async def test_a_request_dying_between_commit_and_flush_is_delivered_once_by_the_relay(
        resources, monkeypatch):
    resources.settings.outbox_claim_seconds = 0.5
    claimed: list = []

    async def die_before_flushing(_resources, rows, wait_for_delete=False) -> int:
        claimed.extend(rows)  # what the dead request would have flushed
        return 0
    monkeypatch.setattr(outbox, "flush_after_commit", die_before_flushing)
    a, b = await _two_users(resources)
    ack = await chat.send_message(resources, a, _body(), to_user_id=b)
    assert len(claimed) == 2 and await _stream(resources, b) == []

    relay = OutboxRelay(resources)
    # Claimed rows are not the relay's until the claim runs out: no race with the request.
    assert await _outbox_rows(resources, events.user_channel(b)) == 1
    await relay.relay_once()
    assert await _stream(resources, b) == []

    async def delivered() -> bool:
        await relay.relay_once()
        return await _outbox_rows(resources, events.user_channel(b)) == 0
    await _wait_for(delivered)
    [to_b] = await _stream(resources, b)
    assert to_b["data"]["seq"] == ack["seq"] and to_b["data"]["id"] == ack["id"]
    assert [e["type"] for e in await _stream(resources, a)] == ["chat.message"]

    # The request was only slow, not dead: its late flush is a no-op (same event ids).
    monkeypatch.undo()
    assert await outbox.flush_after_commit(resources, claimed, wait_for_delete=True) == 2
    assert len(await _stream(resources, b)) == 1 and len(await _stream(resources, a)) == 1
    await relay.relay_once()
    assert len(await _stream(resources, b)) == 1


@pytest.mark.gen_test
async def test_concurrent_senders_on_both_sides_get_gap_free_seqs_each_delivered_once(resources):
    a, b = await _two_users(resources)
    first = await chat.send_message(resources, a, _body("open"), to_user_id=b)
    conversation = first["conversation_id"]
    acks = await asyncio.gather(*(
        chat.send_message(resources, sender, _body(f"m{n}"), conversation_id=conversation)
        for n, sender in enumerate([a, b] * 10)))
    assert sorted(ack["seq"] for ack in acks) == list(range(2, 22))
    for user in (a, b):
        seen = [e["data"]["seq"] for e in await _stream(resources, user)]
        assert sorted(seen) == list(range(1, 22))  # every message exactly once per user


@pytest.mark.gen_test
async def test_copies_of_one_client_msg_id_get_the_first_ack_and_one_event(resources):
    a, b = await _two_users(resources)
    await chat.send_message(resources, a, _body("warm-up"), to_user_id=b)
    copy_id = uuid.uuid4().hex
    acks = await asyncio.gather(*(chat.send_message(resources, a, _body("once", copy_id),
                                                    to_user_id=b) for _ in range(5)))
    assert len({(ack["id"], ack["seq"], ack["created_at"]) for ack in acks}) == 1
    again = await chat.send_message(resources, a, _body("once", copy_id), to_user_id=b)
    assert (again["id"], again["seq"]) == (acks[0]["id"], acks[0]["seq"])
    texts = [e["data"]["content"]["text"] for e in await _stream(resources, b)]
    assert texts == ["warm-up", "once"]
    # The refused copies left no seq behind: the next message is the next number.
    after = await chat.send_message(resources, a, _body("next"), to_user_id=b)
    assert after["seq"] == acks[0]["seq"] + 1


@pytest.mark.gen_test
async def test_a_retry_after_being_blocked_still_gets_its_first_ack_but_new_sends_are_refused(
        resources):
    a, b = await _two_users(resources)
    body = _body("before the block")
    first = await chat.send_message(resources, a, body, to_user_id=b)
    async with resources.db.session() as session, session.begin():
        await users.block_user(session, resources.cache, b, a)
    retry = await chat.send_message(resources, a, body, to_user_id=b)
    assert (retry["id"], retry["seq"]) == (first["id"], first["seq"])
    with pytest.raises(ChatBlocked):
        await chat.send_message(resources, a, _body("after the block"), to_user_id=b)
    assert len(await _stream(resources, b)) == 1


@pytest.mark.gen_test
async def test_flush_after_commit_with_redis_down_leaves_the_rows_for_the_relay(resources):
    a, _b = await _two_users(resources)
    async with resources.db.session() as session, session.begin():
        await events.emit_after_commit(session, [(a, "chat.read", {
            "conversation_id": 1, "reader_id": a, "seq": 1})], claim_seconds=30)
        rows = outbox.take_claimed(session)

    # Our real Cache, pointed at a port nobody listens on: the flush fails, rows stay.
    dead = types.SimpleNamespace(db=resources.db, cache=Cache(
        resources.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})))
    try:
        assert await outbox.flush_after_commit(dead, rows, wait_for_delete=True) == 0
    finally:
        await dead.cache.close()
    assert await _outbox_rows(resources, events.user_channel(a)) == 1
    assert await outbox.flush_after_commit(resources, rows, wait_for_delete=True) == 1
    assert await _outbox_rows(resources, events.user_channel(a)) == 0
    assert [e["type"] for e in await _stream(resources, a)] == ["chat.read"]
