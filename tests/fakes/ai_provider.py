"""A fake external AI pet provider (docs/virtual-pet.md "Adapter"): POST <path> with
{"photo_jpeg": base64, "hints": {...}} answers {"params", "personality", "sprite"}.

Each path is a behaviour, so tests need no shared switches: `/ok` answers a pet (after
checking the photo really is a JPEG), `/slow` answers after `SLOW_SECONDS`, `/garbage` answers
200 with a reply of the wrong shape, `/not-an-image` a pet whose sprite is not an image,
`/error` answers 500, `/flaky` answers 500 once per photo, then a pet. Every request is
recorded (per path) for the tests to count.
"""
from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections import Counter
from typing import Any

import cv2
import numpy as np
import tornado.web

from tests.fakes import BackgroundServer

SLOW_SECONDS = 2.0
PARAMS = {"species": "cat", "base_model": "cat_provider", "colours": ["#112233", "#445566"],
          "eye_shape": "round", "face_shape": "round", "markings": ["solid"],
          "accessories": [{"kind": "bow", "colour": "#ff0066"}]}


def provider_sprite() -> bytes:
    picture = np.zeros((300, 300, 4), np.uint8)
    cv2.circle(picture, (150, 150), 120, (51, 34, 17, 255), -1)
    ok, data = cv2.imencode(".png", picture)
    assert ok
    return data.tobytes()


class FakeAiState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.photos_seen: Counter[str] = Counter()
        self.last_body: dict[str, Any] = {}


class GenerateHandler(tornado.web.RequestHandler):
    def initialize(self, state: FakeAiState) -> None:
        self.state = state

    async def post(self, behaviour: str) -> None:
        body = json.loads(self.request.body)
        photo = base64.b64decode(body["photo_jpeg"])
        with self.state.lock:
            self.state.requests[behaviour] += 1
            self.state.photos_seen[f"{behaviour}:{hash(photo)}"] += 1
            first_time = self.state.photos_seen[f"{behaviour}:{hash(photo)}"] == 1
            self.state.last_body = body
        self.set_header("Content-Type", "application/json")
        if not photo.startswith(b"\xff\xd8"):
            self.set_status(400)
            return self.finish(json.dumps({"error": "photo_jpeg is not a JPEG"}))
        if behaviour == "error" or (behaviour == "flaky" and first_time):
            self.set_status(500)
            return self.finish(json.dumps({"error": "model crashed"}))
        if behaviour == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if behaviour == "garbage":
            return self.finish(json.dumps({"result": "a very nice cat"}))
        sprite = b"this is not an image" if behaviour == "not-an-image" else provider_sprite()
        self.finish(json.dumps({"params": PARAMS, "personality": "lively",
                                "sprite": base64.b64encode(sprite).decode()}))


class FakeAiProvider:
    def __init__(self) -> None:
        self.state = FakeAiState()
        self.server = BackgroundServer(tornado.web.Application(
            [(r"/([a-z-]+)", GenerateHandler, {"state": self.state})]), "ai-provider")
        self.base_url = self.server.base_url

    def url(self, behaviour: str) -> str:
        return f"{self.base_url}/{behaviour}"
