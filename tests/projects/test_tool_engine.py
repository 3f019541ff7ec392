"""Projects schedules tool cells through the engine enrichment registers: in the caller's transaction, and
never silently without one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.service import NewAccount
from dossier.enrichment import service as enrichment
from dossier.projects import service as projects
from dossier.projects import tool_engine
from dossier.projects.models import Project
from dossier.projects.tool_engine import ToolEngineMissing, ToolSpec
from dossier.queue.models import Task
from tests.projects.helpers import counts

CHUNK = 100
DOMAIN = ToolSpec("domain", {"website": "website"}, {})


async def _tasks_in(session: AsyncSession) -> list[tuple[str, str]]:
    await session.flush()
    return [(task.kind, task.payload["column_id"]) for task in await session.scalars(select(Task))]


async def _tasks(maker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with maker() as session:
        return await _tasks_in(session)


async def _input_project(maker: async_sessionmaker[AsyncSession], account: NewAccount) -> Project:
    async with maker() as session, session.begin():
        return await projects.create_project(session, account.account, "P", [projects.ColumnSpec("website")])


def test_importing_enrichment_registers_its_engine() -> None:
    assert tool_engine.tool_engine() is enrichment


@pytest.mark.parametrize("entry_point", ["dossier.app", "dossier.cli", "dossier.enrichment.tasks"])
def test_projects_alone_has_no_engine_and_every_entry_point_registers_it(entry_point: str) -> None:
    script = f"""
import dossier.projects.routes, dossier.projects.cli
from dossier.projects.tool_engine import ToolEngineMissing, tool_engine
try:
    tool_engine()
except ToolEngineMissing:
    pass
else:
    raise SystemExit("projects alone brought a tool engine in")
import {entry_point}
import dossier.enrichment.service
assert tool_engine() is dossier.enrichment.service
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_without_an_engine_tool_columns_and_rows_fail_loudly_and_write_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = await _input_project(sessionmaker, account)
    before = await counts(sessionmaker)
    monkeypatch.setattr(tool_engine, "_engine", None)

    with pytest.raises(ToolEngineMissing, match=r"no tool engine is registered: import dossier\.enrichment"):
        tool_engine.tool_engine()
    with pytest.raises(ToolEngineMissing):
        async with sessionmaker() as session, session.begin():
            await projects.create_project(
                session,
                account.account,
                "T",
                [projects.ColumnSpec("website"), projects.ColumnSpec("domain", tool=DOMAIN)],
            )
    with pytest.raises(ToolEngineMissing):
        async with sessionmaker() as session, session.begin():
            await projects.add_row(
                session,
                account.account,
                project.id,
                {"website": "acme.com"},
                max_chars=1000,
                chunk_rows=CHUNK,
            )
    assert await counts(sessionmaker) == before
    assert await _tasks(sessionmaker) == []


async def test_tool_cells_are_scheduled_in_the_callers_transaction(
    sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount
) -> None:
    project = await _input_project(sessionmaker, account)
    async with sessionmaker() as session, session.begin():
        await projects.add_row(
            session, account.account, project.id, {"website": "acme.com"}, max_chars=1000, chunk_rows=CHUNK
        )
    before = await counts(sessionmaker)

    # A tool column added to a project with rows queues its backfill; both roll back together.
    async with sessionmaker() as session:
        await projects.add_column(
            session, account.account, project.id, projects.ColumnSpec("domain", tool=DOMAIN)
        )
        assert [kind for kind, _ in await _tasks_in(session)] == ["column.backfill"]
        await session.rollback()
    assert await counts(sessionmaker) == before
    assert await _tasks(sessionmaker) == []

    async with sessionmaker() as session, session.begin():
        column = await projects.add_column(
            session, account.account, project.id, projects.ColumnSpec("domain", tool=DOMAIN)
        )
    with_column = await counts(sessionmaker)
    assert await _tasks(sessionmaker) == [("column.backfill", column.id)]

    # A new row, its pending tool cell and the task that runs it roll back together.
    async with sessionmaker() as session:
        await projects.add_row(
            session, account.account, project.id, {"website": "b.com"}, max_chars=1000, chunk_rows=CHUNK
        )
        assert ("cells.run", column.id) in await _tasks_in(session)
        await session.rollback()
    assert await counts(sessionmaker) == with_column
    assert await _tasks(sessionmaker) == [("column.backfill", column.id)]
