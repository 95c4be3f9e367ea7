"""Connection setup under churn (issue 9 §4): a connect storm and a disconnect storm.

    python bench/bench_connect.py                  (3 rounds of 5,000 clients, then a
                                                   deploy storm of 10,000; writes
                                                   bench/results/connect.json and .md)
    python bench/bench_connect.py --quick          (1 round of 1,000; prints, writes nothing)
    python bench/bench_connect.py --rounds 5 --clients 5000 --concurrency 500 --deploy 0
    python bench/bench_connect.py --compare-root ../main   (also the gateway of another
                                                   checkout, e.g. before a change, in
                                                   every round: same conditions)

Each round starts a fresh server on core 0 and runs the load client
(bench/ws_connect_load.py, its own process) on core 1: N distinct users connect as fast as
the server answers, `--concurrency` handshakes in flight, then every socket is closed at
once. Against one gateway process (run_gateway.py, MODE=development, the local MariaDB and
Redis) a connection is set up once the token is checked, the upgrade admitted, the user's
channel subscribed, `hello` sent and the client's `resume` answered; then the script times
how long after the mass close every user is offline and every user channel unsubscribed, and
counts the gateway's WARNING/ERROR log lines. Against bench/bare_ws_relay.py (a bare Tornado
WebSocket server: no auth, no Redis) a connection is set up at `hello`. The two alternate
within a round (the order flips each round; the machine is shared and noisy); the summary
is the median over rounds and the ratio of medians. Last, the deploy storm: `--deploy`
clients (10,000) all connecting at once to each server, as after a gateway restart, timed
until the last one is set up.

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py), BENCH_QUIET_WAIT.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import bench_realtime as rt

gw = rt.gw
HERE = rt.HERE
_NOTEWORTHY = ('"WARNING"', '"ERROR"', '"CRITICAL"')


class CountingServer(rt.Server):
    """A server whose WARNING and ERROR log lines are counted (and a few kept)."""

    def __init__(self, label: str, argv: list[str], env: dict, core: int | None) -> None:
        self.noteworthy = collections.Counter()
        self.samples: list[str] = []
        super().__init__(label, argv, env, core)

    def _drain(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.stderr_tail.append(line)
            if any(level in line for level in _NOTEWORTHY):
                try:
                    message = json.loads(line).get("msg", line)
                except ValueError:
                    message = line
                # One count per kind of message: ids and numbers told apart would not add up.
                self.noteworthy[re.sub(r"\d+", "N", message.split(":", 1)[0])[:80]] += 1
                if len(self.samples) < 3:
                    self.samples.append(line[:300])


# `--compare-root`: another checkout whose gateway runs beside this one as "compared".
COMPARE_ROOT: Path | None = None


def start(label: str, core: int | None) -> CountingServer:
    if label == "bare":
        return CountingServer("bare", [rt.PYTHON, str(HERE / "bare_ws_relay.py")], rt.ENV,
                              core)
    root = COMPARE_ROOT if label == "compared" and COMPARE_ROOT else rt.ROOT
    env = {**rt.ENV, "USE_UVLOOP": "0", "PYTHONPATH": str(root)}
    return CountingServer(label, [rt.PYTHON, str(root / "run_gateway.py")], env, core)


def storm(server: rt.Server, bare: bool, tokens, config, client_core) -> dict:
    """One connect storm and disconnect storm against a running server (bare: a relay
    speaking bench/bare_ws_relay.py's protocol), by bench/ws_connect_load.py on the client
    core; returns its result."""
    users = [(n + 1, None) for n in range(config["clients"])] if bare else \
        tokens[:config["clients"]]
    spec = {"bare": bare, "url": server.ws_url(bare), "users": users,
            "concurrency": config["concurrency"], "server_pid": server.pid,
            "prefix": rt.PREFIX, "redis_url": gw.REDIS, "settle_seconds": 1.0,
            "cleanup_timeout": 30}
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="ws_connect_",
                                     delete=False) as handle:
        json.dump(spec, handle)
    try:
        out = subprocess.run([rt.PYTHON, str(HERE / "ws_connect_load.py"), handle.name],
                             cwd=rt.ROOT, env=rt.ENV, stdout=subprocess.PIPE, text=True,
                             timeout=300, preexec_fn=gw.pinned(client_core)).stdout
    finally:
        os.unlink(handle.name)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"ws_connect_load.py printed no result:\n{out[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def clear_connect_state() -> None:
    """Each server starts from empty windows and no presence entries: another server's
    entries (they live for WS_PRESENCE_TTL) would count as users left online."""
    rt.clear_rate_limits()
    rt.clear_prefix(rt.PREFIX + "presence:*")


def run_round(number: int, tokens, config, server_core, client_core) -> dict:
    labels = ["gateway", "bare"] + (["compared"] if COMPARE_ROOT else [])
    order = labels if number % 2 == 0 else labels[::-1]
    out: dict = {}
    for label in order:
        clear_connect_state()
        server = start(label, server_core)
        try:
            result = storm(server, label == "bare", tokens, config, client_core)
            time.sleep(0.5)  # log lines of the last steps
            result["log_warnings"] = sum(server.noteworthy.values())
            result["log_warnings_by_message"] = dict(server.noteworthy.most_common(5))
            result["log_samples"] = server.samples
        finally:
            rt.stopped(server)
        out[label] = result
        cleanup = "" if label == "bare" else (
            f"; closed all: offline after {result.get('all_offline_after_s')} s, "
            f"unsubscribed after {result.get('all_unsubscribed_after_s')} s, "
            f"left online {result.get('still_online')}, subscribed "
            f"{result.get('still_subscribed')}")
        print(f"  round {number + 1} {label:9} {result['connected']}/{result['clients']} in "
              f"{result['seconds']} s = {result['connects_per_second']} connects/s (p50 "
              f"{result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms, server "
              f"{result['server_cpu_us_per_connect']} us CPU each, server "
              f"{result['server_cpu_percent']} % busy, client {result['client_cpu_percent']} "
              f"%){cleanup}; "
              f"{result['log_warnings']} warning lines", flush=True)
    out["ratio"] = rt.ratio(out["gateway"]["connects_per_second"],
                            out["bare"]["connects_per_second"])
    if "compared" in out:
        out["compared_ratio"] = rt.ratio(out["compared"]["connects_per_second"],
                                         out["bare"]["connects_per_second"])
    return out


def deploy_storm(tokens, config, server_core, client_core) -> dict:
    """Every client at once, as when a restarted gateway's clients all come back."""
    storm_config = {**config, "clients": config["deploy"], "concurrency": config["deploy"]}
    print(f"  deploy storm: {config['deploy']} clients at once", flush=True)
    return run_round(0, tokens, storm_config, server_core, client_core)


def summarize(rounds: list[dict]) -> dict:
    def median(label: str, field: str):
        values = [r[label][field] for r in rounds if r[label].get(field) is not None]
        return round(statistics.median(values), 2) if values else None
    gateway_rate = median("gateway", "connects_per_second")
    bare_rate = median("bare", "connects_per_second")
    return {
        "gateway_connects_per_second": gateway_rate,
        "bare_connects_per_second": bare_rate,
        "ratio_of_medians": rt.ratio(gateway_rate, bare_rate),
        "ratios_per_round": [r["ratio"] for r in rounds],
        "gateway_p99_ms": median("gateway", "latency_p99_ms"),
        "bare_p99_ms": median("bare", "latency_p99_ms"),
        "gateway_cpu_us_per_connect": median("gateway", "server_cpu_us_per_connect"),
        "bare_cpu_us_per_connect": median("bare", "server_cpu_us_per_connect"),
        # Connects per second of server CPU, gateway / bare: the ratio when the server, not
        # the load client, sets the pace.
        "cpu_ratio": rt.ratio(median("bare", "server_cpu_us_per_connect"),
                              median("gateway", "server_cpu_us_per_connect")),
        "all_offline_after_s": [r["gateway"].get("all_offline_after_s") for r in rounds],
        "all_unsubscribed_after_s": [r["gateway"].get("all_unsubscribed_after_s")
                                     for r in rounds],
        "left_online": [r["gateway"].get("still_online") for r in rounds],
        "left_subscribed": [r["gateway"].get("still_subscribed") for r in rounds],
        "gateway_failed": [r["gateway"]["failed"] for r in rounds],
        "gateway_log_warnings": [r["gateway"]["log_warnings"] for r in rounds],
        **(compared_summary(rounds, median) if "compared" in rounds[0] else {}),
    }


def compared_summary(rounds: list[dict], median) -> dict:
    rate = median("compared", "connects_per_second")
    return {
        "compared_connects_per_second": rate,
        "compared_ratio_of_medians": rt.ratio(rate, median("bare", "connects_per_second")),
        "compared_ratios_per_round": [r["compared_ratio"] for r in rounds],
        "compared_p99_ms": median("compared", "latency_p99_ms"),
        "compared_cpu_us_per_connect": median("compared", "server_cpu_us_per_connect"),
        "compared_cpu_ratio": rt.ratio(median("bare", "server_cpu_us_per_connect"),
                                       median("compared", "server_cpu_us_per_connect")),
        "compared_failed": [r["compared"]["failed"] for r in rounds],
        "compared_left_online": [r["compared"].get("still_online") for r in rounds],
        "compared_all_offline_after_s": [r["compared"].get("all_offline_after_s")
                                         for r in rounds],
        "compared_log_warnings": [r["compared"]["log_warnings"] for r in rounds],
    }


def markdown(result: dict) -> str:
    c, s = result["config"], result["summary"]
    lines = [
        "# Connection setup under churn (`bench/bench_connect.py`)",
        "",
        f"Run {result['when']} on {result['machine']['cpus']} CPUs "
        f"({result['machine']['cpu_model']}), Python {result['machine']['python']}. "
        f"{c['rounds']} rounds; each round: {c['clients']} distinct users connect to a fresh "
        f"server on core {result['machine']['server_core']}, {c['concurrency']} handshakes "
        f"in flight, from one load-client process on core {result['machine']['client_core']} "
        "(bench/ws_connect_load.py); then every socket is closed at once. Gateway: one "
        "run_gateway.py process (development mode, MariaDB and Redis local, unpinned); a "
        "connection counts once `resume` is answered (token, admission, subscribe, presence, "
        "hello, resume). Bare: bench/bare_ws_relay.py, counted at `hello`. Machine CPU use "
        f"before the start: {result['busy_percent_before_start'][-1]} % (all cores = 100 %).",
        "",
        "## Summary (medians over rounds)",
        "",
        "| figure | gateway | bare Tornado | ratio |",
        "|---|---:|---:|---:|",
        f"| connects per second | {s['gateway_connects_per_second']} | "
        f"{s['bare_connects_per_second']} | {s['ratio_of_medians']} |",
        f"| connect latency p99 (ms) | {s['gateway_p99_ms']} | {s['bare_p99_ms']} | |",
        f"| server CPU per connect (us; ratio: connects per CPU-second) | "
        f"{s['gateway_cpu_us_per_connect']} | {s['bare_cpu_us_per_connect']} | "
        f"{s['cpu_ratio']} |",
        "",
        f"Per-round ratios: {s['ratios_per_round']}. After the mass close (gateway): every "
        f"user offline after {s['all_offline_after_s']} s, every user channel unsubscribed "
        f"after {s['all_unsubscribed_after_s']} s (None: not within 30 s); left online "
        f"{s['left_online']}, left subscribed {s['left_subscribed']}; failed connects "
        f"{s['gateway_failed']}; gateway WARNING/ERROR log lines {s['gateway_log_warnings']}.",
        "",
        *([f"Compared gateway ({result['compare_root']}), same rounds: "
           f"{s['compared_connects_per_second']} connects/s (ratio to bare "
           f"{s['compared_ratio_of_medians']}, per round {s['compared_ratios_per_round']}), "
           f"p99 {s['compared_p99_ms']} ms, {s['compared_cpu_us_per_connect']} us CPU per "
           f"connect (CPU ratio {s['compared_cpu_ratio']}); failed connects "
           f"{s['compared_failed']}; after the mass close every user offline after "
           f"{s['compared_all_offline_after_s']} s, left online {s['compared_left_online']}; "
           f"WARNING/ERROR log lines {s['compared_log_warnings']}.", ""]
          if "compared_connects_per_second" in s else []),
        "## Rounds",
        "",
        "| round | server | connected | failed | seconds | connects/s | p50 / p99 / max ms | "
        "server CPU us/connect | server CPU % | client CPU % | offline after s | "
        "unsubscribed after s | warning lines |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for number, one in enumerate(result["rounds"], 1):
        for label in ("gateway", "bare", "compared"):
            if label not in one:
                continue
            r = one[label]
            lines.append(
                f"| {number} | {label} | {r['connected']} | {r['failed']} | {r['seconds']} | "
                f"{r['connects_per_second']} | {r['latency_p50_ms']} / {r['latency_p99_ms']} / "
                f"{r['latency_max_ms']} | {r['server_cpu_us_per_connect']} | "
                f"{r['server_cpu_percent']} | {r['client_cpu_percent']} | "
                f"{r.get('all_offline_after_s', '-')} | "
                f"{r.get('all_unsubscribed_after_s', '-')} | {r['log_warnings']} |")
    deploy = result.get("deploy")
    if deploy:
        lines += ["", f"## Deploy storm: {c['deploy']} clients at once", "",
                  "| server | connected | failed | last set up after s | connects/s | "
                  "p50 / p99 ms | server CPU us/connect | client CPU % | offline after s | "
                  "warning lines |", "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
        for label in ("gateway", "bare", "compared"):
            if label not in deploy:
                continue
            r = deploy[label]
            lines.append(f"| {label} | {r['connected']} | {r['failed']} | {r['seconds']} | "
                         f"{r['connects_per_second']} | {r['latency_p50_ms']} / "
                         f"{r['latency_p99_ms']} | {r['server_cpu_us_per_connect']} | "
                         f"{r['client_cpu_percent']} | {r.get('all_offline_after_s', '-')} | "
                         f"{r['log_warnings']} |")
    warned = {m: n for one in result["rounds"] + ([deploy] if deploy else []) for m, n in
              one["gateway"]["log_warnings_by_message"].items()}
    if warned:
        lines += ["", "Gateway log lines at WARNING or above, by message (last round seen): "
                  + "; ".join(f"`{m}` x{n}" for m, n in warned.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 1,000; writes nothing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--deploy", type=int, default=10000,
                        help="clients of the final all-at-once storm (0: none)")
    parser.add_argument("--compare-root", type=Path,
                        help="another checkout whose gateway also runs in every round")
    args = parser.parse_args()
    global COMPARE_ROOT
    COMPARE_ROOT = args.compare_root.resolve() if args.compare_root else None
    config = {"rounds": 1 if args.quick else args.rounds,
              "clients": 1000 if args.quick else args.clients,
              "concurrency": args.concurrency, "deploy": 0 if args.quick else args.deploy}
    started = time.monotonic()
    server_core, client_core = gw.cores()
    tokens = rt.prepare(max(config["clients"], config["deploy"]))
    quiet = rt.wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT", "60")))
    rounds: list[dict] = []
    deploy = None
    try:
        for number in range(config["rounds"]):  # one at a time: a round starts its servers
            rounds.append(run_round(number, tokens, config, server_core, client_core))
        if config["deploy"]:
            deploy = deploy_storm(tokens, config, server_core, client_core)
    finally:
        rt.clear_prefix(rt.PREFIX + "*")
    result = {"when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": rt.machine_info(server_core, client_core), "config": config,
              "busy_percent_before_start": quiet, "rounds": rounds, "deploy": deploy,
              "compare_root": str(COMPARE_ROOT) if COMPARE_ROOT else None,
              "summary": summarize(rounds)}
    text = markdown(result)
    print(text)
    if not args.quick:
        gw.save_results("connect", result, text, started)


if __name__ == "__main__":
    main()
