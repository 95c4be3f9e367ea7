"""The floor for bench/bench_realtime.py: a bare Tornado WebSocket relay, nothing else.

    python bench/bare_ws_relay.py --port 8900

No auth, no Redis, no database, no limits: a socket says who it is with `?id=<n>` and gets
`hello`; `{"type": "send", "to": <id>, "ref", ...}` is forwarded to every socket of <id> as
`chat.message` and answered with `chat.ack`; `{"type": "broadcast", "data"}` is written to
every other socket; `ping` gets `pong`. Same JSON codec (orjson) and the same frame writer
as the gateway, so the gap between the two is what auth, persistence, streams and the hub
cost.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

import orjson
import tornado.iostream
import tornado.web
import tornado.websocket

SOCKETS: dict[int, list[RelaySocket]] = {}
ALL: set[RelaySocket] = set()


class RelaySocket(tornado.websocket.WebSocketHandler):
    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        self.uid = int(self.get_query_argument("id", "0"))
        SOCKETS.setdefault(self.uid, []).append(self)
        ALL.add(self)
        self.set_nodelay(True)
        self.write_message(orjson.dumps({"type": "hello", "user_id": self.uid,
                                         "server_time": int(time.time() * 1000)}))

    def on_message(self, message: str | bytes) -> None:
        frame = orjson.loads(message)
        kind = frame.get("type")
        if kind == "send":
            out = orjson.dumps({"type": "chat.message",
                                "data": {"sender_id": self.uid,
                                         "client_msg_id": frame.get("client_msg_id"),
                                         "text": frame.get("text")}})
            for target in SOCKETS.get(frame.get("to"), ()):
                target.write_frame(out)
            self.write_frame(orjson.dumps({"type": "chat.ack", "ref": frame.get("ref"),
                                           "client_msg_id": frame.get("client_msg_id")}))
        elif kind == "broadcast":
            out = orjson.dumps({"type": "bench.fanout", "data": frame.get("data")})
            for target in list(ALL):
                if target is not self:
                    target.write_frame(out)
        elif kind == "ping":
            self.write_frame(orjson.dumps({"type": "pong", "ref": frame.get("ref")}))

    def write_frame(self, frame: bytes) -> None:
        """One text frame, written the way gateway/ws.py writes (the protocol's frame writer:
        write_message() would wrap each write in an asyncio Task)."""
        protocol = self.ws_connection
        if protocol is not None and not protocol.is_closing():
            with contextlib.suppress(tornado.iostream.StreamClosedError):
                protocol._write_frame(True, 0x1, frame)

    def on_close(self) -> None:
        ALL.discard(self)
        peers = SOCKETS.get(self.uid)
        if peers is not None and self in peers:
            peers.remove(self)
            if not peers:
                del SOCKETS[self.uid]


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"status": "ok"})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = tornado.web.Application([(r"/healthz", Health), (r"/ws", RelaySocket)])
    app.listen(args.port, "127.0.0.1", backlog=4096)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
