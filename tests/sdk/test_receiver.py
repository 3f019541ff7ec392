"""The receiver SDK: accepts what Dossier sends, rejects everything else, with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from dossier.accounts.service import generate_webhook_secret
from dossier.sdk.receiver import (
    IdempotencyGuard,
    MemoryIdempotencyStore,
    WebhookVerificationError,
    verify_kernel,
    verify_kruncher,
    verify_kruncher_api_key,
    verify_kuration,
    verify_standard,
)
from dossier.webhooks.profiles import RenderedRequest, SecretVersion, get_profile
from dossier.webhooks.profiles.kernel import kernel_job_data

SRC = Path(__file__).resolve().parents[2] / "src"
SECRET = generate_webhook_secret()
OTHER = generate_webhook_secret()

EVENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "kuration": (
        "tool_output_ready",
        {"project_id": "p", "row_id": "r", "col_id": "c", "value": "Zürich", "status": "success"},
    ),
    "kernel": (
        "entity-resolution.completed",
        kernel_job_data(
            job_id="j1",
            status="completed",
            created_at="2026-06-08T15:00:00Z",
            completed_at="2026-06-08T15:00:32Z",
            record={"kernel_id": 1},
        ),
    ),
    "kruncher": ("analysisCompleted", {"projectId": "p", "analysisId": "a", "projectName": "Tesla"}),
    "standard": ("custom.event", {"x": 1}),
}
VENDOR_HEADER = {
    "kuration": "X-Kuration-Signature",
    "kernel": "X-Kernel-Signature",
    "kruncher": "X-Kruncher-Signature",
}


def deliver(
    name: str,
    *,
    secrets: list[SecretVersion] | None = None,
    at: datetime | None = None,
    delivery_id: str = "msg_1",
    attempt_id: str = "att_1",
) -> RenderedRequest:
    profile = get_profile(name)
    event, data = EVENTS[name]
    when = at or datetime.now(UTC)
    return profile.render(
        event,
        profile.envelope(event, data, occurred_at=when),
        delivery_id=delivery_id,
        attempt_id=attempt_id,
        timestamp=when,
        secrets=secrets or [SecretVersion(SECRET)],
    )


def vendor_verify(name: str, body: bytes, header: str | None, secret: Any) -> dict[str, Any]:
    if name == "kuration":
        return verify_kuration(body, header, secret)
    if name == "kernel":
        return verify_kernel(body, header, secret)
    return verify_kruncher(body, header, secret)


def reason(excinfo: pytest.ExceptionInfo[WebhookVerificationError]) -> str:
    return excinfo.value.reason


# ---- import hygiene ----------------------------------------------------------------------------------------


def test_importable_with_only_the_standard_library() -> None:
    # -S: no site-packages at all, so any third-party import fails; -I: ignore the environment.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dossier.sdk.receiver as r; "
        "others = [m for m in sys.modules if m.startswith('dossier') and not m.startswith('dossier.sdk') "
        "and m != 'dossier']; assert not others, others; print(r.verify_standard.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(SRC)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "verify_standard"


def test_every_public_function_has_a_docstring() -> None:
    import dossier.sdk.receiver as module

    for name in module.__all__:
        obj = getattr(module, name)
        if callable(obj):
            assert obj.__doc__, name


# ---- vendor signatures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VENDOR_HEADER))
def test_vendor_signature_accepts_a_real_delivery(name: str) -> None:
    sent = deliver(name)
    header = sent.headers[VENDOR_HEADER[name]]
    assert vendor_verify(name, sent.body, header, SECRET) == json.loads(sent.body)
    # The prefix is optional, case and surrounding space do not matter.
    assert vendor_verify(name, sent.body, header.removeprefix("sha256="), SECRET)
    assert vendor_verify(name, sent.body, "  SHA256=" + header[7:].upper() + " ", SECRET)
    # During a switch-over the receiver can hold both secrets.
    assert vendor_verify(name, sent.body, header, [OTHER, SECRET])


@pytest.mark.parametrize("name", sorted(VENDOR_HEADER))
def test_vendor_signature_rejections(name: str) -> None:
    sent = deliver(name)
    header = sent.headers[VENDOR_HEADER[name]]
    tampered = sent.body.replace(b'"event"', b'"Event"')
    cases: list[tuple[bytes, str | None, Any, str]] = [
        (tampered, header, SECRET, "signature_mismatch"),
        (sent.body, header, OTHER, "signature_mismatch"),
        (sent.body, header, SECRET.removeprefix("whsec_"), "signature_mismatch"),  # secret must be whole
        (sent.body, "sha1=" + header[7:], SECRET, "unsupported_signature"),
        (sent.body, sent.headers["webhook-signature"], SECRET, "unsupported_signature"),
        (sent.body, "sha256=abc", SECRET, "unsupported_signature"),
        (sent.body, None, SECRET, "missing_signature"),
        (sent.body, "  ", SECRET, "missing_signature"),
    ]
    for body, sig, secret, expected in cases:
        with pytest.raises(WebhookVerificationError) as excinfo:
            vendor_verify(name, body, sig, secret)
        assert reason(excinfo) == expected, (sig, expected)


def test_kuration_canonical_and_raw_modes() -> None:
    sent = deliver("kuration")
    header = sent.headers["X-Kuration-Signature"]
    assert verify_kuration(sent.body, header, SECRET, mode="raw")
    assert verify_kuration(sent.body, header, SECRET, mode="canonical")
    # A proxy that re-indents the JSON breaks a raw-body signature but not the canonical one (002).
    reformatted = json.dumps(json.loads(sent.body), indent=2).encode()
    assert verify_kuration(reformatted, header, SECRET)["value"] == "Zürich"
    with pytest.raises(WebhookVerificationError) as excinfo:
        verify_kuration(reformatted, header, SECRET, mode="raw")
    assert reason(excinfo) == "signature_mismatch"
    with pytest.raises(WebhookVerificationError) as excinfo:
        verify_kuration(b"not json", header, SECRET)
    assert reason(excinfo) == "invalid_json"
    with pytest.raises(ValueError):
        verify_kuration(sent.body, header, SECRET, mode="loose")  # type: ignore[arg-type]


def test_parsed_body_is_refused_loudly() -> None:
    sent = deliver("kernel")
    with pytest.raises(TypeError, match="raw request body"):
        verify_kernel(json.loads(sent.body), sent.headers["X-Kernel-Signature"], SECRET)


def test_kruncher_api_key_check() -> None:
    verify_kruncher_api_key("dsk_key", "dsk_key")
    for header, expected in ((None, "missing_header"), ("dsk_other", "wrong_api_key")):
        with pytest.raises(WebhookVerificationError) as excinfo:
            verify_kruncher_api_key(header, "dsk_key")
        assert reason(excinfo) == expected


# ---- Standard Webhooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_standard_accepts_every_profile(name: str) -> None:
    sent = deliver(name)
    assert verify_standard(sent.body, sent.headers, SECRET) == json.loads(sent.body)
    # Header names in any case (a plain dict is case-sensitive; frameworks' mappings are not).
    upper = {k.upper(): v for k, v in sent.headers.items()}
    assert verify_standard(sent.body, upper, SECRET)
    # Unpadded secrets are accepted, as the reference libraries do.
    assert verify_standard(sent.body, sent.headers, SECRET.rstrip("="))


def test_standard_accepts_signatures_made_by_the_standardwebhooks_package() -> None:
    body = b'{"type":"x","data":{}}'
    now = datetime.now(UTC)
    signature = standardwebhooks.Webhook(SECRET).sign("msg_x", now, body.decode())
    headers = {
        "webhook-id": "msg_x",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert verify_standard(body, headers, SECRET) == {"type": "x", "data": {}}


def test_standard_rejections() -> None:
    sent = deliver("standard")
    h = sent.headers

    def fails(body: bytes, headers: dict[str, str], secret: str = SECRET, **kw: Any) -> str:
        with pytest.raises(WebhookVerificationError) as excinfo:
            verify_standard(body, headers, secret, **kw)
        return reason(excinfo)

    assert fails(sent.body + b" ", h) == "signature_mismatch"
    assert fails(sent.body, h, OTHER) == "signature_mismatch"
    assert fails(sent.body, h | {"webhook-id": "msg_2"}) == "signature_mismatch"  # id is signed
    ts = int(h["webhook-timestamp"])
    assert fails(sent.body, h | {"webhook-timestamp": str(ts + 1)}) == "signature_mismatch"  # so is the time
    assert fails(sent.body, {k: v for k, v in h.items() if k != "webhook-id"}) == "missing_header"
    assert fails(sent.body, h | {"webhook-signature": ""}) == "missing_header"
    assert fails(sent.body, h | {"webhook-timestamp": "yesterday"}) == "invalid_timestamp"
    assert fails(sent.body, h | {"webhook-signature": "v2,abc"}) == "unsupported_signature"
    assert fails(sent.body, h | {"webhook-signature": "sha256=" + "0" * 64}) == "unsupported_signature"
    with pytest.raises(ValueError, match="base64"):
        verify_standard(sent.body, h, "whsec_not base64!")


def test_standard_timestamp_tolerance() -> None:
    sent_at = datetime.now(UTC) - timedelta(minutes=10)
    stale = deliver("standard", at=sent_at)
    with pytest.raises(WebhookVerificationError) as excinfo:
        verify_standard(stale.body, stale.headers, SECRET)
    assert reason(excinfo) == "timestamp_too_old"
    assert verify_standard(stale.body, stale.headers, SECRET, tolerance=900)
    assert verify_standard(stale.body, stale.headers, SECRET, now=sent_at + timedelta(seconds=299))
    assert verify_standard(stale.body, stale.headers, SECRET, now=sent_at.timestamp() - 299)
    naive_utc = (sent_at + timedelta(seconds=299)).replace(tzinfo=None)
    assert verify_standard(stale.body, stale.headers, SECRET, now=naive_utc)  # naive means UTC, not local

    future = deliver("standard", at=datetime.now(UTC) + timedelta(minutes=6))
    with pytest.raises(WebhookVerificationError) as excinfo:
        verify_standard(future.body, future.headers, SECRET)
    assert reason(excinfo) == "timestamp_too_new"


def test_standard_rotation_any_listed_signature_matches() -> None:
    new, old = generate_webhook_secret(), generate_webhook_secret()
    now = datetime.now(UTC)
    sent = deliver(
        "kernel",
        secrets=[SecretVersion(new), SecretVersion(old, expires_at=now + timedelta(hours=24))],
        at=now,
    )
    assert len(sent.headers["webhook-signature"].split()) == 2
    assert verify_standard(sent.body, sent.headers, new)
    assert verify_standard(sent.body, sent.headers, old)  # a receiver that has not switched yet
    # Unknown versions in the list are skipped, not fatal.
    mixed = sent.headers | {"webhook-signature": "v1a,Zm9v " + sent.headers["webhook-signature"]}
    assert verify_standard(sent.body, mixed, old)
    with pytest.raises(WebhookVerificationError):
        verify_standard(sent.body, sent.headers, OTHER)


# ---- idempotency -------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_guard_processes_each_webhook_id_once() -> None:
    guard = IdempotencyGuard()
    first = deliver("kernel", delivery_id="msg_a", attempt_id="att_1")
    retry = deliver("kernel", delivery_id="msg_a", attempt_id="att_2")
    # X-Kernel-Delivery changes per attempt, so deduplicating on it would process the retry twice.
    assert first.headers["X-Kernel-Delivery"] != retry.headers["X-Kernel-Delivery"]
    assert guard.claim(first.headers["webhook-id"]) is True
    assert guard.claim(retry.headers["webhook-id"]) is False
    assert guard.claim("msg_b") is True
    guard.release("msg_a")
    assert guard.claim("msg_a") is True
    with pytest.raises(ValueError):
        guard.claim("")


def test_guard_once_releases_when_processing_fails() -> None:
    guard = IdempotencyGuard()
    with pytest.raises(RuntimeError), guard.once("msg_1") as first:
        assert first
        raise RuntimeError("database down")
    with guard.once("msg_1") as first:  # the sender's retry is processed
        assert first
    with guard.once("msg_1") as first:
        assert not first
    # A duplicate that fails does not release the original's claim.
    with pytest.raises(RuntimeError), guard.once("msg_1") as first:
        raise RuntimeError
    assert guard.claim("msg_1") is False


def test_memory_store_ttl_and_lru() -> None:
    clock = FakeClock()
    store = MemoryIdempotencyStore(max_entries=3, clock=clock)
    guard = IdempotencyGuard(store, ttl=60)
    assert guard.claim("a") and guard.claim("b") and guard.claim("c")
    assert not guard.claim("a")  # touching "a" makes "b" the least recently used
    assert guard.claim("d")  # evicts "b"
    assert len(store) == 3
    assert guard.claim("b")
    assert not guard.claim("d")
    clock.now += 61
    assert guard.claim("d")  # expired


def test_custom_store_protocol() -> None:
    class DictStore:
        def __init__(self) -> None:
            self.keys: dict[str, float] = {}

        def add(self, key: str, ttl: float) -> bool:
            if key in self.keys:
                return False
            self.keys[key] = ttl
            return True

        def discard(self, key: str) -> None:
            self.keys.pop(key, None)

    store = DictStore()
    guard = IdempotencyGuard(store, ttl=5)
    assert guard.claim("x") and not guard.claim("x")
    assert store.keys == {"x": 5}
    guard.release("x")
    assert store.keys == {}


def test_memory_store_is_thread_safe() -> None:
    guard = IdempotencyGuard()
    winners: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        won = guard.claim("msg_race")
        with lock:
            winners.append(won)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert winners.count(True) == 1
