"""Tool columns through the enterprise API: definition checks, scheduling in the row's transaction,
and cells filling themselves in when a real worker runs the queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.net import OutboundClient
from dossier.projects.models import Project
from dossier.queue.models import Task
from dossier.settings import Settings
from tests.helpers import eventually, running_worker

BASE = "/api/enterprise/projects"


async def _project(client: httpx.AsyncClient, headers: dict[str, str], columns: list[dict[str, Any]]) -> Any:
    response = await client.post(BASE, json={"name": "Enriched", "columns": columns}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _count_projects(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Project)) or 0)


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ({"type": "no_such_tool", "inputs": {"website": "website"}}, "unknown tool 'no_such_tool'"),
        ({"type": "domain", "inputs": {"website": "nowhere"}}, "reads unknown column 'nowhere'"),
        ({"type": "domain", "inputs": {"colour": "website"}}, "has no input 'colour'"),
        ({"type": "domain", "inputs": {}}, "must read at least one column"),
        ({"type": "domain", "inputs": {"website": "website"}, "config": {"bogus": 1}}, "invalid config"),
    ],
)
async def test_bad_tool_column_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    tool: dict[str, Any],
    expected: str,
) -> None:
    response = await client.post(
        BASE,
        json={"name": "P", "columns": [{"name": "website"}, {"name": "d", "tool": tool}]},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    assert expected in response.json()["message"]
    assert await _count_projects(sessionmaker) == 0


async def test_a_cycle_between_tool_columns_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.post(
        BASE,
        json={
            "name": "P",
            "columns": [
                {"name": "a", "tool": {"type": "domain", "inputs": {"website": "b"}}},
                {"name": "b", "tool": {"type": "domain", "inputs": {"website": "a"}}},
            ],
        },
        headers=headers,
    )
    assert response.status_code == 422
    assert "cycle" in response.json()["message"]
    assert response.json()["error_detail"]["cycle"][0] == response.json()["error_detail"]["cycle"][-1]
    assert await _count_projects(sessionmaker) == 0


async def test_adding_a_row_schedules_its_ready_tool_cells_in_the_same_transaction(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await _project(
        client,
        headers,
        [
            {"name": "website"},
            {"name": "domain", "tool": {"type": "domain", "inputs": {"website": "website"}}},
            {"name": "domain_again", "tool": {"type": "domain", "inputs": {"website": "domain"}}},
        ],
    )
    row = await client.post(
        f"{BASE}/{project['id']}/rows",
        json={"company": {"website": "https://www.acme.co.uk/x"}},
        headers=headers,
    )
    assert row.status_code == 200
    detail = (await client.get(f"{BASE}/{project['id']}/rows/{row.json()['row_id']}", headers=headers)).json()
    assert detail["company"]["domain"]["status"] == "pending"
    assert detail["company"]["domain"]["is_loading"] is True
    assert detail["company"]["domain_again"]["is_loading"] is True
    async with sessionmaker() as session:
        tasks = list(await session.scalars(select(Task)))
    # Only the column whose inputs are final is queued; the other waits for it.
    assert [(t.kind, t.payload["column_id"]) for t in tasks] == [
        ("cells.run", project["columns"][1]["col_id"])
    ]


async def test_writing_a_tool_column_in_a_company_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await _project(
        client,
        headers,
        [
            {"name": "website"},
            {"name": "domain", "tool": {"type": "domain", "inputs": {"website": "website"}}},
        ],
    )
    response = await client.post(
        f"{BASE}/{project['id']}/rows",
        json={"company": {"website": "a.com", "domain": "b.com"}},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["row_id"] is None
    assert "filled by a tool" in response.json()["message"]


async def test_a_column_read_by_a_tool_cannot_be_deleted(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await _project(
        client,
        headers,
        [
            {"name": "website"},
            {"name": "domain", "tool": {"type": "domain", "inputs": {"website": "website"}}},
        ],
    )
    website = project["columns"][0]["col_id"]
    response = await client.delete(f"{BASE}/{project['id']}/columns/{website}", headers=headers)
    assert response.status_code == 409
    assert "read by tool column" in response.json()["message"]


# --- with a worker running the queue ---------------------------------------------------------------------


@asynccontextmanager
async def _worker(settings: Settings, maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    async with (
        OutboundClient.from_settings(settings) as http,
        running_worker(settings, maker, http, concurrency=4),
    ):
        yield


async def _row(client: httpx.AsyncClient, headers: dict[str, str], project_id: str, row_id: str) -> Any:
    response = await client.get(f"{BASE}/{project_id}/rows/{row_id}", headers=headers)
    assert response.status_code == 200
    return response.json()


async def _settled(client: httpx.AsyncClient, headers: dict[str, str], project_id: str, row_id: str) -> Any:
    async def check() -> Any:
        row = await _row(client, headers, project_id, row_id)
        return row if not any(cell["is_loading"] for cell in row["company"].values()) else None

    return await eventually(check, within=30, what="every cell of the row to be final")


PIPELINE = [
    {"name": "company_name", "required": True},
    {"name": "website"},
    {"name": "country"},
    {"name": "domain", "tool": {"type": "domain", "inputs": {"website": "website"}}},
    {
        "name": "entity",
        "tool": {
            "type": "entity_resolution",
            "inputs": {"name": "company_name", "website": "website", "country": "country"},
        },
    },
    {"name": "firmographics", "tool": {"type": "firmographics", "inputs": {"kernel_id": "entity"}}},
]


async def test_tool_cells_fill_in_along_the_dependency_graph(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    project = await _project(client, headers, PIPELINE)
    found = await client.post(
        f"{BASE}/{project['id']}/rows",
        json={
            "company": {
                "company_name": "Adidas",
                "website": "https://www.adidas-group.com/en/",
                "country": "Germany",
            }
        },
        headers=headers,
    )
    unknown = await client.post(
        f"{BASE}/{project['id']}/rows",
        json={"company": {"company_name": "Zyxwv Nonexistent Widgets GmbH"}},
        headers=headers,
    )
    async with _worker(settings, sessionmaker):
        row = await _settled(client, headers, project["id"], found.json()["row_id"])
        missing = await _settled(client, headers, project["id"], unknown.json()["row_id"])

    cells = row["company"]
    assert cells["domain"]["status"] == "success"
    assert cells["domain"]["value"] == "adidas-group.com"
    assert cells["entity"]["status"] == "success", cells["entity"]
    assert cells["entity"]["value"]["name"].lower().startswith("adidas")
    assert 0 < cells["entity"]["value"]["confidence"] <= 1
    assert cells["firmographics"]["status"] == "success", cells["firmographics"]
    assert cells["firmographics"]["value"]["kernel_id"] == cells["entity"]["value"]["kernel_id"]
    assert set(cells["firmographics"]["value"]) >= {"industry", "revenue", "headquarters", "identifiers"}

    # Nothing matched: entity is skipped, and so is what reads it; no input at all: skipped too.
    assert missing["company"]["entity"]["status"] == "skipped"
    assert missing["company"]["firmographics"]["status"] == "skipped"
    assert missing["company"]["domain"]["status"] == "skipped"
    assert missing["company"]["domain"]["error"] == "inputs are empty"

    # The queue is empty once everything is final: succeeded tasks leave no rows behind.
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == 0


async def test_a_tool_column_added_later_runs_for_existing_rows_and_can_be_rerun(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    project = await _project(client, headers, [{"name": "website"}])
    sites = ["https://a.example.com", "http://www.b.co.uk/path", "c.org", None]
    batch = await client.post(
        f"{BASE}/{project['id']}/rows/batch",
        json={"companies": [{"website": site} for site in sites]},
        headers=headers,
    )
    row_ids = [result["row_id"] for result in batch.json()["results"]]
    column = await client.post(
        f"{BASE}/{project['id']}/columns",
        json={"name": "domain", "tool": {"type": "domain", "inputs": {"website": "website"}}},
        headers=headers,
    )
    assert column.status_code == 201, column.text
    assert column.json()["tool"] == {"type": "domain", "inputs": {"website": "website"}, "config": {}}
    col_id = column.json()["col_id"]
    async with _worker(settings, sessionmaker):
        rows = [await _settled(client, headers, project["id"], row_id) for row_id in row_ids]
        assert [r["company"]["domain"]["value"] for r in rows] == ["example.com", "b.co.uk", "c.org", None]
        assert rows[3]["company"]["domain"]["status"] == "skipped"

        rerun = await client.post(
            f"{BASE}/{project['id']}/rows/{row_ids[0]}/cells/{col_id}/run", headers=headers
        )
        assert rerun.status_code == 202
        again = await _settled(client, headers, project["id"], row_ids[0])
        assert again["company"]["domain"] == {
            "name": "domain",
            "value": "example.com",
            "status": "success",
            "is_loading": False,
            "error": None,
        }
        whole = await client.post(f"{BASE}/{project['id']}/columns/{col_id}/run", headers=headers)
        assert whole.status_code == 202
        rows = [await _settled(client, headers, project["id"], row_id) for row_id in row_ids]
        assert rows[1]["company"]["domain"]["value"] == "b.co.uk"


async def test_rerunning_an_input_column_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await _project(client, headers, [{"name": "website"}])
    col_id = project["columns"][0]["col_id"]
    response = await client.post(f"{BASE}/{project['id']}/columns/{col_id}/run", headers=headers)
    assert response.status_code == 422
    assert "only tool columns run" in response.json()["message"]


async def test_the_tool_catalogue_lists_every_tool_with_inputs_and_config_schema(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/api/enterprise/tools", headers=headers)
    assert response.status_code == 200
    tools = {tool["name"]: tool for tool in response.json()}
    assert set(tools) == {"domain", "entity_resolution", "firmographics", "website", "http"}
    assert [i["name"] for i in tools["entity_resolution"]["inputs"]] == [
        "name",
        "website",
        "country",
        "city",
        "postal_code",
        "address",
    ]
    assert tools["http"]["accepts_any_inputs"] is True
    assert "url" in tools["http"]["config_schema"]["properties"]
    assert (await client.get("/api/enterprise/tools")).status_code == 401


async def test_an_http_column_whose_templates_name_an_input_it_does_not_read_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tool = {
        "type": "http",
        "inputs": {"name": "company_name"},
        "config": {"url": "https://api.example.com/lookup?q={{ name }}&d={{ domain }}"},
    }
    response = await client.post(
        BASE,
        json={"name": "P", "columns": [{"name": "company_name"}, {"name": "answer", "tool": tool}]},
        headers=headers,
    )
    assert response.status_code == 422
    assert "refer to domain" in response.json()["message"]
    assert await _count_projects(sessionmaker) == 0


async def test_a_chunk_runs_at_most_tool_concurrency_cells_at_once(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # A service that answers each name after a moment, noting how many requests it holds at once.
    in_flight = 0
    most = 0

    async def lookup(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.json_response({"name": request.query["q"].upper()})

    app = web.Application()
    app.router.add_get("/lookup", lookup)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    tool = {
        "type": "http",
        "inputs": {"name": "company_name"},
        "config": {"url": f"http://127.0.0.1:{port}/lookup?q={{{{ name }}}}", "path": "name"},
    }
    try:
        project = await _project(client, headers, [{"name": "company_name"}, {"name": "upper", "tool": tool}])
        names = [f"company {i}" for i in range(10)]
        response = await client.post(
            f"{BASE}/{project['id']}/rows/batch",
            json={"companies": [{"company_name": name} for name in names]},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        row_ids = [result["row_id"] for result in response.json()["results"]]
        limited = settings.model_copy(update={"tool_concurrency": 3})
        async with _worker(limited, sessionmaker):
            rows = [await _settled(client, headers, project["id"], row_id) for row_id in row_ids]
    finally:
        await runner.cleanup()
    assert [row["company"]["upper"]["value"] for row in rows] == [name.upper() for name in names]
    # One chunk of ten cells: three at a time, never more, and never one by one.
    assert most == 3


async def test_a_cheap_tool_s_cells_are_queued_in_larger_chunks_than_a_remote_tool_s(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # The app's tool_chunk_rows is 100: 600 rows make 6 tasks of the http tool (remote) and 2 of the domain
    # tool (its cells cost microseconds: at least Tool.min_chunk_rows, 500, a task), every row once.
    tool = {
        "type": "http",
        "inputs": {"name": "name"},
        "config": {"url": "https://api.example.com/{{ name }}"},
    }
    project = await _project(
        client,
        headers,
        [
            {"name": "name"},
            {"name": "website"},
            {"name": "domain", "tool": {"type": "domain", "inputs": {"website": "website"}}},
            {"name": "answer", "tool": tool},
        ],
    )
    for start in range(0, 600, 300):
        companies = [{"name": f"c{i}", "website": f"https://c{i}.example"} for i in range(start, start + 300)]
        response = await client.post(
            f"{BASE}/{project['id']}/rows/batch", json={"companies": companies}, headers=headers
        )
        assert response.status_code == 200, response.text
    async with sessionmaker() as session:
        tasks = list(await session.scalars(select(Task).where(Task.kind == "cells.run")))
    sizes: dict[str, list[int]] = {}
    for task in tasks:
        sizes.setdefault(task.payload["column_id"], []).append(len(task.payload["row_pks"]))
    domain_id, answer_id = project["columns"][2]["col_id"], project["columns"][3]["col_id"]
    assert sorted(sizes[answer_id]) == [100] * 6
    # One task per batch of 300 (each batch schedules its own rows): never cut at 100.
    assert sorted(sizes[domain_id]) == [300, 300]
