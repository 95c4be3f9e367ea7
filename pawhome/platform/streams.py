"""Per-user event streams in Redis: strictly increasing event ids, replay after reconnect.

Every stored event for a user is appended to that user's stream by one Lua script, which in
the same atomic step gives it the next event id (`eid`), trims the stream to the retention
limits and PUBLISHes it on the user's channel — so a gateway never sees an event on pub/sub
that is not also in the stream, and ids on the channel arrive in order.

Keys (docs/redis-keys.md):
  ev:meta:<uid>          hash {epoch, seq}          TTL = EVENTS_RETENTION_SECONDS, refreshed
  ev:log:<uid>           stream, ids "<eid>-0",     same TTL; at most EVENTS_RETENTION_COUNT
                         fields e (event JSON), t (ms)  entries, none older than the TTL
  ev:dedup:<uid>:<evid>  "<epoch>|<eid>"            EVENTS_DEDUP_SECONDS

The epoch is a random string chosen when a user's stream is (re)created. If Redis loses the
stream (restart without persistence, eviction, the TTL of an idle user), the next append
starts a new epoch, and a client resuming with the old epoch is told to resync: recovery is
exact or explicit, never partial. Appending an event whose id was already appended (the
outbox delivers at least once) returns the first (epoch, eid) and stores nothing.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pawhome.platform import codec
from pawhome.platform.cache import Cache
from pawhome.platform.channels import user_channel_key

# KEYS: meta, log, dedup. ARGV: candidate epoch, event JSON, maxlen, ttl s, dedup ttl s,
# now ms, channel, max age ms. Returns {epoch, eid, appended (1/0)}.
APPEND_LUA = """
local dedup = redis.call('GET', KEYS[3])
if dedup then
  local sep = string.find(dedup, '|', 1, true)
  return {string.sub(dedup, 1, sep - 1), tonumber(string.sub(dedup, sep + 1)), 0}
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
local eid = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], eid .. '-0', 'e', ARGV[2], 't', ARGV[6])
local cutoff = tonumber(ARGV[6]) - tonumber(ARGV[8])
for i = 1, 20 do
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #first == 0 or tonumber(first[1][2][4]) >= cutoff then break end
  redis.call('XDEL', KEYS[2], first[1][1])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[3], epoch .. '|' .. eid, 'EX', ARGV[5])
redis.call('PUBLISH', ARGV[7],
  '{"k":"ev","epoch":"' .. epoch .. '","eid":' .. eid .. ',"ev":' .. ARGV[2] .. '}')
return {epoch, eid, 1}
"""


# append_many: the same steps as APPEND_LUA for several events (any users) in one call.
# KEYS: meta, log, dedup per event. ARGV: maxlen, ttl s, dedup ttl s, now ms, max age ms,
# candidate epoch (for any stream this call creates: an epoch only has to differ from the
# stream's earlier ones), then event JSON, channel per event. Returns {epoch, eid, appended}
# per event.
APPEND_MANY_LUA = """
local out = {}
local cutoff = tonumber(ARGV[4]) - tonumber(ARGV[5])
local cand = ARGV[6]
for n = 0, #KEYS / 3 - 1 do
  local meta, log, dedupkey = KEYS[n * 3 + 1], KEYS[n * 3 + 2], KEYS[n * 3 + 3]
  local payload, channel = ARGV[7 + n * 2], ARGV[8 + n * 2]
  local dedup = redis.call('GET', dedupkey)
  if dedup then
    local sep = string.find(dedup, '|', 1, true)
    table.insert(out, string.sub(dedup, 1, sep - 1))
    table.insert(out, tonumber(string.sub(dedup, sep + 1)))
    table.insert(out, 0)
  else
    local epoch = redis.call('HGET', meta, 'epoch')
    if not epoch then
      epoch = cand
      redis.call('DEL', log)
      redis.call('HSET', meta, 'epoch', epoch, 'seq', 0)
    end
    local eid = redis.call('HINCRBY', meta, 'seq', 1)
    redis.call('XADD', log, 'MAXLEN', ARGV[1], eid .. '-0', 'e', payload, 't', ARGV[4])
    for i = 1, 20 do
      local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
      if #first == 0 or tonumber(first[1][2][4]) >= cutoff then break end
      redis.call('XDEL', log, first[1][1])
    end
    redis.call('EXPIRE', meta, ARGV[2])
    redis.call('EXPIRE', log, ARGV[2])
    redis.call('SET', dedupkey, epoch .. '|' .. eid, 'EX', ARGV[3])
    redis.call('PUBLISH', channel,
      '{"k":"ev","epoch":"' .. epoch .. '","eid":' .. eid .. ',"ev":' .. payload .. '}')
    table.insert(out, epoch)
    table.insert(out, eid)
    table.insert(out, 1)
  end
end
return out
"""


@dataclass
class Replay:
    """What a resume gets: the events after `last_eid`, or why it cannot have them."""
    ok: bool
    epoch: str | None
    last_eid: int
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    reason: str | None = None  # epoch_changed | too_old | ahead


def meta_key(cache: Cache, user_id: int) -> str:
    return cache.key("ev", "meta", int(user_id))


def log_key(cache: Cache, user_id: int) -> str:
    return cache.key("ev", "log", int(user_id))


async def append(cache: Cache, user_id: int, event: dict[str, Any]) -> tuple[str, int]:
    """Store `event` (from events.make_event) in the user's stream and publish it.

    Returns (epoch, eid). Idempotent on event["id"].
    """
    settings = cache.settings
    payload = codec.dumps_str(event)
    epoch, eid, _appended = await cache.script(APPEND_LUA)(
        keys=[meta_key(cache, user_id), log_key(cache, user_id),
              cache.key("ev", "dedup", int(user_id), event["id"])],
        args=[secrets.token_hex(6), payload, settings.events_retention_count,
              settings.events_retention_seconds, settings.events_dedup_seconds,
              int(time.time() * 1000), user_channel_key(cache, user_id),
              settings.events_retention_seconds * 1000])
    return (epoch.decode() if isinstance(epoch, bytes) else epoch), int(eid)


async def append_many(cache: Cache,
                      items: list[tuple[int, dict[str, Any] | tuple[str, str]]],
                      ) -> list[tuple[str, int]]:
    """`append` for several (user_id, event) pairs, any users, in one Redis call and in
    list order. An event is the dict from events.make_event, or `(event_id, event_json)`
    when it is already encoded (the outbox row's text: no second encoding). Returns (epoch,
    eid) per item; idempotent per event id like `append`.
    """
    if not items:
        return []
    settings = cache.settings
    keys: list[str] = []
    args: list[Any] = [settings.events_retention_count, settings.events_retention_seconds,
                       settings.events_dedup_seconds, int(time.time() * 1000),
                       settings.events_retention_seconds * 1000, secrets.token_hex(6)]
    for user_id, event in items:
        if isinstance(event, tuple):
            event_id, payload = event
        else:
            event_id, payload = event["id"], codec.dumps_str(event)
        keys += [meta_key(cache, user_id), log_key(cache, user_id),
                 cache.key("ev", "dedup", int(user_id), event_id)]
        args += [payload, user_channel_key(cache, user_id)]
    flat = await cache.script(APPEND_MANY_LUA)(keys=keys, args=args)
    return [((flat[i].decode() if isinstance(flat[i], bytes) else flat[i]), int(flat[i + 1]))
            for i in range(0, len(flat), 3)]


async def head(cache: Cache, user_id: int) -> tuple[str | None, int]:
    """The user's current (epoch, last eid); (None, 0) when they have no stream yet."""
    return head_of(await cache.execute(*head_command(cache, user_id)))


def head_command(cache: Cache, user_id: int) -> tuple[str, ...]:
    """The command `head` sends, for a caller that sends it with others
    (`cache.execute_many`); `head_of` reads its reply."""
    return ("HMGET", meta_key(cache, user_id), "epoch", "seq")


def head_of(reply: list[Any]) -> tuple[str | None, int]:
    epoch, seq = reply
    if epoch is None:
        return None, 0
    return (epoch.decode() if isinstance(epoch, bytes) else epoch), int(seq or 0)


async def read_since(cache: Cache, user_id: int, epoch: str | None, last_eid: int) -> Replay:
    """Every stored event after `last_eid` in `epoch`, in order — or why not.

    The meta and the range are read in one MULTI/EXEC, so the answer is a consistent cut:
    events appended afterwards reach the caller through pub/sub with larger ids.
    """
    async with cache.redis.pipeline(transaction=True) as pipe:
        pipe.hmget(meta_key(cache, user_id), "epoch", "seq")
        pipe.xrange(log_key(cache, user_id), min=f"({max(0, int(last_eid))}-0", max="+")
        (current_epoch, seq), entries = await pipe.execute()
    current = current_epoch.decode() if current_epoch is not None else None
    head_eid = int(seq or 0)
    if current is None:
        # No stream: nothing was ever stored, or it was lost. A client that has seen
        # nothing (no epoch, id 0) is simply up to date.
        if epoch is None and last_eid == 0:
            return Replay(ok=True, epoch=None, last_eid=0)
        return Replay(ok=False, epoch=None, last_eid=0, reason="epoch_changed")
    if epoch is not None and epoch != current:
        return Replay(ok=False, epoch=current, last_eid=head_eid, reason="epoch_changed")
    if epoch is None and last_eid != 0:
        return Replay(ok=False, epoch=current, last_eid=head_eid, reason="epoch_changed")
    if last_eid > head_eid:
        return Replay(ok=False, epoch=current, last_eid=head_eid, reason="ahead")
    events: list[tuple[int, dict[str, Any]]] = []
    for entry_id, fields in entries:
        eid = int(entry_id.split(b"-", 1)[0])
        events.append((eid, codec.loads(fields[b"e"])))
    expected = int(last_eid) + 1
    if head_eid >= expected and (not events or events[0][0] != expected):
        return Replay(ok=False, epoch=current, last_eid=head_eid, reason="too_old")
    return Replay(ok=True, epoch=current, last_eid=events[-1][0] if events else int(last_eid),
                  events=events)
