"""Leaderboard benchmark (issue 13 §5): a page of the pet board with my rank and the entries
around me, 100,000 ranked users, through the real gateway beside a bare Tornado handler doing
the same storage work in the same run.

    python bench/bench_leaderboard.py            (about 2 minutes; writes bench/results/leaderboard.*)
    python bench/bench_leaderboard.py --quick    (a smoke run; prints, writes nothing)

Database `pawhome_bench_lb` (created and migrated here; 100,000 users with one virtual pet each
seeded directly once and reused), Redis prefix `pawhome_bench_lb:`. Then:

1. rebuild: `leaderboards.rebuild(resources, "pet_level")` in-process (the beat job's work:
   read every pet, pick each user's best, write a staging sorted set, RENAME) timed a few
   times, and the board's size checked (every user ranked);
2. page + my rank: GET /v1/leaderboards/pet_level?limit=20 on the gateway (bench/mall_gateway.py
   = run_gateway.py with this route's rate limits lifted) with 64 tokens of users spread over
   the ranks, beside bench/bare_leaderboard.py's GET /bare/leaderboard?limit=20 (the token
   check, ZCARD + ZREVRANGE + ZREVRANK pipelined, the ZREVRANGE around me, one SELECT of the
   users and one of their pets, JSON), alternating for `rounds` rounds; servers on core 0,
   wrk (or load_driver.py) on core 1. The two replies' my_rank are checked to agree.

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py), BENCH_QUIET_WAIT
(seconds to wait at most for the machine to be below 25 % busy first; 30, quick 5).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_community as cm  # noqa: E402 - load cases alternated, summaries, ratios
import bench_gateway as gw  # noqa: E402 - cores, load driver, results
import bench_realtime as rt  # noqa: E402 - servers, quiet wait, machine

ROOT = gw.ROOT
PYTHON = sys.executable
DB_NAME = "pawhome_bench_lb"
PREFIX = "pawhome_bench_lb:"
OPENID_PREFIX = "lbbench-"
ENV = {**gw.ENV, "DATABASE_URL": f"{gw.MYSQL}{DB_NAME}?charset=utf8mb4",
       "REDIS_PREFIX": PREFIX, "TASK_QUEUE_PREFIX": "bench_lb."}
PAGE = "/v1/leaderboards/pet_level?limit=20"
BARE_PAGE = "/bare/leaderboard?limit=20"
FULL = {"users": 100_000, "viewers": 64, "rebuilds": 3, "rounds": 3, "seconds": 8,
        "warmup": 2}
QUICK = {"users": 100_000, "viewers": 64, "rebuilds": 1, "rounds": 1, "seconds": 3,
         "warmup": 1}
BATCH = 5000


def in_process_env() -> None:
    os.environ.update({k: ENV[k] for k in ("MODE", "DATABASE_URL", "REDIS_URL",
                                           "REDIS_PREFIX", "JWT_SECRET", "LOG_LEVEL")})


async def seed(resources, count: int) -> list[int]:
    """`count` users with one adopted pet each (levels and experience spread like a live game,
    many ties), inserted in bulk once; returns the user ids."""
    from sqlalchemy import func, insert, select

    from models.users import User
    from models.virtual_pets import VirtualPet

    rng = random.Random(13)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    async with resources.db.session(timeout=0) as session, session.begin():
        have = (await session.execute(select(func.count()).select_from(User).where(
            User.openid.like(f"{OPENID_PREFIX}%")))).scalar_one()
        if have < count:
            openids = [f"{OPENID_PREFIX}{n:06d}" for n in range(count)]
            for start in range(0, count, BATCH):
                await session.execute(insert(User).prefix_with("IGNORE"), [
                    {"openid": o, "nickname": f"玩家{o[-6:]}", "status": "active",
                     "role": "user"} for o in openids[start:start + BATCH]])
        ids = list((await session.execute(select(User.id).where(
            User.openid.like(f"{OPENID_PREFIX}%")).order_by(User.id))).scalars())
        with_pets = set((await session.execute(select(VirtualPet.owner_id))).scalars())
        missing = [u for u in ids if u not in with_pets]
        for start in range(0, len(missing), BATCH):
            rows = []
            for owner in missing[start:start + BATCH]:
                exp = int(rng.paretovariate(1.2) * 100) // 10 * 10  # ties on round numbers
                rows.append({
                    "owner_id": owner, "generation_id": owner, "name": "团子", "species": "cat",
                    "params": {}, "personality": "calm", "mood": 80_000, "fullness": 80_000,
                    "cleanliness": 80_000, "affection": 20_000, "status_at": now,
                    "level": min(99, 1 + int((exp / 100) ** 0.5)), "exp": exp,
                    "exp_reached_at": now - dt.timedelta(minutes=rng.randrange(60 * 24 * 60)),
                    "skills": [], "cooldowns": {}, "created_at": now, "updated_at": now})
            await session.execute(insert(VirtualPet), rows)
    return ids


async def prepare(config: dict) -> dict:
    """Seed, rebuild the board (timed) and mint the viewers' tokens."""
    from pawhome import domains  # noqa: F401 - every hook connected
    from pawhome.identity.tokens import issue_access_token
    from pawhome.platform import migrate as migrations
    from pawhome.platform.resources import Resources
    from pawhome.virtualpet import leaderboards
    from settings import Settings

    await rt.ensure_database(DB_NAME)
    await asyncio.to_thread(migrations.upgrade, ENV["DATABASE_URL"])
    settings = Settings()
    resources = Resources(settings)
    try:
        started = time.perf_counter()
        ids = await seed(resources, config["users"])
        seeded_s = time.perf_counter() - started
        timings = []
        for _ in range(config["rebuilds"]):
            started = time.perf_counter()
            counts = await leaderboards.rebuild(resources, "pet_level")
            timings.append(time.perf_counter() - started)
        key = leaderboards.board_key(resources.cache, "pet_level", "all",
                                     dt.datetime.now(dt.UTC).replace(tzinfo=None))
        ranked = await resources.cache.redis.zcard(key)
        viewers = random.Random(7).sample(ids, config["viewers"])
        tokens = [issue_access_token(settings, uid, "user", uuid.uuid4().hex)[0]
                  for uid in viewers]
        return {"users": len(ids), "ranked": ranked, "seed_seconds": round(seeded_s, 1),
                "rebuild_entries": counts, "rebuild_seconds": [round(t, 2) for t in timings],
                "rebuild_median_s": round(statistics.median(timings), 2), "tokens": tokens}
    finally:
        await resources.close()


def same_rank(gateway: rt.Server, bare: rt.Server, token: str) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    ours = httpx.get(gateway.url(PAGE), headers=headers, timeout=10).json()["data"]
    floor = httpx.get(bare.url(BARE_PAGE), headers=headers, timeout=10).json()["data"]
    assert ours["my_rank"] == floor["my_rank"] and ours["total"] == floor["total"], \
        (ours["my_rank"], floor["my_rank"])
    return {"my_rank": ours["my_rank"], "total": ours["total"],
            "around": [i["rank"] for i in ours["around"]]}


def markdown(r: dict) -> str:
    g, b, ratio = r["load"]["gateway"], r["load"]["bare"], r["ratio"]
    p = r["prepare"]
    return "\n".join([
        "# Leaderboard benchmark",
        "",
        f"Run {r['at']} on {r['machine']['cpus']} CPUs ({r['machine']['cpu_model']}), "
        f"load {' '.join(r['machine']['loadavg_at_start'])} at start; written by "
        "`bench/bench_leaderboard.py`. The machine is shared with other work: compare the "
        "ratios of one run, not absolute figures across runs. The machine was "
        f"{r['busy_before_percent'][-1]} % busy just before the run and "
        f"{g['machine_busy_percent']} % during the gateway's rounds.",
        "",
        f"**{p['ranked']:,} ranked users** (one pet each, seeded directly into MariaDB, "
        "levels and experience long-tailed with many ties).",
        "",
        "## Rebuild from the database",
        "",
        f"`leaderboards.rebuild(resources, \"pet_level\")`: {p['rebuild_entries']} entries "
        f"(all-time, this week); {p['rebuild_seconds']} s per run, median "
        f"{p['rebuild_median_s']} s (read every pet, each user's best, ZADD into a staging key "
        "in batches of 5,000, RENAME).",
        "",
        "## Page + my rank (64 connections, 64 users spread over the ranks)",
        "",
        "| case | req/s | p50 ms | p99 ms | SQL/req | Redis cmds/req | server CPU % |",
        "|---|---|---|---|---|---|---|",
        *(f"| {label} {path} | {c['rps']} | {c['p50_ms']} | {c['p99_ms']} | "
          f"{c['sql_per_request']} | {c['redis_cmds_per_request']} | {c['server_cpu_percent']} |"
          for label, path, c in (("gateway", f"`GET {PAGE}`", g),
                                 ("bare", f"`GET {BARE_PAGE}`", b))),
        "",
        f"Gateway / bare: throughput {ratio['rps']}, p50 {ratio['p50']}, p99 {ratio['p99']} "
        f"(mean of {r['config']['rounds']} alternating rounds of {r['config']['seconds']} s).",
        "",
        "The gateway's reply: 20 items with user and best pet, `my_rank`, `me` and the 5 "
        "entries around me, the envelope; its work: the admission call (rate limits and token "
        "marks in one Lua script), the query model, a pipelined ZCARD + ZREVRANGE + ZREVRANK, "
        "the ZREVRANGE around me, one session with the users and pets SELECTs, rendering. The "
        "bare handler does the same Redis and SQL work without the gateway's plumbing "
        "(bench/bare_leaderboard.py).",
        "",
        f"Checked: for a viewer, the gateway and the bare handler agree on my_rank and total "
        f"({r['check']}).",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    began = time.monotonic()
    in_process_env()
    server_core, client_core = gw.cores()
    quiet = rt.wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT",
                                                   "5" if args.quick else "30")))
    prepared = asyncio.run(prepare(config))
    tokens = prepared.pop("tokens")
    print(f"seeded {prepared['users']} users; rebuilds {prepared['rebuild_seconds']} s; "
          f"{prepared['ranked']} ranked", flush=True)
    gateway = rt.Server("gateway", [PYTHON, str(HERE / "mall_gateway.py")], ENV, server_core)
    bare = rt.Server("bare", [PYTHON, str(HERE / "bare_leaderboard.py")], ENV, server_core)
    try:
        check = same_rank(gateway, bare, tokens[0])
        load = cm.compare([("gateway", gateway, PAGE), ("bare", bare, BARE_PAGE)], tokens,
                          config, (server_core, client_core))
    finally:
        rt.stopped(gateway, bare)
    for case in load.values():
        case.pop("rounds", None)
    result = {"at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": rt.machine_info(server_core, client_core),
              "busy_before_percent": quiet, "config": config, "prepare": prepared,
              "check": check, "load": load, "ratio": cm.ratio(load["gateway"], load["bare"])}
    text = markdown(result)
    print(text)
    if not args.quick:
        gw.save_results("leaderboard", result, text, began)


if __name__ == "__main__":
    main()
