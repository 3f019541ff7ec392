"""The one tool runner: tool columns, jobs and the pipeline's analyses all run a tool through it.

One policy for every caller: the tool's config is parsed and the tool run within ``tool_timeout_seconds``
(a chunk run at once, ``run_tool_chunk``, within that for the whole chunk); it never raises. A timeout, a
:class:`DossierError` (bad config, bad input, a refused URL) and a bug in the tool all become a failed
:class:`ToolOutcome`; a bug is logged with its traceback, and its outcome names the exception's type only
(outcomes reach API clients and webhook receivers; tracebacks stay in the log).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from dossier.enrichment.protocol import Tool, ToolContext, ToolOutcome
from dossier.enrichment.tools import get_tool
from dossier.errors import DossierError
from dossier.metrics import observe_tool_runs, record_tool_runs

log = logging.getLogger("dossier.enrichment")
T = TypeVar("T")


@observe_tool_runs
async def run_tool(
    tool_name: str,
    values: Mapping[str, Any],
    ctx: ToolContext,
    *,
    config: Mapping[str, Any] | BaseModel | None = None,
    log_extra: Mapping[str, Any] | None = None,
) -> ToolOutcome:
    """Run tool ``tool_name`` once on ``values`` with ``config`` (None: its defaults; a model: as parsed
    already by the tool's ``parse_config``, which a caller running many cells does once); never raises."""

    async def one(tool: Tool, parsed: BaseModel) -> ToolOutcome:
        return await tool.run(values, parsed, ctx)

    return await _guarded(tool_name, ctx, config, log_extra, one)


async def run_tool_chunk(
    tool_name: str,
    chunk: Sequence[Mapping[str, Any]],
    ctx: ToolContext,
    *,
    config: Mapping[str, Any] | BaseModel | None = None,
    log_extra: Mapping[str, Any] | None = None,
) -> list[ToolOutcome]:
    """Run tool ``tool_name`` on every element of ``chunk`` in one call (``Tool.run_chunk``), one outcome
    each in order, under ``run_tool``'s policy: a timeout or an error fails every cell of the chunk."""
    if not chunk:
        return []

    async def every(tool: Tool, parsed: BaseModel) -> list[ToolOutcome]:
        outcomes = await tool.run_chunk(chunk, parsed, ctx)
        if len(outcomes) != len(chunk):
            raise RuntimeError(f"{len(outcomes)} outcomes for {len(chunk)} cells")
        return outcomes

    started = time.perf_counter()
    result = await _guarded(tool_name, ctx, config, log_extra, every)
    outcomes = [result] * len(chunk) if isinstance(result, ToolOutcome) else result
    record_tool_runs(tool_name, [o.status for o in outcomes], time.perf_counter() - started)
    return outcomes


async def _guarded(
    tool_name: str,
    ctx: ToolContext,
    config: Mapping[str, Any] | BaseModel | None,
    log_extra: Mapping[str, Any] | None,
    call: Callable[[Tool, BaseModel], Awaitable[T]],
) -> T | ToolOutcome:
    """``call`` with the tool and its parsed config, within the time limit; a failed outcome for whatever
    goes wrong."""
    tool = get_tool(tool_name)
    limit = ctx.settings.tool_timeout_seconds
    try:
        parsed = config if isinstance(config, BaseModel) else tool.parse_config(config)
        async with asyncio.timeout(limit):
            return await call(tool, parsed)
    except TimeoutError:
        return ToolOutcome.failed(f"{tool_name} did not finish within {limit:g} s")
    except DossierError as exc:
        return ToolOutcome.failed(exc.message)
    except Exception as exc:  # a tool bug must end the cell or the job, not leave it running forever
        log.exception("tool raised", extra={"tool": tool_name, **(log_extra or {})})
        return ToolOutcome.failed(f"{tool_name} failed: {type(exc).__name__}")
