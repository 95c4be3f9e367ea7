"""Rate limits: an exact sliding window per IP and per user, kept in Redis and checked by one
atomic Lua script, so every gateway process shares the same counts.

`RULES` is the one place limits are set, keyed by route name; routes not listed get
`DEFAULT_RULES`. A refused request gets 429 with Retry-After (seconds until the oldest hit in
the window expires). The clock is Redis's own (TIME), so gateways with skewed clocks agree.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from pawhome.cache import Cache
from pawhome.errors import RateLimited
from gateway.metrics import RATE_LIMITED


@dataclass(frozen=True)
class Rule:
    scope: str  # "ip" or "user"
    limit: int
    window: int  # seconds

    @property
    def label(self) -> str:
        return f"{self.limit}/{self.window}s/{self.scope}"


DEFAULT_RULES = (Rule("ip", 1200, 60), Rule("user", 600, 60))

RULES: dict[str, tuple[Rule, ...]] = {
    "auth.wechat_login": (Rule("ip", 10, 60),),
    "auth.dev_login": (Rule("ip", 120, 60),),
    "auth.sms_send": (Rule("ip", 5, 60),),
    "auth.sms_login": (Rule("ip", 10, 60),),
    "auth.refresh": (Rule("ip", 30, 60),),
    "auth.phone": (Rule("user", 10, 60),),
    "users.me": (Rule("user", 600, 60),),
    # Sends are limited per route and method alike (GET history shares the window).
    "chat.messages": (Rule("user", 300, 60),),
    "chat.conversations": (Rule("user", 300, 60),),
    # Each accept is one WeChat authorisation; a client needs a handful a minute at most.
    "users.subscriptions": (Rule("user", 60, 60),),
    # WebSocket upgrades: a reconnect storm of one user, not 10,000 users behind one NAT.
    "ws": (Rule("user", 60, 60),),
    # A search is a FULLTEXT query plus a count: a person types a few a minute.
    "search.posts": (Rule("user", 120, 60),),
    "search.users": (Rule("user", 120, 60),),
    "search.topics": (Rule("user", 120, 60),),
    # Interactions: a person taps fast, but not hundreds of times a minute.
    "likes.post": (Rule("user", 240, 60),),
    "likes.comment": (Rule("user", 240, 60),),
    "comments.post": (Rule("user", 120, 60),),  # reading and writing share the window
    "favorites.post": (Rule("user", 120, 60),),
    "shares.post": (Rule("user", 30, 60),),
    "follows.follow": (Rule("user", 60, 60),),
    "health.healthz": (),
    "health.readyz": (),
    "health.metrics": (),
    "openapi": (),
    # Media: uploads started per user (each is a storage object and a worker job).
    "media.create": (Rule("user", 60, 60), Rule("user", 500, 86400)),
    "media.uploads": (Rule("user", 20, 60), Rule("user", 200, 86400)),
    "media.part": (Rule("user", 600, 60),),
    # WeChat's servers push from a few addresses; a burst of image verdicts is normal.
    "wechat.push": (Rule("ip", 6000, 60),),
    # Reports are cheap to send and costly to review.
    "moderation.report": (Rule("user", 20, 3600),),
}

# KEYS[1]: the window's sorted set. ARGV: window_ms, limit, unique member.
# Returns {allowed (1/0), remaining, retry_after_ms}.
SLIDING_WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + window - now}
"""


def rules_for(route_name: str | None) -> tuple[Rule, ...]:
    if route_name is None:
        return DEFAULT_RULES
    return RULES.get(route_name, DEFAULT_RULES)


class RateLimiter:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._script = cache.script(SLIDING_WINDOW_LUA)

    async def hit(self, route_name: str, rule: Rule, identity: str) -> None:
        """Count one request; raise RateLimited (429) if the rule's window is full."""
        key = self.cache.key("rl", route_name, rule.scope, rule.window, identity)
        member = os.urandom(8).hex()
        allowed, _remaining, retry_ms = await self._script(
            keys=[key], args=[rule.window * 1000, rule.limit, member])
        if not int(allowed):
            RATE_LIMITED.labels(rule=f"{route_name}:{rule.label}").inc()
            retry_after = max(1, math.ceil(int(retry_ms) / 1000))
            raise RateLimited(headers={"Retry-After": str(retry_after)},
                              message=f"Too many requests; retry in {retry_after}s")
