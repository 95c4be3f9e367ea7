"""Group commit of socket sends (pawhome/messaging/chat_writer.py): sends queued together are
written in
one transaction with the single path's answers — good ones stored with gap-free seqs, a
refused one failing alone, a repeated client_msg_id getting the first ack — and anything
unexpected falls back to one-at-a-time sends that still ack every good message once."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import event, func, select

from models.platform import OutboxMessage
from models.realtime import Message
from models.users import UserBlock
from pawhome.identity import users
from pawhome.messaging import chat, chat_writer
from pawhome.platform import outbox, streams
from pawhome.platform.errors import ChatBlocked, ChatNotAllowed, NotFound
from pawhome.platform.outbox import OutboxRelay
from pawhome.platform.resources import Resources
from tests.fixtures_worker import wait_until
from tests.realtime_helpers import gateways, ws_connect  # noqa: F401

# Quotes, backslashes, a NUL-free control-free mix of scripts and an emoji: what the batch's
# outbox row must carry through MariaDB unchanged.
TRICKY = "z 在吗 🐶 ' \" \\ %s ;--"


def _body(text: str = "hi", client_msg_id: str | None = None,
          kind: str = "text") -> chat.MessageBody:
    return chat.MessageBody(client_msg_id=client_msg_id or uuid.uuid4().hex, kind=kind,
                            text=text if kind == "text" else None,
                            media_id=1 if kind == "image" else None)


async def _users(resources, n: int) -> list[int]:
    async with resources.db.session() as session, session.begin():
        made = [await users.get_or_create_by_openid(session, f"cw-{uuid.uuid4().hex}")
                for _ in range(n)]
        return [user.id for user, _ in made]


async def _conversation(resources, a: int, b: int) -> int:
    """Open the pair's conversation with a first message (single path)."""
    return (await chat.send_message(resources, a, _body("open"), to_user_id=b))[
        "conversation_id"]


async def _gather(*sends):
    """Run sends concurrently (they queue together); results or exceptions, in order."""
    return await asyncio.gather(*sends, return_exceptions=True)


async def _stored(resources, sender_id: int) -> list[Message]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Message).where(
            Message.sender_id == sender_id).order_by(Message.id))).scalars())


async def _stream_seqs(resources, user_id: int, conversation_id: int) -> list[int]:
    replay = await streams.read_since(resources.cache, user_id, None, 0)
    assert replay.ok, replay.reason
    return [e["data"]["seq"] for _eid, e in replay.events
            if e["type"] == "chat.message" and e["data"]["conversation_id"] == conversation_id]


def _send(resources, sender: int, body: chat.MessageBody, **target):
    return chat_writer.send_message(resources, sender, body, **target)


@pytest.mark.gen_test
async def test_one_batch_mixes_good_sends_a_block_a_duplicate_and_a_stranger(resources):
    a, b, c, d = await _users(resources, 4)
    ab, ac = await _conversation(resources, a, b), await _conversation(resources, a, c)
    cd = await _conversation(resources, c, d)
    async with resources.db.session() as session, session.begin():
        session.add(UserBlock(user_id=c, blocked_id=a))  # c blocked a after they talked
    writer = chat_writer.writer_for(resources)
    copy = _body("twice", "dup-1")
    results = await _gather(
        _send(resources, a, _body("one"), conversation_id=ab),
        _send(resources, b, _body("two"), conversation_id=ab),
        _send(resources, a, _body("blocked"), conversation_id=ac),
        _send(resources, a, copy, conversation_id=ab),
        _send(resources, a, _body("twice", "dup-1"), conversation_id=ab),
        _send(resources, a, _body("stranger"), conversation_id=cd),
        _send(resources, b, _body("three"), to_user_id=a))
    one, two, blocked, first, again, stranger, three = results
    assert writer.batches == 1 and writer.batched == 4  # one transaction for the good ones
    assert isinstance(blocked, ChatBlocked)
    assert isinstance(stranger, NotFound)  # not a member: 404 from the single path
    assert again == first and first["client_msg_id"] == "dup-1"
    assert [r["seq"] for r in (one, two, first, three)] == [2, 3, 4, 5]  # arrival order
    assert {r["conversation_id"] for r in (one, two, first, three)} == {ab}
    assert [m.client_msg_id for m in await _stored(resources, a)].count("dup-1") == 1
    for user in (a, b):  # every message once in both users' streams, none of the refused
        assert await _stream_seqs(resources, user, ab) == [1, 2, 3, 4, 5]
    async with resources.db.session() as session:
        view = await chat.conversation_detail(session, a, ab)
    assert view["last_seq"] == 5 and view["read_seq"] == 4 and view["unread"] == 1
    assert view["last_message"]["content"] == {"text": "three"}


@pytest.mark.gen_test
async def test_a_client_msg_id_stored_by_an_earlier_batch_returns_the_first_ack(resources):
    a, b = await _users(resources, 2)
    conversation = await _conversation(resources, a, b)
    first = await _send(resources, a, _body("hello", "retry-1"), conversation_id=conversation)
    writer = chat_writer.writer_for(resources)
    other, again = await _gather(
        _send(resources, b, _body("meanwhile"), conversation_id=conversation),
        _send(resources, a, _body("hello", "retry-1"), conversation_id=conversation))
    assert again == first and other["seq"] == first["seq"] + 1
    assert writer.fallbacks == 0  # found by the batch's own duplicate check
    assert [m.client_msg_id for m in await _stored(resources, a)].count("retry-1") == 1
    assert await _stream_seqs(resources, b, conversation) == [1, 2, 3]


@pytest.mark.gen_test
async def test_privacy_refusals_and_first_messages_keep_the_single_paths_answers(resources):
    a, b, shy = await _users(resources, 3)
    async with resources.db.session() as session, session.begin():
        await users.update_settings(session, shy, users.SettingsUpdate(
            privacy_prefs=users.PrivacyPrefsPatch(allow_messages_from="nobody")))
    results = await _gather(
        # No conversation yet: created by the single path, then the same sender's next
        # sends follow it in order.
        _send(resources, a, _body("first"), to_user_id=b),
        _send(resources, a, _body("second"), to_user_id=b),
        _send(resources, b, _body("refused"), to_user_id=shy))
    first, second, refused = results
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["conversation_id"] == second["conversation_id"]
    assert isinstance(refused, ChatNotAllowed)
    third = await _send(resources, a, _body("third"), to_user_id=b)
    assert third["seq"] == 3 and chat_writer.writer_for(resources).batched >= 1


@pytest.mark.gen_test
async def test_a_failing_insert_falls_back_and_acks_every_good_message_once(resources,
                                                                            monkeypatch):
    a, b, c = await _users(resources, 3)
    ab, ac = await _conversation(resources, a, b), await _conversation(resources, a, c)
    # A copy of one send commits between the batch's duplicate check and its INSERT (as from
    # another process): the INSERT fails on the unique key and the whole batch rolls back.
    stored_copy = await chat.send_message(resources, c, _body("copy", "race-1"),
                                          conversation_id=ac)
    original = chat_writer.ChatWriter._rules

    async def rules_missing_the_copy(self, lane, items, escape):
        rules, existing = await original(self, lane, items, escape)
        existing.pop((c, "race-1"), None)
        return rules, existing
    monkeypatch.setattr(chat_writer.ChatWriter, "_rules", rules_missing_the_copy)
    writer = chat_writer.writer_for(resources)
    results = await _gather(
        _send(resources, a, _body("g1"), conversation_id=ab),
        _send(resources, c, _body("copy", "race-1"), conversation_id=ac),
        _send(resources, b, _body("g2"), conversation_id=ab),
        _send(resources, a, _body("g3"), conversation_id=ac))
    assert writer.batches == 0 and writer.fallbacks == 4
    g1, copy, g2, g3 = results
    assert copy == {k: v for k, v in stored_copy.items() if k != "warnings"}
    # Two senders' single sends run concurrently: either may take seq 2.
    assert {g1["seq"], g2["seq"]} == {2, 3} and g3["seq"] == 3
    for user, conversation, seqs in ((b, ab, [1, 2, 3]), (c, ac, [1, 2, 3])):
        # once each (two senders' single sends may append in either order)
        assert sorted(await _stream_seqs(resources, user, conversation)) == seqs
    async with resources.db.session() as session:
        count = (await session.execute(select(func.count(Message.id)).where(
            Message.conversation_id.in_([ab, ac])))).scalar_one()
    assert count == 6  # two openers, the stored copy, three new: nothing twice


@pytest.mark.gen_test
async def test_two_writers_on_their_own_connections_interleave_gap_free(resources, settings):
    """Two processes' writers (each its own Resources and connection) sending into one
    conversation at once: the row lock queues the batches, seqs stay distinct and gap-free,
    each sender's in the order it sent."""
    other = Resources(settings)
    try:
        a, b = await _users(resources, 2)
        conversation = await _conversation(resources, a, b)

        async def chain(res, sender: int, n: int) -> list[int]:
            return [(await _send(res, sender, _body(f"{sender}-{i}"),
                                 conversation_id=conversation))["seq"] for i in range(n)]
        batches = await asyncio.gather(*(chain(resources if k % 2 else other,
                                               a if k < 4 else b, 10) for k in range(8)))
        for seqs in batches:
            assert seqs == sorted(seqs)
        everything = sorted(s for seqs in batches for s in seqs)
        assert everything == list(range(2, 82))
        assert chat_writer.writer_for(resources).batches > 0
        assert chat_writer.writer_for(other).batches > 0
        # Exactly once each (two processes' appends may interleave, as with single sends).
        assert sorted(await _stream_seqs(resources, b, conversation)) == list(range(1, 82))
    finally:
        await other.close()


@pytest.mark.gen_test(timeout=90)
async def test_senders_on_two_gateway_processes_get_gap_free_seqs(api, gateways):
    g1, g2 = await gateways.start(), await gateways.start()
    alice, bob = await api.login(), await api.login()
    a1, a2 = await ws_connect(g1, alice.token), await ws_connect(g2, alice.token)
    b1 = await ws_connect(g2, bob.token)
    opened = await a1.request("chat.send", to_user_id=bob.user_id, client_msg_id="open",
                              kind="text", text="open")
    conversation = opened["conversation_id"]

    async def burst(client, tag: str, n: int) -> list[int]:
        refs = [await client.send("chat.send", conversation_id=conversation,
                                  client_msg_id=f"{tag}-{i}", kind="text", text=tag)
                for i in range(n)]  # pipelined: no wait for acks between them
        acks = [await client.wait_for("chat.ack", timeout=20,
                                      where=lambda f, ref=ref: f.get("ref") == ref)
                for ref in refs]
        return [ack["seq"] for ack in acks]
    runs = await asyncio.gather(burst(a1, "a1", 15), burst(a2, "a2", 15), burst(b1, "b1", 15))
    for seqs in runs:
        assert seqs == sorted(seqs)  # each sender's messages in the order it sent them
    assert sorted(s for seqs in runs for s in seqs) == list(range(2, 47))
    got = set()
    while len(got) < 46:
        frame = await b1.wait_for("chat.message", timeout=20)
        assert frame["data"]["seq"] not in got  # exactly once
        got.add(frame["data"]["seq"])
    for client in (a1, a2, b1):
        await client.close()


@pytest.mark.gen_test
async def test_a_batch_whose_delivery_failed_is_delivered_once_by_the_relay(resources,
                                                                          monkeypatch):
    resources.settings.outbox_claim_seconds = 0.3
    a, b, c = await _users(resources, 3)
    ab, cb = await _conversation(resources, a, b), await _conversation(resources, c, b)

    async def redis_down(_cache, _rows) -> bool:
        return False  # as outbox.deliver_claimed answers when Redis failed
    monkeypatch.setattr(outbox, "deliver_claimed", redis_down)
    acks = await _gather(_send(resources, a, _body("x"), conversation_id=ab),
                         _send(resources, c, _body("y"), conversation_id=cb),
                         _send(resources, a, _body(TRICKY), conversation_id=ab))
    assert [ack["seq"] for ack in acks] == [2, 2, 3]  # committed: acked all the same
    assert chat_writer.writer_for(resources).batches == 1
    assert await _stream_seqs(resources, b, ab) == [1]  # nothing delivered yet
    monkeypatch.undo()
    relay = OutboxRelay(resources)
    await asyncio.sleep(0.4)  # the claim runs out
    assert await relay.relay_once() >= 1
    await relay.relay_once()
    assert await _stream_seqs(resources, b, ab) == [1, 2, 3]
    assert await _stream_seqs(resources, b, cb) == [1, 2]
    assert await _stream_seqs(resources, a, ab) == [1, 2, 3]  # the sender's other devices
    replay = await streams.read_since(resources.cache, b, None, 0)
    texts = [e["data"]["content"]["text"] for _eid, e in replay.events]
    assert texts[-1] == TRICKY  # the stored row's text, byte for byte
    async with resources.db.session() as session:
        left = (await session.execute(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.kind == "events"))).scalar_one()
    assert left == 0


@pytest.mark.gen_test
async def test_queued_sends_keep_each_senders_order_across_lanes(resources):
    """Small batches on two lanes: a sender's next batch waits for the commit of its
    earlier one, so each sender's seqs follow the order of its sends."""
    resources.settings.chat_group_commit_max = 3
    resources.settings.chat_group_commit_lanes = 2
    a, b, c = await _users(resources, 3)
    ab, cb = await _conversation(resources, a, b), await _conversation(resources, c, b)
    futures = []
    for n in range(30):
        sender, conversation = (a, ab) if n % 3 else (c, cb)
        futures.append((sender, chat_writer.queue_message(
            resources, sender, _body(f"n{n}"), conversation_id=conversation)))
    acks = [(sender, await future) for sender, future in futures]
    for sender, opened in ((a, 1), (c, 1)):
        seqs = [ack["seq"] for s, ack in acks if s == sender]
        assert seqs == list(range(opened + 1, opened + 1 + len(seqs)))  # in send order
    assert chat_writer.writer_for(resources).batches >= 10


@pytest.mark.gen_test
async def test_closing_the_resources_gives_the_writers_kept_connection_back(settings):
    """The writer keeps its lane's connection for the next burst; Resources.close returns it
    to the pool before the pool goes (the writer asked Resources.on_close to tell it)."""
    other = Resources(settings)
    pool = other.db.engine.pool
    checked_in: list[int] = []
    try:
        a, b = await _users(other, 2)
        conversation = await _conversation(other, a, b)
        await _send(other, a, _body("kept"), conversation_id=conversation)
        assert chat_writer.writer_for(other).batches == 1

        async def only_the_writers_connection_out() -> bool:
            return pool.checkedout() == 1  # the single send's background delete is done
        await wait_until(only_the_writers_connection_out, timeout=5)
        event.listen(pool, "checkin", lambda *_args: checked_in.append(1))
    finally:
        await other.close()
    assert checked_in == [1]


@pytest.mark.gen_test(timeout=30)
async def test_under_sustained_traffic_a_lane_waits_to_gather_sends_into_fewer_batches(
        resources):
    """Sends trickling in 15 ms apart right after a batch: with the gather wait, a lane that
    finds only a few queued waits for more, so twenty sends take one or two transactions,
    each sender's still in order; without it they go in many small ones."""
    a, b, c = await _users(resources, 3)
    ab, cb = await _conversation(resources, a, b), await _conversation(resources, c, b)

    async def trickle(wait_ms: float) -> tuple[int, list[dict]]:
        resources.settings.chat_group_commit_wait_ms = wait_ms
        writer = chat_writer.writer_for(resources)
        await _send(resources, a, _body("warm"), conversation_id=ab)  # traffic is on
        before = writer.batches
        futures = []
        for n in range(20):
            sender, conversation = (a, ab) if n % 2 else (c, cb)
            futures.append(chat_writer.queue_message(
                resources, sender, _body(f"t{n}"), conversation_id=conversation))
            await asyncio.sleep(0.015)
        acks = [await future for future in futures]
        return writer.batches - before, acks

    gathered, acks = await trickle(500.0)
    alone, _ = await trickle(0.0)
    assert gathered <= 2 and alone >= 5, (gathered, alone)
    for conversation in (ab, cb):  # gap-free, in send order
        seqs = [ack["seq"] for ack in acks if ack["conversation_id"] == conversation]
        assert seqs == sorted(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs)))


@pytest.mark.gen_test(timeout=30)
async def test_a_send_after_a_quiet_spell_is_written_without_the_gather_wait(resources):
    """The wait only applies under sustained traffic: the first send after a pause is
    written at once, even with a long gather wait configured."""
    resources.settings.chat_group_commit_wait_ms = 3000.0
    resources.settings.chat_group_commit_busy_seconds = 0.2
    a, b = await _users(resources, 2)
    ab = await _conversation(resources, a, b)
    await _send(resources, a, _body("one"), conversation_id=ab)
    await asyncio.sleep(0.3)  # quiet longer than the busy window
    started = asyncio.get_running_loop().time()
    await _send(resources, a, _body("two"), conversation_id=ab)
    assert asyncio.get_running_loop().time() - started < 1.5
