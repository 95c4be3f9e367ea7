"""The WebSocket endpoint (/v1/ws): authentication before the upgrade, the connection cap.

`WebSocketHandler` is the tornado plumbing: it checks the token and admits the upgrade, then
hands the socket to a `Connection` (gateway/ws_connection.py: one socket's protocol state,
kept small because a process holds thousands), which joins the process's hub
(gateway/hub.py). Client frames are pydantic models registered with
`@frame_handler(type, Model)` (gateway/ws_frames.py, with the core frames: ping, ack, resume,
auth.refresh, sub, unsub); domain ones live in handlers/ (imported through
handlers/realtime.py). docs/realtime.md is the protocol.
"""
from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable
from typing import Any

import tornado.websocket

from gateway import metrics
from gateway.errormap import to_app_error
from gateway.ratelimit import rules_for
from gateway.server import client_address
from gateway.ws_connection import (  # noqa: F401
    CLOSE_AUTH,
    CLOSE_BINARY,
    CLOSE_FLOOD,
    CLOSE_GOING_AWAY,
    CLOSE_PROTOCOL,
    CLOSE_SLOW,
    CLOSE_TOO_BIG,
    CLOSE_UNAVAILABLE,
    Connection,
)
from gateway.ws_frames import ClientFrame, frame_handler  # noqa: F401  (the public names)
from pawhome.identity.tokens import (
    CONSOLE_COOKIE,
    AccessClaims,
    check_revocation,
    decode_access_token,
    decode_console_cookie,
    revocation_keys,
)
from pawhome.platform import codec, errors, streams

log = logging.getLogger("pawhome.ws")

# Above the protocol limit, tornado itself drops the TCP connection while still reading the
# frame; below it, the frame is read and refused with a clean 1009 close handshake.
_HARD_FRAME_LIMIT_FACTOR = 16


# -- the endpoint -----------------------------------------------------------------------------

class WebSocketHandler(tornado.websocket.WebSocketHandler):
    """GET /v1/ws: authenticate, then upgrade; one `Connection` per socket."""

    def initialize(self, route_template: str = "", path_types: dict | None = None) -> None:
        self.route_template = route_template
        self.claims: AccessClaims | None = None
        self.conn: Connection | None = None

    @property
    def max_message_size(self) -> int:
        return self.application.settings["resources"].settings.ws_max_frame_bytes * \
            _HARD_FRAME_LIMIT_FACTOR

    def check_origin(self, origin: str) -> bool:
        # Authentication by bearer token: a foreign page has none to ride on, and the
        # mini-program's origin varies (servicewechat.com, devtools). The web console's
        # session cookie is checked in _claims: only a page of this very host may use it.
        return True

    def _claims(self, settings: Any) -> AccessClaims:
        token = self._token()
        if token:
            return decode_access_token(settings, token)
        cookie = self.get_cookie(CONSOLE_COOKIE)
        if not cookie:
            raise errors.Unauthorized()
        origin = urllib.parse.urlsplit(self.request.headers.get("Origin", "")).netloc
        if not origin or origin != self.request.host:
            raise errors.Forbidden("The console session works only from its own pages")
        return decode_console_cookie(settings, cookie, "GET", "")

    def _refuse(self, error: errors.AppError) -> None:
        metrics.WS_REJECTED.labels(status=str(error.status)).inc()
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(codec.dumps(error.body()))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Only tornado's own refusals get here (e.g. 405 for TRACE): the JSON envelope too.
        error = to_app_error(None, status_code)
        if error.status == 405:
            self.set_header("Allow", "GET")
        self._refuse(error)

    def _token(self) -> str:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return self.get_query_argument("token", "").strip()

    async def get(self, *args: Any, **kwargs: Any) -> None:
        settings = self.application.settings
        resources = settings["resources"]
        try:
            if settings.get("shutting_down"):
                raise errors.ShuttingDown()
            if len(settings["websockets"]) >= resources.settings.ws_max_connections:
                raise errors.ServiceUnavailable("This server is full; try another")
            claims = self._claims(resources.settings)
            route = settings["route_names"].get(type(self), "ws")
            address = client_address(self.request, resources.settings.trusted_proxy_count)
            hits = [(rule, str(claims.user_id) if rule.scope == "user" else address)
                    for rule in rules_for(route)]
            # As for a REST request (gateway/handler.py): ONE Redis call counts the upgrade
            # in its rate-limit windows and reads the token's revocation marks.
            revocation = revocation_keys(resources.cache, claims)
            check_revocation(claims, await settings["limiter"].admit(route, hits, revocation))
            if self.request.headers.get("Upgrade", "").lower() != "websocket":
                raise errors.BadRequest('This endpoint only upgrades to a WebSocket',
                                        errors=[errors.field_error("Upgrade", "must be websocket")])
        except Exception as error:
            self._refuse(to_app_error(error, 500))
            return
        self.claims = claims
        await super().get(*args, **kwargs)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        settings = self.application.settings
        settings["websockets"].add(self)  # Gateway.shutdown closes these with 1001
        metrics.WEBSOCKETS_OPEN.inc()
        assert self.claims is not None
        conn = self.conn = Connection(self, self.claims)
        cache = conn.resources.cache
        try:
            await conn.hub.join(conn)
            # Checked again once subscribed: a revocation published before the subscription
            # existed would otherwise be missed. It and the stream's head are read in one
            # round trip on the pipelined connection, shared with every other socket.
            marks, head = await cache.execute_many(
                ("MGET", *revocation_keys(cache, self.claims)),
                streams.head_command(cache, conn.user_id))
            check_revocation(self.claims, marks)
            epoch, last_eid = streams.head_of(head)
        except errors.Unauthorized:
            conn.close(CLOSE_AUTH, "session revoked")
            return
        except Exception as error:
            log.warning("WebSocket setup failed for user %s: %r", conn.user_id, error)
            conn.close(CLOSE_UNAVAILABLE, "temporarily unavailable")
            return
        if conn.closed:
            return
        self.set_nodelay(True)
        settings["activity"].seen(conn.user_id)  # a socket counts as activity of the day
        conn.start(epoch, last_eid)  # hello, then live events flow (or wait for `resume`)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        if self.conn is None:
            return None
        return self.conn.receive(message)

    def on_pong(self, data: bytes) -> None:
        if self.conn is not None:
            self.conn.heard()

    def on_close(self) -> None:
        settings = self.application.settings
        if self in settings["websockets"]:
            settings["websockets"].discard(self)
            metrics.WEBSOCKETS_OPEN.dec()
        if self.conn is not None:
            self.conn.dispose()
