"""The five hottest reads on FastAPI + uvicorn, for bench/bench_rest_floor.py (issue 15 §3):
the framework floor PAWHome's Tornado gateway is measured against.

    python bench/fastapi_reads.py --port 8100      (settings from the environment, as the gateway)

uvicorn runs as it normally does in production: one process, uvloop and httptools, its own
access log off (the middleware below writes ours). The endpoints call the SAME domain read
functions the gateway's handlers call, on the same `Resources` (SQLAlchemy async + aiomysql,
redis.asyncio, the same caches and keys), so both servers do the same storage work:

    GET /v1/posts                      feeds.read_feed            (viewer: token optional)
    GET /v1/products                   product_views.list_page    (public)
    GET /v1/products/{product_id}      product_views.product_page (viewer: token optional)
    GET /v1/services/{service_id}/slots availability.service_slots (public)
    GET /v1/orders                     order_views.list_my_orders (token required)

Auth is a FastAPI dependency verifying the same JWT with the same function
(pawhome.identity.tokens: signature and expiry, then the three revocation marks in one Redis
MGET). A pure ASGI middleware gives each request an id, counts it in the same Prometheus
metrics (gateway/metrics.py: requests by method, route template and status; latency by
route) and writes the same JSON access-log line through the same batched writer
(gateway/accesslog.py). Query strings are validated by the same pydantic models; replies are
the same envelope encoded with the same codec. What the gateway does besides (a rate limit
counted in its one admission call, daily-active-user marks, the in-flight count for a
graceful drain) has no counterpart here: bench_rest_floor.py's report says so.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from fastapi import Depends, FastAPI, Query, Request  # noqa: E402
from fastapi.responses import Response  # noqa: E402

from gateway import accesslog  # noqa: E402 - the same metrics and access-log writer
from pawhome.booking import availability  # noqa: E402
from pawhome.community import feeds  # noqa: E402
from pawhome.identity.tokens import AccessClaims, decode_access_token, ensure_not_revoked  # noqa: E402
from pawhome.mall import order_views, product_views  # noqa: E402
from pawhome.platform import codec, errors  # noqa: E402
from pawhome.platform.logs import setup_logging, timestamp  # noqa: E402
from pawhome.platform.resources import Resources  # noqa: E402
from settings import get_settings  # noqa: E402

ENVELOPE = b'{"code":0,"message":"ok","data":'
HEADERS = {"Cache-Control": "no-store"}
JSON = "application/json; charset=utf-8"

settings = get_settings()
resources = Resources(settings)
app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


# -- replies and errors --------------------------------------------------------------------------
def raw_reply(data: bytes) -> Response:
    """A reply whose `data` is already encoded (a cached page, as stored)."""
    return Response(ENVELOPE + data + b"}", media_type=JSON, headers=HEADERS)


def reply(data: Any) -> Response:
    return Response(codec.dumps({"code": 0, "message": "ok", "data": data}), media_type=JSON,
                    headers=HEADERS)


@app.exception_handler(errors.AppError)
async def app_error(request: Request, error: errors.AppError) -> Response:
    request.state.error = error
    return Response(codec.dumps(error.body()), status_code=error.status, media_type=JSON,
                    headers={**HEADERS, **error.headers})


# -- auth ----------------------------------------------------------------------------------------
def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized()
    return token.strip()


async def verified(token: str) -> AccessClaims:
    claims = decode_access_token(settings, token)
    await ensure_not_revoked(resources.cache, claims)
    return claims


async def caller(request: Request) -> AccessClaims:
    """A required login: the verified, unrevoked claims of the bearer token."""
    token = bearer(request)
    if token is None:
        raise errors.Unauthorized()
    request.state.claims = await verified(token)
    return request.state.claims


async def viewer(request: Request) -> AccessClaims | None:
    """An optional login: a token that is sent must be valid."""
    token = bearer(request)
    if token is None:
        return None
    request.state.claims = await verified(token)
    return request.state.claims


def user_of(claims: AccessClaims | None) -> int | None:
    return claims.user_id if claims is not None else None


# -- the five reads ------------------------------------------------------------------------------
@app.get("/v1/posts")
async def posts(query: Annotated[feeds.FeedQuery, Query()],
                claims: Annotated[AccessClaims | None, Depends(viewer)]) -> Response:
    return raw_reply(await feeds.read_feed(resources, user_of(claims), query))


@app.get("/v1/products")
async def products(query: Annotated[product_views.ProductListQuery, Query()]) -> Response:
    return raw_reply(await product_views.list_page(resources, query))


@app.get("/v1/products/{product_id}")
async def product(product_id: int,
                  claims: Annotated[AccessClaims | None, Depends(viewer)]) -> Response:
    return raw_reply(await product_views.product_page(resources, user_of(claims), product_id))


@app.get("/v1/services/{service_id}/slots")
async def slots(service_id: int,
                query: Annotated[availability.SlotsQuery, Query()]) -> Response:
    return reply(await availability.service_slots(resources, service_id, query))


@app.get("/v1/orders")
async def my_orders(query: Annotated[order_views.OrderListQuery, Query()],
                    claims: Annotated[AccessClaims, Depends(caller)]) -> Response:
    return reply(await order_views.list_my_orders(resources, claims.user_id, query))


@app.get("/healthz")
async def healthz() -> Response:
    return reply({"status": "ok"})


# -- request id, metrics, access log ----------------------------------------------------------------
class Observed:
    """Pure ASGI middleware (Starlette's BaseHTTPMiddleware would cost far more): a request
    id, the request counted in the gateway's metrics, and its JSON access-log line."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = os.urandom(16).hex()
        status = 500

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        state = scope.setdefault("state", {})
        try:
            await self.inner(scope, receive, send_with_id)
        finally:
            self.record(scope, state, request_id, status, time.perf_counter() - started)

    @staticmethod
    def record(scope, state: dict, request_id: str, status: int, elapsed: float) -> None:
        route = scope.get("route")
        template = route.path if route is not None else "unmatched"
        accesslog._counter(scope["method"], template, status).inc()
        accesslog._latency(template).observe(elapsed)
        error = state.get("error")
        if error is not None:
            accesslog.HTTP_ERRORS.labels(str(error.code)).inc()
        if not accesslog.log.isEnabledFor(logging.INFO):  # LOG_LEVEL=WARNING turns it off
            return
        claims = state.get("claims")
        client = scope.get("client")
        accesslog.writer.add(codec.dumps({
            "ts": timestamp(time.time()), "level": "INFO", "logger": "pawhome.access",
            "request_id": request_id, "msg": "request", "method": scope["method"],
            "route": template, "path": accesslog._masked(scope["path"]), "status": status,
            "code": error.code if error is not None else 0,
            "latency_ms": round(elapsed * 1000, 2),
            "user_id": claims.user_id if claims is not None else None,
            "ip": client[0] if client else "-"}) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    log_file = os.environ.get("BENCH_LOG_FILE")
    if log_file:  # the log (access lines included) to a file, as the gateway's in the bench
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
    setup_logging(settings.log_level)
    uvicorn.run(Observed(app), host="127.0.0.1", port=args.port, loop="uvloop",
                http="httptools", access_log=False, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
