"""Live topics: what a connection may watch (`sub {topic}`), and throttled counter updates.

A topic is "<kind>:<id>" ("conversation:12", later "post:123", "order:9"). Each domain
registers an authoriser for its kind; the WebSocket hub asks `authorize()` before it
subscribes a socket. Counters (a post's likes while its page is open) are published through
`publish_counter`, at most once per TOPIC_COUNTER_INTERVAL per topic across all processes,
and the last value always gets out. docs/notifications.md describes both.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from models.realtime import ConversationMember
from pawhome.platform import codec, events
from pawhome.platform.cache import Cache
from pawhome.platform.errors import Forbidden, NotFound
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.platform.topics")

TOPIC = re.compile(r"^([a-z][a-z_]{0,31}):([A-Za-z0-9_-]{1,64})$")
COUNTER_EVENT = "topic.counters"


class CountersEvent(BaseModel):
    """`topic.counters`: the latest counters of a watched topic."""
    model_config = ConfigDict(extra="forbid")
    topic: str
    counts: dict[str, int]


events.register_event_schema(COUNTER_EVENT, CountersEvent)

# authorise(resources, user_id, topic_id) -> may this user watch "<kind>:<topic_id>"?
Authoriser = Callable[[Resources, int, str], Awaitable[bool]]
_authorisers: dict[str, Authoriser] = {}


def register_topic_kind(kind: str, authorize: Authoriser) -> None:
    """Let clients watch "<kind>:<id>" topics, allowed when `authorize` says so (it may also
    raise NotFound itself, e.g. for a post that does not exist)."""
    if not re.match(r"^[a-z][a-z_]{0,31}$", kind):
        raise ValueError(f"topic kind must be lower-case letters: {kind!r}")
    _authorisers[kind] = authorize


def registered_kinds() -> list[str]:
    return sorted(_authorisers)


def parse_topic(topic: str) -> tuple[str, str]:
    """("post", "123") from "post:123"; NotFound for anything that is not a topic name."""
    match = TOPIC.match(topic or "") if isinstance(topic, str) else None
    if match is None:
        raise NotFound("Unknown topic")
    return match.group(1), match.group(2)


async def authorize(resources: Resources, user_id: int, topic: str) -> None:
    """Raise NotFound (malformed topic, unknown kind, no such thing) or Forbidden (exists,
    but not for this user); return if the user may watch the topic."""
    kind, topic_id = parse_topic(topic)
    authoriser = _authorisers.get(kind)
    if authoriser is None:
        raise NotFound("Unknown topic")
    if not await authoriser(resources, user_id, topic_id):
        raise Forbidden("You may not watch this topic")


async def _conversation_member(resources: Resources, user_id: int, topic_id: str) -> bool:
    """Only the two members of a conversation watch it (typing, read marks)."""
    if not topic_id.isdigit() or len(topic_id) > 18:
        raise NotFound("Unknown topic")
    async with resources.db.session() as session:
        found = await session.execute(select(ConversationMember.user_id).where(
            ConversationMember.conversation_id == int(topic_id),
            ConversationMember.user_id == user_id))
        return found.first() is not None


register_topic_kind("conversation", _conversation_member)


# -- throttled counters -------------------------------------------------------------------------

# KEYS[1] gate (SET NX PX: "someone published within the interval"), KEYS[2] state hash
# {v: latest counts JSON, dirty: 1 while v has not been published}.
# ARGV[1] "set" (store ARGV[2] first) or "flush"; ARGV[3] interval ms; ARGV[4] state TTL ms.
# Returns {1, value, interval} when the caller must publish value now, {0, false, wait_ms}
# when a publish is still due after wait_ms, {0, false, -1} when nothing is due.
_COUNTER_LUA = """
if ARGV[1] == 'set' then
  redis.call('HSET', KEYS[2], 'v', ARGV[2], 'dirty', '1')
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
if redis.call('HGET', KEYS[2], 'dirty') ~= '1' then
  return {0, false, -1}
end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then
  redis.call('HSET', KEYS[2], 'dirty', '0')
  return {1, redis.call('HGET', KEYS[2], 'v'), tonumber(ARGV[3])}
end
local wait = redis.call('PTTL', KEYS[1])
if wait < 1 then wait = 1 end
return {0, false, wait}
"""

# This process's pending trailing publishes, one per (namespace, topic).
_trailing: dict[tuple[str, str], asyncio.Task[None]] = {}


def _keys(cache: Cache, topic: str) -> list[str]:
    return [cache.key("topic", "gate", topic), cache.key("topic", "counter", topic)]


def _interval_ms(cache: Cache) -> int:
    return max(1, int(float(cache.settings.topic_counter_interval) * 1000))


async def _step(cache: Cache, topic: str, mode: str, value: bytes = b"") -> int:
    """Run the gate script; publish if it says so. Returns ms until a publish may be due, or
    -1 when nothing is pending."""
    interval = _interval_ms(cache)
    publish, latest, wait = await cache.script(_COUNTER_LUA)(
        keys=_keys(cache, topic),
        args=[mode, value, interval, max(interval * 10, 60_000)])
    if publish:
        await events.publish_topic(cache, topic, COUNTER_EVENT,
                                   {"topic": topic, "counts": codec.loads(latest)})
        return -1
    return int(wait)


async def _publish_later(cache: Cache, topic: str, wait_ms: int) -> None:
    key = (cache.prefix, topic)
    try:
        while wait_ms >= 0:
            await asyncio.sleep(wait_ms / 1000)
            wait_ms = await _step(cache, topic, "flush")
    except asyncio.CancelledError:
        raise
    except Exception as error:  # Redis away: the next update of this topic tries again
        log.warning("trailing counter publish for %s failed: %r", topic, error)
    finally:
        if _trailing.get(key) is asyncio.current_task():
            del _trailing[key]


async def publish_counter(cache: Cache, topic: str, counts: dict[str, int]) -> None:
    """Tell the watchers of `topic` its counters changed, e.g. {"likes": 10, "comments": 2}.

    The first update in an interval is published at once; later ones in the same interval
    only store the value, and this process publishes the latest value when the interval ends
    (unless another process already did). Watchers therefore see at most one update per
    TOPIC_COUNTER_INTERVAL and always end on the last value. In a task process call
    `flush_counters()` before the task returns, so the trailing publish is not left behind.
    """
    parse_topic(topic)
    wait = await _step(cache, topic, "set", codec.dumps(counts))
    if wait < 0:
        return
    key = (cache.prefix, topic)
    loop = asyncio.get_running_loop()
    pending = _trailing.get(key)
    if pending is None or pending.done() or pending.get_loop() is not loop:
        _trailing[key] = loop.create_task(_publish_later(cache, topic, wait))


async def flush_counters() -> None:
    """Wait for this process's pending trailing publishes (tasks and shutdown call this)."""
    loop = asyncio.get_running_loop()
    pending = [t for t in _trailing.values() if not t.done() and t.get_loop() is loop]
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
