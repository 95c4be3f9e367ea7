"""The real-time system end to end: two gateway processes, a worker and a Redis of our own.

A on process 1 messages B on process 2 with acks and read receipts; process 2 is killed with
B connected; B reconnects to process 1, resumes, and gets every message exactly once, in
order; Redis restarts (losing its data) and delivery goes on without restarting anything;
resuming from before the loss answers `resync`; every acked message is in MySQL.
"""
import asyncio
import uuid

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from pawhome.platform import codec
from pawhome.platform.cache import Cache
from settings import Settings
from tests.fixtures_worker import probe_state, start_worker
from tests.realtime_helpers import gateways, ws_connect  # noqa: F401  (fixture)
from tests.services import PrivateRedis
from workers.celery_app import app_for


async def _http(gateway, method: str, path: str, token: str | None = None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await AsyncHTTPClient().fetch(HTTPRequest(
        gateway.base_url + path, method=method, headers=headers,
        body=codec.dumps(body) if body is not None else None), raise_error=False)
    reply = codec.loads(response.body)
    assert response.code == 200, reply
    return reply["data"]


async def _login(gateway) -> dict:
    return await _http(gateway, "POST", "/v1/auth/dev-login",
                       body={"openid": "e2e-" + uuid.uuid4().hex[:16]})


async def _send(client, to_user_id: int, text: str) -> dict:
    ack = await client.request("chat.send", to_user_id=to_user_id, kind="text", text=text,
                               client_msg_id=uuid.uuid4().hex)
    assert ack["type"] == "chat.ack", ack
    return ack


async def _messages_received(client, count: int) -> list[dict]:
    return [await client.wait_for("chat.message", timeout=15) for _ in range(count)]


@pytest.fixture
def private_redis():
    redis = PrivateRedis().start()
    yield redis
    redis.cleanup()


@pytest.mark.gen_test(timeout=180)
async def test_two_gateways_chat_survive_a_crash_and_a_redis_restart(gateways, private_redis,
                                                                     resources):
    env = {"REDIS_URL": private_redis.url, "BROKER_URL": private_redis.url}
    worker = start_worker(env)
    try:
        g1, g2 = await gateways.start(env=env), await gateways.start(env=env)
        alice, bob = await _login(g1), await _login(g1)
        a = await ws_connect(g1, alice["access_token"])
        b = await ws_connect(g2, bob["access_token"])

        # A (process 1) -> B (process 2): ack to A, message to B, B's read receipt to A.
        first = await _send(a, bob["user_id"], "hello 1")
        assert first["seq"] == 1
        [received] = await _messages_received(b, 1)
        assert received["data"]["seq"] == 1 and received["data"]["content"]["text"] == "hello 1"
        conversation = first["conversation_id"]
        await b.send("chat.read", conversation_id=conversation, seq=1)
        receipt = await a.wait_for("chat.read", timeout=15)
        assert receipt["data"]["reader_id"] == bob["user_id"] and receipt["data"]["seq"] == 1
        for i in range(2, 5):
            await _send(a, bob["user_id"], f"hello {i}")
        assert [m["data"]["seq"] for m in await _messages_received(b, 3)] == [2, 3, 4]

        # Process 2 dies holding B's socket; A keeps writing; B comes back on process 1.
        g2.kill()
        for i in range(5, 9):
            await _send(a, bob["user_id"], f"hello {i}")
        resumed = await b.reconnect(url=g1.ws_url)
        assert resumed["type"] == "resumed", resumed
        replayed = await _messages_received(b, 4)
        assert [m["data"]["seq"] for m in replayed] == [5, 6, 7, 8]
        await asyncio.sleep(0.3)  # nothing else may arrive: no duplicates
        assert b.received("chat.message") == []

        # Redis restarts empty. The gateways reconnect by themselves and delivery goes on.
        before_loss = (b.epoch, b.last_event_id)
        private_redis.stop()
        private_redis.start()
        ninth = None
        for _ in range(100):  # the hub needs a moment to notice and resubscribe
            try:
                ninth = await _send(a, bob["user_id"], "hello 9")
                break
            except AssertionError:
                await asyncio.sleep(0.1)
        assert ninth is not None and ninth["seq"] == 9
        frame = await b.wait_for(("chat.message", "resync"), timeout=20)
        if frame["type"] == "resync":  # B learns its stream was lost, then goes on live
            frame = await b.wait_for("chat.message", timeout=20)
        assert frame["data"]["seq"] == 9

        # A client resuming from before the loss is told plainly to refetch.
        c = await ws_connect(g1, bob["access_token"])
        c.epoch, c.last_event_id = before_loss
        answer = await c.resume()
        assert answer["type"] == "resync" and answer["reason"] == "epoch_changed"

        # Every acked message is durable, in order.
        history = await _http(g1, "GET", f"/v1/conversations/{conversation}/messages?limit=50",
                              token=bob["access_token"])
        assert sorted(m["seq"] for m in history["items"]) == list(range(1, 10))

        # The worker survived the Redis restart too: it still runs tasks.
        probe = "e2e-" + uuid.uuid4().hex
        settings = Settings(redis_url=private_redis.url, broker_url=private_redis.url)
        app_for(settings).send_task("tests.record_run", args=[probe])
        cache = Cache(settings)
        try:
            for _ in range(200):
                if (await probe_state(cache, probe)).get("runs"):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the worker did not run a task after the Redis restart")
        finally:
            await cache.close()
        for client in (a, b, c):
            await client.close()
    finally:
        worker.stop()

