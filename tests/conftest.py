"""Test harness: real MariaDB and Redis, a private database and Redis namespace per run.

Before any project module reads its settings, this file points the environment at a fresh
database `pawhome_t_<run>` (migrated to head) and the Redis prefix `pawhome_t_<run>:`, and
both are removed when the run ends. Fixtures: `app` (a gateway application on this test's
IOLoop), `api` (a JSON client with `login()`), `served_api` (the same through the gateway's own
HTTP server), `access_lines`, `resources`, `settings`.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import uuid

import pytest

from tests.services import DEFAULT_MYSQL, DEFAULT_REDIS, ensure_mysql, ensure_redis

RUN_ID = uuid.uuid4().hex[:10]
MYSQL_BASE = ensure_mysql(os.environ.get("TEST_MYSQL_URL", DEFAULT_MYSQL))
REDIS_URL = ensure_redis(os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS))
DB_NAME = f"pawhome_t_{RUN_ID}"
REDIS_PREFIX = f"pawhome_t_{RUN_ID}:"

os.environ.update(
    MODE="development",
    DATABASE_URL=f"{MYSQL_BASE}{DB_NAME}?charset=utf8mb4",
    REDIS_URL=REDIS_URL,
    REDIS_PREFIX=REDIS_PREFIX,
    BROKER_URL=os.environ.get("TEST_BROKER_URL", REDIS_URL),
    TASK_QUEUE_PREFIX=f"t_{RUN_ID}.",
    JWT_SECRET="test-secret-" + secrets.token_hex(16),
    LOG_LEVEL=os.environ.get("TEST_LOG_LEVEL", "WARNING"),
    OUTBOX_POLL_SECONDS="0.2",
)

# The suite's composition root, as run_gateway.py is the gateway's: the Celery app installs
# the task dispatcher and wires every domain.
import workers.celery_app  # noqa: E402,F401
from tests.helpers import Api  # noqa: E402  (after the environment is set)

pytest_plugins = ["tests.fixtures_wechat", "tests.fixtures_worker",
                  "tests.fixtures_wechatpay"]


def _admin_url() -> str:
    return MYSQL_BASE  # server URL without a database


async def _create_database() -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(_admin_url())
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4 "
                                "COLLATE utf8mb4_unicode_520_ci"))
    await engine.dispose()


async def _drop_database_and_keys() -> None:
    import redis.asyncio as aioredis
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(_admin_url())
    async with engine.begin() as conn:
        # A test that failed mid-transaction may have leaked a connection holding locks;
        # DROP DATABASE would wait on it forever. End every connection still using the run's
        # databases first.
        leaked = (await conn.execute(text(
            "SELECT id FROM information_schema.processlist "
            "WHERE db LIKE :name AND id <> CONNECTION_ID()"),
            {"name": DB_NAME + "%"})).scalars().all()
        for connection_id in leaked:
            try:
                await conn.execute(text(f"KILL {int(connection_id)}"))
            except Exception:  # it ended by itself meanwhile
                pass
        await conn.execute(text(f"DROP DATABASE IF EXISTS `{DB_NAME}`"))
    await engine.dispose()
    client = aioredis.Redis.from_url(REDIS_URL)
    batch = []
    async for key in client.scan_iter(match=REDIS_PREFIX + "*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            await client.delete(*batch)
            batch.clear()
    if batch:
        await client.delete(*batch)
    await client.aclose()


def _is_xdist_controller(config) -> bool:
    """Under pytest-xdist the controller only hands out tests: the workers (each importing
    this file, so each with a RUN_ID, database and Redis prefix of its own) run them."""
    return getattr(config.option, "numprocesses", None) not in (None, 0) \
        and not os.environ.get("PYTEST_XDIST_WORKER")


def pytest_sessionstart(session) -> None:
    from pawhome.platform import migrate

    if _is_xdist_controller(session.config):
        return
    asyncio.run(_create_database())
    migrate.upgrade(os.environ["DATABASE_URL"])


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get("TEST_KEEP_DATABASE") or _is_xdist_controller(session.config):
        return
    asyncio.run(_drop_database_and_keys())


@pytest.fixture
def settings():
    from settings import Settings

    return Settings()


@pytest.fixture
def resources(settings, io_loop):
    from pawhome.platform.resources import Resources

    res = Resources(settings)
    yield res
    io_loop.run_sync(res.close)


@pytest.fixture
def app(resources, io_loop):
    """A gateway application on this test's IOLoop, its outbox relay running."""
    from gateway.app import make_app
    from handlers import ROUTES

    application = make_app(resources, ROUTES)
    relay = application.settings["relay"]
    io_loop.add_callback(relay.start)
    yield application
    io_loop.run_sync(application.settings["hub"].stop)  # the WebSocket hub, if it started
    io_loop.run_sync(relay.stop)


@pytest.fixture
def api(http_client, base_url, app):
    return Api(http_client, base_url, app)


@pytest.fixture
def served_api(app, http_client, io_loop):
    """An Api client talking to `app` through the gateway's own HTTP server (gateway/server.py:
    which forwarded headers it trusts, the request-head limit), on a port of its own."""
    from gateway.server import make_server
    from tests.services import free_port

    port = free_port()
    server = make_server(app, app.settings["resources"].settings)
    server.listen(port, address="127.0.0.1")
    yield Api(http_client, f"http://127.0.0.1:{port}", app)
    server.stop()
    io_loop.run_sync(server.close_all_connections)


@pytest.fixture
def access_lines(monkeypatch, caplog):
    """The access lines the gateway writes, read back from a file standing in for stderr."""
    import logging
    import tempfile

    from gateway import accesslog
    from pawhome.platform import codec

    caplog.set_level(logging.INFO, logger="pawhome.access")
    with tempfile.TemporaryFile() as out:
        writer = accesslog.LineWriter(out.fileno())
        monkeypatch.setattr(accesslog, "writer", writer)

        def read() -> list[dict]:
            writer.flush()
            out.seek(0)
            return [codec.loads(line) for line in out.read().splitlines()]

        yield read


@pytest.fixture(autouse=True)
def clear_rate_limits(resources, io_loop) -> None:
    """Every test starts with empty rate-limit windows: the suite logs in hundreds of times
    from 127.0.0.1, and a test should meet a limit only when the limit is what it tests."""
    async def clear() -> None:
        redis = resources.cache.redis
        keys = [k async for k in redis.scan_iter(match=resources.cache.key("rl", "*"), count=500)]
        if keys:
            await redis.delete(*keys)
    io_loop.run_sync(clear)


@pytest.fixture(scope="module")
def private_database():
    """A database of this module's own, migrated to head (URL), dropped afterwards: for tests
    that need a table to themselves, such as the outbox a relay drains."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from pawhome.platform import migrate

    name = f"{DB_NAME}_{uuid.uuid4().hex[:6]}"

    async def run(statement: str) -> None:
        engine = create_async_engine(_admin_url())
        async with engine.begin() as conn:
            await conn.execute(text(statement))
        await engine.dispose()

    asyncio.run(run(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_unicode_520_ci"))
    url = f"{MYSQL_BASE}{name}?charset=utf8mb4"
    migrate.upgrade(url)
    yield url
    asyncio.run(run(f"DROP DATABASE IF EXISTS `{name}`"))
