"""REST at the framework's floor (issue 15 §3): PAWHome's gateway beside a FastAPI + uvicorn app
doing the same reads, in one run, plus a bare Tornado handler for one cached page.

    python bench/bench_rest_floor.py            (about 8 minutes; writes bench/results/rest_floor.*)
    python bench/bench_rest_floor.py --quick    (a smoke run, about 2 minutes; writes nothing)

Servers, each one process on the same core (core 0): PAWHome (bench/rest_floor_gateway.py =
run_gateway.py with the five routes' rate limits lifted, production settings otherwise,
LOG_LEVEL=INFO so the JSON access log is on, to a file); the same with USE_UVLOOP=1
(`pawhome_uvloop`: what the event loop alone is worth, since uvicorn runs on uvloop);
bench/fastapi_reads.py (uvicorn, uvloop + httptools, the same domain read functions, auth,
access log and metrics); and bench/bare_community.py (one Redis GET of the cached hot page). The load client
(bench/load_driver.py, or wrk when installed) runs on core 1 with 64 keep-alive connections,
every request carrying one of 50 buyers' access tokens; MariaDB and Redis are unpinned.

The five hottest reads, each from both servers:
  feed       GET /v1/posts?sort=hot                      (first page, Redis page cache)
  products   GET /v1/products                            (first page, Redis page cache)
  product    GET /v1/products/{the best seller}          (Redis page cache + footprint + flag)
  slots      GET /v1/services/{id}/slots?date=<tomorrow> (per-groomer Redis cache + 3 reads)
  my_orders  GET /v1/orders                              (authenticated, SQL on every request)
Both servers read the same database and Redis prefix (the same cached pages); their answers
are checked equal before measuring. Rounds interleave the servers (the order flips each
round); each figure is the median over the rounds, and so is each per-round ratio.

Data, in the database `pawhome_bench_rest` (created and migrated here; seeded once and
reused): bench_mall.py's catalogue (20 shops, 2,000 products, 50 buyers with addresses);
bench_community.py's 2,000 public posts with likes and topics by those buyers; orders placed
through PAWHome's API (10 per buyer over 40 catalogue SKUs, every fourth cancelled); and,
each run (the booking tables emptied first), bench_booking.py's grooming shop set up through
the API (4 groomers, breaks, extra hours, 12 appointments on the measured day). Redis prefix
`pawhome_bench_rest:` and queue prefix `bench_rest.` (deleted at the end).

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py), BENCH_QUIET_WAIT
(seconds to wait at most for the machine to be below 25 % busy first; 30, quick 5),
BENCH_ROUNDS (5); BENCH_COMPARE_ROOT=DIR (another checkout, e.g. the tree before a change:
its gateway is measured as a fourth server, `pawhome_before`); BENCH_PROFILE=product,slots (endpoints to profile with py-spy after the
measurement: a flame graph each in bench/results/rest_floor_<endpoint>.svg, even with --quick,
and the top functions in the results), BENCH_PROFILE_SECONDS (10).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_booking as bk  # noqa: E402 - the grooming shop, its people
import bench_community as cm  # noqa: E402 - posts seed, hot-page check
import bench_gateway as gw  # noqa: E402 - cores, start/finish, load client
import bench_growth as growth  # noqa: E402 - calls through the API
import bench_mall as bm  # noqa: E402 - catalogue, tokens, list-case runner, POST driver
import bench_realtime as rt  # noqa: E402 - servers, quiet wait

PYTHON = sys.executable
DB_NAME = "pawhome_bench_rest"
PREFIX = "pawhome_bench_rest:"
QUEUE_PREFIX = "bench_rest."
ORDERS_PER_BUYER = 10
ORDER_SKUS = 40
ENV = {**bm.ENV, "DATABASE_URL": f"{gw.MYSQL}{DB_NAME}?charset=utf8mb4",
       "REDIS_PREFIX": PREFIX, "TASK_QUEUE_PREFIX": QUEUE_PREFIX,
       # The hot page stays warm for the whole run, so the bare handler always finds it
       # (production: 5 s, one refill per 5 s for both servers alike). The other caches keep
       # their production TTLs.
       "FEED_CACHE_SECONDS": "3600"}
ENDPOINTS = ("feed", "products", "product", "slots", "my_orders")
FIGURES = ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_request", "sql_per_request",
           "redis_cmds_per_request", "load_core_busy_percent", "machine_busy_percent")

FULL = {"list_seconds": 5.0, "list_warmup": 1.5, "rounds": int(os.environ.get("BENCH_ROUNDS", "5")),
        "products": 2000, "posts": 2000}
QUICK = {**FULL, "list_seconds": 1.5, "list_warmup": 0.5, "rounds": 1}


# -- data ----------------------------------------------------------------------------------------
async def order_count(settings, buyers: list[int]) -> int:
    from sqlalchemy import func, select

    from models.mall import Order
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session:
            return int((await session.execute(select(func.count()).select_from(Order).where(
                Order.user_id.in_(buyers)))).scalar_one())
    finally:
        await db.close()


async def catalogue_skus(settings, count: int) -> list[int]:
    """`count` SKUs of the seeded catalogue (the lowest ids: the same ones every run)."""
    from sqlalchemy import select

    from models.mall import Product, Sku
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session:
            return list((await session.execute(select(Sku.id).join(
                Product, Product.id == Sku.product_id).where(
                Product.brand != bm.HOT_BRAND).order_by(Sku.id).limit(count))).scalars())
    finally:
        await db.close()


def place_orders(gateway: rt.Server, settings, buyers: list[int], tokens: dict, cores) -> dict:
    """Once: ORDERS_PER_BUYER buy-now orders per buyer through the API (bench_mall's order
    streams over catalogue SKUs), every fourth cancelled by its buyer."""
    have = asyncio.run(order_count(settings, buyers))
    if have >= len(buyers) * ORDERS_PER_BUYER:
        return {"orders": have, "created": 0}
    sku_ids = asyncio.run(catalogue_skus(settings, ORDER_SKUS))
    addresses = asyncio.run(bm.buyer_addresses(settings, buyers))
    plan = bm.order_plan(buyers, ORDERS_PER_BUYER, len(sku_ids))
    streams = bm.order_streams("/v1/orders", buyers, tokens, addresses, plan, sku_ids,
                               f"rest-{uuid.uuid4().hex[:8]}")
    result = bm.drive(gateway, streams, cores)
    created = bm.statuses(result["records"])
    if set(created) != {"201"}:
        raise RuntimeError(f"placing the orders: {created} {result['failures'][:3]}")
    cancelled = 0
    for buyer in buyers:
        page = growth.api(gateway, "GET", "/v1/orders?limit=50", tokens[buyer])
        for order in page["items"][::4]:
            growth.api(gateway, "POST", f"/v1/orders/{order['id']}/cancel", tokens[buyer], {})
            cancelled += 1
    return {"orders": asyncio.run(order_count(settings, buyers)), "created": created["201"],
            "cancelled": cancelled}


def hot_page_key(settings) -> str:
    from pawhome.community import feeds
    from pawhome.platform.cache import Cache

    query = feeds.FeedQuery(sort="hot")
    return feeds.first_page_key(Cache(settings), query.sort, query.limit)


# -- checks and load -----------------------------------------------------------------------------
def same_answers(servers: dict[str, rt.Server], paths: dict[str, str], token: str) -> dict:
    """Each endpoint answers both servers alike (the envelope's data, decoded); the sizes."""
    import httpx

    out = {}
    for endpoint, path in paths.items():
        answers = {}
        for label, server in servers.items():
            reply = httpx.get(server.url(path), headers=bm.auth(token), timeout=30)
            if reply.status_code != 200:
                raise RuntimeError(f"{label} {path}: {reply.status_code} {reply.text[:300]}")
            answers[label] = reply.json()["data"]
            out.setdefault(endpoint, {})[f"{label}_bytes"] = len(reply.content)
        if answers["pawhome"] != answers["fastapi"]:
            raise RuntimeError(f"{endpoint} answers differ:\n{answers}")
    return out


def median_of(runs: list[dict]) -> dict:
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in FIGURES}
    out["non_2xx"] = sum(r["non_2xx"] for r in runs)
    out["socket_errors"] = sum(r["socket_errors"] for r in runs)
    out["rounds"] = runs
    return out


def ratios(ours: list[dict], theirs: list[dict]) -> dict:
    """PAWHome / FastAPI: of the medians, and the median of the per-round ratios (req/s
    above 1 is faster; latency and CPU per request below 1 are better)."""
    def of(key: str) -> float:
        return round(statistics.median(a[key] for a in ours) /
                     max(1e-9, statistics.median(b[key] for b in theirs)), 3)

    return {"rps": of("rps"), "p50": of("p50_ms"), "p99": of("p99_ms"),
            "cpu_per_request": of("server_cpu_ms_per_request"),
            "rps_per_round": [round(a["rps"] / b["rps"], 3) for a, b in zip(ours, theirs,
                                                                           strict=True)],
            "rps_median_of_rounds": round(statistics.median(
                a["rps"] / b["rps"] for a, b in zip(ours, theirs, strict=True)), 3)}


def measure(servers: dict[str, rt.Server], paths: dict[str, str], bare: rt.Server,
            tokens: list[str], config: dict, cores) -> dict:
    """Interleaved rounds: in each, every endpoint on both servers (the order flips every
    round) and the bare cached page beside the feed."""
    runs: dict[str, dict[str, list[dict]]] = {e: {s: [] for s in servers} for e in paths}
    runs["feed"]["bare"] = []
    for round_no in range(config["rounds"]):
        order = list(servers) if round_no % 2 == 0 else list(servers)[::-1]
        for endpoint, path in paths.items():
            cases = [(label, servers[label], path) for label in order]
            if endpoint == "feed":
                cases.append(("bare", bare, "/bare/hot"))
            for label, server, target in cases:
                f = bm.run_list_case(server, target, config, cores, tokens)
                f["server_cpu_ms_per_request"] = round(
                    f["server_cpu_percent"] * 10 / max(f["rps"], 0.1), 3)
                runs[endpoint][label].append(f)
                print(f"  round {round_no + 1} {endpoint:9} {label:7} {f['rps']:>8.1f} req/s  "
                      f"p50 {f['p50_ms']:.2f} ms  p99 {f['p99_ms']:.2f} ms  CPU/req "
                      f"{f['server_cpu_ms_per_request']:.3f} ms  load core "
                      f"{f['load_core_busy_percent']} %  machine {f['machine_busy_percent']} %"
                      + (f"  non-2xx {f['non_2xx']}" if f["non_2xx"] else ""), flush=True)
    out: dict = {}
    for endpoint, by_server in runs.items():
        out[endpoint] = {label: median_of(r) for label, r in by_server.items()}
        out[endpoint]["ratio"] = ratios(by_server["pawhome"], by_server["fastapi"])
        for variant in ("uvloop", "before"):
            if f"pawhome_{variant}" in by_server:
                out[endpoint][f"ratio_{variant}"] = ratios(by_server[f"pawhome_{variant}"],
                                                           by_server["fastapi"])
    out["feed"]["bare_ratio"] = {
        "pawhome / bare": ratios(runs["feed"]["pawhome"], runs["feed"]["bare"]),
        "fastapi / bare": ratios(runs["feed"]["fastapi"], runs["feed"]["bare"])}
    return out


# -- profiles ------------------------------------------------------------------------------------
def top_frames(raw: str, count: int = 15) -> list[dict]:
    """The functions with the most samples of their own (the last frame of each stack) in
    py-spy's raw output (collapsed stacks: "frame;frame;... samples" per line)."""
    own: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit() or stack.startswith("Thread._bootstrap "):
            continue  # a helper thread's (a thread pool waiting for work), not the loop's
        frame = stack.rsplit(";", 1)[-1]
        own[frame] = own.get(frame, 0) + int(samples)
        total += int(samples)
    ranked = sorted(own.items(), key=lambda item: -item[1])[:count]
    return [{"frame": frame, "percent": round(100 * n / max(1, total), 1)}
            for frame, n in ranked]


def profile(servers: dict[str, rt.Server], paths: dict[str, str], endpoints: list[str],
            tokens: list[str], seconds: float, cores) -> dict:
    """py-spy on each server while the load client drives each endpoint: a flame graph
    (bench/results/rest_floor_<endpoint>_<server>.svg) and the top functions by own
    samples (from a second, raw recording)."""
    spy = str(Path(PYTHON).with_name("py-spy"))
    gw.RESULTS.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    scratch = Path(tempfile.mkdtemp(prefix="bench-rest-floor-spy-"))
    try:
        for endpoint in endpoints:
            for label, server in servers.items():
                raw = scratch / f"{endpoint}_{label}.txt"
                for form, target in (("flamegraph",
                                      gw.RESULTS / f"rest_floor_{endpoint}_{label}.svg"),
                                     ("raw", raw)):
                    recorder = subprocess.Popen(
                        [spy, "record", "-p", str(server.pid), "-f", form, "-o", str(target),
                         "-d", str(round(seconds + 1)), "-r", "200"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        preexec_fn=gw.pinned(cores[1]))
                    figures = gw.load(server.url(paths[endpoint]), tokens, seconds, cores[1])
                    recorder.wait(seconds + 30)
                top = top_frames(raw.read_text())
                out.setdefault(endpoint, {})[label] = {"rps_while_sampled": figures["rps"],
                                                       "top_own": top}
                print(f"  profiled {endpoint} on {label}: "
                      + ", ".join(f"{f['frame']} {f['percent']}%" for f in top[:6]), flush=True)
                if os.environ.get("BENCH_PROFILE_KEEP"):
                    shutil.copy(raw, Path(os.environ["BENCH_PROFILE_KEEP"]) / raw.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


# -- report --------------------------------------------------------------------------------------
def write_markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# REST at the framework's floor (issue 15 §3)",
        "",
        f"Run {r['when']}{' (quick)' if r['quick'] else ''}, {r['duration_seconds']:.0f} s, on "
        f"{m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}; servers on core "
        f"{m['server_core']} one at a time, load client `{r['config']['driver']}` on core "
        f"{m['client_core']}, {r['config']['connections']} keep-alive connections, every "
        f"request with one of {r['config']['users']} buyers' tokens; {r['config']['rounds']} "
        f"interleaved rounds of {r['config']['list_seconds']:g} s (after "
        f"{r['config']['list_warmup']:g} s warm-up) per case, medians. Load average "
        f"{' '.join(r['loadavg']['start'])} at the start, {' '.join(r['loadavg']['end'])} at "
        f"the end (`uptime`: other sessions share this machine).",
        f"Versions: {', '.join(f'{k} {v}' for k, v in r['versions'].items())}.",
        "",
        "| endpoint | server | req/s | p50 ms | p99 ms | server CPU ms/req | SQL/req | "
        "Redis cmds/req | load core % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint in ENDPOINTS:
        for label, f in r["results"][endpoint].items():
            if label.startswith("ratio") or label == "bare_ratio":
                continue
            lines.append(f"| {endpoint} | {label} | {f['rps']:.0f} | {f['p50_ms']:.2f} | "
                         f"{f['p99_ms']:.2f} | {f['server_cpu_ms_per_request']:.3f} | "
                         f"{f['sql_per_request']} | {f['redis_cmds_per_request']} | "
                         f"{f['load_core_busy_percent']:.0f} |"
                         + (f" non-2xx {f['non_2xx']}" if f["non_2xx"] else ""))
    lines += ["", "PAWHome / FastAPI (req/s above 1 is faster; p50, p99 and CPU per request "
              "below 1 are better; aim: req/s >= 0.9):", "",
              "| endpoint | req/s | per round | p50 | p99 | CPU/req |",
              "|---|---:|---|---:|---:|---:|"]
    for key, label in (("ratio", ""), ("ratio_uvloop", " (PAWHome on uvloop)"),
                       ("ratio_before", " (PAWHome before this change)")):
        for endpoint in ENDPOINTS:
            q = r["results"][endpoint].get(key)
            if q is not None:
                lines.append(f"| {endpoint}{label} | **{q['rps']:.2f}** | "
                             f"{' '.join(f'{x:.2f}' for x in q['rps_per_round'])} | "
                             f"{q['p50']:.2f} | {q['p99']:.2f} | {q['cpu_per_request']:.2f} |")
    bare = r["results"]["feed"]["bare_ratio"]
    lines += ["", "The cached feed page beside a bare Tornado handler (bench/bare_community.py "
              "`/bare/hot`: one redis-py GET of the same key, the same bytes in the envelope, "
              "no auth, log or metrics): "
              f"PAWHome / bare {bare['pawhome / bare']['rps']:.2f}, FastAPI / bare "
              f"{bare['fastapi / bare']['rps']:.2f} (req/s).", ""]
    lines += ["What each server does per request:", "",
              "- both: the same domain read function on the same Resources (SQLAlchemy async + "
              "aiomysql, redis.asyncio, the same cache keys and TTLs), the token's signature "
              "and expiry verified (pawhome.identity.tokens, verified once per token then "
              "remembered, in both), the three revocation marks read, the request counted in "
              "the same Prometheus counter and histogram, one JSON access-log line through "
              "the same batched writer (gateway/accesslog.py), a request id, the same "
              "envelope and codec;",
              "- PAWHome besides: a rate-limit window counted per request (lifted limits, still "
              "one Lua call) in the same admission call that reads the revocation marks and "
              "the page's cache keys; the user marked active for the day; the in-flight "
              "count for a graceful drain; the OpenAPI-declared query validation;",
              "- FastAPI: a `Depends` for the token (MGET of the marks), then the domain "
              "function reads its own keys (the feed: the page and the viewer's has-blocks "
              "flag, two GETs; a product: the generation and page, one MGET); a pure ASGI "
              "middleware for the request id, metrics and access log.", ""]
    for endpoint, by_server in r.get("profiles", {}).items():
        lines += [f"Profile of {endpoint} (py-spy, 200 Hz, under the same load; flame graphs "
                  + ", ".join(f"`rest_floor_{endpoint}_{label}.svg`" for label in by_server)
                  + "), functions by own samples:", "",
                  "| " + " | ".join(by_server) + " |", "|---" * len(by_server) + "|"]
        tops = [p["top_own"] for p in by_server.values()]
        for row in range(min(len(t) for t in tops)):
            lines.append("| " + " | ".join(f"{t[row]['percent']}% `{t[row]['frame']}`"
                                           for t in tops) + " |")
        lines.append("")
    lines += ["Data: " + ", ".join(f"{k} {v}" for k, v in r["data"].items()) + ".", ""]
    if r.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in r["notes"]] + [""]
    return "\n".join(lines)


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("tornado", "fastapi", "starlette", "uvicorn",
                                               "httptools", "uvloop", "SQLAlchemy", "aiomysql",
                                               "redis")}


def clean_redis() -> None:
    for prefix in (PREFIX, QUEUE_PREFIX, "_kombu.binding." + QUEUE_PREFIX):
        rt.clear_prefix(prefix + "*")


def prepared(scratch: Path) -> tuple[dict, object]:
    """The run's environment (files under `scratch`) and settings, the database created and
    migrated, the run's Redis keys gone."""
    files = {"MEDIA_ROOT": "media", "BENCH_LOG_FILE": "pawhome.log",
             "BENCH_BARE_SQL": "bare_sql.pickle"}
    env = {**ENV, **{name: str(scratch / file) for name, file in files.items()}}
    print(f"preparing database {DB_NAME} and Redis prefix {PREFIX}", flush=True)
    asyncio.run(rt.ensure_database(DB_NAME))
    from pawhome.platform import migrate as migrations

    migrations.upgrade(env["DATABASE_URL"])
    clean_redis()
    return env, bm.settings_for(env)


def main() -> None:
    args, config, started, cores = gw.start_run(__doc__ or "", FULL, QUICK)
    server_core = cores[0]
    loadavg_start = Path("/proc/loadavg").read_text().split()[:3]
    scratch = Path(tempfile.mkdtemp(prefix="bench-rest-floor-"))
    env, settings = prepared(scratch)
    servers: list[rt.Server] = []

    def start(label: str, script: str, server_env: dict) -> rt.Server:
        server = rt.Server(label, [PYTHON, str(HERE / script)], server_env, server_core)
        servers.append(server)
        return server

    try:
        asyncio.run(bm.empty_run_tables(settings, bk.RUN_TABLES))
        catalogue = asyncio.run(bm.seed_catalogue(settings, config["products"]))
        buyers = catalogue["buyers"]
        posts = asyncio.run(cm.seed(settings, buyers, config["posts"]))
        folks = asyncio.run(bk.people(settings, 12))
        tokens = bm.mint_tokens(env, [(b, "user") for b in buyers + folks["users"]])
        merchant = folks["merchant"]
        merchant_token = bm.mint_tokens(env, [(merchant, "merchant")])[merchant]
        print(f"seeded: {catalogue['products']} products, {posts['seeded_total']} posts",
              flush=True)

        pawhome = start("pawhome", "rest_floor_gateway.py", env)
        fastapi = start("fastapi", "fastapi_reads.py", {**env, "BENCH_LOG_FILE": str(
            scratch / "fastapi.log")})
        on_uvloop = start("pawhome_uvloop", "rest_floor_gateway.py", {
            **env, "USE_UVLOOP": "1", "BENCH_LOG_FILE": str(scratch / "pawhome_uvloop.log")})
        measured = {"pawhome": pawhome, "fastapi": fastapi, "pawhome_uvloop": on_uvloop}
        before = os.environ.get("BENCH_COMPARE_ROOT")
        if before:  # another checkout's gateway (the tree before a change), measured alike
            measured["pawhome_before"] = start(
                "pawhome_before", str(Path(before) / "bench" / "rest_floor_gateway.py"),
                {**env, "PYTHONPATH": before, "BENCH_LOG_FILE": str(
                    scratch / "pawhome_before.log")})
        from pawhome.booking import slots as slot_days

        day = slot_days.local_day(dt.datetime.now(dt.UTC).replace(tzinfo=None)) + \
            dt.timedelta(days=1)
        shop = bk.set_up(pawhome, merchant_token, day, folks["users"], tokens, folks["pets"])
        orders = place_orders(pawhome, settings, buyers, tokens, cores)
        print(f"orders: {orders}; the shop: service {shop['service']['id']}, "
              f"{shop['booked']} appointments on {day}", flush=True)
        best = growth.api(pawhome, "GET", "/v1/products", tokens[buyers[0]])["items"][0]["id"]
        paths = {"feed": "/v1/posts?sort=hot", "products": "/v1/products",
                 "product": f"/v1/products/{best}",
                 "slots": f"/v1/services/{shop['service']['id']}/slots?date={day.isoformat()}",
                 "my_orders": "/v1/orders"}
        checks = same_answers({"pawhome": pawhome, "fastapi": fastapi}, paths,
                              tokens[buyers[0]])
        Path(env["BENCH_BARE_SQL"]).write_bytes(pickle.dumps({"latest": []}))
        bare = start("bare", "bare_community.py", {**env, "BENCH_HOT_KEY": hot_page_key(
            settings)})
        checks["feed"]["bare_bytes"] = cm.check_same_hot_bytes(pawhome, bare, tokens[buyers[0]])
        quiet = rt.wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT",
                                                       "5" if args.quick else "30")))
        results = measure(measured, paths, bare,
                          [tokens[b] for b in buyers], config, cores) if config["rounds"] else {}
        wanted = [e for e in os.environ.get("BENCH_PROFILE", "").split(",") if e in paths]
        profiles = profile({"pawhome": pawhome, "fastapi": fastapi}, paths, wanted, [tokens[b] for b in buyers], float(
            os.environ.get("BENCH_PROFILE_SECONDS", "10")), cores) if wanted else {}
        access_log = {label: bm.log_lines(scratch / f"{label}.log") for label in measured}
    finally:
        bm.wind_up(servers, clean_redis, scratch)

    result = {
        **bm.run_header(args.quick, started, cores, quiet),
        "loadavg": {"start": loadavg_start,
                    "end": Path("/proc/loadavg").read_text().split()[:3]},
        "versions": versions(),
        "config": {**config, "connections": gw.CONNECTIONS, "users": len(buyers),
                   "driver": "wrk" if shutil.which("wrk") else "bench/load_driver.py"},
        "paths": paths, "checks": checks, "access_log": access_log,
        "data": {"products": catalogue["products"], "posts": posts["seeded_total"],
                 "orders": orders["orders"], "buyers": len(buyers),
                 "groomers": len(shop["staff"]), "appointments": shop["booked"],
                 "day": day.isoformat()},
        "results": results, "profiles": profiles,
    }
    if not results:  # BENCH_ROUNDS=0: profiles only
        print(json.dumps(profiles, indent=1))
        return
    gw.finish_run("rest_floor", result, write_markdown(result), args.quick, started)


if __name__ == "__main__":
    main()
