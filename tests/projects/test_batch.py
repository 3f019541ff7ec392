"""POST /projects/{id}/rows/batch: up to 1,000 companies; per-company errors in order; no half-written row."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.projects.helpers import API, ROW_ID, assert_error, counts, create_project


async def _rows(client: httpx.AsyncClient, headers: dict[str, str], pid: str) -> list[dict[str, Any]]:
    page = (await client.get(f"{API}/projects/{pid}/rows", params={"page_size": 200}, headers=headers)).json()
    rows: list[dict[str, Any]] = page["rows"]
    return rows


async def test_valid_companies_are_written_and_invalid_ones_reported_in_order(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await create_project(client, headers)
    pid = project["id"]
    before = await counts(sessionmaker)
    companies: list[Any] = [
        {"company_name": "Acme", "website": "https://acme.com"},
        {"company_name": "NoSite"},  # missing required website
        {"company_name": "Globex", "website": "https://globex.com", "industry": "Energy"},
        # One good value and one bad one: the row must not be written with only the good one.
        {"company_name": "Half", "website": "https://half.example", "industry": {"nested": True}},
        "not an object",
        {"company_name": "Initech", "website": "https://initech.com", "ceo": "Bill"},  # unknown column
        {"company_name": "Umbrella", "website": "https://umbrella.com"},
    ]
    response = await client.post(
        f"{API}/projects/{pid}/rows/batch", json={"companies": companies}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["failed"]) == (3, 4)
    results = body["results"]
    assert len(results) == len(companies)
    for result in results:
        assert set(result) == {"row_id", "message", "error_detail"}
    ok = [0, 2, 6]
    for i, result in enumerate(results):
        if i in ok:
            assert (
                ROW_ID.match(result["row_id"])
                and result["message"] == "Success"
                and result["error_detail"] is None
            )
        else:
            assert result["row_id"] is None and result["message"] and result["message"] != "Success"
    assert results[1]["error_detail"] == {"missing_columns": ["website"]}
    assert "industry" in results[3]["message"]
    assert "object" in results[4]["message"]
    assert results[5]["error_detail"] == {"unknown_columns": ["ceo"]}

    rows = await _rows(client, headers, pid)
    assert [r["id"] for r in rows] == [results[i]["row_id"] for i in ok]
    assert [r["company"]["company_name"]["value"] for r in rows] == ["Acme", "Globex", "Umbrella"]
    after = await counts(sessionmaker)
    assert after["rows"] - before["rows"] == 3
    assert (
        after["cells"] - before["cells"] == 2 + 3 + 2
    )  # exactly the valid companies' values, nothing of "Half"


async def test_a_batch_of_1000_is_accepted_whole(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await create_project(client, headers)
    companies = [{"company_name": f"Company {i}", "website": f"https://c{i}.example"} for i in range(1000)]
    row_inserts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ROWS"):
            row_inserts.append(statement)

    engine = sessionmaker.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = await client.post(
            f"{API}/projects/{project['id']}/rows/batch", json={"companies": companies}, headers=headers
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200, response.text
    # Set-based: the rows go in one multi-row INSERT (two at most, should the driver page it), not one each.
    assert 1 <= len(row_inserts) <= 2
    body = response.json()
    assert (body["created"], body["failed"]) == (1000, 0)
    ids = [r["row_id"] for r in body["results"]]
    assert len(set(ids)) == 1000
    page = (
        await client.get(
            f"{API}/projects/{project['id']}/rows", params={"page": 5, "page_size": 200}, headers=headers
        )
    ).json()
    assert page["total"] == 1000
    assert [r["id"] for r in page["rows"]] == ids[800:]
    assert page["rows"][-1]["company"]["company_name"]["value"] == "Company 999"


async def test_over_1000_is_rejected_whole_and_writes_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await create_project(client, headers)
    before = await counts(sessionmaker)
    companies = [{"company_name": f"Company {i}", "website": "https://x.example"} for i in range(1001)]
    response = await client.post(
        f"{API}/projects/{project['id']}/rows/batch", json={"companies": companies}, headers=headers
    )
    body = assert_error(response, 422)
    assert "1000" in body["message"]
    assert await counts(sessionmaker) == before


async def test_an_empty_or_missing_batch_is_rejected(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await create_project(client, headers)
    before = await counts(sessionmaker)
    url = f"{API}/projects/{project['id']}/rows/batch"
    for body in ({"companies": []}, {}, {"companies": {"company_name": "Acme"}}, [{"company_name": "Acme"}]):
        assert_error(await client.post(url, json=body, headers=headers), 422)
    assert await counts(sessionmaker) == before


async def test_a_batch_where_every_company_is_invalid_writes_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await create_project(client, headers)
    before = await counts(sessionmaker)
    response = await client.post(
        f"{API}/projects/{project['id']}/rows/batch",
        json={"companies": [{"website": "a"}, {"website": "b"}]},
        headers=headers,
    )
    assert response.status_code == 200
    assert (response.json()["created"], response.json()["failed"]) == (0, 2)
    assert await counts(sessionmaker) == before
