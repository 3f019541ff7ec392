"""A tool cell finishing -> `tool_output_ready` at the receiver (002); Slack told when a project is done."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import dossier.enrichment.tasks  # noqa: F401  (registers the tool-cell handlers)
from dossier.accounts.service import NewAccount
from dossier.enrichment import service as enrichment
from dossier.enrichment.protocol import ToolOutcome
from dossier.net import OutboundClient
from dossier.projects import service as projects
from dossier.projects.models import Cell, Column
from dossier.projects.tool_engine import ToolSpec
from dossier.settings import Settings
from dossier.webhooks import service as webhooks
from dossier.webhooks.models import WebhookDelivery, WebhookEvent
from tests.conftest import Receiver
from tests.helpers import eventually, running_worker

PROJECTS = "/api/enterprise/projects"


def canonical_signature(raw: bytes, secret: str) -> str:
    canonical = json.dumps(json.loads(raw), separators=(",", ":")).encode("utf-8")
    return "sha256=" + hmac.new(secret.encode("utf-8"), canonical, hashlib.sha256).hexdigest()


async def _project(client: httpx.AsyncClient, headers: dict[str, str]) -> Any:
    response = await client.post(
        PROJECTS,
        json={
            "name": "Enriched",
            "columns": [
                {"name": "website"},
                {"name": "domain", "tool": {"type": "domain", "inputs": {"website": "website"}}},
            ],
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_finished_tool_cell_is_delivered_as_tool_output_ready(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    endpoint = (
        await wclient.post(
            "/api/enterprise/webhooks",
            json={"url": receiver.url + "/webhook", "profile": "kuration"},
            headers=headers,
        )
    ).json()
    await wclient.put(
        "/api/enterprise/integrations/slack",
        json={"url": receiver.url + "/slack", "notices": ["enrichment_finished"]},
        headers=headers,
    )
    project = await _project(wclient, headers)
    col_id = project["columns"][1]["col_id"]
    rows = []
    for site in ("https://www.acme.co.uk/x", "https://example.org"):
        answer = await wclient.post(
            f"{PROJECTS}/{project['id']}/rows", json={"company": {"website": site}}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        rows.append(answer.json()["row_id"])

    async with running_worker(settings, sessionmaker, http):

        async def both() -> list[Any]:
            hooks = [r for r in receiver.requests if r.path == "/webhook"]
            slack = [r for r in receiver.requests if r.path == "/slack"]
            return hooks if len(hooks) == 2 and slack else []

        hooks = await eventually(both, what="two tool_output_ready deliveries and a Slack notice")

    received = {}
    for request in hooks:
        assert request.headers["x-kuration-signature"] == canonical_signature(
            request.body, endpoint["secret"]
        )
        payload = json.loads(request.body)
        received[payload["row_id"]] = payload
    assert set(received) == set(rows)
    for row_id in rows:
        payload = received[row_id]
        assert list(payload) == ["event", "project_id", "row_id", "col_id", "value", "status", "timestamp"]
        assert payload["event"] == "tool_output_ready"
        assert payload["project_id"] == project["id"] and payload["col_id"] == col_id
        assert isinstance(payload["value"], str) and payload["status"] in ("success", "error", "skipped")
        detail = (await wclient.get(f"{PROJECTS}/{project['id']}/rows/{row_id}", headers=headers)).json()
        cell = detail["company"]["domain"]
        expected = (
            cell["value"]
            if isinstance(cell["value"], str)
            else json.dumps(cell["value"], separators=(",", ":"))
        )
        assert payload["value"] == (expected if cell["value"] is not None else "")
    slack = [json.loads(r.body) for r in receiver.requests if r.path == "/slack"]
    assert any("Enrichment of project 'Enriched' finished" in m["text"] for m in slack)


async def test_no_event_is_written_when_no_endpoint_subscribes(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    project = await _project(wclient, headers)
    row = await wclient.post(
        f"{PROJECTS}/{project['id']}/rows", json={"company": {"website": "https://acme.com"}}, headers=headers
    )
    row_id = row.json()["row_id"]

    async def done() -> bool:
        detail = (await wclient.get(f"{PROJECTS}/{project['id']}/rows/{row_id}", headers=headers)).json()
        return detail["company"]["domain"]["is_loading"] is False

    async with running_worker(settings, sessionmaker, http):
        await eventually(done, what="cells finished")
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


async def _one_row_with_endpoint(
    sessionmaker: async_sessionmaker[AsyncSession],
    account: NewAccount,
    http: OutboundClient,
    receiver: Receiver,
) -> tuple[Column, int, str]:
    """A project (website -> domain) with one row, a kuration endpoint; the domain cell's row pk and token."""
    async with sessionmaker() as session, session.begin():
        await webhooks.create_endpoint(
            session,
            account.account.id,
            url=receiver.url + "/hook",
            profile="kuration",
            events=None,
            http=http,
        )
        project = await projects.create_project(
            session,
            account.account,
            "P",
            [
                projects.ColumnSpec("website"),
                projects.ColumnSpec("domain", tool=ToolSpec("domain", {"website": "website"}, {})),
            ],
        )
        row = await projects.add_row(
            session,
            account.account,
            project.id,
            {"website": "https://acme.com"},
            max_chars=1000,
            chunk_rows=100,
        )
        column = await session.scalar(
            select(Column).where(Column.project_id == project.id, Column.name == "domain")
        )
        assert column is not None
        cell = await session.get(Cell, (row.pk, column.id))
        assert cell is not None and cell.run_token is not None
        return column, row.pk, cell.run_token


async def _written(sessionmaker: async_sessionmaker[AsyncSession], column: Column) -> tuple[Any, int, int]:
    async with sessionmaker() as session:
        cell = await session.scalar(select(Cell).where(Cell.column_id == column.id))
        events = await session.scalar(select(func.count()).select_from(WebhookEvent))
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        assert cell is not None
        return (cell.status, cell.value), int(events or 0), int(deliveries or 0)


async def test_a_cell_its_event_and_its_delivery_commit_together_and_a_stale_run_writes_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
    account: NewAccount,
    http: OutboundClient,
    receiver: Receiver,
) -> None:
    column, row_pk, first = await _one_row_with_endpoint(sessionmaker, account, http, receiver)
    async with sessionmaker() as session, session.begin():
        _, work = await enrichment.claim_cells(session, column.id, [row_pk], first)
    assert [w.values for w in work] == [{"website": "https://acme.com"}]
    outcome = [(row_pk, ToolOutcome.success("acme.com"))]

    # Written in a transaction that rolls back: no value, no event, no delivery.
    async with sessionmaker() as session:
        assert await enrichment.finish_cells(session, column, first, outcome, chunk_rows=100) == [row_pk]
        await session.rollback()
    assert await _written(sessionmaker, column) == (("running", None), 0, 0)

    # The cell is run again (a new token) while the first run is still out: the first run's outcome is
    # stale and changes nothing, the second one's lands with exactly one event and one delivery.
    async with sessionmaker() as session, session.begin():
        by_id = await enrichment.project_columns_by_id(session, column.project_id)
        assert await enrichment.schedule_cells(session, column, [row_pk], by_id, chunk_rows=100)
        second = await session.scalar(select(Cell.run_token).where(Cell.column_id == column.id))
    assert second is not None and second != first
    async with sessionmaker() as session, session.begin():
        assert (await enrichment.claim_cells(session, column.id, [row_pk], first))[1] == []
        assert await enrichment.finish_cells(session, column, first, outcome, chunk_rows=100) == []
    assert await _written(sessionmaker, column) == (("pending", None), 0, 0)
    async with sessionmaker() as session, session.begin():
        _, work = await enrichment.claim_cells(session, column.id, [row_pk], second)
        assert [w.row_pk for w in work] == [row_pk]
        written = await enrichment.finish_cells(
            session, column, second, [(row_pk, ToolOutcome.success("acme.com"))], chunk_rows=100
        )
    assert written == [row_pk]
    assert await _written(sessionmaker, column) == (("success", "acme.com"), 1, 1)
