"""A like burst on one post, in process (issue 15): N users like one post at once through
pawhome.community.likes.set_like, with the group commit (batches of up to 500 taps per
transaction) and with one tap per transaction (batch limit 1: what set_like did before the
group commit — the likes of a post took turns, one transaction each).

    python bench/like_burst.py              (500 likes per case, about 20 s; writes
                                             bench/results/like_burst.md)
    python bench/like_burst.py --likes 100  (smaller; prints, writes nothing)

Database `pawhome_bench_likes` (dropped and created each run), Redis prefix
`pawhome_bench_lb:`. Environment: BENCH_MYSQL_URL, BENCH_REDIS_URL (as bench_gateway.py).
Figures: the burst's wall time, each like's latency (from the call to its answer),
transactions (COMMITs of the like writers) and SQL statements they ran.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MYSQL = os.environ.get("BENCH_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DB_NAME = "pawhome_bench_likes"
PREFIX = "pawhome_bench_lb:"
RESULT = ROOT / "bench" / "results" / "like_burst.md"


async def _fresh_database() -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(MYSQL)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS `{DB_NAME}`"))
        await conn.execute(text(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4 "
                                "COLLATE utf8mb4_unicode_520_ci"))
    await engine.dispose()


async def _users(resources, count: int) -> list[int]:
    from models.base import utcnow
    from models.users import User, UserSettings

    async with resources.db.session() as session, session.begin():
        users = [User(openid="lb-" + uuid.uuid4().hex[:24], nickname=f"fan{i}", role="user",
                      status="active", last_login_at=utcnow()) for i in range(count)]
        session.add_all(users)
        await session.flush()
        session.add_all([UserSettings(user_id=u.id, notification_prefs={}, privacy_prefs={})
                         for u in users])
        return [int(u.id) for u in users]


async def _post(resources, author_id: int) -> int:
    from models.community import Post

    async with resources.db.session() as session, session.begin():
        post = Post(author_id=author_id, text="柯基\nbench", visibility="public",
                    status="visible", media_kind="none", media_ids=[], pet_types=[], pet_ids=[])
        session.add(post)
        await session.flush()
        return int(post.id)


async def _case(resources, likes: int, limit: int, spread: float = 0.0) -> dict[str, float]:
    """`likes` users like one post, all at once or arriving evenly over `spread` seconds."""
    from sqlalchemy import event

    from pawhome.community import likes as like_module

    author, *fans = await _users(resources, likes + 1)
    post_id = await _post(resources, author)
    writers = like_module._writers
    engine = resources.db.engine.sync_engine
    counted = {"commits": 0, "statements": 0}

    def statement(*_args) -> None:
        if asyncio.current_task() in writers._tasks:
            counted["statements"] += 1

    def commit(*_args) -> None:
        if asyncio.current_task() in writers._tasks:
            counted["commits"] += 1

    async def one(n: int, user_id: int) -> float:
        await asyncio.sleep(spread * n / likes)
        started = time.perf_counter()
        await like_module.set_like(resources, user_id, "post", post_id, True)
        return time.perf_counter() - started

    saved, writers.limit = writers.limit, limit
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        started = time.perf_counter()
        latencies = sorted(await asyncio.gather(*[one(n, u) for n, u in enumerate(fans)]))
        wall = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
        writers.limit = saved
    async with resources.db.session() as session:
        from models.community import Post
        count = (await session.get(Post, post_id)).like_count
    assert count == likes, (count, likes)
    return {"wall": wall, "p50": statistics.median(latencies),
            "p95": latencies[int(0.95 * (len(latencies) - 1))], "max": latencies[-1],
            "commits": counted["commits"], "statements": counted["statements"]}


async def main(likes: int) -> list[tuple[str, dict[str, float]]]:
    from pawhome.platform import migrate
    from pawhome.platform.resources import Resources
    from settings import Settings

    await _fresh_database()
    url = f"{MYSQL}{DB_NAME}?charset=utf8mb4"
    await asyncio.to_thread(migrate.upgrade, url)
    resources = Resources(Settings(mode="development", database_url=url, redis_url=REDIS,
                                   redis_prefix=PREFIX, db_pool_timeout=60))
    try:
        return [("one tap per transaction (before)", await _case(resources, likes, 1)),
                ("group commit (after)", await _case(resources, likes, 500)),
                ("one tap per transaction, arriving over 2 s", await _case(resources, likes, 1, 2.0)),
                ("group commit, arriving over 2 s", await _case(resources, likes, 500, 2.0))]
    finally:
        await resources.close()


def _report(likes: int, cases: list[tuple[str, dict[str, float]]]) -> str:
    lines = [f"# A burst of {likes} likes on one post, in process", "",
             f"bench/like_burst.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{platform.python_implementation()} {platform.python_version()}, "
             f"{os.cpu_count()} cores (shared machine), MariaDB and Redis local. {likes} users "
             "call pawhome.community.likes.set_like on one post at once; latency is from the "
             "call to its answer (after its commit). \"Before\" is today's code with the batch "
             "limit set to 1 (each tap its own transaction, in turn per post), which is how "
             "set_like wrote before the group commit.", "",
             "| case | burst wall time | like p50 | like p95 | like max | transactions | "
             "SQL statements |", "|---|---|---|---|---|---|---|"]
    for name, r in cases:
        lines.append(f"| {name} | {r['wall']:.2f} s | {r['p50'] * 1000:.0f} ms | "
                     f"{r['p95'] * 1000:.0f} ms | {r['max'] * 1000:.0f} ms | "
                     f"{r['commits']:.0f} | {r['statements']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--likes", type=int, default=500)
    args = parser.parse_args()
    text = _report(args.likes, asyncio.run(main(args.likes)))
    print(text)
    if args.likes == 500:
        RESULT.write_text(text)
