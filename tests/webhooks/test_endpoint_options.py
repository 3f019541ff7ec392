"""Endpoint options through a real worker and a real receiver: the kuration signature form (with the Flask
handlers of 000 and 002 pasted verbatim), the kuration project filter, static headers, the rate limit and the
kruncher API-key opt-in of the integration API."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify, request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.service import NewAccount
from dossier.net import OutboundClient
from dossier.settings import Settings
from dossier.webhooks import service
from dossier.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.conftest import Received, Receiver
from tests.helpers import eventually, running_worker

BASE = "/api/enterprise/webhooks"
PROJECT_A = "98e79cf8-87c9-49b0-9899-58edb6f31234"
PROJECT_B = "0b0b0b0b-87c9-49b0-9899-58edb6f31234"


def _cell(project_id: str = PROJECT_A, value: str = "Technology") -> dict[str, str]:
    return {
        "project_id": project_id,
        "row_id": "Jxl8KwcI6bAHH8wdQ123",
        "col_id": "466527f1-ef79-4cd6-bf03-c878681d1234",
        "value": value,
        "status": "success",
    }


# --- the handlers printed in the documents, verbatim but for the secret --------------------------------


def handler_000(WEBHOOK_SECRET: str) -> Flask:
    """000, "Webhook Handler Example" (it compares the header with the bare hex digest)."""
    app = Flask(__name__)

    @app.route("/webhook", methods=["POST"])
    def handle_webhook():  # type: ignore[no-untyped-def]
        signature = request.headers.get("X-Kuration-Signature")
        if not signature:
            return jsonify({"error": "Missing signature"}), 401
        payload = request.get_data()
        expected = hmac.new(WEBHOOK_SECRET.encode("utf-8"), payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return jsonify({"error": "Invalid signature"}), 401
        data = request.json
        # Process: data["event"], data["row_id"], data["value"], etc.
        assert data is not None
        return jsonify({"success": True}), 200

    return app


def verify_webhook_signature_000(payload: bytes, signature: str, secret: str) -> bool:
    """000, "Signature Verification", verbatim."""
    expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, expected)


def handler_002(WEBHOOK_SECRET: str) -> Flask:
    """002, "Flask receiver example", verbatim but for the secret and the print."""
    app = Flask(__name__)

    def normalize_signature(header_value: str) -> str:
        """Return hex digest portion from X-Kuration-Signature (sha256=<hex>)."""
        if not header_value:
            return ""
        value = header_value.strip()
        if value.startswith("sha256="):
            return value[len("sha256=") :]
        return value

    @app.route("/webhook", methods=["POST"])
    def handle_webhook():  # type: ignore[no-untyped-def]
        signature_header = request.headers.get("X-Kuration-Signature", "")
        signature = normalize_signature(signature_header)

        if not signature:
            return jsonify({"error": "Missing signature"}), 401

        raw = request.get_data()
        try:
            data = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return jsonify({"error": "Invalid JSON"}), 400

        canonical = json.dumps(data, separators=(",", ":")).encode("utf-8")
        expected = hmac.new(
            WEBHOOK_SECRET.encode("utf-8"),
            canonical,
            hashlib.sha256,
        ).hexdigest()

        if not hmac.compare_digest(signature, expected):
            return jsonify({"error": "Invalid signature"}), 401

        # Process data here; respond quickly — see below.

        return jsonify({"success": True}), 200

    return app


def _replay(app: Flask, received: Received) -> int:
    """The delivery as the receiver got it, bytes and headers, handed to a Flask handler."""
    response = app.test_client().post("/webhook", data=received.body, headers=received.headers)
    return response.status_code


# --- helpers ------------------------------------------------------------------------------------------


async def _endpoint(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> Any:
    response = await client.post(BASE, json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def _emit(
    maker: async_sessionmaker[AsyncSession], account_id: str, *cells: dict[str, Any]
) -> list[str]:
    async with maker() as session, session.begin():
        return await service.emit_events(session, account_id, "tool_output_ready", list(cells))


async def _all_finished(maker: async_sessionmaker[AsyncSession], ids: list[str]) -> bool:
    async with maker() as session:
        statuses = await session.scalars(select(WebhookDelivery.status).where(WebhookDelivery.id.in_(ids)))
        found = list(statuses)
        return len(found) == len(ids) and all(s != "pending" for s in found)


# --- tests --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["sha256", "hex"])
async def test_both_documents_handlers_accept_the_matching_signature_form(
    form: str,
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    body: dict[str, Any] = {"url": receiver.url + "/webhook", "profile": "kuration"}
    if form == "hex":
        body["kuration_signature"] = "hex"
    endpoint = await _endpoint(wclient, headers, **body)
    assert endpoint["options"]["kuration_signature"] == form
    await _emit(sessionmaker, account.account.id, _cell())
    async with running_worker(settings, sessionmaker, http):
        [received] = await receiver.wait_for(1)
    secret = endpoint["secret"]
    signature = received.headers["x-kuration-signature"]
    # 002's handler strips an optional prefix: it accepts both forms.
    assert _replay(handler_002(secret), received) == 200
    if form == "hex":
        assert not signature.startswith("sha256=")
        assert _replay(handler_000(secret), received) == 200
        assert verify_webhook_signature_000(received.body, signature, secret)
    else:
        assert signature.startswith("sha256=")
        # 000's handler compares with the bare digest: it refuses the form 002 specifies.
        assert _replay(handler_000(secret), received) == 401


async def test_signature_form_is_validated_and_only_for_kuration(
    wclient: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver
) -> None:
    bad = await wclient.post(
        BASE, json={"url": receiver.url, "profile": "kuration", "kuration_signature": "md5"}, headers=headers
    )
    assert bad.status_code == 422 and "sha256, hex" in bad.text
    other = await wclient.post(
        BASE, json={"url": receiver.url, "profile": "standard", "kuration_signature": "hex"}, headers=headers
    )
    assert other.status_code == 422 and "kuration" in other.text
    endpoint = await _endpoint(wclient, headers, url=receiver.url, profile="kuration")
    changed = await wclient.patch(
        f"{BASE}/{endpoint['id']}", json={"kuration_signature": "hex"}, headers=headers
    )
    assert changed.status_code == 200 and changed.json()["options"]["kuration_signature"] == "hex"


async def test_project_filter_delivers_only_those_projects(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    endpoint = await _endpoint(
        wclient, headers, url=receiver.url + "/only-a", profile="kuration", kuration_projects=[PROJECT_A]
    )
    assert endpoint["options"]["kuration_projects"] == [PROJECT_A]
    everything = await _endpoint(wclient, headers, url=receiver.url + "/all", profile="kuration")
    ids = await _emit(sessionmaker, account.account.id, _cell(PROJECT_A, "a"), _cell(PROJECT_B, "b"))
    assert len(ids) == 3  # two to the unfiltered endpoint, one to the filtered one
    async with running_worker(settings, sessionmaker, http):
        await receiver.wait_for(3)
        await eventually(lambda: _all_finished(sessionmaker, ids), what="deliveries recorded")
    got = sorted((r.path, json.loads(r.body)["project_id"]) for r in receiver.requests)
    assert got == sorted([("/all", PROJECT_A), ("/all", PROJECT_B), ("/only-a", PROJECT_A)])
    assert everything["options"]["kuration_projects"] is None
    cleared = await wclient.patch(
        f"{BASE}/{endpoint['id']}", json={"kuration_projects": None}, headers=headers
    )
    assert cleared.json()["options"]["kuration_projects"] is None
    empty = await wclient.patch(f"{BASE}/{endpoint['id']}", json={"kuration_projects": []}, headers=headers)
    assert empty.status_code == 422


async def test_static_headers_are_sent_never_override_signatures_and_are_redacted(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    for reserved in ("X-Kuration-Signature", "webhook-id", "Webhook-Signature", "Content-Type", "Host"):
        refused = await wclient.post(
            BASE,
            json={"url": receiver.url, "profile": "kuration", "headers": {reserved: "x"}},
            headers=headers,
        )
        assert refused.status_code == 422, reserved
    bad_value = await wclient.post(
        BASE, json={"url": receiver.url, "headers": {"X-Token": "a\r\nb"}}, headers=headers
    )
    assert bad_value.status_code == 422
    endpoint = await _endpoint(
        wclient,
        headers,
        url=receiver.url,
        profile="kuration",
        headers={"Authorization": "Bearer s3cret", "X-Team": "data"},
    )
    assert endpoint["headers"] == ["Authorization", "X-Team"]
    [delivery_id] = await _emit(sessionmaker, account.account.id, _cell())
    async with running_worker(settings, sessionmaker, http):
        [received] = await receiver.wait_for(1)
        await eventually(lambda: _all_finished(sessionmaker, [delivery_id]), what="delivery recorded")
    assert received.headers["authorization"] == "Bearer s3cret" and received.headers["x-team"] == "data"
    assert received.headers["x-kuration-signature"].startswith("sha256=")
    detail = (await wclient.get(f"{BASE}/deliveries/{delivery_id}", headers=headers)).json()
    sent = detail["history"][0]["request_headers"]
    assert sent["Authorization"] == "[redacted]" and sent["X-Team"] == "[redacted]"
    assert "s3cret" not in json.dumps(detail)
    removed = await wclient.patch(f"{BASE}/{endpoint['id']}", json={"headers": None}, headers=headers)
    assert removed.json()["headers"] == []


async def test_rate_limit_spaces_attempts_across_two_workers(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    rate = 10
    await _endpoint(wclient, headers, url=receiver.url, profile="kuration", rate_limit=rate)
    ids = await _emit(sessionmaker, account.account.id, *[_cell(value=str(i)) for i in range(25)])
    async with running_worker(settings, sessionmaker, http), running_worker(settings, sessionmaker, http):
        await eventually(lambda: _all_finished(sessionmaker, ids), what="every delivery made")
    assert len(receiver.requests) == 25
    async with sessionmaker() as session:
        starts = sorted(a.started_at for a in await session.scalars(select(WebhookAttempt)))
    assert len(starts) == 25
    # At most the rate (and a tenth of a second's burst) in any second, whichever worker made them.
    for i, start in enumerate(starts):
        within = [t for t in starts[i:] if (t - start).total_seconds() < 1.0]
        assert len(within) <= rate + 2, [t.isoformat() for t in within]
    assert (starts[-1] - starts[0]).total_seconds() >= 2.0
    async with sessionmaker() as session:
        outcomes = set(await session.scalars(select(WebhookAttempt.outcome)))
    assert outcomes == {"Success"}


async def test_integration_api_opts_in_to_the_api_key_header(
    wclient: httpx.AsyncClient,
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    auth = {"Authorization": account.api_key}
    hook = "/api/integration/webhook"
    made = await wclient.post(
        hook, json={"url": receiver.url + "/webhooks/kruncher", "changedStatus": True}, headers=auth
    )
    assert made.status_code == 200 and made.json()["data"]["sendsApiKey"] is False
    opted = await wclient.put(
        hook,
        json={"url": receiver.url + "/webhooks/kruncher", "changedStatus": True, "sendApiKey": True},
        headers=auth,
    )
    assert opted.status_code == 200 and opted.json()["data"]["sendsApiKey"] is True
    company = await wclient.post("/api/company", json={"name": "Tesla Motors"}, headers=auth)
    project_id = company.json()["data"]["id"]
    await wclient.put(
        "/api/company/status", json={"projectId": project_id, "status": "screening"}, headers=auth
    )
    async with running_worker(settings, sessionmaker, http):
        [received] = await receiver.wait_for(1)
    # 001's check: `req.headers['x-kruncher-api-key'] !== process.env.KRUNCHER_API_KEY` -> 401.
    assert received.headers["x-kruncher-api-key"] == account.api_key
    history = await wclient.get(hook + "/history", headers=auth)
    assert account.api_key not in history.text
    # Omitted keeps the choice; false stops it.
    kept = await wclient.put(hook, json={"url": receiver.url, "changedStatus": True}, headers=auth)
    assert kept.json()["data"]["sendsApiKey"] is True
    stopped = await wclient.put(
        hook, json={"url": receiver.url, "changedStatus": True, "sendApiKey": False}, headers=auth
    )
    assert stopped.json()["data"]["sendsApiKey"] is False
