"""Fallback load generator when `wrk` is not installed: N keep-alive HTTP/1.1 connections on
raw asyncio streams (uvloop when available), one request in flight per connection.

    python bench/load_driver.py URL --connections 64 --seconds 6 [--token T ...]

Prints the same JSON line as wrk_report.lua. Slower than wrk, so on a small machine it can
be the bottleneck; bench_gateway.py says which driver produced the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def connection(host: str, port: int, path: str, tokens: list[str], offset: int,
                     stop_at: float, latencies: list[float], counts: dict) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    requests = []
    for token in tokens or [""]:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        requests.append(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode())
    i = offset
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 2"):
                counts["non_2xx"] += 1
    except (OSError, asyncio.IncompleteReadError):
        counts["socket_errors"] += 1
    finally:
        writer.close()


async def run(url: str, connections: int, seconds: float, tokens: list[str]) -> dict:
    parts = urlsplit(url)
    latencies: list[float] = []
    counts = {"non_2xx": 0, "socket_errors": 0}
    started = time.perf_counter()
    # The query string is part of the request target (without it /v1/posts?sort=hot would
    # measure the default sort).
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    await asyncio.gather(*(connection(parts.hostname, parts.port, target, tokens, n,
                                      started + seconds, latencies, counts)
                           for n in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> int:
        return int(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6)

    return {"requests": len(latencies), "duration_us": int(elapsed * 1e6), "p50_us": pct(50),
            "p99_us": pct(99), "mean_us": sum(latencies) / len(latencies) * 1e6, **counts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--token", action="append", default=[])
    args = parser.parse_args()
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(run(args.url, args.connections, args.seconds, args.token))))


if __name__ == "__main__":
    main()
