"""Tasks of the default queue: health ping, the outbox safety-net relay, housekeeping.

The housekeeping jobs are run by beat (workers/schedule.py); each deletes in bounded batches
and is idempotent, so a late or doubled run is harmless.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from workers import runtime
from workers.base import PERIODIC
from workers.celery_app import celery_app

# A relay pass moves at most OUTBOX_BATCH_SIZE rows; a run stops after this many passes so
# the task stays short (the next beat tick continues).
MAX_RELAY_PASSES = 20


@celery_app.task(name="default.ping")
def ping(value: str = "pong") -> str:
    """A no-op task used by health checks and tests to prove the worker round trip."""
    return value


@celery_app.task(name="default.relay_outbox", **PERIODIC)
def relay_outbox() -> int:
    """Relay due outbox rows to the broker/Redis, as the gateways do; returns rows moved."""
    from pawhome.platform.outbox import OutboxRelay

    async def relay() -> int:
        relay = OutboxRelay(runtime.resources())
        moved = 0
        for _ in range(MAX_RELAY_PASSES):
            batch = await relay.relay_once()
            moved += batch
            if batch < relay.settings.outbox_batch_size:
                break
        return moved

    return runtime.run(relay())


def _purge_in_batches(purge: Callable[[AsyncSession, dt.datetime], Awaitable[int]],
                      now: dt.datetime) -> int:
    async def purge_all() -> int:
        total = 0
        while True:
            async with runtime.resources().db.session() as session, session.begin():
                deleted = await purge(session, now)
            total += deleted
            if deleted < 1000:
                return total

    return runtime.run(purge_all())


@celery_app.task(name="default.purge_expired_idempotency_records", **PERIODIC)
def purge_expired_idempotency_records() -> int:
    from pawhome.platform.housekeeping import purge_expired_idempotency_records as purge

    return _purge_in_batches(purge, utcnow())


@celery_app.task(name="default.purge_expired_refresh_tokens", **PERIODIC)
def purge_expired_refresh_tokens() -> int:
    from pawhome.platform.housekeeping import purge_expired_refresh_tokens as purge

    return _purge_in_batches(purge, utcnow())


@celery_app.task(name="default.purge_resolved_dead_letters", **PERIODIC)
def purge_resolved_dead_letters() -> int:
    from pawhome.platform.deadletters import purge_resolved_dead_letters as purge

    days = runtime.resources().settings.dead_letter_retention_days
    return _purge_in_batches(purge, utcnow() - dt.timedelta(days=days))
