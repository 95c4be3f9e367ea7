"""The chat path queues at most one pending push per conversation, and none for a recipient
who is online (they get the message live)."""
import uuid

import pytest
from sqlalchemy import select

from models.platform import OutboxMessage
from pawhome.messaging import subscribe_messages as sm
from pawhome.platform import presence


async def _pending_pushes(resources, user_id: int) -> int:
    async with resources.db.session() as session:
        rows = (await session.execute(select(OutboxMessage.payload).where(
            OutboxMessage.name == sm.TASK_NAME))).scalars().all()
    return sum(1 for payload in rows if payload["args"][0] == user_id)


async def _schedule(resources, user_id: int, conversation_id: int) -> bool:
    async with resources.db.session() as session, session.begin():
        return await sm.schedule_push(session, user_id, "message",
                                      conversation_id=conversation_id, grace_seconds=60,
                                      cache=resources.cache)


@pytest.mark.gen_test
async def test_one_pending_push_covers_a_burst_in_one_conversation(resources):
    user = 6 * 10**9 + uuid.uuid4().int % 10**8
    assert await _schedule(resources, user, 1) is True
    assert await _schedule(resources, user, 1) is False
    assert await _schedule(resources, user, 1) is False
    assert await _schedule(resources, user, 2) is True  # another conversation: its own push
    assert await _pending_pushes(resources, user) == 2


@pytest.mark.gen_test
async def test_an_online_recipient_needs_no_push(resources):
    user = 6 * 10**9 + uuid.uuid4().int % 10**8
    await presence.mark_online(resources.cache, "gw-test", [user])
    assert await _schedule(resources, user, 1) is False
    assert await _pending_pushes(resources, user) == 0
    await presence.mark_offline(resources.cache, "gw-test", user)
    assert await _schedule(resources, user, 1) is True
    assert await _pending_pushes(resources, user) == 1


@pytest.mark.gen_test
async def test_chat_messages_to_an_offline_user_queue_one_push(api, resources):
    alice, bob = await api.login(), await api.login()
    conversation = (await api.post("/v1/conversations", json={"to_user_id": bob.user_id},
                                   token=alice.token)).ok()["id"]
    for i in range(3):
        (await api.post(f"/v1/conversations/{conversation}/messages",
                        json={"client_msg_id": f"m{i}", "kind": "text", "text": f"hi {i}"},
                        token=alice.token)).ok()
    assert await _pending_pushes(resources, bob.user_id) == 1
