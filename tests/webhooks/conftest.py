"""Fixtures of the webhook tests: compressed time, a DNS table, an outbound client, an in-process worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

import dossier.webhooks.tasks  # noqa: F401  (registers the dispatcher's task handlers)
from dossier.net import OutboundClient
from dossier.settings import Settings

# Every retry delay is multiplied by this: the default schedule's 5 s becomes 5 ms.
TIME_SCALE = 0.001


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_time_scale": TIME_SCALE,
            "worker_poll_interval": 0.05,
        }
    )


@pytest.fixture
def dns() -> dict[str, list[str]]:
    """Host name -> addresses the outbound client's resolver answers (tests change it to rebind names)."""
    return {}


@pytest.fixture
async def http(settings: Settings, dns: dict[str, list[str]]) -> AsyncIterator[OutboundClient]:
    async def resolve(host: str) -> Sequence[str]:
        if host not in dns:
            raise OSError(f"{host} is not in the test DNS table")
        return dns[host]

    client = OutboundClient.from_settings(settings, resolve=resolve)
    yield client
    await client.aclose()


@pytest.fixture
def api(app: Any, http: OutboundClient) -> Any:
    """The app, using the test outbound client (and its DNS table) to validate URLs."""
    app.state.http = http
    return app


@pytest.fixture
async def wclient(api: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as client:
        yield client
