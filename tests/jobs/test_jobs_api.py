"""The jobs API of 003 over HTTP: jobs run by a real worker with the column tools, callbacks to a real
receiver on 127.0.0.1 verified with 003's own ``verify_signature``, and every failure path."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.service import NewAccount
from dossier.enrichment.registry.service import kernel_id_for
from dossier.jobs.models import Job
from dossier.net import OutboundClient
from dossier.settings import Settings
from dossier.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.conftest import Receiver
from tests.helpers import eventually, running_worker
from tests.jobs.conftest import verify_signature

ER = "/rest/v1/entity-resolution"
FIRMO = "/rest/v1/firmographics"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MICRON = kernel_id_for("pytickersymbols", "Micron Technology")


@pytest.fixture
def key(account: NewAccount) -> dict[str, str]:
    """003 authenticates with `x-api-key`."""
    return {"x-api-key": account.api_key}


async def _job_count(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


async def _final(client: httpx.AsyncClient, path: str, key: dict[str, str]) -> dict[str, Any] | None:
    body: dict[str, Any] = (await client.get(path, headers=key)).json()
    return body if body["status"] in ("completed", "failed") else None


async def _wait_final(client: httpx.AsyncClient, path: str, key: dict[str, str]) -> dict[str, Any]:
    return await eventually(lambda: _final(client, path, key), what=path)


async def test_entity_resolution_completes_and_calls_back_signed(
    wclient: httpx.AsyncClient,
    key: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    response = await wclient.post(
        ER,
        json={
            "legal_name": "Micron Technology",
            "country": "US",
            "webhook_url": receiver.url + "/webhooks/kernel",
        },
        headers=key,
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert list(job) == ["id", "status", "created_at", "completed_at", "record"]
    assert UUID.match(job["id"]) and job["status"] == "pending"
    assert TIMESTAMP.match(job["created_at"]) and job["completed_at"] is None and job["record"] is None

    async with running_worker(settings, sessionmaker, http):
        done = await eventually(lambda: _final(wclient, f"{ER}/{job['id']}", key), what="job finished")
        [request] = await receiver.wait_for(1)
    assert list(done) == ["id", "status", "created_at", "completed_at", "record"]
    assert done["status"] == "completed" and TIMESTAMP.match(done["completed_at"])
    assert done["record"]["kernel_id"] == MICRON and done["record"]["domain"] == "micron.com"

    # 003's receiver side: headers, then verify_signature over the raw body with the account's secret.
    assert request.path == "/webhooks/kernel" and request.headers["content-type"] == "application/json"
    assert request.headers["x-kernel-event"] == "entity-resolution.completed"
    assert request.headers["x-kernel-delivery"]
    assert verify_signature(request.body, request.headers["x-kernel-signature"], account.webhook_secret)
    assert not verify_signature(request.body, request.headers["x-kernel-signature"], "whsec_wrong")
    payload = json.loads(request.body)
    assert list(payload) == ["event", "timestamp", "data"]
    assert payload["event"] == "entity-resolution.completed" and TIMESTAMP.match(payload["timestamp"])
    # The callback's data is the job exactly as GET answers it.
    assert payload["data"] == done


async def test_no_match_fails_with_a_reason_and_a_failed_callback(
    wclient: httpx.AsyncClient,
    key: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    job = (
        await wclient.post(
            ER, json={"legal_name": "Zyxel Obscure Widgets GmbH", "webhook_url": receiver.url}, headers=key
        )
    ).json()
    async with running_worker(settings, sessionmaker, http):
        done = await eventually(lambda: _final(wclient, f"{ER}/{job['id']}", key), what="job finished")
        [request] = await receiver.wait_for(1)
    assert done["status"] == "failed" and done["record"] is None
    assert "no registry company matches" in done["reason"]
    assert request.headers["x-kernel-event"] == "entity-resolution.failed"
    assert verify_signature(request.body, request.headers["x-kernel-signature"], account.webhook_secret)
    data = json.loads(request.body)["data"]
    assert data == {k: done[k] for k in ("id", "status", "created_at", "completed_at", "record")}


async def test_address_fields_are_evidence_and_a_near_miss_reports_its_candidates(
    wclient: httpx.AsyncClient,
    key: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    found = await wclient.post(
        ER,
        json={"legal_name": "MICRON TECHNOLOGY INC", "city": "Boise", "postal_code": "83716", "address": "x"},
        headers=key,
    )
    near = await wclient.post(ER, json={"legal_name": "Micron Technology III"}, headers=key)
    elsewhere = await wclient.post(ER, json={"legal_name": "Micron Technology", "city": "Lyon"}, headers=key)
    assert found.status_code == near.status_code == elsewhere.status_code == 202
    async with running_worker(settings, sessionmaker, http):
        done = await _wait_final(wclient, f"{ER}/{found.json()['id']}", key)
        missed = await _wait_final(wclient, f"{ER}/{near.json()['id']}", key)
        other_city = await _wait_final(wclient, f"{ER}/{elsewhere.json()['id']}", key)

    assert done["status"] == "completed" and done["record"]["kernel_id"] == MICRON
    assert "city" in done["record"]["matched_on"]
    [best, *_] = done["record"]["candidates"]
    assert best["kernel_id"] == MICRON and best["features"]["city"] == {
        "query": "boise",
        "candidate": "boise",
        "agrees": True,
    }
    assert best["features"]["legal_form"] == {"query": "inc", "candidate": None, "agrees": None}

    # Nothing matched: 003's failed job (record null) with the records that came close and why not.
    assert missed["status"] == "failed" and missed["record"] is None
    assert missed["candidates"][0]["kernel_id"] == MICRON
    assert missed["candidates"][0]["features"]["conflicts"] == ["numbers differ (3 / none)"]
    assert missed["candidates"][0]["score"] < settings.registry_match_threshold
    # The same name in another city is not taken on the name alone.
    assert other_city["status"] == "failed"
    assert other_city["candidates"][0]["features"]["city"]["agrees"] is False


async def test_firmographics_of_a_resolved_company_and_of_an_unknown_kernel_id(
    wclient: httpx.AsyncClient,
    key: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    async with running_worker(settings, sessionmaker, http):
        resolved = (await wclient.post(ER, json={"legal_name": "Micron Technology Inc"}, headers=key)).json()
        resolved = await eventually(lambda: _final(wclient, f"{ER}/{resolved['id']}", key))
        kernel_id = resolved["record"]["kernel_id"]
        good = await wclient.post(
            FIRMO, json={"kernel_id": kernel_id, "webhook_url": receiver.url}, headers=key
        )
        assert good.status_code == 202, good.text
        bad = await wclient.post(
            FIRMO, json={"kernel_id": "999999999999", "webhook_url": receiver.url}, headers=key
        )
        good_done = await eventually(lambda: _final(wclient, f"{FIRMO}/{good.json()['id']}", key))
        bad_done = await eventually(lambda: _final(wclient, f"{FIRMO}/{bad.json()['id']}", key))
        requests = await receiver.wait_for(2)
    assert good_done["status"] == "completed"
    assert good_done["record"]["kernel_id"] == kernel_id and good_done["record"]["name"]
    assert bad_done["status"] == "failed" and bad_done["record"] is None
    assert bad_done["reason"] == "no registry company has kernel_id 999999999999"
    events = sorted(r.headers["x-kernel-event"] for r in requests)
    assert events == ["firmographic-enrichment.completed", "firmographic-enrichment.failed"]
    for request in requests:
        assert verify_signature(request.body, request.headers["x-kernel-signature"], account.webhook_secret)
    # A job is found only under its own kind.
    wrong_kind = await wclient.get(f"{ER}/{good_done['id']}", headers=key)
    assert wrong_kind.status_code == 404


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/hook", "plain http is refused"),
        ("https://10.0.0.7/hook", "webhook_url refused"),
        ("https://169.254.169.254/latest", "webhook_url refused"),
        ("ftp://example.com/x", "only http and https"),
        ("not a url", "webhook_url refused"),
    ],
)
async def test_a_refused_webhook_url_is_422_and_creates_no_job(
    wclient: httpx.AsyncClient,
    key: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    url: str,
    expected: str,
) -> None:
    for path, body in ((ER, {"legal_name": "Stripe"}), (FIRMO, {"kernel_id": "1"})):
        response = await wclient.post(path, json={**body, "webhook_url": url}, headers=key)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_input" and expected in error["message"], error
    batch = await wclient.post(
        f"{ER}/batch",
        json={"inputs": [{"legal_name": "A"}, {"legal_name": "B", "webhook_url": url}]},
        headers=key,
    )
    assert batch.status_code == 422
    assert await _job_count(sessionmaker) == 0


async def test_unknown_ids_bad_bodies_and_missing_keys_use_the_error_envelope(
    wclient: httpx.AsyncClient, key: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for path in (f"{ER}/00000000-0000-4000-8000-000000000000", f"{FIRMO}/nope", f"{ER}/{'x' * 100}"):
        response = await wclient.get(path, headers=key)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    missing = await wclient.post(ER, json={"website": "stripe.com"}, headers=key)
    assert missing.status_code == 422 and "legal_name" in missing.json()["error"]["message"]
    blank = await wclient.post(ER, json={"legal_name": "  "}, headers=key)
    assert blank.status_code == 422
    no_key = await wclient.post(ER, json={"legal_name": "Stripe"})
    assert no_key.status_code == 401
    assert no_key.json() == {
        "error": {
            "code": "not_authenticated",
            "message": "missing API key: send it in the kur-api-key, x-api-key or Authorization header",
            "detail": None,
        }
    }
    bad_json = await wclient.post(ER, content=b"{", headers={**key, "Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "malformed_request"
    assert await _job_count(sessionmaker) == 0


async def test_another_accounts_job_is_not_found(
    wclient: httpx.AsyncClient, key: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    from dossier.accounts import service as accounts

    async with sessionmaker() as session, session.begin():
        other = await accounts.create_account(session, "other")
    job = (await wclient.post(ER, json={"legal_name": "Stripe"}, headers=key)).json()
    response = await wclient.get(f"{ER}/{job['id']}", headers={"x-api-key": other.api_key})
    assert response.status_code == 404


async def test_batch_answers_one_job_per_input_in_order(
    wclient: httpx.AsyncClient,
    key: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    names = ["Micron Technology", "Zyxel Obscure Widgets GmbH", "Microsoft Corporation"]
    response = await wclient.post(
        f"{ER}/batch", json={"inputs": [{"legal_name": n} for n in names]}, headers=key
    )
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert len(jobs) == 3 and len({j["id"] for j in jobs}) == 3
    assert all(j["status"] == "pending" for j in jobs)
    async with running_worker(settings, sessionmaker, http):
        done = [await _wait_final(wclient, f"{ER}/{job['id']}", key) for job in jobs]
    assert [d["status"] for d in done] == ["completed", "failed", "completed"]
    assert done[0]["record"]["kernel_id"] == MICRON and done[2]["record"]["name"] == "Microsoft"

    too_many = await wclient.post(
        f"{ER}/batch", json={"inputs": [{"legal_name": f"C{i}"} for i in range(1001)]}, headers=key
    )
    assert too_many.status_code == 422 and "at most 1000 items" in too_many.json()["error"]["message"]
    empty = await wclient.post(f"{ER}/batch", json={"inputs": []}, headers=key)
    assert empty.status_code == 422
    assert await _job_count(sessionmaker) == 3


async def test_a_full_batch_of_1000_is_accepted(
    wclient: httpx.AsyncClient, key: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    inputs = [{"legal_name": f"Company {i}"} for i in range(1000)]
    response = await wclient.post(f"{ER}/batch", json={"inputs": inputs}, headers=key)
    assert response.status_code == 202
    ids = [job["id"] for job in response.json()["jobs"]]
    assert len(set(ids)) == 1000
    async with sessionmaker() as session:
        names = {job_id: data for job_id, data in await session.execute(select(Job.id, Job.input))}
    assert [names[i]["legal_name"] for i in ids] == [f"Company {i}" for i in range(1000)]


async def test_a_receiver_that_fails_gets_exactly_3_attempts(
    wclient: httpx.AsyncClient,
    key: dict[str, str],
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    receiver.answers = [(500, {}, b"down")]
    job = (
        await wclient.post(
            ER, json={"legal_name": "Micron Technology", "webhook_url": receiver.url}, headers=key
        )
    ).json()

    async def failed_delivery() -> WebhookDelivery | None:
        async with sessionmaker() as session:
            delivery = await session.scalar(select(WebhookDelivery))
            return delivery if delivery is not None and delivery.status == "failed" else None

    async with running_worker(settings, sessionmaker, http):
        delivery = await eventually(failed_delivery, what="delivery permanently failed")
        requests = await receiver.wait_for(3)
        # 30 s and 2 min at the test time scale are 30 ms and 120 ms: a 4th attempt would have come by now.
        await asyncio.sleep(0.5)
    assert len(receiver.requests) == 3
    assert delivery.attempts == 3 and delivery.target_url == receiver.url
    # Each attempt is signed, and X-Kernel-Delivery differs per attempt (as 003 says).
    assert len({r.headers["x-kernel-delivery"] for r in requests}) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for request in requests:
        assert verify_signature(request.body, request.headers["x-kernel-signature"], account.webhook_secret)
    async with sessionmaker() as session:
        attempts = list(await session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.number)))
    assert [a.outcome for a in attempts] == ["Error Response"] * 3
    assert [a.response_status for a in attempts] == [500, 500, 500]
    # The job itself completed: a failed callback does not undo its result.
    assert (await wclient.get(f"{ER}/{job['id']}", headers=key)).json()["status"] == "completed"


async def test_a_receiver_that_is_down_gets_3_attempts_recorded_as_error_request(
    wclient: httpx.AsyncClient,
    key: dict[str, str],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    await wclient.post(FIRMO, json={"kernel_id": "42", "webhook_url": url}, headers=key)

    async def attempts() -> list[WebhookAttempt] | None:
        async with sessionmaker() as session:
            delivery = await session.scalar(select(WebhookDelivery))
            if delivery is None or delivery.status != "failed":
                return None
            return list(await session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.number)))

    async with running_worker(settings, sessionmaker, http):
        made = await eventually(attempts, what="3 attempts")
    assert [a.outcome for a in made] == ["Error Request"] * 3
    assert all(a.response_status is None and a.error_text for a in made)
