"""Event contract checks: a write's events match their schemas and replay the state change.

    async with capture_events(app, user_id) as captured:
        before = await fetch_state()
        await api.post(...)                       # the REST write under test
    events = await captured.events()              # what the user's stream received
    assert_events_valid(events)                   # each against events.EVENT_SCHEMAS
    assert apply(before, events) == await fetch_state()

`captured.events()` waits for the outbox to drain (events of a committed change are delivered
by the relay), then reads the user's stream after the position noted on entry.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select

from models.platform import OutboxMessage
from pawhome.platform import streams
from pawhome.platform.events import EVENT_SCHEMAS, user_channel


class CapturedEvents:
    def __init__(self, app, user_id: int) -> None:
        self.app = app
        self.resources = app.settings["resources"]
        self.user_id = user_id
        self.epoch: str | None = None
        self.start = 0

    async def drain_outbox(self, timeout: float = 10) -> None:
        """Wait until no event row for this user is left in the outbox."""
        relay = self.app.settings["relay"]
        query = select(func.count(OutboxMessage.id)).where(
            OutboxMessage.kind == "event", OutboxMessage.name == user_channel(self.user_id))
        deadline = time.monotonic() + timeout
        while True:
            async with self.resources.db.session() as session:
                if not (await session.execute(query)).scalar_one():
                    return
            assert time.monotonic() < deadline, "the outbox did not drain"
            relay.wake()
            await asyncio.sleep(0.02)

    async def mark(self) -> None:
        """Note the stream's position once earlier writes' events have been delivered."""
        await self.drain_outbox()
        self.epoch, self.start = await streams.head(self.resources.cache, self.user_id)

    async def events(self) -> list[dict[str, Any]]:
        """The events stored for the user since the mark, once the outbox has drained."""
        await self.drain_outbox()
        replay = await streams.read_since(self.resources.cache, self.user_id, self.epoch,
                                          self.start)
        assert replay.ok, f"stream not readable: {replay.reason}"
        return [event for _, event in replay.events]


@contextlib.asynccontextmanager
async def capture_events(app, user_id: int) -> AsyncIterator[CapturedEvents]:
    captured = CapturedEvents(app, user_id)
    await captured.mark()
    yield captured


def assert_events_valid(events: list[dict[str, Any]]) -> None:
    """Every event has a registered schema and its data validates against it."""
    for event in events:
        assert set(event) >= {"id", "type", "data", "ts"}, event
        model = EVENT_SCHEMAS.get(event["type"])
        assert model is not None, f"no schema registered for event type {event['type']!r}"
        model.model_validate(event["data"])


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]
