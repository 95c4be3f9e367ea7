"""Rate limits: an exact sliding window per IP and per user, kept in Redis and checked by one
atomic Lua script, so every gateway process shares the same counts.

`RULES` is the one place limits are set, keyed by route name; routes not listed get
`DEFAULT_RULES`. A refused request gets 429 with Retry-After (seconds until the oldest hit in
the window expires). The clock is Redis's own (TIME), so gateways with skewed clocks agree.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from redis.exceptions import NoScriptError

from gateway.metrics import RATE_LIMITED
from pawhome.platform.cache import Cache
from pawhome.platform.errors import RateLimited


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
    # -- mall (docs/mall.md) --
    "orders.pay": (Rule("user", 5, 60),),  # seed 003: payments 5/min per user
    "activities.pay": (Rule("user", 5, 60),),  # the same for a paid activity registration
    "orders.list": (Rule("user", 60, 60),),
    "orders.preview": (Rule("user", 120, 60),),
    "coupons.claim": (Rule("user", 30, 60),),
    "coupons.claim_code": (Rule("user", 10, 60),),  # codes are not to be guessed
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
    # -- mall: the catalogue --
    # Product pages and lists are cached and may be read without logging in: per IP.
    "mall.products": (Rule("ip", 1200, 60),),
    "mall.product": (Rule("ip", 1200, 60), Rule("user", 600, 60)),
    "mall.categories": (Rule("ip", 600, 60),),
    "mall.products_search": (Rule("ip", 300, 60), Rule("user", 120, 60)),
    "mall.favorite": (Rule("user", 120, 60),),
    # A merchant counting a warehouse adjusts many SKUs in a row.
    "merchant.stock_adjust": (Rule("user", 300, 60),),
    # WeChat Pay posts notifies from a few addresses and retries what we refuse: a limit must
    # never be why a payment is not recorded (each notify is verified before any work).
    "payments.notify": (Rule("ip", 12000, 60),),
    "payments.refund_notify": (Rule("ip", 12000, 60),),
    "payments.simulated_confirm": (Rule("user", 30, 60),),
    # -- mall: addresses, shops' delivery set-up, the cart --
    # Addresses change a few times a month; listing and adding share the window.
    "addresses.list": (Rule("user", 60, 60),),
    # Shop pages are public (no login): per IP, like product pages.
    "merchants.detail": (Rule("ip", 1200, 60),),
    # A buyer taps + and - quickly, but not hundreds of times a minute.
    "cart.items": (Rule("user", 240, 60),),
    "cart.item": (Rule("user", 240, 60),),
    # -- the web console (docs/console.md): sign-in guesses per address; the account itself
    # locks after CONSOLE_MAX_FAILED_LOGINS wrong passwords in a row --
    "console.sessions": (Rule("ip", 60, 60),),
}

# One call per request: every window that applies (per IP, per user) and, in the same round
# trip, the keys the request will read anyway (token revocation marks, a cached page), so a
# request that is let in has paid one Redis call for its admission. A hit is counted in all
# windows or in none.
# KEYS: the n windows' sorted sets, then the keys to read.
# ARGV: n, unique member, then window_ms and limit of each window.
# Returns {0, 0, value of each read key...} when admitted, {i, retry_after_ms} when window i
# is full.
ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
for i = 1, n do
  local window = tonumber(ARGV[1 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[2 + 2 * i]) then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return {i, tonumber(oldest[2]) + window - now}
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], ARGV[1 + 2 * i])
end
local out = {0, 0}
for i = n + 1, #KEYS do
  out[#out + 1] = redis.call('GET', KEYS[i])
end
return out
"""


def rules_for(route_name: str | None) -> tuple[Rule, ...]:
    if route_name is None:
        return DEFAULT_RULES
    return RULES.get(route_name, DEFAULT_RULES)


class RateLimiter:
    def __init__(self, cache: Cache, scale: int = 1) -> None:
        self.cache = cache
        self.scale = scale  # settings.rate_limit_scale: every limit times this
        self._script = cache.script(ADMIT_LUA)  # for its sha and its reload on NOSCRIPT
        self._window_keys: dict[tuple[str, Rule], tuple[str, int]] = {}

    async def admit(self, route_name: str, hits: list[tuple[Rule, str]],
                    reads: Sequence[str] = ()) -> list[bytes | None]:
        """Count one request in each (rule, identity) window and read `reads`, in one call.
        Raises RateLimited (429) if any window is full (then nothing is counted); returns
        the values of `reads`, in order."""
        keys: list[str] = []
        args: list[str | int] = [len(hits), os.urandom(8).hex()]
        for rule, identity in hits:
            prefix, window_ms = self._window_keys.get((route_name, rule), (None, 0))
            if prefix is None:
                prefix = self.cache.key("rl", route_name, rule.scope, rule.window, "")
                window_ms = rule.window * 1000
                self._window_keys[(route_name, rule)] = (prefix, window_ms)
            keys.append(prefix + identity)
            args += (window_ms, rule.limit * self.scale)
        keys += reads
        if not keys:
            return []
        try:  # EVALSHA directly (on the pipelined connection): redis-py's Script wrapper
            # costs more than the call here
            reply = await self.cache.execute("EVALSHA", self._script.sha, len(keys), *keys,
                                             *args)
        except NoScriptError:
            reply = await self._script(keys=keys, args=args)
        full = int(reply[0])
        if full:
            rule = hits[full - 1][0]
            RATE_LIMITED.labels(rule=f"{route_name}:{rule.label}").inc()
            retry_after = max(1, math.ceil(int(reply[1]) / 1000))
            raise RateLimited(headers={"Retry-After": str(retry_after)},
                              message=f"Too many requests; retry in {retry_after}s")
        return reply[2:]

    async def hit(self, route_name: str, rule: Rule, identity: str) -> None:
        """Count one request; raise RateLimited (429) if the rule's window is full."""
        await self.admit(route_name, [(rule, identity)])
