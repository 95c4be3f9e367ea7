"""Booking benchmark (issue 12 §5): the free slots of a provider-day, cached and uncached, and
holds + confirmations racing for few slots, each beside a bare Tornado handler doing the same
storage work in the same run.

    python bench/bench_booking.py            (about 5 minutes; writes bench/results/booking.*)
    python bench/bench_booking.py --quick    (a smoke run; prints, writes nothing)

Gateways (bench/booking_gateway.py = run_gateway.py with the per-IP rule of the slots, holds
and confirmation routes lifted, the JSON log to a file) and bench/bare_booking.py on core 0;
the load clients (bench/load_driver.py for GETs, bench/request_load.py for the POSTs) on
core 1; MariaDB and Redis unpinned. Database `pawhome_bench_booking` (created and migrated
here; the booking tables are emptied at the start of every run, the users kept), Redis prefixes
`pawhome_bench_bk:` / `pawhome_bench_bk_nc:`, queue prefix `bench_bk.` (deleted at the end).

Set-up, through the gateway's API as a merchant would: a grooming shop with 4 groomers
performing one service (45 minutes + a 15-minute clean-up buffer), hours 09:00-18:00 every
day; on the measured day a lunch break for everyone, a short break for one groomer, extra
evening hours for another, and 3 appointments per groomer (held and confirmed by users).

1. slots: GET /v1/services/{id}/slots?date=<that day>, 64 connections, anonymous.
   *Cached*: a gateway with BOOKING_SLOTS_CACHE_SECONDS=3600 (each groomer's day filled by
   the first request) beside /bare/slots/cached (one MGET of the same 8 keys, the same
   answer). *Uncached*: a gateway with BOOKING_SLOTS_CACHE_SECONDS=0 and a Redis prefix of its
   own: every request misses (the generations and values are read and never found) and
   computes every groomer's day from the database, and nothing is written back; beside
   /bare/slots/db (the same SQL reads and the pure pawhome.booking.slots computation). The
   four answers are checked equal first.
2. race: `users` users, each with a pet and a token, one connection each; in each of `waves`
   waves every user asks for one of `slots_per_wave` slots (so each slot is wanted by
   users / slots_per_wave users at once): POST /v1/appointments/holds for that groomer and
   start, and when it is granted at once POST /v1/appointments (Idempotency-Key) to confirm
   it. Beside POST /bare/book (one transaction: the hold row, the slot units under the unique
   key, the appointment row). Fresh days per case. Checked after each case: one appointment
   per contested slot and none elsewhere, no slot unit taken twice, every appointment owning
   all its units, no hold left unconfirmed, 201s = slots and 409s = the rest.

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py), BENCH_QUIET_WAIT
(seconds to wait at most for the machine to be below 25 % busy first; 30, quick 5).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_community as cm  # noqa: E402 - summaries, ratios
import bench_gateway as gw  # noqa: E402 - cores, results
import bench_growth as growth  # noqa: E402 - set-up calls through the API
import bench_mall as bm  # noqa: E402 - database, users, tokens, list runs, POST driver
import bench_realtime as rt  # noqa: E402 - servers, quiet wait, machine

PYTHON = sys.executable
DB_NAME = "pawhome_bench_booking"
PREFIX = "pawhome_bench_bk:"
UNCACHED_PREFIX = "pawhome_bench_bk_nc:"  # the uncached gateway's: no slot value ever found
QUEUE_PREFIX = "bench_bk."
USER_PREFIX = "bookbench-user-"
ENV = {**bm.ENV, "DATABASE_URL": f"{gw.MYSQL}{DB_NAME}?charset=utf8mb4",
       "REDIS_PREFIX": PREFIX, "TASK_QUEUE_PREFIX": QUEUE_PREFIX,
       "BOOKING_SLOTS_CACHE_SECONDS": "3600"}
# Emptied at the start of every run (the users stay).
RUN_TABLES = ("booking_providers", "booking_staff", "booking_services", "booking_staff_services",
              "booking_hours", "booking_overrides", "booking_breaks", "appointment_holds",
              "appointments", "appointment_events", "booking_slot_units",
              "booking_boarding_nights", "booking_reminders", "service_records", "pets",
              "outbox", "idempotency_records", "notifications")
SERVICE = {"name": "洗澡 + 吹干", "kind": "grooming", "duration_minutes": 45, "buffer_after": 15,
           "price": 8800, "min_notice_minutes": 60, "horizon_days": 90,
           "cancel_deadline_hours": 2}
OPEN_HOURS = range(9, 18)  # the race's starts: on the hour, 09:00 to 17:00
STAFF = 4
BOOKED = ("10:00", "14:15", "16:30")  # each groomer's appointments on the measured day

FULL = {"users": 100, "slots_per_wave": 10, "waves": 10, "race_rounds": 2,
        "list_seconds": 4.0, "list_warmup": 1.0, "list_rounds": 2}
QUICK = {**FULL, "waves": 3, "race_rounds": 1, "list_seconds": 1.0, "list_warmup": 0.5,
         "list_rounds": 1}


def at(day: dt.date, clock: str) -> str:
    hours, minutes = map(int, clock.split(":"))
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=dt.timezone(
        dt.timedelta(hours=8))).isoformat()


# -- data ----------------------------------------------------------------------------------------
async def people(settings, count: int) -> dict:
    """A merchant and `count` users (inserted once, reused), each user with a new pet."""
    from models.community import Pet
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session, session.begin():
            (merchant,) = await bm.users(session, "bookbench-merchant", 1, "merchant")
            users = await bm.users(session, USER_PREFIX, count, "user")
            pets = [Pet(owner_id=u, name=f"豆豆{n}", species="dog", weight_kg=8)
                    for n, u in enumerate(users)]
            session.add_all(pets)
            await session.flush()
            return {"merchant": merchant, "users": users,
                    "pets": {u: p.id for u, p in zip(users, pets, strict=True)}}
    finally:
        await db.close()


def set_up(server: rt.Server, merchant_token: str, day: dt.date, users: list[int],
           tokens: dict, pets: dict) -> dict:
    """The shop, its groomers, service and schedule, and the day's appointments, through the
    API."""
    provider = growth.api(server, "POST", "/v1/merchant/providers", merchant_token, {
        "name": "萌宠美容馆 (压测店)", "address": "深圳市福田区福华三路 88 号", "lat": 22.5405,
        "lng": 114.0552, "hours_text": "每天 09:00-18:00", "phone": "0755-8888 0001"})
    base = f"/v1/merchant/providers/{provider['id']}"
    service = growth.api(server, "POST", f"{base}/services", merchant_token, SERVICE)
    staff = [growth.api(server, "POST", f"{base}/staff", merchant_token, {
        "name": f"美容师{n}", "title": "高级美容师", "service_ids": [service["id"]]})["id"]
        for n in range(STAFF)]
    week = [{"weekday": d, "start": "09:00", "end": "18:00"} for d in range(7)]
    for staff_id in staff:
        growth.api(server, "PUT", f"{base}/hours", merchant_token,
                   {"staff_id": staff_id, "windows": week})
    growth.api(server, "POST", f"{base}/breaks", merchant_token,
               {"staff_id": None, "day": day.isoformat(), "start": "12:00", "end": "13:00"})
    growth.api(server, "POST", f"{base}/breaks", merchant_token,
               {"staff_id": staff[1], "day": day.isoformat(), "start": "11:00", "end": "11:30"})
    growth.api(server, "POST", f"{base}/overrides", merchant_token,
               {"staff_id": staff[0], "day": day.isoformat(), "kind": "extra",
                "start": "18:00", "end": "20:00"})
    booked = 0
    for n, staff_id in enumerate(staff):
        for clock in BOOKED:
            user = users[booked]
            hh, mm = map(int, clock.split(":"))
            minutes = hh * 60 + mm + 15 * n
            hold = growth.api(server, "POST", "/v1/appointments/holds", tokens[user], {
                "service_id": service["id"], "pet_id": pets[user], "staff_id": staff_id,
                "start": at(day, f"{minutes // 60:02d}:{minutes % 60:02d}")})
            growth.api(server, "POST", "/v1/appointments", tokens[user],
                       {"hold_id": hold["id"]}, uuid.uuid4().hex)
            booked += 1
    return {"provider": provider, "service": service, "staff": staff, "booked": booked}


def bare_spec(settings, setup: dict, day: dt.date, names: dict[int, str]) -> dict:
    """What bare_booking.py needs: the service, its groomers, the day and the cache keys the
    cached gateway reads."""
    from pawhome.booking import booking_cache
    from pawhome.platform.cache import Cache

    cache = Cache(settings)  # only key() is used: the names the gateway reads
    service = setup["service"]
    keys = [(booking_cache.slots_generation_key(cache, f"s{s}"),
             booking_cache.slots_key(cache, f"s{s}", service["id"], day)) for s in setup["staff"]]
    return {"service": {**{k: service[k] for k in (
        "id", "kind", "duration_minutes", "buffer_before", "buffer_after", "min_notice_minutes",
        "horizon_days", "price", "cancel_deadline_hours")},
        "provider_id": setup["provider"]["id"], "owner_id": setup["merchant"]},
        "staff": [(s, names[s]) for s in setup["staff"]], "day": day, "keys": keys}


# -- 1. slots ----------------------------------------------------------------------------------
def check_slots(servers: dict[str, tuple[rt.Server, str]]) -> dict:
    """The four answers are the same day (the gateway's cached and uncached, the bare's)."""
    import httpx

    answers = {}
    for label, (server, path) in servers.items():
        reply = httpx.get(server.url(path), timeout=30)
        reply.raise_for_status()
        answers[label] = reply.json()["data"]
    first = answers["gateway cached"]
    for label, data in answers.items():
        if data != first:
            raise RuntimeError(f"{label} answers differently:\n{data}\n{first}")
    day = first["days"][0]
    return {"staff": len(day["staff"]), "starts_any": len(day["any"]),
            "starts_per_staff": [len(s["starts"]) for s in day["staff"]]}


def slots_phase(cases: list[tuple[str, str, rt.Server, str]], config: dict, cores) -> dict:
    """Every case alternately, `list_rounds` times (bench_community.compare); means over
    rounds, and gateway / bare per cache mode."""
    runs = cm.compare([(f"{cache} {label}", server, path) for cache, label, server, path in cases],
                      [], {"rounds": config["list_rounds"], "seconds": config["list_seconds"],
                           "warmup": config["list_warmup"]}, cores)
    out: dict = {}
    for cache, label, _, _ in cases:
        figures = runs[f"{cache} {label}"]
        # What a request cost the server's CPU: robust when other work starves the server.
        figures["server_cpu_ms_per_request"] = round(
            figures["server_cpu_percent"] * 10 / max(figures["rps"], 0.1), 2)
        out.setdefault(cache, {})[label] = figures
    for cache, versus in (("cached", "bare"), ("uncached", "bare"), ("cached", "bare reads")):
        pair = out[cache]
        pair["ratio" if versus == "bare" else "ratio_same_reads"] = {
            **cm.ratio(pair["gateway"], pair[versus]),
            "server_cpu_per_request": round(pair["gateway"]["server_cpu_ms_per_request"] /
                                            pair[versus]["server_cpu_ms_per_request"], 2)}
    return out


# -- 2. the race ---------------------------------------------------------------------------------
def race_slots(first_day: dt.date, staff: list[int], count: int) -> list[tuple[int, str]]:
    """`count` (groomer, start) slots from `first_day` on, on the hour, none overlapping."""
    out: list[tuple[int, str]] = []
    day = first_day
    while len(out) < count:
        out += [(s, at(day, f"{h:02d}:00")) for h in OPEN_HOURS for s in staff]
        day += dt.timedelta(days=1)
    return out[:count]


def days_per_case(config: dict) -> int:
    return math.ceil(config["waves"] * config["slots_per_wave"] / (len(OPEN_HOURS) * STAFF))


def race_streams(server_path: str, targets: list[tuple[int, str]], service_id: int,
                 users: list[int], tokens: dict, pets: dict, config: dict) -> list[list[dict]]:
    """Per user, a hold (gateway; then its confirmation, chained) or a booking (bare) per wave;
    user u wants slot u % slots_per_wave of each wave."""
    per_wave = config["slots_per_wave"]
    streams = []
    for n, user in enumerate(users):
        headers = {**bm.auth(tokens[user]), "Content-Type": "application/json"}
        requests: list[dict] = []
        for wave in range(config["waves"]):
            staff_id, start = targets[wave * per_wave + n % per_wave]
            body = {"staff_id": staff_id, "start": start, "pet_id": pets[user]}
            if server_path == "/bare/book":
                requests.append({"method": "POST", "path": server_path, "headers": headers,
                                 "body": json.dumps(body)})
                continue
            requests.append({"method": "POST", "path": "/v1/appointments/holds",
                             "headers": headers, "body": json.dumps(
                                 {**body, "service_id": service_id})})
            requests.append({"method": "POST", "path": "/v1/appointments", "headers": {
                **headers, "Idempotency-Key": uuid.uuid4().hex}, "body": "{}",
                "chain": {"field": "hold_id", "from": "id"}})
        streams.append(requests)
    return streams


RACE_CHECKS = {
    # Each appointment of the case's days with the units its hold owns (confirmed: no expiry).
    "appointments": "SELECT a.staff_id, a.start_at, COUNT(u.id) FROM appointments a LEFT JOIN "
                    "booking_slot_units u ON u.hold_id = a.hold_id AND u.expires_at IS NULL "
                    "WHERE a.service_id = :s AND a.start_at >= :f AND a.start_at < :l "
                    "GROUP BY a.id, a.staff_id, a.start_at",
    # Units taken twice (the unique key says never; counted anyway).
    "twice": "SELECT COUNT(*) FROM (SELECT resource, unit_start FROM booking_slot_units "
             "GROUP BY resource, unit_start HAVING COUNT(*) > 1) AS t",
    # Holds of the case's days never confirmed.
    "held": "SELECT COUNT(*) FROM appointment_holds WHERE service_id = :s AND "
            "status = 'held' AND start_at >= :f AND start_at < :l",
}


async def check_race(settings, service_id: int, targets: list[tuple[int, str]],
                     units_each: int) -> dict:
    """After a case: exactly one appointment per contested slot and none elsewhere on those
    days; no slot unit twice; each appointment holding all its units (confirmed: no expiry);
    no hold of those days left held."""
    from sqlalchemy import text

    from pawhome.booking import slots
    from pawhome.platform.db import Database

    wanted = {(s, slots.to_utc(dt.datetime.fromisoformat(t))) for s, t in targets}
    span = {"s": service_id, "f": min(t for _, t in wanted).replace(hour=0, minute=0),
            "l": max(t for _, t in wanted) + dt.timedelta(days=1)}
    db = Database(settings)
    async with db.engine.connect() as conn:
        found = {name: (await conn.execute(text(sql), span)).all()
                 for name, sql in RACE_CHECKS.items()}
    await db.close()
    rows, twice, held = found["appointments"], found["twice"][0][0], found["held"][0][0]
    per_slot: dict[tuple, int] = {}
    for staff_id, start, _ in rows:
        per_slot[(staff_id, start)] = per_slot.get((staff_id, start), 0) + 1
    one_each = sum(1 for slot in wanted if per_slot.get(slot) == 1)
    outside = sum(n for slot, n in per_slot.items() if slot not in wanted)
    short = sum(1 for _, _, n in rows if n != units_each)
    return {"slots": len(wanted), "appointments": len(rows), "slots_with_one": one_each,
            "slots_with_none": sum(1 for slot in wanted if slot not in per_slot),
            "slots_with_more": sum(1 for slot in wanted if per_slot.get(slot, 0) > 1),
            "appointments_elsewhere": outside, "units_taken_twice": int(twice),
            "appointments_missing_units": short, "holds_left_held": int(held),
            "no_double_booking": not outside and not twice and not short
            and all(n <= 1 for n in per_slot.values())}


def race_case(server: rt.Server, label: str, targets: list[tuple[int, str]], setup: dict,
              people_: dict, tokens: dict, config: dict, cores, settings) -> dict:
    rt.clear_prefix(PREFIX + "rl:*")
    users = people_["users"][:config["users"]]
    path = "/bare/book" if label == "bare" else "/v1/appointments/holds"
    result = bm.drive(server, race_streams(path, targets, setup["service"]["id"], users,
                                           tokens, people_["pets"], config), cores)
    records = result.pop("records")
    elapsed = result["elapsed"]
    # A gateway stream alternates hold, confirmation (index odd); bare requests are bookings.
    attempts = [r for r in records if label == "bare" or r[1] % 2 == 0]
    confirms = [r for r in records if label != "bare" and r[1] % 2 == 1]
    won = [r for r in attempts if r[2] == 201]
    booked = won if label == "bare" else [r for r in confirms if r[2] == 201]
    units_each = (SERVICE["duration_minutes"] + SERVICE["buffer_after"]) // 5
    check = asyncio.run(check_race(settings, setup["service"]["id"], targets, units_each))
    # Safety is the database's: never two appointments on a slot or a unit. Completeness is
    # the clients': every slot booked once, except where the winner's confirmation was
    # refused (a 503 on a congested machine), whose hold stays until it expires.
    check["bookings_answered"] = len(booked)
    check["holds_unconfirmed"] = len(won) - len(booked)
    check["complete"] = check["slots_with_one"] == check["slots"]
    check["ok"] = check["no_double_booking"] and check["appointments"] == len(booked) \
        and check["holds_left_held"] == len(won) - len(booked) \
        and check["slots_with_one"] + check["holds_unconfirmed"] >= check["slots"]
    figures = {
        "server": label, "users": len(users), "slots": len(targets),
        "attempts": len(attempts), "attempt_statuses": bm.statuses(attempts),
        "confirm_statuses": bm.statuses(confirms), "seconds": round(elapsed, 2),
        "attempts_per_second": round(len(attempts) / elapsed, 1),
        "holds_won_per_second": round(len(won) / elapsed, 1),
        "confirms_per_second": round(len(confirms) / elapsed, 1),
        "bookings_per_second": round(len(booked) / elapsed, 1),
        "requests_per_second": round(len(records) / elapsed, 1),
        "latency_attempts": bm.distribution([r[3] for r in attempts]),
        "latency_won": bm.distribution([r[3] for r in won]),
        "latency_refused": bm.distribution([r[3] for r in attempts if r[2] == 409]),
        "latency_confirms": bm.distribution([r[3] for r in confirms]),
        "server_cpu_ms_per_attempt": round(result["server_cpu_percent"] * 10 * elapsed /
                                           max(1, len(attempts)), 2),
        "check": check, "failures": [f for f in result["failures"] if f["status"] != 409][:5],
        **{k: result[k] for k in ("sql_per_request", "redis_cmds_per_request",
                                  "server_cpu_percent", "server_core_busy_percent",
                                  "load_core_busy_percent", "machine_busy_percent")}}
    print(f"  {label:7} {figures['attempts_per_second']:>7.1f} attempts/s "
          f"{figures['bookings_per_second']:>6.1f} bookings/s  attempts "
          f"{figures['attempt_statuses']} confirms {figures['confirm_statuses']}  attempt p50 "
          f"{figures['latency_attempts'].get('p50_ms')} p99 "
          f"{figures['latency_attempts'].get('p99_ms')} ms  SQL/req "
          f"{figures['sql_per_request']}  check {'ok' if check['ok'] else 'FAILED ' + str(check)}",
          flush=True)
    for failure in figures["failures"][:2]:
        print(f"    e.g. {str(failure)[:400]}", flush=True)
    return figures


def race_summary(cases: list[dict]) -> dict:
    out: dict = {}
    for label in ("gateway", "bare"):
        mine = [c for c in cases if c["server"] == label]
        out[label] = {k: round(statistics.mean(c[k] for c in mine), 1) for k in (
            "attempts_per_second", "holds_won_per_second", "confirms_per_second",
            "bookings_per_second", "requests_per_second", "sql_per_request",
            "server_cpu_ms_per_attempt")}
        for name in ("attempts", "won", "refused", "confirms"):
            if all(c[f"latency_{name}"].get("count") for c in mine):
                out[label][f"{name}_p50_ms"] = growth.mean(mine, f"latency_{name}", "p50_ms")
                out[label][f"{name}_p99_ms"] = growth.mean(mine, f"latency_{name}", "p99_ms")
    g, b = out["gateway"], out["bare"]
    out["ratio"] = {"attempts_per_second": round(g["attempts_per_second"] /
                                                 b["attempts_per_second"], 3),
                    "bookings_per_second": round(g["bookings_per_second"] /
                                                 b["bookings_per_second"], 3),
                    "attempt_p99": round(g["attempts_p99_ms"] / b["attempts_p99_ms"], 3),
                    "server_cpu_per_attempt": round(g["server_cpu_ms_per_attempt"] /
                                                    b["server_cpu_ms_per_attempt"], 2)}
    out["checks_ok"] = all(c["check"]["ok"] for c in cases)
    out["no_double_booking"] = all(c["check"]["no_double_booking"] for c in cases)
    return out


# -- the report ----------------------------------------------------------------------------------
SLOT_COLUMNS = ("case", "server", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "SQL/req",
                "Redis cmds/req", "server CPU %", "load core %", "non-2xx")
SLOT_KEYS = ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_request", "sql_per_request",
             "redis_cmds_per_request", "server_cpu_percent", "load_core_busy_percent", "non_2xx")
RACE_COLUMNS = ("server", "attempts/s", "holds won/s", "confirms/s", "bookings/s", "requests/s",
                "attempt p50 ms", "attempt p99 ms", "won p50/p99 ms", "refused p50/p99 ms",
                "confirm p50/p99 ms", "server CPU ms/attempt", "SQL/req")
RACE_KEYS = ("attempts_per_second", "holds_won_per_second", "confirms_per_second",
             "bookings_per_second", "requests_per_second", "attempts_p50_ms", "attempts_p99_ms",
             "won", "refused", "confirms", "server_cpu_ms_per_attempt", "sql_per_request")


def race_cell(figures: dict, key: str) -> object:
    """A cell of the race table: a figure, or "p50 / p99" of a latency ("-" when none)."""
    if key in ("won", "refused", "confirms"):
        if f"{key}_p50_ms" not in figures:
            return "-"
        return f"{figures[f'{key}_p50_ms']} / {figures[f'{key}_p99_ms']}"
    return figures.get(key, "-")


def table(columns: tuple[str, ...], rows: list[list]) -> list[str]:
    """A Markdown table: text columns first, figures right-aligned."""
    align = ["---" if isinstance(rows[0][n], str) else "---:" for n in range(len(columns))]
    return ["| " + " | ".join(columns) + " |", "|" + "|".join(align) + "|",
            *("| " + " | ".join(str(v) for v in row) + " |" for row in rows)]


def write_markdown(r: dict) -> str:
    cfg, sl, rs = r["config"], r["slots"], r["race_summary"]
    m = r["machine"]
    quick = " --quick" if r["quick"] else ""
    lines = [
        "# Booking benchmark (issue 12 §5)", "",
        f"- run: {r['when']}, {r['duration_seconds']} s, `python bench/bench_booking.py{quick}`",
        f"- machine: {m['cpu_model']}, {m['cpus']} cores, Python {m['python']}, kernel "
        f"{m['kernel']}; busy before the start {m['busy_percent_before_start']} % (samples of "
        "the other processes at the end)",
        f"- pinning: servers on core {m['server_core']}, load clients on core "
        f"{m['client_core']}, MariaDB and Redis unpinned",
        f"- load: GETs {cfg['driver_lists']} ({cfg['connections_lists']} connections), POSTs "
        "bench/request_load.py (one connection per user)",
        "", "Every figure is from this one run; compare the ratios, not absolute rates across "
        "runs.", "",
        f"The shop: {STAFF} groomers performing one service ({SERVICE['duration_minutes']} "
        f"minutes + {SERVICE['buffer_after']} minutes' clean-up), 09:00-18:00 every day. The "
        f"measured day ({r['day']}) has a lunch break for everyone, a 30-minute break for one "
        "groomer, extra hours 18:00-20:00 for another and "
        f"{r['setup']['booked']} appointments ({len(BOOKED)} per groomer), all made through the "
        f"API. Its answer: {r['slot_check']['starts_per_staff']} free starts per groomer, "
        f"{r['slot_check']['starts_any']} for any groomer.", "",
        "## 1. GET /v1/services/{id}/slots?date=<the day>", "",
        f"{cfg['list_rounds']} rounds of {cfg['list_seconds']} s per case after "
        f"{cfg['list_warmup']} s of warm-up, cases alternating; means over rounds.", "",
    ]
    lines += table(SLOT_COLUMNS, [[cache, label, *(figures[k] for k in SLOT_KEYS)]
                                  for cache in ("cached", "uncached")
                                  for label, figures in sl[cache].items()
                                  if not label.startswith("ratio")])
    lines += [
        "", "Ratios gateway / bare (req/s; p99; server CPU per request — the last is the "
        "steadier figure when other work starves the server):", "",
        *(f"- {name}: req/s **{x['rps']}×**, p99 {x['p99']}×, server CPU per request "
          f"{x['server_cpu_per_request']}×" for name, x in (
              ("cached vs bare (one MGET)", sl["cached"]["ratio"]),
              ("cached vs bare reads (the gateway's storage work on a hit)",
               sl["cached"]["ratio_same_reads"]),
              ("uncached vs bare (the same SQL and computation)", sl["uncached"]["ratio"]))),
        "", "Uncached / cached on the gateway: "
        f"{round(sl['uncached']['gateway']['rps'] / sl['cached']['gateway']['rps'], 3)}× "
        "the rate.", "",
        "- **cached**: a gateway with `BOOKING_SLOTS_CACHE_SECONDS=3600`, each groomer's day "
        "filled by the first request (no hold touches these groomers' generations during the "
        "phase). Per request it reads the service's rules and performers from the cache "
        "(`availability.slot_rules`: one MGET of the catalogue generation and the cached "
        "rules), then every groomer's day in one MGET (`availability.free_starts_of`), then "
        "applies notice and horizon: two Redis round trips, no SQL. Bare: one MGET of the "
        f"same {2 * STAFF} slot keys, the same notice/horizon and the same answer (checked "
        "equal), no SQL. Bare reads (`/bare/slots/cached-reads`): what a hit cost before the "
        "rules were cached (before 5c9bd6e), bare: the service, provider and performers read "
        "with `exec_driver_sql`, then one MGET per groomer.",
        "- **uncached**: a gateway with `BOOKING_SLOTS_CACHE_SECONDS=0` and a Redis prefix of "
        "its own. Method: with the TTL at 0 `booking_cache.fill` stores nothing, so every "
        "request misses on every groomer exactly as after a generation bump (the generation "
        "and value MGET is still made and finds no value), and computes each groomer's day "
        "from the database: weekly hours, the day's overrides and breaks, the occupied units "
        "around the day, `slots.free_starts`. What it skips compared with a real miss is the "
        "one SET per groomer that refills the cache. Bumping the generations from the load "
        "client between requests was not used: at 64 connections a request could find a day "
        "another request filled after the bump, and the miss rate would not be 100 %. Bare: "
        "the same SQL statements (service, provider, performers; per groomer hours, "
        "overrides, breaks, units) on a pooled connection with `exec_driver_sql`, then the "
        "same pure computation (`slots.open_windows`, `free_starts`, `bookable`).",
        "",
        "## 2. Holds and confirmations racing for few slots", "",
        f"{cfg['users']} users, one connection each, {cfg['waves']} waves; in each wave the "
        f"users want {cfg['slots_per_wave']} slots (a groomer at a full hour), "
        f"{cfg['users'] // cfg['slots_per_wave']} users per slot, all at once (a user's next "
        "wave starts when its previous request is answered, so the waves spread out). Gateway: "
        "`POST /v1/appointments/holds`, and for a granted hold at once `POST /v1/appointments` "
        "with an Idempotency-Key. Bare: `POST /bare/book`. Fresh days per case; "
        f"{cfg['race_rounds']} rounds, gateway and bare alternating; means over rounds.", "",
    ]
    lines += table(RACE_COLUMNS, [[label, *(race_cell(rs[label], k) for k in RACE_KEYS)]
                                  for label in ("gateway", "bare")])
    lines += [
        "", f"Ratios gateway / bare: attempts/s **{rs['ratio']['attempts_per_second']}×**, "
        f"bookings/s **{rs['ratio']['bookings_per_second']}×**, attempt p99 "
        f"{rs['ratio']['attempt_p99']}×, server CPU per attempt "
        f"{rs['ratio']['server_cpu_per_attempt']}×. No double booking in any case: "
        f"**{'yes' if rs['no_double_booking'] else 'NO'}**; every appointment answered and "
        f"every slot booked once or its winner's refusal counted: "
        f"**{'yes' if rs['checks_ok'] else 'NO'}**.", "",
        "Per case (statuses of the attempts: 201 granted, 409 SlotTaken; of the gateway's "
        "confirmations: 201 booked):", ""]
    for c in r["race"]:
        k = c["check"]
        lines.append(
            f"- {c['server']}: {c['attempts']} attempts on {c['slots']} slots in {c['seconds']} "
            f"s: attempts {c['attempt_statuses']}"
            + (f", confirmations {c['confirm_statuses']}" if c["server"] == "gateway" else "")
            + f"; after: {k['appointments']} appointments, slots with exactly one "
            f"{k['slots_with_one']}/{k['slots']} (none {k['slots_with_none']}, more "
            f"{k['slots_with_more']}), elsewhere {k['appointments_elsewhere']}, units taken "
            f"twice {k['units_taken_twice']}, appointments missing units "
            f"{k['appointments_missing_units']}, holds left held {k['holds_left_held']} "
            f"(won holds whose confirmation was refused: {k['holds_unconfirmed']}): no double "
            f"booking **{'yes' if k['no_double_booking'] else 'NO'}**, appointments = "
            f"bookings answered 201 and the rest explained: **{'ok' if k['ok'] else 'FAILED'}**"
            f"; server CPU {c['server_cpu_percent']} %, "
            f"machine {c['machine_busy_percent']} %.")
    lines += [
        "",
        "- gateway: a hold is `holds.place_hold`: the service, provider and pet read (own "
        "pet, type and weight checked), then in one transaction the hold row, the performers, "
        "the groomer's day windows (three reads) and the INSERT of its 12 slot units in a "
        "savepoint; a duplicate key looks for expired holds among the units and answers 409 "
        "SlotTaken; after the commit the groomer's slot generation is bumped. A confirmation "
        "is the idempotency claim, then one transaction (hold locked, service and provider "
        "read, the units' expiry cleared, the appointment, its `booked` timeline row and "
        "notice task, its reminder), then the stored answer; the relay publishes the outbox "
        "rows. Each request also pays the token check, the rate-limit call, the ORM and "
        "the access log.",
        "- bare: bare_booking.py `POST /bare/book`: the token checked as bare_server.py does, "
        "then one transaction of three INSERTs (the hold row, the 12 units under UNIQUE "
        "(resource, unit_start), the appointment); a duplicate key rolls it back (409). No "
        "hours check, no confirmation step, no idempotency record, no cache bump: the storage "
        "floor of one booking.",
        "", "## Reading the figures", "",
        "- The machine has two cores shared by the server, the load client, MariaDB and "
        "Redis (and other sessions' work: samples below). `load core %` near 100 means the "
        "Python load client set the pace, which flatters the slower server's ratio.",
        "- Cached slots: a hit reads no table since 5c9bd6e (the service's rules and "
        "performers are cached under the catalogue generation, the groomers' days read in "
        "one MGET); before it, a hit read the service, its provider and its performers and "
        "made one Redis round trip per groomer (0.164× the bare MGET in the 03:58 run). "
        "`bare reads` keeps that old storage work as a reference; `gateway` vs `bare` is "
        "now the gateway's own per-request work (request id, rate-limit Lua call, envelope, "
        "metrics, access log) plus the second round trip.",
        "- `SQL/req` and `Redis cmds/req` are server-wide counters (MariaDB `Questions`, "
        "Redis `total_commands_processed`) over the case divided by its requests, so other "
        "sessions' work on the same servers is in them: the bare cached case sends no SQL, "
        "and what it shows is that noise (larger per request at lower rates).",
        "- Uncached slots: both servers make the same 19 statements; the gateway builds ORM "
        "objects for the schedule rows and sends 4 more MGETs. The computation itself "
        "(`free_starts` over 15-minute steps against the busy units) is small next to the "
        "round trips.",
        "- The race: a gateway attempt that loses costs about the same as one that wins up to "
        "the INSERT (the reads and the hold row come first), then a rollback to the savepoint, "
        "a read for expired holds and a rollback; a winner also confirms (a second request "
        "with an idempotency record). The bare booking is three INSERTs, so its rate is "
        "bound by MariaDB's commits as much as by its own CPU; the gateway's ratio is its "
        "per-request work (two requests per booking, ORM, idempotency record, rate limit, "
        "cache bump, access log) over the same unique-key decision.",
        "- A 503 (`non-2xx` in the slots table, a `503` status in the race) is the "
        "gateway's DatabaseUnavailable \"No database connection free in time\": a request "
        f"waited more than DB_POOL_TIMEOUT ({r['pool']['timeout']} s) for one of the "
        f"DB_POOL_SIZE ({r['pool']['size']}) turns at the database (pawhome.platform.db's "
        "gate), i.e. the queue of a congested machine, answered rather than left waiting. "
        "The bare booking answers 503 when SQLAlchemy's pool (the same size, plus "
        f"{r['pool']['overflow']} overflow) has no connection within that time; the bare slot "
        "handlers let such a request fail (500).",
        "- `server CPU %` is the server process's share of its core during the case. Well "
        "under 100 % with `machine %` at 100 means other processes (other sessions' tests "
        "and servers, MariaDB) had the cores: then req/s measures the machine's congestion "
        "as much as the server, and `server CPU ms/req` (the server's CPU time per request) "
        "is the better measure of its cost.",
        "", "Other processes during the run (the busiest, % of one core, sampled 2 s before "
        "each phase):", "",
        *(f"- {phase} at {x['at']}: machine {x['machine_percent']} % busy, load "
          f"{' '.join(x['loadavg'])}; " + ", ".join(
              f"{o['command'] or o['name']} {o['cpu_percent']} %" for o in x["others"])
          for phase, x in r["machine_samples"].items()), ""]
    return "\n".join(lines)


def clean_redis() -> None:
    for prefix in (PREFIX, UNCACHED_PREFIX, QUEUE_PREFIX, "_kombu.binding." + QUEUE_PREFIX):
        rt.clear_prefix(prefix + "*")


async def staff_names(settings, staff: list[int]) -> dict[int, str]:
    from sqlalchemy import select

    from models.booking import Staff
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session:
            return dict((await session.execute(select(Staff.id, Staff.name).where(
                Staff.id.in_(staff)))).all())
    finally:
        await db.close()


def main() -> None:
    args, config, started, cores = gw.start_run(__doc__ or "", FULL, QUICK)
    server_core = cores[0]
    scratch = Path(tempfile.mkdtemp(prefix="bench-booking-"))
    log_file = scratch / "gateway.log"
    env = {**ENV, "MEDIA_ROOT": str(scratch / "media"), "BENCH_LOG_FILE": str(log_file),
           "BENCH_BARE_SPEC": str(scratch / "bare_spec.pickle")}
    settings = bm.settings_for(env)
    print(f"preparing database {DB_NAME} and Redis prefix {PREFIX}", flush=True)
    asyncio.run(rt.ensure_database(DB_NAME))
    from pawhome.platform import migrate as migrations

    migrations.upgrade(env["DATABASE_URL"])
    clean_redis()
    own = {os.getpid()}
    samples: dict[str, dict] = {}
    servers: list[rt.Server] = []

    def start(label: str, argv: list[str], server_env: dict) -> rt.Server:
        server = rt.Server(label, argv, server_env, server_core)
        servers.append(server)
        own.add(server.pid)
        return server

    def gateway(label: str, server_env: dict) -> rt.Server:
        return start(label, [PYTHON, str(HERE / "booking_gateway.py")], server_env)

    try:
        asyncio.run(bm.empty_run_tables(settings, RUN_TABLES))
        folks = asyncio.run(people(settings, config["users"]))
        tokens = bm.mint_tokens(env, [(u, "user") for u in folks["users"]])
        merchant_token = bm.mint_tokens(env, [(folks["merchant"], "merchant")])[folks["merchant"]]
        from pawhome.booking import slots

        today = slots.local_day(dt.datetime.now(dt.UTC).replace(tzinfo=None))
        day = today + dt.timedelta(days=1)
        cached_gw = gateway("gateway cached", env)
        setup = {**set_up(cached_gw, merchant_token, day, folks["users"], tokens, folks["pets"]),
                 "merchant": folks["merchant"]}
        names = asyncio.run(staff_names(settings, setup["staff"]))
        Path(env["BENCH_BARE_SPEC"]).write_bytes(pickle.dumps(bare_spec(settings, setup, day,
                                                                        names)))
        bare = start("bare", [PYTHON, str(HERE / "bare_booking.py")], env)
        db_gw = gateway("gateway uncached", {**env, "BOOKING_SLOTS_CACHE_SECONDS": "0",
                                             "REDIS_PREFIX": UNCACHED_PREFIX})
        quiet = rt.wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT",
                                                       "5" if args.quick else "30")))
        path = f"/v1/services/{setup['service']['id']}/slots?date={day.isoformat()}"
        slot_check = check_slots({"gateway cached": (cached_gw, path),
                                  "gateway uncached": (db_gw, path),
                                  "bare cached": (bare, "/bare/slots/cached"),
                                  "bare cached reads": (bare, "/bare/slots/cached-reads"),
                                  "bare db": (bare, "/bare/slots/db")})
        print(f"slots of {day} ({slot_check}):", flush=True)
        samples["slots"] = bm.busiest_processes(own)
        slot_figures = slots_phase([("cached", "gateway", cached_gw, path),
                                    ("cached", "bare", bare, "/bare/slots/cached"),
                                    ("cached", "bare reads", bare, "/bare/slots/cached-reads"),
                                    ("uncached", "gateway", db_gw, path),
                                    ("uncached", "bare", bare, "/bare/slots/db")], config, cores)
        db_gw.stop()
        servers.remove(db_gw)

        print(f"race: {config['users']} users, {config['slots_per_wave']} slots a wave, "
              f"{config['waves']} waves:", flush=True)
        samples["race"] = bm.busiest_processes(own)
        race = []
        span = days_per_case(config)
        for round_no in range(config["race_rounds"]):
            order = ("gateway", "bare") if round_no % 2 == 0 else ("bare", "gateway")
            for n, label in enumerate(order):
                first = day + dt.timedelta(days=1 + span * (2 * round_no + n))
                targets = race_slots(first, setup["staff"],
                                     config["waves"] * config["slots_per_wave"])
                race.append(race_case(cached_gw if label == "gateway" else bare, label,
                                      targets, setup, folks, tokens, config, cores, settings))
        access_log = bm.log_lines(log_file)
    finally:
        bm.wind_up(servers, clean_redis, scratch)

    result = {
        **bm.run_header(args.quick, started, cores, quiet), "machine_samples": samples,
        "config": {**config, "connections_lists": gw.CONNECTIONS,
                   "driver_lists": "wrk" if shutil.which("wrk") else "bench/load_driver.py",
                   "service": SERVICE, "staff": STAFF},
        "day": day.isoformat(), "setup": {"provider_id": setup["provider"]["id"],
                                          "service_id": setup["service"]["id"],
                                          "staff": setup["staff"], "booked": setup["booked"]},
        "slot_path": path, "slot_check": slot_check, "slots": slot_figures,
        "race": race, "race_summary": race_summary(race), "access_log": access_log,
        "pool": {"size": settings.db_pool_size, "overflow": settings.db_max_overflow,
                 "timeout": settings.db_pool_timeout},
    }
    gw.finish_run("booking", result, write_markdown(result), args.quick, started)


if __name__ == "__main__":
    main()
