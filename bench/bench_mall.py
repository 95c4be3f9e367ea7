"""Mall benchmark (issue 10 §7): product lists, order creation and WeChat Pay notifies, each
beside a bare Tornado handler doing the same storage work in the same run.

    python bench/bench_mall.py            (about 4 minutes; writes bench/results/mall.*)
    python bench/bench_mall.py --quick    (a smoke run, about 60 s; prints, writes nothing)

Gateway processes (bench/mall_gateway.py = run_gateway.py with two rate limits lifted, the
JSON log to a file) and bench/bare_mall.py on core 0; the load clients (bench/load_driver.py
for GETs, bench/request_load.py for prepared POSTs) on core 1; MariaDB and Redis unpinned.
Database `pawhome_bench_mall` (created and migrated here; the catalogue is seeded once and
reused, the order tables are emptied at the start of every run), Redis prefix
`pawhome_bench_mall:`, queue prefix `bench_mall.` (both deleted at the end). WeChat Pay is the
test fake (tests/fakes/wechatpay.py) served from a thread of this process, its keys made at
start: the gateways pay through it and its notifies are signed and encrypted as WeChat's.

1. products: the first page of GET /v1/products (default sort, limit 10) and of
   GET /v1/products?category_id=<a top category> (its descendants included), from the Redis
   page cache (PRODUCT_LIST_CACHE_SECONDS=3600, the page filled by the first request) and
   with the cache off (PRODUCT_LIST_CACHE_SECONDS=0: every request misses and runs the SQL),
   beside a bare MGET of the same two keys and a bare replay of the same SQL statements
   (captured from SQLAlchemy while pawhome.mall.product_views ran them here), 64 connections;
2. orders: 50 buyers (each with an address and a token), one connection each, place buy-now
   orders (POST /v1/orders with an Idempotency-Key) of one of 10 hot SKUs of one shop,
   quantity 1-3, each buyer a fixed number of orders one after another: with stock for the
   whole run, and with stock for half of the demand (it runs out mid-run); then stock is
   checked against the orders and the stock_movements ledger. Beside bare_mall.py's POST
   /bare/orders (the same reads, conditional UPDATE and INSERTs in one transaction);
3. notifies: orders of phase 2 paid through POST /v1/orders/{id}/pay (prepay at the fake),
   then WeChat's TRANSACTION.SUCCESS notifies POSTed to /v1/payments/wechat/notify, one at a
   time and 20 at once, each order's notify once; every order must end `paid` with one `pay`
   timeline entry. Beside bare_mall.py's POST /bare/notify.

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py), BENCH_QUIET_WAIT
(seconds to wait at most for the machine to be below 25 % busy first; 30, quick 5).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import pickle
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_community as cm  # noqa: E402 - CPU counters, list-case runner pieces
import bench_gateway as gw  # noqa: E402 - server, cores, migration, load driver
import bench_realtime as rt  # noqa: E402 - server with drained stderr, quiet wait, machine
import ws_load  # noqa: E402 - store counters, percentile

ROOT, RESULTS = gw.ROOT, gw.RESULTS
PYTHON = sys.executable
DB_NAME = "pawhome_bench_mall"
PREFIX = "pawhome_bench_mall:"
# The uncached gateway's own prefix: the cached gateway (and the capture) store the pages under
# PREFIX, so under this one no list page is ever found.
UNCACHED_PREFIX = "pawhome_bench_mall_nc:"
QUEUE_PREFIX = "bench_mall."
BUYER_PREFIX = "mallbench-buyer-"
SHOP_PREFIX = "mallbench-shop-"
HOT_SHOP = "mallbench-hot"
HOT_BRAND = "bench-hot"  # products.brand of the hot SKUs' products (replaced every run)
SHOPS = 20
NOTIFY = "/v1/payments/wechat/notify"
CACHED_SECONDS = "3600"  # the list page stays warm for the whole phase (production: 300 s)
ENV = {
    **gw.ENV,
    "DATABASE_URL": f"{gw.MYSQL}{DB_NAME}?charset=utf8mb4",
    "REDIS_PREFIX": PREFIX,
    "TASK_QUEUE_PREFIX": QUEUE_PREFIX,
    "LOG_LEVEL": "INFO",
    "MEDIA_STORAGE": "local",
}
# The tables a run fills; emptied at the start of every run so each run measures the same.
RUN_TABLES = ("orders", "order_items", "order_events", "refund_requests", "payments",
              "payment_refunds", "payment_notifications", "idempotency_records", "outbox",
              "notifications", "cart_items")

FULL = {"list_seconds": 4.0, "list_warmup": 1.0, "list_rounds": 2, "products": 2000,
        "buyers": 50, "orders_per_buyer": 12, "order_rounds": 2, "hot_skus": 10,
        "notify_sequential": 80, "notify_concurrent": 200, "notify_streams": 20,
        "notify_rounds": 2, "duplicates": 20, "pay_concurrency": 8}
QUICK = {**FULL, "list_seconds": 1.0, "list_warmup": 0.5, "list_rounds": 1,
         "orders_per_buyer": 4, "order_rounds": 1, "notify_sequential": 10,
         "notify_concurrent": 40, "notify_rounds": 1, "duplicates": 5}


def settings_for(env: dict):
    from settings import Settings

    return Settings(**{k.lower(): v for k, v in env.items()
                       if k.lower() in Settings.model_fields})


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def distribution(values_us: list[int]) -> dict:
    """p50/p99/max/mean in ms of latencies in microseconds."""
    if not values_us:
        return {"count": 0}
    ms = [v / 1000 for v in values_us]
    return {"count": len(ms), "p50_ms": round(ws_load.percentile(ms, 50), 2),
            "p99_ms": round(ws_load.percentile(ms, 99), 2), "max_ms": round(max(ms), 2),
            "mean_ms": round(statistics.mean(ms), 2)}


# -- the machine -------------------------------------------------------------------------------
def _process_times() -> dict[int, tuple[str, float]]:
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)
    return out


def _command(pid: int) -> str:
    """The program and its first arguments (enough to tell a pytest run from a server)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    words = [Path(argv[0].decode(errors="replace")).name] + \
        [a.decode(errors="replace") for a in argv[1:4] if a]
    return " ".join(words)[:90]


def busiest_processes(own: set[int], seconds: float = 2.0, top: int = 6) -> dict:
    """What else used the CPUs for `seconds`: the busiest processes that are not this
    benchmark's (CPU % of one core), and the whole machine's use (% of all cores)."""
    busy0, first = ws_load.machine_busy(), _process_times()
    time.sleep(seconds)
    busy1, second = ws_load.machine_busy(), _process_times()
    used = []
    for pid, (name, total) in second.items():
        if pid in own or pid not in first:
            continue
        share = 100 * (total - first[pid][1]) / seconds
        if share >= 1:
            used.append({"pid": pid, "cpu_percent": round(share, 1), "name": name,
                         "command": _command(pid)})
    used.sort(key=lambda p: -p["cpu_percent"])
    machine = round(100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 1)
    return {"at": dt.datetime.now(dt.UTC).strftime("%H:%M:%S UTC"), "machine_percent": machine,
            "loadavg": Path("/proc/loadavg").read_text().split()[:3], "others": used[:top]}


# -- data ----------------------------------------------------------------------------------------
async def ensure_database() -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(gw.MYSQL)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{DB_NAME}` "
                                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci"))
    await engine.dispose()


def migrate() -> None:
    from pawhome.platform import migrate as migrations

    migrations.upgrade(ENV["DATABASE_URL"])


async def users(session, prefix: str, count: int, role: str) -> list[int]:
    """`count` users named prefix+n (inserted once, reused), with settings rows; ids."""
    from sqlalchemy import insert, select

    from models.users import User, UserSettings

    openids = [f"{prefix}{n:03d}" for n in range(count)]
    known = dict((await session.execute(select(User.openid, User.id).where(
        User.openid.in_(openids)))).all())
    missing = [o for o in openids if o not in known]
    if missing:
        await session.execute(insert(User), [{"openid": o, "nickname": o, "role": role,
                                              "status": "active"} for o in missing])
        known = dict((await session.execute(select(User.openid, User.id).where(
            User.openid.in_(openids)))).all())
        await session.execute(insert(UserSettings).prefix_with("IGNORE"), [
            {"user_id": known[o], "notification_prefs": {}, "privacy_prefs": {}}
            for o in missing])
    return [known[o] for o in openids]


def variants(prefix: str) -> dict:
    """Media.variants as the media worker writes them: a JPEG and a WebP per width."""
    return {f"w{w}.{ext}": {"key": f"{prefix}w{w}.{ext}", "width": w, "height": w * 3 // 4,
                            "content_type": f"image/{'jpeg' if ext == 'jpg' else ext}"}
            for w in (240, 480, 1080) for ext in ("jpg", "webp")}


CATEGORY_TREE = {
    "猫狗主粮": ["猫粮", "狗粮", "处方粮", "冻干主粮"],
    "宠物零食": ["肉干", "冻干零食", "洁齿骨", "猫条"],
    "日用百货": ["猫砂", "尿垫", "食具水具", "牵引用品"],
    "玩具": ["逗猫棒", "发声玩具", "益智玩具", "磨牙玩具"],
    "洗护美容": ["沐浴露", "梳具", "指甲护理", "耳眼护理"],
    "医疗保健": ["驱虫", "营养补充", "皮肤护理", "肠胃调理"],
}
WORDS = ["鸡肉", "牛肉", "三文鱼", "鸭肉", "无谷", "低敏", "幼猫", "成犬", "全价", "高蛋白"]


async def seed_catalogue(settings, count: int) -> dict:
    """Once: 20 shops (express, pick-up), a three-level category tree, `count` products on
    sale spread over its leaves, each with a ready cover image and 1-3 SKUs whose stock went
    through the ledger; 50 buyers with an address; the hot shop. Every run: the previous
    run's hot products deleted."""
    from sqlalchemy import delete, func, insert, select, text

    from models.mall import Address, Category, Merchant, PickupPoint, Product, Sku, StockMovement
    from models.media import Media
    from pawhome.platform.db import Database

    db = Database(settings)
    started = time.monotonic()
    rng = random.Random(10)
    try:
        async with db.session() as session, session.begin():
            shops = await users(session, SHOP_PREFIX, SHOPS, "merchant")
            (hot_shop,) = await users(session, HOT_SHOP, 1, "merchant")
            buyers = await users(session, BUYER_PREFIX, 50, "user")
            have_merchants = set((await session.execute(select(Merchant.user_id).where(
                Merchant.user_id.in_([*shops, hot_shop])))).scalars())
            for n, shop in enumerate([*shops, hot_shop]):
                if shop in have_merchants:
                    continue
                session.add(Merchant(user_id=shop, name=f"萌宠好物{n:02d}号店", express_enabled=True,
                                     express_base_fee=800, express_free_over=9900,
                                     express_regions=[], local_windows=[], pickup_enabled=True))
                session.add(PickupPoint(merchant_id=shop, name="门店自提点", province="广东省",
                                        city="深圳市", district="南山区", detail="科技园一路 1 号",
                                        phone="13800138000", hours="09:00-21:00"))
            have_addresses = set((await session.execute(select(Address.user_id).where(
                Address.user_id.in_(buyers), Address.deleted_at.is_(None)))).scalars())
            session.add_all([Address(user_id=b, contact_name="张三", phone="13912345678",
                                     province="广东省", city="深圳市", district="南山区",
                                     detail=f"科技园南路 {n} 号", is_default=True)
                             for n, b in enumerate(buyers) if b not in have_addresses])
            await session.flush()

            if not (await session.execute(select(func.count()).select_from(Category))).scalar():
                for top_sort, (top, children) in enumerate(CATEGORY_TREE.items()):
                    parent = Category(name=top, sort=top_sort)
                    session.add(parent)
                    await session.flush()
                    for child_sort, child in enumerate(children):
                        middle = Category(name=child, parent_id=parent.id, sort=child_sort)
                        session.add(middle)
                        await session.flush()
                        session.add_all([Category(name=f"{child}{leaf}", parent_id=middle.id,
                                                  sort=i) for i, leaf in
                                         enumerate(("·进口", "·国产"))])
                await session.flush()
            rows = (await session.execute(select(Category.id, Category.parent_id))).all()
            parents = {p for _, p in rows if p is not None}
            leaves = sorted(i for i, _ in rows if i not in parents)
            tops = sorted(i for i, p in rows if p is None)

            # The previous run's hot products (their SKUs and ledger rows go with them).
            hot_ids = list((await session.execute(select(Product.id).where(
                Product.brand == HOT_BRAND))).scalars())
            if hot_ids:
                hot_skus = select(Sku.id).where(Sku.product_id.in_(hot_ids))
                await session.execute(delete(StockMovement).where(
                    StockMovement.sku_id.in_(hot_skus)))
                await session.execute(delete(Sku).where(Sku.product_id.in_(hot_ids)))
                await session.execute(delete(Product).where(Product.id.in_(hot_ids)))

            have = (await session.execute(select(func.count()).select_from(Product).where(
                Product.merchant_id.in_(shops)))).scalar()
            created = 0
            if have < count:
                missing = count - have
                keys = [f"bench-mall/{uuid.uuid4().hex}/" for _ in range(missing)]
                await session.execute(insert(Media), [
                    {"owner_id": shops[n % SHOPS], "kind": "image", "status": "ready",
                     "storage_key": key + "original", "content_type": "image/jpeg",
                     "size": 180_000, "width": 1080, "height": 810, "variants": variants(key),
                     "moderation": "pass"} for n, key in enumerate(keys)])
                media_of = dict((await session.execute(select(Media.storage_key, Media.id).where(
                    Media.storage_key.in_([k + "original" for k in keys])))).all())
                last = (await session.execute(select(func.max(Product.id)))).scalar() or 0
                now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
                plans = []
                for n, key in enumerate(keys):
                    prices = sorted(rng.randrange(990, 29900, 10)
                                    for _ in range(rng.randint(1, 3)))
                    words = rng.sample(WORDS, 2)
                    plans.append((prices, {
                        "merchant_id": shops[n % SHOPS], "category_id": rng.choice(leaves),
                        "name": f"{words[0]}{words[1]}宠物精选 {have + n:04d}",
                        "subtitle": "官方正品 顺丰包邮", "description": "好吃不贵，猫狗都爱。" * 8,
                        "media_ids": [media_of[key + "original"]], "brand": "萌宠优选",
                        "tags": ["包邮"], "pet_types": rng.choice([["cat"], ["dog"],
                                                                   ["cat", "dog"]]),
                        "spec_attrs": [{"name": "规格", "values": [f"{i + 1}kg" for i in
                                                                 range(len(prices))]}],
                        "status": "on_sale", "price_min": prices[0], "price_max": prices[-1],
                        "sales_count": int(rng.paretovariate(1.2) * 10),
                        "on_sale_at": now - dt.timedelta(minutes=rng.randint(0, 90 * 1440))}))
                await session.execute(insert(Product), [p for _, p in plans])
                product_ids = list((await session.execute(select(Product.id).where(
                    Product.id > last).order_by(Product.id))).scalars())
                skus = [{"product_id": pid, "spec_values": [f"{i + 1}kg"], "spec_key": f"{i + 1}kg",
                         "spec_text": f"规格:{i + 1}kg", "price": price, "original_price": price,
                         "stock": 100}
                        for pid, (prices, _) in zip(product_ids, plans, strict=True)
                        for i, price in enumerate(prices)]
                await session.execute(insert(Sku), skus)
                # The catalogue's stock went through the ledger like a merchant's.
                await session.execute(text(
                    "INSERT INTO stock_movements (sku_id, delta, stock_after, reason, ref_type, "
                    "actor_id, note, created_at) SELECT s.id, s.stock, s.stock, 'initial', '', "
                    "p.merchant_id, 'bench seed', UTC_TIMESTAMP(6) FROM skus s JOIN products p "
                    "ON p.id = s.product_id WHERE p.id > :last"), {"last": last})
                created = len(product_ids)
    finally:
        await db.close()
    return {"created": created, "products": max(have, count), "categories": len(rows),
            "top_categories": tops, "shops": shops, "hot_shop": hot_shop, "buyers": buyers,
            "seconds": round(time.monotonic() - started, 1)}


async def empty_run_tables(settings, tables: tuple[str, ...] = RUN_TABLES) -> None:
    from sqlalchemy import text

    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            for table in tables:
                await conn.execute(text(f"TRUNCATE TABLE `{table}`"))
            await conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    finally:
        await db.close()


async def buyer_addresses(settings, buyers: list[int]) -> dict[int, int]:
    from sqlalchemy import select

    from models.mall import Address
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session:
            return dict((await session.execute(select(Address.user_id, Address.id).where(
                Address.user_id.in_(buyers), Address.deleted_at.is_(None)))).all())
    finally:
        await db.close()


def mint_tokens(env: dict, people: list[tuple[int, str]]) -> dict[int, str]:
    from pawhome.identity.tokens import issue_access_token

    settings = settings_for(env)
    return {uid: issue_access_token(settings, uid, role, uuid.uuid4().hex)[0]
            for uid, role in people}


async def hot_skus(settings, merchant_id: int, count: int, stocks: list[int],
                   label: str) -> list[int]:
    """`count` products of the hot shop, one SKU each at 39.00, their stock put in through
    pawhome.mall.stock.adjust (an `initial` ledger row), like a merchant's first count."""
    from models.mall import Product, Sku
    from pawhome.mall import stock
    from pawhome.platform.db import Database

    db = Database(settings)
    ids = []
    try:
        async with db.session() as session, session.begin():
            for n in range(count):
                product = Product(merchant_id=merchant_id, name=f"秒杀冻干 {label} {n}",
                                  description="限时", brand=HOT_BRAND, media_ids=[], tags=[],
                                  pet_types=["cat"], spec_attrs=[], status="on_sale",
                                  price_min=3900, price_max=3900)
                session.add(product)
                await session.flush()
                sku = Sku(product_id=product.id, spec_values=[], spec_key="", spec_text="",
                          price=3900, original_price=3900, stock=0)
                session.add(sku)
                await session.flush()
                if await stock.adjust(session, sku.id, stocks[n], actor_id=merchant_id,
                                      note="bench initial", reason="initial") is None:
                    raise RuntimeError("initial stock refused")
                ids.append(sku.id)
    finally:
        await db.close()
    return ids


# -- products ----------------------------------------------------------------------------------
def list_paths(top_category: int) -> dict[str, str]:
    return {"default": "/v1/products", "category": f"/v1/products?category_id={top_category}"}


async def capture_list_sql(settings, top_category: int) -> dict:
    """Per list case: the two Redis keys the gateway reads and the SQL statements it runs on
    a miss, captured from SQLAlchemy while pawhome.mall.product_views' own code ran here; and
    the page's product ids."""
    from sqlalchemy import event

    from pawhome.mall import catalogue_cache, product_views
    from pawhome.platform.resources import Resources

    resources = Resources(settings)
    captured: list[tuple[str, tuple]] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        captured.append((statement, tuple(parameters or ())))

    event.listen(resources.db.engine.sync_engine, "before_cursor_execute", on_execute)
    out = {}
    try:
        for case, query in (("default", product_views.ProductListQuery()),
                            ("category", product_views.ProductListQuery(
                                category_id=top_category))):
            gen_key, page_key = product_views.list_reads(resources, query)
            await resources.cache.redis.delete(page_key)
            captured.clear()
            page = await product_views.list_page(resources, query)
            await resources.cache.redis.delete(page_key)  # the gateway fills it itself
            out[case] = {"gen_key": gen_key, "page_key": page_key, "sql": list(captured),
                         "ids": [p["id"] for p in json.loads(page)["items"]],
                         "total": json.loads(page)["total"]}
        assert catalogue_cache  # the keys above are catalogue_cache's
    finally:
        await resources.close()
    return out


def check_lists(cached_gw: rt.Server, db_gw: rt.Server, bare: rt.Server, paths: dict,
                lists: dict) -> dict:
    """The cached page the bare handler reads is the gateway's, byte for byte; the bare SQL
    returns the page's products in the gateway's order."""
    import httpx

    checks = {}
    for case, path in paths.items():
        first = httpx.get(cached_gw.url(path))  # fills the page cache
        first.raise_for_status()
        again = httpx.get(cached_gw.url(path))
        mine = httpx.get(bare.url(f"/bare/products/cached/{case}"))
        mine.raise_for_status()
        if not first.content == again.content == mine.content:
            raise RuntimeError(f"{case}: the bare cached page differs from the gateway's")
        fresh = httpx.get(db_gw.url(path))
        fresh.raise_for_status()
        rows = httpx.get(bare.url(f"/bare/products/db/{case}"))
        rows.raise_for_status()
        gateway_ids = [p["id"] for p in fresh.json()["data"]["items"]]
        product_rows = next(r for r in rows.json()["data"] if r and len(r[0]) > 10)
        bare_ids = [r[0] for r in product_rows]
        if not gateway_ids == bare_ids == lists[case]["ids"]:
            raise RuntimeError(f"{case}: pages differ: gateway {gateway_ids}, bare {bare_ids}")
        checks[case] = {"page_bytes": len(first.content), "bare_db_bytes": len(rows.content),
                        "total": lists[case]["total"], "statements": len(lists[case]["sql"])}
    return checks


def run_list_case(server: rt.Server, path: str, config: dict, cores,
                  tokens: list[str] | None = None) -> dict:
    """One measured load_driver run (after a warm-up): 64 keep-alive connections, anonymous
    or signed in with `tokens` (taken in turn)."""
    server_core, client_core = cores
    tokens = tokens or []
    rt.clear_prefix(PREFIX + "rl:*")
    gw.load(server.url(path), tokens, config["list_warmup"], client_core)
    busy_before = rt.machine_busy_percent(0.5)
    stores0, cpu0, proc0 = ws_load.store_counters({"stores": rt.STORES}), cm.cpu_times(), \
        cm.process_cpu_seconds(server.pid)
    started = time.monotonic()
    figures = gw.load(server.url(path), tokens, config["list_seconds"], client_core)
    elapsed = time.monotonic() - started
    stores1, cpu1, proc1 = ws_load.store_counters({"stores": rt.STORES}), cm.cpu_times(), \
        cm.process_cpu_seconds(server.pid)
    requests = max(1, figures["requests"])
    core = f"cpu{server_core}" if server_core is not None else "cpu"
    other = f"cpu{client_core}" if client_core is not None else "cpu"
    return {**figures,
            "sql_per_request": round((stores1[0] - stores0[0]) / requests, 2),
            "redis_cmds_per_request": round((stores1[1] - stores0[1]) / requests, 2),
            "server_cpu_percent": round(100 * (proc1 - proc0) / elapsed, 1),
            "server_core_busy_percent": cm.percent(cpu0[core], cpu1[core]),
            "load_core_busy_percent": cm.percent(cpu0[other], cpu1[other]),
            "machine_busy_percent": cm.percent(cpu0["cpu"], cpu1["cpu"]),
            "machine_busy_before_percent": busy_before}


def list_phase(cached_gw, db_gw, bare, paths: dict, config: dict, cores) -> dict:
    """Every case alternately, `list_rounds` times, summarised over its rounds."""
    cases = []
    for case, path in paths.items():
        cases += [(case, "cached", "gateway", cached_gw, path),
                  (case, "cached", "bare", bare, f"/bare/products/cached/{case}"),
                  (case, "uncached", "gateway", db_gw, path),
                  (case, "uncached", "bare", bare, f"/bare/products/db/{case}")]
    runs: dict[tuple, list] = {c[:3]: [] for c in cases}
    for round_no in range(config["list_rounds"]):
        for case, cache, server_label, server, path in cases:
            figures = run_list_case(server, path, config, cores)
            runs[(case, cache, server_label)].append(figures)
            print(f"  round {round_no + 1} {case:8} {cache:8} {server_label:7} "
                  f"{figures['rps']:>8.1f} req/s  p50 {figures['p50_ms']:.2f} ms  p99 "
                  f"{figures['p99_ms']:.2f} ms  SQL/req {figures['sql_per_request']}  "
                  f"server CPU {figures['server_cpu_percent']} %  machine "
                  f"{figures['machine_busy_percent']} %"
                  + (f"  non-2xx {figures['non_2xx']}" if figures["non_2xx"] else ""),
                  flush=True)
    out: dict = {}
    for (case, cache, server_label), figures in runs.items():
        out.setdefault(case, {}).setdefault(cache, {})[server_label] = cm.summarise(figures)
    for case in out.values():
        for pair in case.values():
            pair["ratio"] = cm.ratio(pair["gateway"], pair["bare"])
    return out


# -- prepared POST load ----------------------------------------------------------------------------
def drive(server: rt.Server, streams: list[list[dict]], cores, timeout: float = 240) -> dict:
    """Run bench/request_load.py on the load core against `server`; its result with the
    server's CPU, the stores' work per request and how busy the machine was."""
    server_core, client_core = cores
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="bench-mall-load-",
                                     delete=False) as handle:
        json.dump({"host": "127.0.0.1", "port": server.port, "streams": streams}, handle)
    stores0, cpu0, proc0 = ws_load.store_counters({"stores": rt.STORES}), cm.cpu_times(), \
        cm.process_cpu_seconds(server.pid)
    started = time.monotonic()
    try:
        out = subprocess.run([PYTHON, str(HERE / "request_load.py"), handle.name], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True, timeout=timeout,
                             preexec_fn=gw.pinned(client_core)).stdout
    finally:
        os.unlink(handle.name)
    elapsed = time.monotonic() - started
    stores1, cpu1, proc1 = ws_load.store_counters({"stores": rt.STORES}), cm.cpu_times(), \
        cm.process_cpu_seconds(server.pid)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"request_load.py printed no result:\n{out[-2000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    requests = max(1, len(result["records"]))
    core = f"cpu{server_core}" if server_core is not None else "cpu"
    other = f"cpu{client_core}" if client_core is not None else "cpu"
    result.update({
        "sql_per_request": round((stores1[0] - stores0[0]) / requests, 1),
        "redis_cmds_per_request": round((stores1[1] - stores0[1]) / requests, 1),
        "server_cpu_percent": round(100 * (proc1 - proc0) / elapsed, 1),
        "server_core_busy_percent": cm.percent(cpu0[core], cpu1[core]),
        "load_core_busy_percent": cm.percent(cpu0[other], cpu1[other]),
        "machine_busy_percent": cm.percent(cpu0["cpu"], cpu1["cpu"])})
    return result


def statuses(records: list) -> dict[str, int]:
    out: dict[str, int] = {}
    for record in records:
        out[str(record[2])] = out.get(str(record[2]), 0) + 1
    return dict(sorted(out.items()))


# -- orders -------------------------------------------------------------------------------------
def order_plan(buyers: list[int], per_buyer: int, skus: int) -> list[list[tuple[int, int]]]:
    """Per buyer, its orders as (hot SKU index, quantity 1-3): the buyers start on different
    SKUs and walk through all ten, so every SKU is hot at every moment."""
    return [[((b + k) % skus, 1 + (b * 7 + k) % 3) for k in range(per_buyer)]
            for b in range(len(buyers))]


async def check_stock(settings, sku_ids: list[int], initial: list[int]) -> dict:
    """Zero oversell, per SKU: stock = initial - sum of the ordered quantities, never below
    zero, equal to the sum of its stock_movements and to the ledger's last balance; one
    order_placed ledger row per order."""
    from sqlalchemy import text

    from pawhome.platform.db import Database

    db = Database(settings)
    rows = []
    try:
        async with db.engine.connect() as conn:
            for sku_id, start in zip(sku_ids, initial, strict=True):
                stock = (await conn.execute(text("SELECT stock FROM skus WHERE id = :s"),
                                            {"s": sku_id})).scalar_one()
                ordered, orders = (await conn.execute(text(
                    "SELECT COALESCE(SUM(quantity), 0), COUNT(DISTINCT order_id) FROM "
                    "order_items WHERE sku_id = :s"), {"s": sku_id})).one()
                ledger, placed = (await conn.execute(text(
                    "SELECT COALESCE(SUM(delta), 0), SUM(reason = 'order_placed') FROM "
                    "stock_movements WHERE sku_id = :s"), {"s": sku_id})).one()
                last = (await conn.execute(text(
                    "SELECT stock_after FROM stock_movements WHERE sku_id = :s ORDER BY id "
                    "DESC LIMIT 1"), {"s": sku_id})).scalar_one()
                rows.append({"sku_id": sku_id, "initial": start, "ordered": int(ordered),
                             "orders": int(orders), "stock": int(stock),
                             "ledger_sum": int(ledger), "ledger_last": int(last),
                             "placed_rows": int(placed or 0),
                             "ok": stock == start - ordered and stock >= 0
                             and stock == ledger == last and int(placed or 0) == orders})
    finally:
        await db.close()
    return {"ok": all(r["ok"] for r in rows), "skus": rows,
            "orders": sum(r["orders"] for r in rows),
            "units_ordered": sum(r["ordered"] for r in rows),
            "stock_left": sum(r["stock"] for r in rows)}


def order_streams(path: str, buyers: list[int], tokens: dict, addresses: dict,
                  plan: list, sku_ids: list[int], tag: str) -> list[list[dict]]:
    streams = []
    for b, buyer in enumerate(buyers):
        requests = []
        for k, (index, quantity) in enumerate(plan[b]):
            requests.append({"method": "POST", "path": path, "headers": {
                **auth(tokens[buyer]), "Content-Type": "application/json",
                "Idempotency-Key": f"{tag}-{b}-{k}"}, "body": json.dumps({
                    "items": [{"sku_id": sku_ids[index], "quantity": quantity}],
                    "address_id": addresses[buyer]})})
        streams.append(requests)
    return streams


def order_case(server: rt.Server, path: str, label: str, stock_mode: str, seeded: dict,
               tokens: dict, addresses: dict, config: dict, cores, settings) -> dict:
    buyers = seeded["buyers"][:config["buyers"]]
    plan = order_plan(buyers, config["orders_per_buyer"], config["hot_skus"])
    demand = [0] * config["hot_skus"]
    for orders in plan:
        for index, quantity in orders:
            demand[index] += quantity
    # "ample": stock for every order; "runs out": for half of each SKU's demand.
    initial = [100_000] * config["hot_skus"] if stock_mode == "ample" else \
        [d // 2 for d in demand]
    tag = f"{label}-{stock_mode}-{uuid.uuid4().hex[:8]}".replace(" ", "")
    sku_ids = asyncio.run(hot_skus(settings, seeded["hot_shop"], config["hot_skus"], initial,
                                   tag))
    rt.clear_prefix(PREFIX + "rl:*")  # 60 orders a minute per buyer: each case starts afresh
    result = drive(server, order_streams(path, buyers, tokens, addresses, plan, sku_ids, tag),
                   cores)
    records = result.pop("records")
    created = [r[3] for r in records if r[2] == 201]
    refused = [r[3] for r in records if r[2] == 409]
    stock = asyncio.run(check_stock(settings, sku_ids, initial))
    elapsed = result["elapsed"]
    figures = {
        "server": label, "stock": stock_mode, "buyers": len(buyers),
        "requests": len(records), "statuses": statuses(records), "seconds": round(elapsed, 2),
        "orders_per_second": round(len(created) / elapsed, 1),
        "requests_per_second": round(len(records) / elapsed, 1),
        "latency": distribution([r[3] for r in records]),
        "latency_created": distribution(created), "latency_out_of_stock": distribution(refused),
        "demand_units": sum(demand), "initial_stock": sum(initial),
        "oversell_check": stock,
        "created_match_orders": len(created) == stock["orders"],
        **{k: result[k] for k in ("sql_per_request", "redis_cmds_per_request",
                                  "server_cpu_percent", "server_core_busy_percent",
                                  "load_core_busy_percent", "machine_busy_percent")},
        "failures": result["failures"][:5], "sku_ids": sku_ids,
    }
    print(f"  orders {label:7} stock {stock_mode:8} {figures['orders_per_second']:>7.1f} "
          f"orders/s ({figures['requests_per_second']} req/s)  p50 "
          f"{figures['latency'].get('p50_ms')} ms  p99 {figures['latency'].get('p99_ms')} ms  "
          f"{figures['statuses']}  SQL/req {figures['sql_per_request']}  oversell check "
          f"{'ok' if stock['ok'] and figures['created_match_orders'] else 'FAILED'}  "
          f"(units ordered {stock['units_ordered']} of {sum(initial)})", flush=True)
    return figures


def orders_phase(gateway: rt.Server, bare: rt.Server, seeded: dict, tokens: dict,
                 addresses: dict, config: dict, cores, settings) -> list[dict]:
    """Gateway and bare alternately, ample stock and running out, `order_rounds` times. The
    bare handler's only outbox row is the unpaid-order timeout task, due in 30 minutes, so
    the gateway's relay (running meanwhile) never touches the bare's rows."""
    cases = []
    for _ in range(config["order_rounds"]):
        for stock_mode in ("ample", "runs out"):
            for label, server, path in (("gateway", gateway, "/v1/orders"),
                                        ("bare", bare, "/bare/orders")):
                cases.append(order_case(server, path, label, stock_mode, seeded, tokens,
                                        addresses, config, cores, settings))
    return cases


# -- notifies -----------------------------------------------------------------------------------
async def pending_orders(settings, sku_ids: list[int]) -> list[dict]:
    """The unpaid orders of these SKUs, oldest first."""
    from sqlalchemy import text

    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT DISTINCT o.id, o.order_no, o.user_id, o.payable_amount FROM orders o "
                "JOIN order_items i ON i.order_id = o.id WHERE o.status = 'pending_payment' AND "
                f"i.sku_id IN ({','.join(str(int(s)) for s in sku_ids)}) ORDER BY o.id"))).all()
    finally:
        await db.close()
    return [{"id": r[0], "order_no": r[1], "user_id": r[2], "amount": r[3]} for r in rows]


async def prepay(gateway: rt.Server, orders: list[dict], tokens: dict, concurrency: int) -> dict:
    """POST /v1/orders/{id}/pay for every order, as the buyer (the gateway asks the fake
    WeChat Pay for a prepay and stores the payment row)."""
    import httpx

    failures: list[str] = []
    times: list[int] = []
    queue = list(orders)

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            order = queue.pop()
            sent = time.perf_counter()
            reply = await client.post(f"/v1/orders/{order['id']}/pay",
                                      headers=auth(tokens[order["user_id"]]))
            times.append(int((time.perf_counter() - sent) * 1e6))
            if reply.status_code != 200 or not reply.json()["data"]["package"].startswith(
                    "prepay_id="):
                failures.append(f"{order['id']}: {reply.status_code} {reply.text[:200]}")

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=gateway.url(""), timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    if failures:
        raise RuntimeError(f"{len(failures)} prepays failed, e.g. {failures[:3]}")
    return {"orders": len(orders), "seconds": round(time.perf_counter() - started, 1),
            "latency": distribution(times)}


def notify_streams(fake, path: str, orders: list[dict], streams: int) -> list[list[dict]]:
    """WeChat's signed, encrypted TRANSACTION.SUCCESS notify for each order (built now: the
    timestamp must be within 5 minutes), dealt out over `streams` connections."""
    out: list[list[dict]] = [[] for _ in range(streams)]
    for n, order in enumerate(orders):
        headers, body = fake.state.payment_notification(order["order_no"])
        out[n % streams].append({"method": "POST", "path": path, "headers": {
            **headers, "Content-Type": "application/json", "User-Agent": "Mozilla/4.0"},
            "body": body.decode()})
    return out


async def check_paid(settings, orders: list[dict]) -> dict:
    """Every order paid exactly once: status paid, one `pay` timeline entry, its payment
    paid, one applied notify record."""
    from sqlalchemy import text

    from pawhome.platform.db import Database

    ids = ",".join(str(int(o["id"])) for o in orders)
    db = Database(settings)
    try:
        async with db.engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT o.id, o.status, o.paid_amount = o.payable_amount, "
                "(SELECT COUNT(*) FROM order_events e WHERE e.order_id = o.id AND "
                "e.action = 'pay'), p.status, (SELECT COUNT(*) FROM payment_notifications n "
                "WHERE n.out_trade_no = o.order_no AND n.outcome = 'applied') FROM orders o "
                "LEFT JOIN payments p ON p.payable_type = 'order' AND p.payable_id = o.id "
                f"WHERE o.id IN ({ids})"))).all()
    finally:
        await db.close()
    bad = [list(r) for r in rows if not (r[1] == "paid" and r[2] and r[3] == 1
                                         and r[4] == "paid" and r[5] == 1)]
    return {"ok": len(rows) == len(orders) and not bad, "orders": len(rows),
            "paid_once": len(rows) - len(bad), "bad": bad[:5]}


def notify_case(server: rt.Server, path: str, label: str, mode: str, orders: list[dict],
                streams: int, fake, cores, settings) -> dict:
    result = drive(server, notify_streams(fake, path, orders, streams), cores)
    records = result.pop("records")
    paid = asyncio.run(check_paid(settings, orders))
    figures = {
        "server": label, "mode": mode, "connections": streams, "notifies": len(records),
        "statuses": statuses(records), "seconds": round(result["elapsed"], 2),
        "notifies_per_second": round(len(records) / result["elapsed"], 1),
        "latency": distribution([r[3] for r in records]), "paid_check": paid,
        **{k: result[k] for k in ("sql_per_request", "redis_cmds_per_request",
                                  "server_cpu_percent", "server_core_busy_percent",
                                  "load_core_busy_percent", "machine_busy_percent")},
        "failures": result["failures"][:5]}
    print(f"  notify {label:7} {mode:10} {figures['notifies_per_second']:>7.1f} notifies/s  p50 "
          f"{figures['latency'].get('p50_ms')} ms  p99 {figures['latency'].get('p99_ms')} ms  "
          f"{figures['statuses']}  SQL/req {figures['sql_per_request']}  paid exactly once "
          f"{'ok' if paid['ok'] else 'FAILED ' + str(paid)}", flush=True)
    return figures


def resend(server: rt.Server, orders: list[dict], fake, cores, settings) -> dict:
    """WeChat's retries: the notifies of `orders` again (new notify ids, as a retry after a
    lost answer may carry): answered SUCCESS, nothing applied twice."""
    result = drive(server, notify_streams(fake, NOTIFY, orders, 4), cores)
    paid = asyncio.run(check_paid(settings, orders))
    return {"resent": len(result["records"]), "statuses": statuses(result["records"]),
            "paid_check": paid}


def outbox_due(settings) -> int:
    from sqlalchemy import text

    from pawhome.platform.db import Database

    async def count() -> int:
        db = Database(settings)
        try:
            async with db.engine.connect() as conn:
                return int((await conn.execute(text(
                    "SELECT COUNT(*) FROM outbox WHERE available_at <= UTC_TIMESTAMP(6)"))
                    ).scalar_one())
        finally:
            await db.close()

    return asyncio.run(count())


def outbox_max_id(settings) -> int:
    from sqlalchemy import text

    from pawhome.platform.db import Database

    async def top() -> int:
        db = Database(settings)
        try:
            async with db.engine.connect() as conn:
                return int((await conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM outbox"))
                            ).scalar_one())
        finally:
            await db.close()

    return asyncio.run(top())


def drop_outbox_after(settings, last_id: int) -> int:
    """The bare handler's outbox rows (no relay of its own): deleted, so no gateway relays
    them later."""
    from sqlalchemy import text

    from pawhome.platform.db import Database

    async def drop() -> int:
        db = Database(settings)
        try:
            async with db.engine.begin() as conn:
                return int((await conn.execute(text("DELETE FROM outbox WHERE id > :i"),
                                               {"i": last_id})).rowcount)
        finally:
            await db.close()

    return asyncio.run(drop())


def wait_relayed(settings, seconds: float = 15) -> int:
    """Wait until the gateway's relay has handed every due outbox row on; how many were left."""
    deadline = time.monotonic() + seconds
    due = outbox_due(settings)
    while due and time.monotonic() < deadline:
        time.sleep(0.5)
        due = outbox_due(settings)
    return due


# -- report --------------------------------------------------------------------------------------
def mean_of(cases: list[dict], key: str, sub: str | None = None) -> float:
    values = [(c[key][sub] if sub else c[key]) for c in cases]
    return round(statistics.mean(values), 2)


def order_summary(cases: list[dict]) -> dict:
    out: dict = {}
    for stock_mode in ("ample", "runs out"):
        for label in ("gateway", "bare"):
            mine = [c for c in cases if c["server"] == label and c["stock"] == stock_mode]
            out.setdefault(stock_mode, {})[label] = {
                "orders_per_second": mean_of(mine, "orders_per_second"),
                "requests_per_second": mean_of(mine, "requests_per_second"),
                "p50_ms": mean_of(mine, "latency", "p50_ms"),
                "p99_ms": mean_of(mine, "latency", "p99_ms"),
                "sql_per_request": mean_of(mine, "sql_per_request"),
                "server_cpu_percent": mean_of(mine, "server_cpu_percent"),
                "oversell_checks_ok": all(c["oversell_check"]["ok"]
                                          and c["created_match_orders"] for c in mine),
                "rounds": len(mine)}
        g, b = out[stock_mode]["gateway"], out[stock_mode]["bare"]
        out[stock_mode]["ratio"] = {
            "orders_per_second": round(g["orders_per_second"] / b["orders_per_second"], 3),
            "p50": round(g["p50_ms"] / b["p50_ms"], 3), "p99": round(g["p99_ms"] / b["p99_ms"], 3)}
    return out


def notify_summary(cases: list[dict]) -> dict:
    out: dict = {}
    for mode in ("sequential", "concurrent"):
        for label in ("gateway", "bare"):
            mine = [c for c in cases if c["server"] == label and c["mode"] == mode]
            out.setdefault(mode, {})[label] = {
                "notifies_per_second": mean_of(mine, "notifies_per_second"),
                "p50_ms": mean_of(mine, "latency", "p50_ms"),
                "p99_ms": mean_of(mine, "latency", "p99_ms"),
                "sql_per_request": mean_of(mine, "sql_per_request"),
                "server_cpu_percent": mean_of(mine, "server_cpu_percent"),
                "paid_once_ok": all(c["paid_check"]["ok"] for c in mine),
                "notifies": sum(c["notifies"] for c in mine), "rounds": len(mine)}
        g, b = out[mode]["gateway"], out[mode]["bare"]
        out[mode]["ratio"] = {
            "notifies_per_second": round(g["notifies_per_second"] / b["notifies_per_second"], 3),
            "p50": round(g["p50_ms"] / b["p50_ms"], 3), "p99": round(g["p99_ms"] / b["p99_ms"], 3)}
    return out


def cached_bound(lists: dict) -> str:
    """Which side set the pace of the cached list cases: the load client (Python) or the
    servers."""
    cases = [pair[label] for case in lists.values() for label in ("gateway", "bare")
             for pair in (case["cached"],)]
    client = max(c["load_core_busy_percent"] for c in cases)
    server = min(c["server_cpu_percent"] for c in cases)
    if client >= 85:
        return (f"the load client's core was up to {client:.0f} % busy (bench/load_driver.py "
                "is Python; wrk is not installed here), so these cases measure the client "
                "nearly as much as the servers.")
    return (f"each server process used {server:.0f} % or more of its core while the load "
            f"client's core stayed at or below {client:.0f} %, so these cases measure the "
            "servers.")


def write_markdown(r: dict) -> str:
    m, c = r["machine"], r["config"]
    lists, orders, notifies = r["products"], r["orders_summary"], r["notify_summary"]
    lines = [
        "# Mall benchmark (issue 10 §7)",
        "",
        f"Run {r['when']} on {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}, in {r['duration_seconds']:.0f} s. Gateway "
        "(bench/mall_gateway.py = run_gateway.py with the `mall.products` and `orders.pay` "
        "rate limits lifted, see its docstring) and the bare handlers (bench/bare_mall.py) on "
        f"core {m['server_core']}, the load clients on core {m['client_core']}; MariaDB and "
        "Redis unpinned. Gateway at LOG_LEVEL=INFO, its JSON access log to a file "
        f"({r['access_log']['lines']} lines this run, deleted after), Prometheus metrics on. "
        f"Database `{DB_NAME}`, Redis prefix `{PREFIX}`. Produced by "
        "`python bench/bench_mall.py`.",
        "",
        "**Shared machine.** Other sessions use these two cores too; the busiest other "
        "processes, sampled for 2 s before each phase (CPU % of one core):",
        "",
        "| when | machine busy % (all cores) | load avg | busiest other processes |",
        "|---|---:|---|---|",
    ]
    for phase, sample in r["machine_samples"].items():
        others = "; ".join(f"{p['command'] or p['name']} {p['cpu_percent']}%"
                           for p in sample["others"]) or "none above 1 %"
        lines.append(f"| {phase} ({sample['at']}) | {sample['machine_percent']} | "
                     f"{' '.join(sample['loadavg'])} | {others} |")
    lines += [
        "",
        "Figures from the same run only: compare the gateway with the bare handler beside it "
        "(the ratio), not with other runs.",
        "",
        "## Summary",
        "",
        "| figure | gateway | bare | ratio (gateway / bare) |",
        "|---|---:|---:|---:|",
    ]
    for case, title in (("default", "products, first page, default sort"),
                        ("category", "products, first page, top category + descendants")):
        for cache, how in (("cached", "cached (Redis)"), ("uncached", "uncached (SQL)")):
            pair = lists[case][cache]
            g, b, q = pair["gateway"], pair["bare"], pair["ratio"]
            lines.append(f"| {title}, {how}: req/s | {g['rps']:.0f} | {b['rps']:.0f} | "
                         f"{q['rps']:.2f} |")
            lines.append(f"| {title}, {how}: p50 / p99 ms | {g['p50_ms']:.2f} / "
                         f"{g['p99_ms']:.2f} | {b['p50_ms']:.2f} / {b['p99_ms']:.2f} | "
                         f"{q['p50']:.2f} / {q['p99']:.2f} |")
    for stock_mode, title in (("ample", "orders, 50 buyers, 10 hot SKUs, stock for all"),
                              ("runs out", "orders, stock for half the demand (runs out)")):
        g, b, q = orders[stock_mode]["gateway"], orders[stock_mode]["bare"], \
            orders[stock_mode]["ratio"]
        lines.append(f"| {title}: orders/s | {g['orders_per_second']:.0f} | "
                     f"{b['orders_per_second']:.0f} | {q['orders_per_second']:.2f} |")
        lines.append(f"| {title}: p50 / p99 ms (every request) | {g['p50_ms']:.2f} / "
                     f"{g['p99_ms']:.2f} | {b['p50_ms']:.2f} / {b['p99_ms']:.2f} | "
                     f"{q['p50']:.2f} / {q['p99']:.2f} |")
        lines.append(f"| {title}: zero oversell (stock = initial - ordered >= 0 = ledger) | "
                     f"{'yes' if g['oversell_checks_ok'] else 'NO'} | "
                     f"{'yes' if b['oversell_checks_ok'] else 'NO'} | |")
    for mode, title in (("sequential", "payment notify, one at a time"),
                        ("concurrent", f"payment notify, {c['notify_streams']} at once")):
        g, b, q = notifies[mode]["gateway"], notifies[mode]["bare"], notifies[mode]["ratio"]
        lines.append(f"| {title}: p50 / p99 ms | {g['p50_ms']:.2f} / {g['p99_ms']:.2f} | "
                     f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f} | {q['p50']:.2f} / "
                     f"{q['p99']:.2f} |")
        lines.append(f"| {title}: notifies/s | {g['notifies_per_second']:.0f} | "
                     f"{b['notifies_per_second']:.0f} | {q['notifies_per_second']:.2f} |")
        lines.append(f"| {title}: every order paid exactly once | "
                     f"{'yes' if g['paid_once_ok'] else 'NO'} | "
                     f"{'yes' if b['paid_once_ok'] else 'NO'} | |")
    lines += [
        "",
        "## 1. Product list, first page",
        "",
        f"64 keep-alive connections (bench/load_driver.py), anonymous requests (the list is "
        f"public); {c['list_rounds']} round(s) of {c['list_seconds']:g} s per case after "
        f"{c['list_warmup']:g} s of warm-up, cases alternating; figures are means over rounds. "
        f"Data: {r['seed']['products']} products on sale in {SHOPS} shops over the "
        f"{r['seed']['categories']} categories of a three-level tree (6 top categories), "
        "each with a ready cover image and 1-3 SKUs. `category` = "
        f"`{r['list_paths']['category']}`: a top category, its products filed on the leaves "
        "below it.",
        "",
        "| page | cache | server | req/s | p50 ms | p99 ms | non-2xx | SQL/req | Redis/req | "
        "server CPU % | load core % | machine % |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, caches in lists.items():
        for cache, pair in caches.items():
            for label in ("gateway", "bare"):
                f = pair[label]
                lines.append(
                    f"| {case} | {cache} | {label} | {f['rps']:.0f} | {f['p50_ms']:.2f} | "
                    f"{f['p99_ms']:.2f} | {f['non_2xx']} | {f['sql_per_request']} | "
                    f"{f['redis_cmds_per_request']} | {f['server_cpu_percent']} | "
                    f"{f['load_core_busy_percent']} | {f['machine_busy_percent']} |")
    checks = r["list_checks"]
    lines += [
        "",
        "`SQL/req` and `Redis/req` are MariaDB's global Questions and Redis's "
        "total_commands_processed over the case divided by its requests: server-wide "
        "counters, so other sessions' work on the same MariaDB and Redis would inflate them "
        "(approximate).",
        "",
        "- cached, gateway: `GET /v1/products[?category_id=…]` with "
        f"PRODUCT_LIST_CACHE_SECONDS={CACHED_SECONDS} (production 300; the phase is shorter, "
        "so it only keeps the page warm throughout): request id, ONE admission call to Redis "
        "(a Lua script: the per-IP rate-limit window and the read-ahead of the list "
        "generation and the cached page), the cached bytes in the envelope, metrics, an "
        "access-log line. No SQL.",
        "- cached, bare: one redis-py MGET of the same two keys, the generation checked, the "
        f"same bytes out ({checks['default']['page_bytes']} and "
        f"{checks['category']['page_bytes']} bytes, checked equal before the run).",
        "- uncached, gateway: PRODUCT_LIST_CACHE_SECONDS=0, i.e. the cache is off, and a "
        f"Redis prefix of its own (`{UNCACHED_PREFIX}`) where no page was ever stored: the "
        "admission call still reads the two keys (a miss every time), then "
        "pawhome.mall.product_views.list_page runs its statements through the SQLAlchemy ORM "
        f"({checks['default']['statements']} for default: the count, the page's products, "
        f"their cover media; {checks['category']['statements']} for category: the category "
        "tree first, for the descendants), renders the cards and encodes the page; nothing "
        "is written back (TTL 0). This is what every request would cost if each asked a "
        "different page, or the cache were dropped before each.",
        "- uncached, bare: the same statements with the same parameters (captured from "
        "SQLAlchemy while product_views ran in the bench process; the same product ids "
        "checked before the run) on one pooled connection of the same engine with "
        "exec_driver_sql, the rows encoded with the same codec (no ORM objects, no cards).",
        "",
        "## 2. Order creation",
        "",
        f"{c['buyers']} buyers (distinct users, each with a default address and an access "
        f"token), one keep-alive connection each (bench/request_load.py), each placing "
        f"{c['orders_per_buyer']} buy-now orders one after another (`POST /v1/orders`, "
        "`Idempotency-Key` unique per order, body `{items: [{sku_id, quantity}], "
        f"address_id}}`), quantity 1-3, over {c['hot_skus']} hot SKUs of one shop (every "
        "buyer starts on a different SKU and walks through all of them, so all ten are "
        "contended all the time); express delivery. Fresh SKUs per case, their stock put in "
        "through pawhome.mall.stock.adjust. `ample`: 100,000 units per SKU; `runs out`: "
        "half of each SKU's demand, so about half the requests get 409 OutOfStock. "
        f"{c['order_rounds']} round(s); cases alternate (gateway, bare).",
        "",
        "| round | stock | server | orders/s | requests/s | statuses | p50 ms | p99 ms | "
        "p99 ms of 201s | SQL/req | Redis/req | server CPU % | machine % | units ordered / "
        "stock | oversell check |",
        "|---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for n, case in enumerate(r["orders"]):
        stock = case["oversell_check"]
        verdict = "ok" if stock["ok"] and case["created_match_orders"] else "FAILED"
        lines.append(
            f"| {n // 4 + 1} | {case['stock']} | {case['server']} | "
            f"{case['orders_per_second']:.0f} | {case['requests_per_second']:.0f} | "
            f"{' '.join(f'{k}: {v}' for k, v in case['statuses'].items())} | "
            f"{case['latency']['p50_ms']} | {case['latency']['p99_ms']} | "
            f"{case['latency_created'].get('p99_ms', '-')} | {case['sql_per_request']} | "
            f"{case['redis_cmds_per_request']} | {case['server_cpu_percent']} | "
            f"{case['machine_busy_percent']} | {stock['units_ordered']} / "
            f"{case['initial_stock']} | {verdict} |")
    lines += [
        "",
        "Oversell check, after each case, per SKU: stock = initial - the sum of the ordered "
        "quantities (order_items), stock >= 0, stock = the sum of its stock_movements = the "
        "ledger's last balance, one `order_placed` ledger row per order; and the number of "
        "201 answers = the orders in the database. Per-SKU rows are in mall.json.",
        "",
        "- gateway: the whole request — token, the per-user rate limit (production rule: 60 "
        "a minute; windows cleared between cases), the idempotency record (claimed in its "
        "own transaction before, the answer stored after), then "
        "pawhome.mall.orders.place_orders: the checkout plan (SKU, product, shop, address, "
        "pick-up points — read twice: delivery.options_for runs for the plan's option list and "
        "again inside delivery.quote), in one transaction "
        "INSERT orders, order_events, order_items, the conditional `UPDATE skus SET stock = "
        "stock - n WHERE id = ? AND stock >= n`, SELECT stock, INSERT stock_movements, the "
        "outbox task (unpaid-order timeout); then the product cache drop (Redis) and the "
        "orders read back for the answer.",
        "- bare: bare_mall.py `POST /bare/orders`: the token checked as bench/bare_server.py "
        "does (JWT and the revocation MGET), then in ONE transaction the same reads (SKU, "
        "product, shop, address, pick-up points once), the same INSERTs, conditional UPDATE "
        "and SELECT with exec_driver_sql, the order read back. No idempotency record, rate "
        "limit, cache drop, ORM or envelope code.",
        "",
        "## 3. Payment notify handling",
        "",
        f"Orders of phase 2's gateway `ample` cases, paid for through `POST "
        f"/v1/orders/{{id}}/pay` (the gateway asked the fake WeChat Pay for a prepay and "
        f"stored each payment row: {r['prepay']['orders']} prepays in "
        f"{r['prepay']['seconds']} s, p50 {r['prepay']['latency']['p50_ms']} ms), then the "
        "fake settled each transaction and built WeChat's notify: body with the resource "
        "encrypted with AEAD_AES_256_GCM under the APIv3 key, headers signed "
        "(RSA-SHA256, platform certificate) — tests/fakes/wechatpay.py's builders, the keys "
        "made at start. Each notify POSTed once (built just before its case, so the "
        f"timestamp is fresh): `sequential` = one connection, {c['notify_sequential']} "
        f"notifies; `concurrent` = {c['notify_streams']} connections, "
        f"{c['notify_concurrent']} notifies. Every order is a distinct paid order; the hot "
        "SKUs all belong to one shop, so every notify locks that shop's settings row (its "
        f"`order_paid` notification) and one of ten product rows. {c['notify_rounds']} "
        "round(s); the gateway's cases run first, then it is stopped (its relay having "
        "handed every due outbox row on) and the bare's run — the bare writes the same "
        "outbox rows, and no relay may pick them up during its case; they are deleted after.",
        "",
        "| round | mode | server | notifies | notifies/s | statuses | p50 ms | p99 ms | max ms "
        "| SQL/req | Redis/req | server CPU % | machine % | paid exactly once |",
        "|---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n, case in enumerate(r["notifies"]):
        lines.append(
            f"| {n // 4 + 1} | {case['mode']} | {case['server']} | {case['notifies']} | "
            f"{case['notifies_per_second']:.0f} | "
            f"{' '.join(f'{k}: {v}' for k, v in case['statuses'].items())} | "
            f"{case['latency']['p50_ms']} | {case['latency']['p99_ms']} | "
            f"{case['latency']['max_ms']} | {case['sql_per_request']} | "
            f"{case['redis_cmds_per_request']} | {case['server_cpu_percent']} | "
            f"{case['machine_busy_percent']} | "
            f"{'yes' if case['paid_check']['ok'] else 'NO'} "
            f"({case['paid_check']['paid_once']}/{case['paid_check']['orders']}) |")
    dup = r["retries"]
    lines += [
        "",
        "Paid exactly once, per order after each case: status `paid`, paid_amount = "
        "payable_amount, exactly one `pay` entry in its timeline, its payment `paid`, exactly "
        "one `applied` notify record. Repeated notifies, checked after the gateway's cases "
        f"(not timed; WeChat repeats a notify it got no 200 for): {dup['resent']} of those "
        "transactions notified again (the fake builds each notify anew, with a new notify "
        "id, so these take the already-paid path) were "
        f"answered {dup['statuses']} and changed nothing (paid exactly once: "
        f"{'yes' if dup['paid_check']['ok'] else 'NO'}).",
        "",
        "- gateway: `POST /v1/payments/wechat/notify`: the per-IP rate limit (production "
        "rule, 12,000 a minute), pawhome.payments.notifies.handle_notification: serial, "
        "signature (RSA-SHA256 over timestamp, nonce and body) and timestamp checked, the "
        "resource decrypted, then pawhome.payments.settlement.apply_transaction in one "
        "transaction: the payment locked, the notify id looked up, mchid/appid/amount "
        "checked, the payment paid, the order's on_paid (order locked and paid, its "
        "timeline, order.status to buyer, shop and the order's topic through the outbox, "
        "sales counted on product and SKU, an `order_paid` notification to shop and buyer "
        "with their settings rows locked, their socket events and subscribe-message tasks), "
        "the notify recorded; the relay then publishes the outbox rows.",
        "- bare: bare_mall.py `POST /bare/notify`: the same checks with `cryptography` "
        "directly (serial, PKCS#1 v1.5 SHA-256 verify, timestamp, AES-GCM decrypt), then the "
        "same statements in one transaction with exec_driver_sql (the same rows written). "
        "No relay, ORM, metrics or envelope code.",
        "",
        "## Reading the figures",
        "",
        "- The machine was shared (table at the top): a case's `machine %` near 100 means the "
        "two cores were full, with other sessions' work among it. Ratios of cases run side by "
        "side are the figures to read; absolute rates move from run to run.",
        f"- Cached lists: {cached_bound(lists)} The gateway is ahead of the bare MGET "
        "because its admission call "
        "shares one pipelined Redis connection between concurrent requests, where redis-py "
        "takes a pooled connection per GET (as in bench/results/community.md).",
        "- Uncached lists: both servers pay, per request, two passes over every product on "
        "sale: the count, and the page's `ORDER BY sales_count DESC, on_sale_at DESC, id DESC "
        "LIMIT 10`, which MariaDB answers with a scan and a filesort of whole rows (EXPLAIN: "
        "type ALL / ref on the status index, `Using filesort`). The gateway's extra over the "
        "bare replay is the ORM's row objects and the cards. With the cache on (production: "
        "5 minutes per page, dropped on catalogue writes) a page costs this once per fill.",
        "- Orders: with 50 connections and one order in flight on each, latency is mostly "
        "waiting for the server core (p50 ~ 50 / orders per second). The gateway's gap to the "
        "bare handler is its per-request work around the same transaction: the idempotency "
        "record (two more transactions: claim before, store after), the per-user rate-limit "
        "call, the ORM unit of work and the checkout plan's objects, the product cache drop "
        "and the read-back; `SQL/req` shows the extra statements. The hot rows (ten SKUs) "
        "are locked only by the conditional UPDATE, from it to the commit.",
        "- Notifies: each costs the gateway one transaction of about twenty statements "
        "through the ORM plus the outbox relay's publishing of its five event rows; the "
        "concurrent case queues on the server core and on the shop's settings row, which "
        "every `order_paid` notification to the shop locks.",
        "",
    ]
    return "\n".join(lines)


def clean_redis() -> None:
    rt.clear_prefix(PREFIX + "*")
    rt.clear_prefix(UNCACHED_PREFIX + "*")
    rt.clear_prefix(QUEUE_PREFIX + "*")
    rt.clear_prefix("_kombu.binding." + QUEUE_PREFIX + "*")


def log_lines(log_file: Path) -> dict:
    """How many lines the gateways logged (the access log at INFO, one a request)."""
    return {"lines": sum(1 for _ in log_file.open("rb")) if log_file.exists() else 0}


def wind_up(servers: list[rt.Server], clean, scratch: Path) -> None:
    """The end of every run, whatever happened: the servers stopped, the run's Redis keys
    (`clean()`) and scratch files gone."""
    for server in servers:
        server.stop()
    clean()
    shutil.rmtree(scratch, ignore_errors=True)


def run_header(quick: bool, started: float, cores, quiet) -> dict:
    """The first fields of a results file: when, how long, on what machine."""
    return {"when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "quick": quick,
            "duration_seconds": round(time.monotonic() - started, 1),
            "machine": {**rt.machine_info(*cores), "busy_percent_before_start": quiet}}


def gateway(label: str, env: dict, core: int | None) -> rt.Server:
    try:
        return rt.Server(label, [PYTHON, str(HERE / "mall_gateway.py")], env, core)
    except RuntimeError as error:
        log = Path(env["BENCH_LOG_FILE"])
        tail = log.read_bytes()[-3000:].decode(errors="replace") if log.exists() else ""
        raise RuntimeError(f"{label} did not start: {error}\n{tail}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke run; writes nothing")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    started = time.monotonic()
    cores = gw.cores()
    server_core, client_core = cores
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})  # this process is a client (and the fake)
    # The fake WeChat Pay: keys made now, served from a thread of this process.
    from tests.fakes import wechatpay as fakepay

    fake = fakepay.FakeWeChatPay()
    scratch = Path(tempfile.mkdtemp(prefix="bench-mall-"))
    log_file = scratch / "gateway.log"
    env = {**ENV, "MEDIA_ROOT": str(scratch / "media"), "BENCH_LOG_FILE": str(log_file),
           "BENCH_BARE_SPEC": str(scratch / "bare_spec.pickle"),
           "PAYMENT_PROVIDER": "wechat", "WECHATPAY_API_BASE": fake.base_url,
           "WECHATPAY_MCHID": fakepay.MCHID, "WECHATPAY_APPID": fakepay.APPID,
           "WECHATPAY_PRIVATE_KEY": fakepay.MERCHANT_KEY_PEM,
           "WECHATPAY_CERT_SERIAL": fakepay.MERCHANT_SERIAL,
           "WECHATPAY_APIV3_KEY": fakepay.APIV3_KEY}
    settings = settings_for(env)
    print(f"preparing database {DB_NAME} and Redis prefix {PREFIX}", flush=True)
    asyncio.run(ensure_database())
    migrate()
    clean_redis()
    own = {os.getpid()}
    samples: dict[str, dict] = {}
    servers: list[rt.Server] = []
    try:
        asyncio.run(empty_run_tables(settings))
        seeded = asyncio.run(seed_catalogue(settings, config["products"]))
        print(f"seed: {seeded['products']} products ({seeded['created']} new), "
              f"{seeded['categories']} categories in {seeded['seconds']} s", flush=True)
        addresses = asyncio.run(buyer_addresses(settings, seeded["buyers"]))
        tokens = mint_tokens(env, [(b, "user") for b in seeded["buyers"]])
        quiet = rt.wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT",
                                                       "5" if args.quick else "30")))
        top = seeded["top_categories"][0]
        paths = list_paths(top)
        lists = asyncio.run(capture_list_sql(settings, top))
        Path(env["BENCH_BARE_SPEC"]).write_bytes(pickle.dumps({
            "lists": {case: {k: v for k, v in spec.items() if k in ("gen_key", "page_key", "sql")}
                      for case, spec in lists.items()},
            "platform_certificate": fakepay.PLATFORM.certificate_pem,
            "mchid": fakepay.MCHID, "appid": settings.wechatpay_appid}))

        # -- 1. product lists --------------------------------------------------------------
        samples["products"] = busiest_processes(own)
        bare = rt.Server("bare", [PYTHON, str(HERE / "bare_mall.py")], env, server_core)
        servers.append(bare)
        own.add(bare.pid)
        cached_gw = gateway("gateway cached",
                            {**env, "PRODUCT_LIST_CACHE_SECONDS": CACHED_SECONDS}, server_core)
        servers.append(cached_gw)
        db_gw = gateway("gateway uncached", {**env, "PRODUCT_LIST_CACHE_SECONDS": "0",
                                             "REDIS_PREFIX": UNCACHED_PREFIX}, server_core)
        servers.append(db_gw)
        own |= {cached_gw.pid, db_gw.pid}
        list_checks = check_lists(cached_gw, db_gw, bare, paths, lists)
        print("products (first page):", flush=True)
        products = list_phase(cached_gw, db_gw, bare, paths, config, cores)
        for server in (cached_gw, db_gw):
            server.stop()
            servers.remove(server)

        # -- 2. orders ---------------------------------------------------------------------
        orders_gw = gateway("gateway orders", env, server_core)
        servers.append(orders_gw)
        own.add(orders_gw.pid)
        samples["orders"] = busiest_processes(own)
        print("orders (buy-now, 10 hot SKUs):", flush=True)
        order_cases = orders_phase(orders_gw, bare, seeded, tokens, addresses, config, cores,
                                   settings)

        # -- 3. notifies -------------------------------------------------------------------
        gateway_skus = [s for c in order_cases if c["server"] == "gateway"
                        and c["stock"] == "ample" for s in c["sku_ids"]]
        pool = asyncio.run(pending_orders(settings, gateway_skus))
        per_round = 2 * (config["notify_sequential"] + config["notify_concurrent"])
        wanted = config["notify_rounds"] * per_round + 2 * config["notify_rounds"]
        if len(pool) < wanted:
            raise RuntimeError(f"{len(pool)} unpaid orders, {wanted} needed")
        random.Random(7).shuffle(pool)
        pool = pool[:wanted]
        print(f"notifies: {len(pool)} orders paid for through POST /v1/orders/{{id}}/pay",
              flush=True)
        prepaid = asyncio.run(prepay(orders_gw, pool, tokens, config["pay_concurrency"]))
        for order in pool:
            fake.state.pay(order["order_no"])
        samples["notifies"] = busiest_processes(own)
        notify_cases: list[dict] = []
        retries: dict = {}
        for round_no in range(config["notify_rounds"]):
            if orders_gw is None:
                orders_gw = gateway("gateway notifies", env, server_core)
                servers.append(orders_gw)
            take = pool[:per_round + 2]
            pool = pool[per_round + 2:]
            warm, take = take[:2], take[2:]
            seq, conc = config["notify_sequential"], config["notify_concurrent"]
            plan = {("gateway", "sequential"): take[:seq],
                    ("gateway", "concurrent"): take[seq:seq + conc],
                    ("bare", "sequential"): take[seq + conc:2 * seq + conc],
                    ("bare", "concurrent"): take[2 * seq + conc:]}
            # Warm-up: the gateway's first notify (not counted).
            drive(orders_gw, notify_streams(fake, NOTIFY, warm[:1], 1), cores)
            for mode, streams in (("sequential", 1), ("concurrent", config["notify_streams"])):
                notify_cases.append(notify_case(orders_gw, NOTIFY, "gateway", mode,
                                                plan[("gateway", mode)], streams, fake, cores,
                                                settings))
            if round_no == 0:
                retries = resend(orders_gw, plan[("gateway", "concurrent")][
                    :config["duplicates"]], fake, cores, settings)
                print(f"  notified again: {retries['resent']} notifies again -> "
                      f"{retries['statuses']}, paid exactly once "
                      f"{'ok' if retries['paid_check']['ok'] else 'FAILED'}", flush=True)
            left = wait_relayed(settings)
            orders_gw.stop()
            servers.remove(orders_gw)
            orders_gw = None
            if left:
                print(f"  {left} due outbox rows were not relayed before the stop", flush=True)
            before = outbox_max_id(settings)
            drive(bare, notify_streams(fake, "/bare/notify", warm[1:], 1), cores)
            for mode, streams in (("sequential", 1), ("concurrent", config["notify_streams"])):
                notify_cases.append(notify_case(bare, "/bare/notify", "bare", mode,
                                                plan[("bare", mode)], streams, fake, cores,
                                                settings))
            drop_outbox_after(settings, before)
        access_log = log_lines(log_file)
    finally:
        wind_up(servers, clean_redis, scratch)

    result = {
        **run_header(args.quick, started, cores, quiet),
        "machine_samples": samples,
        "config": {**config, "connections_lists": gw.CONNECTIONS,
                   "driver_lists": "wrk" if shutil.which("wrk") else "bench/load_driver.py",
                   "driver_posts": "bench/request_load.py"},
        "seed": {k: v for k, v in seeded.items() if k not in ("buyers", "shops")},
        "access_log": access_log,
        "list_paths": paths,
        "list_checks": list_checks,
        "products": products,
        "orders": order_cases,
        "orders_summary": order_summary(order_cases),
        "prepay": prepaid,
        "notifies": notify_cases,
        "notify_summary": notify_summary(notify_cases),
        "retries": retries,
    }
    markdown = write_markdown(result)
    print(markdown)
    if args.quick:
        print(f"quick run done in {time.monotonic() - started:.0f} s (nothing written)")
        return
    gw.save_results("mall", result, markdown, started)


if __name__ == "__main__":
    main()
