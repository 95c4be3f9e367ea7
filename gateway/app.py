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
import tornado.web

from gateway.handler import NotFoundHandler
from gateway.ratelimit import RateLimiter
from pawhome.outbox import OutboxRelay
from pawhome.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.gateway")


def make_app(resources: Resources, relay: OutboxRelay | None = None) -> tornado.web.Application:
    from handlers import ROUTES  # the one route table

    specs = [r.spec() for r in ROUTES]
    relay = relay or OutboxRelay(resources)
    return tornado.web.Application(
        specs,
        default_handler_class=NotFoundHandler,
        resources=resources,
        limiter=RateLimiter(resources.cache),
        relay=relay,
        broker_check=relay.check_broker,
        route_names={r.handler: r.name for r in ROUTES},
        routes=ROUTES,
        shutting_down=False,
        websockets=set(),  # filled by the real-time hub; closed on shutdown
        compress_response=False,
        serve_traceback=False,
        log_function=lambda handler: None,  # gateway/accesslog.py writes the access log
    )


class Gateway:
    def __init__(self, settings: Settings) -> None:
        settings.check_production()
        self.settings = settings
        self.resources = Resources(settings)
        self.relay = OutboxRelay(self.resources)
        self.app = make_app(self.resources, self.relay)
        self.server: tornado.httpserver.HTTPServer | None = None
        self.inflight = 0

    def start(self, port: int, address: str = "127.0.0.1", sockets=None) -> None:
        self.server = tornado.httpserver.HTTPServer(
            self.app, xheaders=True, max_body_size=self.settings.max_upload_bytes,
            idle_connection_timeout=75, body_timeout=60)
        if sockets is not None:
            self.server.add_sockets(sockets)
        else:
            self.server.listen(port, address=address)
        self.relay.start()

    async def shutdown(self) -> None:
        """Stop accepting, drain in-flight requests, close sockets, release resources."""
        self.app.settings["shutting_down"] = True
        if self.server is not None:
            self.server.stop()  # no new connections
        from gateway.shutdown import GOING_AWAY_CODE

        for ws in list(self.app.settings["websockets"]):
            ws.close(GOING_AWAY_CODE, "server restarting, reconnect")
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        if self.server is not None:
            try:
                await asyncio.wait_for(self.server.close_all_connections(),
                                       max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                log.warning("shutdown deadline reached with requests still in flight")
        await self.relay.stop()
        await self.resources.close()
