"""Optional traces: with tracing configured, a span for each request, each task and each delivery attempt
(carrying the delivery's stable id); without it, none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dossier import tracing
from dossier.settings import Settings
from tests.conftest import Receiver
from tests.helpers import running_worker

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure_tracing(provider=provider)
    try:
        yield exporter
    finally:
        tracing.disable_tracing()


async def test_requests_tasks_and_delivery_attempts_are_traced(
    spans: InMemorySpanExporter, app: Any, settings: Settings, headers: dict[str, str], receiver: Receiver
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as client:
        endpoint = await client.post(
            "/api/enterprise/webhooks",
            headers=headers,
            json={"url": receiver.url + "/s", "profile": "standard"},
        )
        sent = await client.post(f"/api/enterprise/webhooks/{endpoint.json()['id']}/test", headers=headers)
    assert sent.status_code == 202
    async with running_worker(settings, app.state.sessionmaker, http=app.state.http):
        await receiver.wait_for(1)
    finished = {span.name: span for span in spans.get_finished_spans()}
    request = finished["POST /api/enterprise/webhooks/{endpoint_id}/test"]
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 202
    attempt = finished["webhook attempt"]
    assert attempt.attributes is not None
    assert attempt.attributes["dossier.delivery.id"] == sent.json()["id"]
    assert attempt.attributes["dossier.webhook.outcome"] == "Success"
    sweep = finished["task webhooks.sweep"]
    assert sweep.attributes is not None and sweep.attributes["dossier.task.outcome"] == "succeeded"
    # The attempt is made inside its sweep task.
    assert attempt.parent is not None and attempt.parent.span_id == sweep.context.span_id


def test_tracing_is_off_unless_configured() -> None:
    assert not tracing.enabled()
    with tracing.span("nothing") as span:
        span.set_attribute("a", 1)  # a stand-in that ignores it
