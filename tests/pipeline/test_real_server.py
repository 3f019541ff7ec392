"""001's requests against a real `dossier serve` (its in-process worker runs the analysis), with the
webhook configured through the integration API and delivered to a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Receiver, ServerProcess, start_server, stop_server
from tests.helpers import eventually

KEY = re.compile(r"dsk_[A-Za-z0-9_-]{40,}")


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    process = start_server(database_url, tmp_path, env_extra={"DOSSIER_WORKER_POLL_INTERVAL": "0.1"})
    try:
        match = KEY.search(process.output())
        assert match, process.output()
        yield process, match.group(0)
    finally:
        stop_server(process)


async def test_pipeline_against_a_running_server(
    server: tuple[ServerProcess, str], receiver: Receiver
) -> None:
    process, API_KEY = server
    headers = {"Authorization": f"{API_KEY}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=process.base_url + "/api", timeout=10) as client:
        # 001's create_webhook(), as written but for the client library.
        payload = {
            "url": receiver.url + "/webhooks/kruncher",
            "analysisCompleted": True,
            "changedStatus": True,
        }
        response = await client.post("/integration/webhook", json=payload, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["isActive"] is True

        company = (
            await client.post("/company", json={"name": "Microsoft Corporation"}, headers=headers)
        ).json()
        project_id = company["data"]["id"]
        moved = await client.put(
            "/company/status", json={"projectId": project_id, "status": "diligence"}, headers=headers
        )
        assert moved.status_code == 200
        started = await client.post("/analysis", json={"projectId": project_id}, headers=headers)
        assert started.status_code == 202
        analysis_id = started.json()["data"]["id"]

        requests = await receiver.wait_for(2, timeout=60)
        events = {json.loads(r.body)["event"]: json.loads(r.body)["data"] for r in requests}
        assert events["changedStatus"]["newStatus"] == "diligence"
        assert events["analysisCompleted"]["analysisId"] == analysis_id
        assert events["analysisCompleted"]["kruncherEntityCompanyId"] is not None

        # The handler of 001's "Complete Event Handler": fetch project and analysis details.
        project = (await client.get(f"/company/retrieve?projectId={project_id}", headers=headers)).json()
        analysis = (await client.get(f"/analysis?analysisId={analysis_id}", headers=headers)).json()
        assert project["data"]["name"] == "Microsoft Corporation" and project["data"]["status"] == "diligence"
        assert analysis["data"]["report"]["profile"]["legalName"] == "Microsoft"

        async def two_successes() -> dict[str, Any] | None:
            body: dict[str, Any] = (
                await client.get("/integration/webhook/history?limit=20", headers=headers)
            ).json()
            return body if [d["status"] for d in body["data"]] == ["Success", "Success"] else None

        history = await eventually(two_successes, within=30, interval=0.1, what="history")
        assert history["pagination"] == {"total": 2, "limit": 20, "offset": 0}
        too_many = await client.get("/integration/webhook/history?limit=500", headers=headers)
        assert too_many.status_code == 422 and too_many.json()["success"] is False
