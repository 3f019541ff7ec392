"""Queue handlers of the enrichment engine: run a chunk of tool cells; backfill a tool column.

Each run is two short transactions around the slow part: claim the cells (mark them running), run the
tool outside any transaction, then write the outcomes and schedule the cells that read them. Tool
failures become `error` cells; only infrastructure failures (the database) make the task retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from dossier.enrichment import service
from dossier.enrichment.protocol import Tool, ToolContext, ToolOutcome
from dossier.enrichment.runner import run_tool, run_tool_chunk
from dossier.errors import InvalidInput
from dossier.projects.models import Column
from dossier.queue.handlers import TaskRun, task_handler
from dossier.queue.service import enqueue

log = logging.getLogger("dossier.enrichment")


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == {} or value == []


def _not_run(work: service.CellWork) -> ToolOutcome | None:
    """The outcome of a cell the tool is not run for (a failed or an empty input), else None."""
    if work.failed_inputs:
        return ToolOutcome.skipped(f"input column(s) failed: {', '.join(work.failed_inputs)}")
    if all(_blank(value) for value in work.values.values()):
        return ToolOutcome.skipped("inputs are empty")
    return None


async def _run_one(
    work: service.CellWork, column: Column, config: Mapping[str, Any] | BaseModel | None, ctx: ToolContext
) -> ToolOutcome:
    not_run = _not_run(work)
    if not_run is not None:
        return not_run
    assert column.tool_type is not None
    return await run_tool(
        column.tool_type, work.values, ctx, config=config, log_extra={"column_id": column.id}
    )


async def _run_chunk(
    work: list[service.CellWork],
    column: Column,
    config: Mapping[str, Any] | BaseModel | None,
    ctx: ToolContext,
) -> list[tuple[int, ToolOutcome]]:
    """A chunk's cells through one ``run_tool_chunk`` call (tools with ``runs_chunks``)."""
    assert column.tool_type is not None
    outcomes: list[ToolOutcome | None] = [_not_run(item) for item in work]
    to_run = [index for index, outcome in enumerate(outcomes) if outcome is None]
    computed = await run_tool_chunk(
        column.tool_type,
        [work[index].values for index in to_run],
        ctx,
        config=config,
        log_extra={"column_id": column.id},
    )
    for index, outcome in zip(to_run, computed, strict=True):
        outcomes[index] = outcome
    return [(item.row_pk, outcome) for item, outcome in zip(work, outcomes, strict=True) if outcome]


def _parsed_config(tool: Tool | None, column: Column) -> Mapping[str, Any] | BaseModel | None:
    """The column's tool config parsed once for its chunk; as stored when it does not parse, or the tool is
    unknown (each cell then fails saying what is wrong, as ``run_tool`` does)."""
    if tool is None:
        return column.tool_config
    try:
        return tool.parse_config(column.tool_config)
    except InvalidInput:
        return column.tool_config


@task_handler(service.RUN_CELLS, max_attempts=5, backoff=(1.0, 5.0, 15.0, 60.0))
async def run_cells(run: TaskRun) -> None:
    """Compute one chunk of one tool column's cells."""
    resources = run.resources
    settings = resources.settings
    column_id = str(run.payload["column_id"])
    token = str(run.payload["token"])
    row_pks = [int(pk) for pk in run.payload["row_pks"]]
    async with resources.sessionmaker() as session, session.begin():
        column, work = await service.claim_cells(session, column_id, row_pks, token)
    if column is None or not work:
        return
    ctx = ToolContext(settings=settings, sessionmaker=resources.sessionmaker, http=resources.http)
    tool = service.tool_of(column)
    config = _parsed_config(tool, column)
    if tool is not None and tool.runs_chunks:
        finished = await _run_chunk(work, column, config, ctx)
    else:
        finished = await _run_cells(work, column, config, ctx, tool, settings.tool_concurrency)
    async with resources.sessionmaker() as session, session.begin():
        await service.finish_cells(session, column, token, finished, chunk_rows=settings.tool_chunk_rows)


async def _run_cells(
    work: list[service.CellWork],
    column: Column,
    config: Mapping[str, Any] | BaseModel | None,
    ctx: ToolContext,
    tool: Tool | None,
    concurrency: int,
) -> list[tuple[int, ToolOutcome]]:
    """A chunk's cells, each through ``run_tool``."""
    outcomes: list[tuple[int, ToolOutcome] | None] = [None] * len(work)
    pending = iter(enumerate(work))

    async def runner() -> None:
        # The runners take the chunk's cells in turn: a task per runner, not per cell. Each cell ends with
        # a turn of the event loop, so a long chunk of a tool that never waits never holds the API.
        for index, item in pending:
            outcomes[index] = (item.row_pk, await _run_one(item, column, config, ctx))
            await asyncio.sleep(0)

    # A tool whose cells wait on nothing runs them one after the other (see ``Tool.waits``).
    runners = min(concurrency, len(work)) if tool is None or tool.waits else 1
    await asyncio.gather(*(runner() for _ in range(runners)))
    return [o for o in outcomes if o is not None]


@task_handler(service.BACKFILL_COLUMN, max_attempts=10)
async def backfill_column(run: TaskRun) -> None:
    """Schedule one batch of a tool column's rows, then queue the next batch in the same transaction."""
    settings = run.resources.settings
    payload = run.payload
    async with run.resources.sessionmaker() as session, session.begin():
        next_after = await service.backfill_batch(
            session,
            str(payload["column_id"]),
            int(payload["after_pk"]),
            payload.get("until_pk"),
            chunk_rows=settings.tool_chunk_rows,
        )
        if next_after is not None:
            enqueue(session, service.BACKFILL_COLUMN, {**payload, "after_pk": next_after})
