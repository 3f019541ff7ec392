"""Wire profiles: exact bytes and headers, verified by code we did not write.

Third-party verifiers: the ``standardwebhooks`` package from PyPI (for the Standard Webhooks headers every
profile carries) and the functions printed in ``002`` and ``003``, copied verbatim below.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import standardwebhooks

from dossier.accounts.service import generate_webhook_secret
from dossier.sdk import receiver
from dossier.webhooks.profiles import (
    PROFILES,
    RenderedRequest,
    SecretVersion,
    UnknownProfile,
    WebhookProfile,
    get_profile,
)
from dossier.webhooks.profiles.kernel import KERNEL_SCHEDULE, kernel_job_data
from dossier.webhooks.profiles.kruncher import analysis_completed_data, changed_status_data
from dossier.webhooks.profiles.kuration import tool_output_ready_payload, value_string
from dossier.webhooks.retry import DEFAULT_SCHEDULE, RetrySchedule

# ---- Verification functions exactly as 002 and 003 print them (do not "improve" them) ----------------------


def verify_webhook_signature(raw_body: bytes, signature_header: str, secret: str) -> bool:
    """True if signature_header matches sha256 over canonical JSON (compact separators)."""
    if not signature_header:
        return False
    trimmed = signature_header.strip()
    if trimmed.startswith("sha256="):  # noqa: SIM108 - verbatim from 002
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
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.removeprefix("sha256="))


# ---- fixtures ----------------------------------------------------------------------------------------------

SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # base64 of bytes 0..31
FIXED = datetime(2024, 1, 20, 14, 45, 1, tzinfo=UTC)
PROJECT = "98e79cf8-87c9-49b0-9899-58edb6f31234"
COLUMN = "466527f1-ef79-4cd6-bf03-c878681d1234"
ROW = "Jxl8KwcI6bAHH8wdQ123"


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def kuration_payload(value: Any = "Technology") -> dict[str, Any]:
    return get_profile("kuration").envelope(
        "tool_output_ready",
        {"project_id": PROJECT, "row_id": ROW, "col_id": COLUMN, "value": value, "status": "success"},
        occurred_at=datetime(2024, 1, 20, 14, 45, tzinfo=UTC),
    )


def kernel_payload(event: str = "entity-resolution.completed") -> dict[str, Any]:
    failed = event.endswith(".failed")
    data = kernel_job_data(
        job_id="550e8400-e29b-41d4-a716-446655440000",
        status="failed" if failed else "completed",
        created_at=datetime(2026, 6, 8, 15, 0, tzinfo=UTC),
        completed_at=datetime(2026, 6, 8, 15, 0, 32, tzinfo=UTC),
        record=None if failed else {"kernel_id": 6347422643, "legal_name": "Stripe, Inc."},
    )
    return get_profile("kernel").envelope(event, data, occurred_at=datetime(2026, 6, 8, 15, 30, tzinfo=UTC))


def kruncher_payload() -> dict[str, Any]:
    data = analysis_completed_data(
        project_id="521a93a6-091d-4943-ba13-7c1a654a14ae",
        analysis_id="f8e7d6c5-b4a3-2f1e-0d9c-8b7a6f5e4d3c",
        project_name="Tesla Motors",
        kruncher_entity_company_id="04cc17f7-57d9-47ad-ba61-11912af9c027",
    )
    return get_profile("kruncher").envelope("analysisCompleted", data, occurred_at=FIXED)


def standard_payload() -> dict[str, Any]:
    return get_profile("standard").envelope(
        "tool_output_ready",
        {"row_id": ROW, "value": 42},
        occurred_at=datetime(2024, 1, 20, 14, 45, tzinfo=UTC),
    )


EVENTS: dict[str, tuple[str, Any]] = {
    "kuration": ("tool_output_ready", kuration_payload),
    "kernel": ("entity-resolution.completed", kernel_payload),
    "kruncher": ("analysisCompleted", kruncher_payload),
    "standard": ("tool_output_ready", standard_payload),
}


def render(
    name: str,
    *,
    secrets: list[SecretVersion] | None = None,
    timestamp: datetime = FIXED,
    attempt_id: str = "att_1",
    options: dict[str, str] | None = None,
) -> RenderedRequest:
    event, build = EVENTS[name]
    return get_profile(name).render(
        event,
        build(),
        delivery_id="msg_2b4kVq",
        attempt_id=attempt_id,
        timestamp=timestamp,
        secrets=secrets or [SecretVersion(SECRET)],
        options=options,
    )


def standard_headers(secret: str, body: bytes, ts: datetime = FIXED) -> dict[str, str]:
    """The three Standard Webhooks headers, computed with the standardwebhooks package's own signer."""
    signature = standardwebhooks.Webhook(secret).sign("msg_2b4kVq", ts, body.decode())
    return {
        "webhook-id": "msg_2b4kVq",
        "webhook-timestamp": str(int(ts.timestamp())),
        "webhook-signature": signature,
    }


# ---- registry ----------------------------------------------------------------------------------------------


def test_registry_has_one_profile_per_module() -> None:
    assert set(PROFILES) == {"kuration", "kernel", "kruncher", "standard"}
    assert all(isinstance(p, WebhookProfile) and p.name == n for n, p in PROFILES.items())
    assert {n: p.timeout for n, p in PROFILES.items()} == {
        "kuration": 5.0,
        "kernel": 5.0,
        "kruncher": 30.0,
        "standard": 15.0,
    }
    assert PROFILES["kernel"].schedule is KERNEL_SCHEDULE
    assert PROFILES["kernel"].schedule.max_attempts == 3
    for name in ("kuration", "kruncher", "standard"):
        assert PROFILES[name].schedule is DEFAULT_SCHEDULE
    with pytest.raises(UnknownProfile):
        get_profile("slack")
    with pytest.raises(TypeError):
        PROFILES["x"] = PROFILES["standard"]  # type: ignore[index]


def test_events_each_profile_carries() -> None:
    assert PROFILES["kuration"].carries("tool_output_ready")
    assert not PROFILES["kuration"].carries("analysisCompleted")
    for event in (
        "entity-resolution.completed",
        "entity-resolution.failed",
        "firmographic-enrichment.completed",
        "firmographic-enrichment.failed",
    ):
        assert PROFILES["kernel"].carries(event)
    assert not PROFILES["kernel"].carries("tool_output_ready")
    assert PROFILES["kruncher"].carries("analysisCompleted") and PROFILES["kruncher"].carries("changedStatus")
    assert PROFILES["standard"].carries("anything.at.all")
    with pytest.raises(ValueError, match="does not carry"):
        PROFILES["kernel"].render(
            "tool_output_ready",
            kuration_payload(),
            delivery_id="d",
            attempt_id="a",
            timestamp=FIXED,
            secrets=[SecretVersion(SECRET)],
        )


def test_schedule_override_returns_a_copy() -> None:
    fast = RetrySchedule(delays=(0.01, 0.02))
    profile = get_profile("kuration", schedule=fast)
    assert profile.schedule is fast and profile.timeout == 5.0 and profile.name == "kuration"
    assert PROFILES["kuration"].schedule is DEFAULT_SCHEDULE


# ---- kuration ----------------------------------------------------------------------------------------------


def test_kuration_bytes_and_headers_exactly() -> None:
    sent = render("kuration")
    assert sent.body == (
        b'{"event":"tool_output_ready","project_id":"98e79cf8-87c9-49b0-9899-58edb6f31234",'
        b'"row_id":"Jxl8KwcI6bAHH8wdQ123","col_id":"466527f1-ef79-4cd6-bf03-c878681d1234",'
        b'"value":"Technology","status":"success","timestamp":"2024-01-20T14:45:00.000000"}'
    )
    # 002: the body IS json.dumps(payload, separators=(",", ":")).encode()
    assert sent.body == json.dumps(kuration_payload(), separators=(",", ":")).encode()
    assert sent.headers == {
        "Content-Type": "application/json",
        "User-Agent": "Kuration-Webhook/1.0",
        "X-Kuration-Signature": "sha256=fb2f25cb9a8249f7d8799958f5fbb6a25f1bdec682a23319bfb4c856622c93b2",
        **standard_headers(SECRET, sent.body),
    }
    assert sent.headers["X-Kuration-Signature"] == "sha256=" + hex_hmac(SECRET, sent.body)


def test_kuration_verified_by_the_function_printed_in_002() -> None:
    sent = render("kuration")
    assert verify_webhook_signature(sent.body, sent.headers["X-Kuration-Signature"], SECRET)
    assert not verify_webhook_signature(
        sent.body, sent.headers["X-Kuration-Signature"], generate_webhook_secret()
    )
    # A receiver that signs the raw body (the 000 style, after stripping the prefix) agrees too.
    assert verify_signature(sent.body, sent.headers["X-Kuration-Signature"], SECRET)


def test_kuration_non_ascii_and_non_string_values() -> None:
    payload = kuration_payload(value={"name": "Café Zürich", "employees": 12})
    assert payload["value"] == '{"name":"Café Zürich","employees":12}'
    sent = get_profile("kuration").render(
        "tool_output_ready",
        payload,
        delivery_id="d1",
        attempt_id="a1",
        timestamp=FIXED,
        secrets=[SecretVersion(SECRET)],
    )
    assert sent.body.isascii()  # ensure_ascii=True, as 002's canonical form has it
    assert b"Caf\\u00e9" in sent.body
    assert verify_webhook_signature(sent.body, sent.headers["X-Kuration-Signature"], SECRET)
    assert value_string("x") == "x"
    assert value_string(42) == "42"
    assert value_string([1, "a"]) == '[1,"a"]'
    assert value_string(None) == ""
    assert value_string(True) == "true"


def test_kuration_payload_helper_orders_fields_as_documented() -> None:
    payload = tool_output_ready_payload(
        project_id=PROJECT,
        row_id=ROW,
        col_id=COLUMN,
        value=3.5,
        status="error",
        timestamp=datetime(2024, 1, 20, 15, 45, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
    )
    assert list(payload) == ["event", "project_id", "row_id", "col_id", "value", "status", "timestamp"]
    assert payload["value"] == "3.5"
    assert payload["timestamp"] == "2024-01-20T14:45:00.123456"  # converted to UTC, naive style of 002


# ---- kernel ------------------------------------------------------------------------------------------------


def test_kernel_bytes_and_headers_exactly() -> None:
    sent = render("kernel")
    assert sent.body == (
        b'{"event":"entity-resolution.completed","timestamp":"2026-06-08T15:30:00Z",'
        b'"data":{"id":"550e8400-e29b-41d4-a716-446655440000","status":"completed",'
        b'"created_at":"2026-06-08T15:00:00Z","completed_at":"2026-06-08T15:00:32Z",'
        b'"record":{"kernel_id":6347422643,"legal_name":"Stripe, Inc."}}}'
    )
    assert sent.headers == {
        "Content-Type": "application/json",
        "User-Agent": "Dossier-Webhook/1.0",
        "X-Kernel-Signature": "sha256=" + hex_hmac(SECRET, sent.body),
        "X-Kernel-Event": "entity-resolution.completed",
        "X-Kernel-Delivery": "att_1",
        **standard_headers(SECRET, sent.body),
    }


def test_kernel_failed_job_has_null_record() -> None:
    payload = kernel_payload("firmographic-enrichment.failed")
    assert payload["data"]["status"] == "failed" and payload["data"]["record"] is None
    with pytest.raises(ValueError, match="needs status"):
        get_profile("kernel").envelope(
            "entity-resolution.failed", kernel_payload()["data"], occurred_at=FIXED
        )


def test_kernel_verified_by_the_function_printed_in_003() -> None:
    sent = render("kernel")
    assert verify_signature(sent.body, sent.headers["X-Kernel-Signature"], SECRET)
    assert not verify_signature(sent.body + b" ", sent.headers["X-Kernel-Signature"], SECRET)
    assert not verify_signature(sent.body, sent.headers["X-Kernel-Signature"], generate_webhook_secret())


def test_kernel_delivery_header_is_per_attempt_webhook_id_is_stable() -> None:
    first = render("kernel", attempt_id="att_1")
    retry = render("kernel", attempt_id="att_2", timestamp=FIXED + timedelta(seconds=30))
    assert first.headers["X-Kernel-Delivery"] != retry.headers["X-Kernel-Delivery"]
    assert first.headers["webhook-id"] == retry.headers["webhook-id"] == "msg_2b4kVq"
    assert first.body == retry.body  # the stored envelope is resent unchanged


# ---- kruncher ----------------------------------------------------------------------------------------------


def test_kruncher_bytes_and_headers_exactly() -> None:
    sent = render("kruncher")
    assert sent.body == (
        b'{"event":"analysisCompleted","data":{"projectId":"521a93a6-091d-4943-ba13-7c1a654a14ae",'
        b'"analysisId":"f8e7d6c5-b4a3-2f1e-0d9c-8b7a6f5e4d3c","projectName":"Tesla Motors",'
        b'"kruncherEntityCompanyId":"04cc17f7-57d9-47ad-ba61-11912af9c027"}}'
    )
    assert sent.headers == {
        "Content-Type": "application/json",
        "User-Agent": "Dossier-Webhook/1.0",
        "x-delivery-id": "msg_2b4kVq",  # stable: 001 tells receivers to dedupe on it
        "X-Kruncher-Signature": "sha256=" + hex_hmac(SECRET, sent.body),
        **standard_headers(SECRET, sent.body),
    }
    assert "x-kruncher-api-key" not in {k.lower() for k in sent.headers}
    # Signed like kernel, so 003's printed verifier accepts it as well.
    assert verify_signature(sent.body, sent.headers["X-Kruncher-Signature"], SECRET)


def test_kruncher_api_key_only_when_opted_in() -> None:
    sent = render("kruncher", options={"api_key": "dsk_account_key"})
    assert sent.headers["x-kruncher-api-key"] == "dsk_account_key"
    with pytest.raises(ValueError, match="no option"):
        render("kruncher", options={"apikey": "typo"})
    with pytest.raises(ValueError, match="no option"):
        render("kernel", options={"api_key": "k"})


def test_kruncher_changed_status_payload() -> None:
    data = changed_status_data(
        project_id="521a93a6-091d-4943-ba13-7c1a654a14ae",
        project_name="Tesla Motors",
        previous_status="screening",
        new_status="diligence",
        stage="Series B",
        changed_at=datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
    )
    payload = get_profile("kruncher").envelope("changedStatus", data, occurred_at=FIXED)
    assert payload == {
        "event": "changedStatus",
        "data": {
            "projectId": "521a93a6-091d-4943-ba13-7c1a654a14ae",
            "projectName": "Tesla Motors",
            "previousStatus": "screening",
            "newStatus": "diligence",
            "stage": "Series B",
            "changedAt": "2024-01-15T10:30:00Z",
        },
    }


# ---- standard ----------------------------------------------------------------------------------------------


def test_standard_bytes_and_headers_exactly() -> None:
    sent = render("standard")
    assert sent.body == (
        b'{"type":"tool_output_ready","timestamp":"2024-01-20T14:45:00.000000Z",'
        b'"data":{"row_id":"Jxl8KwcI6bAHH8wdQ123","value":42}}'
    )
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, b"msg_2b4kVq.1705761901." + sent.body, hashlib.sha256).digest()
    ).decode()
    assert sent.headers == {
        "Content-Type": "application/json",
        "User-Agent": "Dossier-Webhook/1.0",
        "webhook-id": "msg_2b4kVq",
        "webhook-timestamp": "1705761901",
        "webhook-signature": "v1," + expected,
    }
    assert sent.headers == {"Content-Type": "application/json", "User-Agent": "Dossier-Webhook/1.0"} | (
        standard_headers(SECRET, sent.body)
    )


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_profile_verifies_with_the_standardwebhooks_package(name: str) -> None:
    secret = generate_webhook_secret()
    sent = render(name, secrets=[SecretVersion(secret)], timestamp=datetime.now(UTC))
    parsed = standardwebhooks.Webhook(secret).verify(sent.body, sent.headers)
    assert parsed == json.loads(sent.body)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(generate_webhook_secret()).verify(sent.body, sent.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(sent.body.replace(b"}", b" }", 1), sent.headers)
    # And our own SDK agrees with the package.
    assert receiver.verify_standard(sent.body, sent.headers, secret) == parsed


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_profile_uses_the_documented_timestamp_header(name: str) -> None:
    late = FIXED + timedelta(hours=5, microseconds=999_999)
    sent = render(name, timestamp=late)
    assert sent.headers["webhook-timestamp"] == str(int(late.timestamp()))  # integer seconds, floored


# ---- rotation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_rotation_grace_old_and_new_secret_both_sign(name: str) -> None:
    new, old = generate_webhook_secret(), generate_webhook_secret()
    now = datetime.now(UTC)
    secrets = [SecretVersion(new), SecretVersion(old, expires_at=now + timedelta(hours=24))]
    sent = render(name, secrets=secrets, timestamp=now)
    signatures = sent.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (new, old):
        standardwebhooks.Webhook(secret).verify(sent.body, sent.headers)
    # Vendor signatures hold one value: the new secret signs them at once.
    vendor = {
        "kuration": "X-Kuration-Signature",
        "kernel": "X-Kernel-Signature",
        "kruncher": "X-Kruncher-Signature",
    }
    if name in vendor:
        assert verify_signature(sent.body, sent.headers[vendor[name]], new)
        assert not verify_signature(sent.body, sent.headers[vendor[name]], old)


def test_rotation_grace_over_old_secret_stops_signing() -> None:
    new, old = generate_webhook_secret(), generate_webhook_secret()
    now = datetime.now(UTC)
    sent = render("standard", secrets=[SecretVersion(new), SecretVersion(old, expires_at=now)], timestamp=now)
    assert len(sent.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(old).verify(sent.body, sent.headers)
    with pytest.raises(ValueError, match="current"):
        render("standard", secrets=[SecretVersion(old, expires_at=now), SecretVersion(new)])


# ---- refusals ----------------------------------------------------------------------------------------------


def test_render_refuses_caller_mistakes() -> None:
    profile = get_profile("kuration")
    good: dict[str, Any] = {
        "delivery_id": "d",
        "attempt_id": "a",
        "timestamp": FIXED,
        "secrets": [SecretVersion(SECRET)],
    }
    with pytest.raises(ValueError, match="payload"):
        profile.render("tool_output_ready", {"event": "other"}, **good)
    with pytest.raises(ValueError, match="payload"):
        get_profile("standard").render("x", {"event": "x"}, **good)
    with pytest.raises(ValueError, match="single-line"):
        profile.render("tool_output_ready", kuration_payload(), **(good | {"delivery_id": "d\r\nX-Evil: 1"}))
    with pytest.raises(ValueError, match="secret"):
        profile.render("tool_output_ready", kuration_payload(), **(good | {"secrets": []}))
    with pytest.raises(ValueError, match="base64"):
        profile.render(
            "tool_output_ready", kuration_payload(), **(good | {"secrets": [SecretVersion("whsec_!!")]})
        )
    with pytest.raises(ValueError):
        get_profile("standard").render("x", {"type": "x", "data": {"v": float("nan")}}, **good)
    with pytest.raises(ValueError, match="lacks"):
        profile.envelope("tool_output_ready", {"row_id": "r"}, occurred_at=FIXED)


def test_naive_timestamps_are_utc() -> None:
    aware = render("standard", timestamp=FIXED)
    naive = render("standard", timestamp=FIXED.replace(tzinfo=None))
    assert aware == naive
