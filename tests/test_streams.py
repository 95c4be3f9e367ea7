"""Per-user event streams: increasing ids, idempotent appends, exact replay or an explicit
resync."""
import asyncio
import time
import uuid

import pytest

from pawhome.platform import channels, codec, streams
from pawhome.platform.cache import Cache
from pawhome.platform.events import make_event, publish_to_user
from settings import Settings


def _user() -> int:
    return 3 * 10**9 + uuid.uuid4().int % 10**8


@pytest.mark.gen_test
async def test_appends_get_strictly_increasing_ids_in_one_epoch(resources):
    cache, user = resources.cache, _user()
    results = [await streams.append(cache, user, make_event("t.n", {"i": i})) for i in range(5)]
    assert [eid for _, eid in results] == [1, 2, 3, 4, 5]
    assert len({epoch for epoch, _ in results}) == 1
    assert await streams.head(cache, user) == (results[0][0], 5)


@pytest.mark.gen_test
async def test_concurrent_appends_get_distinct_gap_free_ids(resources):
    cache, user = resources.cache, _user()
    results = await asyncio.gather(*(streams.append(cache, user, make_event("t.n", {"i": i}))
                                     for i in range(200)))
    assert sorted(eid for _, eid in results) == list(range(1, 201))


@pytest.mark.gen_test
async def test_appending_the_same_event_twice_stores_it_once(resources):
    cache, user = resources.cache, _user()
    event = make_event("chat.message", {"text": "hi"})
    first = await streams.append(cache, user, event)
    again = await streams.append(cache, user, event)
    assert again == first
    replay = await streams.read_since(cache, user, first[0], 0)
    assert [ev["id"] for _, ev in replay.events] == [event["id"]]


@pytest.mark.gen_test
async def test_read_since_replays_exactly_the_newer_events_in_order(resources):
    cache, user = resources.cache, _user()
    sent = [make_event("t.n", {"i": i}) for i in range(6)]
    for event in sent:
        epoch, _ = await streams.append(cache, user, event)
    replay = await streams.read_since(cache, user, epoch, 2)
    assert replay.ok and replay.last_eid == 6
    assert [eid for eid, _ in replay.events] == [3, 4, 5, 6]
    assert [ev for _, ev in replay.events] == sent[2:]
    up_to_date = await streams.read_since(cache, user, epoch, 6)
    assert up_to_date.ok and up_to_date.events == [] and up_to_date.last_eid == 6


@pytest.mark.gen_test
async def test_an_id_older_than_the_retained_events_needs_a_resync(io_loop):
    cache = Cache(Settings(events_retention_count=3))
    user = _user()
    try:
        for i in range(10):
            epoch, _ = await streams.append(cache, user, make_event("t.n", {"i": i}))
        replay = await streams.read_since(cache, user, epoch, 2)
        assert not replay.ok and replay.reason == "too_old" and replay.last_eid == 10
        recent = await streams.read_since(cache, user, epoch, 7)
        assert recent.ok and [eid for eid, _ in recent.events] == [8, 9, 10]
    finally:
        await cache.close()


@pytest.mark.gen_test
async def test_a_lost_stream_starts_a_new_epoch_and_old_epochs_resync(resources):
    cache, user = resources.cache, _user()
    old_epoch, _ = await streams.append(cache, user, make_event("t.n", {}))
    # What Redis losing its data looks like to one user.
    await cache.redis.delete(streams.meta_key(cache, user), streams.log_key(cache, user))
    lost = await streams.read_since(cache, user, old_epoch, 1)
    assert not lost.ok and lost.reason == "epoch_changed"
    new_epoch, eid = await streams.append(cache, user, make_event("t.n", {}))
    assert new_epoch != old_epoch and eid == 1
    stale = await streams.read_since(cache, user, old_epoch, 1)
    assert not stale.ok and stale.reason == "epoch_changed" and stale.epoch == new_epoch


@pytest.mark.gen_test
async def test_an_idle_users_stream_expires_with_its_retention_age(io_loop):
    cache = Cache(Settings(events_retention_seconds=1))
    user = _user()
    try:
        epoch, _ = await streams.append(cache, user, make_event("t.n", {}))
        deadline = time.monotonic() + 5
        while await cache.redis.exists(streams.meta_key(cache, user)):
            assert time.monotonic() < deadline, "the stream outlived its retention"
            await asyncio.sleep(0.1)
        replay = await streams.read_since(cache, user, epoch, 1)
        assert not replay.ok and replay.reason == "epoch_changed"
    finally:
        await cache.close()


@pytest.mark.gen_test
async def test_an_id_beyond_the_head_is_refused(resources):
    cache, user = resources.cache, _user()
    epoch, _ = await streams.append(cache, user, make_event("t.n", {}))
    replay = await streams.read_since(cache, user, epoch, 99)
    assert not replay.ok and replay.reason == "ahead"


@pytest.mark.gen_test
async def test_a_client_that_has_seen_nothing_is_up_to_date_before_any_event(resources):
    replay = await streams.read_since(resources.cache, _user(), None, 0)
    assert replay.ok and replay.events == []


@pytest.mark.gen_test
async def test_each_append_is_published_with_its_id_on_the_users_channel(resources):
    cache, user = resources.cache, _user()
    pubsub = cache.redis.pubsub()
    await pubsub.subscribe(channels.user_channel_key(cache, user))
    try:
        epoch, eid = await publish_to_user(cache, user, "order.paid", {"order_id": 9})
        deadline = time.monotonic() + 5
        message = None
        while message is None and time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        wire = codec.loads(message["data"])
        assert wire["k"] == "ev" and wire["epoch"] == epoch and wire["eid"] == eid
        assert wire["ev"]["type"] == "order.paid" and wire["ev"]["data"] == {"order_id": 9}
    finally:
        await pubsub.aclose()


@pytest.mark.gen_test
async def test_append_many_stores_each_users_events_in_order_and_publishes_them(resources):
    cache, first, second = resources.cache, _user(), _user()
    pubsub = cache.redis.pubsub()
    await pubsub.subscribe(channels.user_channel_key(cache, second))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    one, two, three = (make_event("t.n", {"i": i}) for i in range(3))
    results = await streams.append_many(cache, [
        (first, one), (second, two), (first, (three["id"], codec.dumps_str(three)))])
    assert [eid for _, eid in results] == [1, 1, 2]
    assert results[0][0] == results[2][0] and results[1][0]  # one epoch per user stream
    replay = await streams.read_since(cache, first, None, 0)
    assert [event["data"]["i"] for _, event in replay.events] == [0, 2]
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert codec.loads(message["data"]) == {"k": "ev", "epoch": results[1][0], "eid": 1,
                                            "ev": two}
    await pubsub.aclose()


@pytest.mark.gen_test
async def test_append_many_recognises_events_already_appended_either_way(resources):
    cache, user = resources.cache, _user()
    old, new = make_event("t.n", {"i": 0}), make_event("t.n", {"i": 1})
    first = await streams.append(cache, user, old)
    again = await streams.append_many(cache, [(user, old), (user, new), (user, new)])
    assert again[0] == first and again[1] == again[2] == (first[0], 2)
    assert await streams.append(cache, user, new) == (first[0], 2)
    assert await streams.head(cache, user) == (first[0], 2)
