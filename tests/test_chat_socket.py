"""Direct messages over the WebSocket: send/ack, delivery to the peer and the sender's other
devices, read receipts, typing, recall, and errors that keep the connection open."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from tornado.websocket import websocket_connect

import handlers.chat_frames  # noqa: F401  (registers the chat frames, as handlers/realtime does)
from pawhome.platform import codec
from tests.event_contract import assert_events_valid


class ChatSocket:
    """A minimal protocol client: connects, goes live, and lets a test await frames."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, base_url: str, token: str) -> ChatSocket:
        ws = await websocket_connect(base_url.replace("http", "ws", 1) + "/v1/ws?token=" + token)
        sock = cls(ws)
        hello = await sock.expect(lambda f: f["type"] == "hello")
        await sock.send({"type": "resume", "epoch": hello["epoch"],
                         "last_event_id": hello["last_event_id"]})
        await sock.expect(lambda f: f["type"] in ("resumed", "resync"))
        return sock

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.write_message(codec.dumps(frame).decode())

    async def expect(self, match: Callable[[dict], bool], timeout: float = 10) -> dict:
        """The first frame (already received or arriving within `timeout`) that matches; it
        is consumed, so the next call finds the next one."""
        deadline = time.monotonic() + timeout
        while True:
            for i, frame in enumerate(self.frames):
                if match(frame):
                    return self.frames.pop(i)
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no matching frame; got {self.frames}"
            try:
                raw = await asyncio.wait_for(self.ws.read_message(), remaining)
            except TimeoutError:
                continue
            assert raw is not None, f"socket closed: {self.ws.close_code} {self.ws.close_reason}"
            self.frames.append(codec.loads(raw))

    async def of_type(self, frame_type: str, timeout: float = 10) -> dict:
        return await self.expect(lambda f: f["type"] == frame_type, timeout)

    def close(self) -> None:
        self.ws.close()


def _send_frame(ref: str, text: str, **target) -> dict:
    return {"type": "chat.send", "ref": ref, "client_msg_id": uuid.uuid4().hex,
            "kind": "text", "text": text, **target}


@pytest.mark.gen_test(timeout=60)
async def test_socket_chat_send_ack_delivery_read_receipt_typing_and_recall(api, base_url):
    a, b = await api.login(), await api.login()
    a_phone = await ChatSocket.connect(base_url, a.token)
    a_pad = await ChatSocket.connect(base_url, a.token)
    b_phone = await ChatSocket.connect(base_url, b.token)
    try:
        await a_phone.send(_send_frame("r1", "在吗 🐶", to_user_id=b.user_id))
        ack = await a_phone.of_type("chat.ack")
        assert ack["ref"] == "r1" and ack["seq"] == 1
        conversation = ack["conversation_id"]

        delivered = await b_phone.of_type("chat.message")
        assert isinstance(delivered["eid"], int) and delivered["epoch"]
        assert delivered["data"]["id"] == ack["id"]
        assert delivered["data"]["content"] == {"text": "在吗 🐶"}
        assert delivered["data"]["sender_id"] == a.user_id
        assert_events_valid([{"id": "-", "type": delivered["type"], "data": delivered["data"],
                              "ts": delivered["ts"]}])
        # The sender's other device hears of it too (and the sending one, for its other tabs).
        assert (await a_pad.of_type("chat.message"))["data"]["seq"] == 1
        assert (await a_phone.of_type("chat.message"))["data"]["client_msg_id"] == \
            ack["client_msg_id"]

        # Sent again into the conversation with the same client_msg_id: the same ack.
        again = {**_send_frame("r2", "在吗 🐶", conversation_id=conversation),
                 "client_msg_id": ack["client_msg_id"]}
        await a_phone.send(again)
        repeated = await a_phone.of_type("chat.ack")
        assert repeated["ref"] == "r2"
        assert {k: repeated[k] for k in ("id", "seq", "created_at")} == \
            {k: ack[k] for k in ("id", "seq", "created_at")}

        await b_phone.send({"type": "chat.read", "conversation_id": conversation, "seq": 1})
        receipt = await a_phone.of_type("chat.read")
        assert receipt["data"] == {"conversation_id": conversation, "reader_id": b.user_id,
                                   "seq": 1}

        await b_phone.send({"type": "chat.typing", "conversation_id": conversation})
        typing = await a_phone.of_type("chat.typing")
        assert "eid" not in typing  # ephemeral: not part of the stream
        assert typing["data"] == {"conversation_id": conversation, "user_id": b.user_id}

        await a_phone.send({"type": "chat.recall", "conversation_id": conversation, "seq": 1})
        for sock in (b_phone, a_pad):
            recalled = await sock.of_type("chat.recalled")
            assert recalled["data"] == {"conversation_id": conversation, "seq": 1,
                                        "id": ack["id"]}
        history = (await api.get(f"/v1/conversations/{conversation}/messages",
                                 token=b.token)).ok()
        assert history["items"][0]["recalled"] is True and history["read_seq"] == 1
    finally:
        for sock in (a_phone, a_pad, b_phone):
            sock.close()


@pytest.mark.gen_test(timeout=60)
async def test_refused_and_malformed_sends_are_error_frames_and_the_socket_stays(api, base_url):
    a, b = await api.login(), await api.login()
    (await api.post("/v1/users/me/blocks", json={"user_id": a.user_id}, token=b.token)).ok()
    sock = await ChatSocket.connect(base_url, a.token)
    try:
        await sock.send(_send_frame("blocked", "hi", to_user_id=b.user_id))
        error = await sock.of_type("error")
        assert error["code"] == 40310 and error["ref"] == "blocked"

        await sock.send(_send_frame("both", "hi", to_user_id=b.user_id, conversation_id=1))
        error = await sock.of_type("error")
        assert error["code"] == 42200 and error["ref"] == "both"

        await sock.send({"type": "chat.send", "ref": "nobody", "kind": "text", "text": "x",
                         "to_user_id": b.user_id})
        error = await sock.of_type("error")
        assert error["ref"] == "nobody"
        assert any(e["field"] == "client_msg_id" for e in error["errors"])

        await sock.send(_send_frame("bad-word", "买 冰毒", to_user_id=b.user_id))
        error = await sock.of_type("error")
        assert error["code"] == 42202 and "冰毒" in error["errors"][0]["message"]

        await sock.send({"type": "chat.read", "ref": "stranger", "conversation_id": 2**40,
                         "seq": 1})
        assert (await sock.of_type("error"))["code"] == 40400

        await sock.send({"type": "ping", "ref": "still-here"})
        assert (await sock.of_type("pong"))["ref"] == "still-here"
    finally:
        sock.close()
