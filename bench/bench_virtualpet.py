"""Virtual pet care benchmark (issue 13 §5): the pet detail and interaction throughput through
the real gateway, each beside a bare Tornado handler doing the storage floor in the same run.

    python bench/bench_virtualpet.py            (about 2 minutes; writes bench/results/virtualpet.*)
    python bench/bench_virtualpet.py --quick    (a smoke run; prints, writes nothing)

It reuses bench_mall.py's database (`pawhome_bench_mall`, migrated here), Redis prefix,
gateway wrapper (bench/mall_gateway.py, which lifts the pet detail's rate limit: the load
comes from one IP and one owner) and pinning: servers on core 0, load clients on core 1.
The bare server is bench/bare_virtualpet.py. Cooldowns are off (VPET_COOLDOWN_*_SECONDS=0)
and the pet detail cache kept for the whole phase (VPET_DETAIL_CACHE_SECONDS=3600).

1. detail: GET /v1/virtual-pets/{id} by its owner, the stored row from the Redis cache (filled
   by the first request) and the statuses decayed for every request, 64 connections; beside
   the bare MGET of the same two keys (generation and row) with the bytes in the envelope;
2. interactions: `owners` owners with `pets_each` pets each (rows written directly, a food
   stock in each owner's inventory), one connection per owner, each sending feeding,
   petting, cleaning and training to each of its pets (cooldowns off, the statuses reset
   before every case so nothing is refused), every POST with an Idempotency-Key; beside the
   bare POST doing the same rows in one transaction and the same cache drop. Checked after:
   every pet took exactly its interactions (exp, log rows), the foods used match.

Environment: as bench_mall.py (BENCH_MYSQL_URL, BENCH_REDIS_URL, BENCH_QUIET_WAIT).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_community as cm  # noqa: E402 - summaries, ratios
import bench_gateway as gw  # noqa: E402 - cores, results
import bench_growth as bg  # noqa: E402 - the POST case runner
import bench_mall as bm  # noqa: E402 - database, servers, GET runner, POST driver
import bench_realtime as rt  # noqa: E402 - servers, quiet wait, machine

FULL = {"owners": 50, "pets_each": 10, "interaction_rounds": 3, "list_seconds": 4.0,
        "list_warmup": 1.0, "detail_rounds": 2}
QUICK = {**FULL, "owners": 10, "pets_each": 4, "interaction_rounds": 1, "list_seconds": 1.0,
         "list_warmup": 0.5, "detail_rounds": 1}
KINDS = ("feeding", "petting", "cleaning", "training")
EXP = {"feeding": 5, "petting": 2, "cleaning": 3, "training": 15}
OWNER_PREFIX = "vpetbench-owner-"
ENV = {**bm.ENV, "VPET_DETAIL_CACHE_SECONDS": "3600",
       **{f"VPET_COOLDOWN_{kind.upper()}_SECONDS": "0"
          for kind in ("feeding", "petting", "playing", "cleaning", "training")}}


# -- set-up --------------------------------------------------------------------------------------
async def seed(settings, config: dict) -> dict:
    """The owners (reused), their pets (new every run) and a food stock each."""
    from sqlalchemy import insert, select

    from models.base import utcnow
    from models.points import InventoryItem
    from models.virtual_pets import VirtualPet
    from pawhome.platform.db import Database
    from pawhome.virtualpet import care

    db = Database(settings)
    tag = uuid.uuid4().int % 10**9 * 10**6
    try:
        async with db.session() as session, session.begin():
            owners = await bm.users(session, OWNER_PREFIX, config["owners"], "user")
            now = utcnow()
            await session.execute(insert(VirtualPet), [
                {"owner_id": owner, "generation_id": tag + n * 1000 + k, "name": f"团子{k}",
                 "species": "cat", "params": {}, "personality": "calm",
                 **care.initial_statuses("calm"), "status_at": now, "level": 1, "exp": 0,
                 "exp_reached_at": now, "skills": [], "cooldowns": {}}
                for n, owner in enumerate(owners) for k in range(config["pets_each"])])
            pets = {owner: list((await session.execute(
                select(VirtualPet.id).where(VirtualPet.owner_id == owner,
                                            VirtualPet.generation_id >= tag)
                .order_by(VirtualPet.id))).scalars()) for owner in owners}
            food = 900_000_000 + tag // 10**6
            await session.execute(insert(InventoryItem), [
                {"user_id": owner, "sku_id": food, "product_id": food,
                 "kind": "virtual_pet_food", "name": "bench food", "quantity": 1_000_000,
                 "updated_at": now} for owner in owners])
    finally:
        await db.close()
    return {"owners": owners, "pets": pets, "food": food}


async def reset_pets(settings, pet_ids: list[int]) -> None:
    """Statuses where every planned interaction is accepted (hungry, dirty), experience 0."""
    from sqlalchemy import update

    from models.base import utcnow
    from models.virtual_pets import VirtualPet
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session, session.begin():
            await session.execute(update(VirtualPet).where(VirtualPet.id.in_(pet_ids)).values(
                mood=50_000, fullness=20_000, cleanliness=20_000, affection=20_000,
                status_at=utcnow(), exp=0, level=1, skills=[], cooldowns={}))
    finally:
        await db.close()


async def check_interactions(settings, seeded: dict, since: int, rounds_done: int) -> dict:
    """Every pet took exactly its interactions: exp and log rows; the foods used match."""
    from sqlalchemy import func, select

    from models.points import InventoryItem
    from models.virtual_pets import PetInteraction, VirtualPet
    from pawhome.platform.db import Database

    pet_ids = [p for pets in seeded["pets"].values() for p in pets]
    db = Database(settings)
    try:
        async with db.session() as session:
            exps = dict((await session.execute(select(VirtualPet.id, VirtualPet.exp).where(
                VirtualPet.id.in_(pet_ids)))).all())
            logged = dict((await session.execute(
                select(PetInteraction.pet_id, func.count()).where(
                    PetInteraction.pet_id.in_(pet_ids), PetInteraction.id > since)
                .group_by(PetInteraction.pet_id))).all())
            held = sum((await session.execute(select(InventoryItem.quantity).where(
                InventoryItem.sku_id == seeded["food"]))).scalars())
    finally:
        await db.close()
    expected_exp = sum(EXP.values())
    wrong_exp = sum(1 for p in pet_ids if exps.get(p) != expected_exp)
    wrong_log = sum(1 for p in pet_ids if logged.get(p, 0) != len(KINDS))
    used = len(seeded["owners"]) * 1_000_000 - held
    expected_used = len(pet_ids) * rounds_done
    return {"pets": len(pet_ids), "wrong_exp": wrong_exp, "wrong_log_rows": wrong_log,
            "foods_used": used, "foods_expected": expected_used,
            "ok": wrong_exp == 0 and wrong_log == 0 and used == expected_used}


async def last_interaction_id(settings) -> int:
    from sqlalchemy import func, select

    from models.virtual_pets import PetInteraction
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session:
            return int((await session.execute(select(func.coalesce(
                func.max(PetInteraction.id), 0)))).scalar_one())
    finally:
        await db.close()


def interaction_streams(path_of, seeded: dict, tokens: dict, tag: str) -> list[list[dict]]:
    """One stream per owner: each kind to each of its pets (kinds outer, so one pet's
    interactions are spread over the stream)."""
    streams = []
    for owner in seeded["owners"]:
        requests = []
        for kind in KINDS:
            for pet_id in seeded["pets"][owner]:
                body = {"type": kind, **({"item_id": seeded["food"]} if kind == "feeding"
                                         else {})}
                requests.append({"method": "POST", "path": path_of(pet_id), "headers": {
                    **bm.auth(tokens[owner]), "Content-Type": "application/json",
                    "Idempotency-Key": f"{tag}-{pet_id}-{kind}"}, "body": json.dumps(body)})
        streams.append(requests)
    return streams


# -- the phases ----------------------------------------------------------------------------------
def detail_phase(gateway: rt.Server, bare: rt.Server, pet_id: int, token: str, config: dict,
                 cores) -> dict:
    runs: dict[str, list] = {"gateway": [], "bare": []}
    for round_no in range(config["detail_rounds"]):
        for label, server, path, who in (
                ("gateway", gateway, f"/v1/virtual-pets/{pet_id}", [token]),
                ("bare", bare, "/bare/products/cached/pet", [])):
            figures = bm.run_list_case(server, path, config, cores, who)
            runs[label].append(figures)
            print(f"  round {round_no + 1} detail {label:7} {figures['rps']:>8.1f} req/s  p50 "
                  f"{figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms  SQL/req "
                  f"{figures['sql_per_request']}  Redis/req {figures['redis_cmds_per_request']}"
                  + (f"  non-2xx {figures['non_2xx']}" if figures["non_2xx"] else ""),
                  flush=True)
    out = {label: cm.summarise(figures) for label, figures in runs.items()}
    out["ratio"] = cm.ratio(out["gateway"], out["bare"])
    return out


def interaction_phase(gateway: rt.Server, bare: rt.Server, seeded: dict, tokens: dict,
                      config: dict, cores, settings) -> dict:
    pet_ids = [p for pets in seeded["pets"].values() for p in pets]
    runs: dict[str, list] = {"gateway": [], "bare": []}
    done = 0
    for round_no in range(config["interaction_rounds"]):
        for label, server, path_of in (
                ("gateway", gateway, lambda p: f"/v1/virtual-pets/{p}/interactions"),
                ("bare", bare, lambda p: f"/bare/pets/{p}/interactions")):
            asyncio.run(reset_pets(settings, pet_ids))
            since = asyncio.run(last_interaction_id(settings))
            rt.clear_prefix(bm.PREFIX + "rl:*")
            tag = f"vpet-{label}-{uuid.uuid4().hex[:8]}"
            figures = bg.posts_case(server, interaction_streams(path_of, seeded, tokens, tag),
                                    cores, created=200)
            done += 1
            figures["check"] = asyncio.run(check_interactions(settings, seeded, since, done))
            bg.show(f"round {round_no + 1} interactions {label}", figures, "interactions/s")
            for failure in figures["failures"][:2]:
                print(f"    e.g. {str(failure)[:400]}", flush=True)
            print(f"    check {'ok' if figures['check']['ok'] else 'FAILED'} "
                  f"{figures['check']}", flush=True)
            runs[label].append(figures)
    out: dict = {}
    for label, cases in runs.items():
        out[label] = {"ok_per_second": bg.mean(cases, "ok_per_second"),
                      "p50_ms": bg.mean(cases, "latency", "p50_ms"),
                      "p99_ms": bg.mean(cases, "latency", "p99_ms"),
                      "sql_per_request": bg.mean(cases, "sql_per_request"),
                      "redis_cmds_per_request": bg.mean(cases, "redis_cmds_per_request"),
                      "server_cpu_percent": bg.mean(cases, "server_cpu_percent"),
                      "all_checks_ok": all(c["check"]["ok"] for c in cases), "rounds": cases}
    out["ratio"] = {"throughput": round(out["gateway"]["ok_per_second"]
                                        / out["bare"]["ok_per_second"], 3),
                    "p50": round(out["gateway"]["p50_ms"] / out["bare"]["p50_ms"], 3),
                    "p99": round(out["gateway"]["p99_ms"] / out["bare"]["p99_ms"], 3)}
    return out


# -- the report ----------------------------------------------------------------------------------
def write_markdown(r: dict) -> str:
    d, i, m = r["detail"], r["interactions"], r["machine"]
    c = r["config"]
    lines = [
        "# Virtual pet benchmark",
        "",
        f"Run {r['when']} ({r['duration_seconds']} s) on {m['cpus']} CPU(s) ({m.get('model', '')})"
        f", servers on core {m['server_core']}, load on core {m['client_core']}; machine "
        f"{m['busy_percent_before_start']} % busy before the start. Produced by "
        "`python bench/bench_virtualpet.py`.",
        "",
        "## GET /v1/virtual-pets/{id} (cached row, decayed per request)",
        "",
        f"64 connections, {c['list_seconds']:g} s per case after {c['list_warmup']:g} s warm-up, "
        f"{c['detail_rounds']} rounds alternating; the owner's token.",
        "",
        "| server | req/s | p50 ms | p99 ms | SQL/req | Redis/req | server CPU % |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in ("gateway", "bare"):
        s = d[label]
        lines.append(f"| {label} | {s['rps']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
                     f"{s['sql_per_request']} | {s['redis_cmds_per_request']} | "
                     f"{s['server_cpu_percent']} |")
    lines += [
        "",
        f"Gateway / bare: throughput {d['ratio']['rps']}, p50 {d['ratio']['p50']}, p99 "
        f"{d['ratio']['p99']}. The bare handler is one MGET and the cached bytes in the "
        "envelope; the gateway adds the token check, rate limits and access log, the JSON "
        "decode of the row, the decay and cooldowns computed for now, the view encoded.",
        "",
        "## POST /v1/virtual-pets/{id}/interactions",
        "",
        f"{c['owners']} owners x {c['pets_each']} pets, one connection per owner, each kind "
        f"({', '.join(KINDS)}) once per pet per case (cooldowns off), Idempotency-Key on every "
        f"request; {c['interaction_rounds']} rounds alternating.",
        "",
        "| server | interactions/s | p50 ms | p99 ms | SQL/req | Redis/req | server CPU % | "
        "checks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label in ("gateway", "bare"):
        s = i[label]
        lines.append(f"| {label} | {s['ok_per_second']:.0f} | {s['p50_ms']} | {s['p99_ms']} | "
                     f"{s['sql_per_request']} | {s['redis_cmds_per_request']} | "
                     f"{s['server_cpu_percent']} | {'ok' if s['all_checks_ok'] else 'FAILED'} |")
    lines += [
        "",
        f"Gateway / bare: throughput {i['ratio']['throughput']}, p50 {i['ratio']['p50']}, p99 "
        f"{i['ratio']['p99']}. The bare POST writes the same rows (pet locked, interaction, "
        "pet update, the food's inventory row and movement) in one transaction and drops the "
        "cached row; the gateway adds the idempotency record, the ORM, the decay, refusals and "
        "cooldown checks, the trainings count, the view with its images and the owner's "
        "nickname. Checks: every pet's experience and log rows, the foods used.",
        "",
        "Reading the figures: SQL/req and Redis/req are the servers' global counters over the "
        "case, so other sessions' traffic on a shared machine shows in them (the bare GET "
        "issues one MGET, not three commands). When the machine was busy before the start "
        "(the figures above), the absolute rates are low and the ratios are what to compare; "
        "at 50 connections the interaction latency is mostly queueing on the pet's row and "
        "the database.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    args, config, started, cores = gw.start_run(__doc__, FULL, QUICK)
    server_core, client_core = cores
    scratch = Path(tempfile.mkdtemp(prefix="bench-vpet-"))
    env = {**ENV, "MEDIA_ROOT": str(scratch / "media"),
           "BENCH_LOG_FILE": str(scratch / "gateway.log"),
           "BENCH_BARE_SPEC": str(scratch / "bare_spec.pickle")}
    settings = bm.settings_for(env)
    print(f"preparing database {bm.DB_NAME} and Redis prefix {bm.PREFIX}", flush=True)
    asyncio.run(bm.ensure_database())
    bm.migrate()
    bm.clean_redis()
    servers: list[rt.Server] = []
    try:
        asyncio.run(bm.empty_run_tables(settings, ("idempotency_records", "outbox",
                                                   "notifications")))
        seeded = asyncio.run(seed(settings, config))
        tokens = bm.mint_tokens(env, [(o, "user") for o in seeded["owners"]])
        quiet = rt.wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT",
                                                       "5" if args.quick else "30")))
        from pawhome.platform.cache import Cache
        from pawhome.virtualpet import pets

        cache = Cache(settings)  # only key() is used: the names the gateway reads
        owner = seeded["owners"][0]
        pet_id = seeded["pets"][owner][0]
        gen_key, page_key = pets.generation_key(cache, pet_id), pets.detail_key(cache, pet_id)
        Path(env["BENCH_BARE_SPEC"]).write_bytes(pickle.dumps({
            "lists": {"pet": {"gen_key": gen_key, "page_key": page_key}},
            "pet_key": cache.key("vpet", "pet", "{}"),
            "food": {o: seeded["food"] for o in seeded["owners"]}}))
        bare = rt.Server("bare", [bm.PYTHON, str(HERE / "bare_virtualpet.py")], env,
                         server_core)
        servers.append(bare)
        gateway = bm.gateway("gateway", env, server_core)
        servers.append(gateway)

        print("pet detail:", flush=True)
        bg.api(gateway, "GET", f"/v1/virtual-pets/{pet_id}", tokens[owner])  # fills the row
        detail = detail_phase(gateway, bare, pet_id, tokens[owner], config, cores)
        print("interactions:", flush=True)
        interactions = interaction_phase(gateway, bare, seeded, tokens, config, cores,
                                         settings)
    finally:
        for server in servers:
            server.stop()
        bm.clean_redis()
        shutil.rmtree(scratch, ignore_errors=True)

    result = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "quick": args.quick,
        "duration_seconds": round(time.monotonic() - started, 1),
        "machine": {**rt.machine_info(server_core, client_core),
                    "busy_percent_before_start": quiet},
        "config": config, "detail": detail, "interactions": interactions,
    }
    gw.finish_run("virtualpet", result, write_markdown(result), args.quick, started)


if __name__ == "__main__":
    main()
