"""`Idempotency-Key` on the creating POSTs: a repeat gets the first answer and creates nothing; another
request under the same key is a 422; keys are per account and expire with the retention setting. In-process
for the matrix of routes, and once against a real `dossier serve`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts import service as accounts
from dossier.accounts.service import NewAccount
from dossier.app import create_app
from dossier.settings import Settings
from tests.conftest import start_server, stop_server
from tests.projects.helpers import create_project

API = "/api/enterprise"


async def _count(maker: async_sessionmaker[AsyncSession], table: str) -> int:
    async with maker() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


def _key() -> dict[str, str]:
    return {"Idempotency-Key": "k-" + uuid.uuid4().hex}


async def _twice(
    client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    key = _key()
    first = await client.post(path, json=body, headers={**headers, **key})
    second = await client.post(path, json=body, headers={**headers, **key})
    return first, second


async def test_every_creating_post_replays_its_first_answer_and_creates_nothing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    project = await create_project(client, headers)
    rows = f"{API}/projects/{project['id']}/rows"
    cases: list[tuple[str, Any, str, int]] = [
        (f"{API}/projects", {"name": "P", "columns": [{"name": "company_name"}]}, "projects", 1),
        (rows, {"company": {"company_name": "Micron", "website": "micron.com"}}, "rows", 1),
        (rows + "/batch", {"companies": [{"company_name": "A", "website": "a.com"}] * 2}, "rows", 2),
        ("/rest/v1/entity-resolution", {"legal_name": "Micron Technology"}, "jobs", 1),
        ("/rest/v1/entity-resolution/batch", {"inputs": [{"legal_name": "Stripe"}] * 3}, "jobs", 3),
        (
            f"{API}/webhooks",
            {"url": "http://127.0.0.1:9/hook", "profile": "standard"},
            "webhook_endpoints",
            1,
        ),
    ]
    for path, body, table, made in cases:
        before = await _count(sessionmaker, table)
        first, second = await _twice(client, path, body, headers)
        assert 200 <= first.status_code < 300, (path, first.text)
        assert (second.status_code, second.content) == (first.status_code, first.content), path
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert await _count(sessionmaker, table) == before + made, path

    # Test events and redeliveries create deliveries: once.
    endpoint = (await client.get(f"{API}/webhooks", headers=headers)).json()[0]
    before = await _count(sessionmaker, "webhook_deliveries")
    first, second = await _twice(client, f"{API}/webhooks/{endpoint['id']}/test", None, headers)
    assert first.status_code == 202 and second.json() == first.json()
    assert await _count(sessionmaker, "webhook_deliveries") == before + 1
    delivery_id = first.json()["id"]
    first, second = await _twice(client, f"{API}/webhooks/deliveries/{delivery_id}/redeliver", None, headers)
    assert first.status_code == 202 and second.json() == first.json()


async def test_same_key_with_another_body_is_422_and_failures_free_the_key(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = _key()
    made = await client.post(f"{API}/projects", json={"name": "A", "columns": []}, headers={**headers, **key})
    assert made.status_code == 201
    other = await client.post(
        f"{API}/projects", json={"name": "B", "columns": []}, headers={**headers, **key}
    )
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["message"]
    assert await _count(sessionmaker, "projects") == 1

    # A refused request does not keep its key: fixed and sent again, it runs.
    retry_key = _key()
    bad = await client.post(f"{API}/projects", json={"columns": []}, headers={**headers, **retry_key})
    assert bad.status_code == 422
    good = await client.post(
        f"{API}/projects", json={"name": "C", "columns": []}, headers={**headers, **retry_key}
    )
    assert good.status_code == 201 and "idempotent-replayed" not in good.headers

    too_long = await client.post(
        f"{API}/projects", json={"name": "D"}, headers={**headers, "Idempotency-Key": "x" * 256}
    )
    assert too_long.status_code == 422 and "Idempotency-Key" in too_long.text
    # Without a valid API key the route answers as usual.
    anonymous = await client.post(f"{API}/projects", json={"name": "E"}, headers=_key())
    assert anonymous.status_code == 401


async def test_keys_are_per_account(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        other = await accounts.create_account(session, "other-" + uuid.uuid4().hex[:6])
    key = _key()
    body = {"name": "Same", "columns": []}
    mine = await client.post(f"{API}/projects", json=body, headers={**headers, **key})
    theirs = await client.post(f"{API}/projects", json=body, headers={"kur-api-key": other.api_key, **key})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


@pytest.fixture
async def short_lived(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings.model_copy(update={"idempotency_key_hours": 1e-7}))
    async with application.router.lifespan_context(application):
        yield application


async def test_keys_expire_with_the_retention_setting(short_lived: Any, account: NewAccount) -> None:
    transport = httpx.ASGITransport(app=short_lived)
    auth = {"kur-api-key": account.api_key, **_key()}
    body = {"name": "Again", "columns": []}
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as client:
        first = await client.post(f"{API}/projects", json=body, headers=auth)
        second = await client.post(f"{API}/projects", json=body, headers=auth)
    # Retention of a third of a millisecond: the key is forgotten, the repeat creates again.
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert "idempotent-replayed" not in second.headers


async def test_against_a_running_server(database_url: str, tmp_path: Path, account: NewAccount) -> None:
    server = start_server(database_url, tmp_path, "--no-migrate", "--no-worker")
    try:
        auth = {"x-api-key": account.api_key, **_key()}
        body = {"legal_name": "Micron Technology", "country": "US"}
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            first = await client.post("/rest/v1/entity-resolution", json=body, headers=auth)
            second = await client.post("/rest/v1/entity-resolution", json=body, headers=auth)
            changed = await client.post(
                "/rest/v1/entity-resolution", json={**body, "country": "FR"}, headers=auth
            )
    finally:
        stop_server(server)
    assert first.status_code == 202, first.text
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    assert changed.status_code == 422


async def test_a_reservation_left_by_a_dead_request_is_freed(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from datetime import timedelta

    from dossier.api.idempotency import _fingerprint
    from dossier.api.models import IdempotencyKey
    from dossier.db.base import utcnow

    key = _key()
    body = b'{"name": "Late", "columns": []}'
    path = f"{API}/projects"
    sent = {**headers, **key, "Content-Type": "application/json"}
    async with sessionmaker() as session, session.begin():
        session.add(
            IdempotencyKey(
                account_id=account.account.id,
                key=key["Idempotency-Key"],
                fingerprint=_fingerprint({"method": "POST", "path": path, "query_string": b""}, body),
                created_at=utcnow() - timedelta(minutes=1),
            )
        )
    running = await client.post(path, content=body, headers=sent)
    assert running.status_code == 409
    async with sessionmaker() as session, session.begin():
        row = await session.get(IdempotencyKey, (account.account.id, key["Idempotency-Key"]))
        assert row is not None
        row.created_at = utcnow() - timedelta(minutes=11)
    freed = await client.post(path, content=body, headers=sent)
    assert freed.status_code == 201
