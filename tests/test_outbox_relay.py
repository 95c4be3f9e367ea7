"""The outbox relay against real brokers: order, backoff, outages, and RabbitMQ by URL alone."""
from __future__ import annotations

import base64
import datetime as dt
import os
import uuid

import pytest
from sqlalchemy import select, update

from models.base import utcnow
from models.platform import OutboxMessage
from pawhome.platform import codec
from pawhome.platform.outbox import OutboxRelay, enqueue_task
from pawhome.platform.resources import Resources
from settings import Settings
from tests.fixtures_worker import probe_state, start_worker, wait_until
from tests.services import PrivateRedis, free_port

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _settings(database_url: str, **overrides) -> Settings:
    """Settings on this module's own database: its relays must see only its outbox rows,
    not the rest of the run's (private_database)."""
    return Settings(database_url=database_url, **overrides)


async def _rows(resources, ids) -> dict[int, OutboxMessage]:
    async with resources.db.session() as session:
        rows = (await session.execute(
            select(OutboxMessage).where(OutboxMessage.id.in_(ids)))).scalars().all()
    return {row.id: row for row in rows}


async def _enqueue(resources, *calls) -> list[int]:
    async with resources.db.session() as session, session.begin():
        rows = [enqueue_task(session, name, *args) for name, *args in calls]
    return [row.id for row in rows]


@pytest.mark.gen_test(timeout=60)
async def test_relay_hands_rows_to_the_broker_in_commit_order(resources, private_database):
    # A queue prefix no worker consumes, so the messages stay in the broker to be read.
    prefix = f"order{uuid.uuid4().hex[:8]}."
    other = Resources(_settings(private_database, task_queue_prefix=prefix,
                                broker_url=os.environ["REDIS_URL"]))
    try:
        probes = [uuid.uuid4().hex for _ in range(3)]
        ids = await _enqueue(other, *[("tests.record_run", p) for p in probes])
        assert await OutboxRelay(other).relay_once() >= 3
        assert await _rows(other, ids) == {}  # delivered rows are deleted
        queue_key = f"{other.settings.redis_prefix}celery:{prefix}default"
        raw = await other.cache.redis.lrange(queue_key, 0, -1)
        messages = [codec.loads(m) for m in reversed(raw)]  # LPUSH: oldest is last
        delivered = [codec.loads(base64.b64decode(m["body"]))[0][0] for m in messages
                     if m["headers"]["task"] == "tests.record_run"]
        assert delivered == probes
        await other.cache.redis.delete(queue_key)
    finally:
        await other.close()


@pytest.mark.gen_test(timeout=60)
async def test_undeliverable_row_backs_off_and_holds_back_later_rows(resources, private_database):
    down = Resources(_settings(private_database, broker_url=f"redis://127.0.0.1:{free_port()}/0",
                               task_queue_prefix=f"down{uuid.uuid4().hex[:8]}."))
    try:
        first, second = await _enqueue(down, ("tests.record_run", "a"),
                                       ("tests.record_run", "b"))
        relay = OutboxRelay(down)
        before = utcnow()
        assert await relay.relay_once() == 0
        rows = await _rows(down, [first, second])
        assert rows[first].attempts == 1 and rows[first].last_error
        assert dt.timedelta(seconds=0.5) < rows[first].available_at - before < dt.timedelta(seconds=3)
        assert rows[second].attempts == 0 and rows[second].last_error == ""
        # Due again: the second failure doubles the delay.
        async with down.db.session() as session, session.begin():
            await session.execute(update(OutboxMessage).where(OutboxMessage.id == first)
                                  .values(available_at=utcnow()))
        before = utcnow()
        assert await relay.relay_once() == 0
        rows = await _rows(down, [first, second])
        assert rows[first].attempts == 2
        assert dt.timedelta(seconds=1.5) < rows[first].available_at - before < dt.timedelta(seconds=4)
        async with down.db.session() as session, session.begin():
            for row_id in (first, second):
                await session.delete(await session.get(OutboxMessage, row_id))
    finally:
        await down.close()


@pytest.mark.gen_test(timeout=60)
async def test_rolled_back_change_enqueues_nothing(resources, private_database):
    async with resources.db.session() as session, session.begin():
        row = enqueue_task(session, "tests.record_run", "never")
        await session.flush()
        row_id = row.id
        await session.rollback()
    assert await _rows(resources, [row_id]) == {}


def test_task_arguments_must_be_json():
    class Pet:  # an object, not an id
        pass

    with pytest.raises(TypeError):
        enqueue_task(None, "tests.record_run", Pet())  # type: ignore[arg-type]


@pytest.mark.gen_test(timeout=120)
async def test_committed_task_survives_a_broker_outage_and_runs_once_it_returns(resources, private_database):
    broker = PrivateRedis().start()
    worker = None
    env = {"BROKER_URL": broker.url, "TASK_QUEUE_PREFIX": f"outage{uuid.uuid4().hex[:8]}."}
    outage = Resources(_settings(private_database, broker_url=env["BROKER_URL"],
                                 task_queue_prefix=env["TASK_QUEUE_PREFIX"]))
    try:
        broker.stop()
        probe = uuid.uuid4().hex
        (row_id,) = await _enqueue(outage, ("tests.record_run", probe))
        relay = OutboxRelay(outage)
        assert await relay.relay_once() == 0
        rows = await _rows(outage, [row_id])
        assert rows[row_id].attempts == 1  # still there, waiting

        broker.start()  # same port: the broker is back
        worker = start_worker(env, queues="default")

        async def relayed():
            await relay.relay_once()
            return await _rows(outage, [row_id]) == {}

        await wait_until(relayed, timeout=30, what="relay after the outage")
        state = await wait_until(lambda: probe_state(outage.cache, probe), timeout=30,
                                 what="task to run")
        # More relay passes find nothing: the row was delivered once and the task ran once.
        assert await relay.relay_once() == 0
        assert (await probe_state(outage.cache, probe))["runs"] == "1" == state["runs"]
    finally:
        if worker:
            worker.stop()
        await outage.close()
        broker.cleanup()


@pytest.mark.gen_test(timeout=120)
async def test_rabbitmq_broker_needs_only_the_url(resources, private_database):
    prefix = f"t_amqp_{uuid.uuid4().hex[:8]}."
    env = {"BROKER_URL": RABBITMQ_URL, "TASK_QUEUE_PREFIX": prefix}
    rabbit = Resources(_settings(private_database, broker_url=RABBITMQ_URL,
                                 task_queue_prefix=prefix))
    worker = start_worker(env, queues="default,notify")
    try:
        probes = [uuid.uuid4().hex, uuid.uuid4().hex]
        await _enqueue(rabbit, ("tests.record_run", probes[0]),
                       ("notify.push_to_user", 1, "test.ping", {"probe": probes[1]}))
        await wait_until(lambda: OutboxRelay(rabbit).relay_once(), what="relay to RabbitMQ")
        state = await wait_until(lambda: probe_state(rabbit.cache, probes[0]), timeout=30,
                                 what="task over RabbitMQ")
        assert state["runs"] == "1"
    finally:
        worker.stop()
        await rabbit.close()
        _delete_rabbit_queues(prefix)


def _delete_rabbit_queues(prefix: str) -> None:
    from kombu import Connection

    from workers.celery_app import QUEUE_NAMES

    with Connection(RABBITMQ_URL) as conn:
        channel = conn.channel()
        for queue in QUEUE_NAMES:
            try:
                channel.queue_delete(prefix + queue)
                channel.exchange_delete(prefix + queue)
            except Exception:
                channel = conn.channel()
