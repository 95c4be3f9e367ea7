"""Database engine and sessions (SQLAlchemy 2 async; aiomysql in production, aiosqlite embedded).

`Database.session()` is the one way code opens a unit of work. Connection-level failures are
translated to `DatabaseUnavailable` (HTTP 503) so a database outage is an answer, not a crash;
the pool pre-pings, so the process recovers by itself when the server returns.
`Database.replica_session(position())` is a read on a replica (DATABASE_REPLICA_URLS) that
has applied everything the primary had committed at `position()`, else on the primary.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import JSON, event, exc, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import Select

from pawhome.platform import codec
from pawhome.platform.errors import DatabaseUnavailable
from settings import Settings

log = logging.getLogger("pawhome.db")
T = TypeVar("T")
# What a read-only Core query runs on: a session, or a bare connection (Database.connection).
Executor = AsyncSession | AsyncConnection

# MySQL/MariaDB client errors that mean "the server is not there", not "your SQL is wrong".
_CONNECTION_ERRNOS = {2002, 2003, 2006, 2013, 2055, 1040, 1053, 1927}


def is_connection_error(error: BaseException) -> bool:
    if isinstance(error, (exc.DisconnectionError, exc.TimeoutError)):
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        orig = error.orig
        args = getattr(orig, "args", ())
        if args and isinstance(args[0], int) and args[0] in _CONNECTION_ERRNOS:
            return True
        if isinstance(error, exc.InterfaceError):
            return True
    return isinstance(error, (ConnectionError, OSError))


def make_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    url = url or settings.database_url
    if settings.is_sqlite:
        engine = create_async_engine(url, connect_args={"timeout": 15},
                                     json_deserializer=codec.loads)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # WAL: no reader waits
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.close()
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        pool_pre_ping=True,
        connect_args={"connect_timeout": settings.db_connect_timeout, "charset": "utf8mb4"},
        json_deserializer=codec.loads,  # JSON columns: orjson reads them ~5x faster
    )


class Replica:
    """A read replica: its engine, and until when it is left alone after a failure."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.engine = make_engine(settings, url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.down_until = 0.0


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self.replicas = [Replica(settings, url) for url in settings.replica_urls]
        self._next_replica = 0
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # READ COMMITTED takes no gap locks: a queue-style reader (the outbox relay's
        # SELECT ... FOR UPDATE SKIP LOCKED) then locks only the rows it read, and cannot
        # deadlock with a request inserting new rows. Same pool, different isolation.
        committed = (self.engine if settings.is_sqlite
                     else self.engine.execution_options(isolation_level="READ COMMITTED"))
        self.read_committed_sessionmaker = async_sessionmaker(committed, expire_on_commit=False)
        # Units of work wait here, first come first served, for one of the pool's
        # DB_POOL_SIZE kept connections. Without it, under more concurrent requests than
        # connections, p99 of a database read grew to ten times p50 (the pool's own wait
        # is not first come first served), and units of work beyond the pool size opened
        # overflow connections that the pool closed again on return: one new MariaDB
        # connection per three requests. asyncio's Semaphore (3.11+) queues newcomers behind
        # waiters. DB_MAX_OVERFLOW stays headroom for connections held outside the gate
        # (the chat writer's).
        self._gate = None if settings.is_sqlite else asyncio.Semaphore(settings.db_pool_size)

    @contextlib.asynccontextmanager
    async def session(self, timeout: float | None = None,
                      read_committed: bool = False) -> AsyncIterator[AsyncSession]:
        """A session whose connection failures surface as DatabaseUnavailable.

        On a network database the whole unit of work has a deadline (`timeout`, default
        DB_SESSION_TIMEOUT; 0 for none): a server that accepts connections but never answers
        becomes a 503 instead of a request that hangs. SQLite is local and has busy_timeout.
        """
        maker = self.read_committed_sessionmaker if read_committed else self.sessionmaker
        await self._take_turn()
        deadline = self._deadline(timeout)
        try:
            async with deadline, maker() as session:
                yield session
        except BaseException as error:
            self._raise_unavailable(error, deadline)
            raise
        finally:
            self._leave()

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[AsyncConnection]:
        """A bare connection for Core reads, guarded like session(). Cheaper than a session
        for a read-only unit of work: closing a session rolls back and then the pool rolls
        back again on check-in; closing a connection rolls back once."""
        # One generator for the turn, the deadline and the error translation: this runs on
        # every feed request, and each nested generator context manager adds its own
        # enter/exit machinery.
        await self._take_turn()
        deadline = self._deadline(timeout)
        try:
            async with deadline, self.engine.connect() as connection:
                yield connection
        except BaseException as error:
            self._raise_unavailable(error, deadline)
            raise
        finally:
            self._leave()

    async def position(self) -> str | None:
        """The primary's replication position now (@@gtid_binlog_pos), to hand to
        `replica_session`; None when there are no replicas (nothing to wait for)."""
        if not self.replicas:
            return None
        async with self.connection() as connection:
            return str((await connection.execute(text("SELECT @@gtid_binlog_pos"))).scalar()
                       or "")

    @contextlib.asynccontextmanager
    async def replica_session(self, position: str | None,
                              timeout: float | None = None) -> AsyncIterator[AsyncSession]:
        """A session for reads on a replica that has applied the primary's `position` (from
        `position()`, taken before the read's cut-off), so it sees at least what the primary
        had committed then; on the primary when no replica has within
        DB_REPLICA_WAIT_SECONDS, or none is configured or reachable. Never write in it."""
        replica = await self._caught_up_replica(position) if position is not None else None
        if replica is None:
            async with self.session(timeout) as session:
                yield session
            return
        deadline = self._deadline(timeout)
        try:
            async with deadline, replica.sessionmaker() as session:
                yield session
        except BaseException as error:
            self._raise_unavailable(error, deadline)
            raise

    async def _caught_up_replica(self, position: str) -> Replica | None:
        """The next replica (round robin) that is up and has applied `position`."""
        wait = self.settings.db_replica_wait_seconds
        for _ in range(len(self.replicas)):
            replica = self.replicas[self._next_replica % len(self.replicas)]
            self._next_replica += 1
            if replica.down_until > time.monotonic():
                continue
            try:
                async with asyncio.timeout(wait + self.settings.db_connect_timeout + 1), \
                        replica.engine.connect() as connection:
                    waited = (await connection.execute(
                        text("SELECT MASTER_GTID_WAIT(:position, :wait)"),
                        {"position": position, "wait": wait})).scalar() if position else 0
            except Exception as error:  # unreachable or broken: the primary answers instead
                replica.down_until = time.monotonic() + self.settings.db_replica_retry_seconds
                log.warning("read replica unavailable, reading the primary: %r", error)
                continue
            if waited == 0:
                return replica
            log.info("read replica behind the primary's position after %.1f s", wait)
        return None

    async def _take_turn(self) -> None:
        if self._gate is None:
            return
        if not self._gate.locked():
            await self._gate.acquire()  # free now: no timer needed
            return
        try:
            async with asyncio.timeout(self.settings.db_pool_timeout):
                await self._gate.acquire()
        except TimeoutError:
            raise DatabaseUnavailable("No database connection free in time") from None

    def _leave(self) -> None:
        if self._gate is not None:
            self._gate.release()

    def _deadline(self, timeout: float | None) -> asyncio.Timeout:
        limit = self.settings.db_session_timeout if timeout is None else timeout
        return asyncio.timeout(limit if limit and not self.settings.is_sqlite else None)

    @staticmethod
    def _raise_unavailable(error: BaseException, deadline: asyncio.Timeout) -> None:
        """Raise DatabaseUnavailable for a failure that means "no database" (the deadline
        passed, the connection failed); return for anything else (the caller re-raises)."""
        if isinstance(error, TimeoutError):
            if deadline.expired():
                raise DatabaseUnavailable("Database did not answer in time") from error
        elif isinstance(error, exc.SQLAlchemyError):
            if is_connection_error(error):
                raise DatabaseUnavailable() from error
        elif isinstance(error, (ConnectionError, OSError)):
            raise DatabaseUnavailable() from error

    async def ping(self) -> None:
        async with self.session() as session:
            await session.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
        for replica in self.replicas:
            await replica.engine.dispose()


class Prepared:
    """A Core SELECT compiled once per dialect (and once per length of each expanding IN
    list) and run as its SQL text with exec_driver_sql, for the hottest reads: it skips
    SQLAlchemy's per-execution work on a Core statement (the cache key walk, parameter and
    result-type processing). On the feed's first page this cut the gateway's CPU above a
    bare replay of the same SQL from about +500 µs to about +165 µs a call (in-process, on a
    noisy 2-core VM).

    `await prepared.rows(executor, **params)` returns the rows as tuples, with the dialect's
    result processing applied, except that JSON columns come back as codec.Raw of the text
    the database holds: encoded as it is by codec.dumps, never decoded (None stays None).
    Only for SELECTs whose JSON columns are written through SQLAlchemy (valid JSON)."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = _Compiled(self.statement, dialect)
        return found

    async def rows(self, executor: Executor, **params: Any) -> list[tuple[Any, ...]]:
        connection = (await executor.connection() if isinstance(executor, AsyncSession)
                      else executor)
        compiled = self._compiled(connection.dialect)
        sql, values = compiled.bind(params)
        rows = (await connection.exec_driver_sql(sql, values)).all()
        if not compiled.processors:
            return [tuple(row) for row in rows]
        out = []
        for row in rows:
            columns = list(row)
            for index, process in compiled.processors:
                if columns[index] is not None:
                    columns[index] = process(columns[index])
            out.append(tuple(columns))
        return out


class _Compiled:
    """Prepared's statement for one dialect: its SQL text (per IN-list length), the order of
    its positional parameters, and the result processors of the columns that have one."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        self.compiled = compiled = statement.compile(dialect=dialect)
        if not compiled.positional:
            raise TypeError(f"{dialect.name}: Prepared needs a positional paramstyle")
        self.order = tuple(compiled.positiontup or ())
        self.expanding = frozenset(k for k, b in compiled.binds.items() if b.expanding)
        self.defaults = dict(compiled.params)
        self.sql: dict[tuple[int, ...], str] = {}
        self.processors: list[tuple[int, Callable[[Any], Any]]] = []
        for index, column in enumerate(statement.selected_columns):
            process = _raw_json if isinstance(column.type, JSON) else \
                column.type.dialect_impl(dialect).result_processor(dialect, None)
            if process is not None:
                self.processors.append((index, process))

    def bind(self, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        """The SQL text and the positional values for `params` (defaults for the rest)."""
        values: list[Any] = []
        shape = []
        for name in self.order:
            value = params[name] if name in params else self.defaults[name]
            if name in self.expanding:
                values.extend(value)
                shape.append(len(value))
            else:
                values.append(value)
        if not shape:
            return self.compiled.string, tuple(values)
        key = tuple(shape)
        sql = self.sql.get(key)
        if sql is None:
            sql = self.sql[key] = self.compiled.construct_expanded_state(
                {**self.defaults, **params}).statement
        return sql, tuple(values)


def _raw_json(value: str | bytes) -> codec.Raw:
    return codec.Raw(value)


# InnoDB deadlock and lock wait timeout: the transaction was rolled back and may simply rerun.
_RETRY_ERRNOS = {1213, 1205}


class Overtaken(Exception):
    """Raised by a unit of work whose plan a concurrent commit overtook in a way a fresh run
    decides differently (a coupon chosen automatically was locked by the buyer's other
    checkout meanwhile: a rerun chooses another or none). run_transaction reruns the work;
    after its last attempt it raises `error`, the refusal the caller would see."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def run_transaction(db: Database, work: Callable[[AsyncSession], Awaitable[T]],
                          attempts: int = 5) -> T:
    """Run `work(session)` in a transaction, rerun when it collided with a concurrent one.

    For find-or-create and other "check, then insert" units of work: two requests that both
    found nothing both insert, one gets a duplicate key (IntegrityError) or an InnoDB deadlock,
    and its rerun's fresh snapshot finds the other's row; likewise work that raised Overtaken.
    `work` must therefore be safe to run again from the start (no side effects outside the
    session).
    """
    for attempt in range(attempts):
        try:
            async with db.session() as session, session.begin():
                return await work(session)
        except Overtaken as overtaken:
            if attempt == attempts - 1:
                raise overtaken.error from None
            await asyncio.sleep(random.uniform(0.001, 0.005) * (attempt + 1))
        except (exc.IntegrityError, exc.OperationalError) as error:
            errno = getattr(error.orig, "args", (None,))[0]
            retriable = isinstance(error, exc.IntegrityError) or errno in _RETRY_ERRNOS
            if attempt == attempts - 1 or not retriable:
                raise
            # Jitter, so colliding transactions do not collide again in lockstep.
            await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
    raise AssertionError("unreachable")
