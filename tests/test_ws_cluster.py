"""The hub across real gateway processes: fan-out to every device on every process, logout
closing sockets elsewhere, exact resume after a process is killed, the connection cap,
presence (and its expiry when a gateway dies), and a slow client that must not slow others."""
from __future__ import annotations

import asyncio
import time

import pytest

import wsclient
from gateway.ws import CLOSE_AUTH, CLOSE_SLOW
from pawhome.platform import events, presence
from tests.realtime_helpers import RawSocket, gateways, metric_value, wait_until, ws_connect  # noqa: F401


@pytest.mark.gen_test(timeout=90)
async def test_publish_reaches_both_sockets_of_a_user_on_two_processes(api, gateways,
                                                                       resources):
    g1, g2 = await gateways.start(), await gateways.start()
    me = await api.login()
    phone, tablet = await ws_connect(g1, me.token), await ws_connect(g2, me.token)
    epoch, eid = await events.publish_to_user(resources.cache, me.user_id, "test.note",
                                              {"hello": "both"})
    for client in (phone, tablet):
        frame = await client.wait_for("test.note", timeout=5)
        assert (frame["epoch"], frame["eid"], frame["data"]) == (epoch, eid, {"hello": "both"})
    other = await api.login()
    await events.publish_to_user(resources.cache, other.user_id, "test.note", {"x": 1})
    await events.publish_to_user(resources.cache, me.user_id, "test.note", {"n": 2})
    assert (await phone.wait_for("test.note"))["data"] == {"n": 2}  # not the other user's


@pytest.mark.gen_test(timeout=90)
async def test_logout_closes_the_session_socket_on_another_process_with_4401(api, gateways):
    g1, g2 = await gateways.start(), await gateways.start()
    me = await api.login()
    second_login = await api.login(openid=me.openid)  # another device, another session
    socket_here = await ws_connect(g1, me.token)
    socket_other_session = await ws_connect(g2, second_login.token)
    reply = await api.request("POST", "/v1/auth/logout", token=me.token)
    reply.ok()
    assert await socket_here.wait_closed(timeout=5) == CLOSE_AUTH
    # The other login session is untouched.
    assert (await socket_other_session.request("ping"))["type"] == "pong"


@pytest.mark.gen_test(timeout=90)
async def test_ban_closes_every_socket_of_the_user_at_once(api, gateways):
    g1, g2 = await gateways.start(), await gateways.start()
    admin = await api.login(role="admin")
    me = await api.login()
    sockets = [await ws_connect(g1, me.token), await ws_connect(g2, me.token)]
    (await api.post(f"/v1/admin/users/{me.user_id}/ban", json={"reason": "spam"},
                    token=admin.token)).ok()
    for client in sockets:
        assert await client.wait_closed(timeout=5) == CLOSE_AUTH


@pytest.mark.gen_test(timeout=120)
async def test_killed_process_client_resumes_on_the_other_exactly_once_in_order(
        api, gateways, resources):
    g1, g2 = await gateways.start(), await gateways.start()
    b = await api.login()
    client = await ws_connect(g2, b.token)
    for n in range(3):
        await events.publish_to_user(resources.cache, b.user_id, "test.note", {"n": n})
    for n in range(3):
        assert (await client.wait_for("test.note"))["data"] == {"n": n}
    g2.kill()
    with pytest.raises(wsclient.Closed):
        await client.wait_for("never", timeout=10)
    for n in range(3, 13):  # published while B is disconnected
        await events.publish_to_user(resources.cache, b.user_id, "test.note", {"n": n})
    resumed = await client.reconnect(g1.ws_url)
    assert resumed["type"] == "resumed", resumed
    await events.publish_to_user(resources.cache, b.user_id, "test.note", {"n": 13})
    seen = []
    while len(seen) < 11:
        seen.append((await client.wait_for("test.note", timeout=5))["data"]["n"])
    assert seen == list(range(3, 14))
    replayed = [f for f in client.frames if f and f["type"] == "test.note"]
    assert not replayed  # nothing twice
    with pytest.raises(asyncio.TimeoutError):
        await client.wait_for("test.note", timeout=0.5)


@pytest.mark.gen_test(timeout=90)
async def test_resume_from_a_trimmed_or_foreign_position_answers_resync(api, gateways,
                                                                        resources):
    g1 = await gateways.start()
    me = await api.login()
    await events.publish_to_user(resources.cache, me.user_id, "test.note", {"n": 0})
    client = await ws_connect(g1, me.token)
    client.epoch = "not-the-epoch"
    reply = await client.resume()
    assert reply["type"] == "resync" and reply["reason"] == "epoch_changed"
    assert reply["epoch"] == client.hello["epoch"]
    client.epoch, client.last_event_id = client.hello["epoch"], 99
    reply = await client.resume()
    assert reply["type"] == "resync" and reply["reason"] == "ahead"


@pytest.mark.gen_test(timeout=60)
async def test_connection_cap_answers_new_upgrades_with_503(api, gateways):
    g1 = await gateways.start(env={"WS_MAX_CONNECTIONS": "2"})
    me = await api.login()
    first, second = await ws_connect(g1, me.token), await ws_connect(g1, me.token)
    with pytest.raises(wsclient.ConnectRefused) as refused:
        await ws_connect(g1, me.token)
    assert refused.value.status == 503 and refused.value.body["code"] == 50300
    await first.close()
    await wait_until(lambda: metric_value(g1, "pawhome_websockets_open"),
                     timeout=10, interval=0.05, what="metrics reachable")

    async def room() -> bool:
        return await metric_value(g1, "pawhome_websockets_open") < 2
    await wait_until(room, timeout=10, interval=0.05, what="a slot freed")
    third = await ws_connect(g1, me.token)
    assert third.hello["user_id"] == me.user_id
    await second.close()
    await third.close()


@pytest.mark.gen_test(timeout=90)
async def test_presence_follows_sockets_and_expires_when_the_gateway_dies(api, gateways,
                                                                         resources):
    g1 = await gateways.start(env={"WS_PRESENCE_TTL": "3", "WS_HEARTBEAT_SECONDS": "1",
                                   "WS_PONG_TIMEOUT": "0.9"})
    me, viewer = await api.login(), await api.login()
    path = f"/v1/users/{me.user_id}/presence"
    assert (await api.get(path, token=viewer.token)).ok()["online"] is False
    client = await ws_connect(g1, me.token)
    data = (await api.get(path, token=viewer.token)).ok()
    assert data["online"] is True and data["last_seen"] > 0 and data["hidden"] is False
    await client.close()

    async def offline() -> bool:
        return not await presence.is_online(resources.cache, me.user_id)
    await wait_until(offline, timeout=5, interval=0.05, what="offline after close")

    await ws_connect(g1, me.token)
    await asyncio.sleep(4)  # longer than the TTL: heartbeats keep it alive
    assert await presence.is_online(resources.cache, me.user_id)
    g1.kill()  # no goodbye: the entry must age out by itself
    started = time.monotonic()
    await wait_until(offline, timeout=8, interval=0.05, what="offline after the gateway died")
    assert time.monotonic() - started <= 5
    assert (await api.get(path, token=viewer.token)).ok()["online"] is False


@pytest.mark.gen_test(timeout=30)
async def test_presence_is_hidden_by_privacy_setting_and_blocks(api, resources):
    me, viewer = await api.login(), await api.login()
    await presence.mark_online(resources.cache, "test-gateway", [me.user_id])
    path = f"/v1/users/{me.user_id}/presence"
    assert (await api.get(path, token=viewer.token)).ok()["online"] is True
    (await api.put("/v1/users/me/settings", json={"privacy_prefs": {"show_online": False}},
                   token=me.token)).ok()
    hidden = (await api.get(path, token=viewer.token)).ok()
    assert hidden == {"user_id": me.user_id, "online": False, "last_seen": None, "hidden": True}
    assert (await api.get(path, token=me.token)).ok()["online"] is True  # oneself: always
    (await api.put("/v1/users/me/settings", json={"privacy_prefs": {"show_online": True}},
                   token=me.token)).ok()
    (await api.post("/v1/users/me/blocks", json={"user_id": viewer.user_id},
                    token=me.token)).ok()
    (await api.get(path, token=viewer.token)).error(404)
    (await api.get(f"/v1/users/{viewer.user_id}/presence", token=me.token)).ok()
    assert (await api.get(f"/v1/users/{viewer.user_id}/presence",
                          token=me.token)).ok()["hidden"] is True  # I blocked them
    await presence.mark_offline(resources.cache, "test-gateway", me.user_id)


@pytest.mark.gen_test(timeout=120)
async def test_client_that_never_reads_is_closed_4408_and_others_stay_prompt(api, gateways,
                                                                             resources):
    g1 = await gateways.start()
    slow_user, fast_user = await api.login(), await api.login()
    slow = RawSocket(g1.port, slow_user.token)
    await slow.open()
    fast = await ws_connect(g1, fast_user.token)
    blob = "x" * 60_000
    latencies = []
    for n in range(200):  # ~12 MB to the slow client: more than every buffer on the way
        await events.send_ephemeral(resources.cache, slow_user.user_id, "test.blob", {"b": blob})
        if n % 10 == 0:
            sent = time.monotonic()
            await events.send_ephemeral(resources.cache, fast_user.user_id, "test.tick", {"n": n})
            await fast.wait_for("test.tick", timeout=5)
            latencies.append(time.monotonic() - sent)
    assert max(latencies) < 0.5, latencies

    async def slow_closed() -> bool:
        return await metric_value(g1, "pawhome_ws_closes_total", 'code="4408"') >= 1
    await wait_until(slow_closed, timeout=10, interval=0.05, what="slow client closed")
    assert await slow.read_until_close() == CLOSE_SLOW
    assert (await fast.request("ping"))["type"] == "pong"
