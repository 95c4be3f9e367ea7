"""The baselines for bench_community.py: bare Tornado handlers doing only the feeds' storage
work, with nothing of the gateway around them (no envelope code, request ids, rate limits,
metrics, access log).

    GET /bare/hot        one Redis GET of the gateway's cached hot first page (the same key),
                         the same bytes out in the same envelope;
    GET /bare/hot-pipelined
                         the same GET sent on the pipelined connection the gateway's
                         admission call uses (pawhome/platform/redis_pipeline.py), so the comparison
                         can be made without the gateway's cheaper Redis access too;
    GET /bare/latest     the SQL statements the gateway runs for the first page of the latest
                         feed on a cache miss, replayed with the same parameters on the same
                         engine (pawhome.platform.db.make_engine), rows encoded with the same codec.

The key and the statements come from bench_community.py (BENCH_HOT_KEY, and BENCH_BARE_SQL:
a pickle of {"latest": [(sql, params)]} captured from
SQLAlchemy while the bench process ran pawhome.community.feeds' own code).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import sys
from pathlib import Path

import tornado.httpserver
import tornado.web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bare_server import Healthz  # noqa: E402

from pawhome.platform import codec  # noqa: E402
from pawhome.platform.cache import make_redis  # noqa: E402
from pawhome.platform.db import make_engine  # noqa: E402
from pawhome.platform.redis_pipeline import Pipeline  # noqa: E402
from settings import get_settings  # noqa: E402

ENVELOPE = b'{"code":0,"message":"ok","data":'


async def replay(engine, statements: list[tuple[str, tuple]]) -> list[list[tuple]]:
    """Run the captured statements on one pooled connection; every row of every result."""
    async with engine.connect() as conn:
        return [[tuple(row) for row in (await conn.exec_driver_sql(sql, params)).all()]
                for sql, params in statements]


class Hot(tornado.web.RequestHandler):
    async def get(self) -> None:
        s = self.application.settings
        raw = await s["redis"].get(s["hot_key"])
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(ENVELOPE + raw + b"}")


class HotPipelined(tornado.web.RequestHandler):
    async def get(self) -> None:
        s = self.application.settings
        raw = await s["pipeline"].execute("GET", s["hot_key"])
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(ENVELOPE + raw + b"}")


class Latest(tornado.web.RequestHandler):
    async def get(self) -> None:
        s = self.application.settings
        results = await replay(s["engine"], s["sql"]["latest"])
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps({"code": 0, "message": "ok", "data": results}))


async def serve(port: int) -> None:
    settings = get_settings()
    sql = pickle.loads(Path(os.environ["BENCH_BARE_SQL"]).read_bytes())
    redis = make_redis(settings)
    app = tornado.web.Application(
        [(r"/healthz", Healthz), (r"/bare/hot", Hot), (r"/bare/hot-pipelined", HotPipelined),
         (r"/bare/latest", Latest)],
        secret=settings.jwt_secret, prefix=settings.redis_prefix, redis=redis,
        pipeline=Pipeline(redis),
        engine=make_engine(settings), hot_key=os.environ["BENCH_HOT_KEY"], sql=sql,
        log_function=lambda handler: None)
    server = tornado.httpserver.HTTPServer(app, xheaders=True)
    server.listen(port, address="127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))
