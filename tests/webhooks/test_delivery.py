"""The dispatcher end to end: a real worker, a real receiver on 127.0.0.1, signatures checked by code we did
not write (the ``standardwebhooks`` package, the functions printed in 002 and 003), compressed time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from dossier.accounts.service import NewAccount
from dossier.db.base import as_utc
from dossier.net import OutboundClient
from dossier.queue.models import Task
from dossier.settings import Settings
from dossier.webhooks import dispatch, service, sweeps, tasks
from dossier.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from dossier.webhooks.profiles.kernel import kernel_job_data
from dossier.webhooks.profiles.kruncher import analysis_completed_data, changed_status_data
from tests.conftest import Received, Receiver
from tests.helpers import eventually, running_worker
from tests.webhooks.conftest import TIME_SCALE


def _changed_status(n: int) -> dict[str, Any]:
    """A real ``changedStatus`` payload (every payload in the suite is checked against the catalogue)."""
    return changed_status_data(
        project_id=f"project-{n}",
        project_name="Acme",
        previous_status=None,
        new_status="Lead",
        stage=None,
        changed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _analysis_completed(n: int) -> dict[str, Any]:
    """A real ``analysisCompleted`` payload."""
    return analysis_completed_data(
        project_id=f"project-{n}",
        analysis_id=f"analysis-{n}",
        project_name="Acme",
        kruncher_entity_company_id=None,
    )


BASE = "/api/enterprise/webhooks"


# --- verification code as printed in the documents ---------------------------------------------------


def verify_webhook_signature(raw_body: bytes, signature_header: str, secret: str) -> bool:
    """002, "Verification helper only", verbatim."""
    if not signature_header:
        return False
    trimmed = signature_header.strip()
    if trimmed.startswith("sha256="):  # noqa: SIM108  (kept as printed)
        provided = trimmed[len("sha256=") :]
    else:
        provided = trimmed
    try:
        data = json.loads(raw_body.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    canonical = json.dumps(data, separators=(",", ":")).encode("utf-8")
    expected = hmac.new(secret.encode("utf-8"), canonical, hashlib.sha256).hexdigest()
    return hmac.compare_digest(provided, expected)


def verify_signature(body: bytes, signature: str, secret: str) -> bool:
    """003, "Verifying signatures", verbatim."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.removeprefix("sha256="))


def standard_verify(secret: str, request: Received) -> Any:
    headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    return Webhook(secret).verify(request.body, headers)


# --- helpers ------------------------------------------------------------------------------------------


async def _endpoint(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> Any:
    response = await client.post(BASE, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _emit(
    maker: async_sessionmaker[AsyncSession], account_id: str, event_type: str, data: dict[str, Any], **kw: Any
) -> list[str]:
    async with maker() as session, session.begin():
        return await service.emit_event(session, account_id, event_type, data, **kw)


async def _delivery(maker: async_sessionmaker[AsyncSession], delivery_id: str) -> WebhookDelivery:
    async with maker() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        return delivery


async def _attempts(maker: async_sessionmaker[AsyncSession], delivery_id: str) -> list[WebhookAttempt]:
    async with maker() as session:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.number)
        )
        return list(rows)


async def _finished(maker: async_sessionmaker[AsyncSession], delivery_id: str) -> WebhookDelivery | None:
    delivery = await _delivery(maker, delivery_id)
    return delivery if delivery.status != "pending" else None


CELL = {
    "project_id": "98e79cf8-87c9-49b0-9899-58edb6f31234",
    "row_id": "Jxl8KwcI6bAHH8wdQ123",
    "col_id": "466527f1-ef79-4cd6-bf03-c878681d1234",
    "value": "Technology",
    "status": "success",
}


# --- tests --------------------------------------------------------------------------------------------


async def test_kuration_delivery_verifies_with_002_and_standard_webhooks(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    endpoint = await _endpoint(wclient, headers, url=receiver.url + "/webhook", profile="kuration")
    [delivery_id] = await _emit(sessionmaker, account.account.id, "tool_output_ready", CELL)
    async with running_worker(settings, sessionmaker, http):
        [request] = await receiver.wait_for(1)
        await eventually(lambda: _finished(sessionmaker, delivery_id), what="delivery recorded")
    assert request.method == "POST" and request.path == "/webhook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Kuration-Webhook/1.0"
    assert verify_webhook_signature(request.body, request.headers["x-kuration-signature"], endpoint["secret"])
    # The body is the canonical JSON itself, so HMAC over the raw bytes agrees too.
    assert verify_signature(request.body, request.headers["x-kuration-signature"], endpoint["secret"])
    payload = standard_verify(endpoint["secret"], request)
    assert payload["event"] == "tool_output_ready"
    assert {k: payload[k] for k in CELL} == CELL
    assert request.headers["webhook-id"] == delivery_id
    datetime.strptime(payload["timestamp"], "%Y-%m-%dT%H:%M:%S.%f")

    detail = (await wclient.get(f"{BASE}/deliveries/{delivery_id}", headers=headers)).json()
    assert detail["status"] == "succeeded" and detail["attempts"] == 1
    [attempt] = detail["history"]
    assert attempt["outcome"] == "Success" and attempt["response_status"] == 200
    assert attempt["response_body"] == "ok" and attempt["trigger"] == "scheduled"
    assert attempt["request_headers"]["X-Kuration-Signature"] == "[redacted]"
    assert attempt["request_headers"]["webhook-signature"] == "[redacted]"
    assert endpoint["secret"] not in json.dumps(detail)
    page = (await wclient.get(f"{BASE}/{endpoint['id']}/deliveries", headers=headers)).json()
    assert [d["id"] for d in page["data"]] == [delivery_id] and page["pagination"]["total"] == 1


async def test_kernel_job_webhook_url_gets_three_attempts_then_fails(
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    receiver.answers = [(500, {}, b"down")]
    now = datetime.now(UTC)
    data = kernel_job_data(job_id="j1", status="completed", created_at=now, completed_at=now, record={"a": 1})
    [delivery_id] = await _emit(
        sessionmaker, account.account.id, "entity-resolution.completed", data, target=receiver.url + "/k"
    )
    async with running_worker(settings, sessionmaker, http):
        delivery = await eventually(lambda: _finished(sessionmaker, delivery_id), what="permanent failure")
    assert delivery.status == "failed" and delivery.attempts == 3
    requests = receiver.requests
    assert len(requests) == 3
    secret = account.webhook_secret
    for request in requests:
        assert verify_signature(request.body, request.headers["x-kernel-signature"], secret)
        assert request.headers["x-kernel-event"] == "entity-resolution.completed"
        assert request.headers["webhook-id"] == delivery_id
        standard_verify(secret, request)
    assert len({r.headers["x-kernel-delivery"] for r in requests}) == 3
    attempts = await _attempts(sessionmaker, delivery_id)
    assert [a.outcome for a in attempts] == ["Error Response"] * 3
    # 003's schedule: +30 s then +2 min (compressed), never early.
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 30 * TIME_SCALE and gaps[1] >= 120 * TIME_SCALE
    assert attempts[-1].next_attempt_at is None


async def test_a_kernel_attempt_times_out_after_5_s_and_the_retry_waits_60_s(
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    # Real time for the profile's 5 s timeout (the receiver holds the first request 6 s); the waits are
    # compressed 100 times: 003's +30 s becomes 0.3 s, the 60 s floor after a timeout 0.6 s.
    scale = 0.01
    settings = settings.model_copy(update={"webhook_time_scale": scale})
    receiver.delay = 6.0
    now = datetime.now(UTC)
    data = kernel_job_data(job_id="j1", status="completed", created_at=now, completed_at=now, record={"a": 1})
    [delivery_id] = await _emit(
        sessionmaker, account.account.id, "entity-resolution.completed", data, target=receiver.url + "/k"
    )
    async with running_worker(settings, sessionmaker, http):
        await receiver.wait_for(1)
        receiver.delay = 0.0  # the second attempt is answered at once
        delivery = await eventually(lambda: _finished(sessionmaker, delivery_id), what="delivered", within=20)
    assert delivery.status == "succeeded" and delivery.attempts == 2
    first, second = await _attempts(sessionmaker, delivery_id)
    assert (first.outcome, first.error_class) == ("Error Request", "RequestTimeout")
    assert 4.9 <= first.duration_ms / 1000 < 5.9
    assert first.next_attempt_at is not None
    timed_out_at = first.started_at + timedelta(milliseconds=first.duration_ms)
    assert (first.next_attempt_at - timed_out_at).total_seconds() >= 60 * scale * 0.99
    assert second.started_at >= first.next_attempt_at and second.outcome == "Success"


async def test_retries_follow_the_schedule_until_success_with_a_stable_id(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    receiver.answers = [
        (500, {}, b"x" * 5000),
        (429, {}, b""),
        (503, {"Retry-After": "120"}, b""),
        (200, {}, b""),
    ]
    endpoint = await _endpoint(
        wclient, headers, url=receiver.url, profile="standard", events=["changedStatus"]
    )
    payload = _changed_status(7)
    [delivery_id] = await _emit(sessionmaker, account.account.id, "changedStatus", payload)
    async with running_worker(settings, sessionmaker, http):
        delivery = await eventually(lambda: _finished(sessionmaker, delivery_id), what="success")
    assert delivery.status == "succeeded" and delivery.attempts == 4
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery_id}
    assert len({r.body for r in receiver.requests}) == 1
    for request in receiver.requests:
        assert standard_verify(endpoint["secret"], request) == {
            "type": "changedStatus",
            "timestamp": json.loads(request.body)["timestamp"],
            "data": payload,
        }
    attempts = await _attempts(sessionmaker, delivery_id)
    assert [a.outcome for a in attempts] == ["Error Response"] * 3 + ["Success"]
    assert len(attempts[0].response_body or "") == 2048  # the first 2 KiB only
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 5 * TIME_SCALE  # default schedule: 5 s
    assert gaps[1] >= 300 * TIME_SCALE  # 5 min (already above the 60 s floor a 429 imposes)
    assert gaps[2] >= 1800 * TIME_SCALE  # Retry-After 120 s is below the 30 min of the schedule
    assert all(a.next_attempt_at is not None for a in attempts[:3])


async def test_retry_after_and_timeouts_stretch_the_wait(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    from dossier.webhooks.dispatch import delay_after as _delay_after

    plan = dispatch.AttemptPlan(
        delivery_id="msg_x",
        account_id="a",
        endpoint_id=None,
        url="http://127.0.0.1/",
        profile="standard",
        event_type="e",
        payload={},
        secrets=[],
        options={},
        seq=0,
        base=0,
        trigger="scheduled",
    )

    def result(status: int | None, retry_after: str | None = None, timed_out: bool = False) -> Any:
        return dispatch.AttemptResult(
            attempt_id="att",
            started_at=datetime.now(UTC),
            request_headers={},
            status=status,
            response_headers=None,
            response_body=None,
            duration_ms=1,
            timed_out=timed_out,
            retry_after=retry_after,
        )

    scale = settings.webhook_time_scale
    assert 5 * scale <= (_delay_after(plan, result(500), settings) or 0) < 6 * scale
    assert (_delay_after(plan, result(503, "120"), settings) or 0) >= 120 * scale
    assert (_delay_after(plan, result(429), settings) or 0) >= 60 * scale
    assert (_delay_after(plan, result(None, timed_out=True), settings) or 0) >= 60 * scale
    # Bounded: a receiver cannot park a delivery for a year.
    assert (_delay_after(plan, result(503, str(365 * 86400)), settings) or 0) <= 3600 * scale * 1.1


async def test_410_disables_the_endpoint_and_3xx_is_a_failure_not_followed(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    receiver.answers = [(302, {"Location": "/moved"}, b""), (410, {}, b"gone")]
    endpoint = await _endpoint(wclient, headers, url=receiver.url + "/hook", profile="kuration")
    [delivery_id] = await _emit(sessionmaker, account.account.id, "tool_output_ready", CELL)
    async with running_worker(settings, sessionmaker, http):
        delivery = await eventually(lambda: _finished(sessionmaker, delivery_id), what="410")
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]  # /moved never requested
    attempts = await _attempts(sessionmaker, delivery_id)
    assert [(a.response_status, a.outcome) for a in attempts] == [
        (302, "Error Response"),
        (410, "Error Response"),
    ]
    assert "redirects are not followed" in (attempts[0].error_text or "")
    assert delivery.status == "failed"
    got = (await wclient.get(f"{BASE}/{endpoint['id']}", headers=headers)).json()
    assert got["active"] is False and "410" in got["disabled_reason"]
    # A disabled endpoint receives nothing more: new events are not even written for it.
    assert await _emit(sessionmaker, account.account.id, "tool_output_ready", CELL) == []


async def test_a_name_rebound_to_loopback_is_refused_at_delivery(
    app: Any,
    settings: Settings,
    account: NewAccount,
    headers: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    dns: dict[str, list[str]],
) -> None:
    strict = settings.model_copy(update={"outbound_allow": [], "outbound_allow_http": True})

    async def resolve(host: str) -> list[str]:
        return dns[host]

    client = OutboundClient.from_settings(strict, resolve=resolve)
    app.state.http = client
    dns["hooks.example.com"] = ["93.184.216.34"]  # public at creation...
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as api:
        created = await api.post(BASE, json={"url": "http://hooks.example.com/x"}, headers=headers)
    assert created.status_code == 201, created.text
    dns["hooks.example.com"] = ["127.0.0.1"]  # ...then rebound to loopback
    [delivery_id] = await _emit(sessionmaker, account.account.id, "tool_output_ready", CELL)
    async with running_worker(strict, sessionmaker, client):
        await eventually(lambda: _attempts(sessionmaker, delivery_id), what="an attempt")
    [attempt, *_] = await _attempts(sessionmaker, delivery_id)
    assert attempt.outcome == "Error Request" and attempt.error_class == "BlockedURL"
    assert "loopback" in (attempt.error_text or "")
    await client.aclose()


async def test_rotation_grace_signs_with_both_secrets_then_only_the_new(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    endpoint = await _endpoint(wclient, headers, url=receiver.url, profile="kuration")
    old = endpoint["secret"]
    rotated = await wclient.post(f"{BASE}/{endpoint['id']}/rotate-secret", headers=headers)
    new = rotated.json()["secret"]
    await _emit(sessionmaker, account.account.id, "tool_output_ready", CELL)
    async with running_worker(settings, sessionmaker, http):
        [during] = await receiver.wait_for(1)
        standard_verify(old, during)
        standard_verify(new, during)
        assert verify_webhook_signature(during.body, during.headers["x-kuration-signature"], new)
        assert not verify_webhook_signature(during.body, during.headers["x-kuration-signature"], old)

        await wclient.post(f"{BASE}/{endpoint['id']}/rotate-secret", json={"grace_hours": 0}, headers=headers)
        newest = (await wclient.get(f"{BASE}/{endpoint['id']}", headers=headers)).json()
        assert "secret" not in newest
        await _emit(sessionmaker, account.account.id, "tool_output_ready", CELL)
        [_, after] = await receiver.wait_for(2)
    with pytest.raises(Exception, match="No matching signature"):
        standard_verify(new, after)
    assert len(after.headers["webhook-signature"].split(" ")) == 1


async def test_redeliver_and_recover_since_send_the_same_message_again(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    settings = settings.model_copy(update={"webhook_retry_schedule": "5s"})  # two attempts per round
    receiver.answers = [(500, {}, b"") for _ in range(4)]
    endpoint = await _endpoint(wclient, headers, url=receiver.url, profile="standard")
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = [(await _emit(sessionmaker, account.account.id, "thing.happened", {"n": n}))[0] for n in range(2)]
    async with running_worker(settings, sessionmaker, http):
        for delivery_id in ids:
            await eventually(lambda d=delivery_id: _finished(sessionmaker, d), what="failed")  # type: ignore[misc]
        assert len(receiver.requests) == 4
        receiver.answers = [(200, {}, b"")]
        recovered = await wclient.post(
            f"{BASE}/{endpoint['id']}/recover", json={"since": since.isoformat()}, headers=headers
        )
        assert recovered.status_code == 202 and recovered.json() == {"recovered": 2}
        for delivery_id in ids:
            await eventually(lambda d=delivery_id: _finished(sessionmaker, d), what="recovered")  # type: ignore[misc]
        answered = await wclient.post(f"{BASE}/deliveries/{ids[0]}/redeliver", headers=headers)
        assert answered.status_code == 202, answered.text
        await receiver.wait_for(7)
        await eventually(lambda: _finished(sessionmaker, ids[0]), what="redelivered")
    by_id: dict[str, int] = {}
    for request in receiver.requests:
        by_id[request.headers["webhook-id"]] = by_id.get(request.headers["webhook-id"], 0) + 1
    assert by_id == {ids[0]: 4, ids[1]: 3}
    detail = (await wclient.get(f"{BASE}/deliveries/{ids[0]}", headers=headers)).json()
    assert detail["status"] == "succeeded"
    assert [a["trigger"] for a in detail["history"]] == ["scheduled", "scheduled", "manual", "manual"]
    assert [a["outcome"] for a in detail["history"]][-1] == "Success"


async def test_an_endpoint_failing_for_days_is_disabled_and_the_account_told(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    # "5 days" compressed: 0.00001 days is 0.864 s of failing.
    settings = settings.model_copy(update={"webhook_disable_after_days": 0.00001})
    receiver.answers = [(500, {}, b"")]
    failing = await _endpoint(wclient, headers, url=receiver.url + "/failing", profile="kuration")
    watcher = await _endpoint(
        wclient,
        headers,
        url=receiver.url + "/watcher",
        profile="standard",
        events=["webhook_endpoint.disabled"],
    )
    slack = await wclient.put(
        "/api/enterprise/integrations/slack", json={"url": receiver.url + "/slack"}, headers=headers
    )
    assert slack.status_code == 200
    await _emit(sessionmaker, account.account.id, "tool_output_ready", CELL)

    async def disabled() -> bool:
        async with sessionmaker() as session:
            endpoint = await session.get(WebhookEndpoint, failing["id"])
            return endpoint is not None and not endpoint.active

    async with running_worker(settings, sessionmaker, http):
        await eventually(disabled, what="auto-disable", within=20)

        async def told() -> bool:
            paths = [r.path for r in receiver.requests]
            return "/watcher" in paths and "/slack" in paths

        await eventually(told, what="event and Slack message")
    got = (await wclient.get(f"{BASE}/{failing['id']}", headers=headers)).json()
    assert "failed for" in got["disabled_reason"]
    # The one receiver answers 500 to everything, so the watcher and Slack see retries too: check the first.
    event = next(r for r in receiver.requests if r.path == "/watcher")
    assert standard_verify(watcher["secret"], event)["data"]["endpoint_id"] == failing["id"]
    slack_messages = [json.loads(r.body) for r in receiver.requests if r.path == "/slack"]
    assert any("disabled" in m["text"] and m["blocks"] for m in slack_messages)

    # Re-enabled, it gets what it missed.
    receiver.answers = [(200, {}, b"")]
    assert (await wclient.post(f"{BASE}/{failing['id']}/enable", headers=headers)).json()["active"] is True


async def test_a_slow_endpoint_does_not_delay_the_others(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    from aiohttp import web

    from tests.conftest import free_port

    slow_hits: list[float] = []

    async def slow(request: web.Request) -> web.Response:
        slow_hits.append(1)
        import asyncio

        await asyncio.sleep(1.0)
        return web.Response(status=200)

    application = web.Application()
    application.router.add_post("/", slow)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await _endpoint(
            wclient, headers, url=f"http://127.0.0.1:{port}/", profile="standard", events=["changedStatus"]
        )
        await _endpoint(wclient, headers, url=receiver.url, profile="standard", events=["analysisCompleted"])
        settings = settings.model_copy(update={"webhook_endpoint_concurrency": 2})
        async with sessionmaker() as session, session.begin():
            await service.emit_events(
                session, account.account.id, "changedStatus", [_changed_status(n) for n in range(20)]
            )
            await service.emit_events(
                session, account.account.id, "analysisCompleted", [_analysis_completed(n) for n in range(10)]
            )
        import time

        async with running_worker(settings, sessionmaker, http, concurrency=4):
            started = time.monotonic()
            await receiver.wait_for(10, timeout=10)
            fast_done = time.monotonic() - started
        # 20 slow deliveries at 1 s each, 2 at a time, would take 10 s; the fast ones do not wait for them.
        assert fast_done < 3.0, fast_done
        assert len(slow_hits) < 20
    finally:
        await runner.cleanup()


async def test_test_event_goes_to_the_endpoint(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    endpoint = await _endpoint(
        wclient, headers, url=receiver.url, profile="kruncher", kruncher_api_key="dsk_opt_in"
    )
    sent = await wclient.post(f"{BASE}/{endpoint['id']}/test", headers=headers)
    assert sent.status_code == 202, sent.text
    async with running_worker(settings, sessionmaker, http):
        [request] = await receiver.wait_for(1)
    body = json.loads(request.body)
    assert body["event"] == "analysisCompleted" and set(body["data"]) >= {"projectId", "analysisId"}
    assert verify_signature(request.body, request.headers["x-kruncher-signature"], endpoint["secret"])
    assert request.headers["x-delivery-id"] == sent.json()["id"] == request.headers["webhook-id"]
    assert request.headers["x-kruncher-api-key"] == "dsk_opt_in"
    detail = (await wclient.get(f"{BASE}/deliveries/{sent.json()['id']}", headers=headers)).json()
    assert "dsk_opt_in" not in json.dumps(detail)


async def test_a_job_url_answering_410_is_not_retried(
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    receiver.answers = [(410, {}, b"")]
    now = datetime.now(UTC)
    data = kernel_job_data(job_id="j2", status="failed", created_at=now, completed_at=now, record=None)
    [delivery_id] = await _emit(
        sessionmaker, account.account.id, "entity-resolution.failed", data, target=receiver.url
    )
    async with running_worker(settings, sessionmaker, http):
        delivery = await eventually(lambda: _finished(sessionmaker, delivery_id), what="failed")
    assert delivery.status == "failed" and delivery.attempts == 1
    assert json.loads(receiver.requests[0].body)["data"]["record"] is None


async def test_a_failing_endpoint_s_retries_are_made_by_one_sweep(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    # Every first attempt fails; the retries (1 s later, in real time here) all succeed.
    burst = 60
    receiver.answers = [(500, {}, b"down")] * burst + [(200, {}, b"ok")]
    settings = settings.model_copy(update={"webhook_time_scale": 1.0, "webhook_retry_schedule": "1s"})
    endpoint = await _endpoint(wclient, headers, url=receiver.url, profile="standard", events=["*"])
    async with sessionmaker() as session, session.begin():
        ids = await service.emit_events(
            session, account.account.id, "burst", [{"n": n} for n in range(burst)]
        )

    async def all_failed_once() -> bool:
        async with sessionmaker() as session:
            done = await session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids), WebhookDelivery.attempts == 1)
            )
            return done == burst

    async with running_worker(settings, sessionmaker, http):
        await eventually(all_failed_once, what="every first attempt failed")

        # The queue does not hold a retry per failed delivery: one sweep for the endpoint, due at the
        # earliest retry (queued once the sweep that made the first attempts has ended).
        async def queued_tasks() -> list[Task]:
            async with sessionmaker() as session:
                return list(await session.scalars(select(Task).where(Task.status == "queued")))

        queued = await eventually(queued_tasks, what="the next sweep queued")
        async with sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(Task)) == 1
            earliest = await session.scalar(
                select(func.min(WebhookDelivery.next_attempt_at)).where(WebhookDelivery.id.in_(ids))
            )
        assert [(t.kind, t.payload) for t in queued] == [
            (sweeps.SWEEP_TASK, {"key": f"endpoint:{endpoint['id']}"})
        ]
        # Due at the earliest retry; after a batch that all failed, up to a second's pause later.
        assert earliest is not None
        assert as_utc(earliest) <= queued[0].run_at < as_utc(earliest) + timedelta(seconds=1)
        await eventually(
            lambda: all_delivered(sessionmaker, ids), what="every retry made and recorded", within=20
        )
    assert len(receiver.requests) == 2 * burst
    retried = [r.headers["webhook-id"] for r in receiver.requests[burst:]]
    assert sorted(retried) == sorted(ids)  # each delivery once more, under its own stable id
    for delivery_id in ids[:3]:
        first, second = await _attempts(sessionmaker, delivery_id)
        assert first.outcome == "Error Response" and second.outcome == "Success"
        assert second.trigger == "scheduled"
        # Never early: the retry waits for its own due time.
        assert first.next_attempt_at is not None and second.started_at >= first.next_attempt_at


async def test_a_dead_endpoint_s_new_events_wait_out_the_pause_and_go_together(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    # Every answer is a 500 and the first retry is an hour away: after a batch in which nothing got
    # through, events that come one by one meanwhile are tried together when the pause ends (each new event
    # used to wake the sweep and be tried alone).
    receiver.answers = [(500, {}, b"down")] * 100
    pause = tasks.FAILING_SWEEP_PAUSE
    settings = settings.model_copy(update={"webhook_time_scale": 1.0, "webhook_retry_schedule": "1h"})
    await _endpoint(wclient, headers, url=receiver.url, profile="standard", events=["*"])
    async with running_worker(settings, sessionmaker, http):
        first = await _emit(sessionmaker, account.account.id, "burst", {"n": 0})
        await eventually(lambda: _all_tried(sessionmaker, first), what="the first attempt failed")
        later: list[str] = []
        for n in range(1, 6):
            later += await _emit(sessionmaker, account.account.id, "burst", {"n": n})
            await asyncio.sleep(pause / 20)  # events arriving one by one while the pause runs
        await eventually(lambda: _all_tried(sessionmaker, later), what="the later events tried")
    [failed] = await _attempts(sessionmaker, first[0])
    started = [(await _attempts(sessionmaker, delivery_id))[0].started_at for delivery_id in later]
    assert min(started) >= failed.started_at + timedelta(seconds=pause)
    assert max(started) - min(started) < timedelta(seconds=pause / 2)  # one batch
    assert len(receiver.requests) == 6  # every event tried, none skipped


async def test_a_dead_endpoint_s_backlog_is_not_held_back_by_the_pause(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    # More due than one batch holds, every answer a 500: the pause follows a failed batch only when nothing
    # more is due, so the schedule's attempts are all made now (not a batch per pause). A failing destination
    # is swept DELIVERY_BATCH at a time, however fast it answers.
    burst = sweeps.DELIVERY_BATCH * 2 + 50
    receiver.answers = [(500, {}, b"down")] * burst
    # A 5 s pause (0.25 s scaled): batches held back would be 5 s apart, far beyond what a slow machine
    # takes to make them all (1.4 s on a busy CI run, where a 0.75 s pause made the bound flaky).
    scale = 20.0
    settings = settings.model_copy(update={"webhook_time_scale": scale, "webhook_retry_schedule": "1h"})
    await _endpoint(wclient, headers, url=receiver.url, profile="standard", events=["*"])
    async with sessionmaker() as session, session.begin():
        ids = await service.emit_events(
            session, account.account.id, "burst", [{"n": n} for n in range(burst)]
        )
    async with running_worker(settings, sessionmaker, http):
        await eventually(lambda: _all_tried(sessionmaker, ids), what="every first attempt made", within=30)
    async with sessionmaker() as session:
        spread = await session.execute(
            select(func.min(WebhookAttempt.started_at), func.max(WebhookAttempt.started_at)).where(
                WebhookAttempt.delivery_id.in_(ids)
            )
        )
        first, last = spread.one()
    assert as_utc(last) - as_utc(first) < timedelta(seconds=tasks.FAILING_SWEEP_PAUSE * scale)
    assert len(receiver.requests) == burst


async def _all_tried(maker: async_sessionmaker[AsyncSession], ids: list[str]) -> bool:
    async with maker() as session:
        tried = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids), WebhookDelivery.attempts == 1)
        )
        return tried == len(ids)


async def all_delivered(maker: async_sessionmaker[AsyncSession], ids: list[str]) -> bool:
    async with maker() as session:
        succeeded = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids), WebhookDelivery.status == "succeeded")
        )
        return succeeded == len(ids)


async def test_one_sweep_per_destination_sends_a_burst_within_the_endpoint_limit(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    # Two workers, a burst of 120 events to one endpoint in several commits: the queue holds one task for
    # the endpoint, and the endpoint never has more attempts in flight than its limit, in the whole cluster.
    settings = settings.model_copy(update={"webhook_endpoint_concurrency": 3})
    receiver.delay = 0.02
    endpoint = await _endpoint(wclient, headers, url=receiver.url, profile="standard", events=["*"])
    ids: list[str] = []
    for start in range(0, 120, 40):
        async with sessionmaker() as session, session.begin():
            ids += await service.emit_events(
                session, account.account.id, "burst", [{"n": n} for n in range(start, start + 40)]
            )
    async with sessionmaker() as session:
        queued = list(await session.scalars(select(Task)))
    sweep = (sweeps.SWEEP_TASK, {"key": f"endpoint:{endpoint['id']}"})
    assert [(t.kind, t.payload) for t in queued] == [sweep]
    async with running_worker(settings, sessionmaker, http), running_worker(settings, sessionmaker, http):
        await eventually(lambda: all_delivered(sessionmaker, ids), what="the burst delivered", within=30)
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(ids)  # each exactly once
    assert receiver.max_in_flight == 3
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == 0  # the sweep ended


async def test_a_delivery_failed_before_any_attempt_is_recovered_as_manual(
    wclient: httpx.AsyncClient,
    headers: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    # The endpoint is disabled after the event was written but before its first attempt: the delivery
    # fails unattempted. Enabled and recovered, its first attempt is a manual one.
    endpoint = await _endpoint(wclient, headers, url=receiver.url, profile="standard")
    since = datetime.now(UTC) - timedelta(seconds=1)
    [delivery_id] = await _emit(sessionmaker, account.account.id, "thing.happened", {"n": 1})
    async with sessionmaker() as session, session.begin():
        row = await session.get(WebhookEndpoint, endpoint["id"])
        assert row is not None
        await dispatch.disable_endpoint(session, row, "turned off by hand")
    async with running_worker(settings, sessionmaker, http):
        failed = await eventually(lambda: _finished(sessionmaker, delivery_id), what="failed unattempted")
        assert failed.status == "failed" and failed.attempts == 0
        assert "endpoint disabled" in (failed.last_error or "")
        enabled = await wclient.post(f"{BASE}/{endpoint['id']}/enable", headers=headers)
        assert enabled.status_code == 200, enabled.text
        recovered = await wclient.post(
            f"{BASE}/{endpoint['id']}/recover", json={"since": since.isoformat()}, headers=headers
        )
        assert recovered.json() == {"recovered": 1}
        await eventually(lambda: _finished(sessionmaker, delivery_id), what="recovered")
    [request] = receiver.requests
    assert request.headers["webhook-id"] == delivery_id
    [attempt] = await _attempts(sessionmaker, delivery_id)
    assert (attempt.trigger, attempt.outcome) == ("manual", "Success")
