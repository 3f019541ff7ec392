"""Registry search and facets through the API: every filter, sorting, cursor pages, counts and 422s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.registry import service as registry_service
from dossier.lists import service
from tests.lists.helpers import COMPANIES, seed_registry

SEARCH = "/api/enterprise/registry/companies"
FACETS = "/api/enterprise/registry/facets"


@pytest.fixture
async def registry(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await seed_registry(sessionmaker)


async def _ids(client: httpx.AsyncClient, headers: dict[str, str], params: Any) -> list[str]:
    response = await client.get(
        SEARCH,
        params={**dict(params), "sort": "kernel_id"}
        if isinstance(params, dict)
        else [*params, ("sort", "kernel_id")],
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    ids = [company["kernel_id"] for company in body["companies"]]
    assert body["total"] == len(ids)
    return ids


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"country": "DE"}, ["1001", "1002", "1003", "1004", "1005", "1008"]),
        (
            [("country", "deu"), ("country", "Austria")],
            ["1001", "1002", "1003", "1004", "1005", "1006", "1008"],
        ),
        (
            {"industry": "software", "country": "DE", "employees_min": 500, "employees_max": 5000},
            ["1001", "1002"],
        ),
        ({"sector": "Financials"}, ["1007", "1008"]),
        ([("industry", "Banks"), ("industry", "Machinery")], ["1007", "1008", "1009", "1010", "1011"]),
        ({"city": "BERLIN"}, ["1001", "1003", "1005"]),
        ({"employees_max": 100}, ["1011"]),
        ({"revenue_min": 1e9, "revenue_currency": "eur"}, ["1003", "1008"]),
        ({"revenue_currency": "USD"}, ["1007"]),
        ({"founded_min": 1900, "founded_max": 2000}, ["1001", "1003", "1009", "1010"]),
        ({"company_type": "public", "country": "US"}, ["1007"]),
        ({"has_website": "false"}, ["1004", "1010", "1011", "1012"]),
        ({"name": "alpha soft"}, ["1001", "1006"]),
        ({"name": "ÜBER daten"}, ["1005"]),
        ({"name": "100%"}, ["1009"]),
        ({"parent_kernel_id": "1001"}, ["1006"]),
        ({"is_subsidiary": "true"}, ["1006"]),
        ({"name": "nothing like it"}, []),
        ({"name": "ta"}, ["1002", "1004", "1005", "1010", "1011", "1012"]),  # shorter than a trigram: a scan
    ],
)
async def test_each_filter_selects_the_companies_that_fit(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    params: Any,
    expected: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await _ids(client, headers, params) == expected
    # The same companies when the page is read in the sort's index order (broad searches on SQLite), with and
    # without the name index (a name in many companies).
    monkeypatch.setattr(service, "WALK_SORT_INDEX_FROM", 0)
    assert await _ids(client, headers, params) == expected
    monkeypatch.setattr(service, "NAME_INDEX_PAGE_UNTIL", 0)
    assert await _ids(client, headers, params) == expected


async def test_the_name_filter_and_the_facets_follow_every_write_to_the_registry(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """Imports add, rename and remove companies: the name index (SQLite's FTS5 table, kept by triggers) and
    the cached facets (per registry generation) follow at once."""

    async def write(lines: list[dict[str, Any]], *, remove: bool = False) -> None:
        path = tmp_path / "extra.jsonl"
        path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
        async with sessionmaker() as session, session.begin():
            await registry_service.import_file(session, path, source="extra", remove_missing=remove)

    async def names(text: str) -> list[str]:
        response = await client.get(SEARCH, params={"name": text}, headers=headers)
        assert response.status_code == 200, response.text
        return [company["name"] for company in response.json()["companies"]]

    async def software() -> int:
        response = await client.get(FACETS, params={"fields": "industry"}, headers=headers)
        return int(
            next(v["count"] for v in response.json()["facets"]["industry"] if v["value"] == "Software")
        )

    assert await software() == 6
    widget = {"source_key": "w1", "name": "Zylophone Widgets GmbH", "industry": "Software"}
    await write([widget, {"source_key": "w2", "name": "Other Co", "aliases": ["Quirkwerk"]}])
    assert await names("zylophone") == ["Zylophone Widgets GmbH"]
    assert await names("QUIRKWERK") == ["Other Co"]
    assert await software() == 7
    await write(
        [{**widget, "name": "Xanthic Widgets GmbH"}, {"source_key": "w2", "name": "Other Co", "aliases": []}]
    )
    assert await names("zylophone") == []
    assert await names("xanthic widgets") == ["Xanthic Widgets GmbH"]
    assert await names("quirkwerk") == []
    await write([{"source_key": "w2", "name": "Other Co"}], remove=True)
    assert await names("xanthic") == []
    assert await software() == 6


async def test_a_large_import_rebuilds_the_name_index_once_and_keeps_it_maintained_afterwards(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On SQLite an import of many rows (here: over 10) suspends the row-by-row name index and rebuilds it
    before committing; the search finds every imported name, later writes are indexed again, and an import
    that fails part-way leaves the index as it was. (PostgreSQL has no such index: the same searches hold.)"""
    monkeypatch.setattr(registry_service, "_BULK_ROWS", 10)

    async def names(text: str) -> list[str]:
        response = await client.get(SEARCH, params={"name": text}, headers=headers)
        assert response.status_code == 200, response.text
        return sorted(company["name"] for company in response.json()["companies"])

    rows = [{"source_key": f"b{n}", "name": f"Brightmoor Kiln {n:02d} Ltd"} for n in range(40)]
    path = tmp_path / "bulk.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    async with sessionmaker() as session, session.begin():
        report = await registry_service.import_file(session, path, source="bulk", batch_size=5)
    assert report.inserted == 40
    assert len(await names("brightmoor kiln")) == 40
    assert await names("Kiln 07") == ["Brightmoor Kiln 07 Ltd"]

    # A small write afterwards goes through the index's triggers again.
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps({"source_key": "s1", "name": "Quenvale Looms SA"}) + "\n", encoding="utf-8")
    async with sessionmaker() as session, session.begin():
        await registry_service.import_file(session, small, source="small")
    assert await names("quenvale") == ["Quenvale Looms SA"]

    # A large import that fails part-way (a line that is not UTF-8) writes nothing, index included.
    broken = tmp_path / "broken.jsonl"
    good = "".join(
        json.dumps({"source_key": f"x{n}", "name": f"Ostrava Tanners {n}"}) + "\n" for n in range(30)
    )
    broken.write_bytes(good.encode() + b'{"source_key": "bad", "name": "\xff\xfe"}\n')
    with pytest.raises(registry_service.RegistryImportError):
        async with sessionmaker() as session, session.begin():
            await registry_service.import_file(session, broken, source="broken", batch_size=5)
    assert await names("ostrava tanners") == []
    async with sessionmaker() as session, session.begin():
        await registry_service.import_file(session, small, source="small2")
    renamed = tmp_path / "renamed.jsonl"
    renamed.write_text(json.dumps({"source_key": "s1", "name": "Pellucid Looms SA"}) + "\n", encoding="utf-8")
    async with sessionmaker() as session, session.begin():
        await registry_service.import_file(session, renamed, source="small")
    assert await names("pellucid") == ["Pellucid Looms SA"]
    assert await names("quenvale") == ["Quenvale Looms SA"]  # the copy imported under "small2"


async def test_a_result_carries_its_kernel_id_and_firmographics(
    client: httpx.AsyncClient, headers: dict[str, str], registry: None
) -> None:
    response = await client.get(SEARCH, params={"name": "Beta Systems"}, headers=headers)
    assert response.status_code == 200, response.text
    (company,) = response.json()["companies"]
    assert company == {
        "kernel_id": "1002",
        "name": "Beta Systems GmbH",
        "domain": "beta.de",
        "industry": "Software",
        "sector": "Technology",
        "employee_count": 4500,
        "revenue": {"amount": 900000000, "currency": "EUR", "year": 2024},
        "headquarters": {"city": "Munich", "country": "Germany"},
        "country_code": "DE",
        "country": "Germany",
        "founded_year": 2005,
        "company_type": "Private",
        "identifiers": {"isin": []},
        "aliases": [],
        "parent_kernel_id": None,
    }


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("-employees", "employee_count"),
        ("employees", "employee_count"),
        ("name", "name"),
        ("-founded", "founded_year"),
    ],
)
@pytest.mark.parametrize("walk_sort_index", [False, True])
async def test_cursor_pages_walk_every_company_once_in_order(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    sort: str,
    key: str,
    walk_sort_index: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Broad searches read in the sort's index order on SQLite: the same pages either way.
    monkeypatch.setattr(service, "WALK_SORT_INDEX_FROM", 0 if walk_sort_index else 10**9)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": sort, "page_size": 5}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(SEARCH, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(COMPANIES)
        seen.extend(body["companies"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(c["kernel_id"] for c in seen) == sorted(c["kernel_id"] for c in COMPANIES)
    present = [c[key] for c in seen if c[key] is not None]
    assert present == sorted(present, reverse=sort.startswith("-"))
    # Companies without the value come last, whatever the direction.
    assert all(c[key] is None for c in seen[len(present) :])


async def test_a_cursor_only_continues_its_own_search(
    client: httpx.AsyncClient, headers: dict[str, str], registry: None
) -> None:
    first = await client.get(SEARCH, params={"country": "DE", "page_size": 2}, headers=headers)
    cursor = first.json()["next_cursor"]
    assert cursor
    other = await client.get(SEARCH, params={"country": "FR", "cursor": cursor}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error_detail"]["filter"] == "cursor"
    garbage = await client.get(SEARCH, params={"cursor": "not-a-cursor"}, headers=headers)
    assert garbage.status_code == 422


async def test_facets_count_the_registry_values_among_the_companies_that_fit(
    client: httpx.AsyncClient, headers: dict[str, str], registry: None
) -> None:
    response = await client.get(FACETS, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(COMPANIES)
    assert body["facets"]["industry"] == [
        {"value": "Software", "count": 6},
        {"value": "Machinery", "count": 3},
        {"value": "Banks", "count": 2},
    ]
    assert {"value": "DE", "count": 6} in body["facets"]["country"]
    narrowed = await client.get(FACETS, params={"country": "DE", "fields": "industry,city"}, headers=headers)
    assert narrowed.status_code == 200, narrowed.text
    facets = narrowed.json()["facets"]
    assert set(facets) == {"industry", "city"}
    assert facets["industry"] == [{"value": "Software", "count": 5}, {"value": "Banks", "count": 1}]


@pytest.mark.parametrize(
    ("path", "params", "bad"),
    [
        (SEARCH, {"industry": "Basket weaving"}, "industry"),
        (SEARCH, {"sector": "Nope"}, "sector"),
        (SEARCH, {"company_type": "Cooperative"}, "company_type"),
        (SEARCH, {"country": "XQ"}, "country"),
        (SEARCH, {"employees_min": 5000, "employees_max": 500}, "employees_min"),
        (SEARCH, {"founded_min": 2010, "founded_max": 1990}, "founded_min"),
        (SEARCH, {"employees_min": "many"}, "employees_min"),
        (SEARCH, {"revenue_min": 10}, "revenue_currency"),
        (SEARCH, {"revenue_currency": "XYZ"}, "revenue_currency"),
        (SEARCH, {"has_website": "maybe"}, "has_website"),
        (SEARCH, {"parent_kernel_id": "abc"}, "parent_kernel_id"),
        (SEARCH, {"industri": "Software"}, "industri"),
        (SEARCH, {"sort": "size"}, "sort"),
        (SEARCH, {"page_size": 1000}, "page_size"),
        (FACETS, {"industry": "Basket weaving"}, "industry"),
        (FACETS, {"fields": "colour"}, "fields"),
    ],
)
async def test_a_bad_filter_is_a_422_naming_it(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    registry: None,
    path: str,
    params: dict[str, Any],
    bad: str,
) -> None:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_detail"]["filter"] == bad
    assert bad in body["message"]


async def test_search_needs_an_api_key(client: httpx.AsyncClient, registry: None) -> None:
    assert (await client.get(SEARCH)).status_code == 401
    assert (await client.get(FACETS)).status_code == 401
