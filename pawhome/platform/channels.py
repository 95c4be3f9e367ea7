"""The names of the Redis pub/sub channels that carry events to sockets.

Every user has one channel, `ws:user:<user_id>`, and every live topic one, `ws:topic:<topic>`
(docs/realtime.md, docs/redis-keys.md). Outbox rows name them unprefixed; `cache.key()` adds
REDIS_PREFIX when a message is published. One definition for the stream appender, the outbox,
the event API and the gateway's hub.
"""
from __future__ import annotations

from pawhome.platform.cache import Cache

_USER_PREFIX = "ws:user:"


def user_channel(user_id: int) -> str:
    """The channel of a user's live connections, without REDIS_PREFIX (the outbox adds it)."""
    return f"{_USER_PREFIX}{int(user_id)}"


def user_channel_key(cache: Cache, user_id: int) -> str:
    """The full Redis channel a gateway subscribes to for this user."""
    return cache.key("ws", "user", user_id)


def user_id_of_channel(channel: str) -> int | None:
    """The user id of an unprefixed user channel name (outbox rows), else None."""
    if channel.startswith(_USER_PREFIX):
        return int(channel.rsplit(":", 1)[1])
    return None


def topic_channel(topic: str) -> str:
    return f"ws:topic:{topic}"


def topic_channel_key(cache: Cache, topic: str) -> str:
    return cache.key("ws", "topic", topic)
