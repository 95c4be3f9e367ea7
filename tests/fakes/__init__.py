"""Fake third-party servers (WeChat, SMS) for tests: small Tornado apps, each served from a
background thread with its own IOLoop, so our real httpx client talks real HTTP to them.

`BackgroundServer` binds a free port in the calling thread (so the URL is known at once, before
any settings are read) and serves until the process exits.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class BackgroundServer:
    def __init__(self, app: tornado.web.Application, name: str) -> None:
        self.sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = self.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._app = app
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, name=f"fake-{name}", daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"fake {name} server did not start")

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def start() -> None:
            server = tornado.httpserver.HTTPServer(self._app)
            server.add_sockets(self.sockets)
            self._ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

