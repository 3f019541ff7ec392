"""On SQLite, requests that change nothing read a WAL snapshot: they neither wait for nor take the write lock
that another process (a worker, an import) holds."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from dossier.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A writer elsewhere holds the lock far longer than this: a request that wanted it would fail.
    return settings.model_copy(update={"sqlite_busy_timeout_ms": 300})


async def test_reads_answer_while_another_process_holds_the_write_lock(
    client: httpx.AsyncClient, headers: dict[str, str], settings: Settings, app: Any
) -> None:
    if not settings.is_sqlite:
        pytest.skip("SQLite only: PostgreSQL readers never take a database-wide lock")
    created = await client.post("/api/enterprise/projects", json={"name": "p"}, headers=headers)
    assert created.status_code == 201
    path = settings.database_url.split("///", 1)[1]
    writer = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process's write transaction, held open
        listed = await client.get("/api/enterprise/projects", headers=headers)
        assert listed.status_code == 200 and [p["name"] for p in listed.json()] == ["p"]
        one = await client.get(f"/api/enterprise/projects/{created.json()['id']}", headers=headers)
        assert one.status_code == 200
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    # Nothing is left held by the reads: writes go through once the other writer is gone.
    again = await client.post("/api/enterprise/projects", json={"name": "q"}, headers=headers)
    assert again.status_code == 201


async def test_reads_answer_while_this_process_writes(
    client: httpx.AsyncClient, headers: dict[str, str], settings: Settings, app: Any
) -> None:
    # The process's one writing connection is busy (the in-process worker writing a chunk of cells): a GET
    # reads through a connection of its own instead of queueing for that one.
    if not settings.is_sqlite:
        pytest.skip("SQLite only: PostgreSQL's pool serves reads and writes alike")
    created = await client.post("/api/enterprise/projects", json={"name": "p"}, headers=headers)
    assert created.status_code == 201
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE projects SET name = 'renamed' WHERE id = :id"), {"id": created.json()["id"]}
        )
        listed = await asyncio.wait_for(client.get("/api/enterprise/projects", headers=headers), timeout=5)
        assert listed.status_code == 200
        # The read sees the last committed state, not the write in progress.
        assert [p["name"] for p in listed.json()] == ["p"]
    listed = await client.get("/api/enterprise/projects", headers=headers)
    assert [p["name"] for p in listed.json()] == ["renamed"]
