"""Read replicas (DATABASE_REPLICA_URLS, docs/scaling.md): a primary and a replica of our
own, real MariaDB GTID replication between them. A replica read waits until the replica has
applied the primary's position and then runs there; a replica that lags or is down is passed
over for the primary; the leaderboard rebuild reads the replica and writes the same board."""
from __future__ import annotations

import datetime as dt

import pymysql
import pytest
from sqlalchemy import event, select, text

from models.base import utcnow
from models.virtual_pets import VirtualPet
from pawhome.platform import migrate
from pawhome.platform.db import Database
from pawhome.virtualpet import leaderboards
from tests.mall_support import make_member
from tests.services import PrivateMariaDB, free_port
from tests.virtualpet_support import make_pet

DB = "pawhome_replicas"
PRIMARY_ID, REPLICA_ID = 11, 12


def _sql(server: PrivateMariaDB, *statements: str) -> list:
    connection = pymysql.connect(host="127.0.0.1", port=server.port, user="root",
                                 autocommit=True)
    try:
        rows: list = []
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                rows = list(cursor.fetchall())
        return rows
    finally:
        connection.close()


@pytest.fixture(scope="module")
def pair():
    """(primary, replica), replicating; the schema migrated on the primary only."""
    try:
        primary = PrivateMariaDB((f"--server-id={PRIMARY_ID}", "--log-bin=primary-bin",
                                  "--binlog-format=ROW"))
        replica = PrivateMariaDB((f"--server-id={REPLICA_ID}", "--read-only=1"))
    except RuntimeError as error:
        pytest.skip(str(error))
    try:
        primary.start()
        replica.start()
        _sql(replica, f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
                      "MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos",
             "START SLAVE")
        _sql(primary, f"CREATE DATABASE `{DB}` CHARACTER SET utf8mb4 "
                      "COLLATE utf8mb4_unicode_520_ci")
        migrate.upgrade(f"{primary.url}{DB}?charset=utf8mb4")
        yield primary, replica
    finally:
        replica.cleanup()
        primary.cleanup()


@pytest.fixture
def settings(pair):
    """Overrides conftest's `settings` (resources follow it): this module's primary with its
    replica, the run's own Redis namespace."""
    from settings import Settings

    primary, replica = pair
    return Settings().model_copy(update={
        "database_url": f"{primary.url}{DB}?charset=utf8mb4",
        "database_replica_urls": f"{replica.url}{DB}?charset=utf8mb4",
        "db_replica_wait_seconds": 0.5, "db_replica_retry_seconds": 30.0})


async def _server_id(session) -> int:
    return int((await session.execute(text("SELECT @@server_id"))).scalar_one())


async def _pet_names(session, owner_id: int) -> list[str]:
    return list((await session.execute(select(VirtualPet.name).where(
        VirtualPet.owner_id == owner_id))).scalars())


@pytest.mark.gen_test(timeout=60)
async def test_a_replica_read_waits_for_the_primary_position_and_runs_on_the_replica(
        resources):
    db = resources.db
    await make_pet(resources, 7001, name="团子")
    position = await db.position()
    assert position and position.startswith(f"0-{PRIMARY_ID}-")
    async with db.replica_session(position) as session:
        assert await _server_id(session) == REPLICA_ID
        assert await _pet_names(session, 7001) == ["团子"]
    async with db.session() as session:  # plain sessions stay on the primary
        assert await _server_id(session) == PRIMARY_ID


@pytest.mark.gen_test(timeout=60)
async def test_a_lagging_replica_is_passed_over_for_the_primary(resources, pair):
    _primary, replica = pair
    db = resources.db
    _sql(replica, "STOP SLAVE SQL_THREAD")  # the replica receives but applies nothing
    try:
        await make_pet(resources, 7002, name="年糕")
        position = await db.position()
        async with db.replica_session(position) as session:
            assert await _server_id(session) == PRIMARY_ID  # not caught up in 0.5 s
            assert await _pet_names(session, 7002) == ["年糕"]
    finally:
        _sql(replica, "START SLAVE SQL_THREAD")
    async with db.replica_session(position) as session:  # caught up again
        assert await _server_id(session) == REPLICA_ID
        assert await _pet_names(session, 7002) == ["年糕"]


@pytest.mark.gen_test(timeout=60)
async def test_a_replica_that_is_down_is_skipped_and_left_alone_for_a_while(settings):
    dead = f"mysql+aiomysql://root@127.0.0.1:{free_port()}/{DB}?charset=utf8mb4"
    db = Database(settings.model_copy(update={
        "database_replica_urls": f"{dead},{settings.database_replica_urls}",
        "db_connect_timeout": 1.0}))
    try:
        position = await db.position()
        served = []
        for _ in range(3):
            async with db.replica_session(position) as session:
                served.append(await _server_id(session))
        assert served == [REPLICA_ID] * 3  # the dead one tried once, then left alone
        assert db.replicas[0].down_until > 0 and db.replicas[1].down_until == 0
    finally:
        await db.close()


@pytest.mark.gen_test(timeout=90)
async def test_the_leaderboard_rebuild_reads_the_replica_and_writes_the_board(resources):
    owners = [(await make_member(resources)).user_id for _ in range(4)]
    for n, owner in enumerate(owners):
        await make_pet(resources, owner, level=4, exp=1000 + n,
                       exp_reached_at=utcnow() - dt.timedelta(minutes=n))
    on_replica: list[str] = []
    engine = resources.db.replicas[0].engine.sync_engine

    def count(_conn, _cursor, statement, *_args) -> None:
        on_replica.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        counts = await leaderboards.rebuild(resources, "pet_level", users_per_read=owners[2])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert counts["all"] >= len(owners)
    assert any("virtual_pets" in s for s in on_replica)  # the pets were read there
    key = leaderboards.board_key(resources.cache, "pet_level", "all", utcnow())
    ranked = await resources.cache.redis.zrevrange(key, 0, -1)
    assert [int(m) for m in ranked if int(m) in owners] == list(reversed(owners))
