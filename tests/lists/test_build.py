"""Building lists into projects: rows with their entity resolved and tool cells scheduled, skipping companies
already there, idempotent, in the foreground or through the queue with progress; refused whole when bad."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.lists.models import ListBuild
from dossier.net import OutboundClient
from dossier.queue.models import Task
from dossier.settings import Settings
from tests.helpers import eventually, running_worker
from tests.lists.helpers import row_count, seed_registry
from tests.projects.helpers import create_project

API = "/api/enterprise"
COLUMNS = [
    {"name": "company_name", "required": True},
    {"name": "website"},
    {"name": "country"},
    {
        "name": "entity",
        "tool": {"type": "entity_resolution", "inputs": {"name": "company_name", "website": "website"}},
    },
    {"name": "firmo", "tool": {"type": "firmographics", "inputs": {"kernel_id": "entity"}}},
]
DE_SOFTWARE_MID = {"country": ["DE"], "industry": ["Software"], "employees_min": 500, "employees_max": 5000}


@pytest.fixture
async def registry(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await seed_registry(sessionmaker)


@asynccontextmanager
async def _worker(settings: Settings, maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    async with (
        OutboundClient.from_settings(settings) as http,
        running_worker(settings, maker, http, concurrency=4),
    ):
        yield


async def _rows(client: httpx.AsyncClient, headers: dict[str, str], project_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"{API}/projects/{project_id}/rows", params={"page_size": 200}, headers=headers
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


async def _queued(maker: async_sessionmaker[AsyncSession], kind: str) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count()).select_from(Task).where(Task.kind == kind)) or 0)


async def test_a_list_adds_rows_with_the_entity_resolved_and_tool_cells_running_at_once(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    project = await create_project(client, headers, columns=COLUMNS)
    response = await client.post(
        f"{API}/projects/{project['id']}/lists", json={"filters": DE_SOFTWARE_MID}, headers=headers
    )
    assert response.status_code == 201, response.text
    built = response.json()
    assert built["status"] == "done"
    assert (built["matched"], built["added"], built["skipped"], built["progress"]) == (2, 2, 0, 1.0)
    assert built["filters"]["industry"] == ["Software"]
    rows = await _rows(client, headers, project["id"])
    by_name = {row["company"]["company_name"]["value"]: row["company"] for row in rows}
    assert set(by_name) == {"Alpha Software AG", "Beta Systems GmbH"}
    alpha = by_name["Alpha Software AG"]
    assert alpha["website"]["value"] == "alpha.de"
    assert alpha["country"]["value"] == "Germany"
    # The entity is known: written as entity_resolution writes a match, and never computed again.
    assert alpha["entity"]["status"] == "success"
    assert alpha["entity"]["value"]["kernel_id"] == "1001"
    assert alpha["entity"]["value"]["confidence"] == 1.0
    # The firmographics cells read it and are queued with the rows; no entity_resolution work is queued.
    assert alpha["firmo"]["status"] == "pending"
    assert await _queued(sessionmaker, "cells.run") == 1

    async with _worker(settings, sessionmaker):

        async def settled() -> list[dict[str, Any]] | None:
            current = await _rows(client, headers, project["id"])
            done = all(row["company"]["firmo"]["status"] == "success" for row in current)
            return current if done else None

        rows = await eventually(settled, what="firmographics of the listed rows")
    values = {row["company"]["firmo"]["value"]["kernel_id"]: row["company"]["firmo"]["value"] for row in rows}
    assert values["1002"]["employee_count"] == 4500
    assert values["1001"]["industry"] == "Software"


async def test_the_same_list_again_adds_nothing_and_companies_already_in_the_project_are_skipped(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    project = await create_project(client, headers, columns=COLUMNS)
    url = f"{API}/projects/{project['id']}/lists"
    first = await client.post(url, json={"kernel_ids": ["1001", "1008"]}, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["added"] == 2
    again = await client.post(url, json={"kernel_ids": ["1008", "1001"]}, headers=headers)
    assert again.status_code == 201, again.text
    assert (again.json()["added"], again.json()["skipped"]) == (0, 2)
    wider = await client.post(url, json={"filters": DE_SOFTWARE_MID}, headers=headers)
    assert (wider.json()["added"], wider.json()["skipped"]) == (1, 1)
    assert await row_count(sessionmaker) == 3
    # A deleted row's company can be listed again.
    rows = await _rows(client, headers, project["id"])
    beta = next(r for r in rows if r["company"]["company_name"]["value"] == "Beta Systems GmbH")
    assert (
        await client.delete(f"{API}/projects/{project['id']}/rows/{beta['id']}", headers=headers)
    ).status_code == 200
    back = await client.post(url, json={"filters": DE_SOFTWARE_MID}, headers=headers)
    assert (back.json()["added"], back.json()["skipped"]) == (1, 1)
    listed = await client.get(url, headers=headers)
    assert [item["added"] for item in listed.json()] == [2, 0, 1, 1]


async def test_rows_whose_entity_resolved_to_a_company_count_as_that_company(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    project = await create_project(client, headers, columns=COLUMNS)
    posted = await client.post(
        f"{API}/projects/{project['id']}/rows",
        json={"company": {"company_name": "Beta Systems GmbH", "website": "https://www.beta.de"}},
        headers=headers,
    )
    assert posted.status_code == 200, posted.text
    async with _worker(settings, sessionmaker):

        async def resolved() -> bool:
            (row,) = await _rows(client, headers, project["id"])
            return bool(row["company"]["entity"]["status"] == "success")

        await eventually(resolved, what="entity resolution of the posted row")
    response = await client.post(
        f"{API}/projects/{project['id']}/lists", json={"filters": DE_SOFTWARE_MID}, headers=headers
    )
    assert (response.json()["added"], response.json()["skipped"]) == (1, 1)


async def test_a_large_list_is_built_in_the_background_with_progress(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    widgets = [
        {
            "kernel_id": str(5000 + i),
            "source": "test",
            "source_key": f"w{i}",
            "name": f"Widget Maker {i}",
            "domain": f"widget{i}.example",
            "country": "Germany",
            "country_code": "DE",
            "industry": "Widgets",
            "employee_count": 10 * i,
        }
        for i in range(30)
    ]
    await seed_registry(sessionmaker, widgets)
    project = await create_project(client, headers, columns=COLUMNS)
    url = f"{API}/projects/{project['id']}/lists"
    body = {"filters": {"industry": "Widgets"}}
    response = await client.post(url, json=body, headers=headers)
    assert response.status_code == 202, response.text
    queued = response.json()
    assert (queued["status"], queued["matched"], queued["processed"], queued["progress"]) == (
        "queued",
        30,
        0,
        0.0,
    )
    assert await row_count(sessionmaker) == 0
    # The same request while it is pending is that list, not a second one.
    repeat = await client.post(url, json=body, headers=headers)
    assert repeat.status_code == 202
    assert repeat.json()["list_id"] == queued["list_id"]

    progress_seen: set[float] = set()
    async with _worker(settings, sessionmaker):

        async def finished() -> dict[str, Any] | None:
            state = (await client.get(f"{url}/{queued['list_id']}", headers=headers)).json()
            progress_seen.add(state["progress"])
            return state if state["status"] == "done" else None

        done = await eventually(finished, what="the background list")

        async def enriched() -> bool:
            rows = await _rows(client, headers, project["id"])
            return len(rows) == 30 and all(r["company"]["firmo"]["status"] == "success" for r in rows)

        await eventually(enriched, what="firmographics of the background rows")
    assert (done["added"], done["processed"], done["progress"]) == (30, 30, 1.0)
    assert all(0.0 <= p <= 1.0 for p in progress_seen)
    async with sessionmaker() as session:
        assert (await session.scalar(select(func.count()).select_from(ListBuild))) == 1


@pytest.mark.parametrize(
    ("body", "bad"),
    [
        ({"filters": {"industry": "Basket weaving"}}, "industry"),
        ({"filters": {"country": "XQ"}}, "country"),
        ({"filters": {"employees_min": 10, "employees_max": 1}}, "employees_min"),
        ({"filters": {"colour": "red"}}, "colour"),
        ({"filters": {}}, "filters"),
        ({"kernel_ids": ["1001", "999999"]}, "kernel_ids"),
        ({"kernel_ids": []}, "kernel_ids"),
        ({"kernel_ids": ["1001"], "columns": {"company_name": "colour"}}, "columns"),
        ({"kernel_ids": ["1001"], "columns": {"website": "website"}}, "columns"),
    ],
)
async def test_a_bad_list_is_a_422_naming_the_filter_and_adds_nothing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    bad: str,
) -> None:
    project = await create_project(client, headers, columns=COLUMNS)
    response = await client.post(f"{API}/projects/{project['id']}/lists", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error_detail"]["filter"] == bad
    assert await row_count(sessionmaker) == 0
    async with sessionmaker() as session:
        assert (await session.scalar(select(func.count()).select_from(ListBuild))) == 0


async def test_a_list_larger_than_allowed_is_refused(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    app: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"list_max_companies": 3})
    project = await create_project(client, headers, columns=COLUMNS)
    response = await client.post(
        f"{API}/projects/{project['id']}/lists", json={"filters": {"country": "DE"}}, headers=headers
    )
    assert response.status_code == 422, response.text
    assert "6 companies match" in response.json()["message"]
    assert await row_count(sessionmaker) == 0


async def test_another_accounts_project_is_not_found(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from dossier.accounts import service as accounts

    async with sessionmaker() as session, session.begin():
        other = await accounts.create_account(session, "someone-else")
    project = await create_project(client, {"kur-api-key": other.api_key}, columns=COLUMNS)
    response = await client.post(
        f"{API}/projects/{project['id']}/lists", json={"kernel_ids": ["1001"]}, headers=headers
    )
    assert response.status_code == 404
    assert await row_count(sessionmaker) == 0
