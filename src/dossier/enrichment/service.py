"""The tool-cell engine: which tool cells run when, and recording what they produced.

A tool column reads other columns of the same row (``tool_inputs``: tool input name -> column id). Its cell
runs once every cell it reads is final. Cells are scheduled in chunks of rows: one queue task per
(column, chunk), so a 10,000-row import is a few hundred tasks, not tens of thousands. Every scheduling
gives the cells a fresh ``run_token``; a task whose token no longer matches is stale and changes nothing,
which makes re-runs and at-least-once delivery safe.

This module is the ``ToolEngine`` that ``dossier.projects.tool_engine`` declares (``dossier.enrichment``
registers it on import): projects defines tool columns and adds rows through it without importing enrichment.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import JSONType, utcnow
from dossier.enrichment.events import emit_tool_outputs
from dossier.enrichment.protocol import Tool, ToolOutcome
from dossier.enrichment.tools import get_tool
from dossier.errors import InvalidInput
from dossier.projects.models import (
    ERROR,
    FINAL_STATUSES,
    PENDING,
    RUNNING,
    Cell,
    Column,
    Row,
)
from dossier.projects.tool_engine import ToolSpec
from dossier.queue.service import enqueue

RUN_CELLS = "cells.run"
BACKFILL_COLUMN = "column.backfill"
BACKFILL_BATCH = 1000
_IN_CLAUSE_MAX = 1000


@dataclass(frozen=True)
class CellWork:
    """One cell to compute: its row and the values of the columns it reads, by tool input name."""

    row_pk: int
    values: dict[str, Any]
    failed_inputs: list[str]


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- defining tool columns ------------------------------------------------------------------------------


def resolve_tool_spec(
    spec: ToolSpec, column_ids_by_name: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Check a tool column against its tool: known tool, known input names and columns, valid config.

    Returns (tool input name -> column id, validated config as plain data)."""
    tool = get_tool(spec.type)
    declared = {tool_input.name: tool_input for tool_input in tool.inputs}
    accepts_any = bool(getattr(tool, "accepts_any_inputs", False))
    problems: list[str] = []
    inputs: dict[str, str] = {}
    for param, column_name in spec.inputs.items():
        if param not in declared and not accepts_any:
            problems.append(
                f"tool {spec.type!r} has no input {param!r} (inputs: {', '.join(declared) or 'none'})"
            )
            continue
        if not isinstance(column_name, str) or column_name not in column_ids_by_name:
            problems.append(f"input {param!r} reads unknown column {column_name!r}")
            continue
        inputs[param] = column_ids_by_name[column_name]
    missing = [
        name for name, tool_input in declared.items() if tool_input.required and name not in spec.inputs
    ]
    if missing:
        problems.append(f"tool {spec.type!r} needs input(s): {', '.join(missing)}")
    if not spec.inputs and not problems:
        problems.append(f"tool {spec.type!r} must read at least one column (inputs: {', '.join(declared)})")
    if problems:
        raise InvalidInput("; ".join(problems), detail={"problems": problems})
    parsed = tool.parse_config(spec.config)
    tool.check_inputs(parsed, set(inputs))
    if spec.outbound is not None:
        tool.check_destinations(parsed, spec.outbound)
    return inputs, parsed.model_dump(mode="json")


# --- scheduling -----------------------------------------------------------------------------------------


@functools.cache
def _pending_upsert(dialect: str) -> Any:
    """INSERT a pending tool cell, or make an existing one pending again, under the given run token."""
    table = Cell.__table__
    assert isinstance(table, Table)
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(
        row_pk=bindparam("row_pk"),
        column_id=bindparam("column_id"),
        status=PENDING,
        value=None,
        error=None,
        run_token=bindparam("run_token"),
        updated_at=bindparam("updated_at"),
    )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.row_pk, table.c.column_id],
        set_={
            "status": stmt.excluded.status,
            "value": None,
            "error": None,
            "run_token": stmt.excluded.run_token,
            "updated_at": stmt.excluded.updated_at,
        },
    )


async def schedule_cells(
    session: AsyncSession,
    column: Column,
    row_pks: Sequence[int],
    columns_by_id: Mapping[str, Column],
    *,
    chunk_rows: int,
) -> int:
    """Mark ``column``'s cells of these rows pending under a new token, and queue the ones that can run now.

    Cells whose tool inputs are not final yet stay pending: the upstream cell schedules them when it ends.
    Returns how many cells were queued."""
    if not row_pks or column.tool_inputs is None:
        return 0
    token = secrets.token_hex(6)
    now = utcnow()
    # One statement, built once per dialect, executed for the whole list (no compiling per call).
    await session.execute(
        _pending_upsert(session.get_bind().dialect.name),
        [{"row_pk": pk, "column_id": column.id, "run_token": token, "updated_at": now} for pk in row_pks],
    )

    tool_inputs = sorted({cid for cid in column.tool_inputs.values() if columns_by_id[cid].is_tool})
    ready: list[int] = list(row_pks)
    if tool_inputs:
        ready = []
        for chunk in _chunks(row_pks, _IN_CLAUSE_MAX):
            result = await session.execute(
                select(Cell.row_pk)
                .where(
                    Cell.row_pk.in_(chunk),
                    Cell.column_id.in_(tool_inputs),
                    Cell.status.in_(FINAL_STATUSES),
                )
                .group_by(Cell.row_pk)
                .having(func.count() == len(tool_inputs))
            )
            ready.extend(result.scalars())
        ready.sort()
    tool = tool_of(column)
    if tool is not None:
        chunk_rows = max(chunk_rows, tool.min_chunk_rows)
    for chunk in _chunks(ready, chunk_rows):
        enqueue(session, RUN_CELLS, {"column_id": column.id, "row_pks": list(chunk), "token": token})
    return len(ready)


def tool_of(column: Column) -> Tool | None:
    """The column's tool; None for an input column or a tool this server lacks (its cells fail when run)."""
    try:
        return get_tool(column.tool_type) if column.tool_type is not None else None
    except InvalidInput:
        return None


async def project_columns_by_id(session: AsyncSession, project_id: str) -> dict[str, Column]:
    result = await session.scalars(select(Column).where(Column.project_id == project_id))
    return {column.id: column for column in result}


async def schedule_new_rows(
    session: AsyncSession, columns: Sequence[Column], row_pks: Sequence[int], *, chunk_rows: int
) -> None:
    """Create and schedule every tool cell of freshly inserted rows."""
    by_id = {column.id: column for column in columns}
    for column in columns:
        if column.is_tool:
            await schedule_cells(session, column, row_pks, by_id, chunk_rows=chunk_rows)


def schedule_backfill(session: AsyncSession, column: Column, *, until_pk: int | None = None) -> None:
    """Queue (re)computing a tool column for every row of its project, in batches, in the background."""
    enqueue(
        session,
        BACKFILL_COLUMN,
        {"column_id": column.id, "after_pk": 0, "until_pk": until_pk},
    )


async def backfill_batch(
    session: AsyncSession, column_id: str, after_pk: int, until_pk: int | None, *, chunk_rows: int
) -> int | None:
    """Schedule one batch of a backfill; returns the pk to continue after, or None when done."""
    column = await session.get(Column, column_id)
    if column is None or not column.is_tool:
        return None
    stmt = select(Row.pk).where(Row.project_id == column.project_id, Row.pk > after_pk)
    if until_pk is not None:
        stmt = stmt.where(Row.pk <= until_pk)
    pks = list(await session.scalars(stmt.order_by(Row.pk).limit(BACKFILL_BATCH)))
    if not pks:
        return None
    by_id = await project_columns_by_id(session, column.project_id)
    await schedule_cells(session, column, pks, by_id, chunk_rows=chunk_rows)
    return pks[-1] if len(pks) == BACKFILL_BATCH else None


# --- running --------------------------------------------------------------------------------------------


async def claim_cells(
    session: AsyncSession, column_id: str, row_pks: Sequence[int], token: str
) -> tuple[Column | None, list[CellWork]]:
    """Mark this task's cells running and gather what each needs. Stale or vanished cells are left out.

    Three statements for the whole chunk: the project's columns (this one included), the UPDATE that marks
    the cells this run still owns (returning them), and one read of every tool input of those rows."""
    same_project = select(Column.project_id).where(Column.id == column_id).scalar_subquery()
    columns = {
        c.id: c for c in await session.scalars(select(Column).where(Column.project_id == same_project))
    }
    column = columns.get(column_id)
    if column is None or column.tool_inputs is None:
        return None, []
    marked = await session.execute(
        update(Cell)
        .where(
            Cell.column_id == column_id,
            Cell.row_pk.in_(row_pks),
            Cell.run_token == token,
            Cell.status.in_([PENDING, RUNNING]),
        )
        .values(status=RUNNING, updated_at=utcnow())
        .returning(Cell.row_pk)
        .execution_options(synchronize_session=False)
    )
    owned = list(marked.scalars())
    if not owned:
        return column, []
    input_ids = set(column.tool_inputs.values())
    cells = await session.execute(
        select(Cell.row_pk, Cell.column_id, Cell.value, Cell.status).where(
            Cell.row_pk.in_(owned), Cell.column_id.in_(input_ids)
        )
    )
    by_row: dict[int, dict[str, tuple[Any, str]]] = {}
    for row_pk, input_column_id, value, status in cells.all():
        by_row.setdefault(row_pk, {})[input_column_id] = (value, status)
    names = {c.id: c.name for c in columns.values()}
    work = []
    for row_pk in sorted(owned):
        found = by_row.get(row_pk, {})
        values = {param: found.get(cid, (None, ""))[0] for param, cid in column.tool_inputs.items()}
        failed = [
            names.get(cid, cid)
            for cid in column.tool_inputs.values()
            if found.get(cid, (None, ""))[1] == ERROR
        ]
        work.append(CellWork(row_pk=row_pk, values=values, failed_inputs=failed))
    return column, work


async def finish_cells(
    session: AsyncSession,
    column: Column,
    token: str,
    outcomes: Sequence[tuple[int, ToolOutcome]],
    *,
    chunk_rows: int,
) -> list[int]:
    """Record outcomes (only where this run still owns the cell) and schedule the cells that read them.

    Returns the row pks whose cells were written."""
    if not outcomes:
        return []
    now = utcnow()
    table = Cell.__table__
    assert isinstance(table, Table)
    stmt = (
        update(table)
        .where(
            table.c.row_pk == bindparam("b_row_pk"),
            table.c.column_id == column.id,
            table.c.run_token == token,
        )
        .values(
            status=bindparam("b_status"),
            value=bindparam("b_value", type_=JSONType),
            error=bindparam("b_error"),
            updated_at=now,
        )
    )
    await session.execute(
        stmt,
        [
            {"b_row_pk": pk, "b_status": o.status, "b_value": o.value, "b_error": o.error}
            for pk, o in outcomes
        ],
    )
    written = list(
        await session.scalars(
            select(Cell.row_pk).where(
                Cell.column_id == column.id,
                Cell.row_pk.in_([pk for pk, _ in outcomes]),
                Cell.run_token == token,
                Cell.status.in_(FINAL_STATUSES),
            )
        )
    )
    if written:
        by_id = await project_columns_by_id(session, column.project_id)
        for dependent in by_id.values():
            if dependent.tool_inputs and column.id in dependent.tool_inputs.values():
                await schedule_cells(session, dependent, sorted(written), by_id, chunk_rows=chunk_rows)
        # tool_output_ready (002) is written in this transaction: no event for an outcome that rolls back.
        await emit_tool_outputs(session, column, sorted(written))
    return written
