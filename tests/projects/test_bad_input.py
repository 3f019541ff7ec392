"""Issue 2, point 6: bad input gets a clear 4xx error in the documented envelope and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.settings import Settings
from tests.projects.helpers import API, add_row, assert_error, counts, create_project

ACME = {"company_name": "Acme Corporation", "website": "https://acme.com"}
JSON = {"content-type": "application/json"}


@pytest.fixture
async def project(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """The 000 project, holding one row so that "nothing written" is measured against a non-empty table."""
    created = await create_project(client, headers)
    await add_row(client, headers, created["id"], ACME)
    return created


# (case, raw request body, status, what error_detail must say)
ROW_BODIES: list[tuple[str, bytes, int, Any]] = [
    (
        "missing required column",
        json.dumps({"company": {"company_name": "Acme"}}).encode(),
        422,
        {"missing_columns": ["website"]},
    ),
    (
        "blank required column",
        json.dumps({"company": {"company_name": "  ", "website": "https://acme.com"}}).encode(),
        422,
        {"missing_columns": ["company_name"]},
    ),
    (
        "unknown column",
        json.dumps({"company": {**ACME, "revenue": 10}}).encode(),
        422,
        {"unknown_columns": ["revenue"]},
    ),
    ("object value", json.dumps({"company": {**ACME, "industry": {"a": 1}}}).encode(), 422, "invalid_values"),
    ("list value", json.dumps({"company": {**ACME, "industry": ["a"]}}).encode(), 422, "invalid_values"),
    ("NaN", b'{"company": {"company_name": "Acme", "website": "w", "industry": NaN}}', 422, "invalid_values"),
    (
        "Infinity",
        b'{"company": {"company_name": "Acme", "website": "w", "industry": 1e999}}',
        422,
        "invalid_values",
    ),
    # Text PostgreSQL cannot store, or that cannot be encoded back out: refused on both stores alike.
    ("NUL in text", b'{"company": {"company_name": "Ac\\u0000me", "website": "w"}}', 422, None),
    ("lone surrogate", b'{"company": {"company_name": "\\ud800", "website": "w"}}', 422, None),
    (
        "lone surrogate in a column name",
        b'{"company": {"company_name": "Acme", "website": "w", "\\ud800": 1}}',
        422,
        None,
    ),
    ("company not an object", json.dumps({"company": "Acme"}).encode(), 422, None),
    ("company missing", json.dumps({"name": "Acme"}).encode(), 422, None),
    ("body not an object", json.dumps([ACME]).encode(), 422, None),
    ("empty body", b"", 422, None),
    ("malformed JSON", b'{"company": {"company_name": "Acme",', 400, None),
    ("invalid UTF-8", b'{"company": {"company_name": "\xff\xfe", "website": "w"}}', 400, None),
]


@pytest.mark.parametrize(("case", "body", "status", "detail"), ROW_BODIES, ids=[c[0] for c in ROW_BODIES])
async def test_bad_row_is_refused_and_writes_nothing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    project: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
    case: str,
    body: bytes,
    status: int,
    detail: Any,
) -> None:
    before = await counts(sessionmaker)
    response = await client.post(
        f"{API}/projects/{project['id']}/rows", content=body, headers={**headers, **JSON}
    )
    error = assert_error(response, status, row_creation=True)
    if isinstance(detail, dict):
        assert error["error_detail"] == detail
    elif isinstance(detail, str):
        assert detail in error["error_detail"]
    assert await counts(sessionmaker) == before


async def test_over_long_text_is_refused(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    project: dict[str, Any],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = await counts(sessionmaker)
    company = {**ACME, "industry": "x" * (settings.max_value_chars + 1)}
    response = await client.post(
        f"{API}/projects/{project['id']}/rows", json={"company": company}, headers=headers
    )
    body = assert_error(response, 422, row_creation=True)
    assert "industry" in body["message"]
    assert await counts(sessionmaker) == before
    # At the limit exactly, it is stored.
    company["industry"] = "x" * settings.max_value_chars
    assert (
        await client.post(f"{API}/projects/{project['id']}/rows", json={"company": company}, headers=headers)
    ).status_code == 200


async def test_every_problem_of_a_company_is_reported_at_once(
    client: httpx.AsyncClient, headers: dict[str, str], project: dict[str, Any]
) -> None:
    response = await client.post(
        f"{API}/projects/{project['id']}/rows",
        json={"company": {"website": ["x"], "hq": "Berlin"}},
        headers=headers,
    )
    body = assert_error(response, 422, row_creation=True)
    assert body["error_detail"]["missing_columns"] == ["company_name"]
    assert body["error_detail"]["unknown_columns"] == ["hq"]
    assert len(body["error_detail"]["invalid_values"]) == 1
    for word in ("company_name", "hq", "website"):
        assert word in body["message"]


async def test_json_without_content_type_is_read_and_malformed_json_is_400(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    project: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    url = f"{API}/projects/{project['id']}/rows"
    ok = await client.post(url, content=json.dumps({"company": ACME}).encode(), headers=headers)
    assert ok.status_code == 200, ok.text
    before = await counts(sessionmaker)
    bad = await client.post(url, content=b'{"company": ', headers=headers)
    assert "JSON" in assert_error(bad, 400, row_creation=True)["message"]
    assert await counts(sessionmaker) == before


async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    project: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = await counts(sessionmaker)
    # What `curl -d '{...}'` sends when the Content-Type header is forgotten.
    response = await client.post(
        f"{API}/projects/{project['id']}/rows",
        content=json.dumps({"company": ACME}).encode(),
        headers={**headers, "content-type": "application/x-www-form-urlencoded"},
    )
    assert "application/json" in assert_error(response, 415, row_creation=True)["message"]
    assert await counts(sessionmaker) == before


async def test_a_body_over_the_limit_is_413(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    project: dict[str, Any],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = await counts(sessionmaker)
    padding = "x" * settings.max_body_bytes
    huge = json.dumps({"company": {**ACME, "industry": padding}}).encode()
    row = await client.post(f"{API}/projects/{project['id']}/rows", content=huge, headers={**headers, **JSON})
    assert_error(row, 413, row_creation=True)
    batch = await client.post(
        f"{API}/projects/{project['id']}/rows/batch",
        content=json.dumps({"companies": [{**ACME, "industry": padding}]}).encode(),
        headers={**headers, **JSON},
    )
    assert_error(batch, 413)
    new_project = await client.post(
        f"{API}/projects", content=json.dumps({"name": padding}).encode(), headers={**headers, **JSON}
    )
    assert_error(new_project, 413)
    assert await counts(sessionmaker) == before


async def test_unknown_project_for_a_new_row_is_404(
    client: httpx.AsyncClient, headers: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    before = await counts(sessionmaker)
    missing = "00000000-0000-0000-0000-000000000000"
    response = await client.post(f"{API}/projects/{missing}/rows", json={"company": ACME}, headers=headers)
    assert_error(response, 404, row_creation=True)
    batch = await client.post(
        f"{API}/projects/{missing}/rows/batch", json={"companies": [ACME]}, headers=headers
    )
    assert_error(batch, 404)
    assert await counts(sessionmaker) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/projects/{missing}"),
        ("DELETE", "/projects/{missing}"),
        ("GET", "/projects/{missing}/rows"),
        ("GET", "/projects/{missing}/columns"),
        ("POST", "/projects/{missing}/columns"),
        ("GET", "/projects/{project}/rows/AAAAAAAAAAAAAAAAAAAA"),
        ("DELETE", "/projects/{project}/rows/AAAAAAAAAAAAAAAAAAAA"),
        ("DELETE", "/projects/{project}/columns/{missing}"),
        ("GET", "/projects/not-even-a-uuid"),
    ],
)
async def test_unknown_project_row_or_column_is_404(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    project: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
    method: str,
    path: str,
) -> None:
    before = await counts(sessionmaker)
    url = API + path.format(missing="00000000-0000-0000-0000-000000000000", project=project["id"])
    body = {"name": "x"} if method == "POST" else None
    response = await client.request(method, url, json=body, headers=headers)
    assert "not found" in assert_error(response, 404)["message"]
    assert await counts(sessionmaker) == before


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 201}, "page_size"),
        ({"page_size": -5}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": "first"}, "page"),
    ],
)
async def test_bad_pagination_is_422(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    project: dict[str, Any],
    params: dict[str, Any],
    word: str,
) -> None:
    response = await client.get(f"{API}/projects/{project['id']}/rows", params=params, headers=headers)
    assert word in assert_error(response, 422)["message"]


async def test_page_size_bounds_are_inclusive(
    client: httpx.AsyncClient, headers: dict[str, str], project: dict[str, Any]
) -> None:
    for size in (1, 200):
        response = await client.get(
            f"{API}/projects/{project['id']}/rows", params={"page_size": size}, headers=headers
        )
        assert response.status_code == 200 and response.json()["page_size"] == size


PROJECT_BODIES: list[tuple[str, Any]] = [
    ("empty name", {"name": "  ", "columns": [{"name": "a"}]}),
    ("name missing", {"columns": [{"name": "a"}]}),
    ("name too long", {"name": "x" * 201}),
    ("NUL in name", {"name": "a\u0000b"}),
    ("duplicate column", {"name": "P", "columns": [{"name": "a"}, {"name": "a"}]}),
    ("empty column name", {"name": "P", "columns": [{"name": ""}]}),
    ("columns not a list", {"name": "P", "columns": "a,b"}),
    ("unknown field", {"name": "P", "colour": "red"}),
    ("required not a boolean", {"name": "P", "columns": [{"name": "a", "required": "maybe"}]}),
]


@pytest.mark.parametrize(("case", "body"), PROJECT_BODIES, ids=[c[0] for c in PROJECT_BODIES])
async def test_bad_project_is_refused_and_writes_nothing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    case: str,
    body: Any,
) -> None:
    before = await counts(sessionmaker)
    assert_error(await client.post(f"{API}/projects", json=body, headers=headers), 422)
    assert await counts(sessionmaker) == before
    assert (await client.get(f"{API}/projects", headers=headers)).json() == []


async def test_malformed_json_elsewhere_is_400(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    project: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = await counts(sessionmaker)
    for path in ("/projects", f"/projects/{project['id']}/columns", f"/projects/{project['id']}/rows/batch"):
        response = await client.post(API + path, content=b"{nope", headers={**headers, **JSON})
        assert_error(response, 400)
    assert await counts(sessionmaker) == before


async def test_bad_column_is_refused_and_writes_nothing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    project: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = await counts(sessionmaker)
    url = f"{API}/projects/{project['id']}/columns"
    for body in ({"name": ""}, {"name": "x" * 201}, {}, {"name": "ok", "colour": "red"}):
        assert_error(await client.post(url, json=body, headers=headers), 422)
    assert await counts(sessionmaker) == before


async def test_unknown_paths_and_methods_use_the_envelope(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert_error(await client.get(f"{API}/nothing-here", headers=headers), 404)
    assert_error(await client.put(f"{API}/projects", headers=headers), 405)
