"""Engine and session factory for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from dossier.db._sqlite_driver import OneCallAiosqlite
from dossier.db.secrets import KEYRING_ATTRIBUTE, keyring_for, sqlite_path
from dossier.settings import Settings

# Execution option of the engine behind read-only sessions (see ``create_sessionmaker``).
READ_ONLY = "dossier_read_only"


def create_engine(settings: Settings) -> AsyncEngine:
    """Build the async engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.

    Statement parameters carry secrets and keys (hashes, webhook secrets): they are hidden from SQLAlchemy's
    logs and error messages at every log level.
    """
    # Fails here, at start, when PostgreSQL is given no DOSSIER_SECRET_KEY (see db.secrets).
    keyring = keyring_for(settings)
    engine = _create_engine(settings)
    setattr(engine.dialect, KEYRING_ATTRIBUTE, keyring)
    return engine


def create_read_engine(settings: Settings, engine: AsyncEngine) -> AsyncEngine:
    """The engine of read-only sessions (GET requests) beside ``engine``.

    SQLite: its own ``sqlite_read_connections`` connections, which read WAL snapshots while the process's one
    writing connection is busy, so a read never queues behind the worker's writes (a read of a page of rows
    waited up to 0.3 s for the connection during a large import). PostgreSQL: a pool of its own, half the
    size of ``engine``'s, so a GET never waits for a connection the in-process worker holds (a worker's
    tool chunks can take every connection of the shared pool). An in-memory SQLite database, or 0 read
    connections: ``engine`` itself. Dispose of it (when it is not ``engine``) with ``engine``.
    """
    if not settings.database_url.startswith("sqlite"):
        read_engine = _create_engine(settings, connections=max(1, settings.db_pool_size // 2))
        setattr(read_engine.dialect, KEYRING_ATTRIBUTE, getattr(engine.dialect, KEYRING_ATTRIBUTE))
        return read_engine
    if settings.sqlite_read_connections == 0 or sqlite_path(settings.database_url) is None:
        return engine
    read_engine = _create_engine(settings, connections=settings.sqlite_read_connections)
    setattr(read_engine.dialect, KEYRING_ATTRIBUTE, getattr(engine.dialect, KEYRING_ATTRIBUTE))

    @event.listens_for(read_engine.sync_engine, "connect")
    def _query_only(dbapi_conn: Any, _record: Any) -> None:
        # A write here would upgrade a deferred transaction while the writing connection holds the lock
        # (SQLITE_BUSY, whatever the busy timeout): a route that writes must use the writing sessions.
        dbapi_conn.execute("PRAGMA query_only=ON")

    return read_engine


def _create_engine(settings: Settings, *, connections: int | None = None) -> AsyncEngine:
    """``connections``: the pool's size (SQLite default 1, the one writing connection; PostgreSQL default
    ``db_pool_size``, with as many again under load)."""
    url = settings.database_url
    if url.startswith("sqlite"):
        # One writing connection per process: SQLite has one writer and every transaction here takes the write
        # lock (BEGIN IMMEDIATE below), so this process's transactions queue for the connection in order
        # instead of polling the file lock with the driver's sleeping busy handler (1, 2, 5 ... 100 ms naps
        # that add up under load). Other processes on the same file still meet the busy timeout. Reads may
        # have connections of their own (``create_read_engine``).
        engine = create_async_engine(
            url,
            module=OneCallAiosqlite(),
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            pool_size=connections or 1,
            max_overflow=0,
            hide_parameters=True,
        )
        busy_ms = settings.sqlite_busy_timeout_ms

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # The driver's implicit BEGIN is turned off so that BEGIN IMMEDIATE below takes the write lock
            # at the start of every transaction; deferred transactions that upgrade later deadlock under load.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A read-only session (GET requests) reads a WAL snapshot without the write lock, so reads never
            # wait for (or hold up) a writer in another process.
            conn.exec_driver_sql(
                "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
            )

        return engine
    pool = connections or settings.db_pool_size
    return create_async_engine(
        url,
        pool_size=pool,
        max_overflow=pool,
        pool_pre_ping=True,
        hide_parameters=True,
    )


def create_sessionmaker(engine: AsyncEngine, *, read_only: bool = False) -> async_sessionmaker[AsyncSession]:
    """Sessions of ``engine``; ``read_only`` ones (for requests that change nothing) start their SQLite
    transactions deferred, without the write lock. On PostgreSQL both are the same."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)
