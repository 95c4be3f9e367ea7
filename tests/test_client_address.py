"""Which address is the client: forwarded headers count only as far as trusted proxies wrote
them (TRUSTED_PROXY_COUNT), for per-IP rate limits, the access log and WebSocket upgrades
alike. The gateway is served by its own HTTP server (`served_api`), as in production."""
from __future__ import annotations

import secrets

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from tornado.websocket import websocket_connect

from gateway import ratelimit
from gateway.ratelimit import Rule
from gateway.server import client_address
from settings import Settings
from tests.fixtures_wechat import SMS_API_KEY

SMS_SEND_LIMIT = 5  # gateway/ratelimit.py: auth.sms_send, per IP and minute


@pytest.fixture
def settings(request):
    return Settings(sms_provider="http", sms_api_key=SMS_API_KEY,
                    trusted_proxy_count=getattr(request, "param", 0))


behind_one_proxy = pytest.mark.parametrize("settings", [1], indirect=True)


def new_phone() -> str:
    return f"136{secrets.randbelow(10 ** 8):08d}"


async def send_sms(api, headers: dict) -> int:
    reply = await api.post("/v1/auth/sms/send", json={"phone": new_phone()}, headers=headers)
    return reply.status


def sms_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["route"] == "/v1/auth/sms/send"]


@pytest.mark.gen_test
async def test_without_a_proxy_spoofed_addresses_change_nothing(served_api, sms_gateway,
                                                                access_lines):
    statuses = [await send_sms(served_api, {"X-Forwarded-For": f"203.0.113.{i}",
                                            "X-Real-IP": f"198.51.100.{i}"})
                for i in range(1, 9)]
    assert statuses == [200] * SMS_SEND_LIMIT + [429] * (8 - SMS_SEND_LIMIT)
    assert len(sms_gateway.messages) == SMS_SEND_LIMIT
    assert [line["ip"] for line in sms_lines(access_lines())] == ["127.0.0.1"] * 8


@behind_one_proxy
@pytest.mark.gen_test
async def test_behind_one_proxy_the_right_most_forwarded_address_is_the_client(
        served_api, sms_gateway, access_lines):
    # The client prepends whatever it likes; the proxy appends the address it saw.
    statuses = [await send_sms(served_api, {"X-Forwarded-For": f"10.9.9.{i}, 203.0.113.50",
                                            "X-Real-IP": f"10.8.8.{i}"})
                for i in range(1, 9)]
    assert statuses == [200] * SMS_SEND_LIMIT + [429] * (8 - SMS_SEND_LIMIT)
    # Another client behind the same proxy has its own count.
    assert await send_sms(served_api, {"X-Forwarded-For": "203.0.113.51"}) == 200
    ips = [line["ip"] for line in sms_lines(access_lines())]
    assert ips == ["203.0.113.50"] * 8 + ["203.0.113.51"]


@behind_one_proxy
@pytest.mark.gen_test
async def test_a_forwarded_entry_that_is_not_an_address_falls_back_to_the_peer(
        served_api, access_lines):
    await served_api.get("/v1/users/me", headers={"X-Forwarded-For": "1.2.3.4, unknown"})
    await served_api.get("/v1/users/me", headers={"X-Forwarded-For": "x" * 5000})
    assert [line["ip"] for line in access_lines()] == ["127.0.0.1", "127.0.0.1"]


def request_from(peer: str, headers: dict[str, str] | HTTPHeaders) -> HTTPServerRequest:
    headers = HTTPHeaders(headers)
    headers["Host"] = "gateway"
    request = HTTPServerRequest(start_line=RequestStartLine("GET", "/", "HTTP/1.1"),
                                headers=headers)
    request.remote_ip = peer
    return request


@pytest.mark.parametrize("proxies,headers,client", [
    (0, {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.8"}, "10.0.0.2"),
    (1, {"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
    (1, {"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Real-IP": "7.7.7.7"}, "203.0.113.7"),
    (1, {"X-Real-IP": "203.0.113.8"}, "203.0.113.8"),  # nginx's X-Real-IP $remote_addr
    (1, {}, "10.0.0.2"),
    (1, {"X-Forwarded-For": "2001:DB8:0::1"}, "2001:db8::1"),  # one spelling per address
    (2, {"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.0.0.1"}, "203.0.113.7"),
    (2, {"X-Forwarded-For": "203.0.113.7"}, "10.0.0.2"),  # fewer hops than proxies
    (2, {"X-Real-IP": "203.0.113.8"}, "10.0.0.2"),  # the nearest proxy's view: a proxy
    (1, {"X-Forwarded-For": "203.0.113.7:4711"}, "10.0.0.2"),
])
def test_client_address_counts_trusted_hops_from_the_right(proxies, headers, client):
    assert client_address(request_from("10.0.0.2", headers), proxies) == client


def test_repeated_forwarded_headers_count_as_one_list():
    headers = HTTPHeaders()
    headers.add("X-Forwarded-For", "6.6.6.6")
    headers.add("X-Forwarded-For", "203.0.113.7")
    assert client_address(request_from("10.0.0.2", headers), 1) == "203.0.113.7"


async def upgrade(base_url: str, token: str, forwarded_for: str) -> int:
    request = HTTPRequest(base_url.replace("http://", "ws://") + "/v1/ws",
                          headers={"Authorization": f"Bearer {token}",
                                   "X-Forwarded-For": forwarded_for}, request_timeout=10)
    try:
        ws = await websocket_connect(request)
    except HTTPClientError as error:
        return error.code
    ws.close()
    return 101


@pytest.mark.gen_test(timeout=30)
async def test_websocket_upgrades_use_the_same_client_address(served_api, monkeypatch):
    me = await served_api.login()
    monkeypatch.setitem(ratelimit.RULES, "ws", (Rule("ip", 2, 60),))
    statuses = [await upgrade(served_api.base_url, me.token, f"203.0.113.{i}")
                for i in range(1, 4)]
    assert statuses == [101, 101, 429]


@behind_one_proxy
@pytest.mark.gen_test(timeout=30)
async def test_websocket_upgrades_behind_a_proxy_are_counted_per_forwarded_client(
        served_api, monkeypatch):
    me = await served_api.login()
    monkeypatch.setitem(ratelimit.RULES, "ws", (Rule("ip", 2, 60),))
    statuses = [await upgrade(served_api.base_url, me.token, f"10.9.9.{i}, 203.0.113.60")
                for i in range(1, 4)]
    assert statuses == [101, 101, 429]
    assert await upgrade(served_api.base_url, me.token, "203.0.113.61") == 101
