"""003's requests against a real `dossier serve` (its in-process worker runs the jobs), the callback to a
real receiver verified with 003's ``verify_signature``; and the signing secret rotated with the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.conftest import Receiver, ServerProcess, dossier_env, run_cli, start_server, stop_server
from tests.helpers import eventually
from tests.jobs.conftest import verify_signature


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_server(database_url, tmp_path, env_extra={"DOSSIER_WORKER_POLL_INTERVAL": "0.1"})
    try:
        yield process
    finally:
        stop_server(process)


async def test_jobs_against_a_running_server(
    server: ServerProcess, database_url: str, receiver: Receiver
) -> None:
    env = dossier_env(database_url)
    created = run_cli("accounts", "create", "kernel-user", "--json", env=env)
    assert created.returncode == 0, created.stderr
    account = json.loads(created.stdout)
    KERNEL_API_KEY = account["api_key"]  # the name 003's examples use
    headers = {"x-api-key": KERNEL_API_KEY, "Content-Type": "application/json"}

    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        # curl -X POST .../rest/v1/entity-resolution -d '{"legal_name": "Stripe", "webhook_url": ...}'
        response = await client.post(
            "/rest/v1/entity-resolution",
            headers=headers,
            content=json.dumps(
                {"legal_name": "Micron Technology", "webhook_url": receiver.url + "/webhooks/kernel"}
            ),
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]

        async def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = (
                await client.get(f"/rest/v1/entity-resolution/{job_id}", headers=headers)
            ).json()
            return body if body["status"] in ("completed", "failed") else None

        job = await eventually(finished, within=60, interval=0.1, what="job finished")
        [request] = await receiver.wait_for(1, timeout=30)
        assert job["status"] == "completed" and job["record"]["domain"] == "micron.com"
        assert verify_signature(
            request.body, request.headers["x-kernel-signature"], account["webhook_secret"]
        )
        assert json.loads(request.body)["data"] == job

        # Rotation: the next callback is signed with the new secret only.
        rotated = run_cli("accounts", "rotate-secret", "kernel-user", env=env)
        assert rotated.returncode == 0, rotated.stderr
        new_secret = rotated.stdout.strip()
        assert new_secret.startswith("whsec_") and new_secret != account["webhook_secret"]
        response = await client.post(
            "/rest/v1/firmographics",
            headers=headers,
            content=json.dumps({"kernel_id": job["record"]["kernel_id"], "webhook_url": receiver.url}),
        )
        assert response.status_code == 202, response.text
        requests = await receiver.wait_for(2, timeout=30)
        second = requests[1]
        assert second.headers["x-kernel-event"] == "firmographic-enrichment.completed"
        assert verify_signature(second.body, second.headers["x-kernel-signature"], new_secret)
        assert not verify_signature(
            second.body, second.headers["x-kernel-signature"], account["webhook_secret"]
        )
        # ... while the Standard Webhooks header carries both during the grace period (default 24 h), so a
        # receiver that verifies it switches secrets without losing a callback.
        standard = {k: second.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        assert len(standard["webhook-signature"].split()) == 2
        for secret in (new_secret, account["webhook_secret"]):
            StandardWebhook(secret).verify(second.body, standard)

        refused = await client.post(
            "/rest/v1/entity-resolution",
            headers=headers,
            content=json.dumps({"legal_name": "Stripe", "webhook_url": "https://192.168.1.10/hook"}),
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "invalid_input"

    unknown = run_cli("accounts", "rotate-secret", "nobody", env=env)
    assert unknown.returncode == 1 and "no account named 'nobody'" in unknown.stderr
