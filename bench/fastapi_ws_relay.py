"""The bare relay of bench/bare_ws_relay.py on FastAPI + uvicorn, for bench/bench_ws_compare.py.

    python bench/fastapi_ws_relay.py --port 8901

The same protocol, frame for frame: a socket says who it is with `?id=<n>` and gets `hello`;
`{"type": "send", "to": <id>, "ref", ...}` is forwarded to every socket of <id> as
`chat.message` and answered with `chat.ack`; `{"type": "broadcast", "data"}` is written to
every other socket; `ping` gets `pong`; GET /healthz answers `{"status": "ok"}`. No auth,
no Redis, no database; orjson as the codec, as in the Tornado relay.

uvicorn runs the way one deploys it for speed: one process, uvloop, httptools, access log
off, and the `websockets` package as the WebSocket implementation - its Sans-I/O core
(`ws="websockets-sansio"`, what uvicorn's `auto` picks when websockets is installed; the
older `ws="websockets"` is deprecated by uvicorn and warns at import). Keepalive pings and
permessage-deflate stay at uvicorn's defaults (the load client offers no compression, so
none is negotiated).
"""
from __future__ import annotations

import argparse
import contextlib
import time
from typing import Annotated

import orjson
import uvicorn
from fastapi import FastAPI, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import Response

SOCKETS: dict[int, list[WebSocket]] = {}
ALL: set[WebSocket] = set()

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


def dumps(frame: dict) -> str:
    # A text frame: the load client (bench/ws_load.py) reads text frames only.
    return orjson.dumps(frame).decode()


async def write(target: WebSocket, frame: str) -> None:
    """One frame to another socket; a socket that is closing is skipped, as the Tornado
    relay's write_frame() does (its own handler removes it from SOCKETS)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await target.send_text(frame)


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.websocket("/ws")
async def relay(websocket: WebSocket, uid: Annotated[int, Query(alias="id")] = 0) -> None:
    await websocket.accept()
    SOCKETS.setdefault(uid, []).append(websocket)
    ALL.add(websocket)
    try:
        await websocket.send_text(dumps({"type": "hello", "user_id": uid,
                                         "server_time": int(time.time() * 1000)}))
        while True:
            frame = orjson.loads(await websocket.receive_text())
            kind = frame.get("type")
            if kind == "send":
                out = dumps({"type": "chat.message",
                             "data": {"sender_id": uid,
                                      "client_msg_id": frame.get("client_msg_id"),
                                      "text": frame.get("text")}})
                for target in list(SOCKETS.get(frame.get("to"), ())):
                    await write(target, out)
                await websocket.send_text(dumps({"type": "chat.ack", "ref": frame.get("ref"),
                                                 "client_msg_id": frame.get("client_msg_id")}))
            elif kind == "broadcast":
                out = dumps({"type": "bench.fanout", "data": frame.get("data")})
                for target in list(ALL):
                    if target is not websocket:
                        await write(target, out)
            elif kind == "ping":
                await websocket.send_text(dumps({"type": "pong", "ref": frame.get("ref")}))
    except WebSocketDisconnect:
        pass
    finally:
        ALL.discard(websocket)
        peers = SOCKETS.get(uid)
        if peers is not None and websocket in peers:
            peers.remove(websocket)
            if not peers:
                del SOCKETS[uid]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                ws="websockets-sansio", log_level="warning", access_log=False,
                backlog=4096, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
