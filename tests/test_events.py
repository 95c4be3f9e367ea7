"""Events to a user's live connections: channel naming, publishing from tasks and after commit."""
from __future__ import annotations

import time
import uuid

import pytest

from pawhome.platform import codec
from pawhome.platform.events import emit_to_user, make_event, user_channel, user_channel_key
from pawhome.platform.outbox import OutboxRelay, enqueue_task
from tests.fixtures_worker import wait_until


class _PassCountingRelay(OutboxRelay):
    idle_passes = 0

    async def relay_once(self) -> int:
        moved = await super().relay_once()
        if moved == 0:
            self.idle_passes += 1
        return moved


async def _true(value):
    return value


async def _next_message(pubsub, timeout: float = 20) -> dict | None:
    """The next stored event on the channel (the "ev" of a {"k": "ev", ...} message)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            wire = codec.loads(message["data"])
            assert wire["k"] == "ev" and isinstance(wire["eid"], int) and wire["epoch"]
            return wire["ev"]
    return None


def test_each_user_has_one_prefixed_channel(resources):
    assert user_channel(42) == "ws:user:42"
    assert user_channel_key(resources.cache, 42) == resources.cache.prefix + "ws:user:42"
    assert user_channel_key(resources.cache, 42) != user_channel_key(resources.cache, 421)


def test_event_type_is_dotted_lower_case_and_data_is_json():
    event = make_event("order.status_changed", {"order_id": 7})
    assert set(event) == {"id", "type", "data", "ts"} and len(event["id"]) == 32
    for bad in ("Order.Paid", "order..paid", "", "order paid", "order.paid;drop"):
        with pytest.raises(ValueError):
            make_event(bad, {})
    with pytest.raises(TypeError):
        make_event("order.paid", {"when": object()})


@pytest.mark.gen_test(timeout=60)
async def test_event_published_inside_a_real_task_reaches_the_users_channel(
        celery_worker_process, resources, app):
    user_id = int(time.time() * 1000) % 10**9
    pubsub = resources.cache.redis.pubsub()
    await pubsub.subscribe(user_channel_key(resources.cache, user_id))
    try:
        async with resources.db.session() as session, session.begin():
            enqueue_task(session, "notify.push_to_user", user_id, "pet.generated",
                         {"pet_id": 5, "name": "豆豆 🐶"})
        event = await _next_message(pubsub)
        assert event is not None, "no event arrived"
        assert event["type"] == "pet.generated"
        assert event["data"] == {"pet_id": 5, "name": "豆豆 🐶"}
    finally:
        await pubsub.aclose()


@pytest.mark.gen_test(timeout=60)
async def test_emit_to_user_publishes_only_after_commit(resources):
    user_id = 10**9 + int(uuid.uuid4().int % 10**6)
    other_user = user_id + 1
    pubsub = resources.cache.redis.pubsub()
    await pubsub.subscribe(user_channel_key(resources.cache, user_id))
    relay = OutboxRelay(resources)
    try:
        async with resources.db.session() as session, session.begin():
            emit_to_user(session, user_id, "like.added", {"post_id": 1})
            await session.rollback()
        await relay.relay_once()
        assert await _next_message(pubsub, timeout=1) is None  # rolled back: nothing sent

        async with resources.db.session() as session, session.begin():
            sent = emit_to_user(session, user_id, "like.added", {"post_id": 2})
            emit_to_user(session, other_user, "like.added", {"post_id": 3})
        await relay.relay_once()
        event = await _next_message(pubsub)
        assert event == sent
        # The other user's event went to the other user's channel only.
        assert await _next_message(pubsub, timeout=0.5) is None
    finally:
        await pubsub.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_commit_wakes_the_running_relay_without_waiting_for_a_poll(resources):
    user_id = 2 * 10**9 + int(uuid.uuid4().int % 10**6)
    pubsub = resources.cache.redis.pubsub()
    await pubsub.subscribe(user_channel_key(resources.cache, user_id))
    relay = _PassCountingRelay(resources, poll_seconds=60)  # only a wake-up is fast enough
    relay.start()
    try:
        # Once a pass has found nothing the relay sleeps until woken or 60 s have passed.
        await wait_until(lambda: _true(relay.idle_passes), timeout=10, what="relay idle")
        async with resources.db.session() as session, session.begin():
            emit_to_user(session, user_id, "chat.message", {"text": "hi"})
        event = await _next_message(pubsub, timeout=5)
        assert event is not None and event["type"] == "chat.message"
    finally:
        await relay.stop()
        await pubsub.aclose()
