"""The Project Workflow API (000): every endpoint's shape, pagination, columns, deletes."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.projects.helpers import (
    API,
    ROW_ID,
    TIMESTAMP,
    UUID,
    add_row,
    assert_error,
    counts,
    create_project,
)

ACME = {"company_name": "Acme Corporation", "website": "https://acme.com", "industry": "Technology"}


async def test_list_projects_has_the_documented_fields(
    client: httpx.AsyncClient, headers: dict[str, str], account: Any
) -> None:
    assert (await client.get(f"{API}/projects", headers=headers)).json() == []
    project = await create_project(client, headers)
    await add_row(client, headers, project["id"], ACME)
    await add_row(client, headers, project["id"], {"company_name": "Globex", "website": "https://globex.com"})

    response = await client.get(f"{API}/projects", headers={**headers, "accept": "application/json"})
    assert response.status_code == 200
    [item] = response.json()
    assert set(item) == {"id", "name", "creator_id", "company_count", "createdAt", "updatedAt"}
    assert item["id"] == project["id"] and UUID.match(item["id"])
    assert item["name"] == "Tech Companies Q4"
    assert item["creator_id"] == account.account.id
    assert item["company_count"] == 2
    assert TIMESTAMP.match(item["createdAt"]) and TIMESTAMP.match(item["updatedAt"])
    assert item["updatedAt"] >= item["createdAt"]


async def test_projects_are_listed_oldest_first(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    ids = [(await create_project(client, headers, name=f"P{i}"))["id"] for i in range(3)]
    listed = (await client.get(f"{API}/projects", headers=headers)).json()
    assert [p["id"] for p in listed] == ids


async def test_create_project_answers_201_with_its_columns(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await create_project(client, headers)
    assert UUID.match(project["id"])
    assert [(c["name"], c["required"]) for c in project["columns"]] == [
        ("company_name", True),
        ("website", True),
        ("industry", False),
    ]
    assert all(UUID.match(c["col_id"]) for c in project["columns"])
    assert project["first_company_data"] == {}
    assert project["company_count"] == 0


async def test_get_project_shows_columns_and_first_company_data(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await create_project(client, headers)
    await add_row(client, headers, project["id"], ACME)
    await add_row(client, headers, project["id"], {"company_name": "Globex", "website": "https://globex.com"})

    response = await client.get(f"{API}/projects/{project['id']}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    # 000's shape: {columns: [{col_id, name, required}], first_company_data: {...}}
    assert {"columns", "first_company_data"} <= set(body)
    for column in body["columns"]:
        assert {"col_id", "name", "required"} <= set(column)
    assert [c["col_id"] for c in body["columns"]] == [c["col_id"] for c in project["columns"]]
    assert body["first_company_data"] == ACME  # the first row, not the latest


async def test_save_company_data_answers_the_row_id(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await create_project(client, headers)
    response = await client.post(
        f"{API}/projects/{project['id']}/rows",
        json={"company": {"company_name": "Acme Corporation", "website": "https://acme.com"}},
        headers={**headers, "accept": "application/json", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"row_id", "message", "error_detail"}
    assert ROW_ID.match(body["row_id"])
    assert body["message"] == "Success" and body["error_detail"] is None


async def test_get_all_rows_has_the_documented_shape(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await create_project(client, headers)
    row_id = await add_row(
        client, headers, project["id"], {"company_name": "Acme Corporation", "website": "https://acme.com"}
    )

    response = await client.get(
        f"{API}/projects/{project['id']}/rows", params={"page": 1, "page_size": 50}, headers=headers
    )
    assert response.status_code == 200
    assert response.json() == {
        "rows": [
            {
                "id": row_id,
                "company": {
                    "company_name": {"value": "Acme Corporation", "status": "default"},
                    "website": {"value": "https://acme.com", "status": "default"},
                    # A column the company did not fill is there, empty.
                    "industry": {"value": None, "status": "default"},
                },
            }
        ],
        "page": 1,
        "page_size": 50,
        "total": 1,
    }


async def test_get_row_results_has_the_documented_shape(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await create_project(client, headers)
    row_id = await add_row(client, headers, project["id"], ACME)

    response = await client.get(f"{API}/projects/{project['id']}/rows/{row_id}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "project_id", "company"}
    assert body["id"] == row_id and body["project_id"] == project["id"]
    assert list(body["company"]) == ["company_name", "website", "industry"]
    for name, value in ACME.items():
        cell = body["company"][name]
        # 000 documents {name, value, status, is_loading}; `error` is Dossier's addition for tool cells.
        assert (
            {"name", "value", "status", "is_loading"}
            <= set(cell)
            <= {"name", "value", "status", "is_loading", "error"}
        )
        assert (cell["name"], cell["value"], cell["status"], cell["is_loading"]) == (
            name,
            value,
            "default",
            False,
        )


async def test_values_keep_their_json_type(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    columns = [{"name": n} for n in ("text", "int", "float", "flag", "nothing", "unicode")]
    project = await create_project(client, headers, columns=columns)
    company = {
        "text": "Acme",
        "int": 42,
        "float": 1.5,
        "flag": True,
        "nothing": None,
        "unicode": "Zürich 東京 🚀",
    }
    row_id = await add_row(client, headers, project["id"], company)
    got = (await client.get(f"{API}/projects/{project['id']}/rows/{row_id}", headers=headers)).json()
    assert {name: cell["value"] for name, cell in got["company"].items()} == company
    assert got["company"]["int"]["value"] is not True  # 42 stays a number, True stays a boolean


# --- pagination -----------------------------------------------------------------------------------------


async def test_pages_follow_insertion_order_without_gaps_or_repeats(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await create_project(client, headers, columns=[{"name": "company_name", "required": True}])
    pid = project["id"]
    created = [await add_row(client, headers, pid, {"company_name": "first"})]
    batch = await client.post(
        f"{API}/projects/{pid}/rows/batch",
        json={"companies": [{"company_name": f"c{i:03d}"} for i in range(203)]},
        headers=headers,
    )
    created += [r["row_id"] for r in batch.json()["results"]]
    created.append(await add_row(client, headers, pid, {"company_name": "last"}))
    assert len(created) == 205

    default = (await client.get(f"{API}/projects/{pid}/rows", headers=headers)).json()
    assert (default["page"], default["page_size"], default["total"]) == (1, 50, 205)
    assert [r["id"] for r in default["rows"]] == created[:50]

    seen: list[str] = []
    for page in (1, 2):
        body = (
            await client.get(
                f"{API}/projects/{pid}/rows", params={"page": page, "page_size": 200}, headers=headers
            )
        ).json()
        assert (body["page"], body["page_size"], body["total"]) == (page, 200, 205)
        seen += [r["id"] for r in body["rows"]]
    assert seen == created

    odd = []
    for page in range(1, 43):
        body = (
            await client.get(
                f"{API}/projects/{pid}/rows", params={"page": page, "page_size": 5}, headers=headers
            )
        ).json()
        odd += [r["id"] for r in body["rows"]]
    assert odd == created
    assert (
        await client.get(f"{API}/projects/{pid}/rows", params={"page": 42, "page_size": 5}, headers=headers)
    ).json()["rows"] == []


async def test_a_page_far_past_the_end_is_empty(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    project = await create_project(client, headers)
    await add_row(client, headers, project["id"], ACME)
    for page in (2, 10**6, 10**20):
        response = await client.get(
            f"{API}/projects/{project['id']}/rows", params={"page": page}, headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["rows"] == [] and response.json()["total"] == 1


# --- columns --------------------------------------------------------------------------------------------


async def test_columns_can_be_listed_added_and_deleted(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await create_project(client, headers)
    pid = project["id"]
    row_id = await add_row(client, headers, pid, ACME)

    added = await client.post(f"{API}/projects/{pid}/columns", json={"name": "employees"}, headers=headers)
    assert added.status_code == 201
    column = added.json()
    assert {"col_id", "name", "required"} <= set(column)
    assert (column["name"], column["required"]) == ("employees", False) and UUID.match(column["col_id"])

    listed = (await client.get(f"{API}/projects/{pid}/columns", headers=headers)).json()
    assert [c["name"] for c in listed] == ["company_name", "website", "industry", "employees"]
    row = (await client.get(f"{API}/projects/{pid}/rows/{row_id}", headers=headers)).json()
    assert row["company"]["employees"]["value"] is None  # existing rows show the new column, empty
    assert (await add_row(client, headers, pid, {**ACME, "employees": 120})) is not None

    industry = next(c for c in listed if c["name"] == "industry")
    cells_before = (await counts(sessionmaker))["cells"]
    deleted = await client.delete(f"{API}/projects/{pid}/columns/{industry['col_id']}", headers=headers)
    assert deleted.status_code == 200
    assert [
        c["name"] for c in (await client.get(f"{API}/projects/{pid}/columns", headers=headers)).json()
    ] == [
        "company_name",
        "website",
        "employees",
    ]
    assert (await counts(sessionmaker))["cells"] == cells_before - 2  # both rows' industry cells are gone
    row = (await client.get(f"{API}/projects/{pid}/rows/{row_id}", headers=headers)).json()
    assert "industry" not in row["company"]
    # The deleted column's name is unknown again for new rows.
    refused = await client.post(f"{API}/projects/{pid}/rows", json={"company": ACME}, headers=headers)
    assert_error(refused, 422, row_creation=True)


async def test_a_required_column_applies_to_later_rows(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await create_project(client, headers, columns=[{"name": "company_name"}])
    pid = project["id"]
    added = await client.post(
        f"{API}/projects/{pid}/columns", json={"name": "website", "required": True}, headers=headers
    )
    assert added.status_code == 201 and added.json()["required"] is True
    refused = await client.post(
        f"{API}/projects/{pid}/rows", json={"company": {"company_name": "A"}}, headers=headers
    )
    assert_error(refused, 422, row_creation=True)


async def test_duplicate_column_name_is_a_conflict(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await create_project(client, headers)
    before = await counts(sessionmaker)
    response = await client.post(
        f"{API}/projects/{project['id']}/columns", json={"name": "website"}, headers=headers
    )
    body = assert_error(response, 409)
    assert "website" in body["message"]
    assert await counts(sessionmaker) == before


async def test_required_column_on_a_project_with_rows_is_a_conflict(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await create_project(client, headers)
    await add_row(client, headers, project["id"], ACME)
    before = await counts(sessionmaker)
    response = await client.post(
        f"{API}/projects/{project['id']}/columns", json={"name": "ceo", "required": True}, headers=headers
    )
    body = assert_error(response, 409)
    assert "ceo" in body["message"]
    assert await counts(sessionmaker) == before
    # The same column, optional, is fine.
    ok = await client.post(f"{API}/projects/{project['id']}/columns", json={"name": "ceo"}, headers=headers)
    assert ok.status_code == 201


async def test_unknown_column_cannot_be_deleted(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    project = await create_project(client, headers)
    missing = "00000000-0000-0000-0000-000000000000"
    assert_error(
        await client.delete(f"{API}/projects/{project['id']}/columns/{missing}", headers=headers), 404
    )


# --- deletes --------------------------------------------------------------------------------------------


async def test_delete_row_removes_it_and_its_cells(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    project = await create_project(client, headers)
    pid = project["id"]
    keep = await add_row(client, headers, pid, ACME)
    gone = await add_row(client, headers, pid, {"company_name": "Globex", "website": "https://globex.com"})
    before = await counts(sessionmaker)

    response = await client.delete(f"{API}/projects/{pid}/rows/{gone}", headers=headers)
    assert response.status_code == 200 and response.json() == {"message": "Deleted"}
    assert_error(await client.get(f"{API}/projects/{pid}/rows/{gone}", headers=headers), 404)
    assert_error(await client.delete(f"{API}/projects/{pid}/rows/{gone}", headers=headers), 404)
    page = (await client.get(f"{API}/projects/{pid}/rows", headers=headers)).json()
    assert [r["id"] for r in page["rows"]] == [keep] and page["total"] == 1
    after = await counts(sessionmaker)
    assert after["rows"] == before["rows"] - 1
    assert after["cells"] == before["cells"] - 2


async def test_delete_project_removes_everything_in_it(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    keep = await create_project(client, headers, name="keep")
    await add_row(client, headers, keep["id"], ACME)
    before = await counts(sessionmaker)
    gone = await create_project(client, headers, name="gone")
    await add_row(client, headers, gone["id"], ACME)
    await add_row(client, headers, gone["id"], ACME)

    response = await client.delete(f"{API}/projects/{gone['id']}", headers=headers)
    assert response.status_code == 200 and response.json() == {"message": "Deleted"}
    assert_error(await client.get(f"{API}/projects/{gone['id']}", headers=headers), 404)
    assert_error(await client.delete(f"{API}/projects/{gone['id']}", headers=headers), 404)
    assert [p["name"] for p in (await client.get(f"{API}/projects", headers=headers)).json()] == ["keep"]
    assert await counts(sessionmaker) == before  # its columns, rows and cells went with it
