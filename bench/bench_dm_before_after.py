"""Direct messages before and after, in one run: the gateway of another checkout (`--before`,
e.g. the tree when issue 15 was filed) beside this one, on the same DM ladder, the same
database and Redis, the same load client, in interleaved rounds.

    git worktree add /tmp/pawhome-before ea90cb7      (the tree before issue 15's DM work)
    python bench/bench_dm_before_after.py --before /tmp/pawhome-before [--ladders 3]
                                                      (about 5 minutes; writes
                                                      bench/results/dm_before_after.*)
    python bench/bench_dm_before_after.py --before /tmp/pawhome-before --quick
                                                      (a smoke run; writes nothing)

Each round runs one ladder per gateway (the order flips each round; a fresh process each
time, pinned to core 0, the load client bench/ws_load.py on core 1): 400 senders to 400
recipients, open loop, bench_realtime.py's DM step (every message delivered once and acked,
no error frame, the rate achieved, p99 delivery < 100 ms), a failing step retried once, the
ladder stopped at the first step that fails twice. Reported per gateway: the highest passing
rate (median over the ladders) and the CPU per DM at 1,000 msg/s — the gateway process's,
and MariaDB's and Redis's (the local mariadbd and redis-server processes: anything else
using them adds to it). The other checkout runs its own run_gateway.py (its own code) on
this checkout's database, which it must be able to use: its migrations a prefix of these
(the run checks that its newest revision is among this tree's).

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py), BENCH_STEP_SECONDS (5),
BENCH_QUIET_WAIT (120).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_gateway as gw  # noqa: E402
import bench_realtime as rt  # noqa: E402

FULL = {
    "pairs": 400, "probes": 5, "probe_interval": 0.02,
    "rates": [1000, 2000, 3000, 3500, 4000, 4500, 5000, 5500, 6000],
    "step_seconds": float(os.environ.get("BENCH_STEP_SECONDS", "5")),
    "warmup_rate": 50, "drain_seconds": 4.0, "cpu_rate": 1000,
}
QUICK = {**FULL, "pairs": 50, "rates": [500, 1000], "step_seconds": 2.0, "drain_seconds": 2.0,
         "cpu_rate": 1000}


def revisions(root: Path) -> set[str]:
    """The Alembic revision ids a checkout's migrations define."""
    found = set()
    for path in (root / "migrations" / "versions").glob("*.py"):
        match = re.search(r'^revision\s*(?::\s*str\s*)?=\s*["\']([^"\']+)["\']',
                          path.read_text(), re.MULTILINE)
        if match:
            found.add(match.group(1))
    return found


def commit_of(root: Path) -> str:
    return subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %cd %s",
                           "--date=format:%Y-%m-%d %H:%M"], capture_output=True,
                          text=True, check=False).stdout.strip()[:160]


def ladder(label: str, script: Path, number: int, tokens, config, server_core,
           client_core) -> dict:
    asyncio.run(rt.clear_conversations())  # every ladder starts from the same tables
    rt.clear_rate_limits()
    server = rt.Server(label, [rt.PYTHON, str(script)], {**rt.ENV, "USE_UVLOOP": "0"},
                       server_core)
    try:
        return rt.dm_ladder(f"{label}-{number + 1}", server,
                            tokens[:2 * config["pairs"] + config["probes"]], config,
                            client_core, False)
    finally:
        rt.stopped(server)


def summary(ladders: list[dict], config: dict) -> dict:
    steps = [rt.step_at(one, config["cpu_rate"]) or {} for one in ladders]
    stores = [(s.get("db_cpu_us_per_message") or 0) + (s.get("redis_cpu_us_per_message") or 0)
              if s else None for s in steps]
    return {
        "max_rate_per_ladder": [one.get("max_rate_passed") for one in ladders],
        "first_failed_per_ladder": [one.get("first_failed_rate") for one in ladders],
        "max_rate": rt.median([one.get("max_rate_passed") for one in ladders]),
        "cpu_us_per_dm": [s.get("server_cpu_us_per_message") for s in steps],
        "cpu_us_per_dm_median": rt.median([s.get("server_cpu_us_per_message") for s in steps]),
        "stores_cpu_us_per_dm": stores,
        "stores_cpu_us_per_dm_median": rt.median(stores),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, type=Path,
                        help="root of the other checkout (its run_gateway.py is started)")
    parser.add_argument("--ladders", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small smoke run; writes nothing")
    args = parser.parse_args()
    before = args.before.resolve()
    if not (before / "run_gateway.py").exists():
        parser.error(f"{before} holds no run_gateway.py")
    unknown = revisions(before) - revisions(rt.ROOT)
    if unknown:
        parser.error(f"{before}'s migrations {sorted(unknown)} are not this tree's: it cannot "
                     "share this database")
    config = QUICK if args.quick else FULL
    ladders = 1 if args.quick else args.ladders
    started = time.monotonic()
    server_core, client_core = gw.cores()
    tokens = rt.prepare(2 * config["pairs"] + config["probes"])
    quiet = rt.wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT",
                                                   "20" if args.quick else "120")))
    gateways = {"before": before / "run_gateway.py", "now": rt.ROOT / "run_gateway.py"}
    results: dict[str, list[dict]] = {label: [] for label in gateways}
    try:
        for number in range(ladders):
            order = list(gateways) if number % 2 == 0 else list(reversed(gateways))
            print(f"round {number + 1} of {ladders}: {', '.join(order)}", flush=True)
            for label in order:
                results[label].append(ladder(label, gateways[label], number, tokens, config,
                                             server_core, client_core))
    finally:
        rt.clear_prefix(rt.PREFIX + "*")
        rt.clear_prefix(rt.QUEUE_PREFIX + "*")
    sums = {label: summary(results[label], config) for label in results}
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    b, n = sums["before"], sums["now"]
    lines = [
        "# Direct messages before and after, in one run (`bench/bench_dm_before_after.py`)", "",
        f"Run {when}, {round(time.monotonic() - started)} s; machine CPU use before the start: "
        f"{quiet[-1]} % (all cores = 100 %). Gateways pinned to core 0, the load client to "
        f"core 1, MariaDB and Redis unpinned; {ladders} interleaved ladders per gateway, "
        f"{config['pairs']} pairs, {config['step_seconds']:g} s per step.", "",
        f"- before: `{commit_of(before)}`",
        f"- now: `{commit_of(rt.ROOT)}`", "",
        "| figure | before | now | now / before |",
        "|---|---:|---:|---:|",
        f"| DMs/s at p99 < 100 ms, no loss (median of the ladders; each) | {b['max_rate']} "
        f"({b['max_rate_per_ladder']}) | {n['max_rate']} ({n['max_rate_per_ladder']}) | "
        f"{rt.ratio(n['max_rate'], b['max_rate'])} |",
        f"| gateway CPU per DM at {config['cpu_rate']:,}/s, µs (median; each) | "
        f"{b['cpu_us_per_dm_median']} ({b['cpu_us_per_dm']}) | {n['cpu_us_per_dm_median']} "
        f"({n['cpu_us_per_dm']}) | {rt.ratio(n['cpu_us_per_dm_median'], b['cpu_us_per_dm_median'])} |",
        f"| MariaDB + Redis CPU per DM at {config['cpu_rate']:,}/s, µs (median; each) | "
        f"{b['stores_cpu_us_per_dm_median']} ({b['stores_cpu_us_per_dm']}) | "
        f"{n['stores_cpu_us_per_dm_median']} ({n['stores_cpu_us_per_dm']}) | "
        f"{rt.ratio(n['stores_cpu_us_per_dm_median'], b['stores_cpu_us_per_dm_median'])} |",
        "", "Every step (columns as in realtime.md):", "",
        *rt.DM_TABLE_HEADER,
        *(row for label in results for number, one in enumerate(results[label])
          for row in rt.dm_step_rows(f"{label}-{number + 1}", one)), "",
    ]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if args.quick:
        return
    gw.save_results("dm_before_after", {"when": when, "config": config,
                                        "before": commit_of(before), "now": commit_of(rt.ROOT),
                                        "busy_percent_before_start": quiet,
                                        "summary": sums, "ladders": results},
                    markdown, started)


if __name__ == "__main__":
    main()
