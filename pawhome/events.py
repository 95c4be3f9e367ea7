"""Events to a user's live connections, from any gateway or task: the publishing side.

Every user has one Redis pub/sub channel, `<REDIS_PREFIX>ws:user:<user_id>` (built with
`cache.key("ws", "user", user_id)`). A gateway process SUBSCRIBEs to the channels of the users
whose WebSockets it holds and UNSUBSCRIBEs when their last socket closes, so each process only
receives its own users' events and adding gateways adds no fan-out. A message is one JSON
object: `{"id", "type", "data", "ts"}`; `id` lets a client drop a duplicate (the outbox
delivers at least once), `ts` is milliseconds since the epoch.

- `publish_to_user` publishes now (a task that already did its work, a presence ping).
- `emit_to_user` publishes only if the caller's transaction commits (through the outbox), so
  a client never hears about a change that was rolled back.
"""
from __future__ import annotations

import re
import time
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pawhome import codec
from pawhome.cache import Cache
from pawhome.outbox import publish_event

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


def user_channel(user_id: int) -> str:
    """The channel of a user's live connections, without REDIS_PREFIX (the outbox adds it)."""
    return f"ws:user:{int(user_id)}"


def user_channel_key(cache: Cache, user_id: int) -> str:
    """The full Redis channel name a gateway subscribes to for this user."""
    return cache.key("ws", "user", int(user_id))


def make_event(event_type: str, data: Any) -> dict[str, Any]:
    if not _EVENT_TYPE.match(event_type):
        raise ValueError(f"event type must be dotted lower-case words: {event_type!r}")
    codec.dumps(data)  # fail at the caller if data is not JSON
    return {"id": uuid.uuid4().hex, "type": event_type, "data": data,
            "ts": int(time.time() * 1000)}


async def publish_to_user(cache: Cache, user_id: int, event_type: str, data: Any) -> int:
    """Publish an event to a user's live connections now; returns how many gateway
    processes received it (0 when the user is offline)."""
    event = make_event(event_type, data)
    return int(await cache.redis.publish(user_channel_key(cache, user_id), codec.dumps(event)))


def emit_to_user(session: AsyncSession, user_id: int, event_type: str,
                 data: Any) -> dict[str, Any]:
    """Publish an event to a user's live connections once `session`'s transaction commits."""
    event = make_event(event_type, data)
    publish_event(session, user_channel(user_id), event)
    return event
