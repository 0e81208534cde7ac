"""The engine, built once per process in the lifespan, and units of work on it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, Row, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from app.core.config import Settings

T = TypeVar("T")
# A row of any shape, as `Result.first()` gives it.
AnyRow = Row[*tuple[Any, ...]]

SQLITE_BUSY_TIMEOUT_SECONDS = 30
# SQLite writes one transaction at a time: more connections only park more
# threads in its busy handler, where a short pool queue waits for free.
SQLITE_POOL_SIZE = 3


def create_engine(settings: Settings) -> AsyncEngine:
    """Make the engine for `DATABASE_URL` with per-dialect tuning.

    SQL parameters (names, phone numbers, session ids, addresses) are kept out of
    database errors and the engine's log: both end up in the service's log.
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url,
            hide_parameters=True,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            pool_pre_ping=False,
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=0,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
        _tune_sqlite(engine)
        return engine
    engine = create_async_engine(
        url,
        hide_parameters=True,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        pool_pre_ping=settings.database_pool_pre_ping,
        pool_recycle=1800,
    )
    if not settings.database_pool_pre_ping:
        _drop_closed_connections(engine)
    return engine


def _drop_closed_connections(engine: AsyncEngine) -> None:
    """Replace a pooled connection the server has closed, at no round trip.

    SQLAlchemy's pre-ping costs three round trips per checkout with asyncpg
    (BEGIN, an empty query, ROLLBACK). When PostgreSQL restarts or ends a
    backend, the socket closes and asyncpg marks the connection closed
    without being asked; raising DisconnectionError here makes the pool
    discard it and take another. Networks that drop idle connections without
    closing them need DATABASE_POOL_PRE_PING=true.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("connection closed by the server")


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL for concurrent readers, and BEGIN IMMEDIATE so that writers queue.

    With SQLite's default deferred transactions a read that later writes can
    fail at once with "database is locked" when another writer got there
    first; taking the write lock at BEGIN makes them wait instead.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and what runs units of work on it, built once per process."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        # Committed-now work on PostgreSQL runs without BEGIN/COMMIT when it is one
        # statement; SQLite keeps a transaction, whose BEGIN IMMEDIATE queues writers.
        self._autocommit = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else engine
        ).sync_engine
        self._transactional = engine.sync_engine

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work, for one request or one command."""
        return UnitOfWork(self)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


class UnitOfWork:
    """The database work of one request.

    Its session is one transaction, opened on first use, that the caller
    commits when the request succeeds and rolls back when it fails
    (`app.dependencies.database`); repositories only `flush()`.

    Some writes must stand whatever becomes of the request: an attempt spent
    on a code, a session revoked for refresh-token reuse (answered with a
    401). A login's writes, too, hold no connection while the provider
    answers. Those go through `committed_now` and `commit_statement_now`,
    committed before the call returns. Outside a request transaction each
    runs in one greenlet (pool checkout, statements, commit), which is what
    SQLAlchemy's asyncio layer runs each of its own steps in.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self.dialect = database.dialect
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        """The request's session, made on first use."""
        if self._session is None:
            self._session = self._database._sessionmaker()
        return self._session

    async def commit(self) -> None:
        """Commit the request's transaction, when it opened one."""
        if self._session is not None and self._session.in_transaction():
            await self._session.commit()

    async def rollback(self) -> None:
        """Roll back the request's transaction, when it opened one."""
        if self._session is not None:
            await self._session.rollback()

    async def close(self) -> None:
        """Give the request's connection back to the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def committed_now(self, work: Callable[[Connection], T]) -> T:
        """Run `work` and commit it before returning, whatever becomes of the request.

        When the request's session holds a transaction, `work` runs in it and
        commits it (what the request wrote so far stands too); otherwise in a
        transaction of its own.
        """
        session = self._session
        if session is not None and session.in_transaction():
            result = await session.run_sync(lambda sync: work(sync.connection()))
            await session.commit()
            return result
        return await greenlet_spawn(_in_transaction, self._database._transactional, work)

    async def commit_statement_now(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> AnyRow | None:
        """Run one statement as `committed_now` does and return its first row, if any.
        Outside a request transaction on PostgreSQL it is one autocommitted round
        trip, with no BEGIN and COMMIT."""
        session = self._session
        if session is not None and session.in_transaction():
            return await self.committed_now(
                lambda connection: _first(connection.execute(statement, params))
            )
        return await greenlet_spawn(
            _in_transaction,
            self._database._autocommit,
            lambda connection: _first(connection.execute(statement, params)),
        )


def _first(result: Any) -> AnyRow | None:
    return result.first() if result.returns_rows else None


def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return work(connection)
