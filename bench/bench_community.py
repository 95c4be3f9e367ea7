"""Community benchmark (issue 4 §8): the feeds beside bare Tornado handlers, and the worker
pipelines' latencies, in one run.

    python bench/bench_community.py            (about 3-4 minutes; writes bench/results/community.*)
    python bench/bench_community.py --quick    (a smoke run, about 60 s; prints, writes nothing)

Gateway on core 0, load (wrk, 64 connections, 64 users' access tokens) on core 1, MariaDB,
Redis and the worker unpinned; database `pawhome_bench` (created and migrated through
bench_gateway.py's helpers), Redis prefix `pawhome_bench_cm:`, queue prefix `bench_cm.`.
The gateway runs with LOG_LEVEL=INFO (the JSON access log goes to a file, see below) and its
Prometheus metrics, through bench/community_gateway.py (posts.list rate limit lifted in that
process only: see its docstring).
1. hot: the first page of GET /v1/posts?sort=hot, served from the Redis page cache, beside
   bench/bare_community.py's GET of the same key (redis-py's client, and on the gateway's
   pipelined connection);
2. latest: the first page of GET /v1/posts?sort=latest with the page cache off
   (FEED_CACHE_SECONDS=0; also refilled on every request, 0.001), beside a bare handler
   replaying the same SQL statements (captured from SQLAlchemy while pawhome.community.feeds ran them
   here);
3. search: POST /v1/posts -> GET /v1/search/posts?q=<its unique word> finds it, with a real
   worker (run_worker.py) on default,moderation,search,media and MODERATION_WECHAT_ENABLED=0;
4. media: POST /v1/media/{id}/complete -> `media.ready` on the uploader's socket for a ~3 MB
   JPEG (4000x3000), local storage backend.
2,000 visible public posts with likes and topics are seeded once (reused by later runs).

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py), BENCH_QUIET_WAIT
(seconds to wait at most for the machine to be below 25 % busy first; 30, quick 10).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import json
import os
import pickle
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_gateway as gw  # noqa: E402 - server, cores, migration, wrk driver
import bench_realtime as rt  # noqa: E402 - users, tokens, quiet wait, machine info
import ws_load  # noqa: E402 - /proc/stat and store counters, percentile

ROOT, RESULTS = gw.ROOT, gw.RESULTS
PYTHON = sys.executable
PREFIX = "pawhome_bench_cm:"
QUEUE_PREFIX = "bench_cm."
SEED_MARK = "bench-seed"  # location_name of the seeded posts
RUN_MARK = "bench-run"  # location_name of the posts the search phase creates
USERS = 64
SEED_TOPICS = 20
HOT_CACHE_SECONDS = "3600"  # the hot page stays warm for the whole case (production: 5 s)
DB_CACHE_SECONDS = "0"  # the page cache off: every request reads the database
REFILL_CACHE_SECONDS = "0.001"  # the page expires 1 ms after it is written: every request refills it
ENV = {
    **gw.ENV,
    "REDIS_PREFIX": PREFIX,
    "TASK_QUEUE_PREFIX": QUEUE_PREFIX,
    "LOG_LEVEL": "INFO",
    "MODERATION_WECHAT_ENABLED": "0",
    "MEDIA_STORAGE": "local",
}

FULL = {"seconds": 6.0, "warmup": 2.0, "rounds": 3, "seed_posts": 2000, "search_posts": 20,
        "uploads": 10, "poll": 0.02}
QUICK = {**FULL, "seconds": 2.0, "warmup": 1.0, "rounds": 1, "search_posts": 4, "uploads": 3}


def bench_settings(env: dict):
    from settings import Settings

    return Settings(**{k.lower(): v for k, v in env.items()
                       if k.lower() in Settings.model_fields})


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- data ----------------------------------------------------------------------------------------
TEXTS = [
    "今天带{pet}去公园，遇到好多小伙伴，回家就睡着了。有没有推荐的{thing}？#{topic}",
    "第一次给{pet}洗澡，全程配合，奖励了一根磨牙棒。大家多久洗一次？#{topic}",
    "{pet}最近掉毛特别厉害，换了{thing}也没用，求有经验的朋友指点 #{topic}",
    "分享一下我家{pet}的日常：早上遛弯，中午睡觉，晚上拆家。#{topic}",
    "领养了一只{pet}，已经打完疫苗，性格很亲人。想问问{thing}怎么选？#{topic}",
]
PETS = [("柯基", "dog"), ("金毛", "dog"), ("柴犬", "dog"), ("布偶猫", "cat"), ("橘猫", "cat"),
        ("英短", "cat"), ("垂耳兔", "rabbit"), ("玄凤鹦鹉", "bird")]
THINGS = ["梳子", "猫粮", "狗粮", "牵引绳", "猫砂", "玩具", "沐浴露"]


async def seed(settings, user_ids: list[int], count: int) -> dict:
    """`count` visible public posts with topics and likes (once), then fresh ages (every run:
    the hot feed ranks posts younger than 72 h), then the hot ranking recomputed."""
    from sqlalchemy import func, insert, select, text

    from models.community import Board, Like, Post, PostTopic, Topic
    from pawhome.community import boards, feeds
    from pawhome.platform.cache import Cache
    from pawhome.platform.db import Database

    db, cache = Database(settings), Cache(settings)
    started = time.monotonic()
    rng = random.Random(4)
    try:
        async with db.session() as session, session.begin():
            await boards.ensure_boards(session)
            have = (await session.execute(select(func.count()).select_from(Post).where(
                Post.location_name == SEED_MARK))).scalar()
            created = 0
            if have < count:
                names = [f"萌宠日常{n}" for n in range(SEED_TOPICS)]
                await session.execute(insert(Topic).prefix_with("IGNORE"),
                                      [{"name": n} for n in names])
                topic_ids = dict((await session.execute(select(Topic.name, Topic.id).where(
                    Topic.name.in_(names)))).all())
                boards = list((await session.execute(select(Board.id))).scalars())
                last = (await session.execute(select(func.max(Post.id)))).scalar() or 0
                rows, topic_of = [], []
                for n in range(count - have):
                    pet, kind = rng.choice(PETS)
                    topic = rng.choice(names)
                    topic_of.append(topic)
                    rows.append({
                        "author_id": user_ids[n % len(user_ids)], "board_id": rng.choice(boards),
                        "text": rng.choice(TEXTS).format(pet=pet, thing=rng.choice(THINGS),
                                                         topic=topic) * rng.randint(1, 3),
                        "media_kind": "none", "media_ids": [], "pet_types": [kind],
                        "pet_ids": [], "location_name": SEED_MARK, "visibility": "public",
                        "status": "visible"})
                await session.execute(insert(Post), rows)
                new_ids = list((await session.execute(select(Post.id).where(
                    Post.id > last, Post.location_name == SEED_MARK).order_by(Post.id)))
                    .scalars())
                await session.execute(insert(PostTopic), [
                    {"post_id": p, "topic_id": topic_ids[t]} for p, t in zip(new_ids, topic_of, strict=False)])
                likes = [{"target_type": "post", "target_id": p, "user_id": u}
                         for p in new_ids for u in rng.sample(user_ids, rng.randint(0, 40))]
                for start in range(0, len(likes), 5000):
                    await session.execute(insert(Like).prefix_with("IGNORE"),
                                          likes[start:start + 5000])
                await session.execute(text(
                    "UPDATE posts p SET like_count = (SELECT COUNT(*) FROM likes l WHERE "
                    "l.target_type = 'post' AND l.target_id = p.id) WHERE p.location_name = :m"),
                    {"m": SEED_MARK})
                await session.execute(text(
                    "UPDATE topics t SET post_count = (SELECT COUNT(*) FROM post_topics pt "
                    "WHERE pt.topic_id = t.id) WHERE t.name LIKE '萌宠日常%'"))
                created = len(new_ids)
            await session.execute(text(
                "UPDATE posts SET created_at = UTC_TIMESTAMP(6) - INTERVAL (id MOD 2880) MINUTE "
                "WHERE location_name = :m"), {"m": SEED_MARK})
            # Posts of an earlier search phase that died before deleting them.
            await session.execute(text(
                "UPDATE posts SET deleted_at = UTC_TIMESTAMP(6) WHERE location_name = :m AND "
                "deleted_at IS NULL"), {"m": RUN_MARK})
        scored = await feeds.recompute_hot(db, cache, settings)
    finally:
        await cache.close()
        await db.close()
    return {"created": created, "seeded_total": max(have, count), "hot_scored": scored,
            "seconds": round(time.monotonic() - started, 1)}


async def capture_sql(settings, viewer_id: int) -> dict:
    """The SQL the gateway runs for the first page of the latest feed on a cache miss,
    captured from SQLAlchemy while pawhome.community.feeds' own code runs here; the hot page's key
    and
    the latest page's post ids."""
    from sqlalchemy import event

    from pawhome.community import feeds
    from pawhome.platform.cache import Cache
    from pawhome.platform.db import Database

    db, cache = Database(settings), Cache(settings)
    captured: list[tuple[str, tuple]] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        captured.append((statement, tuple(parameters or ())))

    event.listen(db.engine.sync_engine, "before_cursor_execute", on_execute)
    hot, latest = feeds.FeedQuery(sort="hot"), feeds.FeedQuery(sort="latest")
    keys = [feeds.first_page_key(cache, q.sort, q.limit) for q in (hot, latest)]
    try:
        await cache.redis.delete(*keys)
        await feeds.first_page_bytes(db, cache, settings, viewer_id, hot)
        captured.clear()
        latest_page = await feeds.first_page_bytes(db, cache, settings, viewer_id, latest)
        latest_sql = list(captured)
        await cache.redis.delete(*keys)  # the gateway fills them itself
    finally:
        await cache.close()
        await db.close()
    return {"latest": latest_sql, "hot_key": keys[0],
            "latest_ids": [p["id"] for p in json.loads(latest_page)["items"]]}


# -- processes -----------------------------------------------------------------------------------
def unpinned() -> None:
    os.sched_setaffinity(0, range(os.cpu_count() or 1))


class Worker:
    """run_worker.py in its own process group (prefork children included), log to a file."""

    def __init__(self, queues: str, env: dict, log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PYTHON, str(ROOT / "run_worker.py"), "--queues", queues, "--concurrency", "2",
                 "--hostname", f"bench-cm-{uuid.uuid4().hex[:6]}@%h"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=unpinned)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_bytes()[-3000:].decode(errors="replace")
                self.stop()
                raise RuntimeError(f"worker did not become ready:\n{tail}")
            time.sleep(0.2)

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # warm shutdown of the group we made
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stray prefork children, if any
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)


def gateway(label: str, env: dict, core: int | None) -> rt.Server:
    try:
        return rt.Server(label, [PYTHON, str(HERE / "community_gateway.py")], env, core)
    except RuntimeError as error:
        log = Path(env["BENCH_LOG_FILE"])
        tail = log.read_bytes()[-3000:].decode(errors="replace") if log.exists() else ""
        raise RuntimeError(f"{label} did not start: {error}\n{tail}") from None


# -- load cases ----------------------------------------------------------------------------------
def cpu_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per CPU line of /proc/stat ('cpu' = all, 'cpu0', 'cpu1', ...)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        name, *values = line.split()
        fields = [int(v) for v in values[:8]]
        idle = fields[3] + fields[4]
        out[name] = (sum(fields) - idle, sum(fields))
    return out


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    return round(100 * (after[0] - before[0]) / max(1, after[1] - before[1]), 1)


def run_case(server: rt.Server, path: str, tokens: list[str], config: dict,
             cores: tuple[int | None, int | None]) -> dict:
    """One measured wrk run (after a warm-up), with how busy the machine was before and
    during it, the server's own CPU use and the SQL/Redis work per request."""
    server_core, client_core = cores
    rt.clear_prefix(PREFIX + "rl:*")
    gw.load(server.url(path), tokens, config["warmup"], client_core)
    busy_before = rt.machine_busy_percent(1.0)
    stores0, cpu0, proc0 = ws_load.store_counters({"stores": rt.STORES}), cpu_times(), \
        process_cpu_seconds(server.pid)
    started = time.monotonic()
    figures = gw.load(server.url(path), tokens, config["seconds"], client_core)
    elapsed = time.monotonic() - started
    stores1, cpu1, proc1 = ws_load.store_counters({"stores": rt.STORES}), cpu_times(), \
        process_cpu_seconds(server.pid)
    requests = max(1, figures["requests"])
    core = f"cpu{server_core}" if server_core is not None else "cpu"
    other = f"cpu{client_core}" if client_core is not None else "cpu"
    return {**figures,
            "sql_per_request": round((stores1[0] - stores0[0]) / requests, 2),
            "redis_cmds_per_request": round((stores1[1] - stores0[1]) / requests, 2),
            "server_cpu_percent": round(100 * (proc1 - proc0) / elapsed, 1),
            "server_core_busy_percent": percent(cpu0[core], cpu1[core]),
            "load_core_busy_percent": percent(cpu0[other], cpu1[other]),
            "machine_busy_percent": percent(cpu0["cpu"], cpu1["cpu"]),
            "machine_busy_before_percent": busy_before}


def summarise(runs: list[dict]) -> dict:
    keys = ("rps", "p50_ms", "p99_ms", "sql_per_request", "redis_cmds_per_request",
            "server_cpu_percent", "server_core_busy_percent", "load_core_busy_percent",
            "machine_busy_percent", "machine_busy_before_percent")
    out = {k: round(statistics.mean(r[k] for r in runs), 2) for k in keys}
    out["non_2xx"] = sum(r["non_2xx"] for r in runs)
    out["socket_errors"] = sum(r["socket_errors"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    out["rounds"] = runs
    return out


def compare(cases: list[tuple[str, rt.Server, str]], tokens: list[str], config: dict,
            cores) -> dict:
    """The cases alternately, `rounds` times (a shared machine drifts: alternating spreads
    the drift over all of them), each summarised over its rounds."""
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
    for round_no in range(config["rounds"]):
        for label, server, path in cases:
            figures = run_case(server, path, tokens, config, cores)
            runs[label].append(figures)
            print(f"  round {round_no + 1} {label:22} {figures['rps']:>8.1f} req/s  p50 "
                  f"{figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms  "
                  f"SQL/req {figures['sql_per_request']}  server CPU "
                  f"{figures['server_cpu_percent']} %  machine busy before "
                  f"{figures['machine_busy_before_percent']} % / during "
                  f"{figures['machine_busy_percent']} %"
                  + (f"  non-2xx {figures['non_2xx']}" if figures["non_2xx"] else ""),
                  flush=True)
    return {label: summarise(r) for label, r in runs.items()}


def ratio(a: dict, b: dict) -> dict:
    return {"rps": round(a["rps"] / b["rps"], 3), "p50": round(a["p50_ms"] / b["p50_ms"], 3),
            "p99": round(a["p99_ms"] / b["p99_ms"], 3)}


def check_same_hot_bytes(gateway_server: rt.Server, bare_server: rt.Server, token: str) -> int:
    """The gateway fills the page cache; the bare handler then returns the same bytes."""
    import httpx

    first = httpx.get(gateway_server.url("/v1/posts?sort=hot"), headers=auth(token))
    first.raise_for_status()
    for path in ("/bare/hot", "/bare/hot-pipelined"):
        bare = httpx.get(bare_server.url(path))
        bare.raise_for_status()
        if first.content != bare.content:
            raise RuntimeError(f"bare {path} and the gateway's hot page differ")
    return len(first.content)


def check_same_latest_rows(gateway_server: rt.Server, bare_server: rt.Server, token: str,
                           expected: list[int]) -> dict:
    import httpx

    page = httpx.get(gateway_server.url("/v1/posts?sort=latest"), headers=auth(token))
    page.raise_for_status()
    bare = httpx.get(bare_server.url("/bare/latest"))
    bare.raise_for_status()
    gateway_ids = [p["id"] for p in page.json()["data"]["items"]]
    # The SELECT asks for limit + 1 rows (is there a next page?); the page shows limit.
    bare_ids = [row[0] for row in bare.json()["data"][0]][:len(expected)]
    if not gateway_ids == bare_ids == expected:
        raise RuntimeError(f"latest pages differ: gateway {gateway_ids}, bare {bare_ids}, "
                           f"captured {expected}")
    return {"gateway_bytes": len(page.content), "bare_bytes": len(bare.content)}


# -- pipelines -----------------------------------------------------------------------------------
def distribution(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50_ms": round(ws_load.percentile(values, 50) * 1000, 1),
            "p99_ms": round(ws_load.percentile(values, 99) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1), "min_ms": round(min(values) * 1000, 1)}


async def search_latency(server: rt.Server, tokens: list[str], count: int,
                         poll: float) -> dict:
    """Sequential posts, each with a unique word; from sending POST /v1/posts to the search
    endpoint returning it (polled every `poll` s, round-robin over the users so no user
    meets the search rate limit). The first post is a warm-up, not counted."""
    import httpx

    from_post, from_reply, created_ms = [], [], []
    created: list[tuple[int, str]] = []
    async with httpx.AsyncClient(base_url=server.url(""), timeout=10) as client:
        try:
            polls = await _post_and_find(client, tokens, count, poll, created, from_post,
                                         from_reply, created_ms)
        finally:
            for post_id, author in created:  # out of the feeds and the index again
                await client.delete(f"/v1/posts/{post_id}", headers=auth(author))
    return {"post_to_searchable": distribution(from_post),
            "reply_to_searchable": distribution(from_reply),
            "post_request": distribution(created_ms), "poll_interval_ms": poll * 1000,
            "search_requests": polls}


async def _post_and_find(client, tokens: list[str], count: int, poll: float,
                         created: list[tuple[int, str]], from_post: list[float],
                         from_reply: list[float], created_ms: list[float]) -> int:
    """The posts of search_latency (appended to `created` as they are made, so a failure
    still deletes them); returns how many searches were sent."""
    polls = 0
    for n in range(count + 1):
        word = "zz" + uuid.uuid4().hex[:10]
        author = tokens[n % len(tokens)]
        sent = time.perf_counter()
        reply = await client.post("/v1/posts", headers=auth(author), json={
            "text": f"{word} 我家柯基今天掉毛了，求推荐好用的梳子", "location_name": RUN_MARK})
        replied = time.perf_counter()
        if reply.status_code != 201:
            raise RuntimeError(f"POST /v1/posts: {reply.status_code} {reply.text[:300]}")
        post_id = reply.json()["data"]["id"]
        created.append((post_id, author))
        while True:
            polls += 1
            found = await client.get("/v1/search/posts", params={"q": word},
                                     headers=auth(tokens[polls % len(tokens)]))
            if found.status_code != 200:
                raise RuntimeError(f"search: {found.status_code} {found.text[:300]}")
            if any(item["id"] == post_id for item in found.json()["data"]["items"]):
                break
            if time.perf_counter() - sent > 30:
                raise RuntimeError(f"post {post_id} not searchable after 30 s")
            await asyncio.sleep(poll)
        done = time.perf_counter()
        if n:
            from_post.append(done - sent)
            from_reply.append(done - replied)
            created_ms.append(replied - sent)
    return polls


def make_jpeg() -> bytes:
    """A 4000x3000 JPEG at quality 90 of about 3 MB: gradients with Gaussian noise (noise is
    what makes a photo's JPEG big; sigma 16 gives ~3.1 MB)."""
    from PIL import Image

    size = (4000, 3000)
    linear = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    mirrored = linear.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    bands = [Image.blend(base, Image.effect_noise(size, 16), 0.5)
             for base in (linear, radial, mirrored)]
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, "JPEG", quality=90)
    return out.getvalue()


def distinct_copy(jpeg: bytes, n: int) -> bytes:
    """The same image with a JPEG comment segment after SOI, so every upload's bytes (and
    SHA-256) differ without re-encoding."""
    comment = f"pawhome bench upload {n} {uuid.uuid4().hex}".encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


async def media_latency(server: rt.Server, token: str, count: int, jpeg: bytes) -> dict:
    """Sequential uploads by one user with a socket open: create, PUT the bytes to the local
    upload URL, then from POST .../complete to the socket's media.ready. The first upload is
    a warm-up, not counted."""
    import httpx

    import wsclient

    to_ready, complete_ms, upload_ms = [], [], []
    failed = []
    socket = await wsclient.connect(f"ws://127.0.0.1:{server.port}/v1/ws", token)
    try:
        async with httpx.AsyncClient(base_url=server.url(""), timeout=60) as client:
            for n in range(count + 1):
                body = distinct_copy(jpeg, n)
                started = await client.post("/v1/media", headers=auth(token), json={
                    "kind": "image", "size": len(body), "content_type": "image/jpeg"})
                if started.status_code != 201:
                    raise RuntimeError(f"POST /v1/media: {started.status_code} "
                                       f"{started.text[:300]}")
                data = started.json()["data"]
                media_id = data["media_id"]
                # The URL names PUBLIC_BASE_URL; the bench's gateway listens elsewhere.
                target = urlsplit(data["upload_url"])
                put_at = time.perf_counter()
                uploaded = await client.request(
                    data["method"], target.path + (f"?{target.query}" if target.query else ""),
                    content=body, headers=data.get("headers") or {})
                if uploaded.status_code >= 300:
                    raise RuntimeError(f"upload: {uploaded.status_code} {uploaded.text[:300]}")
                sent = time.perf_counter()
                done = await client.post(f"/v1/media/{media_id}/complete", headers=auth(token))
                replied = time.perf_counter()
                if done.status_code != 200:
                    raise RuntimeError(f"complete: {done.status_code} {done.text[:300]}")
                frame = await socket.wait_for(
                    ("media.ready", "media.failed"), timeout=60,
                    where=lambda f, media_id=media_id: (f.get("data") or {}).get("media_id")
                    == media_id)
                ready = time.perf_counter()
                if frame["type"] != "media.ready":
                    failed.append(frame.get("data"))
                elif n:
                    to_ready.append(ready - sent)
                    complete_ms.append(replied - sent)
                    upload_ms.append(sent - put_at)
    finally:
        await socket.close()
    return {"complete_to_ready": distribution(to_ready),
            "complete_request": distribution(complete_ms),
            "upload_put": distribution(upload_ms), "failed": failed,
            "jpeg_bytes": len(jpeg), "jpeg_pixels": "4000x3000"}


def busy_while(phase) -> dict:
    """Run a pipeline phase; its result with how busy the machine was just before (1 s) and
    during it, or {"error": ...} when it failed."""
    before, cpu0 = rt.machine_busy_percent(1.0), cpu_times()
    try:
        result = phase()
    except (RuntimeError, TimeoutError) as error:  # report the others, keep the figures
        print(f"  pipeline phase failed: {error!r}", flush=True)
        return {"error": repr(error)}
    return {**result, "machine_busy_before_percent": before,
            "machine_busy_percent": percent(cpu0["cpu"], cpu_times()["cpu"])}


def worker_task_times(path: Path) -> dict:
    """Run time of each task the worker ran in the pipeline phases (celery's "Task NAME[id]
    succeeded in Xs" lines): how much of a pipeline's latency is the worker's own work."""
    import re

    times: dict[str, list[float]] = {}
    if path.exists():
        for match in re.finditer(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([0-9.e-]+)s",
                                 path.read_text(errors="replace")):
            times.setdefault(match.group(1), []).append(float(match.group(2)))
    return {name: distribution(values) for name, values in sorted(times.items())}


def problems(path: Path, count: int = 15) -> str:
    """The last warning/error lines of a log (to tell why a pipeline phase failed)."""
    if not path.exists():
        return "    (no log)"
    lines = [line for line in path.read_text(errors="replace").splitlines()
             if "WARNING" in line or "ERROR" in line or "Traceback" in line]
    return "\n".join("    " + line[:400] for line in lines[-count:]) or "    (none)"


# -- report --------------------------------------------------------------------------------------
def write_markdown(r: dict) -> str:
    m, c = r["machine"], r["config"]
    lines = [
        "# Community benchmark (issue 4 §8)",
        "",
        f"Run {r['when']} on {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}, in {r['duration_seconds']:.0f} s. Gateway "
        f"(bench/community_gateway.py = run_gateway.py with the posts.list rate limit lifted) "
        f"on core {m['server_core']}, wrk on core {m['client_core']} with {gw.CONNECTIONS} "
        f"connections and {USERS} users' access tokens (every request authenticated); MariaDB, "
        "Redis and the worker unpinned. Gateway with LOG_LEVEL=INFO: the JSON access log "
        f"went to a file ({r['access_log']['where']}; {r['access_log']['lines']} lines, "
        f"{r['access_log']['bytes']} bytes this run); Prometheus metrics on (always). "
        f"{c['rounds']} round(s) of {c['seconds']:g} s per case after {c['warmup']:g} s of "
        "warm-up, cases alternating; figures are the mean over rounds. Machine CPU use "
        f"before the start: {m['busy_percent_before_start'][-1]} % of all cores. Produced by "
        "`python bench/bench_community.py`.",
        "",
        "## Summary",
        "",
        "| figure | gateway | bare | ratio | aim |",
        "|---|---:|---:|---:|---|",
    ]
    hot, latest = r["hot"], r["latest"]
    for title, case, g, b in (("hot feed, first page (Redis)", hot, "gateway", "bare GET"),
                              ("latest feed, first page (database)", latest, "gateway",
                               "bare SQL")):
        lines.append(f"| {title}: req/s | {case[g]['rps']:.0f} | {case[b]['rps']:.0f} | "
                     f"{case['ratios'][f'{g} / {b}']['rps']:.2f} | >= 0.85 |")
        lines.append(f"| {title}: p50 / p99 ms | {case[g]['p50_ms']:.2f} / "
                     f"{case[g]['p99_ms']:.2f} | {case[b]['p50_ms']:.2f} / "
                     f"{case[b]['p99_ms']:.2f} | {case['ratios'][f'{g} / {b}']['p50']:.2f} / "
                     f"{case['ratios'][f'{g} / {b}']['p99']:.2f} | |")
    if "bare GET, pipelined" in hot:
        q = hot["ratios"]["gateway / bare GET, pipelined"]
        lines.append(f"| hot feed, beside a bare GET on the gateway's pipelined Redis "
                     f"connection: req/s | {hot['gateway']['rps']:.0f} | "
                     f"{hot['bare GET, pipelined']['rps']:.0f} | {q['rps']:.2f} | |")
    refill = "gateway, cache refilled per request"
    if refill in latest:
        q = latest["ratios"][f"{refill} / bare SQL"]
        lines.append(f"| latest feed, first page, page cache refilled on every request: "
                     f"req/s | {latest[refill]['rps']:.0f} | {latest['bare SQL']['rps']:.0f} | "
                     f"{q['rps']:.2f} | (production refills once per 5 s) |")
    s, md = r["search"], r["media"]
    if "post_to_searchable" in s:
        d = s["post_to_searchable"]
        lines.append(f"| POST /v1/posts -> searchable (p50 / p99 / max, {d['count']} posts) | "
                     f"{d['p50_ms']} / {d['p99_ms']} / {d['max_ms']} ms | | | < 2,000 ms |")
    if "complete_to_ready" in md:
        d = md["complete_to_ready"]
        lines.append(f"| media complete -> media.ready, {md['jpeg_bytes'] / 1e6:.1f} MB JPEG "
                     f"(p50 / p99 / max, {d['count']} uploads) | {d['p50_ms']} / {d['p99_ms']} "
                     f"/ {d['max_ms']} ms | | | |")
    lines += [
        "",
        "## Feeds",
        "",
        "Every load row: mean over rounds. `SQL/req` and `Redis/req` are MariaDB's global "
        "Questions and Redis's total_commands_processed over the run divided by the requests "
        "(server-wide: approximate). `server CPU` is the server process's utime+stime (100 = "
        "one core); `core busy` is the server's core and the load core; `machine` is all "
        "cores (100 = both), just before the case (1 s sample, the bench idle) and during it.",
        "",
        "| case | server | req/s | p50 ms | p99 ms | non-2xx | SQL/req | Redis/req | server "
        "CPU % | server core % | load core % | machine before % | machine during % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case_name, case in (("hot", hot), ("latest", latest)):
        for label, f in case.items():
            if label in ("ratios", "paths", "checks"):
                continue
            lines.append(
                f"| {case_name} | {label} | {f['rps']:.0f} | {f['p50_ms']:.2f} | "
                f"{f['p99_ms']:.2f} | {f['non_2xx']} | {f['sql_per_request']} | "
                f"{f['redis_cmds_per_request']} | {f['server_cpu_percent']} | "
                f"{f['server_core_busy_percent']} | {f['load_core_busy_percent']} | "
                f"{f['machine_busy_before_percent']} | {f['machine_busy_percent']} |")
    lines += ["", "Ratios (req/s above 1 is faster; latency below 1 is faster):", "",
              "| case | comparison | req/s | p50 | p99 |", "|---|---|---:|---:|---:|"]
    for case_name, case in (("hot", hot), ("latest", latest)):
        for label, q in case["ratios"].items():
            lines.append(f"| {case_name} | {label} | {q['rps']:.2f} | {q['p50']:.2f} | "
                         f"{q['p99']:.2f} |")
    lines += [
        "",
        "What each server does per request:",
        "",
        f"- hot, gateway: `GET {hot['paths']['gateway']}` - request id, the token's signature "
        "and expiry (verified once per token, then remembered), ONE admission call to Redis "
        "(a Lua script: the per-IP rate-limit window, the token's three revocation marks, "
        "and the read-ahead of the cached page and the viewer's has-blocks flag; sent on "
        "the process's pipelined admission connection, pawhome/platform/redis_pipeline.py), envelope, "
        "Prometheus metrics, a JSON access-log line (written in batches). Page cache TTL "
        f"set to {HOT_CACHE_SECONDS} s for the case so it stays warm (production: 5 s, one "
        "miss per 5 s).",
        "- hot, bare GET: the same Redis GET of the same key and the same bytes out "
        f"({hot['checks']['page_bytes']} bytes, checked equal before the run), with "
        "redis-py's client as a plain handler would (a pooled connection per GET).",
        "- hot, bare GET, pipelined: the same GET on a pawhome.platform.redis_pipeline.Pipeline, the "
        "gateway's own way of reaching Redis (commands of concurrent requests share writes "
        "and reads on one connection): the gateway's overhead with its cheaper Redis access "
        "taken out of the comparison.",
        f"- latest, gateway: `GET {latest['paths']['gateway']}` with FEED_CACHE_SECONDS="
        f"{DB_CACHE_SECONDS} (the page cache off: the database path on every request): the "
        "admission call as above (rate-limit window, revocation marks, has-blocks flag), then "
        "on a bare pooled connection (pawhome.platform.db Database.connection, behind the pool's "
        "arrival-order gate) the page's two statements (posts joined with authors and "
        "boards; the posts' topics), compiled once (pawhome.platform.db.Prepared) and run with "
        "SQLAlchemy's exec_driver_sql like the bare handler's, render (JSON columns "
        "embedded as stored), encode.",
        f"- latest, gateway, cache refilled per request: FEED_CACHE_SECONDS="
        f"{REFILL_CACHE_SECONDS} (the page expires 1 ms after it is written): the same plus "
        "the page read in the admission call (a miss) and a Redis SET of the page; in "
        "production this refill happens once per FEED_CACHE_SECONDS (5 s), not per request.",
        "- latest, bare SQL: the same SQL statements with the same parameters (captured "
        "from SQLAlchemy while pawhome.community.feeds ran here; the same first-page post ids checked "
        "before the run) on one pooled connection of the same engine, run with "
        "exec_driver_sql, rows encoded with the same codec.",
        "",
        "## Pipelines (worker running)",
        "",
        "One run_worker.py on default, moderation, search and media (prefork, 2 children, "
        "unpinned), MODERATION_WECHAT_ENABLED=0 (our word filter decides), local storage "
        "(MEDIA_ROOT a temporary directory). Sequential: one post or upload at a time; the "
        "first of each is a warm-up and not counted.",
        "",
    ]
    if "post_to_searchable" in s:
        lines += ["| search | p50 ms | p99 ms | max ms | min ms |", "|---|---:|---:|---:|---:|"]
        for label, key in (("POST sent -> search returns it", "post_to_searchable"),
                           ("POST reply -> search returns it", "reply_to_searchable"),
                           ("POST /v1/posts request", "post_request")):
            d = s[key]
            lines.append(f"| {label} | {d['p50_ms']} | {d['p99_ms']} | {d['max_ms']} | "
                         f"{d['min_ms']} |")
        lines += ["", f"Search polled every {s['poll_interval_ms']:g} ms ({s['search_requests']}"
                  " searches), so a figure includes up to one poll interval and one search "
                  "request. Path: the post's transaction writes moderation.review_post to the "
                  "outbox -> the gateway's relay (woken by that commit) -> broker -> worker "
                  "reviews it (visible) and writes search.index to the outbox -> a relay hands "
                  "it to the broker -> worker segments and writes the FULLTEXT document.", ""]
    else:
        lines += [f"search: {s.get('error')}", ""]
    if "complete_to_ready" in md:
        lines += ["| media (JPEG " + f"{md['jpeg_pixels']}, {md['jpeg_bytes']} bytes) | p50 ms "
                  "| p99 ms | max ms | min ms |", "|---|---:|---:|---:|---:|"]
        for label, key in (("POST complete sent -> media.ready on the socket",
                            "complete_to_ready"), ("POST complete request", "complete_request"),
                           ("PUT of the bytes to the local upload URL", "upload_put")):
            d = md[key]
            lines.append(f"| {label} | {d['p50_ms']} | {d['p99_ms']} | {d['max_ms']} | "
                         f"{d['min_ms']} |")
        lines += ["", "The worker checks the type by content, strips EXIF, fixes orientation "
                  "and writes the variants (240/480/1080 wide, WebP and JPEG), then writes the "
                  "media.ready event to the outbox; a relay publishes it to the uploader's "
                  "socket." + (f" Failed uploads: {md['failed']}." if md["failed"] else ""),
                  ""]
    else:
        lines += [f"media: {md.get('error')}", ""]
    for label, phase in (("search", s), ("media", md)):
        if "machine_busy_percent" in phase:
            lines.append(f"Machine busy ({label} phase, % of all cores): "
                         f"{phase['machine_busy_before_percent']} just before, "
                         f"{phase['machine_busy_percent']} during.")
    lines.append("")
    if r["worker_tasks"]:
        lines += ["Worker time per task in these phases (celery's `succeeded in` lines):", "",
                  "| task | runs | p50 ms | max ms |", "|---|---:|---:|---:|"]
        for name, d in r["worker_tasks"].items():
            lines.append(f"| {name} | {d['count']} | {d['p50_ms']} | {d['max_ms']} |")
        lines += [
            "",
            "Where the time goes: the worker's own work is the small figures above; the rest "
            "is waiting for an outbox relay. No relay runs in the worker process (workers/"
            "default.py relays from beat every 30 s) and a commit wakes only the relays of "
            "its own process, so a row a worker task commits (search.index after moderation, "
            "the media.ready event) waits for the gateway relay's next poll. That relay was "
            "woken by the request's own commit and then sleeps OUTBOX_POLL_SECONDS "
            f"({r['outbox_poll_seconds']:g} s here), so on a quiet system both pipelines take "
            "about one poll period (two if the worker needs longer than one); with other "
            "traffic waking the relay they would be shorter and vary more.", ""]
    lines += [f"Data: {r['seed']['seeded_total']} seeded visible public posts (likes 0-40 "
              f"each from the {USERS} users, one of {SEED_TOPICS} topics, a board), ages "
              "spread over the last 48 h each run; first page = the default limit (10).", ""]
    return "\n".join(lines)


def clean_redis() -> None:
    rt.clear_prefix(PREFIX + "*")
    rt.clear_prefix(QUEUE_PREFIX + "*")
    rt.clear_prefix("_kombu.binding." + QUEUE_PREFIX + "*")


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
        os.sched_setaffinity(0, {client_core})  # this process is a client too (phases 3-4)
    scratch = Path(tempfile.mkdtemp(prefix="pawhome-bench-cm-"))
    log_file = scratch / "gateway.log"
    env = {**ENV, "MEDIA_ROOT": str(scratch / "media"), "BENCH_LOG_FILE": str(log_file),
           "BENCH_BARE_SQL": str(scratch / "bare_sql.pickle")}
    print(f"preparing database {gw.DB_NAME} and Redis prefix {PREFIX}", flush=True)
    asyncio.run(rt.ensure_database())
    gw.migrate()
    clean_redis()
    servers: list = []
    worker = None
    try:
        user_ids = asyncio.run(rt.create_users(USERS))
        tokens = [token for _, token in rt.mint_tokens(user_ids)]
        seeded = asyncio.run(seed(bench_settings({**env, "FEED_CACHE_SECONDS":
                                                  HOT_CACHE_SECONDS}),
                                  user_ids, config["seed_posts"]))
        print(f"seed: {seeded}", flush=True)
        sql = asyncio.run(capture_sql(bench_settings(env), user_ids[0]))
        Path(env["BENCH_BARE_SQL"]).write_bytes(pickle.dumps(
            {"latest": sql["latest"]}))
        print(f"captured SQL: {len(sql['latest'])} statement(s) on a latest miss", flush=True)
        quiet = rt.wait_for_quiet(float(os.environ.get("BENCH_QUIET_WAIT",
                                                       "10" if args.quick else "30")))

        bare = rt.Server("bare", [PYTHON, str(HERE / "bare_community.py")],
                         {**env, "BENCH_HOT_KEY": sql["hot_key"]}, server_core)
        servers.append(bare)
        hot_gw = gateway("gateway hot", {**env, "FEED_CACHE_SECONDS": HOT_CACHE_SECONDS},
                         server_core)
        servers.append(hot_gw)
        page_bytes = check_same_hot_bytes(hot_gw, bare, tokens[0])
        print("hot feed (first page from the Redis page cache):", flush=True)
        hot = compare([("gateway", hot_gw, "/v1/posts?sort=hot"),
                       ("bare GET", bare, "/bare/hot"),
                       ("bare GET, pipelined", bare, "/bare/hot-pipelined")],
                      tokens, config, cores)
        hot["ratios"] = {"gateway / bare GET": ratio(hot["gateway"], hot["bare GET"]),
                         "gateway / bare GET, pipelined": ratio(
                             hot["gateway"], hot["bare GET, pipelined"])}
        hot["paths"] = {"gateway": "/v1/posts?sort=hot"}
        hot["checks"] = {"page_bytes": page_bytes}
        hot_gw.stop()
        servers.remove(hot_gw)

        miss_gw = gateway("gateway latest", {**env, "FEED_CACHE_SECONDS": DB_CACHE_SECONDS},
                          server_core)
        servers.append(miss_gw)
        refill_gw = gateway("gateway latest refill",
                            {**env, "FEED_CACHE_SECONDS": REFILL_CACHE_SECONDS}, server_core)
        servers.append(refill_gw)
        checks = check_same_latest_rows(miss_gw, bare, tokens[0], sql["latest_ids"])
        print("latest feed (first page from the database):", flush=True)
        latest = compare([("gateway", miss_gw, "/v1/posts?sort=latest"),
                          ("bare SQL", bare, "/bare/latest"),
                          ("gateway, cache refilled per request", refill_gw,
                           "/v1/posts?sort=latest")], tokens, config, cores)
        latest["ratios"] = {
            "gateway / bare SQL": ratio(latest["gateway"], latest["bare SQL"]),
            "gateway, cache refilled per request / bare SQL": ratio(
                latest["gateway, cache refilled per request"], latest["bare SQL"])}
        latest["paths"] = {"gateway": "/v1/posts?sort=latest"}
        latest["checks"] = checks
        for server in (miss_gw, refill_gw, bare):
            server.stop()
            servers.remove(server)

        print("pipelines: starting a worker and a gateway (production page-cache TTL)",
              flush=True)
        rt.clear_prefix(PREFIX + "rl:*")
        pipeline_gw = gateway("gateway pipelines", env, server_core)
        servers.append(pipeline_gw)
        worker = Worker("default,moderation,search,media", env, scratch / "worker.log")
        worker.wait_ready()
        jpeg = make_jpeg()
        search = busy_while(lambda: asyncio.run(search_latency(
            pipeline_gw, tokens, config["search_posts"], config["poll"])))
        if "error" not in search:
            d = search["post_to_searchable"]
            print(f"  POST -> searchable: p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, max "
                  f"{d['max_ms']} ms over {d['count']} posts", flush=True)
        media = busy_while(lambda: asyncio.run(media_latency(
            pipeline_gw, tokens[1], config["uploads"], jpeg)))
        if "error" not in media:
            d = media["complete_to_ready"]
            print(f"  complete -> media.ready ({len(jpeg)} bytes): p50 {d.get('p50_ms')} ms, "
                  f"p99 {d.get('p99_ms')} ms over {d['count']} uploads", flush=True)
        tasks = worker_task_times(scratch / "worker.log")
        if "error" in search or "error" in media:
            for path in (log_file, scratch / "worker.log"):
                print(f"  last warnings in {path.name}:\n" + problems(path), flush=True)
        access_log = {"where": f"a file under {tempfile.gettempdir()} (deleted after the run)",
                      "lines": sum(1 for _ in log_file.open("rb")) if log_file.exists() else 0,
                      "bytes": log_file.stat().st_size if log_file.exists() else 0}
    finally:
        if worker is not None:
            worker.stop()
        for server in servers:
            server.stop()
        clean_redis()
        shutil.rmtree(scratch, ignore_errors=True)

    result = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "duration_seconds": round(time.monotonic() - started, 1),
        "machine": {**rt.machine_info(server_core, client_core),
                    "busy_percent_before_start": quiet},
        "config": {**config, "connections": gw.CONNECTIONS, "users": USERS,
                   "driver": "wrk" if shutil.which("wrk") else "bench/load_driver.py"},
        "seed": seeded,
        "access_log": access_log,
        "hot": hot,
        "latest": latest,
        "search": search,
        "media": media,
        "worker_tasks": tasks,
        "outbox_poll_seconds": bench_settings(ENV).outbox_poll_seconds,
    }
    markdown = write_markdown(result)
    print(markdown)
    if args.quick:
        print(f"quick run done in {time.monotonic() - started:.0f} s (nothing written)")
        return
    gw.save_results("community", result, markdown, started)


if __name__ == "__main__":
    main()
