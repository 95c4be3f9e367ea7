"""The WebSocket protocol on one in-process gateway: auth before the upgrade, hello, frames
and their errors, binary and oversized frames, floods, heartbeat replies, token expiry."""
from __future__ import annotations

import asyncio
import time

import pytest
from tornado.websocket import websocket_connect

import wsclient
from gateway.ws import CLOSE_AUTH, CLOSE_BINARY, CLOSE_FLOOD, CLOSE_TOO_BIG
from pawhome.identity.tokens import issue_access_token
from pawhome.platform import codec, events


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/v1/ws"


async def refused(base_url: str, token: str) -> wsclient.ConnectRefused:
    with pytest.raises(wsclient.ConnectRefused) as caught:
        await wsclient.connect(ws_url(base_url), token)
    return caught.value


@pytest.mark.gen_test(timeout=30)
async def test_bad_expired_and_forged_tokens_get_401_before_any_upgrade(api, base_url, settings):
    me = await api.login()
    import jwt
    forged = jwt.encode({"sub": str(me.user_id), "role": "admin", "sid": "x", "jti": "y",
                         "iat": time.time(), "exp": int(time.time()) + 600},
                        "not-the-secret-but-long-enough-for-hs256-0123", algorithm="HS256")
    expired = jwt.encode({"sub": str(me.user_id), "role": "user", "sid": "x", "jti": "y",
                          "iat": time.time() - 900, "exp": int(time.time()) - 60},
                         settings.jwt_secret, algorithm="HS256")
    for token, code in (("garbage", 40102), (forged, 40102), (expired, 40101), ("", 40100)):
        error = await refused(base_url, token)
        assert error.status == 401
        assert error.body["code"] == code, error.body


@pytest.mark.gen_test(timeout=30)
async def test_revoked_token_is_refused_and_query_token_is_accepted(api, base_url):
    me = await api.login()
    client = await wsclient.connect(ws_url(base_url) + f"?token={me.token}", "")
    assert client.hello["user_id"] == me.user_id
    await client.close()
    (await api.post("/v1/auth/logout", token=me.token)).ok()
    error = await refused(base_url, me.token)
    assert error.status == 401 and error.body["code"] == 40103


@pytest.mark.gen_test(timeout=30)
async def test_hello_carries_stream_position_and_events_reach_every_device(api, base_url,
                                                                          resources):
    me = await api.login()
    epoch, eid = await events.publish_to_user(resources.cache, me.user_id, "test.note", {"n": 0})
    phone = await wsclient.connect(ws_url(base_url), me.token)
    tablet = await wsclient.connect(ws_url(base_url), me.token)
    assert phone.hello["epoch"] == epoch and phone.hello["last_event_id"] == eid
    assert phone.hello["heartbeat_seconds"] > 0 and phone.hello["server_time"] > 0
    await events.publish_to_user(resources.cache, me.user_id, "test.note", {"n": 1})
    for client in (phone, tablet):
        frame = await client.wait_for("test.note", timeout=5)
        assert frame["data"] == {"n": 1} and frame["eid"] == eid + 1 and frame["epoch"] == epoch
    await events.send_ephemeral(resources.cache, me.user_id, "test.typing", {"x": 1})
    typing = await phone.wait_for("test.typing", timeout=5)
    assert "eid" not in typing and typing["data"] == {"x": 1}
    await phone.close()
    await tablet.close()


@pytest.mark.gen_test(timeout=30)
async def test_bad_frames_get_error_frames_and_the_connection_stays(api, base_url):
    me = await api.login()
    client = await wsclient.connect(ws_url(base_url), me.token)
    await client.send_raw("{not json")
    error = await client.wait_for("error")
    assert error["code"] == 40001
    await client.send_raw('["a list"]')
    error = await client.wait_for("error")
    assert error["code"] == 42200 and error["errors"][0]["field"] == "type"
    await client.send("no.such.frame")
    error = await client.wait_for("error")
    assert error["code"] == 40002 and "no.such.frame" in error["message"] and error["ref"]
    ref = await client.send("ack")  # last_event_id missing
    error = await client.wait_for("error")
    assert error["code"] == 42200 and error["ref"] == ref
    assert any(e["field"] == "last_event_id" for e in error["errors"])
    await client.send("ping", surprise=1)  # unknown field
    error = await client.wait_for("error")
    assert error["code"] == 42200 and error["errors"][0]["field"] == "surprise"
    pong = await client.request("ping")
    assert pong["type"] == "pong"
    await client.close()


@pytest.mark.gen_test(timeout=30)
async def test_binary_frame_closes_with_1003(api, base_url):
    me = await api.login()
    client = await wsclient.connect(ws_url(base_url), me.token)
    await client.send_raw(b"\x00\x01", binary=True)
    assert await client.wait_closed() == CLOSE_BINARY


@pytest.mark.gen_test(timeout=30)
async def test_frame_over_64_kb_closes_with_1009(api, base_url):
    me = await api.login()
    client = await wsclient.connect(ws_url(base_url), me.token)
    await client.send("ping", pad="x" * (65 * 1024))
    assert await client.wait_closed() == CLOSE_TOO_BIG


@pytest.mark.gen_test(timeout=30)
async def test_frame_flood_gets_rate_limit_errors_then_4429(api, base_url):
    me = await api.login()
    client = await wsclient.connect(ws_url(base_url), me.token)
    for _ in range(200):
        if client.closed:
            break
        try:
            await client.send("ping")
        except Exception:
            break
    assert await client.wait_closed() == CLOSE_FLOOD
    codes = [f["code"] for f in client.received("error")]
    assert codes and set(codes) == {42900}
    assert len(client.received("pong")) >= 35  # the burst (40, less the opening resume) was served


@pytest.mark.gen_test(timeout=30)
async def test_token_near_expiry_gets_auth_expiring_and_refresh_keeps_the_socket(
        api, base_url, settings):
    me = await api.login()
    settings_ws = api.app.settings["resources"].settings
    old = settings_ws.ws_auth_expiring_seconds
    settings_ws.ws_auth_expiring_seconds = 60
    try:
        short, _ = issue_access_token(settings.model_copy(update={"access_token_ttl": 3}),
                                      me.user_id, "user", "sid-short")
        client = await wsclient.connect(ws_url(base_url), short)
        warning = await client.wait_for("auth.expiring", timeout=5)
        assert 0 <= warning["expires_in"] <= 3
        fresh, _ = issue_access_token(settings, me.user_id, "user", "sid-fresh")
        reply = await client.request("auth.refresh", token=fresh)
        assert reply["type"] == "auth.refreshed" and reply["expires_in"] > 60
        await asyncio.sleep(3.5)  # past the first token's exp: the socket must stay
        assert (await client.request("ping"))["type"] == "pong"
        other = await api.login()
        foreign, _ = issue_access_token(settings, other.user_id, "user", "sid-other")
        error = await client.request("auth.refresh", token=foreign)
        assert error["type"] == "error" and error["code"] == 40102
        await client.close()

        lapsing, _ = issue_access_token(settings.model_copy(update={"access_token_ttl": 2}),
                                        me.user_id, "user", "sid-lapse")
        client = await wsclient.connect(ws_url(base_url), lapsing)
        await client.wait_for("auth.expiring", timeout=5)
        assert await client.wait_closed(timeout=6) == CLOSE_AUTH
    finally:
        settings_ws.ws_auth_expiring_seconds = old


async def plain_socket(base_url: str, token: str):
    """A socket that sends nothing until told (no `resume` after hello); returns (ws, hello)."""
    ws = await websocket_connect(ws_url(base_url) + "?token=" + token)
    return ws, codec.loads(await ws.read_message())


async def next_frame(ws, timeout: float = 5) -> dict:
    return codec.loads(await asyncio.wait_for(ws.read_message(), timeout))


@pytest.mark.gen_test(timeout=30)
async def test_stored_events_wait_for_resume_when_the_user_has_a_stream(api, base_url,
                                                                        resources):
    me = await api.login()
    epoch, _ = await events.publish_to_user(resources.cache, me.user_id, "test.note", {"n": 1})
    ws, hello = await plain_socket(base_url, me.token)
    assert (hello["epoch"], hello["last_event_id"]) == (epoch, 1)
    await events.publish_to_user(resources.cache, me.user_id, "test.note", {"n": 2})
    with pytest.raises(asyncio.TimeoutError):  # held: a replay must not be overtaken
        await next_frame(ws, timeout=0.5)
    await ws.write_message(codec.dumps({"type": "resume", "ref": "r", "epoch": epoch,
                                        "last_event_id": 0}).decode())
    frames = [await next_frame(ws) for _ in range(3)]
    assert [(f["type"], f.get("eid")) for f in frames] == \
        [("test.note", 1), ("test.note", 2), ("resumed", None)]
    assert frames[2]["last_event_id"] == 2
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_fresh_users_events_flow_at_once_and_resume_from_hello_adds_nothing(
        api, base_url, resources):
    me = await api.login()
    ws, hello = await plain_socket(base_url, me.token)
    assert (hello["epoch"], hello["last_event_id"]) == (None, 0)  # no stream yet
    started = time.monotonic()
    epoch, _ = await events.publish_to_user(resources.cache, me.user_id, "test.note", {})
    first = await next_frame(ws)
    assert (first["type"], first["epoch"], first["eid"]) == ("test.note", epoch, 1)
    assert time.monotonic() - started < 0.5  # not held for the resume grace (2 s)
    # The client resumes from hello's position: what this socket sent since is not sent again.
    await ws.write_message(codec.dumps({"type": "resume", "ref": "r", "epoch": None,
                                        "last_event_id": 0}).decode())
    resumed = await next_frame(ws)
    assert resumed == {"type": "resumed", "ref": "r", "epoch": epoch, "last_event_id": 1}
    with pytest.raises(asyncio.TimeoutError):
        await next_frame(ws, timeout=0.3)
    await events.publish_to_user(resources.cache, me.user_id, "test.note", {})
    assert (await next_frame(ws))["eid"] == 2
    ws.close()
    # The same with a resume without fields (what wsclient sends on a first connect).
    other = await api.login()
    ws, _ = await plain_socket(base_url, other.token)
    epoch, _ = await events.publish_to_user(resources.cache, other.user_id, "test.note", {})
    assert (await next_frame(ws))["eid"] == 1
    await ws.write_message(codec.dumps({"type": "resume", "ref": "r2"}).decode())
    assert await next_frame(ws) == {"type": "resumed", "ref": "r2", "epoch": epoch,
                                    "last_event_id": 1}
    with pytest.raises(asyncio.TimeoutError):
        await next_frame(ws, timeout=0.3)
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_wsclient_reconnect_replays_the_first_events_of_a_user_without_a_stream(
        api, base_url, resources):
    """A client whose hello found no stream, and who saw no event, holds the position (no
    epoch, id 0). Events stored while it was away start the stream; its reconnect resumes
    from (None, 0) and gets them, once, not hello's newer position (which would skip them)."""
    me = await api.login()
    client = wsclient.Client(ws_url(base_url), me.token)
    hello = await client.open()
    assert (hello["epoch"], hello["last_event_id"]) == (None, 0)
    await client.close()
    epoch, _ = await events.publish_to_user(resources.cache, me.user_id, "test.note", {"n": 1})
    await events.publish_to_user(resources.cache, me.user_id, "test.note", {"n": 2})
    resumed = await client.reconnect()
    assert (resumed["type"], resumed["epoch"], resumed["last_event_id"]) == \
        ("resumed", epoch, 2)
    assert [(await client.wait_for("test.note"))["data"]["n"] for _ in range(2)] == [1, 2]
    await events.publish_to_user(resources.cache, me.user_id, "test.note", {"n": 3})
    assert (await client.wait_for("test.note"))["eid"] == 3
    with pytest.raises(asyncio.TimeoutError):
        await client.wait_for("test.note", timeout=0.3)
    await client.close()


@pytest.mark.gen_test(timeout=30)
async def test_resume_naming_an_epoch_born_after_hello_is_answered_resync(api, base_url,
                                                                        resources):
    """The client can only know that epoch from this socket's live events, so what it held
    before connecting is unknown: it is told to refetch, and the socket stays live."""
    me = await api.login()
    ws, _ = await plain_socket(base_url, me.token)
    epoch, _ = await events.publish_to_user(resources.cache, me.user_id, "test.note", {})
    assert (await next_frame(ws))["eid"] == 1
    await ws.write_message(codec.dumps({"type": "resume", "ref": "r", "epoch": epoch,
                                        "last_event_id": 1}).decode())
    assert await next_frame(ws) == {"type": "resync", "reason": "epoch_changed", "ref": "r",
                                    "epoch": epoch, "last_event_id": 1}
    await events.publish_to_user(resources.cache, me.user_id, "test.note", {})
    assert (await next_frame(ws))["eid"] == 2
    ws.close()
