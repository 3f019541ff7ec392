"""Metrics, probes and delivery logs against a real `dossier serve` and a real `dossier worker`, scraped
over HTTP; the database-read gauges and the readiness checks on both stores."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.app import create_app
from dossier.db.base import utcnow
from dossier.queue import store
from dossier.queue.service import enqueue
from dossier.settings import Settings
from tests.conftest import (
    DOSSIER_BIN,
    Receiver,
    ServerProcess,
    dossier_env,
    free_port,
    run_cli,
    start_server,
    stop_server,
)
from tests.helpers import eventually


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and label set."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_server(
        database_url,
        tmp_path,
        env_extra={
            "DOSSIER_WORKER_POLL_INTERVAL": "0.1",
            "DOSSIER_WEBHOOK_TIME_SCALE": "0.001",
            "DOSSIER_WORKER_HEARTBEAT_INTERVAL": "0.5",
            "DOSSIER_REGISTRY_BUILTIN": "false",
        },
    )
    try:
        yield process
    finally:
        stop_server(process)


async def test_a_running_server_is_watched_through_metrics_probes_and_logs(
    server: ServerProcess, database_url: str, receiver: Receiver
) -> None:
    created = run_cli("accounts", "create", "ops", "--json", env=dossier_env(database_url))
    assert created.returncode == 0, created.stderr
    headers = {"kur-api-key": json.loads(created.stdout)["api_key"]}
    # The receiver fails the first attempt and takes the retry.
    receiver.answers = [(500, {}, b"down"), (200, {}, b"ok")]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        endpoint = await client.post(
            "/api/enterprise/webhooks",
            headers=headers,
            json={"url": receiver.url + "/hook", "profile": "standard"},
        )
        assert endpoint.status_code == 201, endpoint.text
        endpoint_id = endpoint.json()["id"]
        sent = await client.post(f"/api/enterprise/webhooks/{endpoint_id}/test", headers=headers)
        assert sent.status_code == 202, sent.text
        delivery_id = sent.json()["id"]
        await receiver.wait_for(2, timeout=30)
        missing = uuid.uuid4().hex
        assert (await client.get(f"/api/enterprise/projects/{missing}", headers=headers)).status_code == 404
        assert (await client.get(f"/no/such/{missing}")).status_code == 404

        async def delivered() -> dict[Any, float] | None:
            response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            scrape = samples(response.text)
            done = value(scrape, "dossier_webhook_delivery_latency_seconds_count", profile="standard") == 1
            return scrape if done else None

        scrape = await eventually(delivered, within=30, interval=0.1, what="the delivery in the metrics")
        text = (await client.get("/metrics")).text
        ready = await client.get("/readyz")
        health = await client.get("/healthz")

    attempts = "dossier_webhook_attempts_total"
    assert value(scrape, attempts, profile="standard", outcome="Success") == 1
    assert value(scrape, attempts, profile="standard", outcome="Error Response") == 1
    assert value(scrape, "dossier_webhook_attempt_duration_seconds_count", profile="standard") == 2
    assert value(scrape, "dossier_webhook_endpoints", state="healthy") == 1
    assert value(scrape, "dossier_webhook_endpoints", state="disabled") == 0
    assert value(scrape, "dossier_task_runs_total", kind="webhooks.sweep", outcome="succeeded") >= 1
    assert value(scrape, "dossier_workers_alive") == 1
    requests = "dossier_http_requests_total"
    test_route = "/api/enterprise/webhooks/{endpoint_id}/test"
    assert value(scrape, requests, method="POST", route=test_route, status="202") == 1
    assert (
        value(scrape, requests, method="GET", route="/api/enterprise/projects/{project_id}", status="404")
        == 1
    )
    assert value(scrape, requests, method="GET", route="unmatched", status="404") == 1
    # Labels are templates and fixed sets: no id of a request or a delivery ever becomes a label value.
    assert missing not in text and delivery_id not in text and endpoint_id not in text
    assert "dossier_queue_oldest_due_task_age_seconds" in text

    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] and checks["migrations"]["ok"] and checks["worker"]["ok"]
    assert checks["migrations"]["current"] == checks["migrations"]["head"]

    # JSON logs: every line about the delivery carries its id.
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    attempt_lines = [line for line in lines if line.get("msg") == "webhook attempt"]
    assert attempt_lines, server.output()
    assert all(line["delivery_id"] == delivery_id for line in attempt_lines)
    assert [line["outcome"] for line in attempt_lines] == ["Error Response"]  # successes log at DEBUG


def test_a_worker_serves_its_own_metrics_and_probes(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "worker.log"
    env = dossier_env(database_url, DOSSIER_WORKER_HEARTBEAT_INTERVAL="0.5", DOSSIER_REGISTRY_BUILTIN="false")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [DOSSIER_BIN, "worker", "--metrics-port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> httpx.Response | None:
            try:
                response = httpx.get(f"{base}/readyz", timeout=2)
            except httpx.TransportError:
                return None
            return response if response.status_code == 200 else None

        import time

        deadline = time.monotonic() + 30
        answer = None
        while answer is None and time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()
            answer = ready()
            if answer is None:
                time.sleep(0.1)
        assert answer is not None, log_path.read_text()
        assert answer.json()["checks"]["worker"]["alive"] == 1
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        scrape = samples(httpx.get(f"{base}/metrics").text)
        assert value(scrape, "dossier_workers_alive") == 1
        assert ("dossier_queue_oldest_due_task_age_seconds", frozenset()) in scrape
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, log_path.read_text()


@pytest.fixture
async def api(settings: Settings) -> Any:
    application = create_app(settings.model_copy(update={"readyz_worker_max_age": 30.0}))
    async with application.router.lifespan_context(application):
        yield application


async def scrape_of(application: Any, path: str = "/metrics") -> httpx.Response:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as client:
        return await client.get(path)


async def test_queue_depth_and_backlog_age_are_read_from_the_database(api: Any) -> None:
    maker: async_sessionmaker[AsyncSession] = api.state.sessionmaker
    async with maker() as session, session.begin():
        enqueue(session, "ops.test-kind", {}, run_at=utcnow() - timedelta(seconds=120))
        enqueue(session, "ops.test-kind", {}, run_at=utcnow() - timedelta(seconds=5))
        enqueue(session, "ops.test-kind", {}, run_at=utcnow() + timedelta(hours=1))
    scrape = samples((await scrape_of(api)).text)
    assert value(scrape, "dossier_queue_tasks", kind="ops.test-kind", state="waiting") == 3
    assert 119 <= value(scrape, "dossier_queue_oldest_due_task_age_seconds") < 200
    [_claimed] = await store.claim_batch(maker, worker_id="w", limit=1, lease_seconds=60)
    scrape = samples((await scrape_of(api)).text)
    assert value(scrape, "dossier_queue_tasks", kind="ops.test-kind", state="running") == 1
    assert value(scrape, "dossier_queue_tasks", kind="ops.test-kind", state="waiting") == 2
    assert value(scrape, "dossier_queue_oldest_due_task_age_seconds") < 100


async def test_readiness_needs_a_recent_worker_heartbeat(api: Any) -> None:
    maker: async_sessionmaker[AsyncSession] = api.state.sessionmaker
    answer = await scrape_of(api, "/readyz")
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"]["ok"] and checks["migrations"]["ok"]
    assert checks["worker"] == {"ok": False, "alive": 0, "max_age_seconds": 30.0, "required": True}
    # A heartbeat older than the limit does not count; a fresh one does.
    await store.beat(maker, "old-worker", started_at=utcnow())
    async with maker() as session, session.begin():
        from sqlalchemy import update

        from dossier.queue.models import WorkerPresence

        await session.execute(update(WorkerPresence).values(last_seen_at=utcnow() - timedelta(seconds=31)))
    assert (await scrape_of(api, "/readyz")).status_code == 503
    await store.beat(maker, "new-worker", started_at=utcnow())
    answer = await scrape_of(api, "/readyz")
    assert answer.status_code == 200 and answer.json()["checks"]["worker"]["alive"] == 1
    await store.forget(maker, "new-worker")
    assert (await scrape_of(api, "/readyz")).status_code == 503


async def test_readiness_can_ignore_workers_and_reports_an_unreachable_database(
    settings: Settings, tmp_path: Path
) -> None:
    api_only = create_app(settings.model_copy(update={"readyz_require_worker": False}))
    async with api_only.router.lifespan_context(api_only):
        assert (await scrape_of(api_only, "/readyz")).status_code == 200
    gone = create_app(
        settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db"})
    )
    async with gone.router.lifespan_context(gone):
        answer = await scrape_of(gone, "/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["database"]["ok"] is False
        assert (await scrape_of(gone, "/healthz")).status_code == 200
        assert (await scrape_of(gone, "/metrics")).status_code == 200
