"""Application factory and the lifecycle of one gateway process.

`Gateway(settings)` owns the process's resources (database, Redis, HTTP client), the outbox
relay and the HTTP server. `start(port)` listens; `shutdown()` stops accepting, lets in-flight
requests finish within SHUTDOWN_GRACE_SECONDS, closes WebSockets with the documented
"going away" code, then releases resources. run_gateway.py wires SIGTERM to it.
"""
from __future__ import annotations

import asyncio
import logging
import time

import tornado.httpserver
import tornado.routing
import tornado.web
import tornado.websocket

from gateway import accesslog
from gateway.handler import NotFoundHandler
from gateway.hub import Hub
from gateway.ratelimit import RateLimiter
from gateway.rebalance import Rebalancer
from gateway.routing import LiteralPaths, Route
from gateway.server import make_server
from gateway.shutdown import (
    GOING_AWAY_CODE,
    GOING_AWAY_REASON,
    InflightRequests,
    close_paced,
    drain_window,
)
from pawhome.platform.activity import ActivityRecorder
from pawhome.platform.outbox import OutboxRelay
from pawhome.platform.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.gateway")


def make_app(resources: Resources, routes: list[Route],
             relay: OutboxRelay | None = None) -> tornado.web.Application:
    """The application serving `routes` (handlers.ROUTES, passed in by the composition root:
    the runtime knows no endpoint)."""
    literal = LiteralPaths(routes)
    rules = [tornado.routing.Rule(tornado.routing.AnyMatches(), literal),
             *(r.spec() for r in routes)]
    relay = relay or OutboxRelay(resources)
    app = tornado.web.Application(
        rules,
        default_handler_class=NotFoundHandler,
        resources=resources,
        limiter=RateLimiter(resources.cache, resources.settings.rate_limit_scale),
        relay=relay,
        broker_check=relay.check_broker,
        route_names={r.handler: r.name for r in routes},
        routes=routes,
        shutting_down=False,
        inflight=InflightRequests(),  # REST requests being answered; drained on shutdown
        websockets=set(),  # filled by the real-time hub; closed on shutdown
        hub=Hub(resources),  # pub/sub for the sockets (gateway/hub.py); starts on first use
        # daily active users: every authenticated request and socket (pawhome/platform/activity.py)
        activity=ActivityRecorder(resources.cache, resources.settings.activity_flush_seconds),
        compress_response=False,
        serve_traceback=False,
        log_function=lambda handler: None,  # gateway/accesslog.py writes the access log
    )
    literal.application = app
    return app


class Gateway:
    def __init__(self, settings: Settings, routes: list[Route]) -> None:
        settings.check_production()
        self.settings = settings
        self.resources = Resources(settings)
        self.relay = OutboxRelay(self.resources)
        self.app = make_app(self.resources, routes, self.relay)
        # Hands sockets back to lighter peers (gateway/rebalance.py); off while shutting down.
        self.rebalancer = Rebalancer(self.app.settings["hub"])
        self.server: tornado.httpserver.HTTPServer | None = None
        self.inflight = 0

    def start(self, port: int, address: str = "127.0.0.1", sockets=None) -> None:
        self.server = make_server(self.app, self.settings)
        if sockets is not None:
            self.server.add_sockets(sockets)
        else:
            self.server.listen(port, address=address, backlog=self.settings.listen_backlog)
        self.relay.start()
        self.app.settings["hub"].start()
        self.rebalancer.start()

    async def shutdown(self) -> None:
        """Stop accepting, drain in-flight requests, close sockets, release resources.

        Order matters: tornado's close_all_connections() closes streams at once, so it runs
        only after the drain (or at the deadline); WebSockets are told to go away first so
        their clients start reconnecting elsewhere while the last requests finish.
        """
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        self.app.settings["shutting_down"] = True  # readyz 503; kept-alive requests 503
        await self.rebalancer.stop()  # a process going away never sheds
        if self.server is not None:
            self.server.stop()  # no new connections
        sockets = list(self.app.settings["websockets"])
        closing = [ws.ws_connection for ws in sockets if ws.ws_connection is not None]
        # Its peers stop counting the sockets that are about to leave (they will arrive at
        # theirs: counted here too, a peer would shed them only to see them come back).
        await self.app.settings["hub"].withdraw()
        inflight: InflightRequests = self.app.settings["inflight"]
        _, idle = await asyncio.gather(
            self._drain(sockets), inflight.wait_idle(deadline - time.monotonic()))
        if not idle:
            log.warning("shutdown deadline reached with %d requests in flight", inflight.count)
        # Give the close handshakes a moment so clients see 1001 rather than a reset.
        handshake_deadline = min(deadline, time.monotonic() + 2.0)
        # Polled: tornado offers no awaitable for "this stream closed" across many streams.
        streams = [protocol.stream for protocol in closing]
        while any(not s.closed() for s in streams) and time.monotonic() < handshake_deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.server is not None:
            try:
                await asyncio.wait_for(self.server.close_all_connections(),
                                       max(0.5, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("connections still open at the shutdown deadline")
        await self.app.settings["hub"].stop()
        await self.app.settings["activity"].close()  # the users seen since the last flush
        await self.relay.stop()
        await self.resources.close()
        accesslog.writer.flush()

    async def _drain(self, sockets: list) -> None:
        """Close the WebSockets with "going away", a share per tick over the drain window
        (gateway/shutdown.py): their clients reconnect to the other processes at a pace
        those can take, rather than all in the same second. Every socket still gets its
        events until its turn (the hub runs until the end of shutdown)."""
        window = drain_window(len(sockets), self.settings.ws_drain_per_second,
                              self.settings.shutdown_grace_seconds)
        if window:
            log.info("closing %d WebSockets over %.1f s", len(sockets), window)
        await close_paced(sockets, window, _going_away)
        # An upgrade that was being answered when listening stopped.
        for ws in set(self.app.settings["websockets"]).difference(sockets):
            _going_away(ws)


def _going_away(ws: tornado.websocket.WebSocketHandler) -> bool:
    try:
        ws.close(GOING_AWAY_CODE, GOING_AWAY_REASON)
    except Exception:
        log.warning("could not close a WebSocket", exc_info=True)
    return True
