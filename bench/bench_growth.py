"""Growth benchmark (issue 11 §8): coupon claims racing for a limited template, concurrent
checkout with coupons and points on hot SKUs, and the cached mall home, each beside a bare
Tornado handler doing the plain storage work in the same run.

    python bench/bench_growth.py            (about 3 minutes; writes bench/results/growth.*)
    python bench/bench_growth.py --quick    (a smoke run; prints, writes nothing)

It reuses bench_mall.py's database (`pawhome_bench_mall`, its catalogue seeded once), Redis
prefix, gateway wrapper (bench/mall_gateway.py) and bare server (bench/bare_mall.py), with the
same pinning: servers on core 0, load clients on core 1.

Per round, on fresh hot SKUs (10, one shop, 39.00 each, stock for every order):

1. claims: an admin's coupon template (满 39 减 5 on exactly this round's hot products, so
   coupons of earlier runs never apply) of `coupons` coupons, at most `coupon_per_user` a
   user; every buyer claims on `streams_per_buyer` connections at once, `claims_per_stream`
   each (more claims than coupons). Checked after: issued == total exactly, the template's
   issued_count equal, nobody above the limit;
2. checkout with coupons and points: every buyer's balance set to `points_each` (an admin
   adjustment through the API), then each buyer places orders on `streams_per_buyer`
   connections at once (so two of its orders race for the same balance and the same best
   coupon), each asking to pay `points_per_order` points, the coupon picked automatically;
   the balance covers only part of the demand. Checked after: no balance below zero, every
   bench buyer's balance equal to the sum of their ledger, the points the orders show equal
   to what the ledger took, no coupon on two orders, coupons held == orders with a coupon
   line, stock = initial - ordered (bench_mall.check_stock);
3. the same orders without coupons and points on the gateway (what the growth domains add)
   and on the bare POST /bare/orders (the storage floor, as in bench_mall.py).

Then the mall home: GET /v1/home/mall (demo banners, pop-up and slots, the shared part from
the Redis cache, pop-up rules and for_you applied per viewer) with every buyer's token, beside
the bare handler's MGET of the two keys the gateway reads for the shared part
(/bare/products/cached/home).

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

import bench_community as cm  # noqa: E402 - CPU counters, summaries
import bench_gateway as gw  # noqa: E402 - cores, load driver, results
import bench_mall as bm  # noqa: E402 - database, catalogue, servers, POST driver, checks
import bench_realtime as rt  # noqa: E402 - servers, quiet wait, machine

FULL = {"buyers": 50, "streams_per_buyer": 2, "orders_per_stream": 6, "hot_skus": 10,
        "rounds": 2, "points_each": 10000, "points_per_order": 1000, "coupons": 150,
        "coupon_per_user": 5, "claims_per_stream": 3, "home_seconds": 4.0,
        "home_warmup": 1.0, "home_rounds": 2, "products": 2000}
QUICK = {**FULL, "orders_per_stream": 2, "rounds": 1, "home_seconds": 1.0, "home_warmup": 0.5,
         "home_rounds": 1}
PRICE = 3900  # bench_mall.hot_skus' price
# Emptied with bench_mall's RUN_TABLES at the start of every run: those restart the order ids,
# and a points payment's ledger key names its order (points_payment:<order id>), so a ledger
# kept from an earlier run would take a new order's payment for a replay of an old one.
GROWTH_TABLES = ("points_ledger", "points_accounts", "user_coupons", "coupon_events",
                 "coupon_templates")


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- set-up through the API ----------------------------------------------------------------------
def api(server: rt.Server, method: str, path: str, token: str, body: dict | None = None,
        key: str | None = None) -> dict:
    import httpx

    headers = {**auth(token), **({"Idempotency-Key": key} if key else {})}
    reply = httpx.request(method, server.url(path), json=body, headers=headers, timeout=30)
    if reply.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {reply.status_code} {reply.text[:300]}")
    return reply.json()["data"]


async def product_ids_of(settings, sku_ids: list[int]) -> list[int]:
    from sqlalchemy import select

    from models.mall import Sku
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session:
            return list((await session.execute(select(Sku.product_id).where(
                Sku.id.in_(sku_ids)))).scalars())
    finally:
        await db.close()


async def balances(settings, buyers: list[int]) -> dict[int, int]:
    from sqlalchemy import select

    from models.points import PointsAccount
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session:
            found = dict((await session.execute(select(
                PointsAccount.user_id, PointsAccount.balance).where(
                PointsAccount.user_id.in_(buyers)))).all())
    finally:
        await db.close()
    return {b: int(found.get(b, 0)) for b in buyers}


def set_balances(server: rt.Server, admin_token: str, settings, buyers: list[int],
                 target: int, tag: str) -> None:
    """Every buyer's balance to `target`, by admin adjustments (ledger rows, audited)."""
    for buyer, balance in asyncio.run(balances(settings, buyers)).items():
        if balance != target:
            api(server, "POST", f"/v1/admin/users/{buyer}/points", admin_token,
                {"delta": target - balance, "reason": "bench"}, key=f"{tag}-{buyer}")


async def seed_home(settings) -> int:
    """The demo home content (banners, a pop-up, slots), once."""
    from sqlalchemy import func, select

    from models.home import HomeBanner
    from pawhome.platform.db import Database
    from pawhome.promotions.demo_home import seed_demo_home

    db = Database(settings)
    try:
        async with db.session() as session, session.begin():
            if (await session.execute(select(func.count()).select_from(HomeBanner))).scalar():
                return 0
            return await seed_demo_home(session)
    finally:
        await db.close()


# -- the load ----------------------------------------------------------------------------------
def order_streams(path: str, buyers: list[int], tokens: dict, addresses: dict,
                  sku_ids: list[int], config: dict, tag: str, growth: bool) -> list[list[dict]]:
    """Per buyer `streams_per_buyer` connections of `orders_per_stream` buy-now orders each
    (SKUs walked from different starts, quantity 1-3); with `growth`, each asks to pay
    `points_per_order` points and leaves the coupon to the server's choice."""
    streams = []
    for b, buyer in enumerate(buyers):
        for s in range(config["streams_per_buyer"]):
            requests = []
            for k in range(config["orders_per_stream"]):
                index = (b + 3 * s + k) % len(sku_ids)
                body: dict = {"items": [{"sku_id": sku_ids[index],
                                         "quantity": 1 + (b * 7 + k + s) % 3}],
                              "address_id": addresses[buyer]}
                if growth:
                    body["points"] = config["points_per_order"]
                requests.append({"method": "POST", "path": path, "headers": {
                    **auth(tokens[buyer]), "Content-Type": "application/json",
                    "Idempotency-Key": f"{tag}-{b}-{s}-{k}"}, "body": json.dumps(body)})
            streams.append(requests)
    return streams


def claim_streams(template_id: int, buyers: list[int], tokens: dict, config: dict,
                  tag: str) -> list[list[dict]]:
    return [[{"method": "POST", "path": f"/v1/coupons/{template_id}/claim",
              "headers": {**auth(tokens[buyer]), "Content-Type": "application/json",
                          "Idempotency-Key": f"claim-{tag}-{b}-{s}-{k}"}, "body": "{}"}
             for k in range(config["claims_per_stream"])]
            for b, buyer in enumerate(buyers) for s in range(config["streams_per_buyer"])]


# -- the checks ----------------------------------------------------------------------------------
async def check_claims(settings, template_id: int, total: int, per_user: int) -> dict:
    from sqlalchemy import text

    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.engine.connect() as conn:
            issued = (await conn.execute(text(
                "SELECT COUNT(*) FROM user_coupons WHERE template_id = :t"),
                {"t": template_id})).scalar_one()
            counted = (await conn.execute(text(
                "SELECT issued_count FROM coupon_templates WHERE id = :t"),
                {"t": template_id})).scalar_one()
            most = (await conn.execute(text(
                "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) n FROM user_coupons WHERE "
                "template_id = :t GROUP BY user_id) per_user"), {"t": template_id})).scalar_one()
    finally:
        await db.close()
    return {"total": total, "issued": int(issued), "issued_count": int(counted),
            "most_by_one_user": int(most), "per_user_limit": per_user,
            "ok": issued == counted == total and most <= per_user}


async def check_growth(settings, buyers: list[int], template_id: int, sku_ids: list[int],
                       since: dt.datetime) -> dict:
    """Points and coupons after the growth checkout case (see the module's docstring)."""
    from sqlalchemy import bindparam, text

    from pawhome.platform.db import Database

    db = Database(settings)
    users = bindparam("users", expanding=True)
    skus = bindparam("skus", expanding=True)
    try:
        async with db.engine.connect() as conn:
            negative = (await conn.execute(text(
                "SELECT COUNT(*) FROM points_accounts WHERE user_id IN :users AND balance < 0"
            ).bindparams(users), {"users": buyers})).scalar_one()
            drift = (await conn.execute(text(
                "SELECT COUNT(*) FROM points_accounts a WHERE a.user_id IN :users AND "
                "a.balance <> (SELECT COALESCE(SUM(l.delta), 0) FROM points_ledger l "
                "WHERE l.user_id = a.user_id)").bindparams(users), {"users": buyers})
                     ).scalar_one()
            orders = (await conn.execute(text(
                "SELECT DISTINCT o.id, o.price_breakdown FROM orders o JOIN order_items i ON "
                "i.order_id = o.id WHERE i.sku_id IN :skus").bindparams(skus),
                {"skus": sku_ids})).all()
            taken = (await conn.execute(text(
                "SELECT COALESCE(-SUM(delta), 0) FROM points_ledger WHERE user_id IN :users "
                "AND reason = 'points_payment' AND created_at >= :since").bindparams(users),
                {"users": buyers, "since": since})).scalar_one()
            held = (await conn.execute(text(
                "SELECT COUNT(*), COUNT(DISTINCT order_id) FROM user_coupons WHERE "
                "template_id = :t AND order_id IS NOT NULL"), {"t": template_id})).one()
    finally:
        await db.close()
    shown_points, with_coupon = 0, 0
    for _, breakdown in orders:
        lines = json.loads(breakdown) if isinstance(breakdown, str) else breakdown
        shown_points += sum(int(line.get("points", 0)) for line in lines
                            if line.get("code") == "points")
        with_coupon += any(line.get("code") == "coupon" for line in lines)
    return {"orders": len(orders), "negative_balances": int(negative),
            "balances_off_ledger": int(drift), "points_on_orders": shown_points,
            "points_taken_by_ledger": int(taken), "coupons_held": int(held[0]),
            "orders_holding_them": int(held[1]), "orders_with_coupon_line": with_coupon,
            "ok": negative == 0 and drift == 0 and shown_points == taken
            and held[0] == held[1] == with_coupon}


# -- the cases -----------------------------------------------------------------------------------
def posts_case(server: rt.Server, streams: list[list[dict]], cores, created: int = 201) -> dict:
    result = bm.drive(server, streams, cores)
    records = result.pop("records")
    ok = [r[3] for r in records if r[2] == created]
    elapsed = result["elapsed"]
    return {"requests": len(records), "statuses": bm.statuses(records),
            "seconds": round(elapsed, 2), "ok_per_second": round(len(ok) / elapsed, 1),
            "requests_per_second": round(len(records) / elapsed, 1),
            "latency": bm.distribution([r[3] for r in records]),
            "latency_ok": bm.distribution(ok),
            **{k: result[k] for k in ("sql_per_request", "redis_cmds_per_request",
                                      "server_cpu_percent", "machine_busy_percent")},
            "failures": result["failures"][:5]}


def show(label: str, figures: dict, unit: str = "orders/s") -> None:
    print(f"  {label:28} {figures['ok_per_second']:>7.1f} {unit} "
          f"({figures['requests_per_second']} req/s)  p50 {figures['latency'].get('p50_ms')} ms"
          f"  p99 {figures['latency'].get('p99_ms')} ms  {figures['statuses']}  SQL/req "
          f"{figures['sql_per_request']}", flush=True)


def checkout_round(gateway: rt.Server, bare: rt.Server, seeded: dict, tokens: dict,
                   admin_token: str, addresses: dict, config: dict, cores, settings) -> dict:
    buyers = seeded["buyers"][:config["buyers"]]
    streams = config["streams_per_buyer"] * config["orders_per_stream"]
    initial = [len(buyers) * streams * 3] * config["hot_skus"]  # never runs out
    out: dict = {}
    for case in ("growth", "plain", "bare"):
        tag = f"growth-{case}-{uuid.uuid4().hex[:8]}"
        sku_ids = asyncio.run(bm.hot_skus(settings, seeded["hot_shop"], config["hot_skus"],
                                          initial, tag))
        rt.clear_prefix(bm.PREFIX + "rl:*")
        if case == "growth":
            products = asyncio.run(product_ids_of(settings, sku_ids))
            template = api(gateway, "POST", "/v1/merchant/coupon-templates", admin_token, {
                "name": f"满39减5 {tag[-8:]}", "kind": "threshold", "amount_off": 500,
                "min_spend": PRICE, "scope": "products", "product_ids": products,
                "valid_days": 7, "total_quantity": config["coupons"],
                "per_user_limit": config["coupon_per_user"]})
            claims = posts_case(gateway, claim_streams(template["id"], buyers, tokens, config,
                                                       tag), cores)
            claims["check"] = asyncio.run(check_claims(settings, template["id"],
                                                       config["coupons"],
                                                       config["coupon_per_user"]))
            show("claims (limited template)", claims, "claims/s")
            print(f"    issued {claims['check']['issued']} of {config['coupons']}, most by one "
                  f"user {claims['check']['most_by_one_user']}: "
                  f"{'ok' if claims['check']['ok'] else 'FAILED'}", flush=True)
            out["claims"] = claims
            set_balances(gateway, admin_token, settings, buyers, config["points_each"], tag)
            since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
        server, path = (bare, "/bare/orders") if case == "bare" else (gateway, "/v1/orders")
        figures = posts_case(server, order_streams(path, buyers, tokens, addresses, sku_ids,
                                                   config, tag, case == "growth"), cores)
        figures["stock_check"] = asyncio.run(bm.check_stock(settings, sku_ids, initial))
        if case == "growth":
            figures["growth_check"] = asyncio.run(check_growth(
                settings, buyers, template["id"], sku_ids, since))
        show(f"orders {case}", figures)
        for failure in figures["failures"][:2]:
            print(f"    e.g. {str(failure)[:400]}", flush=True)
        if case == "growth":
            g = figures["growth_check"]
            print(f"    balances below 0: {g['negative_balances']}, off the ledger: "
                  f"{g['balances_off_ledger']}, points on orders {g['points_on_orders']} = "
                  f"ledger {g['points_taken_by_ledger']}, coupons held {g['coupons_held']} by "
                  f"{g['orders_holding_them']} orders ({g['orders_with_coupon_line']} with a "
                  f"coupon line): {'ok' if g['ok'] else 'FAILED'}", flush=True)
        print(f"    stock check {'ok' if figures['stock_check']['ok'] else 'FAILED'}",
              flush=True)
        out[case] = figures
    return out


def home_phase(gateway: rt.Server, bare: rt.Server, tokens: list[str], config: dict,
               cores) -> dict:
    runs: dict[str, list] = {"gateway": [], "bare": []}
    for round_no in range(config["home_rounds"]):
        for label, server, path, who in (
                ("gateway", gateway, "/v1/home/mall", tokens),
                ("bare", bare, "/bare/products/cached/home", [])):
            figures = bm.run_list_case(server, path, {
                "list_warmup": config["home_warmup"], "list_seconds": config["home_seconds"]},
                cores, who)
            runs[label].append(figures)
            print(f"  round {round_no + 1} home {label:7} {figures['rps']:>8.1f} req/s  p50 "
                  f"{figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms  SQL/req "
                  f"{figures['sql_per_request']}  Redis/req {figures['redis_cmds_per_request']}"
                  + (f"  non-2xx {figures['non_2xx']}" if figures["non_2xx"] else ""),
                  flush=True)
    out = {label: cm.summarise(figures) for label, figures in runs.items()}
    out["ratio"] = cm.ratio(out["gateway"], out["bare"])
    return out


# -- the report ----------------------------------------------------------------------------------
def mean(cases: list[dict], *path: str) -> float:
    values = []
    for case in cases:
        value = case
        for key in path:
            value = value[key]
        values.append(value)
    return round(sum(values) / len(values), 2)


def summary(rounds: list[dict]) -> dict:
    out: dict = {}
    for case in ("growth", "plain", "bare"):
        mine = [r[case] for r in rounds]
        out[case] = {"orders_per_second": mean(mine, "ok_per_second"),
                     "requests_per_second": mean(mine, "requests_per_second"),
                     "p50_ms": mean(mine, "latency", "p50_ms"),
                     "p99_ms": mean(mine, "latency", "p99_ms"),
                     "sql_per_request": mean(mine, "sql_per_request")}
    for versus in ("plain", "bare"):
        g, b = out["growth"], out[versus]
        out[f"growth_vs_{versus}"] = {
            "orders_per_second": round(g["orders_per_second"] / b["orders_per_second"], 3),
            "requests_per_second": round(g["requests_per_second"] / b["requests_per_second"],
                                         3),
            "p99": round(g["p99_ms"] / b["p99_ms"], 3)}
    claims = [r["claims"] for r in rounds]
    out["claims"] = {"claims_per_second": mean(claims, "ok_per_second"),
                     "p99_ms": mean(claims, "latency", "p99_ms"),
                     "over_issue_checks_ok": all(c["check"]["ok"] for c in claims)}
    out["checks_ok"] = all(r["growth"]["growth_check"]["ok"] and r[c]["stock_check"]["ok"]
                           for r in rounds for c in ("growth", "plain", "bare"))
    return out


def write_markdown(r: dict) -> str:
    s, h, cfg = r["summary"], r["home"], r["config"]
    lines = [
        "# Growth benchmark (issue 11 §8)", "",
        f"Run {r['when']}, {r['duration_seconds']} s, `python bench/bench_growth.py`"
        + (" --quick" if r["quick"] else "") + f". Machine: {r['machine']['cpu_model']}, "
        f"{r['machine']['cpus']} cores; servers on core {r['machine']['server_core']}, load "
        f"on core {r['machine']['client_core']}; machine busy before start "
        f"{r['machine']['busy_percent_before_start']} %.", "",
        f"{cfg['buyers']} buyers, {cfg['streams_per_buyer']} connections each, "
        f"{cfg['orders_per_stream']} buy-now orders a connection, {cfg['hot_skus']} hot SKUs "
        f"of one shop; {cfg['rounds']} rounds, figures are means over the rounds.", "",
        "## Checkout with coupons and points", "",
        "| case | orders/s | requests/s | p50 ms | p99 ms | SQL/request |",
        "|---|---|---|---|---|---|"]
    for case, label in (("growth", "gateway, coupon auto-picked + points"),
                        ("plain", "gateway, plain order"), ("bare", "bare POST /bare/orders")):
        c = s[case]
        lines.append(f"| {label} | {c['orders_per_second']} | {c['requests_per_second']} | "
                     f"{c['p50_ms']} | {c['p99_ms']} | {c['sql_per_request']} |")
    lines += [
        "", f"Ratios: growth / plain gateway: orders/s **{s['growth_vs_plain']['orders_per_second']}"
        f"×**, requests/s {s['growth_vs_plain']['requests_per_second']}×, p99 "
        f"{s['growth_vs_plain']['p99']}×; growth / bare: orders/s "
        f"**{s['growth_vs_bare']['orders_per_second']}×**, requests/s "
        f"{s['growth_vs_bare']['requests_per_second']}×, p99 {s['growth_vs_bare']['p99']}×. "
        f"Each buyer's balance ({cfg['points_each']} points) pays {cfg['points_per_order']} "
        "points on only part of its orders, so orders/s counts placed orders and requests/s "
        "every answer (a refusal for the balance is planned in full before it is refused).",
        "", "Per round (statuses: 201 placed; 422 the balance could not cover the points "
        "asked; 409 the coupon picked was taken by the buyer's other connection meanwhile):", ""]
    for n, rnd in enumerate(r["rounds"], 1):
        g = rnd["growth"]
        c = g["growth_check"]
        lines.append(
            f"- round {n}: growth {g['statuses']}, plain {rnd['plain']['statuses']}, bare "
            f"{rnd['bare']['statuses']}; balances below zero **{c['negative_balances']}**, "
            f"balances off their ledger **{c['balances_off_ledger']}**, points on orders "
            f"{c['points_on_orders']} = taken by the ledger {c['points_taken_by_ledger']}; "
            f"coupons held {c['coupons_held']} by {c['orders_holding_them']} orders "
            f"({c['orders_with_coupon_line']} with a coupon line); stock checks "
            f"{'ok' if all(rnd[k]['stock_check']['ok'] for k in ('growth', 'plain', 'bare')) else 'FAILED'}.")
    lines += ["", "## Coupon claims racing for a limited template", "",
              f"{cfg['coupons']} coupons, at most {cfg['coupon_per_user']} a user, "
              f"{cfg['buyers'] * cfg['streams_per_buyer'] * cfg['claims_per_stream']} claims "
              f"at once per round: {s['claims']['claims_per_second']} claims issued/s, p99 "
              f"{s['claims']['p99_ms']} ms; issued exactly the total, nobody above the limit: "
              f"**{'yes' if s['claims']['over_issue_checks_ok'] else 'NO'}**.", ""]
    for n, rnd in enumerate(r["rounds"], 1):
        c = rnd["claims"]
        lines.append(f"- round {n}: {c['statuses']}; issued {c['check']['issued']} "
                     f"(issued_count {c['check']['issued_count']}), most by one user "
                     f"{c['check']['most_by_one_user']}.")
    lines += ["", "## GET /v1/home/mall (cached)", "",
              "| server | req/s | p50 ms | p99 ms | SQL/req | Redis cmds/req | non-2xx |",
              "|---|---|---|---|---|---|---|"]
    for label in ("gateway", "bare"):
        x = h[label]
        lines.append(f"| {label} | {x['rps']} | {x['p50_ms']} | {x['p99_ms']} | "
                     f"{x['sql_per_request']} | {x['redis_cmds_per_request']} | "
                     f"{x['non_2xx']} |")
    lines += ["", f"Ratio gateway / bare: req/s **{h['ratio']['rps']}×**, p99 "
              f"{h['ratio']['p99']}×. The bare handler is one MGET of the list generation and "
              "the shared home payload; the gateway also checks the token, applies the viewer's "
              "pop-up rules (a Redis hash) and adds for_you (the viewer's cached product "
              "ranking), with the envelope, rate limits, metrics and access log.", "",
              f"Other processes during the run: {r['machine_samples']}", ""]
    return "\n".join(lines)


def main() -> None:
    args, config, started, cores = gw.start_run(__doc__, FULL, QUICK)
    server_core, client_core = cores
    from tests.fakes import wechatpay as fakepay

    fake = fakepay.FakeWeChatPay()
    scratch = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    env = {**bm.ENV, "MEDIA_ROOT": str(scratch / "media"),
           "BENCH_LOG_FILE": str(scratch / "gateway.log"),
           "BENCH_BARE_SPEC": str(scratch / "bare_spec.pickle"),
           "PAYMENT_PROVIDER": "wechat", "WECHATPAY_API_BASE": fake.base_url,
           "WECHATPAY_MCHID": fakepay.MCHID, "WECHATPAY_APPID": fakepay.APPID,
           "WECHATPAY_PRIVATE_KEY": fakepay.MERCHANT_KEY_PEM,
           "WECHATPAY_CERT_SERIAL": fakepay.MERCHANT_SERIAL,
           "WECHATPAY_APIV3_KEY": fakepay.APIV3_KEY}
    settings = bm.settings_for(env)
    print(f"preparing database {bm.DB_NAME} and Redis prefix {bm.PREFIX}", flush=True)
    asyncio.run(bm.ensure_database())
    bm.migrate()
    bm.clean_redis()
    own = {os.getpid()}
    servers: list[rt.Server] = []
    samples: dict = {}
    try:
        asyncio.run(bm.empty_run_tables(settings))
        asyncio.run(bm.empty_run_tables(settings, GROWTH_TABLES))
        seeded = asyncio.run(bm.seed_catalogue(settings, config["products"]))
        home_rows = asyncio.run(seed_home(settings))
        admin_id = asyncio.run(admin_user(settings))
        addresses = asyncio.run(bm.buyer_addresses(settings, seeded["buyers"]))
        buyers = seeded["buyers"][:config["buyers"]]
        tokens = bm.mint_tokens(env, [(b, "user") for b in buyers])
        admin_token = bm.mint_tokens(env, [(admin_id, "admin")])[admin_id]
        quiet = rt.wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT",
                                                       "5" if args.quick else "30")))
        from pawhome.mall import catalogue_cache
        from pawhome.platform.cache import Cache

        cache = Cache(settings)  # only key() is used: the names the gateway reads
        home_keys = {"gen_key": catalogue_cache.list_generation_key(cache),
                     "page_key": cache.key("home", "mall")}
        Path(env["BENCH_BARE_SPEC"]).write_bytes(pickle.dumps({
            "lists": {"home": home_keys},
            "platform_certificate": fakepay.PLATFORM.certificate_pem,
            "mchid": fakepay.MCHID, "appid": settings.wechatpay_appid}))
        bare = rt.Server("bare", [bm.PYTHON, str(HERE / "bare_mall.py")], env, server_core)
        servers.append(bare)
        gateway = bm.gateway("gateway", env, server_core)
        servers.append(gateway)
        own |= {bare.pid, gateway.pid}

        print("checkout with coupons and points:", flush=True)
        samples["checkout"] = bm.busiest_processes(own)
        rounds = []
        for round_no in range(config["rounds"]):
            print(f" round {round_no + 1}", flush=True)
            rounds.append(checkout_round(gateway, bare, seeded, tokens, admin_token,
                                         addresses, config, cores, settings))

        print("mall home:", flush=True)
        api(gateway, "GET", "/v1/home/mall", tokens[buyers[0]])  # fills the shared part
        samples["home"] = bm.busiest_processes(own)
        home = home_phase(gateway, bare, [tokens[b] for b in buyers], config, cores)
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
        "machine_samples": samples, "config": config, "home_rows_seeded": home_rows,
        "rounds": rounds, "summary": summary(rounds), "home": home,
    }
    gw.finish_run("growth", result, write_markdown(result), args.quick, started)


async def admin_user(settings) -> int:
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session, session.begin():
            return (await bm.users(session, "growthbench-admin-", 1, "admin"))[0]
    finally:
        await db.close()


if __name__ == "__main__":
    main()
