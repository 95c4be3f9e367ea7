"""The one API every domain uses to tell users' live connections about something.

Every user has one Redis pub/sub channel, `<REDIS_PREFIX>ws:user:<user_id>` (built with
`cache.key("ws", "user", user_id)`). A gateway process SUBSCRIBEs to the channels of the users
whose WebSockets it holds and UNSUBSCRIBEs when their last socket closes, so each process only
receives its own users' events and adding gateways adds no fan-out. An event is
`{"id", "type", "data", "ts"}`: `id` is unique (redelivery is recognised by it), `ts` is
milliseconds since the epoch.

- `emit_to_user`: stored in the user's stream (pawhome/platform/streams.py, resumable by event
  id) and delivered only if the caller's transaction commits (through the outbox). Use it for
  anything caused by a database change.
- `emit_after_commit`: the same guarantee for several events in one INSERT, delivered by the
  caller right after its commit (`await outbox.flush_after_commit(...)`) instead of waiting
  for the relay — the hot paths (chat) use it.
- `publish_to_user`: stored and delivered now (a task that already committed its work).
- `send_ephemeral`: delivered now to live connections, never stored (typing indicators).
- `publish_topic`: to every connection watching a live topic (post counters, order status).
- `publish_control`: gateway-internal orders about a user's sockets (close on revocation).

Wire format on the channels: docs/realtime.md ("k" = ev | eph | ctl).
"""
from __future__ import annotations

import os
import re
import time
import uuid
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pawhome.platform import codec, streams
from pawhome.platform.cache import Cache
from pawhome.platform.channels import (  # noqa: F401
    topic_channel,
    topic_channel_key,
    user_channel,
    user_channel_key,
    user_id_of_channel,
)
from pawhome.platform.outbox import publish_event, publish_events_after_commit

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")

# Event type -> pydantic model of its `data`. Each domain registers the events it emits, so
# tests check every emitted event against its schema and docs/realtime.md can list them.
EVENT_SCHEMAS: dict[str, type[BaseModel]] = {}


def register_event_schema(event_type: str, model: type[BaseModel]) -> type[BaseModel]:
    if not _EVENT_TYPE.match(event_type):
        raise ValueError(f"event type must be dotted lower-case words: {event_type!r}")
    EVENT_SCHEMAS[event_type] = model
    return model


def make_event(event_type: str, data: Any) -> dict[str, Any]:
    if not _EVENT_TYPE.match(event_type):
        raise ValueError(f"event type must be dotted lower-case words: {event_type!r}")
    codec.dumps(data)  # fail at the caller if data is not JSON
    return {"id": uuid.uuid4().hex, "type": event_type, "data": data,
            "ts": int(time.time() * 1000)}


async def publish_to_user(cache: Cache, user_id: int, event_type: str,
                          data: Any) -> tuple[str, int]:
    """Store an event in the user's stream and deliver it now; returns (epoch, eid)."""
    return await streams.append(cache, user_id, make_event(event_type, data))


async def send_ephemeral(cache: Cache, user_id: int, event_type: str, data: Any) -> int:
    """Deliver to the user's live connections now, without storing; returns how many
    gateway processes heard it (0 when the user is offline)."""
    message = {"k": "eph", "ev": make_event(event_type, data)}
    return int(await cache.redis.publish(user_channel_key(cache, user_id), codec.dumps(message)))


async def publish_topic(cache: Cache, topic: str, event_type: str, data: Any) -> int:
    """Deliver to every connection subscribed to `topic` (e.g. "post:123"); not stored."""
    event = {**make_event(event_type, data), "topic": topic}
    return int(await cache.redis.publish(topic_channel_key(cache, topic),
                                         codec.dumps({"k": "eph", "ev": event})))


async def publish_control(cache: Cache, user_id: int, action: str, **fields: Any) -> int:
    """Tell every gateway holding the user's sockets to act on them (e.g. action="revoke"
    with sid=... or all=True closes matching sockets with 4401)."""
    message = {"k": "ctl", "action": action, **fields}
    return int(await cache.redis.publish(user_channel_key(cache, user_id), codec.dumps(message)))


def emit_to_topic(session: AsyncSession, topic: str, event_type: str,
                  data: Any) -> dict[str, Any]:
    """Deliver an event to whoever watches `topic` ("order:12", "group:3") once `session`'s
    transaction commits; the event names its topic."""
    event = {**make_event(event_type, data), "topic": topic}
    publish_event(session, topic_channel(topic), event)
    return event


def emit_to_user(session: AsyncSession, user_id: int, event_type: str,
                 data: Any) -> dict[str, Any]:
    """Store and deliver an event to the user once `session`'s transaction commits."""
    event = make_event(event_type, data)
    publish_event(session, user_channel(user_id), event)
    return event


def encode_user_event(user_id: int, event_type: str, data_json: str,
                      ts: int) -> tuple[str, str, str]:
    """A stored event for `user_id` whose `data` is already JSON text: (channel, event id,
    event JSON), the shape of a claimed outbox row. The hot path (chat group commit) encodes
    a message once and reuses the text for both users' events."""
    event_id = os.urandom(16).hex()
    return (user_channel(user_id), event_id,
            f'{{"id":"{event_id}","type":"{event_type}","data":{data_json},"ts":{ts}}}')


async def emit_after_commit(session: AsyncSession, emits: list[tuple[int, str, Any]],
                            claim_seconds: float) -> list[dict[str, Any]]:
    """`emit_to_user` for several `(user_id, type, data)` at once, written with one INSERT.

    The caller delivers them itself right after its transaction commits:
        ... inside the unit of work: claimed = outbox.take_claimed(session)
        ... after the commit:        await outbox.flush_after_commit(resources, claimed)
    If it never does (it died between commit and flush), the outbox relay delivers them after
    `claim_seconds` (OUTBOX_CLAIM_SECONDS): nothing committed is lost. Data must be JSON.
    """
    made = []
    for user_id, event_type, data in emits:
        if not _EVENT_TYPE.match(event_type):
            raise ValueError(f"event type must be dotted lower-case words: {event_type!r}")
        made.append((user_channel(user_id), {"id": uuid.uuid4().hex, "type": event_type,
                                             "data": data, "ts": int(time.time() * 1000)}))
    await publish_events_after_commit(session, made, claim_seconds)
    return [event for _channel, event in made]
