"""Sliding-window rate limits in Redis: 429 with Retry-After, per-IP and per-user scopes
counted apart, a window that slides rather than resets, and one count shared by processes.

Limits are shrunk by patching our own RULES table (the one place limits are set); the server
is the gateway's own, behind one trusted proxy as in production, so X-Forwarded-For /
X-Real-IP name the client (tests/test_client_address.py: what they may not do).
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest

from gateway import ratelimit
from gateway.ratelimit import RateLimiter, Rule
from pawhome.platform.cache import Cache
from pawhome.platform.errors import RateLimited
from settings import Settings
from tests.helpers import Api


@pytest.fixture
def settings():
    return Settings(trusted_proxy_count=1)


@pytest.fixture
def proxied_api(served_api):
    """An Api client talking to the app as nginx (one trusted proxy) would."""
    return served_api


def client_ip() -> str:
    return f"198.51.{random.randint(0, 255)}.{random.randint(1, 254)}"


async def dev_login(api: Api, ip: str, header: str = "X-Forwarded-For"):
    return await api.post("/v1/auth/dev-login", {"openid": "rl-" + uuid.uuid4().hex[:12]},
                          headers={header: ip})


@pytest.mark.gen_test
async def test_login_over_the_limit_is_429_with_retry_after(proxied_api, monkeypatch):
    monkeypatch.setitem(ratelimit.RULES, "auth.dev_login", (Rule("ip", 3, 2),))
    ip = client_ip()
    for _ in range(3):
        (await dev_login(proxied_api, ip)).ok()
    refused = await dev_login(proxied_api, ip)
    refused.error(429, code=42900)
    assert 1 <= int(refused.headers["Retry-After"]) <= 2


@pytest.mark.gen_test
async def test_each_client_ip_has_its_own_count(proxied_api, monkeypatch):
    monkeypatch.setitem(ratelimit.RULES, "auth.dev_login", (Rule("ip", 2, 2),))
    first, second = client_ip(), client_ip()
    for _ in range(2):
        (await dev_login(proxied_api, first)).ok()
    (await dev_login(proxied_api, first)).error(429)
    # Behind the proxy the client is the last X-Forwarded-For hop, or X-Real-IP.
    (await dev_login(proxied_api, f"10.0.0.1, {second}")).ok()
    (await dev_login(proxied_api, second, header="X-Real-IP")).ok()
    (await dev_login(proxied_api, second, header="X-Real-IP")).error(429)


@pytest.mark.gen_test
async def test_each_user_has_their_own_count(proxied_api, monkeypatch):
    alice, bob = await proxied_api.login(), await proxied_api.login()
    monkeypatch.setitem(ratelimit.RULES, "users.me", (Rule("user", 2, 2),))
    ip = client_ip()  # one shared IP: the user scope must not care
    for _ in range(2):
        (await proxied_api.get("/v1/users/me", token=alice.token,
                               headers={"X-Real-IP": ip})).ok()
    refused = await proxied_api.get("/v1/users/me", token=alice.token, headers={"X-Real-IP": ip})
    refused.error(429, code=42900)
    assert "Retry-After" in refused.headers
    (await proxied_api.get("/v1/users/me", token=bob.token, headers={"X-Real-IP": ip})).ok()


@pytest.mark.gen_test
async def test_ip_and_user_scopes_are_counted_apart(proxied_api, monkeypatch):
    monkeypatch.setitem(ratelimit.RULES, "auth.dev_login", (Rule("ip", 1, 2),))
    monkeypatch.setitem(ratelimit.RULES, "users.me", (Rule("user", 5, 2),))
    ip = client_ip()
    login = (await dev_login(proxied_api, ip)).ok()
    (await dev_login(proxied_api, ip)).error(429)
    # The same IP, exhausted on login, still reaches a user-scoped route.
    (await proxied_api.get("/v1/users/me", token=login["access_token"],
                           headers={"X-Real-IP": ip})).ok()


@pytest.mark.gen_test(timeout=30)
async def test_the_window_slides_instead_of_resetting(proxied_api, monkeypatch):
    window = 2
    monkeypatch.setitem(ratelimit.RULES, "auth.dev_login", (Rule("ip", 3, window),))
    ip = client_ip()
    (await dev_login(proxied_api, ip)).ok()
    (await dev_login(proxied_api, ip)).ok()
    # The only way to let time pass: the window is time itself. 0.8 s, not 1: the middle
    # hit's own latency (up to ~0.2 s on a slow machine) must not push the time it has
    # left, once the first two expire, past one second (Retry-After 1 below).
    await asyncio.sleep(0.8)
    (await dev_login(proxied_api, ip)).ok()
    middle_hit = time.monotonic()
    (await dev_login(proxied_api, ip)).error(429)

    # Poll until the first two hits leave the window...
    successes, deadline = 0, time.monotonic() + 5
    while successes < 2:
        assert time.monotonic() < deadline, "the window never freed up"
        reply = await dev_login(proxied_api, ip)
        if reply.status == 200:
            successes += 1
        else:
            await asyncio.sleep(0.05)
    # ...then the third hit, 0.8 s younger, still counts: a fixed window would have
    # reset to a full quota here, a sliding one has exactly the two slots that expired.
    refused = await dev_login(proxied_api, ip)
    assert time.monotonic() - middle_hit < window, "test too slow to tell"
    refused.error(429)
    assert int(refused.headers["Retry-After"]) == 1


@pytest.mark.gen_test
async def test_two_processes_share_one_count(settings):
    # Two Cache clients with their own connection pools, as two gateway processes have.
    first, second = Cache(settings), Cache(settings)
    try:
        a, b = RateLimiter(first), RateLimiter(second)
        rule, who = Rule("ip", 3, 60), client_ip()
        await a.hit("test.shared", rule, who)
        await b.hit("test.shared", rule, who)
        await a.hit("test.shared", rule, who)
        with pytest.raises(RateLimited):
            await b.hit("test.shared", rule, who)
        with pytest.raises(RateLimited) as refused:
            await a.hit("test.shared", rule, who)
        assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    finally:
        await first.close()
        await second.close()


def test_every_rule_is_well_formed():
    for name, rules in ratelimit.RULES.items():
        for rule in rules:
            assert rule.scope in ("ip", "user"), name
            assert rule.limit > 0 and rule.window > 0, name
