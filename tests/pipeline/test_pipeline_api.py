"""The pipeline and integration API of 001 over HTTP, as its examples call it (`Authorization: KEY`), with a
real worker and a real receiver on 127.0.0.1; every failure path answers `{success: false, error}` 4xx."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.service import NewAccount
from dossier.enrichment.registry.service import kernel_id_for
from dossier.net import OutboundClient
from dossier.pipeline.models import TrackedCompany
from dossier.settings import Settings
from dossier.webhooks.models import WebhookDelivery
from tests.conftest import Receiver, free_port
from tests.helpers import eventually, running_worker

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HOOK = "/api/integration/webhook"
HOME_PAGE = b"""<!doctype html><html lang="en"><head><title>Micron Technology</title>
<meta name="description" content="Memory and storage solutions."></head>
<body><a href="https://www.linkedin.com/company/micron-technology">LinkedIn</a></body></html>"""


@pytest.fixture
def auth(account: NewAccount) -> dict[str, str]:
    """001 sends the bare key in `Authorization`."""
    return {"Authorization": account.api_key}


async def _company(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/api/company", json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["success"] is True
    data: dict[str, Any] = response.json()["data"]
    return data


async def _configure(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(HOOK, json=body, headers=auth)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def _kruncher_signature_ok(body: bytes, header: str, secret: str) -> bool:
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


async def test_companies_create_retrieve_and_change_status(
    wclient: httpx.AsyncClient,
    auth: dict[str, str],
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    config = await _configure(wclient, auth, url=receiver.url + "/webhooks/kruncher", changedStatus=True)
    secret = config["signingSecret"]
    company = await _company(wclient, auth, name="Tesla Motors", website="https://tesla.com")
    assert set(company) == {"id", "name", "website", "status", "stage", "createdAt", "updatedAt"}
    assert UUID.match(company["id"]) and company["status"] == "sourcing" and company["stage"] is None
    assert TIMESTAMP.match(company["createdAt"])

    # 001's "Get Project Details".
    got = await wclient.get(f"/api/company/retrieve?projectId={company['id']}", headers=auth)
    assert got.status_code == 200 and got.json() == {"success": True, "data": company}

    moved = await wclient.put(
        "/api/company/status",
        json={"projectId": company["id"], "status": "screening", "stage": "Series B"},
        headers=auth,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["status"] == "screening" and moved.json()["data"]["stage"] == "Series B"
    # The same status and stage again is no change: no event.
    same = await wclient.put(
        "/api/company/status", json={"projectId": company["id"], "status": "screening"}, headers=auth
    )
    assert same.status_code == 200 and same.json()["data"]["stage"] == "Series B"
    await wclient.put(
        "/api/company/status", json={"projectId": company["id"], "status": "diligence"}, headers=auth
    )

    async with running_worker(settings, sessionmaker, http):
        requests = await receiver.wait_for(2)
    bodies = [json.loads(r.body) for r in requests]
    assert len(receiver.requests) == 2
    by_new = {b["data"]["newStatus"]: b for b in bodies}
    first, second = by_new["screening"], by_new["diligence"]
    assert first["event"] == "changedStatus"
    assert list(first["data"]) == [
        "projectId",
        "projectName",
        "previousStatus",
        "newStatus",
        "stage",
        "changedAt",
    ]
    assert first["data"]["projectId"] == company["id"] and first["data"]["projectName"] == "Tesla Motors"
    assert first["data"]["previousStatus"] == "sourcing" and first["data"]["stage"] == "Series B"
    assert TIMESTAMP.match(first["data"]["changedAt"])
    assert second["data"]["previousStatus"] == "screening" and second["data"]["stage"] == "Series B"
    for request in requests:
        assert request.headers["x-delivery-id"]
        assert _kruncher_signature_ok(request.body, request.headers["x-kruncher-signature"], secret)
        assert "x-kruncher-api-key" not in request.headers  # never sent unless opted in


async def test_unknown_status_and_unknown_ids_are_4xx_in_001s_envelope(
    wclient: httpx.AsyncClient, auth: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    company = await _company(wclient, auth, name="Acme")
    bad = await wclient.put(
        "/api/company/status", json={"projectId": company["id"], "status": "won"}, headers=auth
    )
    assert bad.status_code == 422
    assert bad.json() == {
        "success": False,
        "error": "unknown status 'won'; valid statuses, in pipeline order: "
        "sourcing, screening, diligence, ic_review, invested, passed",
    }
    bad_create = await wclient.post("/api/company", json={"name": "X", "status": "won"}, headers=auth)
    assert bad_create.status_code == 422 and "valid statuses" in bad_create.json()["error"]
    statuses = await wclient.get("/api/company/statuses", headers=auth)
    assert statuses.json()["data"][0] == "sourcing"

    for response in (
        await wclient.get(
            "/api/company/retrieve?projectId=00000000-0000-4000-8000-000000000000", headers=auth
        ),
        await wclient.put(
            "/api/company/status", json={"projectId": "nope", "status": "screening"}, headers=auth
        ),
        await wclient.post("/api/analysis", json={"projectId": "nope"}, headers=auth),
        await wclient.get("/api/analysis?analysisId=nope", headers=auth),
        await wclient.get(HOOK, headers=auth),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["success"] is False and isinstance(response.json()["error"], str)
    missing_param = await wclient.get("/api/company/retrieve", headers=auth)
    assert missing_param.status_code == 422 and missing_param.json()["success"] is False
    no_key = await wclient.get(f"/api/company/retrieve?projectId={company['id']}")
    assert no_key.status_code == 401 and no_key.json()["success"] is False
    bearer = await wclient.get(
        f"/api/company/retrieve?projectId={company['id']}",
        headers={"Authorization": "Bearer " + auth["Authorization"]},
    )
    assert bearer.status_code == 200
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(TrackedCompany)) == 1


async def test_webhook_configuration_get_post_put(
    wclient: httpx.AsyncClient, auth: dict[str, str], receiver: Receiver
) -> None:
    created = await wclient.post(
        HOOK,
        json={"url": receiver.url + "/a", "analysisCompleted": True, "changedStatus": True},
        headers=auth,
    )
    assert created.status_code == 200
    data = created.json()["data"]
    assert set(data) == {
        "id",
        "url",
        "analysisCompleted",
        "changedStatus",
        "isActive",
        "createdAt",
        "updatedAt",
        "lastDelivery",
        "sendsApiKey",
        "signingSecret",
    }
    assert data["analysisCompleted"] is True and data["changedStatus"] is True and data["isActive"] is True
    assert data["lastDelivery"] is None and data["signingSecret"].startswith("whsec_")

    got = (await wclient.get(HOOK, headers=auth)).json()
    assert got["success"] is True
    assert got["data"] == {**{k: v for k, v in data.items() if k != "signingSecret"}, "signingSecret": None}

    # PUT updates the same webhook (and POST again would too); the secret is not shown again.
    updated = await wclient.put(HOOK, json={"url": receiver.url + "/b", "changedStatus": True}, headers=auth)
    assert updated.status_code == 200
    new = updated.json()["data"]
    assert new["id"] == data["id"] and new["url"] == receiver.url + "/b"
    assert new["analysisCompleted"] is False and new["changedStatus"] is True and new["signingSecret"] is None
    none = await wclient.post(HOOK, json={"url": receiver.url + "/b"}, headers=auth)
    assert none.json()["data"]["analysisCompleted"] is False and none.json()["data"]["changedStatus"] is False

    for url, expected in (
        ("http://example.com/hook", "plain http is refused"),
        ("https://10.1.2.3/hook", "refused"),
        ("https://[::ffff:169.254.169.254]/", "refused"),
    ):
        refused = await wclient.post(HOOK, json={"url": url, "changedStatus": True}, headers=auth)
        assert refused.status_code == 422, refused.text
        assert refused.json()["success"] is False and expected in refused.json()["error"]
    # A refused update changes nothing.
    assert (await wclient.get(HOOK, headers=auth)).json()["data"]["url"] == receiver.url + "/b"
    missing = await wclient.post(HOOK, json={"changedStatus": True}, headers=auth)
    assert missing.status_code == 422 and "url" in missing.json()["error"]


async def test_no_events_chosen_means_nothing_is_sent(
    wclient: httpx.AsyncClient,
    auth: dict[str, str],
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    await _configure(wclient, auth, url=receiver.url, analysisCompleted=True)
    company = await _company(wclient, auth, name="Quiet Co")
    await wclient.put(
        "/api/company/status", json={"projectId": company["id"], "status": "passed"}, headers=auth
    )
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


async def test_analysis_runs_the_three_tools_and_emits_analysis_completed(
    wclient: httpx.AsyncClient,
    auth: dict[str, str],
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    receiver.answers = [(200, {"Content-Type": "text/html; charset=utf-8"}, HOME_PAGE)]
    config = await _configure(wclient, auth, url=receiver.url + "/webhooks/kruncher", analysisCompleted=True)
    company = await _company(wclient, auth, name="Micron Technology", website=receiver.url + "/")
    started = await wclient.post("/api/analysis", json={"projectId": company["id"]}, headers=auth)
    assert started.status_code == 202, started.text
    analysis = started.json()["data"]
    assert (
        analysis["status"] == "pending"
        and analysis["report"] is None
        and analysis["projectId"] == company["id"]
    )

    async def completed() -> dict[str, Any] | None:
        body = (await wclient.get(f"/api/analysis?analysisId={analysis['id']}", headers=auth)).json()
        data: dict[str, Any] = body["data"]
        return data if data["status"] == "completed" else None

    async with running_worker(settings, sessionmaker, http):
        done = await eventually(completed, what="analysis completed")
        requests = await receiver.wait_for(2)  # the home page fetch, then the webhook
    micron = kernel_id_for("pytickersymbols", "Micron Technology")
    assert done["kruncherEntityCompanyId"] == micron and TIMESTAMP.match(done["completedAt"])
    report = done["report"]
    profile = report["profile"]
    assert profile["kernelId"] == micron and profile["domain"] == "micron.com"
    assert (
        profile["title"] == "Micron Technology" and profile["description"] == "Memory and storage solutions."
    )
    assert profile["industry"] is not None
    assert 0 < report["completeness"]["ratio"] <= 1
    assert report["completeness"]["found"] + len(report["missing"]) == report["completeness"]["total"]
    assert {s["status"] for s in report["sources"].values()} == {"success"}

    [hook] = [r for r in requests if r.method == "POST"]
    body = json.loads(hook.body)
    assert body == {
        "event": "analysisCompleted",
        "data": {
            "projectId": company["id"],
            "analysisId": analysis["id"],
            "projectName": "Micron Technology",
            "kruncherEntityCompanyId": micron,
        },
    }
    assert _kruncher_signature_ok(hook.body, hook.headers["x-kruncher-signature"], config["signingSecret"])
    got = (await wclient.get(HOOK, headers=auth)).json()["data"]
    assert TIMESTAMP.match(got["lastDelivery"])


async def test_an_unresolved_company_still_gets_a_report_saying_what_is_missing(
    wclient: httpx.AsyncClient,
    auth: dict[str, str],
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    await _configure(wclient, auth, url=receiver.url, analysisCompleted=True)
    company = await _company(wclient, auth, name="Zyxel Obscure Widgets GmbH")
    analysis = (await wclient.post("/api/analysis", json={"projectId": company["id"]}, headers=auth)).json()[
        "data"
    ]
    async with running_worker(settings, sessionmaker, http):
        [hook] = await receiver.wait_for(1)
    assert json.loads(hook.body)["data"]["kruncherEntityCompanyId"] is None
    done = (await wclient.get(f"/api/analysis?analysisId={analysis['id']}", headers=auth)).json()["data"]
    assert done["status"] == "completed" and done["kruncherEntityCompanyId"] is None
    report = done["report"]
    assert report["completeness"]["found"] == 0
    reasons = {m["field"]: m["reason"] for m in report["missing"]}
    assert "no registry company matches" in reasons["kernelId"]
    assert reasons["industry"] == "the company was not resolved to the registry"
    assert reasons["title"] == "the project has no website"


async def test_history_shows_success_and_both_error_kinds_with_pagination(
    wclient: httpx.AsyncClient,
    auth: dict[str, str],
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    # Two attempts per delivery at most, and fast: the history is about statuses, not the schedule.
    settings = settings.model_copy(update={"webhook_retry_schedule": "5s"})
    receiver.answers = [(200, {}, b"ok"), (500, {}, b"no"), (500, {}, b"no")]
    await _configure(wclient, auth, url=receiver.url, changedStatus=True)
    company = await _company(wclient, auth, name="Tesla Motors")
    put = {"projectId": company["id"]}
    await wclient.put("/api/company/status", json={**put, "status": "screening"}, headers=auth)
    async with running_worker(settings, sessionmaker, http):
        await receiver.wait_for(1)
        await wclient.put("/api/company/status", json={**put, "status": "diligence"}, headers=auth)
        await receiver.wait_for(3)

        async def attempts_recorded(count: int) -> dict[str, Any] | None:
            body: dict[str, Any] = (await wclient.get(f"{HOOK}/history", headers=auth)).json()
            return body if body["pagination"]["total"] >= count else None

        await eventually(lambda: attempts_recorded(3), what="3 attempts")
        # Now the receiver is down: nothing listens on the URL any more.
        down = f"http://127.0.0.1:{free_port()}/gone"
        await wclient.put(HOOK, json={"url": down, "changedStatus": True}, headers=auth)
        await wclient.put("/api/company/status", json={**put, "status": "ic_review"}, headers=auth)
        history = await eventually(lambda: attempts_recorded(5), what="5 attempts")

    assert history["success"] is True
    assert history["pagination"] == {"total": 5, "limit": 50, "offset": 0}
    entries = history["data"]
    assert set(entries[0]) == {
        "id",
        "deliveryId",
        "attempt",
        "event",
        "status",
        "statusDescription",
        "payload",
        "httpStatus",
        "createdAt",
        "deliveredAt",
    }
    statuses = sorted(e["status"] for e in entries)
    assert statuses == ["Error Request", "Error Request", "Error Response", "Error Response", "Success"]
    success = next(e for e in entries if e["status"] == "Success")
    assert success["httpStatus"] == 200 and success["statusDescription"] is None
    assert success["event"] == "changedStatus" and success["payload"]["newStatus"] == "screening"
    responses = [e for e in entries if e["status"] == "Error Response"]
    assert all(e["httpStatus"] == 500 and e["statusDescription"] == "HTTP 500" for e in responses)
    assert responses[0]["deliveryId"] == responses[1]["deliveryId"]
    assert sorted(e["attempt"] for e in responses) == [1, 2]
    requests_failed = [e for e in entries if e["status"] == "Error Request"]
    assert all(e["httpStatus"] is None and e["statusDescription"] for e in requests_failed)
    assert all(TIMESTAMP.match(e["createdAt"]) and TIMESTAMP.match(e["deliveredAt"]) for e in entries)

    # 001's "Handling Delivery Failures" query, and the other filters and pagination.
    errors = (await wclient.get(f"{HOOK}/history?status=Error%20Response", headers=auth)).json()
    assert errors["pagination"]["total"] == 2 and {e["status"] for e in errors["data"]} == {"Error Response"}
    page = (await wclient.get(f"{HOOK}/history?limit=2&offset=2", headers=auth)).json()
    assert page["pagination"] == {"total": 5, "limit": 2, "offset": 2}
    assert [e["id"] for e in page["data"]] == [e["id"] for e in entries[2:4]]
    by_event = (await wclient.get(f"{HOOK}/history?event=analysisCompleted", headers=auth)).json()
    assert by_event["pagination"]["total"] == 0

    for query, expected in (
        ("limit=101", "limit: Input should be less than or equal to 100"),
        ("limit=0", "limit: Input should be greater than or equal to 1"),
        ("offset=-1", "offset: Input should be greater than or equal to 0"),
        ("status=Failed", "'Success', 'Error Request' or 'Error Response'"),
        ("event=somethingElse", "'analysisCompleted' or 'changedStatus'"),
        ("limit=ten", "limit"),
    ):
        bad = await wclient.get(f"{HOOK}/history?{query}", headers=auth)
        assert bad.status_code == 422, query
        assert bad.json()["success"] is False and expected in bad.json()["error"], bad.json()


async def test_an_analysis_whose_attempts_are_exhausted_ends_failed_with_its_event(
    wclient: httpx.AsyncClient,
    auth: dict[str, str],
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dossier.pipeline import service as pipeline
    from dossier.pipeline.tasks import MAX_ATTEMPTS, run_analysis
    from dossier.queue.handlers import TaskRun, WorkerResources

    await _configure(wclient, auth, url=receiver.url + "/webhooks/kruncher", analysisCompleted=True)
    company = await _company(wclient, auth, name="Acme")
    analysis = (await wclient.post("/api/analysis", json={"projectId": company["id"]}, headers=auth)).json()[
        "data"
    ]

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the registry is unreachable")

    # Every attempt fails (a dependency is down): the tools are the part that can.
    monkeypatch.setattr(pipeline, "run_analysis_tools", broken)
    resources = WorkerResources(settings=settings, sessionmaker=sessionmaker, http=http)

    def attempt(number: int) -> TaskRun:
        return TaskRun(0, pipeline.RUN_ANALYSIS, {"analysis_id": analysis["id"]}, number, resources, "w")

    async def status() -> str:
        body = (await wclient.get(f"/api/analysis?analysisId={analysis['id']}", headers=auth)).json()
        return str(body["data"]["status"])

    with pytest.raises(RuntimeError):
        await run_analysis(attempt(MAX_ATTEMPTS - 1))  # retried: still running
    assert await status() == "running"
    await run_analysis(attempt(MAX_ATTEMPTS))  # the last one: the analysis is over
    assert await status() == "failed"
    async with sessionmaker() as session:
        events = list(
            await session.scalars(
                select(WebhookDelivery.event_type).where(WebhookDelivery.event_type == "analysisCompleted")
            )
        )
    assert events == ["analysisCompleted"]
