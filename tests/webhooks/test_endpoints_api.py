"""The webhook management API: endpoints, secrets, URL validation at creation, Slack connection."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.settings import Settings
from dossier.webhooks.models import WebhookSecret
from tests.conftest import Receiver

BASE = "/api/enterprise/webhooks"


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> Any:
    response = await client.post(BASE, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_shows_the_secret_once_then_list_get_update_delete(
    wclient: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    created = await _create(wclient, headers, url=receiver.url + "/hook", profile="kuration")
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["tool_output_ready"]
    assert created["active"] is True

    listed = (await wclient.get(BASE, headers=headers)).json()
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    got = (await wclient.get(f"{BASE}/{created['id']}", headers=headers)).json()
    assert "secret" not in got and got["url"] == receiver.url + "/hook"

    patched = await wclient.patch(
        f"{BASE}/{created['id']}", json={"description": "warehouse", "active": False}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "warehouse"
    assert patched.json()["active"] is False
    assert patched.json()["disabled_reason"] == "disabled by the account"

    enabled = (await wclient.post(f"{BASE}/{created['id']}/enable", headers=headers)).json()
    assert enabled["active"] is True and enabled["disabled_reason"] is None

    assert (await wclient.delete(f"{BASE}/{created['id']}", headers=headers)).status_code == 200
    missing = await wclient.get(f"{BASE}/{created['id']}", headers=headers)
    assert missing.status_code == 404
    assert "no webhook endpoint" in missing.json()["message"]


async def test_events_must_be_carried_by_the_profile(
    wclient: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    refused = await wclient.post(
        BASE,
        json={"url": receiver.url, "profile": "kernel", "events": ["tool_output_ready"]},
        headers=headers,
    )
    assert refused.status_code == 422
    assert "does not carry 'tool_output_ready'" in refused.json()["message"]
    unknown = await wclient.post(BASE, json={"url": receiver.url, "profile": "svix"}, headers=headers)
    assert unknown.status_code == 422 and "unknown webhook profile" in unknown.json()["message"]
    standard = await _create(wclient, headers, url=receiver.url, profile="standard")
    assert standard["events"] == ["*"]


async def test_private_and_metadata_urls_are_refused_at_creation(
    wclient: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for url, words in [
        ("http://10.1.2.3/hook", "plain http is refused"),
        ("https://10.1.2.3/hook", "a private address"),
        ("https://169.254.169.254/latest", "a cloud metadata address"),
        ("ftp://example.com/x", "only http and https"),
        ("https://user:pw@example.com/x", "credentials in the URL"),
    ]:
        response = await wclient.post(BASE, json={"url": url}, headers=headers)
        assert response.status_code == 422, (url, response.text)
        assert words in response.json()["message"], (url, response.json())


async def test_a_name_resolving_to_loopback_is_refused_when_not_allow_listed(
    app: Any, settings: Settings, dns: dict[str, list[str]], headers: dict[str, str]
) -> None:
    from dossier.net import OutboundClient

    strict = settings.model_copy(update={"outbound_allow": [], "outbound_allow_http": True})

    async def resolve(host: str) -> list[str]:
        return dns[host]

    dns["hooks.example.com"] = ["127.0.0.1"]
    app.state.http = OutboundClient.from_settings(strict, resolve=resolve)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as client:
        response = await client.post(BASE, json={"url": "http://hooks.example.com/x"}, headers=headers)
    assert response.status_code == 422, response.text
    assert "loopback" in response.json()["message"]
    await app.state.http.aclose()


async def test_rotation_keeps_the_old_secret_for_the_grace_period_or_revokes_it(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    created = await _create(wclient, headers, url=receiver.url, profile="standard")
    rotated = await wclient.post(
        f"{BASE}/{created['id']}/rotate-secret", json={"grace_hours": 2}, headers=headers
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != created["secret"]
    async with sessionmaker() as session:
        rows = list(await session.scalars(select(WebhookSecret).order_by(WebhookSecret.version)))
    assert [(r.value, r.expires_at is None) for r in rows] == [
        (created["secret"], False),
        (rotated.json()["secret"], True),
    ]
    revoked = await wclient.post(
        f"{BASE}/{created['id']}/rotate-secret", json={"grace_hours": 0}, headers=headers
    )
    async with sessionmaker() as session:
        rows = list(await session.scalars(select(WebhookSecret)))
    assert [r.value for r in rows] == [revoked.json()["secret"]]


async def test_slack_connection(
    wclient: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    path = "/api/enterprise/integrations/slack"
    assert (await wclient.get(path, headers=headers)).status_code == 404
    connected = await wclient.put(path, json={"url": receiver.url + "/services/T/B/X"}, headers=headers)
    assert connected.status_code == 200, connected.text
    assert connected.json()["notices"] == ["enrichment_finished", "endpoint_failing", "endpoint_disabled"]
    assert connected.json()["url_hint"].endswith("…")
    bad = await wclient.patch(path, json={"notices": ["weather"]}, headers=headers)
    assert bad.status_code == 422 and "unknown Slack notice" in bad.json()["message"]
    picked = await wclient.patch(path, json={"notices": ["endpoint_disabled"]}, headers=headers)
    assert picked.json()["notices"] == ["endpoint_disabled"]
    refused = await wclient.put(path, json={"url": "https://192.168.1.1/x"}, headers=headers)
    assert refused.status_code == 422
    assert (await wclient.delete(path, headers=headers)).status_code == 200


async def test_openapi_documents_the_webhook_routes(wclient: httpx.AsyncClient) -> None:
    spec = (await wclient.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in [
        BASE,
        BASE + "/{endpoint_id}",
        BASE + "/{endpoint_id}/rotate-secret",
        BASE + "/{endpoint_id}/test",
        BASE + "/{endpoint_id}/deliveries",
        BASE + "/{endpoint_id}/recover",
        BASE + "/{endpoint_id}/enable",
        BASE + "/deliveries/{delivery_id}",
        BASE + "/deliveries/{delivery_id}/redeliver",
        "/api/enterprise/integrations/slack",
    ]:
        assert path in paths, path
    assert spec["components"]["schemas"]["EndpointCreate"]["examples"]


async def test_out_of_range_values_are_422_not_500(
    wclient: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    """Values a schema fuzzer found that reached the database or the clock and failed there."""
    created = await _create(wclient, headers, url=receiver.url, profile="standard")
    endpoint = f"{BASE}/{created['id']}"
    for body in ({"grace_hours": 1e9}, {"grace_hours": 8761}):
        rotated = await wclient.post(f"{endpoint}/rotate-secret", json=body, headers=headers)
        assert rotated.status_code == 422, rotated.text
        assert "grace_hours" in rotated.text
    rotated = await wclient.post(f"{endpoint}/rotate-secret", json={"grace_hours": 8760}, headers=headers)
    assert rotated.status_code == 200  # a year is the longest grace period

    page = await wclient.get(f"{endpoint}/deliveries?offset=9223372036854775808", headers=headers)
    assert page.status_code == 422, page.text
    assert "offset" in page.text
    far = (await wclient.get(f"{endpoint}/deliveries?offset=1000", headers=headers)).json()
    assert far["data"] == [] and far["pagination"]["offset"] == 1000

    recover = await wclient.post(
        f"{endpoint}/recover", json={"since": "0001-01-01T00:00:00+14:00"}, headers=headers
    )
    assert recover.status_code == 422, recover.text
    assert "since" in recover.text and "out of range" in recover.text
    fine = await wclient.post(
        f"{endpoint}/recover", json={"since": "0001-01-02T00:00:00+14:00"}, headers=headers
    )
    assert fine.status_code == 202 and fine.json() == {"recovered": 0}
