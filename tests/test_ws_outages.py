"""The hub when Redis goes away: the pub/sub connection is dropped (catch-up from the stream,
nothing lost or doubled), Redis restarts having lost its data (delivery resumes without a
gateway restart, and resuming from the old position answers `resync`)."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

import wsclient
from pawhome.platform import events
from pawhome.platform.cache import Cache
from tests.realtime_helpers import gateways, private_redis, wait_until, ws_connect  # noqa: F401


async def until_delivered(cache: Cache, client, user_id: int, timeout: float = 20) -> None:
    """Send ephemeral probes until one arrives: the gateway's subscription is back."""
    async def probe() -> bool:
        try:
            await events.send_ephemeral(cache, user_id, "test.probe", {})
        except (ConnectionError, OSError, aioredis.ConnectionError):
            return False
        try:
            await client.wait_for("test.probe", timeout=0.3)
            return True
        except TimeoutError:
            return False
    await wait_until(probe, timeout=timeout, interval=0.05, what="delivery after outage")


@pytest.mark.gen_test(timeout=120)
async def test_dropped_pubsub_connection_is_restored_and_missed_events_caught_up(
        api, gateways, private_redis):
    server, cache = private_redis
    gw = await gateways.start(env={"REDIS_URL": server.url})
    me = await api.login()
    client = await ws_connect(gw, me.token)
    await events.publish_to_user(cache, me.user_id, "test.note", {"n": 0})
    assert (await client.wait_for("test.note"))["data"] == {"n": 0}
    await cache.redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    for n in range(1, 21):  # some land while the gateway is not subscribed
        await events.publish_to_user(cache, me.user_id, "test.note", {"n": n})
        await asyncio.sleep(0.02)
    seen = [(await client.wait_for("test.note", timeout=15))["data"]["n"] for _ in range(20)]
    assert seen == list(range(1, 21))
    with pytest.raises(asyncio.TimeoutError):
        await client.wait_for("test.note", timeout=0.5)  # and none twice
    assert not client.received("resync")


@pytest.mark.gen_test(timeout=150)
async def test_redis_restart_delivery_resumes_and_old_position_gets_resync(
        api, gateways, private_redis):
    server, cache = private_redis
    env = {"REDIS_URL": server.url}
    g1, g2 = await gateways.start(env=env), await gateways.start(env=env)
    me = await api.login()
    live = await ws_connect(g1, me.token)
    away = await ws_connect(g2, me.token)
    old_epoch, _ = await events.publish_to_user(cache, me.user_id, "test.note", {"n": 0})
    for client in (live, away):
        await client.wait_for("test.note")
    await away.close()

    server.stop()
    server.start()  # same port, empty: the streams are gone
    await until_delivered(cache, live, me.user_id)
    new_epoch, eid = await events.publish_to_user(cache, me.user_id, "test.note", {"n": 1})
    assert new_epoch != old_epoch and eid == 1
    resync = await live.wait_for("resync", timeout=10)
    assert resync["reason"] == "epoch_changed" and resync["epoch"] == new_epoch
    note = await live.wait_for("test.note", timeout=10)
    assert (note["epoch"], note["eid"], note["data"]) == (new_epoch, 1, {"n": 1})

    assert away.epoch == old_epoch

    async def reconnected():  # as a client does: retry with backoff while answered 503
        try:
            return await away.reconnect(g2.ws_url)
        except wsclient.ConnectRefused as refused:
            assert refused.status == 503
            return None
    reply = await wait_until(reconnected, timeout=10, interval=0.2, what="reconnect")
    assert reply["type"] == "resync" and reply["reason"] == "epoch_changed"
    assert reply["epoch"] == new_epoch
    await events.publish_to_user(cache, me.user_id, "test.note", {"n": 2})
    assert (await away.wait_for("test.note", timeout=10))["data"] == {"n": 2}
