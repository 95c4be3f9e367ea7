"""Live topics: who may watch what, and counters throttled per topic across processes."""
from __future__ import annotations

import asyncio
import math
import time
import uuid

import pytest

from models.realtime import Conversation, ConversationMember
from pawhome.platform import codec, topics
from pawhome.platform.errors import Forbidden, NotFound
from pawhome.platform.events import topic_channel_key
from pawhome.platform.resources import Resources
from tests.test_notifications import make_user


async def make_conversation(resources, a: int, b: int) -> int:
    low, high = sorted((a, b))
    async with resources.db.session() as session, session.begin():
        conversation = Conversation(user_a_id=low, user_b_id=high, last_seq=0)
        session.add(conversation)
        await session.flush()
        for me, peer in ((a, b), (b, a)):
            session.add(ConversationMember(conversation_id=conversation.id, user_id=me,
                                           peer_id=peer))
        return conversation.id


@pytest.mark.gen_test(timeout=30)
async def test_only_members_may_watch_a_conversation(resources):
    a, b, outsider = [await make_user(resources) for _ in range(3)]
    conversation = await make_conversation(resources, a, b)
    await topics.authorize(resources, a, f"conversation:{conversation}")
    await topics.authorize(resources, b, f"conversation:{conversation}")
    with pytest.raises(Forbidden):
        await topics.authorize(resources, outsider, f"conversation:{conversation}")
    with pytest.raises(Forbidden):
        await topics.authorize(resources, a, "conversation:999999999")
    with pytest.raises(NotFound):
        await topics.authorize(resources, a, "conversation:abc")


@pytest.mark.gen_test(timeout=30)
async def test_malformed_and_unknown_topics_are_not_found(resources):
    user = await make_user(resources)
    for topic in ("", "conversation", ":1", "conversation:", "Conversation:1", "post:0",
                  "conversation:1:2", "conversation:1 OR 1=1", "x" * 40 + ":1",
                  "conversation:" + "1" * 65, "no-such-kind:5"):
        with pytest.raises(NotFound):
            await topics.authorize(resources, user, topic)


@pytest.mark.gen_test(timeout=30)
async def test_a_registered_kind_is_asked_and_its_answer_kept(resources):
    asked = []

    async def only_even(res, user_id: int, topic_id: str) -> bool:
        asked.append((user_id, topic_id))
        return int(topic_id) % 2 == 0

    topics.register_topic_kind("testkind", only_even)
    try:
        await topics.authorize(resources, 7, "testkind:42")
        with pytest.raises(Forbidden):
            await topics.authorize(resources, 7, "testkind:43")
        assert asked == [(7, "42"), (7, "43")]
        assert "testkind" in topics.registered_kinds()
    finally:
        topics._authorisers.pop("testkind", None)
    with pytest.raises(ValueError):
        topics.register_topic_kind("Bad Kind", only_even)


async def _collect(pubsub, until: float) -> list[dict]:
    """Every message on the subscription until the monotonic deadline."""
    received = []
    while time.monotonic() < until:
        message = await pubsub.get_message(ignore_subscribe_messages=True,
                                           timeout=max(0.01, until - time.monotonic()))
        if message is not None:
            received.append(codec.loads(message["data"]))
    return received


@pytest.fixture
def fast_counters(settings, io_loop):
    """Two "processes" (separate Redis clients) with a 0.2 s counter interval."""
    settings.topic_counter_interval = 0.2
    first, second = Resources(settings), Resources(settings)
    yield first, second
    io_loop.run_sync(first.close)
    io_loop.run_sync(second.close)


@pytest.mark.gen_test(timeout=60)
async def test_hundred_rapid_counter_updates_are_throttled_and_end_on_the_last(fast_counters):
    first, second = fast_counters
    interval = 0.2
    topic = f"post:{uuid.uuid4().int % 10**9}"
    pubsub = first.cache.redis.pubsub()
    await pubsub.subscribe(topic_channel_key(first.cache, topic))
    try:
        started = time.monotonic()
        for likes in range(1, 101):
            # Updates alternate between two processes, ~100 per second.
            process = first if likes % 2 else second
            await topics.publish_counter(process.cache, topic, {"likes": likes, "comments": 3})
            await asyncio.sleep(0.01)
        duration = time.monotonic() - started
        await topics.flush_counters()
        received = await _collect(pubsub, time.monotonic() + interval * 3)
    finally:
        await pubsub.aclose()
    counts = [m["ev"]["data"]["counts"]["likes"] for m in received]
    assert counts, "no counter update arrived"
    assert counts[-1] == 100, counts
    assert counts == sorted(counts)
    # At most one publish per interval (plus the trailing one).
    assert len(counts) <= math.ceil((duration + interval) / interval) + 1, (len(counts), duration)
    assert len(counts) < 50
    event = received[-1]
    assert event["k"] == "eph" and event["ev"]["type"] == "topic.counters"
    assert event["ev"]["topic"] == topic
    assert event["ev"]["data"] == {"topic": topic, "counts": {"likes": 100, "comments": 3}}


@pytest.mark.gen_test(timeout=30)
async def test_a_lone_update_is_published_at_once_and_only_once(fast_counters):
    first, _ = fast_counters
    topic = f"post:{uuid.uuid4().int % 10**9}"
    pubsub = first.cache.redis.pubsub()
    await pubsub.subscribe(topic_channel_key(first.cache, topic))
    try:
        sent = time.monotonic()
        await topics.publish_counter(first.cache, topic, {"likes": 1})
        received = await _collect(pubsub, time.monotonic() + 0.6)
        await topics.flush_counters()
    finally:
        await pubsub.aclose()
    assert [m["ev"]["data"]["counts"] for m in received] == [{"likes": 1}]
    assert received[0]["ev"]["ts"] / 1000 <= time.time()
    assert time.monotonic() - sent < 5


@pytest.mark.gen_test(timeout=30)
async def test_counter_for_a_malformed_topic_is_refused(fast_counters):
    first, _ = fast_counters
    with pytest.raises(NotFound):
        await topics.publish_counter(first.cache, "not a topic", {"likes": 1})
