"""The relay draining a backlog never deadlocks requests that insert outbox rows."""
import asyncio
import uuid

import pytest
from sqlalchemy import delete

from models.platform import OutboxMessage
from pawhome.platform.events import emit_to_user, user_channel
from pawhome.platform.outbox import OutboxRelay


@pytest.mark.gen_test(timeout=120)
async def test_inserts_racing_a_draining_relay_all_commit(resources):
    base = 5 * 10**9 + uuid.uuid4().int % 10**8
    users = [base + i for i in range(30)]
    async with resources.db.session() as session, session.begin():
        for i in range(300):
            emit_to_user(session, users[i % 10], "test.backlog", {"i": i})
    relay = OutboxRelay(resources)
    failures: list[BaseException] = []

    async def insert_rows(k: int) -> None:
        for j in range(5):
            try:
                async with resources.db.session() as session, session.begin():
                    emit_to_user(session, users[10 + k], "test.live", {"j": j})
            except Exception as error:  # a deadlock would surface here as a 500
                failures.append(error)

    async def drain() -> None:
        while await relay.relay_once():
            pass

    try:
        await asyncio.gather(drain(), drain(), *(insert_rows(k) for k in range(20)))
        await drain()
        assert failures == []
    finally:
        async with resources.db.session() as session, session.begin():
            await session.execute(delete(OutboxMessage).where(
                OutboxMessage.name.in_([user_channel(u) for u in users])))
