"""The gateway's HTTP server edge: who the client is, and request heads over the limit.

Client address: `client_address()` is the one answer to "which IP is this?" for rate limits,
the access log and WebSocket upgrades. A forwarded header is believed only as far as the
configured proxies wrote it (TRUSTED_PROXY_COUNT, docs/operations.md): with 0 the peer of the
TCP connection is the client and X-Forwarded-For / X-Real-IP are ignored; with N, the client
is the N-th X-Forwarded-For entry from the right (each proxy appends the address it saw, so
entries further left were written by the client and prove nothing). tornado's `xheaders`
stays off: it believes X-Real-IP and the last hop from anyone.

Request heads: tornado closes the connection without a word when a request line plus
headers exceed `max_header_size`. `GatewayHTTPServer` answers such a request 400 (code
40003, the error envelope) and then closes, reading what the client still sends for a moment
so the close does not reset the connection before the client has read the answer.
"""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Any, cast

import tornado.httpserver
import tornado.httputil
import tornado.iostream

from gateway.metrics import HTTP_ERRORS
from pawhome.platform import codec, errors
from settings import Settings

# After answering an oversized head: how long, and how much, to keep reading (and
# discarding) what the client still sends before the socket is closed.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20


def client_address(request: tornado.httputil.HTTPServerRequest, trusted_proxy_count: int) -> str:
    """The client's IP address, trusting forwarded headers only from `trusted_proxy_count`
    proxies in front of this process. "-" when the peer has no address."""
    peer = request.remote_ip or "-"
    if trusted_proxy_count <= 0:
        return peer
    forwarded = request.headers.get("X-Forwarded-For")  # repeated headers arrive joined by ","
    if forwarded is not None:
        hops = forwarded.split(",")
        if len(hops) < trusted_proxy_count:
            return peer  # fewer hops than proxies: not a shape our proxies write
        candidate = hops[-trusted_proxy_count]
    elif trusted_proxy_count == 1:
        # A single proxy (nginx with `proxy_set_header X-Real-IP $remote_addr`) may name the
        # address it saw here instead; with more proxies it would be another proxy's address.
        candidate = request.headers.get("X-Real-IP", "")
    else:
        return peer
    return _canonical_ip(candidate.strip()) or peer


@functools.lru_cache(maxsize=4096)
def _canonical_ip(text: str) -> str | None:
    """One spelling per address (a rate-limit key), None for anything else. Cached: the same
    clients come back, and parsing costs a few microseconds."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class HeadLimitedStream(tornado.iostream.IOStream):
    """An IOStream that hands an oversized request head to `refuse_oversized_head` instead
    of just closing its socket.

    tornado's HTTP/1 server reads each request head with `read_until_regex(...,
    max_bytes=max_header_size)` (and nothing else with read_until_regex); past the limit the
    stream closes itself with an UnsatisfiableReadError. `close_fd` is the stream's own hook
    for releasing its socket, so the socket is taken over there, after tornado has let go of
    it, and the HTTP layer sees an ordinary closed connection.
    """

    def __init__(self, *args: Any, refusal: bytes, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refusal = refusal
        self.reading_head = False

    def read_until_regex(self, regex: bytes, max_bytes: int | None = None) -> Awaitable[bytes]:
        self.reading_head = max_bytes is not None
        future = cast("asyncio.Future[bytes]", super().read_until_regex(regex, max_bytes))
        # Once the head is in (or the read failed), a later overflow is not the head's. The
        # callback runs before the HTTP layer resumes (it was added first), so before the
        # next request's head read can set the flag again.
        if future.done():
            self.reading_head = False
        else:
            future.add_done_callback(self._head_done)
        return future

    def _head_done(self, future: asyncio.Future[bytes]) -> None:
        self.reading_head = False

    def close_fd(self) -> None:
        if self.reading_head and isinstance(self.error, tornado.iostream.UnsatisfiableReadError):
            sock = self.socket
            self.socket = None  # type: ignore[assignment]  # as tornado's own close_fd does
            refuse_oversized_head(sock, self.refusal)
            return
        super().close_fd()


_lingering: set[asyncio.Task] = set()


def refuse_oversized_head(sock: socket.socket, refusal: bytes) -> None:
    """Send `refusal` on `sock`, stop sending, drain the client's rest briefly, close."""
    HTTP_ERRORS.labels(str(errors.HeadersTooLarge.code)).inc()
    try:
        task = asyncio.get_running_loop().create_task(_answer_and_close(sock, refusal))
    except RuntimeError:  # no running loop: nothing can answer
        sock.close()
        return
    _lingering.add(task)
    task.add_done_callback(_lingering.discard)


async def _answer_and_close(sock: socket.socket, refusal: bytes) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_SECONDS
    try:
        await asyncio.wait_for(loop.sock_sendall(sock, refusal), LINGER_SECONDS)
        sock.shutdown(socket.SHUT_WR)
        # Closing with unread input makes the kernel reset the connection, and a reset can
        # discard the answer before the client reads it; so read until the client is done.
        drained = 0
        while drained < LINGER_BYTES and loop.time() < deadline:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), deadline - loop.time())
            if not data:
                break
            drained += len(data)
    except (OSError, TimeoutError):
        pass  # the client went away or kept sending: close anyway
    finally:
        sock.close()


def head_refusal(max_header_bytes: int) -> bytes:
    """The complete HTTP response to a request head over `max_header_bytes`."""
    error = errors.HeadersTooLarge(f"Request line and headers are over {max_header_bytes} bytes")
    body = codec.dumps(error.body())
    head = (f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + body


class GatewayHTTPServer(tornado.httpserver.HTTPServer):
    """tornado's HTTPServer with `HeadLimitedStream` connections (xheaders off)."""

    def initialize(self, *args: Any, **kwargs: Any) -> None:  # tornado's Configurable init
        if kwargs.get("xheaders"):
            raise ValueError("xheaders trusts any client; see client_address()")
        super().initialize(*args, **kwargs)
        self.refusal = head_refusal(self.conn_params.max_header_size)

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple) -> None:
        # TCPServer made a plain IOStream that has not been used yet (nothing registered
        # with the loop): the socket moves to our subclass. TLS streams are left as they are
        # (TLS ends at nginx).
        if type(stream) is tornado.iostream.IOStream:
            stream = HeadLimitedStream(stream.socket, max_buffer_size=stream.max_buffer_size,
                                       read_chunk_size=stream.read_chunk_size,
                                       refusal=self.refusal)
        super().handle_stream(stream, address)


def make_server(app: Any, settings: Settings) -> GatewayHTTPServer:
    """The HTTP server of a gateway process (run_gateway.py, and tests that need the real
    server's limits)."""
    return GatewayHTTPServer(
        app, max_header_size=settings.max_header_bytes, max_body_size=settings.max_upload_bytes,
        idle_connection_timeout=75, body_timeout=60)
