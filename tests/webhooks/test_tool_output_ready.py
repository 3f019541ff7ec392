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
from dossier.net import OutboundClient
from dossier.settings import Settings
from dossier.webhooks.models import WebhookEvent
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
