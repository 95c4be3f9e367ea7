"""Issue 15: PAWHome's WebSocket figures beside two bare relays, in one run.

    python bench/bench_ws_compare.py              (about 12 minutes with 3 ladders, plus up to
                                                  BENCH_QUIET_WAIT for a quiet machine; writes
                                                  bench/results/ws_compare.json and .md)
    python bench/bench_ws_compare.py --quick      (a smoke run, about a minute; prints,
                                                  writes nothing)
    python bench/bench_ws_compare.py --ladders 5  (median of 5 DM ladders and 5 connect storms)

Three servers, each one process pinned to core 0 with the load client on core 1 (as
bench_realtime.py: bench_gateway.cores()), MariaDB and Redis beside them, the same load
client for all: bench/bare_ws_relay.py (bare Tornado), bench/fastapi_ws_relay.py (the same
relay on FastAPI + uvicorn) and the PAWHome gateway (run_gateway.py: every DM authenticated
and persisted). Four figures each, with bench_realtime.py's and bench_connect.py's own
measurements (imported, not copied):
1. KB per idle connection at 5,000 connections (bench_realtime.idle_case);
2. new connections per second, a storm of 5,000 clients with 1,000 handshakes in flight as
   bench_connect.py runs it (bench_connect.storm), median of N rounds;
3. the highest DM rate with p99 delivery < 100 ms and no loss: median of N ladders
   (bench_realtime.dm_spec and bench/ws_load.py's ladder: a failing step is retried once, the
   ladder stops at its first failing step), each server on its own ladder up to 32,000 msg/s
   for the relays (6,000 for PAWHome); 5 s per step instead of bench_realtime's 8 s, so that
   N = 3 fits in about 15 minutes;
4. server CPU per DM at 1,000 msg/s, the ladders' 1,000 msg/s steps (range over the
   ladders), and for PAWHome the local MariaDB and Redis processes' CPU per DM as well.
The servers take turns within each round, in an order that rotates from round to round (the
machine is shared: drift hits all three alike). Fresh server for every measurement.

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py), BENCH_STEP_SECONDS (5),
BENCH_QUIET_WAIT (seconds to wait at most for the machine to be below 25 % busy before
starting; 120, 20 with --quick).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_connect  # noqa: E402 - connection setup rate (bench_connect.storm)
import bench_realtime as rt  # noqa: E402 - servers, users, idle RSS, the DM ladder

gw = rt.gw

SERVERS = ("bare", "fastapi", "pawhome")
TITLES = {"bare": "bare Tornado relay", "fastapi": "FastAPI relay",
          "pawhome": "PAWHome (persisted, authenticated)"}

FULL = {
    "idle": 5000,
    # As bench_connect.py's defaults: 5,000 distinct clients, 1,000 handshakes in flight.
    "clients": 5000, "concurrency": 1000,
    "pairs": 400, "probes": 5, "probe_interval": 0.02,
    # Each server's ladder runs to past its ceiling on this machine: PAWHome passed 4,000
    # msg/s, the top of a 200-pair ladder, and the relays 16,000 in the first run of this
    # script. 400 pairs keep PAWHome's senders at 15 frames/s at 6,000 msg/s, under the
    # gateway's per-connection limit (WS_RATE, 20/s), past which it refuses frames (42900)
    # by design. Both hold `cpu_rate`.
    "rates": [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 5500, 6000],
    "bare_rates": [1000, 2000, 4000, 6000, 8000, 10000, 12000, 14000, 16000, 20000, 24000,
                   28000, 32000],
    "cpu_rate": 1000,
    "step_seconds": float(os.environ.get("BENCH_STEP_SECONDS", "5")),
    "warmup_rate": 50, "drain_seconds": 4.0,
}
QUICK = {
    **FULL, "idle": 500, "clients": 500, "concurrency": 200, "pairs": 50,
    "rates": [500, 1000], "bare_rates": [1000, 2000],
    "step_seconds": 2.0, "drain_seconds": 2.0,
}
# For the duration estimate only: each server's expected ceiling (its ladder runs every step up
# to it, then the next step twice), its connect rate at concurrency 64 (idle) and 1,000
# (storm), and the seconds its start and stop take (measured by --quick runs).
EXPECTED = {"bare": {"ceiling": 6000, "idle_rate": 1700, "storm_rate": 1300, "start": 0.7},
            "fastapi": {"ceiling": 12000, "idle_rate": 1500, "storm_rate": 1200, "start": 1.0},
            "pawhome": {"ceiling": 3000, "idle_rate": 600, "storm_rate": 450, "start": 3.5}}


# -- servers -----------------------------------------------------------------------------------
def start(label: str, core: int | None) -> rt.Server:
    """A fresh server: the two relays, or PAWHome as bench_realtime.py starts it."""
    if label == "bare":
        return rt.bare(core)
    if label == "fastapi":
        return rt.Server("fastapi relay", [rt.PYTHON, str(HERE / "fastapi_ws_relay.py")],
                         rt.ENV, core)
    bench_connect.clear_connect_state()  # upgrade windows and presence of earlier runs
    return rt.gateway("gateway", core)


def users_for(label: str, tokens: list[tuple[int, str]], count: int) -> list:
    """PAWHome's sockets carry the bench users' tokens; a relay's only say `?id=<n>`."""
    return tokens[:count] if label == "pawhome" else [(n + 1, None) for n in range(count)]


def rotated(number: int) -> tuple[str, ...]:
    shift = number % len(SERVERS)
    return SERVERS[shift:] + SERVERS[:shift]


# -- the three measurements --------------------------------------------------------------------
def idle(label: str, tokens, config, server_core, client_core) -> dict:
    began = time.monotonic()
    server = start(label, server_core)
    try:
        result = rt.idle_case(label, server, label != "pawhome",
                              users_for(label, tokens, config["idle"]), client_core)
    finally:
        rt.stopped(server)
    return {**result, "wall_seconds": round(time.monotonic() - began, 1)}


def connect(label: str, number: int, tokens, config, server_core, client_core) -> dict:
    began = time.monotonic()
    server = start(label, server_core)
    try:
        result = bench_connect.storm(server, label != "pawhome", tokens, config, client_core)
    finally:
        rt.stopped(server)
    result["wall_seconds"] = round(time.monotonic() - began, 1)
    print(f"  connect round {number + 1} {label:8} {result['connected']}/{result['clients']} "
          f"in {result['seconds']} s = {result['connects_per_second']} connects/s (p99 "
          f"{result['latency_p99_ms']} ms, server {result['server_cpu_us_per_connect']} us CPU "
          f"each, client {result['client_cpu_percent']} % busy; {result['failed']} failed)",
          flush=True)
    return result


def dm_ladder(label: str, number: int, tokens, config, server_core, client_core) -> dict:
    is_bare = label != "pawhome"
    began = time.monotonic()
    if not is_bare:
        asyncio.run(rt.clear_conversations())  # every ladder starts from the same tables
    server = start(label, server_core)
    try:
        # The label goes into every client_msg_id: letters, digits and . _ : - only.
        result = rt.dm_ladder(f"{label}-{number + 1}", server,
                              users_for(label, tokens, 2 * config["pairs"] + config["probes"]),
                              config, client_core, is_bare)
    finally:
        rt.stopped(server)
    return {**result, "wall_seconds": round(time.monotonic() - began, 1)}


# -- summary -----------------------------------------------------------------------------------


def cpu_at(result: dict, rate: int) -> tuple[float | None, float | None]:
    """(server CPU us per DM, MariaDB + Redis CPU us per DM) at the ladder's `rate` step."""
    step = rt.step_at(result, rate)
    if step is None:
        return None, None
    stores = [step.get("db_cpu_us_per_message"), step.get("redis_cpu_us_per_message")]
    known = [v for v in stores if v is not None]
    return step["server_cpu_us_per_message"], (round(sum(known), 1) if known else None)


def summarize(label: str, idle_result: dict, storms: list[dict], ladders: list[dict],
              config: dict) -> dict:
    done = [ladder for ladder in ladders if "error" not in ladder]
    cpu = [cpu_at(ladder, config["cpu_rate"]) for ladder in done]
    top = (config["bare_rates"] if label != "pawhome" else config["rates"])[-1]
    ceilings = [ladder["max_rate_passed"] for ladder in done]
    return {
        "kb_per_idle_connection": idle_result["rss_per_connection_kb"],
        "idle_connections": idle_result["connections"],
        "connects_per_second": rt.median([s["connects_per_second"] for s in storms]),
        "connects_per_second_per_round": [s["connects_per_second"] for s in storms],
        "connect_failed": [s["failed"] for s in storms],
        "dm_max_rate": rt.median(ceilings),
        "dm_max_rate_per_ladder": ceilings,
        "dm_first_failed_per_ladder": [ladder["first_failed_rate"] for ladder in done],
        # A ladder that passed its top step only shows the server is at least that fast.
        "dm_ladders_at_top_step": sum(1 for c in ceilings if c == top),
        "dm_ladder_errors": [ladder["error"] for ladder in ladders if "error" in ladder],
        # The load client's own core at each ladder's highest passing step: near 100 %, the
        # client, not the server, set the ceiling.
        "client_cpu_percent_at_ceiling": [
            (rt.step_at(ladder, ladder["max_rate_passed"]) or {}).get("client_cpu_percent")
            for ladder in done],
        "client_cpu_percent_at_first_failure": [
            (rt.step_at(ladder, ladder["first_failed_rate"]) or {}).get("client_cpu_percent")
            for ladder in done],
        "cpu_us_per_dm": [c[0] for c in cpu],
        "cpu_us_per_dm_median": rt.median([c[0] for c in cpu]),
        "stores_cpu_us_per_dm": [c[1] for c in cpu],
        "stores_cpu_us_per_dm_median": rt.median([c[1] for c in cpu]),
    }


RATIO_FIGURES = ("kb_per_idle_connection", "connects_per_second", "dm_max_rate",
                 "cpu_us_per_dm_median")


def ratios(summary: dict) -> dict:
    """PAWHome / bare and PAWHome / FastAPI, figure by figure (medians)."""
    return {f"pawhome / {other}": {figure: rt.ratio(summary["pawhome"][figure],
                                                     summary[other][figure])
                                   for figure in RATIO_FIGURES}
            for other in ("bare", "fastapi")}


# -- duration ----------------------------------------------------------------------------------
def expected_seconds(config: dict, ladders: int) -> float:
    """What a run should take on a quiet machine, from each server's expected ceiling and
    connect rates (EXPECTED); the wait for a quiet machine comes on top."""
    total = 10.0  # migrations, users, tokens
    for label, guess in EXPECTED.items():
        # idle: a 1 s pause before, the handshakes, 3 s to settle, 0.5 s to close
        total += guess["start"] + 1 + config["idle"] / guess["idle_rate"] + 3.5
        # storm: a 0.5 s pause, the handshakes, 1 s to settle, the mass close and its checks
        storm = guess["start"] + 0.5 + config["clients"] / guess["storm_rate"] + 1 + 1
        rates = config["bare_rates"] if label != "pawhome" else config["rates"]
        passing = [r for r in rates if r <= guess["ceiling"]]
        failing = 2 if len(passing) < len(rates) else 0
        sockets = 2 * config["pairs"] + config["probes"]
        ladder = (guess["start"] + sockets / guess["idle_rate"] + config["pairs"]
                  / config["warmup_rate"] + len(passing) * (config["step_seconds"] + 0.3)
                  + failing * (config["step_seconds"] + config["drain_seconds"] + 0.3))
        total += ladders * (storm + ladder)
    return total


# -- report ------------------------------------------------------------------------------------
def thousands(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def span(values: list) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    low, high = min(present), max(present)
    return f"{low:.0f} µs" if round(low) == round(high) else f"{low:.0f}–{high:.0f} µs"


def markdown(r: dict) -> str:
    m, c, s, q = r["machine"], r["config"], r["summary"], r["ratios"]
    n = r["ladders"]

    def row(figure: str, cells: dict[str, str], ratio_key: str) -> str:
        return (f"| {figure} | {cells['bare']} | {cells['fastapi']} | {cells['pawhome']} | "
                f"{q['pawhome / bare'][ratio_key]} | {q['pawhome / fastapi'][ratio_key]} |")

    def dm_cell(label: str) -> str:
        at_top = s[label]["dm_ladders_at_top_step"]
        return thousands(s[label]["dm_max_rate"]) + (
            f" (top step in {at_top} of {n}: at least)" if at_top else "")

    pawhome_cpu = span(s["pawhome"]["cpu_us_per_dm"])
    stores = s["pawhome"]["stores_cpu_us_per_dm_median"]
    if stores is not None:
        pawhome_cpu += f" (+ ~{stores:.0f} µs in MariaDB and Redis)"
    lines = [
        "# WebSocket servers side by side (`bench/bench_ws_compare.py`)",
        "",
        f"Run {r['when']} on {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}. Each server one process pinned to core {m['server_core']}, "
        f"the load client (bench/ws_load.py, bench/ws_connect_load.py; one process) on core "
        f"{m['client_core']}, MariaDB and Redis unpinned beside them; everything on "
        f"127.0.0.1. Machine CPU use just before the start (all cores = 100 %): "
        f"{m['busy_percent_before_start'][-1]} % (samples "
        f"{m['busy_percent_before_start']}); load average {' '.join(m['loadavg_at_start'])}. "
        f"{n} round{'s' if n != 1 else ''}, the servers' order rotating from round to "
        "round; produced in "
        f"{r['duration_seconds']:.0f} s (expected {r['expected_duration_seconds']:.0f} s).",
        "",
        f"| figure | {TITLES['bare']} | {TITLES['fastapi']} | {TITLES['pawhome']} | "
        "PAWHome / bare | PAWHome / FastAPI |",
        "|---|---:|---:|---:|---:|---:|",
        row(f"KB per idle connection, {c['idle']:,} connections",
            {k: f"{s[k]['kb_per_idle_connection']}" for k in SERVERS}, "kb_per_idle_connection"),
        row(f"new connections per second (median of {n})",
            {k: thousands(s[k]["connects_per_second"]) for k in SERVERS}, "connects_per_second"),
        row(f"DMs/s at p99 < 100 ms, no loss (median of {n} ladder{'s' if n != 1 else ''})",
            {k: dm_cell(k) for k in SERVERS}, "dm_max_rate"),
        row(f"server CPU per DM at {c['cpu_rate']:,}/s (range over ladders; ratio of medians)",
            {"bare": span(s["bare"]["cpu_us_per_dm"]),
             "fastapi": span(s["fastapi"]["cpu_us_per_dm"]), "pawhome": pawhome_cpu},
            "cpu_us_per_dm_median"),
        "",
        "Servers: bench/bare_ws_relay.py (Tornado, orjson, no auth, no storage); "
        "bench/fastapi_ws_relay.py (the same protocol on FastAPI + uvicorn: one process, "
        "uvloop, httptools, the `websockets` package's Sans-I/O protocol, orjson); PAWHome's "
        "run_gateway.py as bench_realtime.py starts it (development mode, the asyncio loop, "
        "database `pawhome_bench`): every socket authenticated with a token and resumed, "
        "every DM checked, stored in MariaDB (group commit) and delivered through the users' "
        "Redis streams and pub/sub. A fresh server process for every measurement.",
        "",
        "How each figure is measured:",
        "",
        f"- **KB per idle connection**: (VmRSS after {c['idle']:,} idle sockets - VmRSS "
        "before) / sockets, 3 s after the last handshake, 64 handshakes in flight "
        "(bench_realtime.py's idle case). PAWHome's sockets are authenticated and resumed.",
        f"- **New connections per second**: {c['clients']:,} distinct clients, "
        f"{c['concurrency']:,} handshakes in flight, as fast as the server answers, then all "
        "closed at once (bench_connect.py's storm); a relay's connection counts at `hello`, "
        "PAWHome's once `resume` is answered. Median of the rounds.",
        f"- **DMs/s**: {c['pairs']} senders -> {c['pairs']} recipients, open loop at the "
        f"step's rate, {c['step_seconds']:g} s per step (bench_realtime.py uses 8 s) after a "
        f"warm-up of one message per pair, up to {c['drain_seconds']:g} s to drain; a step "
        "passes when every message arrived exactly once, every send was acked, no error frame "
        "came back, the achieved rate was within 5 % of the target and p99 delivery < 100 ms. "
        "A failing step is run once more; the ladder stops at its first failing step. Steps: "
        f"PAWHome {c['rates']}, the relays {c['bare_rates']}. Median of the ladders' "
        "highest passing steps.",
        f"- **CPU per DM**: utime + stime of the server process over the ladder's "
        f"{c['cpu_rate']:,} msg/s step divided by its messages; for PAWHome also the local "
        "mariadbd and redis-server processes' (median over the ladders; they run on both "
        "cores, anything else using them adds to it).",
        "",
        "## Per server",
        "",
        "| server | connects/s per round | failed connects | highest passing DM rate per "
        "ladder | first failing step | client CPU % at the ceiling / at the failing step | "
        f"CPU us/DM at {c['cpu_rate']} per ladder | MariaDB + Redis us/DM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label in SERVERS:
        one = s[label]
        lines.append(
            f"| {label} | {one['connects_per_second_per_round']} | {one['connect_failed']} | "
            f"{one['dm_max_rate_per_ladder']} | {one['dm_first_failed_per_ladder']} | "
            f"{one['client_cpu_percent_at_ceiling']} / "
            f"{one['client_cpu_percent_at_first_failure']} | {one['cpu_us_per_dm']} | "
            f"{one['stores_cpu_us_per_dm'] if label == 'pawhome' else '-'} |")
        if one["dm_ladder_errors"]:
            lines.append(f"| {label} | ladder errors: {one['dm_ladder_errors']} |")
    lines += [
        "",
        "Wall time per measurement, server start and stop included (s): " + "; ".join(
            f"{label} idle {r['idle'][label]['wall_seconds']}, storms "
            f"{[one[label]['wall_seconds'] for one in r['connect']]}, ladders "
            f"{[ladder['wall_seconds'] for ladder in r['dm'][label]]}" for label in SERVERS)
        + ".",
        "",
        "## Idle connections",
        "",
        "| server | sockets | failed | connect s | RSS before KB | RSS after KB | KB per "
        "connection |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label in SERVERS:
        f = r["idle"][label]
        lines.append(f"| {label} | {f['connections']} | {f['failed']} | "
                     f"{f['connect_seconds']} | {f['rss_before_kb']} | {f['rss_after_kb']} | "
                     f"{f['rss_per_connection_kb']} |")
    lines += [
        "",
        "## Connect storms",
        "",
        "| round | server | connected | failed | seconds | connects/s | p50 / p99 / max ms | "
        "server CPU us/connect | server CPU % | client CPU % |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for number, storms in enumerate(r["connect"], 1):
        for label in SERVERS:
            f = storms[label]
            lines.append(f"| {number} | {label} | {f['connected']} | {f['failed']} | "
                         f"{f['seconds']} | {f['connects_per_second']} | "
                         f"{f['latency_p50_ms']} / {f['latency_p99_ms']} / "
                         f"{f['latency_max_ms']} | {f['server_cpu_us_per_connect']} | "
                         f"{f['server_cpu_percent']} | {f['client_cpu_percent']} |")
    lines += ["", "## DM ladders", "", "Columns as in realtime.md.", "", *rt.DM_TABLE_HEADER]
    for label in SERVERS:
        for number, ladder in enumerate(r["dm"][label], 1):
            lines += rt.dm_step_rows(f"{label}-{number}", ladder)
    return "\n".join(lines) + "\n"


# -- run ---------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small smoke run (1 ladder unless --ladders); writes nothing")
    parser.add_argument("--ladders", type=int,
                        help="DM ladders and connect storms per server, medians taken "
                             "(default 3; 1 with --quick)")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    ladders = args.ladders or (1 if args.quick else 3)
    if ladders < 1:
        parser.error("--ladders must be at least 1")
    quiet_wait = float(os.environ.get("BENCH_QUIET_WAIT", "20" if args.quick else "120"))
    expected = expected_seconds(config, ladders)
    print(f"expected duration on a quiet machine: about {expected / 60:.0f} min "
          f"({expected:.0f} s), plus up to {quiet_wait:.0f} s waiting for the machine to be "
          "below 25 % busy", flush=True)
    started = time.monotonic()
    server_core, client_core = gw.cores()
    tokens = rt.prepare(max(config["idle"], config["clients"],
                            2 * config["pairs"] + config["probes"]))
    print(f"{len(tokens)} users and tokens ready in {time.monotonic() - started:.1f} s",
          flush=True)
    quiet = rt.wait_for_quiet(quiet_wait)
    setup = (tokens, config, server_core, client_core)
    storms: list[dict] = []
    dm: dict[str, list[dict]] = {label: [] for label in SERVERS}
    try:
        idle_results = {label: idle(label, *setup) for label in SERVERS}
        for number in range(ladders):
            print(f"round {number + 1} of {ladders}: {', '.join(rotated(number))}", flush=True)
            storms.append({label: connect(label, number, *setup) for label in rotated(number)})
            for label in rotated(number):
                dm[label].append(dm_ladder(label, number, *setup))
    finally:
        rt.clear_prefix(rt.PREFIX + "*")
        rt.clear_prefix(rt.QUEUE_PREFIX + "*")
    summary = {label: summarize(label, idle_results[label], [s[label] for s in storms],
                                dm[label], config) for label in SERVERS}
    result = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick, "ladders": ladders,
        "duration_seconds": round(time.monotonic() - started, 1),
        "expected_duration_seconds": round(expected),
        "machine": {**rt.machine_info(server_core, client_core),
                    "busy_percent_before_start": quiet},
        "config": config,
        "summary": summary, "ratios": ratios(summary),
        "idle": idle_results, "connect": storms, "dm": dm,
    }
    gw.finish_run("ws_compare", result, markdown(result), args.quick, started)


if __name__ == "__main__":
    main()
