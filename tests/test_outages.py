"""Redis or the database going away answers 503 with a clear code, quickly, and the gateway
recovers by itself when the service returns — no restart, no hang.

Each test runs the gateway against a private redis-server / mariadbd of its own (started once
per module on a free port, tests/services.py), so stopping them never disturbs other tests.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from tests.services import PrivateMariaDB, PrivateRedis

OUTAGE_DB = "pawhome_outage"
# Short client timeouts keep the "frozen server" cases fast; production values are settings.
REDIS_TIMEOUT = 0.5
DB_CONNECT_TIMEOUT = 1.0
DB_SESSION_TIMEOUT = 2.0


def _start_or_skip(service_class):
    try:
        server = service_class()
    except RuntimeError as error:  # the server binary is not installed
        pytest.skip(str(error))
    return server.start()  # a server that is installed but fails to start is a failure


async def _create_database(server_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(server_url)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE DATABASE `{OUTAGE_DB}` CHARACTER SET utf8mb4 "
                                "COLLATE utf8mb4_unicode_520_ci"))
    await engine.dispose()


@pytest.fixture(scope="module")
def private_redis():
    server = _start_or_skip(PrivateRedis)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def private_mariadb():
    from pawhome.platform import migrate

    server = _start_or_skip(PrivateMariaDB)
    try:
        asyncio.run(_create_database(server.url))
        migrate.upgrade(f"{server.url}{OUTAGE_DB}?charset=utf8mb4")
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def settings(private_redis, private_mariadb):
    """Overrides conftest's `settings`: the app, resources and api fixtures follow it."""
    from settings import Settings

    return Settings(database_url=f"{private_mariadb.url}{OUTAGE_DB}?charset=utf8mb4",
                    redis_url=private_redis.url, broker_url="",
                    redis_socket_timeout=REDIS_TIMEOUT, redis_connect_timeout=REDIS_TIMEOUT,
                    db_connect_timeout=DB_CONNECT_TIMEOUT, db_pool_timeout=2.0,
                    db_session_timeout=DB_SESSION_TIMEOUT)


async def in_thread(function, *args):
    """Run a blocking service start/stop without freezing the gateway under test."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def timed_get(api, path: str, **kw):
    started = time.monotonic()
    reply = await api.get(path, **kw)
    return reply, time.monotonic() - started


# --- Redis ----------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_redis_stopped_is_503_cache_unavailable_and_recovers_when_it_returns(
        api, private_redis):
    me = await api.login()
    (await api.get("/v1/users/me", token=me.token)).ok()

    await in_thread(private_redis.stop)
    try:
        reply, elapsed = await timed_get(api, "/v1/users/me", token=me.token)
        reply.error(503, code=50302)
        assert elapsed < 2.0, f"a refused Redis connection took {elapsed:.2f}s to surface"
        (await api.get("/healthz")).ok()  # the process is still serving
        ready = await api.get("/readyz")
        body = ready.error(503)
        assert [e["field"] for e in body["errors"]] == ["redis"]
    finally:
        await in_thread(private_redis.start)  # same port: clients must reconnect by themselves

    assert (await api.get("/v1/users/me", token=me.token)).ok()["id"] == me.user_id
    assert (await api.get("/readyz")).ok()["redis"] == "ok"


@pytest.mark.gen_test(timeout=60)
async def test_frozen_redis_is_503_within_the_socket_timeout_not_a_hang(api, private_redis):
    me = await api.login()
    (await api.get("/v1/users/me", token=me.token)).ok()

    os.kill(private_redis.proc.pid, signal.SIGSTOP)  # accepts TCP, never answers
    try:
        reply, elapsed = await timed_get(api, "/v1/users/me", token=me.token)
        reply.error(503, code=50302)
        assert elapsed < REDIS_TIMEOUT * 2 + 1.0, f"frozen Redis held a request {elapsed:.2f}s"
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)

    assert (await api.get("/v1/users/me", token=me.token)).ok()["id"] == me.user_id


# --- database -------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=120)
async def test_database_stopped_is_503_database_unavailable_and_recovers_when_it_returns(
        api, private_mariadb):
    me = await api.login()
    (await api.get("/v1/users/me", token=me.token)).ok()  # a pooled connection now exists

    await in_thread(private_mariadb.stop)
    try:
        reply, elapsed = await timed_get(api, "/v1/users/me", token=me.token)
        reply.error(503, code=50301)
        assert elapsed < DB_CONNECT_TIMEOUT + 2.0, f"database outage took {elapsed:.2f}s"
        (await api.post("/v1/auth/dev-login", json={"openid": "outage-new-user"})
         ).error(503, code=50301)
        (await api.get("/healthz")).ok()
        body = (await api.get("/readyz")).error(503)
        assert [e["field"] for e in body["errors"]] == ["database"]
        assert "database" in body["message"]
        assert body["data"]["redis"] == "ok"
    finally:
        await in_thread(private_mariadb.start)  # same data directory and port

    # pool_pre_ping throws away the dead pooled connections; no restart of the gateway.
    assert (await api.get("/v1/users/me", token=me.token)).ok()["id"] == me.user_id
    assert (await api.get("/readyz")).ok()["database"] == "ok"
    second = await api.login("outage-new-user")
    assert second.user_id != me.user_id



@pytest.mark.gen_test(timeout=60)
async def test_frozen_database_is_503_within_the_session_deadline_not_a_hang(
        api, private_mariadb):
    me = await api.login()
    (await api.get("/v1/users/me", token=me.token)).ok()

    os.kill(private_mariadb.proc.pid, signal.SIGSTOP)  # accepts TCP, never answers
    try:
        reply, elapsed = await timed_get(api, "/v1/users/me", token=me.token)
        reply.error(503, code=50301)
        assert elapsed < DB_SESSION_TIMEOUT + 2.0, f"frozen database held a request {elapsed:.2f}s"
    finally:
        os.kill(private_mariadb.proc.pid, signal.SIGCONT)

    assert (await api.get("/v1/users/me", token=me.token)).ok()["id"] == me.user_id


@pytest.mark.gen_test
async def test_a_timeout_inside_a_session_that_is_not_the_database_is_not_called_an_outage():
    from pawhome.platform.db import Database
    from settings import Settings

    db = Database(Settings(db_session_timeout=5.0))  # the run's MariaDB
    try:
        with pytest.raises(TimeoutError):
            async with db.session():
                await asyncio.wait_for(asyncio.sleep(1), 0.01)  # e.g. a call out timing out
    finally:
        await db.close()
