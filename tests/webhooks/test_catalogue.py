"""The event catalogue: served by the API, generated into docs/webhooks.md, schemas that hold for what the
profiles render (every payload delivered in the suite is also checked, by the hook in tests/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import jsonschema
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.service import NewAccount
from dossier.webhooks import catalogue, service
from dossier.webhooks.models import WebhookDelivery
from dossier.webhooks.profiles import PROFILES
from tests.conftest import REPO, _catalogue_mismatches

BASE = "/api/enterprise/webhooks"


def test_docs_show_the_generated_catalogue() -> None:
    text = (REPO / "docs" / "webhooks.md").read_text()
    assert catalogue.replace_section(text) == text, (
        "docs/webhooks.md is out of date: run `python -m dossier.webhooks.catalogue docs/webhooks.md`"
    )


async def test_api_lists_every_event_with_schemas_and_valid_examples(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(f"{BASE}/event-types", headers=headers)
    assert response.status_code == 200, response.text
    served: list[dict[str, Any]] = response.json()
    assert served == catalogue.catalogue()
    by_type = {entry["type"]: entry for entry in served}
    # Every event a profile names is in it, in that profile and in standard (which carries any event).
    for profile in PROFILES.values():
        for name in profile.events or ():
            assert profile.name in [p["profile"] for p in by_type[name]["profiles"]]
            assert "standard" in [p["profile"] for p in by_type[name]["profiles"]]
    assert {"webhook.test", "webhook_endpoint.disabled"} <= set(by_type)
    for entry in served:
        for rendered in entry["profiles"]:
            jsonschema.Draft202012Validator.check_schema(rendered["schema"])
            jsonschema.validate(rendered["example"], rendered["schema"])
    kuration = next(p for p in by_type["tool_output_ready"]["profiles"] if p["profile"] == "kuration")
    # 002's field order, and the types receivers rely on (value is a string).
    assert list(kuration["schema"]["properties"]) == [
        "event",
        "project_id",
        "row_id",
        "col_id",
        "value",
        "status",
        "timestamp",
    ]
    assert kuration["schema"]["properties"]["value"]["type"] == "string"
    assert kuration["schema"]["additionalProperties"] is False
    unauthenticated = await client.get(f"{BASE}/event-types")
    assert unauthenticated.status_code == 401


async def test_every_profiles_test_event_matches_its_schema() -> None:
    now = datetime(2026, 6, 8, tzinfo=UTC)
    for profile in PROFILES.values():
        event_type, data = profile.test_event(now)
        payload = profile.envelope(event_type, data, occurred_at=now)
        schema = catalogue.schema_for(profile.name, event_type)
        assert schema is not None, (profile.name, event_type)
        jsonschema.validate(payload, schema)


async def test_the_suite_wide_check_catches_a_payload_off_its_schema(
    account: NewAccount, sessionmaker: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    async with sessionmaker() as session, session.begin():
        await service.create_endpoint(
            session,
            account.account.id,
            url="http://127.0.0.1:9/x",
            profile="kuration",
            events=None,
            http=None,  # type: ignore[arg-type]
            listener="catalogue-check",
        )
        cell = {"project_id": "p", "row_id": "r", "col_id": "c", "value": "v", "status": "success"}
        [delivery_id] = await service.emit_event(session, account.account.id, "tool_output_ready", cell)
    assert await _catalogue_mismatches(database_url) == []
    async with sessionmaker() as session, session.begin():
        delivery = await session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        good = dict(delivery.payload)
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(payload={**good, "value": 3})
        )
    [problem] = await _catalogue_mismatches(database_url)
    assert "kuration tool_output_ready" in problem and "3 is not of type 'string'" in problem
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(payload=good)
        )
