"""SQLite engines run each statement on aiosqlite's thread in one call (dossier.db._sqlite_driver): what
SQLAlchemy reads back (rows, counts, errors, streamed results) is what its own adapter gives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.db.engine import create_engine
from dossier.settings import Settings

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(20), unique=True),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    engine = create_engine(settings)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every function handed to an aiosqlite connection's thread, in order."""
    calls: list[Any] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_a_statement_is_one_call_on_the_connection_s_thread(
    engine: AsyncEngine, thread_calls: list[Any]
) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))  # the connection and its transaction are open
        thread_calls.clear()
        rows = (await connection.execute(text("SELECT 1, 'a' UNION ALL SELECT 2, 'b'"))).all()
        assert [tuple(row) for row in rows] == [(1, "a"), (2, "b")]
        assert len(thread_calls) == 1  # SQLAlchemy's adapter made four: cursor, execute, fetch, close


async def test_writes_report_their_row_counts_and_new_ids(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(insert(things), [{"name": f"n{i}"} for i in range(5)])
        assert inserted.rowcount == 5  # executemany
        one = await connection.execute(insert(things).values(name="last"))
        assert one.inserted_primary_key == (6,)  # lastrowid
        renamed = await connection.execute(text("UPDATE things SET name = name || '!' WHERE id <= 3"))
        assert renamed.rowcount == 3
    async with engine.connect() as connection:
        names = (await connection.scalars(select(things.c.name).order_by(things.c.id))).all()
    assert names == ["n0!", "n1!", "n2!", "n3", "n4", "last"]


async def test_errors_keep_their_kind_and_the_transaction_rolls_back(engine: AsyncEngine) -> None:
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(things).values(name="x"))
            await connection.execute(insert(things).values(name="x"))  # unique name
    with pytest.raises(OperationalError, match="no such table"):
        async with engine.connect() as connection:
            await connection.execute(text("SELECT * FROM nothing_here"))
    async with engine.connect() as connection:
        assert await connection.scalar(select(things.c.id).where(things.c.name == "x")) is None


async def test_streamed_results_come_through_a_server_side_cursor(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(things), [{"name": f"s{i}"} for i in range(250)])
    async with engine.connect() as connection:
        streamed = await connection.stream(select(things.c.name).order_by(things.c.id))
        names = [row.name async for row in streamed]
    assert names == [f"s{i}" for i in range(250)]
