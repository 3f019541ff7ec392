"""The dashboard's forms over HTTP, on each store: what they change through the services, and the message a
refused one comes back with (the browser test walks the main path; these cover the rest of each screen)."""

from __future__ import annotations

import html
import re

import httpx

from dossier.accounts import service as accounts
from tests.conftest import Receiver
from tests.web.helpers import sign_in

BACK = {"referer": "http://dossier.test/projects"}


async def _flash(client: httpx.AsyncClient, answer: httpx.Response) -> str:
    """The flash message a redirect carries, as the next page shows it."""
    assert answer.status_code == 303, answer.text
    page = await client.get(answer.headers["location"])
    match = re.search(r'<div class="flash \w+" role="\w+">(.*?)</div>', page.text, re.S)
    assert match, page.text[:500]
    return html.unescape(match.group(1).strip())


async def test_an_endpoint_from_creation_to_deletion(
    client: httpx.AsyncClient, account: accounts.NewAccount, receiver: Receiver
) -> None:
    token = await sign_in(client, account.api_key)
    refused = await client.post(
        "/settings/integration/webhooks",
        data={"url": "http://10.1.2.3/hook", "profile": "standard", "csrf_token": token},
        headers={"referer": "http://dossier.test/settings/integration?tab=webhooks"},
    )
    assert "refused" in await _flash(client, refused)
    created = await client.post(
        "/settings/integration/webhooks",
        data={"url": receiver.url + "/a", "profile": "kuration", "events_text": "", "csrf_token": token},
    )
    assert created.status_code == 201 and "shown only this once" in created.text
    endpoint_id = re.search(r"/settings/integration/webhooks/([0-9a-f-]{36})", created.text).group(1)  # type: ignore[union-attr]
    base = f"/settings/integration/webhooks/{endpoint_id}"
    page = (await client.get(base)).text
    assert "tool_output_ready" in page and "No deliveries yet" in page

    wrong_event = await client.post(
        base + "/edit",
        data={"url": receiver.url + "/b", "events_text": "changedStatus", "csrf_token": token},
        headers=BACK,
    )
    assert "does not carry 'changedStatus'" in await _flash(client, wrong_event)
    saved = await client.post(
        base + "/edit",
        data={
            "url": receiver.url + "/b",
            "events_text": "tool_output_ready",
            "description": "CRM",
            "csrf_token": token,
        },
    )
    assert await _flash(client, saved) == "Endpoint saved."
    page = (await client.get(base)).text
    assert receiver.url + "/b" in page and "CRM" in page

    assert await _flash(client, await client.post(base + "/disable", data={"csrf_token": token})) == (
        "Endpoint disabled."
    )
    assert "Disabled" in (await client.get(base)).text
    blocked = await client.post(base + "/test", data={"csrf_token": token}, headers=BACK)
    assert "enable it first" in await _flash(client, blocked)
    await client.post(base + "/enable", data={"csrf_token": token})
    bad_time = await client.post(
        base + "/recover", data={"since": "yesterday", "csrf_token": token}, headers=BACK
    )
    assert "give the time" in await _flash(client, bad_time)
    recovered = await client.post(base + "/recover", data={"since": "2026-01-01T00:00", "csrf_token": token})
    assert await _flash(client, recovered) == "0 failed deliveries queued again."
    queued = await client.post(base + "/test", data={"csrf_token": token})
    assert "Test event tool_output_ready queued" in await _flash(client, queued)
    page = (await client.get(base + "?status=pending")).text
    assert page.count('href="/settings/integration/deliveries/msg_') == 1
    assert "match these filters" in (await client.get(base + "?status=failed&since=1h")).text
    assert (await client.get(base + "?status=bogus")).status_code == 422

    deleted = await client.post(base + "/delete", data={"csrf_token": token})
    assert await _flash(client, deleted) == "Endpoint deleted."
    assert (await client.get(base)).status_code == 404
    assert "No endpoints yet" in (await client.get("/settings/integration?tab=webhooks")).text


async def test_slack_connect_choose_notices_disconnect(
    client: httpx.AsyncClient, account: accounts.NewAccount, receiver: Receiver
) -> None:
    token = await sign_in(client, account.api_key)
    assert "Connect Slack" in (await client.get("/settings/integration?tab=slack")).text
    connected = await client.post(
        "/settings/integration/slack",
        data={"url": receiver.url + "/slack", "notices": ["endpoint_failing"], "csrf_token": token},
    )
    assert await _flash(client, connected) == "Slack connected."
    page = (await client.get("/settings/integration?tab=slack")).text
    assert 'value="endpoint_failing" checked' in page and 'value="enrichment_finished" >' in page
    chosen = await client.post(
        "/settings/integration/slack/notices",
        data={"notices": ["enrichment_finished", "endpoint_disabled"], "csrf_token": token},
    )
    assert await _flash(client, chosen) == "Slack notices saved."
    page = (await client.get("/settings/integration?tab=slack")).text
    assert 'value="enrichment_finished" checked' in page and 'value="endpoint_failing" >' in page
    tested = await client.post("/settings/integration/slack/test", data={"csrf_token": token})
    assert await _flash(client, tested) == "Test message queued for Slack."
    gone = await client.post("/settings/integration/slack/disconnect", data={"csrf_token": token})
    assert await _flash(client, gone) == "Slack disconnected."
    again = await client.post("/settings/integration/slack/test", data={"csrf_token": token})
    assert again.status_code == 404 and "Slack is not connected" in again.text


async def test_tool_column_forms_refuse_bad_config_and_write_nothing(
    client: httpx.AsyncClient, account: accounts.NewAccount
) -> None:
    token = await sign_in(client, account.api_key)
    created = await client.post(
        "/projects", data={"name": "P", "columns": "name*, website", "csrf_token": token}
    )
    project = created.headers["location"]
    form = (await client.get(project + "/columns/new?tool=entity_resolution")).text
    assert 'name="config.threshold"' in form and 'type="number"' in form and 'max="1.0"' in form
    assert (await client.get(project + "/columns/new?tool=nope")).status_code == 404
    # The "name" input reads the "name" column, preselected by its name.
    name_column = re.search(r'name="input.name".*?<option value="([0-9a-f-]{36})" selected>name<', form, re.S)
    assert name_column is not None
    reads = name_column.group(1)
    too_high = await client.post(
        project + "/columns",
        data={
            "tool": "entity_resolution",
            "name": "er",
            "input.name": reads,
            "config.threshold": "2",
            "csrf_token": token,
        },
        headers=BACK,
    )
    assert "threshold" in await _flash(client, too_high)
    not_json = await client.post(
        project + "/columns",
        data={
            "tool": "http",
            "name": "h",
            "config.url": "http://127.0.0.1/x",
            "config.headers": "{",
            "csrf_token": token,
        },
        headers=BACK,
    )
    assert await _flash(client, not_json) == "Headers must be JSON"
    table = (await client.get(project)).text
    assert "tooltag" not in table  # no tool column was added
    added = await client.post(
        project + "/columns",
        data={
            "tool": "entity_resolution",
            "name": "er",
            "input.name": reads,
            "config.threshold": "0.9",
            "csrf_token": token,
        },
    )
    assert "added" in await _flash(client, added)


async def test_jobs_and_pipeline_screens_refuse_unknown_filters_and_statuses(
    client: httpx.AsyncClient, account: accounts.NewAccount
) -> None:
    token = await sign_in(client, account.api_key)
    assert (await client.get("/jobs?kind=weather")).status_code == 422
    assert "No jobs" in (await client.get("/jobs?status=failed")).text
    assert (await client.get("/jobs/nope")).status_code == 404
    tracked = await client.post(
        "/pipeline/companies", data={"name": "Hooli", "status": "screening", "csrf_token": token}
    )
    assert await _flash(client, tracked) == "Now tracking “Hooli”."
    company_id = re.search(
        r"/pipeline/companies/([0-9a-f-]{36})", (await client.get("/pipeline")).text
    ).group(1)  # type: ignore[union-attr]
    refused = await client.post(
        f"/pipeline/companies/{company_id}/status",
        data={"status": "acquired", "csrf_token": token},
        headers=BACK,
    )
    assert "unknown status 'acquired'" in await _flash(client, refused)
    moved = await client.post(
        f"/pipeline/companies/{company_id}/status", data={"status": "diligence", "csrf_token": token}
    )
    assert await _flash(client, moved) == "“Hooli” moved to diligence."
