"""Gateway throughput and latency against a bare Tornado baseline, in one run.

    python bench/bench_gateway.py            (or: make bench)

Starts ONE gateway process (run_gateway.py, MODE=development) on the local MariaDB and Redis
(database `pawhome_bench`, created and migrated here; Redis prefix `pawhome_bench:`), logs in
64 users through dev-login, and measures req/s and p50/p99 latency of GET /healthz and an
authenticated GET /v1/users/me at 64 connections - beside bench/bare_server.py doing the
same work, and the gateway again on uvloop. Also compares orjson with the stdlib json on the
users/me payload. Server and load generator are pinned to different cores. Writes
bench/results/gateway.json and gateway.md. Not part of `make test`; about 90 seconds.

Environment: BENCH_MYSQL_URL (default mysql+aiomysql://root@127.0.0.1:3306/), BENCH_REDIS_URL
(default redis://127.0.0.1:6379/0), BENCH_SECONDS (measured seconds per case, default 8),
BENCH_CONNECTIONS (default 64).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "bench"
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT))

MYSQL = os.environ.get("BENCH_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
WARMUP = 3.0
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
USERS = 64
DB_NAME = "pawhome_bench"
PREFIX = "pawhome_bench:"

ENV = {
    **os.environ,
    "MODE": "development",
    "DATABASE_URL": f"{MYSQL}{DB_NAME}?charset=utf8mb4",
    "REDIS_URL": REDIS,
    "REDIS_PREFIX": PREFIX,
    "BROKER_URL": REDIS,
    "TASK_QUEUE_PREFIX": "bench.",
    "JWT_SECRET": "bench-" + secrets.token_hex(24),
    # Access-log lines are INFO: both servers run without per-request logging.
    "LOG_LEVEL": "WARNING",
    "USE_UVLOOP": "0",
    "PYTHONPATH": str(ROOT),
}


# -- set-up ----------------------------------------------------------------------------------
async def prepare_stores() -> None:
    import redis.asyncio as aioredis
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(MYSQL)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{DB_NAME}` "
                                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci"))
    await engine.dispose()
    await clear_redis(aioredis.Redis.from_url(REDIS), PREFIX + "*")


async def clear_redis(client, pattern: str) -> None:
    keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
    for i in range(0, len(keys), 500):
        await client.delete(*keys[i:i + 500])
    await client.aclose()


def clear_rate_limits() -> None:
    """Each case starts with empty windows, so users/me never meets its 600/min/user limit."""
    import redis.asyncio as aioredis

    asyncio.run(clear_redis(aioredis.Redis.from_url(REDIS), PREFIX + "rl:*"))


def migrate() -> None:
    from pawhome.platform import migrate as migrations

    migrations.upgrade(ENV["DATABASE_URL"])


def cores() -> tuple[int | None, int | None]:
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return available[0], available[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: int | None):
    return (lambda: os.sched_setaffinity(0, {core})) if core is not None else None


def wait_healthy(port: int, seconds: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not become healthy")


class Server:
    def __init__(self, label: str, argv: list[str], env: dict, core: int | None) -> None:
        self.label, self.port = label, free_port()
        self.proc = subprocess.Popen([*argv, "--port", str(self.port)], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=pinned(core))
        try:
            wait_healthy(self.port)
        except RuntimeError:
            self.proc.kill()
            raise RuntimeError(self.proc.stderr.read().decode()[-3000:]) from None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def login_users(server: Server) -> list[str]:
    import httpx

    tokens = []
    with httpx.Client(timeout=10) as client:
        for n in range(USERS):
            reply = client.post(server.url("/v1/auth/dev-login"),
                                json={"openid": f"bench-user-{n:03d}"})
            reply.raise_for_status()
            tokens.append(reply.json()["data"]["access_token"])
    return tokens


# -- load ------------------------------------------------------------------------------------
def load(url: str, tokens: list[str], seconds: float, core: int | None) -> dict:
    wrk = shutil.which("wrk")
    if wrk:
        script = HERE / ("wrk_tokens.lua" if tokens else "wrk_report.lua")
        argv = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                "-s", str(script), url]
        if tokens:
            argv += ["--", *tokens]
    else:
        argv = [sys.executable, str(HERE / "load_driver.py"), url,
                "--connections", str(CONNECTIONS), "--seconds", str(seconds)]
        for token in tokens:
            argv += ["--token", token]
    out = subprocess.run(argv, capture_output=True, text=True, preexec_fn=pinned(core),
                         check=True).stdout
    line = [text for text in out.splitlines() if text.startswith("{")][-1]
    raw = json.loads(line)
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "requests": raw["requests"],
        "non_2xx": raw["non_2xx"],
        "socket_errors": raw["socket_errors"],
    }


def measure(server: Server, tokens: list[str], client_core: int | None) -> dict:
    out = {}
    for case, path, toks in (("healthz", "/healthz", []), ("users_me", "/v1/users/me", tokens)):
        clear_rate_limits()
        load(server.url(path), toks, WARMUP, client_core)
        clear_rate_limits()
        out[case] = load(server.url(path), toks, SECONDS, client_core)
        print(f"  {server.label:16} {case:9} {out[case]['rps']:>9.1f} req/s  "
              f"p50 {out[case]['p50_ms']:.2f} ms  p99 {out[case]['p99_ms']:.2f} ms"
              + (f"  non-2xx {out[case]['non_2xx']}" if out[case]["non_2xx"] else ""),
              flush=True)
    return out


# -- JSON codec ------------------------------------------------------------------------------
def codec_comparison() -> dict:
    import orjson

    profile = {"id": 123456789, "nickname": "小橘猫🐱", "avatar_url": "https://cdn.example.com/a/"
               "123456789.jpg", "gender": 2, "birthday": "1998-05-04",
               "bio": "喜欢猫咪和狗狗，周末去宠物店做志愿者。", "role": "user",
               "phone_bound": True, "phone": "138****8000",
               "created_at": dt.datetime(2026, 11, 1, 8, 30, 12, 123456)}
    payload = {"code": 0, "message": "ok", "data": profile}

    def std_dumps() -> bytes:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                          default=lambda v: v.isoformat()).encode()

    encoded = orjson.dumps(payload)
    runs = 50_000

    def ns(fn) -> float:
        return round(min(timeit.repeat(fn, number=runs, repeat=5)) / runs * 1e9, 1)

    figures = {"orjson_dumps_ns": ns(lambda: orjson.dumps(payload)),
               "json_dumps_ns": ns(std_dumps),
               "orjson_loads_ns": ns(lambda: orjson.loads(encoded)),
               "json_loads_ns": ns(lambda: json.loads(encoded)),
               "payload_bytes": len(encoded)}
    figures["dumps_speedup"] = round(figures["json_dumps_ns"] / figures["orjson_dumps_ns"], 2)
    figures["loads_speedup"] = round(figures["json_loads_ns"] / figures["orjson_loads_ns"], 2)
    return figures


# -- report ----------------------------------------------------------------------------------
def ratios(a: dict, b: dict) -> dict:
    return {case: {"rps": round(a[case]["rps"] / b[case]["rps"], 3),
                   "p50": round(a[case]["p50_ms"] / b[case]["p50_ms"], 3),
                   "p99": round(a[case]["p99_ms"] / b[case]["p99_ms"], 3)} for case in a}


def write_markdown(result: dict) -> str:
    lines = [
        "# Gateway benchmark",
        "",
        f"Run {result['when']} on {result['machine']['cpus']} CPU(s), Python "
        f"{result['machine']['python']}; load generator `{result['driver']}`, "
        f"{CONNECTIONS} connections, {SECONDS:g} s per case after {WARMUP:g} s warm-up; "
        f"server on core {result['machine']['server_core']}, load on core "
        f"{result['machine']['client_core']}. Produced by `python bench/bench_gateway.py`.",
        "",
        "| server | endpoint | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, cases in result["servers"].items():
        for case, f in cases.items():
            lines.append(f"| {label} | {case} | {f['rps']:.0f} | {f['p50_ms']:.2f} | "
                         f"{f['p99_ms']:.2f} | {f['non_2xx']} |")
    lines += ["", "Ratios (gateway / bare; req/s above 1 is faster, latency below 1 is faster):",
              "", "| comparison | endpoint | req/s | p50 | p99 |", "|---|---|---:|---:|---:|"]
    for label, cases in result["ratios"].items():
        for case, r in cases.items():
            lines.append(f"| {label} | {case} | {r['rps']:.2f} | {r['p50']:.2f} | "
                         f"{r['p99']:.2f} |")
    c = result["json_codec"]
    lines += ["", f"JSON codec on the users/me reply ({c['payload_bytes']} bytes): orjson dumps "
              f"{c['orjson_dumps_ns']:.0f} ns vs json {c['json_dumps_ns']:.0f} ns "
              f"({c['dumps_speedup']}x); loads {c['orjson_loads_ns']:.0f} ns vs "
              f"{c['json_loads_ns']:.0f} ns ({c['loads_speedup']}x).", ""]
    return "\n".join(lines)


def start_run(doc: str, full: dict, quick: dict) -> tuple[argparse.Namespace, dict, float,
                                                           tuple[int | None, int | None]]:
    """A benchmark's command line (`--quick`: a smoke run that writes nothing) and start: the
    arguments, the config, the start time and the (server, client) cores, this process pinned
    to the client core."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke run; writes nothing")
    args = parser.parse_args()
    started, pair = time.monotonic(), cores()
    if pair[1] is not None:
        os.sched_setaffinity(0, {pair[1]})
    return args, quick if args.quick else full, started, pair


def finish_run(name: str, result: dict, markdown: str, quick: bool, started: float) -> None:
    """Print the report; a full run writes it (save_results), a quick one nothing."""
    print(markdown)
    if quick:
        print(f"quick run done in {time.monotonic() - started:.0f} s (nothing written)")
        return
    save_results(name, result, markdown, started)


def save_results(name: str, result: dict, markdown: str, started: float) -> None:
    """Write bench/results/<name>.json and <name>.md (every benchmark script's last step)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False)
                                          + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(f"done in {time.monotonic() - started:.0f} s; wrote bench/results/{name}.json, .md")


def main() -> None:
    started = time.monotonic()
    server_core, client_core = cores()
    print(f"preparing database {DB_NAME} and Redis prefix {PREFIX}", flush=True)
    asyncio.run(prepare_stores())
    migrate()
    python = sys.executable
    gateway_argv = [python, str(ROOT / "run_gateway.py")]
    servers: dict[str, dict] = {}

    gateway = Server("gateway", gateway_argv, ENV, server_core)
    try:
        tokens = login_users(gateway)
        servers["gateway"] = measure(gateway, tokens, client_core)
    finally:
        gateway.stop()
    gateway = Server("gateway+uvloop", gateway_argv, {**ENV, "USE_UVLOOP": "1"}, server_core)
    try:
        servers["gateway+uvloop"] = measure(gateway, tokens, client_core)
    finally:
        gateway.stop()
    bare = Server("bare tornado", [python, str(HERE / "bare_server.py")], ENV, server_core)
    try:
        servers["bare tornado"] = measure(bare, tokens, client_core)
    finally:
        bare.stop()

    result = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "driver": "wrk" if shutil.which("wrk") else "bench/load_driver.py",
        "connections": CONNECTIONS, "seconds": SECONDS,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "server_core": server_core, "client_core": client_core},
        "servers": servers,
        "ratios": {"gateway / bare": ratios(servers["gateway"], servers["bare tornado"]),
                   "gateway+uvloop / bare": ratios(servers["gateway+uvloop"],
                                                   servers["bare tornado"]),
                   "gateway+uvloop / gateway": ratios(servers["gateway+uvloop"],
                                                      servers["gateway"])},
        "json_codec": codec_comparison(),
    }
    markdown = write_markdown(result)
    print(markdown)
    save_results("gateway", result, markdown, started)


if __name__ == "__main__":
    main()
