"""A fake SMS gateway for the "http" SMS provider: POST /send with a bearer API key.

It records every message (so tests can read the code a user would receive) and can be told
to fail the next sends with `fail_next(status)`.
"""
from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

import tornado.web

from tests.fakes import BackgroundServer

API_KEY = "test-sms-key"


class FakeSmsState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.messages: list[dict[str, Any]] = []
            self.rejected_auth = 0
            self.failures: deque[int] = deque()

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        with self.lock:
            self.failures.extend([status] * times)

    def codes_for(self, phone: str) -> list[str]:
        with self.lock:
            return [m["params"]["code"] for m in self.messages if m.get("phone") == phone]

    def last_code(self, phone: str) -> str:
        codes = self.codes_for(phone)
        assert codes, f"no SMS was sent to {phone}"
        return codes[-1]


class SendHandler(tornado.web.RequestHandler):
    def initialize(self, state: FakeSmsState) -> None:
        self.state = state

    def post(self) -> None:
        self.set_header("Content-Type", "application/json")
        if self.request.headers.get("Authorization") != f"Bearer {API_KEY}":
            with self.state.lock:
                self.state.rejected_auth += 1
            self.set_status(401)
            return self.finish(json.dumps({"ok": False, "error": "bad api key"}))
        with self.state.lock:
            status = self.state.failures.popleft() if self.state.failures else None
        if status is not None:
            self.set_status(status)
            return self.finish(json.dumps({"ok": False, "error": "provider failure"}))
        try:
            body = json.loads(self.request.body)
        except ValueError:
            self.set_status(400)
            return self.finish(json.dumps({"ok": False, "error": "not json"}))
        with self.state.lock:
            self.state.messages.append(body)
            message_id = len(self.state.messages)
        self.finish(json.dumps({"ok": True, "message_id": message_id}))


class FakeSms:
    def __init__(self) -> None:
        self.state = FakeSmsState()
        self.server = BackgroundServer(
            tornado.web.Application([(r"/send", SendHandler, {"state": self.state})]), "sms")
        self.base_url = self.server.base_url
