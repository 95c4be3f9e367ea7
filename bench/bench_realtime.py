"""Real-time benchmark (issue 3 §6): the WebSocket gateway against a bare Tornado relay.

    python bench/bench_realtime.py            (about 6 minutes; writes bench/results/realtime.*)
    python bench/bench_realtime.py --quick    (a smoke run, about 90 s; prints, writes nothing)
    python bench/bench_realtime.py --only dm [--rates 100,200,400] [--quick] [--profile]
                                              (the DM cases alone: one gateway process with
                                              and without the group commit's gather wait,
                                              two processes, and the bare relay at the same
                                              rates, for before/after comparisons in one
                                              run; --profile adds py-spy flame graphs;
                                              writes bench/results/realtime_dm.* unless
                                              --quick)

In one run, with gateway processes pinned to core 0 and the load client (bench/ws_load.py)
to core 1, on the local MariaDB (database `pawhome_bench`) and Redis (prefix
`pawhome_bench_rt:`):
1. idle: RSS per authenticated idle connection at 10,000 connections;
2. dm: direct messages (chat.send -> stored -> chat.message) stepped through rising rates,
   the highest with p99 delivery < 100 ms and zero loss; default GC, tuned GC
   (bench/gc_tuned_gateway.py), uvloop, and two gateway processes;
3. fanout: one event to 5,000 connections, time to the last recipient;
each beside bench/bare_ws_relay.py doing the bare minimum, reported as a ratio to it.
Users are inserted in bulk and their access tokens minted with the run's JWT secret.

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py), BENCH_IDLE (10000),
BENCH_STEP_SECONDS (8), BENCH_QUIET_WAIT (seconds to wait at most for the machine to be
below 25 % busy before starting; 120).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_gateway as gw  # noqa: E402 - shared set-up helpers (server, cores, migrate)

ROOT, RESULTS = gw.ROOT, gw.RESULTS
PREFIX = "pawhome_bench_rt:"
QUEUE_PREFIX = "bench_rt."
OPENID_PREFIX = "rtbench-"
ENV = {
    **gw.ENV,
    "REDIS_PREFIX": PREFIX,
    "TASK_QUEUE_PREFIX": QUEUE_PREFIX,
    # The idle case needs exactly the default cap of 10,000 plus the probes: room above it.
    "WS_MAX_CONNECTIONS": "20000",
}
PYTHON = sys.executable


def _stores() -> dict:
    from sqlalchemy.engine import make_url

    url = make_url(gw.MYSQL)
    return {"mysql_host": url.host or "127.0.0.1", "mysql_port": url.port or 3306,
            "mysql_user": url.username or "root", "mysql_password": url.password,
            "redis_url": gw.REDIS}


STORES = _stores()

FULL = {
    "idle": int(os.environ.get("BENCH_IDLE", "10000")),
    "pairs": 200, "probes": 5, "probe_interval": 0.02,
    # The gateway's steps start low (the single-message path managed 250 msg/s); the bare
    # relay passes everything below 250 trivially, so its steps start there.
    "rates": [25, 50, 100, 250, 500, 1000, 1500, 2000, 2500, 3000, 3500],
    "bare_rates": [250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000],
    "step_seconds": float(os.environ.get("BENCH_STEP_SECONDS", "8")),
    # Warm-up: one message per pair (creates the conversations), not measured.
    "warmup_rate": 50, "drain_seconds": 4.0,
    "fanout_users": 100, "fanout_devices": 50, "fanout_reps": 20,
}
QUICK = {
    **FULL, "idle": 1000, "pairs": 50, "rates": [25, 50], "bare_rates": [250, 500],
    "step_seconds": 2.0, "drain_seconds": 2.0,
    "fanout_users": 20, "fanout_devices": 25, "fanout_reps": 5,
}
GC_THRESHOLDS = "50000,50,100"

FANOUT_CHOICE = (
    "5,000 sockets = {users} users x {devices} devices each, one stored event published to "
    "each user with pawhome.platform.events.publish_to_user ({users} stream appends + PUBLISHes, issued "
    "concurrently), timed from the first publish to the 5,000th socket receiving it. Why not "
    "a live topic: the only topic kind registered today is conversation:<id>, which only its "
    "two members may watch, so no topic reaches 5,000 sockets without registering something "
    "new in the server. Why not 5,000 users x 1 socket: that is 5,000 Redis stream appends "
    "and would measure Redis more than the gateway. Per-user events are the path every domain "
    "event takes, and 50 sockets per user keeps each user under the WebSocket upgrade limit "
    "(60 per minute per user). The bare relay receives one `broadcast` frame over a "
    "WebSocket and writes it to every socket (no Redis), so the ratio includes the pub/sub hop.")


# -- set-up ------------------------------------------------------------------------------------
async def ensure_database(name: str = gw.DB_NAME) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(gw.MYSQL)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}` "
                                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci"))
    await engine.dispose()


async def create_users(count: int) -> list[int]:
    """`count` bench users (inserted in bulk once, reused by later runs), ids in order."""
    from sqlalchemy import insert, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from models.users import User

    engine = create_async_engine(ENV["DATABASE_URL"])
    openids = [f"{OPENID_PREFIX}{n:05d}" for n in range(count)]
    async with engine.begin() as conn:
        rows = (await conn.execute(select(User.openid, User.id).where(
            User.openid.like(f"{OPENID_PREFIX}%")))).all()
        known = dict(rows)
        missing = [o for o in openids if o not in known]
        for start in range(0, len(missing), 2000):
            await conn.execute(insert(User).prefix_with("IGNORE"),
                               [{"openid": o, "nickname": o} for o in missing[start:start + 2000]])
        if missing:
            known = dict((await conn.execute(select(User.openid, User.id).where(
                User.openid.like(f"{OPENID_PREFIX}%")))).all())
    await engine.dispose()
    return [known[o] for o in openids]


async def clear_conversations() -> None:
    """Remove the bench users' conversations (their members and messages go with them), so
    every DM run starts from the same state: messages would otherwise pile up run after run
    (millions of rows) and each run would measure a bigger table than the last."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(ENV["DATABASE_URL"])
    async with engine.begin() as conn:
        bench_users = f"SELECT id FROM users WHERE openid LIKE '{OPENID_PREFIX}%'"
        await conn.execute(text(f"DELETE FROM messages WHERE sender_id IN ({bench_users})"))
        await conn.execute(text(f"DELETE FROM conversations WHERE user_a_id IN ({bench_users})"))
    await engine.dispose()


def mint_tokens(user_ids: list[int]) -> list[tuple[int, str]]:
    from pawhome.identity.tokens import issue_access_token
    from settings import Settings

    settings = Settings(jwt_secret=ENV["JWT_SECRET"], mode="development")
    return [(uid, issue_access_token(settings, uid, "user", uuid.uuid4().hex)[0])
            for uid in user_ids]


def prepare(user_count: int) -> list[tuple[int, str]]:
    """The start every WebSocket benchmark shares: the open-files limit raised to the hard
    limit (inherited by every server started afterwards), the database created and migrated,
    the Redis prefix emptied; returns `user_count` bench users with their access tokens."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"preparing database {gw.DB_NAME} and Redis prefix {PREFIX}", flush=True)
    asyncio.run(ensure_database())
    gw.migrate()
    clear_prefix(PREFIX + "*")
    return mint_tokens(asyncio.run(create_users(user_count)))


def machine_busy_percent(seconds: float = 2.0) -> float:
    """CPU use of the whole machine over `seconds`, in percent of all cores together."""
    import ws_load

    busy0, total0 = ws_load.machine_busy()
    time.sleep(seconds)
    busy1, total1 = ws_load.machine_busy()
    return round(100 * (busy1 - busy0) / max(1, total1 - total0), 1)


def wait_for_quiet(limit: float) -> list[float]:
    """Other work on this shared machine distorts every figure: wait (at most `limit`
    seconds) until it is below 25 % busy. Returns the samples taken (recorded)."""
    samples = [machine_busy_percent()]
    deadline = time.monotonic() + limit
    while samples[-1] > 25 and time.monotonic() < deadline:
        print(f"  machine {samples[-1]}% busy before the run; waiting for it to calm down",
              flush=True)
        time.sleep(3)
        samples.append(machine_busy_percent())
    return samples


def clear_prefix(pattern: str) -> None:
    import redis.asyncio as aioredis

    asyncio.run(gw.clear_redis(aioredis.Redis.from_url(gw.REDIS), pattern))


def clear_rate_limits() -> None:
    """Each phase starts with empty upgrade windows (60 upgrades per minute per user)."""
    clear_prefix(PREFIX + "rl:*")


# -- servers -----------------------------------------------------------------------------------
class Server(gw.Server):
    """bench_gateway's Server, with its stderr drained (a full pipe would stall the server)."""

    def __init__(self, label: str, argv: list[str], env: dict, core: int | None) -> None:
        super().__init__(label, argv, env, core)
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=50)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ws_url(self, bare: bool) -> str:
        return f"ws://127.0.0.1:{self.port}/ws" if bare else \
            f"ws://127.0.0.1:{self.port}/v1/ws"


def gateway(label: str, core: int | None, *, gc_tuned: bool = False,
            uvloop: bool = False, settings: dict[str, str] | None = None) -> Server:
    script = HERE / "gc_tuned_gateway.py" if gc_tuned else ROOT / "run_gateway.py"
    env = {**ENV, "USE_UVLOOP": "1" if uvloop else "0", "BENCH_GC_THRESHOLDS": GC_THRESHOLDS,
           **(settings or {})}
    return Server(label, [PYTHON, str(script)], env, core)


def bare(core: int | None) -> Server:
    return Server("bare relay", [PYTHON, str(HERE / "bare_ws_relay.py")], ENV, core)


def load(mode: str, spec: dict, core: int | None, timeout: float) -> dict:
    """Run bench/ws_load.py on the load core; returns its RESULT."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="ws_load_",
                                     delete=False) as handle:
        json.dump(spec, handle)
    try:
        out = subprocess.run([PYTHON, str(HERE / "ws_load.py"), mode, handle.name], cwd=ROOT,
                             env=ENV, stdout=subprocess.PIPE, text=True, timeout=timeout,
                             preexec_fn=gw.pinned(core)).stdout
    finally:
        os.unlink(handle.name)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"ws_load.py {mode} printed no result:\n{out[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def stopped(*servers: Server) -> None:
    for server in servers:
        server.stop()


# -- phases ------------------------------------------------------------------------------------
def idle_case(label: str, server: Server, is_bare: bool, users, client_core) -> dict:
    """RSS per idle connection of one running server: `users` sockets opened by the load
    client (64 handshakes in flight), VmRSS read 3 s after the last one; prints one line."""
    spec = {"server_pid": server.pid, "bare": is_bare, "url": server.ws_url(is_bare),
            "users": users, "concurrency": 64, "settle_seconds": 3.0}
    f = load("idle", spec, client_core, timeout=240)
    print(f"  idle {label:8} {f['connections']} sockets ({f['failed']} failed) in "
          f"{f['connect_seconds']} s: RSS {f['rss_before_kb']} -> {f['rss_after_kb']} KB, "
          f"{f['rss_per_connection_kb']} KB per connection", flush=True)
    return f


def idle_phase(tokens, config, server_core, client_core) -> dict:
    out = {}
    n = config["idle"]
    for label in ("gateway", "bare"):
        clear_rate_limits()
        server = gateway("gateway", server_core) if label == "gateway" else bare(server_core)
        try:
            out[label] = idle_case(label, server, label == "bare", tokens[:n], client_core)
        finally:
            stopped(server)
    out["ratio"] = ratio(out["gateway"]["rss_per_connection_kb"],
                         out["bare"]["rss_per_connection_kb"])
    return out


def dm_spec(config, label, tokens, sender_server, recipient_server, pids, bare_mode) -> dict:
    pairs = config["pairs"]
    return {
        "label": label, "bare": bare_mode, "tag": f"{label.replace(' ', '_')}-{uuid.uuid4().hex[:8]}",
        "pairs": pairs, "senders": tokens[:pairs], "recipients": tokens[pairs:2 * pairs],
        "probes": tokens[2 * pairs:2 * pairs + config["probes"]],
        "sender_url": sender_server.ws_url(bare_mode),
        "recipient_url": recipient_server.ws_url(bare_mode),
        "server_pids": pids,
        "rates": config["bare_rates"] if bare_mode else config["rates"],
        "step_seconds": config["step_seconds"], "warmup_rate": config["warmup_rate"],
        "warmup_seconds": pairs / config["warmup_rate"], "drain_seconds": config["drain_seconds"],
        "probe_interval": config["probe_interval"],
        "stores": None if bare_mode else STORES,
    }


def dm_ladder(label: str, server: Server, users, config, client_core, bare_mode: bool) -> dict:
    """One DM ladder with every pair on `server` (started and stopped by the caller: the
    comparison scripts start a fresh one per ladder), reported as it ends."""
    spec = dm_spec(config, label, users, server, server, [server.pid], bare_mode)
    timeout = 60 + spec["warmup_seconds"] + len(spec["rates"]) * 2 * (
        config["step_seconds"] + config["drain_seconds"] + 2)
    result = load("dm", spec, client_core, timeout)
    report_dm(label, result)
    return result


def median(values: list) -> float | None:
    """The median of the values that are there (None: a ladder or round without it)."""
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def dm_phase(tokens, config, server_core, client_core) -> dict:
    out = {}
    cases = [
        ("gateway", {}),
        ("gateway gc-tuned", {"gc_tuned": True}),
        ("gateway uvloop", {"uvloop": True}),
    ]
    timeout = 60 + len(config["bare_rates"]) * (config["step_seconds"] + config["drain_seconds"] + 2)
    for label, options in cases:
        clear_rate_limits()
        server = gateway(label, server_core, **options)
        try:
            out[label] = load("dm", dm_spec(config, label, tokens, server, server, [server.pid],
                                            False), client_core, timeout)
        finally:
            stopped(server)
        report_dm(label, out[label])
    # Two processes, both on the server core (the same CPU budget as one), sender on the
    # first and recipient on the second: every message crosses processes through Redis.
    clear_rate_limits()
    first = gateway("gateway x2", server_core)
    try:
        second = gateway("gateway x2", server_core)
        try:
            label = "gateway x2"
            out[label] = load("dm", dm_spec(config, label, tokens, first, second,
                                            [first.pid, second.pid], False), client_core, timeout)
        finally:
            stopped(second)
    finally:
        stopped(first)
    report_dm("gateway x2", out["gateway x2"])
    server = bare(server_core)
    try:
        ids = [(n + 1, None) for n in range(2 * config["pairs"] + config["probes"])]
        out["bare"] = load("dm", dm_spec(config, "bare", ids, server, server, [server.pid], True),
                           client_core, timeout)
    finally:
        stopped(server)
    report_dm("bare", out["bare"])
    floor = out["bare"]["max_rate_passed"]
    out["ratios"] = {label: ratio(out[label]["max_rate_passed"], floor)
                     for label in ("gateway", "gateway gc-tuned", "gateway uvloop", "gateway x2")}
    return out


def report_dm(label: str, result: dict) -> None:
    if "error" in result:
        print(f"  dm {label}: {result['error']}", flush=True)
        return
    print(f"  dm {label:18} highest passing rate {result['max_rate_passed']} msg/s "
          f"(first failing: {result['first_failed_rate']})", flush=True)


def fanout_phase(tokens, config, server_core, client_core) -> dict:
    out = {}
    users, devices = config["fanout_users"], config["fanout_devices"]
    base = {"devices": devices, "reps": config["fanout_reps"], "rep_timeout": 10.0,
            "pause": 0.25, "concurrency": 64}
    for label in ("gateway", "bare"):
        clear_rate_limits()
        server = gateway("gateway", server_core) if label == "gateway" else bare(server_core)
        try:
            chosen = tokens[1000:1000 + users] if label == "gateway" else \
                [(n + 1, None) for n in range(users)]
            spec = {**base, "bare": label == "bare", "url": server.ws_url(label == "bare"),
                    "users": chosen, "server_pid": server.pid}
            out[label] = load("fanout", spec, client_core, timeout=180)
        finally:
            stopped(server)
        f = out[label]
        if "error" in f:
            print(f"  fanout {label}: {f['error']}", flush=True)
            continue
        print(f"  fanout {label:8} {f['connections']} sockets: last recipient p50 "
              f"{f['last_p50_ms']} ms, p99 {f['last_p99_ms']} ms (first {f['first_p50_ms']} ms, "
              f"incomplete {f['incomplete_reps']})", flush=True)
    if "error" not in out["gateway"] and "error" not in out["bare"]:
        out["ratio_p50"] = ratio(out["gateway"]["last_p50_ms"], out["bare"]["last_p50_ms"])
        out["ratio_p99"] = ratio(out["gateway"]["last_p99_ms"], out["bare"]["last_p99_ms"])
    out["choice"] = FANOUT_CHOICE.format(users=users, devices=devices)
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


# -- report ------------------------------------------------------------------------------------
def machine_info(server_core, client_core) -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "kernel": platform.release(), "server_core": server_core,
            "client_core": client_core, "loadavg_at_start": Path("/proc/loadavg").read_text()
            .split()[:3], "nofile_limit": resource.getrlimit(
                resource.RLIMIT_NOFILE)[0]}


def step_at(result: dict, rate: int) -> dict | None:
    """The deciding run of a step (a retry, when the first try failed)."""
    return next((s for s in result.get("steps", [])
                 if s["rate"] == rate and not s.get("superseded")), None)


def verdict(step: dict) -> str:
    if step.get("superseded"):
        return "no (retried)"
    return ("yes" if step["passed"] else "no") + (" (retry)" if step.get("retried") else "")


def write_markdown(r: dict) -> str:
    m, c = r["machine"], r["config"]
    idle, dm, fan = r["idle"], r["dm"], r["fanout"]
    lines = [
        "# Real-time benchmark",
        "",
        f"Run {r['when']} on {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}. Gateway processes on core {m['server_core']}, the load client "
        f"(bench/ws_load.py, one process) on core {m['client_core']}; MariaDB and Redis "
        "unpinned (they share both cores). Everything on 127.0.0.1. Produced by "
        "`python bench/bench_realtime.py` in "
        f"{r['duration_seconds']:.0f} s. Ratios are gateway / bare relay from the same run. "
        f"Machine CPU use just before the start (all cores = 100 %): "
        f"{m['busy_percent_before_start'][-1]} %; each DM step also records how busy the "
        "whole machine was (`machine busy`, 200 = both cores), since the machine is shared.",
        "",
        "## Summary",
        "",
        "| figure | gateway | bare relay (floor) | ratio | aim |",
        "|---|---:|---:|---:|---|",
        f"| RSS per idle connection ({idle['gateway']['connections']} sockets) | "
        f"{idle['gateway']['rss_per_connection_kb']} KB | {idle['bare']['rss_per_connection_kb']} KB "
        f"| {idle['ratio']} | <= 20 KB |",
    ]
    # A relay that passed its top step is only known to be at least that fast.
    floor = f"{dm['bare']['max_rate_passed']}" + \
        (" (top step; at least)" if dm["bare"].get("first_failed_rate") is None else "")
    for label, aim in (("gateway", ">= 2,000 msg/s"), ("gateway x2", "")):
        lines.append(f"| DM highest rate, p99 < 100 ms, no loss ({label}) | "
                     f"{dm[label]['max_rate_passed']} msg/s | {floor} msg/s | "
                     f"{dm['ratios'][label]} | {aim} |")
    if "ratio_p99" in fan:
        lines.append(f"| one event to {fan['gateway']['connections']} sockets, last recipient "
                     f"p50 | {fan['gateway']['last_p50_ms']} ms | {fan['bare']['last_p50_ms']} ms "
                     f"| {fan['ratio_p50']} | |")
        lines.append(f"| same, p99 ({fan['gateway']['reps']} events) | "
                     f"{fan['gateway']['last_p99_ms']} ms | {fan['bare']['last_p99_ms']} ms | "
                     f"{fan['ratio_p99']} | p99 < 500 ms |")
    lines += [
        "",
        "## Idle connections",
        "",
        "RSS per connection = (VmRSS after N authenticated, resumed, idle sockets - VmRSS "
        "before) / N, from /proc/<pid>/status, 3 s after the last handshake.",
        "",
        "| server | sockets | failed | connect s | handshakes/s | RSS before KB | RSS after KB "
        "| KB per connection |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in ("gateway", "bare"):
        f = idle[label]
        lines.append(f"| {label} | {f['connections']} | {f['failed']} | {f['connect_seconds']} | "
                     f"{f['connects_per_second']} | {f['rss_before_kb']} | {f['rss_after_kb']} | "
                     f"{f['rss_per_connection_kb']} |")
    lines += [
        "",
        "## Direct messages",
        "",
        f"{c['pairs']} senders -> {c['pairs']} recipients (pair i: sender i to recipient i), "
        "open-loop sending at the step's total rate spread over the senders, "
        f"{c['step_seconds']:g} s per step after a warm-up of one message per pair, up to "
        f"{c['drain_seconds']:g} s to drain; a step passes when every message reached its "
        "recipient exactly once, every send was acked, no error frame came back, the achieved "
        "send rate was within 5 % of the target and p99 delivery (send -> recipient's "
        "chat.message, by client_msg_id, same clock) < 100 ms. Stepping stops at the first "
        "failing step (a failing step is run once more first: the machine is shared with "
        "other work, see `machine busy`). Gateway: chat.send over the socket -> "
        "pawhome/messaging/chat_writer.py (group commit: the sends queued meanwhile share one MariaDB "
        "transaction: rules, seqs, messages, members, one outbox row) -> one Lua call appends "
        "the batch's events to the users' Redis streams and PUBLISHes them -> hub -> "
        "recipient (and the sender's own copy). Bare: the frame is forwarded to the "
        "recipient's socket and acked. Loop-lag probe: "
        f"{c['probes']} extra sockets send `ping` every {c['probe_interval'] * 1000:.0f} ms in "
        "turn; the pong round trip shows event-loop stalls of the (first) server process. "
        "Server CPU is utime+stime of the gateway process(es) over the step; MariaDB / Redis "
        "CPU the same for the local mariadbd and redis-server processes (they share the load "
        "client's core; anything else using them adds to it). SQL statements "
        "and Redis commands per message are MariaDB's global `Questions` and Redis's "
        "`total_commands_processed` over the step divided by the messages (server-wide "
        "counters: approximate, anything else running adds to them; a statement is counted "
        "once however many rows it writes, and Redis counts the commands a Lua script runs).",
        "",
        *DM_TABLE_HEADER,
    ]
    for label in ("gateway", "gateway gc-tuned", "gateway uvloop", "gateway x2", "bare"):
        lines += dm_step_rows(label, dm[label])
    lines += ["", "Highest passing rate per case (ratio to the bare relay's):", ""]
    for label in ("gateway", "gateway gc-tuned", "gateway uvloop", "gateway x2", "bare"):
        result = dm[label]
        if "error" in result:
            continue
        extra = f" (ratio {dm['ratios'][label]})" if label in dm["ratios"] else ""
        lines.append(f"- {label}: {result['max_rate_passed']} msg/s{extra}; first failing step "
                     f"{result['first_failed_rate']}")
    lines += [
        "",
        "`gateway x2`: two gateway processes, both on the server core (so the same CPU "
        "budget as one process), senders connected to the first, recipients to the second.",
        "",
        "## Garbage collector and uvloop",
        "",
        f"`gateway gc-tuned` runs bench/gc_tuned_gateway.py: gc.set_threshold({GC_THRESHOLDS}) "
        "and gc.freeze() once the gateway listens (production code unchanged). `gateway "
        "uvloop` is USE_UVLOOP=1. Compared at the steps every case ran:",
        "",
        "| rate | case | delivery p99 ms | delivery max ms | probe max ms | server CPU us/msg |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for rate in r["gc"]["common_rates"]:
        for label in ("gateway", "gateway gc-tuned", "gateway uvloop"):
            s = step_at(dm[label], rate)
            if s:
                lines.append(f"| {rate} | {label} | {s['delivery_p99_ms']} | "
                             f"{s['delivery_max_ms']} | {s['probe_rtt_max_ms']} | "
                             f"{s['server_cpu_us_per_message']} |")
    lines += ["", "## Fan-out", "", fan["choice"], ""]
    if "ratio_p99" in fan:
        lines += ["| server | sockets | events | incomplete | last p50 ms | last p99 ms | "
                  "last max ms | first p50 ms | publish p50 ms | server CPU ms/event |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for label in ("gateway", "bare"):
            f = fan[label]
            lines.append(f"| {label} | {f['connections']} | {f['reps']} | "
                         f"{f['incomplete_reps']} | {f['last_p50_ms']} | {f['last_p99_ms']} | "
                         f"{f['last_max_ms']} | {f['first_p50_ms']} | {f['publish_p50_ms']} | "
                         f"{f['server_cpu_ms_per_event']} |")
    lines += ["", "The times include the load client reading every frame on its single core, "
              "for both servers alike.", ""]
    return "\n".join(lines)


DM_TABLE_HEADER = [
    "| server | rate | achieved | lost | dup | errors | delivery p50 / p99 / max ms | "
    "ack p50 / p99 ms | probe p99 / max ms | server CPU % | server CPU us/msg | "
    "MariaDB / Redis CPU us/msg | client CPU % | machine busy % (of 200) | SQL stmts/msg | "
    "Redis cmds/msg | pass |",
    "|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
]


def dm_step_rows(label: str, result: dict) -> list[str]:
    """The DM table rows of one case."""
    if "error" in result:
        return [f"| {label} | {result['error']} |"]
    return [
        f"| {label} | {s['rate']} | {s['achieved_rate']} | {s['lost']} | "
        f"{s['duplicates']} | {s['errors']} | {s['delivery_p50_ms']} / "
        f"{s['delivery_p99_ms']} / {s['delivery_max_ms']} | {s['ack_p50_ms']} / "
        f"{s['ack_p99_ms']} | {s['probe_rtt_p99_ms']} / {s['probe_rtt_max_ms']} | "
        f"{s['server_cpu_percent']} | {s['server_cpu_us_per_message']} | "
        f"{s.get('db_cpu_us_per_message') or '-'} / {s.get('redis_cpu_us_per_message') or '-'} | "
        f"{s['client_cpu_percent']} | {s['machine_busy_percent']} | "
        f"{s['db_statements_per_message'] or '-'} | "
        f"{s['redis_commands_per_message'] or '-'} | {verdict(s)} |"
        for s in result["steps"]]


# `--only dm`: the gateway as configured, the same with the group commit's gather wait off
# (CHAT_GROUP_COMMIT_WAIT_MS=0: each lane writes whatever is queued at once, as before issue
# 15), two processes, and the bare relay at the same rates.
DM_ONLY_CASES = [
    ("gateway", {}),
    ("gateway gather-off", {"CHAT_GROUP_COMMIT_WAIT_MS": "0"}),
]


class Profiler:
    """`py-spy record` attached to a server for the length of a load, writing a flame graph
    (SVG) to bench/results/; nothing when `name` is None."""

    def __init__(self, name: str | None, pids: list[int]) -> None:
        self.process = None
        if name is None:
            return
        self.path = HERE / "results" / f"{name}.svg"
        self.process = subprocess.Popen(
            [str(Path(PYTHON).parent / "py-spy"), "record", "--format", "flamegraph",
             "--rate", "250", "--output", str(self.path), "--pid", str(pids[0])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)  # py-spy writes the graph on SIGINT
        try:
            _out, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        if self.process.returncode not in (0, -signal.SIGINT) or not self.path.exists():
            print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", flush=True)
        else:
            print(f"flame graph written to {self.path.relative_to(ROOT)}", flush=True)


def dm_only(tokens, config, server_core, client_core, quiet, started, quick,
            profile: bool = False, two_cores: bool = False) -> None:
    """`--only dm`: the DM cases alone (one gateway process with and without the gather
    wait, then two with the clients split between them, and the bare relay at the same
    rates), for before/after comparisons in one run; `profile` records a flame graph of each
    one-process case (bench/results/dm_flame_*.svg)."""
    timeout = 60 + len(config["rates"]) * 2 * (config["step_seconds"]
                                               + config["drain_seconds"] + 2)
    results = {}

    def case(label: str, cores: list[int | None], client: int | None,
             settings: dict[str, str] | None = None, flame: str | None = None) -> None:
        """One gateway process per entry of `cores` (senders on the first, recipients on the
        last, so with two every message crosses processes through Redis), loaded from the
        `client` core (None: unpinned)."""
        clear_rate_limits()
        servers = []
        try:
            for core in cores:
                servers.append(gateway(label, core, settings=settings))
            profiler = Profiler(flame if profile else None, [servers[0].pid])
            try:
                results[label] = load("dm", dm_spec(
                    config, label, tokens, servers[0], servers[-1],
                    [server.pid for server in servers], False), client, timeout)
            finally:
                profiler.stop()
        finally:
            stopped(*reversed(servers))
        report_dm(label, results[label])

    try:
        for label, settings in DM_ONLY_CASES:
            case(label, [server_core], client_core, settings,
                 "dm_flame_" + ("gather_off" if settings else "gateway"))
        # As in the full run: both processes on the server core (the same CPU budget).
        case("gateway x2", [server_core, server_core], client_core)
        if two_cores:
            # Scaling across cores: one process on one core against one process per core,
            # the load client unpinned in both (it shares the cores with MariaDB and Redis).
            case("1-core client-free", [server_core], None)
            case("2-cores client-free", [server_core, client_core], None)
        server = bare(server_core)
        try:
            ids = [(n + 1, None) for n in range(2 * config["pairs"] + config["probes"])]
            spec = dm_spec(config, "bare", ids, server, server, [server.pid], True)
            # Its own ladder from the lowest gateway rate up (it passes far more).
            rates = sorted({*config["rates"], *(r for r in config["bare_rates"]
                                                if r >= min(config["rates"]))})
            results["bare"] = load("dm", {**spec, "rates": rates}, client_core,
                                   timeout + len(rates) * (config["step_seconds"] + 6))
        finally:
            stopped(server)
        report_dm("bare", results["bare"])
    finally:
        clear_prefix(PREFIX + "*")
        clear_prefix(QUEUE_PREFIX + "*")
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Real-time benchmark: DM cases only (`bench_realtime.py --only dm`)", "",
        f"Run {when}; machine CPU use before the start: {quiet[-1]} % (all cores = 100 %). "
        f"{config['pairs']} pairs, {config['step_seconds']:g} s per step. Columns as in "
        "realtime.md. `gateway gather-off` is the same gateway with "
        "CHAT_GROUP_COMMIT_WAIT_MS=0 (a lane writes what is queued at once, as before the "
        "gather wait); `gateway x2` is two gateway processes on the same core, senders on the "
        "first and recipients on the second; `bare` is bench/bare_ws_relay.py at the same "
        "rates (no auth per frame, no database, no streams).", "",
        *DM_TABLE_HEADER,
        *(row for label in results for row in dm_step_rows(label, results[label])), "",
    ]
    for label, result in results.items():
        lines.append(f"- {label}: highest passing rate {result.get('max_rate_passed')} msg/s; "
                     f"first failing step {result.get('first_failed_rate')}.")
    floor = results["bare"].get("max_rate_passed")
    one = results["gateway"].get("max_rate_passed")
    lines.append(
        f"- Highest passing rates as a ratio to the bare relay's ({floor} msg/s): " + ", ".join(
            f"{label} {ratio(results[label].get('max_rate_passed'), floor)}"
            for label in results if label != "bare")
        + f"; two processes to one: {ratio(results['gateway x2'].get('max_rate_passed'), one)}.")
    if two_cores:
        lines.append(
            "- Across cores (`--two-cores`; the load client unpinned, sharing both cores with "
            "MariaDB and Redis): two processes, one per core, to one: "
            f"{ratio(results['2-cores client-free'].get('max_rate_passed'), results['1-core client-free'].get('max_rate_passed'))}.")
    if profile:
        lines.append("- Flame graphs of the one-process cases over the whole load (py-spy, "
                     "250 samples/s): bench/results/dm_flame_gateway.svg, "
                     "bench/results/dm_flame_gather_off.svg.")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if quick:
        return
    gw.save_results("realtime_dm", {"when": when, "config": config,
                                    "busy_percent_before_start": quiet, "dm": results},
                    markdown, started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke run; writes nothing")
    parser.add_argument("--only", choices=["dm"],
                        help="run one phase only: dm = the DM cases, one gateway process "
                             "and two (writes bench/results/realtime_dm.json and .md unless "
                             "--quick)")
    parser.add_argument("--rates", help="comma-separated DM rates for --only dm")
    parser.add_argument("--two-cores", action="store_true",
                        help="with --only dm: also one process against two processes on "
                             "two cores, the load client unpinned")
    parser.add_argument("--profile", action="store_true",
                        help="with --only dm: record py-spy flame graphs of the one-process "
                             "cases into bench/results/dm_flame_*.svg")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    if args.rates:
        config = {**config, "rates": [int(r) for r in args.rates.split(",")]}
    started = time.monotonic()
    server_core, client_core = gw.cores()
    tokens = prepare(max(config["idle"], 1000 + config["fanout_users"],
                         2 * config["pairs"] + config["probes"]))
    asyncio.run(clear_conversations())
    print(f"{len(tokens)} users and tokens ready in {time.monotonic() - started:.1f} s",
          flush=True)
    quiet = wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT", "20" if args.quick
                                                    else "120")))
    if args.only == "dm":
        dm_only(tokens, config, server_core, client_core, quiet, started, args.quick,
                args.profile, args.two_cores)
        return
    try:
        idle = idle_phase(tokens, config, server_core, client_core)
        fanout = fanout_phase(tokens, config, server_core, client_core)
        dm = dm_phase(tokens, config, server_core, client_core)
    finally:
        clear_prefix(PREFIX + "*")
        clear_prefix(QUEUE_PREFIX + "*")
    common = sorted(set.intersection(*(
        {s["rate"] for s in dm[label].get("steps", []) if not s.get("superseded")}
        for label in ("gateway", "gateway gc-tuned", "gateway uvloop"))))
    result = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "duration_seconds": round(time.monotonic() - started, 1),
        "machine": {**machine_info(server_core, client_core),
                    "busy_percent_before_start": quiet},
        "config": config,
        "idle": idle,
        "dm": dm,
        "gc": {"thresholds": GC_THRESHOLDS, "common_rates": common},
        "fanout": fanout,
    }
    markdown = write_markdown(result)
    print(markdown)
    if args.quick:
        print(f"quick run done in {time.monotonic() - started:.0f} s (nothing written)")
        return
    gw.save_results("realtime", result, markdown, started)


if __name__ == "__main__":
    main()
