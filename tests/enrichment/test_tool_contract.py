"""A tool is one module and one registration: a tool defined and registered only here runs as a column
(through the one runner), and the runner's timeout and error policy applies to it like to every tool."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.protocol import Tool, ToolContext, ToolInput, ToolOutcome
from dossier.enrichment.runner import run_tool, run_tool_chunk
from dossier.enrichment.tools import TOOLS, register
from dossier.net import OutboundClient
from dossier.settings import Settings
from tests.helpers import eventually, running_worker

BASE = "/api/enterprise/projects"


class ShoutTool(Tool):
    name: ClassVar[str] = "shout_test"
    description: ClassVar[str] = "Upper-cases its input; 'slow' sleeps, 'bug' raises."
    inputs: ClassVar[tuple[ToolInput, ...]] = (ToolInput("text", "what to shout", required=True),)

    async def run(self, values: Mapping[str, Any], config: BaseModel, ctx: ToolContext) -> ToolOutcome:
        text = str(values["text"])
        if text == "slow":
            await asyncio.sleep(10)
        if text == "bug":
            raise ZeroDivisionError("a secret detail")
        return ToolOutcome.success(text.upper())


@pytest.fixture
def shout() -> Iterator[ShoutTool]:
    tool = register(ShoutTool())
    assert isinstance(tool, ShoutTool)
    yield tool
    TOOLS.pop(tool.name, None)


async def test_a_registered_tool_runs_as_a_column(
    shout: ShoutTool,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tool = {"type": "shout_test", "inputs": {"text": "name"}}
    columns = [{"name": "name"}, {"name": "loud", "tool": tool}]
    project = (await client.post(BASE, json={"name": "Shouting", "columns": columns}, headers=headers)).json()
    body = {"company": {"name": "acme"}}
    added = await client.post(f"{BASE}/{project['id']}/rows", json=body, headers=headers)
    row_id = added.json()["row_id"]

    async def settled() -> Any:
        row = (await client.get(f"{BASE}/{project['id']}/rows/{row_id}", headers=headers)).json()
        return row if not row["company"]["loud"]["is_loading"] else None

    async with OutboundClient.from_settings(settings) as http, running_worker(settings, sessionmaker, http):
        row = await eventually(settled, within=30, what="the tool cell")
    assert (row["company"]["loud"]["status"], row["company"]["loud"]["value"]) == ("success", "ACME")


async def test_the_runner_s_timeout_and_error_policy_applies_to_it(
    shout: ShoutTool, settings: Settings
) -> None:
    fast = settings.model_copy(update={"tool_timeout_seconds": 0.05})
    ctx = ToolContext(settings=fast, sessionmaker=None, http=None)  # type: ignore[arg-type]
    assert (await run_tool("shout_test", {"text": "hi"}, ctx)).value == "HI"
    slow = await run_tool("shout_test", {"text": "slow"}, ctx)
    assert (slow.status, slow.error) == ("error", "shout_test did not finish within 0.05 s")
    bug = await run_tool("shout_test", {"text": "bug"}, ctx)
    assert (bug.status, bug.error) == ("error", "shout_test failed: ZeroDivisionError")


class ChunkShoutTool(ShoutTool):
    """ShoutTool taking a chunk's cells in one call; 'short' makes it answer for one cell too few. The blank
    cell of a chunk is skipped by the engine and never reaches it."""

    name: ClassVar[str] = "chunk_shout_test"
    runs_chunks: ClassVar[bool] = True

    async def run_chunk(
        self, chunk: Sequence[Mapping[str, Any]], config: BaseModel, ctx: ToolContext
    ) -> list[ToolOutcome]:
        outcomes = [await self.run(values, config, ctx) for values in chunk]
        if any(values["text"] == "short" for values in chunk):
            return outcomes[:-1]
        # Each value says how many cells came in its call: the engine must hand over the chunk at once.
        return [ToolOutcome.success(f"{o.value}/{len(chunk)}") for o in outcomes]


@pytest.fixture
def chunk_shout() -> Iterator[ChunkShoutTool]:
    tool = register(ChunkShoutTool())
    assert isinstance(tool, ChunkShoutTool)
    yield tool
    TOOLS.pop(tool.name, None)


async def test_a_chunk_run_at_once_is_under_the_same_policy_and_fails_whole(
    chunk_shout: ChunkShoutTool, settings: Settings
) -> None:
    fast = settings.model_copy(update={"tool_timeout_seconds": 0.05})
    ctx = ToolContext(settings=fast, sessionmaker=None, http=None)  # type: ignore[arg-type]
    texts = ["a", "b", "c"]
    done = await run_tool_chunk("chunk_shout_test", [{"text": t} for t in texts], ctx)
    assert [(o.status, o.value) for o in done] == [("success", "A/3"), ("success", "B/3"), ("success", "C/3")]
    for bad, error in [
        ("slow", "chunk_shout_test did not finish within 0.05 s"),
        ("bug", "chunk_shout_test failed: ZeroDivisionError"),
        ("short", "chunk_shout_test failed: RuntimeError"),  # an outcome missing: none is trusted
    ]:
        outcomes = await run_tool_chunk("chunk_shout_test", [{"text": "a"}, {"text": bad}], ctx)
        assert [(o.status, o.error) for o in outcomes] == [("error", error)] * 2
    bad_config = await run_tool_chunk("chunk_shout_test", [{"text": "a"}], ctx, config={"nope": 1})
    assert bad_config[0].status == "error" and "invalid config" in str(bad_config[0].error)
    assert await run_tool_chunk("chunk_shout_test", [], ctx) == []


async def test_a_chunked_tool_runs_as_a_column_with_its_skipped_cells(
    chunk_shout: ChunkShoutTool,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tool = {"type": "chunk_shout_test", "inputs": {"text": "name"}}
    columns = [{"name": "name"}, {"name": "loud", "tool": tool}]
    project = (await client.post(BASE, json={"name": "Chunks", "columns": columns}, headers=headers)).json()
    rows = [{"name": "acme"}, {"name": ""}, {"name": "globex"}]
    added = await client.post(f"{BASE}/{project['id']}/rows/batch", json={"companies": rows}, headers=headers)
    assert added.status_code in (200, 201), added.text

    async def settled() -> Any:
        page = (await client.get(f"{BASE}/{project['id']}/rows", headers=headers)).json()
        cells = [row["company"]["loud"] for row in page["rows"]]
        final = ("success", "error", "skipped")
        return cells if len(cells) == 3 and all(c["status"] in final for c in cells) else None

    async with OutboundClient.from_settings(settings) as http, running_worker(settings, sessionmaker, http):
        cells = await eventually(settled, within=30, what="the chunk's cells")
    assert [(c["status"], c["value"]) for c in cells] == [
        ("success", "ACME/2"),
        ("skipped", None),
        ("success", "GLOBEX/2"),
    ]
