"""The baseline for bench_gateway.py: a bare Tornado app doing the same work as the gateway.

GET /healthz writes the same JSON bytes; GET /v1/users/me does the same JWT decode, the same
Redis MGET of the three revocation keys, the same SQLAlchemy async row lookup and the same
JSON encoding - and nothing else (no envelope machinery, request ids, rate limits, metrics,
access log). The difference to the gateway is what the gateway's own plumbing costs.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import jwt
import tornado.httpserver
import tornado.web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.ext.asyncio import async_sessionmaker

from models.users import User
from pawhome.identity.users import profile
from pawhome.platform import codec
from pawhome.platform.cache import make_redis
from pawhome.platform.db import make_engine
from settings import get_settings


class Healthz(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps({"code": 0, "message": "ok", "data": {"status": "ok"}}))


async def authenticated_user_id(handler: tornado.web.RequestHandler) -> int:
    """The gateway's token check, bare: JWT decode and the Redis MGET of the three revocation
    keys (application settings `secret`, `prefix`, `redis`). Also used by bare_community.py."""
    s = handler.application.settings
    token = handler.request.headers.get("Authorization", "")[7:]
    try:
        claims = jwt.decode(token, s["secret"], algorithms=["HS256"],
                            options={"require": ["sub", "jti", "iat", "exp", "role", "sid"]})
    except jwt.PyJWTError:
        raise tornado.web.HTTPError(401) from None
    user_id = int(claims["sub"])
    prefix = s["prefix"]
    jti, sid, after = await s["redis"].mget(
        f"{prefix}auth:revoked-jti:{claims['jti']}", f"{prefix}auth:revoked-sid:{claims['sid']}",
        f"{prefix}auth:valid-after:{user_id}")
    if jti or sid or (after is not None and float(claims["iat"]) * 1000 < int(after)):
        raise tornado.web.HTTPError(401) from None
    return user_id


class Me(tornado.web.RequestHandler):
    async def get(self) -> None:
        s = self.application.settings
        user_id = await authenticated_user_id(self)
        async with s["sessionmaker"]() as session:
            user = await session.get(User, user_id)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps({"code": 0, "message": "ok", "data": profile(user)}))


async def listen_forever(app: tornado.web.Application, port: int) -> None:
    """Serve `app` on 127.0.0.1:`port` until killed (every bare server's last step)."""
    server = tornado.httpserver.HTTPServer(app, xheaders=True)
    server.listen(port, address="127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


def run(serve: Callable[[int], Awaitable[None]]) -> None:
    """`serve(port)` with the port from the command line (--port)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


async def serve(port: int) -> None:
    settings = get_settings()
    app = tornado.web.Application(
        [(r"/healthz", Healthz), (r"/v1/users/me", Me)],
        secret=settings.jwt_secret, prefix=settings.redis_prefix, redis=make_redis(settings),
        sessionmaker=async_sessionmaker(make_engine(settings), expire_on_commit=False),
        log_function=lambda handler: None)
    await listen_forever(app, port)


if __name__ == "__main__":
    run(serve)
