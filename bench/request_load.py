"""A load client for prepared requests (bench_mall.py): each stream is one keep-alive HTTP/1.1
connection sending its own list of requests one after another (POSTs with bodies and
headers, every request different), all streams at once. Raw asyncio streams (uvloop when
available), like bench/load_driver.py.

    python bench/request_load.py SPEC.json

SPEC: {"host", "port", "streams": [[{"method", "path", "headers": {...}, "body": "..."}]]}.
A request with "chain": {"field": F, "from": K} (bench_booking.py: a confirmation after its
hold) is sent only when the stream's previous request answered 2xx, with its JSON body's F set
to that answer's data[K]; when not sent it is not recorded.
Prints one line "RESULT {json}": elapsed seconds (first request sent to last answer), and per
request [stream, index, status, latency in microseconds], plus up to 20 bodies of non-2xx
answers per status (to tell why).
"""
from __future__ import annotations

import asyncio
import json
import sys
import time


def encode(host: str, request: dict) -> bytes:
    body = request.get("body", "").encode()
    head = [f"{request['method']} {request['path']} HTTP/1.1", f"Host: {host}"]
    head += [f"{name}: {value}" for name, value in (request.get("headers") or {}).items()]
    if body or request["method"] in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chained(host: str, request: dict, status: int, previous: bytes) -> bytes | None:
    """A chained request with the previous answer's value put in, or None (not sent)."""
    if status >= 300:
        return None
    chain = request["chain"]
    body = json.loads(request["body"])
    body[chain["field"]] = json.loads(previous)["data"][chain["from"]]
    return encode(host, {**request, "body": json.dumps(body)})


async def stream(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], number: int,
                 requests: list[bytes | dict], records: list, failures: list,
                 host: str = "") -> None:
    reader, writer = connection
    status, body = 0, b""
    try:
        for index, prepared in enumerate(requests):
            raw = prepared if isinstance(prepared, bytes) else \
                chained(host, prepared, status, body)
            if raw is None:
                continue
            sent = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latency = time.perf_counter() - sent
            status = int(head[9:12])
            records.append([number, index, status, int(latency * 1e6)])
            if status >= 300 and sum(f["status"] == status for f in failures) < 20:
                failures.append({"status": status, "body": body[:500].decode(errors="replace")})
    except (OSError, asyncio.IncompleteReadError) as error:
        failures.append({"status": 0, "body": f"stream {number}: {error!r}"})
    finally:
        writer.close()


async def run(spec: dict) -> dict:
    host, port = spec["host"], spec["port"]
    streams = [[r if "chain" in r else encode(host, r) for r in requests]
               for requests in spec["streams"]]
    records: list = []
    failures: list = []
    # Every connection is open before the first request is sent.
    connections = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in streams))
    started = time.perf_counter()
    await asyncio.gather(*(stream(connection, n, requests, records, failures, host)
                           for n, (connection, requests) in enumerate(zip(connections, streams,
                                                                          strict=True))))
    return {"elapsed": time.perf_counter() - started, "records": records, "failures": failures}


def main() -> None:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print("RESULT " + json.dumps(runner(run(spec))), flush=True)


if __name__ == "__main__":
    main()
