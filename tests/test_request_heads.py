"""Oversized request heads are answered (400, code 40003, the error envelope) instead of the
connection being dropped; oversized bearer tokens are refused (401) without being decoded.
Requests go over raw sockets to the gateway's own HTTP server (`served_api`)."""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from pawhome.identity import tokens
from pawhome.platform import codec


async def exchange(base_url: str, *requests: bytes, timeout: float = 10) -> bytes:
    """Send `requests` on one connection and read until the server closes it."""
    address = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        for request in requests:
            writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def head(path: str = "/v1/users/me", *lines: str, close: bool = True) -> bytes:
    text = f"GET {path} HTTP/1.1\r\nHost: gateway\r\n" + "".join(line + "\r\n" for line in lines)
    if close:
        text += "Connection: close\r\n"
    return (text + "\r\n").encode()


def responses(raw: bytes) -> list[tuple[int, dict[str, str], dict]]:
    """(status, headers, JSON body) of each HTTP/1.1 response in `raw`."""
    out = []
    while raw:
        top, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = top.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        length = int(headers["content-length"])
        out.append((int(status_line.split()[1]), headers, codec.loads(rest[:length])))
        raw = rest[length:]
    return out


@pytest.mark.gen_test(timeout=30)
async def test_a_100_kb_authorization_header_is_answered_400_in_the_envelope(served_api):
    raw = await exchange(served_api.base_url,
                         head("/v1/users/me", "Authorization: Bearer " + "a" * 100_000))
    [(status, headers, body)] = responses(raw)
    assert status == 400
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["connection"] == "close"
    assert body["code"] == 40003 and body["errors"] == []
    assert "32768 bytes" in body["message"]


@pytest.mark.gen_test(timeout=30)
async def test_an_oversized_head_after_a_good_request_on_the_same_connection(served_api):
    raw = await exchange(served_api.base_url,
                         head("/healthz", close=False),
                         head("/healthz", "X-Padding: " + "p" * 40_000))
    assert [(status, body["code"]) for status, _, body in responses(raw)] == [(200, 0),
                                                                               (400, 40003)]


@pytest.mark.gen_test(timeout=30)
async def test_a_websocket_upgrade_with_an_oversized_head_is_answered_too(served_api):
    raw = await exchange(served_api.base_url, head(
        "/v1/ws", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Authorization: Bearer " + "a" * 50_000,
        close=False))
    [(status, _, body)] = responses(raw)
    assert status == 400 and body["code"] == 40003


@pytest.mark.gen_test(timeout=30)
async def test_a_head_just_under_the_limit_is_served(served_api):
    raw = await exchange(served_api.base_url, head("/healthz", "X-Padding: " + "p" * 30_000))
    [(status, _, body)] = responses(raw)
    assert status == 200 and body["code"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_an_oversized_chunk_size_line_is_not_called_a_header_problem(served_api):
    # Only the head gets the 400: a body that breaks the chunked framing is dropped as before.
    request = (b"POST /v1/auth/dev-login HTTP/1.1\r\nHost: gateway\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"f" * 200)
    assert await exchange(served_api.base_url, request) == b""


@pytest.mark.gen_test(timeout=30)
async def test_an_oversized_bearer_token_is_401_without_being_decoded(served_api, monkeypatch):
    decoded = []
    real_decode = tokens.jwt.decode

    def spy(token, *args, **kwargs):
        decoded.append(len(token))
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(tokens.jwt, "decode", spy)
    huge = "e30." * 5000  # 20 KB, under the head limit
    (await served_api.get("/v1/users/me", token=huge)).error(401, code=40102)
    assert decoded == []
    (await served_api.get("/v1/users/me", token="e30.e30.sig")).error(401, code=40102)
    assert decoded == [len("e30.e30.sig")]  # a token of sane length still is decoded
    me = await served_api.login()
    (await served_api.get("/v1/users/me", token=me.token)).ok()
