"""Recommendation benchmark (issue 11 §7): does the feed differ per user, and how fast is it.

    python bench/bench_recommend.py           (about a minute; writes bench/results/recommend.*)
    python bench/bench_recommend.py --quick   (fewer posts and requests; prints, writes nothing)

In-process, on the local MariaDB and Redis: database `pawhome_bench_rec` (dropped and
re-created each run, so every run measures the same data), Redis prefix `pawhome_bench_rec:`.
Seeds demo-like data — authors posting about cats, dogs, rabbits and birds in ten topics over
three days, with likes — and personas with different signals (a cat owner, a second cat
owner, a dog owner, a rabbit fan who only liked rabbit posts, a follower of follows, a topic
fan, a visitor). Then:

1. overlap: each persona's first page (limit 10) through `feed.recommend_posts`, the Jaccard
   index of every pair of first pages, and how much of each page matches the persona's signal;
2. latency: `feed.recommend_posts` called in-process (no HTTP, auth or rate limit) with the
   pool and profiles warm, and with the viewer's profile dropped before every call (cold),
   p50/p99; beside a bare baseline doing the storage work a plain "posts by id" handler does
   (a Redis GET of the pool, one SELECT of 10 posts by primary key with authors and boards,
   their topics, rendering) in the same run, as a ratio;
3. EXPLAIN of the feed's queries against the seeded row count.

Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
MYSQL = os.environ.get("BENCH_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DB_NAME = "pawhome_bench_rec"
PREFIX = "pawhome_bench_rec:"
os.environ.update({"MODE": "development", "DATABASE_URL": f"{MYSQL}{DB_NAME}?charset=utf8mb4",
                   "REDIS_URL": REDIS, "REDIS_PREFIX": PREFIX, "LOG_LEVEL": "WARNING"})

SPECIES_MIX = ["cat"] * 4 + ["dog"] * 4 + ["rabbit"] + ["bird"]
TOPICS = [f"话题{n}" for n in range(10)]
FULL = {"posts": 6000, "authors": 60, "likes": 20000, "requests": 300}
QUICK = {"posts": 1500, "authors": 30, "likes": 4000, "requests": 60}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def prepare() -> None:
    import redis.asyncio as aioredis
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(MYSQL)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS `{DB_NAME}`"))
        await conn.execute(text(f"CREATE DATABASE `{DB_NAME}` "
                                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci"))
    await engine.dispose()
    client = aioredis.Redis.from_url(REDIS)
    keys = [k async for k in client.scan_iter(match=PREFIX + "*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def seed(resources, config: dict, rng: random.Random) -> dict:
    """Authors, posts, topics, likes; the personas and their signals. Returns the personas."""
    from sqlalchemy import insert, select

    from models.base import utcnow
    from models.community import Like, Pet, Post, PostTopic, Topic
    from models.users import User, UserFollow, UserSettings

    now = utcnow()
    async with resources.db.session() as session, session.begin():
        names = [f"author{n}" for n in range(config["authors"])] + [
            "cat_owner", "cat_owner_2", "dog_owner", "rabbit_fan", "fof_reader",
            "friend", "topic_fan"]
        await session.execute(insert(User), [{"openid": f"rec-{n}", "nickname": n,
                                              "status": "active", "role": "user"}
                                             for n in names])
        ids = dict((await session.execute(select(User.nickname, User.id))).all())
        await session.execute(insert(UserSettings), [
            {"user_id": i, "notification_prefs": {}, "privacy_prefs": {}} for i in ids.values()])
        await session.execute(insert(Topic), [{"name": t, "post_count": 0} for t in TOPICS])
        topic_ids = dict((await session.execute(select(Topic.name, Topic.id))).all())
        authors = [ids[f"author{n}"] for n in range(config["authors"])]
        # Each author mostly writes about one species.
        favourite = {a: rng.choice(SPECIES_MIX) for a in authors}
        rows = []
        for n in range(config["posts"]):
            author = rng.choice(authors)
            species = favourite[author] if rng.random() < 0.8 else rng.choice(SPECIES_MIX)
            rows.append({"author_id": author, "text": f"post {n} about a {species}",
                         "media_kind": "none", "media_ids": [], "pet_types": [species],
                         "pet_ids": [], "visibility": "public", "status": "visible",
                         "created_at": now - dt.timedelta(minutes=rng.uniform(0, 72 * 60))})
        await session.execute(insert(Post), rows)
        posts = list((await session.execute(select(Post.id, Post.pet_types))).all())
        await session.execute(insert(PostTopic), [
            {"post_id": p, "topic_id": topic_ids[TOPICS[p % len(TOPICS)]]} for p, _ in posts])
        # Likes: a few popular posts get many (a long tail), by the authors.
        weights = [1 / (rank + 1) for rank in range(len(posts))]
        liked = set()
        for _ in range(config["likes"]):
            post_id = rng.choices(posts, weights)[0][0]
            liked.add((post_id, rng.choice(authors)))
        await session.execute(insert(Like), [{"target_type": "post", "target_id": p,
                                              "user_id": u, "created_at": now}
                                             for p, u in liked])
        counts: dict[int, int] = {}
        for p, _ in liked:
            counts[p] = counts.get(p, 0) + 1
        from sqlalchemy import update
        for count, group in itertools.groupby(sorted(counts.items(), key=lambda kv: kv[1]),
                                              key=lambda kv: kv[1]):
            await session.execute(update(Post).where(Post.id.in_([p for p, _ in group]))
                                  .values(like_count=count))
        # Personas.
        await session.execute(insert(Pet), [
            {"owner_id": ids["cat_owner"], "name": "咪咪", "species": "cat"},
            {"owner_id": ids["cat_owner_2"], "name": "橘子", "species": "cat"},
            {"owner_id": ids["dog_owner"], "name": "旺财", "species": "dog"}])
        rabbit_posts = [p for p, types in posts if "rabbit" in (types or [])][:15]
        topic_posts = [p for p, _ in posts if p % len(TOPICS) == 3][:30]
        await session.execute(insert(Like), [
            *({"target_type": "post", "target_id": p, "user_id": ids["rabbit_fan"],
               "created_at": now} for p in rabbit_posts),
            *({"target_type": "post", "target_id": p, "user_id": ids["topic_fan"],
               "created_at": now} for p in topic_posts)])
        # fof_reader follows `friend`, who follows three authors.
        await session.execute(insert(UserFollow), [
            {"follower_id": ids["fof_reader"], "followee_id": ids["friend"]},
            *({"follower_id": ids["friend"], "followee_id": a} for a in authors[:3])])
    return {"personas": {n: ids[n] for n in ("cat_owner", "cat_owner_2", "dog_owner",
                                             "rabbit_fan", "fof_reader", "topic_fan")},
            "fof_authors": authors[:3], "topic": topic_ids[TOPICS[3]]}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


async def overlap(resources, seeded: dict) -> dict:
    from pawhome.recommend import feed

    pages: dict[str, list[dict]] = {}
    viewers = {**seeded["personas"], "visitor": None}
    for name, user_id in viewers.items():
        page = await feed.recommend_posts(resources, user_id, feed.RecommendQuery(limit=10))
        pages[name] = page["items"]
    sets = {n: {p["id"] for p in items} for n, items in pages.items()}
    pairs = {f"{a} / {b}": round(jaccard(sets[a], sets[b]), 2)
             for a, b in itertools.combinations(viewers, 2)}
    signal = {
        "cat_owner": sum("cat" in p["pet_types"] for p in pages["cat_owner"]),
        "cat_owner_2": sum("cat" in p["pet_types"] for p in pages["cat_owner_2"]),
        "dog_owner": sum("dog" in p["pet_types"] for p in pages["dog_owner"]),
        "rabbit_fan": sum("rabbit" in p["pet_types"] for p in pages["rabbit_fan"]),
        "fof_reader": sum(p["author"]["id"] in seeded["fof_authors"]
                          for p in pages["fof_reader"]),
        "topic_fan": sum(TOPICS[3] in p["topics"] for p in pages["topic_fan"]),
        "visitor": sum(p["reason"] in ("hot", "new") for p in pages["visitor"]),
    }
    reasons = {n: dict(sorted({r: sum(p["reason"] == r for p in items)
                               for r in {p["reason"] for p in items}}.items()))
               for n, items in pages.items()}
    return {"pairs": pairs, "signal_hits": signal, "reasons": reasons,
            "page_sizes": {n: len(items) for n, items in pages.items()}}


async def bare_posts_by_id(resources, ids: list[int]) -> list[dict]:
    """The floor: what a plain "these posts" handler does with the same stores."""
    from models.community import Post
    from pawhome.community.post_rendering import render_post_rows, select_post_rows
    from pawhome.platform import codec

    raw = await resources.cache.redis.get(PREFIX + "recommend:pool")
    codec.loads(raw)
    async with resources.db.session() as session:
        rows = list(await session.execute(select_post_rows(Post.id.in_(ids))))
        return await render_post_rows(session, rows)


async def latency(resources, seeded: dict, requests: int) -> dict:
    from pawhome.recommend import feed

    viewers = [*seeded["personas"].values(), None]
    query = feed.RecommendQuery(limit=10)
    out = {}
    for case in ("warm", "cold_profile"):
        timings = []
        for n in range(requests):
            viewer = viewers[n % len(viewers)]
            if case == "cold_profile" and viewer is not None:
                await feed.forget_profile(resources, viewer)
            started = time.perf_counter()
            await feed.recommend_posts(resources, viewer, query)
            timings.append((time.perf_counter() - started) * 1000)
        out[case] = timings
    page = await feed.recommend_posts(resources, viewers[0], query)
    ids = [p["id"] for p in page["items"]]
    bare = []
    for _ in range(requests):
        started = time.perf_counter()
        await bare_posts_by_id(resources, ids)
        bare.append((time.perf_counter() - started) * 1000)
    out["bare"] = bare
    summary = {case: {"p50_ms": round(statistics.median(t), 2),
                      "p99_ms": round(percentile(t, 0.99), 2), "n": len(t)}
               for case, t in out.items()}
    for case in ("warm", "cold_profile"):
        summary[case]["p50_vs_bare"] = round(summary[case]["p50_ms"] /
                                             summary["bare"]["p50_ms"], 2)
    return summary


async def explain(resources, seeded: dict) -> list[dict]:
    """EXPLAIN of the feed's reads (MariaDB's plan: access type, index, rows examined)."""
    from sqlalchemy.dialects import mysql

    from pawhome.recommend import feed

    viewer = seeded["personas"]["cat_owner"]
    since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=14)
    statements = {
        "pool: newest public posts": feed.newest_public_posts(300),
        "personal: posts of follows of follows": feed.recent_posts_of(
            seeded["fof_authors"], since),
        "personal: newest posts of a topic": feed.newest_in_topic(seeded["topic"]),
        "page: 20 chosen ids through visible_to(viewer)": feed.page_rows(
            list(range(1, 21)), viewer),
    }
    plans = []
    async with resources.db.session() as session:
        for name, statement in statements.items():
            sql = str(statement.compile(dialect=mysql.dialect(),
                                        compile_kwargs={"literal_binds": True}))
            connection = await session.connection()
            rows = (await connection.exec_driver_sql("EXPLAIN " + sql)).mappings().all()
            plans.append({"query": name, "plan": [
                {k: r.get(k) for k in ("table", "type", "key", "rows", "Extra")} for r in rows]})
    return plans


def markdown(result: dict) -> str:
    lines = [
        "# Recommendation benchmark",
        "",
        f"Run {result['at']} on {result['machine']}; {result['config']['posts']} posts by "
        f"{result['config']['authors']} authors over 3 days, {result['config']['likes']} like "
        "draws; in-process calls of `feed.recommend_posts` (no HTTP). Written by "
        "`bench/bench_recommend.py`; the machine (2 cores) is shared with other work, so "
        "compare the ratios of one run, not absolute figures across runs.",
        "",
        "## Different users get different first pages (limit 10)",
        "",
        "Jaccard index of the sets of post ids on two users' first pages (1 = the same page, "
        "0 = nothing in common):",
        "",
        "| pair | Jaccard |",
        "|---|---|",
        *(f"| {pair} | {value} |" for pair, value in result["overlap"]["pairs"].items()),
        "",
        "Items on each first page matching the persona's signal (cat / dog / rabbit posts; "
        "posts by the authors the friend follows; posts of the liked topic; hot-or-new for "
        "the visitor), and the reasons the feed gave:",
        "",
        "| persona | matching items | reasons |",
        "|---|---|---|",
        *(f"| {n} | {hits} / {result['overlap']['page_sizes'][n]} | "
          f"{result['overlap']['reasons'][n]} |"
          for n, hits in result["overlap"]["signal_hits"].items()),
        "",
        "## Latency",
        "",
        "| case | p50 ms | p99 ms | n | p50 / bare |",
        "|---|---|---|---|---|",
        *(f"| {case} | {v['p50_ms']} | {v['p99_ms']} | {v['n']} | {v.get('p50_vs_bare', '')} |"
          for case, v in result["latency"].items()),
        "",
        "warm: pool and the viewer's profile cached (each call a new session); cold_profile: "
        "the viewer's signals and personal candidates re-read from MariaDB on every call; "
        "bare: one Redis GET of the pool, one SELECT of the 10 posts by id with authors and "
        "boards, their topics, rendering.",
        "",
        "## Query plans (EXPLAIN on the seeded tables)",
        "",
    ]
    for plan in result["explain"]:
        lines.append(f"- **{plan['query']}**: " + "; ".join(
            f"{p['table']} {p['type']} via {p['key']} (~{p['rows']} rows"
            + (f", {p['Extra']}" if p["Extra"] else "") + ")" for p in plan["plan"]))
    return "\n".join(lines) + "\n"


async def run(config: dict) -> dict:
    from pawhome import domains  # noqa: F401 - every hook connected
    from pawhome.community import feeds
    from pawhome.platform import migrate as migrations
    from pawhome.platform.resources import Resources
    from settings import Settings

    await prepare()
    await asyncio.to_thread(migrations.upgrade, os.environ["DATABASE_URL"])
    settings = Settings()
    resources = Resources(settings)
    try:
        seeded = await seed(resources, config, random.Random(11))
        await feeds.recompute_hot(resources.db, resources.cache, settings)
        return {"at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
                "config": config,
                "overlap": await overlap(resources, seeded),
                "latency": await latency(resources, seeded, config["requests"]),
                "explain": await explain(resources, seeded)}
    finally:
        await resources.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    result = asyncio.run(run(config))
    text = markdown(result)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "recommend.json").write_text(json.dumps(result, indent=2, default=str))
        (RESULTS / "recommend.md").write_text(text)


if __name__ == "__main__":
    main()
