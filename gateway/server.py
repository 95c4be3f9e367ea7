"""The gateway's HTTP server edge: who the client is.

Client address: `client_address()` is the one answer to "which IP is this?" for rate limits,
the access log and WebSocket upgrades. A forwarded header is believed only as far as the
configured proxies wrote it (TRUSTED_PROXY_COUNT, docs/operations.md): with 0 the peer of the
TCP connection is the client and X-Forwarded-For / X-Real-IP are ignored; with N, the client
is the N-th X-Forwarded-For entry from the right (each proxy appends the address it saw, so
entries further left were written by the client and prove nothing). tornado's `xheaders`
stays off: it believes X-Real-IP and the last hop from anyone.
"""
from __future__ import annotations

import ipaddress
from typing import Any

import tornado.httpserver
import tornado.httputil

from settings import Settings


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
    try:
        return str(ipaddress.ip_address(candidate.strip()))
    except ValueError:
        return peer


def make_server(app: Any, settings: Settings) -> tornado.httpserver.HTTPServer:
    """The HTTP server of a gateway process (run_gateway.py, and tests that need the real
    server). No `xheaders`: it believes X-Real-IP from anyone; see client_address()."""
    return tornado.httpserver.HTTPServer(
        app, max_body_size=settings.max_upload_bytes, idle_connection_timeout=75,
        body_timeout=60)
