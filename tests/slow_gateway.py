"""A real gateway process plus two test-only routes, for the graceful-shutdown test.

`python -m tests.slow_gateway --port P` builds the production Gateway, adds a slow REST
endpoint and a WebSocket endpoint (test-only, never in ROUTES), and stops on SIGTERM through
the same signal wiring as run_gateway.py. It prints "ready" and "slow-started" on stdout so
the test can wait for events instead of sleeping.
"""
from __future__ import annotations

import argparse
import asyncio

import tornado.websocket

import workers.celery_app  # noqa: F401  (the task dispatcher, as in run_gateway.py)
from gateway.app import Gateway
from gateway.handler import ApiHandler, endpoint
from gateway.routing import route
from gateway.shutdown import stop_signal
from handlers import ROUTES
from pawhome.platform.logs import setup_logging
from settings import get_settings


class SlowHandler(ApiHandler):
    @endpoint(auth=False, summary="test: answers after ?seconds=")
    async def get(self) -> None:
        seconds = float(self.get_query_argument("seconds", "2"))
        print("slow-started", flush=True)
        await asyncio.sleep(seconds)
        self.ok({"slept": seconds})


class EchoSocket(tornado.websocket.WebSocketHandler):
    def initialize(self, route_template: str = "", path_types: dict | None = None) -> None:
        pass  # route() passes these to every handler

    def open(self) -> None:
        self.application.settings["websockets"].add(self)

    def on_message(self, message) -> None:
        self.write_message(message)

    def on_close(self) -> None:
        self.application.settings["websockets"].discard(self)


async def serve(port: int) -> None:
    settings = get_settings()
    gateway = Gateway(settings, ROUTES)
    gateway.app.add_handlers(r".*", [route("/v1/test/slow", SlowHandler, "test.slow").spec(),
                                     route("/v1/test/ws", EchoSocket, "test.ws").spec()])
    gateway.start(port)
    stop = stop_signal()
    print("ready", flush=True)
    await stop.wait()
    await gateway.shutdown()
    print("stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    setup_logging(get_settings().log_level)
    asyncio.run(serve(args.port))
