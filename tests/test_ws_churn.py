"""The hub under churn: thousands of sockets arriving or leaving at once (a deploy, a network
blip). Every subscribe, unsubscribe and presence write must complete — batched, not one pool
connection per socket — so nobody stays "online" or subscribed after leaving, and a connect
storm is served without running the Redis pool dry."""
from __future__ import annotations

import asyncio
import os
import resource

import pytest

from pawhome.identity.tokens import issue_access_token
from pawhome.platform import channels, presence
from tests.realtime_helpers import RawSocket, gateways, metric_value, private_redis, wait_until  # noqa: F401

STORM = 2000


def allow_open_files(needed: int) -> None:
    """Both this process and the gateway it spawns hold one descriptor per socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def tokens_for(settings, count: int) -> list[tuple[int, str]]:
    """Access tokens of `count` users (ids no other test uses; a socket needs no user row)."""
    first = 10_000_000 + int.from_bytes(os.urandom(3), "big") * 10
    return [(uid, issue_access_token(settings, uid, "user", f"churn-{uid}")[0])
            for uid in range(first, first + count * 10, 10)]


async def open_sockets(port: int, users: list[tuple[int, str]],
                       concurrency: int) -> list[RawSocket | BaseException]:
    """Open one socket per user, `concurrency` handshakes at a time; each either got 101 and
    `hello` or is the error it met."""
    gate = asyncio.Semaphore(concurrency)

    async def one(token: str) -> RawSocket:
        async with gate:
            sock = RawSocket(port, token)
            await sock.open()
            return sock

    return await asyncio.gather(*(one(token) for _, token in users), return_exceptions=True)


async def online(cache, user_ids: list[int]) -> int:
    async with cache.redis.pipeline(transaction=False) as pipe:
        for uid in user_ids:
            pipe.zcount(presence.presence_key(cache, uid), presence._now_ms(), "+inf")
        return sum(1 for n in await pipe.execute() if int(n) > 0)


async def subscribed(cache, user_ids: list[int]) -> int:
    """Users whose channel some process is subscribed to (Redis's own count)."""
    reply = await cache.redis.execute_command(
        "PUBSUB", "NUMSUB", *(channels.user_channel_key(cache, uid) for uid in user_ids))
    return sum(1 for n in reply[1::2] if int(n) > 0)


@pytest.mark.gen_test(timeout=240)
async def test_two_thousand_sockets_closing_at_once_leave_nobody_online_or_subscribed(
        gateways, settings, resources):
    allow_open_files(2 * STORM + 1000)
    gateway = await gateways.start()
    users = tokens_for(settings, STORM)
    ids = [uid for uid, _ in users]
    opened = await open_sockets(gateway.port, users, concurrency=100)
    socks = [s for s in opened if isinstance(s, RawSocket)]
    assert len(socks) == STORM, [s for s in opened if not isinstance(s, RawSocket)][:3]
    assert await online(resources.cache, ids) == STORM
    assert await subscribed(resources.cache, ids) == STORM
    assert await metric_value(gateway, "pawhome_hub_channels") == STORM

    for sock in socks:  # all at once, as when a network link or a proxy goes down
        sock.close()

    async def all_gone() -> bool:
        return await online(resources.cache, ids) == 0 and \
            await subscribed(resources.cache, ids) == 0
    await wait_until(all_gone, timeout=5, interval=0.05, what="everyone offline, unsubscribed")
    assert await metric_value(gateway, "pawhome_hub_channels") == 0
    assert await metric_value(gateway, "pawhome_websockets_open") == 0
    for uid in ids[:20]:  # departures stamp last_seen
        assert await presence.last_seen(resources.cache, uid) is not None
    assert gateway.log_records("WARNING") == []


@pytest.mark.gen_test(timeout=120)
async def test_a_connect_storm_is_served_with_a_small_redis_pool(gateways, settings,
                                                                  resources):
    """Connection setup batches its Redis work across the sockets arriving together: 1,000
    upgrades, 200 in flight, need far fewer than one pool connection each."""
    allow_open_files(3000)
    gateway = await gateways.start(env={"REDIS_MAX_CONNECTIONS": "20"})
    users = tokens_for(settings, 1000)
    opened = await open_sockets(gateway.port, users, concurrency=200)
    failed = [s for s in opened if not isinstance(s, RawSocket)]
    assert not failed, (len(failed), failed[:3])
    assert await online(resources.cache, [uid for uid, _ in users]) == 1000
    assert gateway.log_records("WARNING") == []
    for sock in opened:
        sock.close()




@pytest.mark.gen_test(timeout=120)
async def test_departures_that_meet_a_stalled_redis_are_written_once_it_answers(
        gateways, settings, private_redis):
    server, cache = private_redis
    gateway = await gateways.start(env={"REDIS_URL": server.url})
    users = tokens_for(settings, 50)
    ids = [uid for uid, _ in users]
    socks = await open_sockets(gateway.port, users, concurrency=50)
    assert await online(cache, ids) == 50
    # Writes stall for 3 s, longer than the gateway's Redis timeout (2 s): the first
    # attempt to write the departures fails, and they must not be dropped.
    await cache.redis.execute_command("CLIENT", "PAUSE", "3000", "WRITE")
    for sock in socks:
        sock.close()

    async def all_gone() -> bool:
        return await online(cache, ids) == 0 and await subscribed(cache, ids) == 0
    await wait_until(all_gone, timeout=15, interval=0.1, what="everyone offline after the stall")
    warned = [r["msg"] for r in gateway.log_records("WARNING")]
    assert warned and all("not written; retrying" in m for m in warned), warned
