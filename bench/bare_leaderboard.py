"""The baseline for bench_leaderboard.py: a bare Tornado handler doing only the storage work of
GET /v1/leaderboards/pet_level, with nothing of the gateway around it (no envelope code,
request ids, rate limits, metrics, access log, query model).

    GET /bare/leaderboard?page=1&limit=20
        the token check (JWT decode + the MGET of the revocation keys, as bare_server.py),
        one pipelined ZCARD + ZREVRANGE (the page, with scores) + ZREVRANK (me), a ZREVRANGE
        of the entries around me, then one SELECT of those users and one of their pets, and
        the JSON encoding of the rows.

The key is the gateway's own (the all-time pet board under the bench's Redis prefix).
"""
from __future__ import annotations

import sys
from pathlib import Path

import tornado.web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bare_server import Healthz, authenticated_user_id, listen_forever, run  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.ext.asyncio import async_sessionmaker  # noqa: E402

from models.users import User  # noqa: E402
from models.virtual_pets import VirtualPet  # noqa: E402
from pawhome.platform import codec  # noqa: E402
from pawhome.platform.cache import make_redis  # noqa: E402
from pawhome.platform.db import make_engine  # noqa: E402
from settings import get_settings  # noqa: E402

AROUND = 2


class Board(tornado.web.RequestHandler):
    async def get(self) -> None:
        s = self.application.settings
        user_id = await authenticated_user_id(self)
        page, limit = int(self.get_argument("page", "1")), int(self.get_argument("limit", "20"))
        start, key, redis = (page - 1) * limit, s["board_key"], s["redis"]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zcard(key)
            pipe.zrevrange(key, start, start + limit - 1, withscores=True)
            pipe.zrevrank(key, str(user_id))
            total, rows, mine = await pipe.execute()
        near = [] if mine is None else await redis.zrevrange(
            key, max(0, mine - AROUND), mine + AROUND, withscores=True)
        ids = sorted({int(member) for member, _score in [*rows, *near]})
        async with s["sessionmaker"]() as session:
            people = (await session.execute(select(User.id, User.nickname, User.avatar_url)
                                            .where(User.id.in_(ids)))).all()
            pets = (await session.execute(select(
                VirtualPet.owner_id, VirtualPet.id, VirtualPet.name, VirtualPet.level,
                VirtualPet.exp, VirtualPet.thumb_media_id).where(
                VirtualPet.owner_id.in_(ids), VirtualPet.deleted_at.is_(None)))).all()
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps({"code": 0, "message": "ok", "data": {
            "total": total, "my_rank": None if mine is None else mine + 1,
            "items": [[int(m), score] for m, score in rows],
            "around": [[int(m), score] for m, score in near],
            "users": [tuple(p) for p in people], "pets": [tuple(p) for p in pets]}}))


async def serve(port: int) -> None:
    settings = get_settings()
    app = tornado.web.Application(
        [(r"/healthz", Healthz), (r"/bare/leaderboard", Board)],
        secret=settings.jwt_secret, prefix=settings.redis_prefix, redis=make_redis(settings),
        sessionmaker=async_sessionmaker(make_engine(settings), expire_on_commit=False),
        board_key=settings.redis_prefix + "lb:pet_level:all",
        log_function=lambda handler: None)
    await listen_forever(app, port)


if __name__ == "__main__":
    run(serve)
