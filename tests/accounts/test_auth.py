"""API keys: the four documented ways to send one, 401s, and accounts never seeing each other's data."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts import service as accounts
from tests.projects.helpers import API, add_row, assert_error, counts, create_project

ACME = {"company_name": "Acme Corporation", "website": "https://acme.com"}

# Every enterprise endpoint; {p} is a project of the key's account, {r} its row, {c} its column.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/projects", None),
    ("POST", "/projects", {"name": "New", "columns": [{"name": "company_name"}]}),
    ("GET", "/projects/{p}", None),
    ("DELETE", "/projects/{p}", None),
    ("GET", "/projects/{p}/columns", None),
    ("POST", "/projects/{p}/columns", {"name": "ceo"}),
    ("DELETE", "/projects/{p}/columns/{c}", None),
    ("POST", "/projects/{p}/rows", {"company": ACME}),
    ("POST", "/projects/{p}/rows/batch", {"companies": [ACME]}),
    ("GET", "/projects/{p}/rows", None),
    ("GET", "/projects/{p}/rows/{r}", None),
    ("DELETE", "/projects/{p}/rows/{r}", None),
]
IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]


@pytest.fixture
async def owned(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, str]:
    """A project with one row, owned by the `account` fixture."""
    project = await create_project(client, headers)
    row_id = await add_row(client, headers, project["id"], ACME)
    industry = next(c["col_id"] for c in project["columns"] if c["name"] == "industry")
    return {"p": project["id"], "r": row_id, "c": industry}


@pytest.fixture
async def other_key(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    async with sessionmaker() as session, session.begin():
        return (await accounts.create_account(session, "someone-else")).api_key


@pytest.mark.parametrize(
    "style",
    [
        "kur-api-key",
        "x-api-key",
        "authorization-bare",
        "authorization-bearer",
        "authorization-bearer-lowercase",
    ],
)
async def test_each_documented_header_authenticates(
    client: httpx.AsyncClient, account: accounts.NewAccount, style: str
) -> None:
    key = account.api_key
    sent = {
        "kur-api-key": {"kur-api-key": key},
        "x-api-key": {"x-api-key": key},
        "authorization-bare": {"Authorization": key},
        "authorization-bearer": {"Authorization": f"Bearer {key}"},
        "authorization-bearer-lowercase": {"authorization": f"bearer {key}"},
    }[style]
    created = await client.post(f"{API}/projects", json={"name": f"via {style}"}, headers=sent)
    assert created.status_code == 201, created.text
    listed = await client.get(f"{API}/projects", headers=sent)
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()] == [f"via {style}"]


@pytest.mark.parametrize(
    "sent",
    [
        {},
        {"kur-api-key": ""},
        {"kur-api-key": "not-a-key"},
        {"kur-api-key": "dsk_" + "A" * 43},
        {"x-api-key": "dsk_wrong"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer dsk_wrong"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=[
        "none",
        "empty",
        "garbage",
        "well-formed-unknown",
        "x-api-key-wrong",
        "bearer-empty",
        "bearer-wrong",
        "basic",
    ],
)
async def test_missing_or_wrong_key_is_401(
    client: httpx.AsyncClient, account: Any, sent: dict[str, str]
) -> None:
    response = await client.get(f"{API}/projects", headers=sent)
    body = assert_error(response, 401)
    assert "key" in body["message"].lower()


async def test_a_revoked_key_no_longer_works(
    client: httpx.AsyncClient, account: accounts.NewAccount, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    from sqlalchemy import func, update

    from dossier.accounts.models import ApiKey

    headers = {"kur-api-key": account.api_key}
    assert (await client.get(f"{API}/projects", headers=headers)).status_code == 200
    async with sessionmaker() as session, session.begin():
        await session.execute(update(ApiKey).values(revoked_at=func.now()))
    assert_error(await client.get(f"{API}/projects", headers=headers), 401)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=IDS)
async def test_every_endpoint_needs_a_key_and_writes_nothing_without_one(
    client: httpx.AsyncClient,
    owned: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    method: str,
    path: str,
    body: Any,
) -> None:
    before = await counts(sessionmaker)
    url = API + path.format(**owned)
    for sent in ({}, {"kur-api-key": "dsk_wrong"}):
        response = await client.request(method, url, json=body, headers=sent)
        assert_error(response, 401, row_creation=method == "POST" and path.endswith("/rows"))
    assert await counts(sessionmaker) == before


@pytest.mark.parametrize(("method", "path", "body"), [e for e in ENDPOINTS if "{p}" in e[1]], ids=IDS[2:])
async def test_another_accounts_project_is_404_and_untouched(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    owned: dict[str, str],
    other_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    method: str,
    path: str,
    body: Any,
) -> None:
    before = await counts(sessionmaker)
    url = API + path.format(**owned)
    response = await client.request(method, url, json=body, headers={"kur-api-key": other_key})
    assert_error(response, 404, row_creation=path.endswith("/rows") and method == "POST")
    assert await counts(sessionmaker) == before
    # The owner still sees everything as it was.
    row = await client.get(f"{API}/projects/{owned['p']}/rows/{owned['r']}", headers=headers)
    assert row.status_code == 200 and row.json()["company"]["company_name"]["value"] == "Acme Corporation"


async def test_accounts_list_only_their_own_projects(
    client: httpx.AsyncClient, headers: dict[str, str], owned: dict[str, str], other_key: str
) -> None:
    other = {"kur-api-key": other_key}
    assert (await client.get(f"{API}/projects", headers=other)).json() == []
    theirs = await create_project(client, other, name="theirs")
    assert [p["id"] for p in (await client.get(f"{API}/projects", headers=headers)).json()] == [owned["p"]]
    assert [p["id"] for p in (await client.get(f"{API}/projects", headers=other)).json()] == [theirs["id"]]
    # A row id of one account's project is not reachable through the other account's project either.
    assert_error(await client.get(f"{API}/projects/{theirs['id']}/rows/{owned['r']}", headers=other), 404)
