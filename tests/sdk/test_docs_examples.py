"""Runs the examples in docs/receiving-webhooks.md, so the page cannot drift from working code.

Each ```python block is preceded by ``<!-- example: NAME -->`` (run here) or ``<!-- not-run -->`` (a
deliberate mistake shown for contrast). The examples receive deliveries rendered by Dossier's own profiles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dossier.accounts.service import generate_webhook_secret
from dossier.webhooks.profiles import RenderedRequest, SecretVersion, get_profile
from dossier.webhooks.profiles.kernel import kernel_job_data

DOC = Path(__file__).resolve().parents[2] / "docs" / "receiving-webhooks.md"
BLOCK = re.compile(r"(?:<!-- (example: (?P<name>\w+)|not-run) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


def examples() -> dict[str, str]:
    found: dict[str, str] = {}
    for match in BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        head = match.group(0).split("\n", 1)[0]
        assert head.startswith("<!--"), (
            f"python block without an example/not-run marker:\n{match.group('code')}"
        )
        if match.group("name"):
            found[match.group("name")] = match.group("code")
    return found


EXAMPLES = examples()


def test_every_tested_example_is_covered() -> None:
    assert set(EXAMPLES) == {
        "flask_standard",
        "fastapi_standard",
        "flask_kuration",
        "fastapi_kernel",
        "redis_store",
    }


Client = Callable[[str, bytes, dict[str, str]], tuple[int, Any]]


class Example:
    """One example app: loaded from the markdown, with ``handle`` replaced by a recorder."""

    def __init__(self, name: str, secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DOSSIER_WEBHOOK_SECRET", secret)
        self.ns: dict[str, Any] = {"__name__": f"docs_example_{name}"}
        exec(compile(EXAMPLES[name], f"{DOC.name}:{name}", "exec"), self.ns)
        self.handled: list[Any] = []
        # The route looks ``handle`` up in the module globals at call time, so this swaps in a recorder.
        self.ns["handle"] = self.handled.append
        app = self.ns["app"]
        if name.startswith("flask"):
            flask_client = app.test_client()

            def post_flask(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
                response = flask_client.post(path, data=body, headers=headers)
                return response.status_code, response.get_json()

            self.post: Client = post_flask
        else:
            fastapi_client = TestClient(app)

            def post_fastapi(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
                response = fastapi_client.post(path, content=body, headers=headers)
                return response.status_code, response.json()

            self.post = post_fastapi


def deliver(
    profile_name: str,
    event: str,
    data: dict[str, Any],
    secret: str,
    *,
    delivery_id: str = "msg_doc_1",
    attempt_id: str = "att_1",
    at: datetime | None = None,
) -> RenderedRequest:
    profile = get_profile(profile_name)
    when = at or datetime.now(UTC)
    return profile.render(
        event,
        profile.envelope(event, data, occurred_at=when),
        delivery_id=delivery_id,
        attempt_id=attempt_id,
        timestamp=when,
        secrets=[SecretVersion(secret)],
    )


KURATION = (
    "kuration",
    "tool_output_ready",
    {"project_id": "p", "row_id": "r", "col_id": "c", "value": 7, "status": "success"},
)
KERNEL = (
    "kernel",
    "entity-resolution.completed",
    kernel_job_data(
        job_id="j1",
        status="completed",
        created_at="2026-06-08T15:00:00Z",
        completed_at=None,
        record={"kernel_id": 1},
    ),
)
KRUNCHER = ("kruncher", "changedStatus", {"projectId": "p", "newStatus": "diligence"})
STANDARD = ("standard", "company.updated", {"id": 1})


@pytest.mark.parametrize("name", ["flask_standard", "fastapi_standard"])
@pytest.mark.parametrize("delivery", [KURATION, KERNEL, KRUNCHER, STANDARD], ids=lambda d: d[0])
def test_standard_examples_receive_every_profile_once(
    name: str, delivery: tuple[str, str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = generate_webhook_secret()
    app = Example(name, secret, monkeypatch)
    sent = deliver(*delivery, secret)
    assert app.post("/webhooks/dossier", sent.body, sent.headers)[0] == 200
    assert app.handled == [json.loads(sent.body)]

    # A retry: new attempt id, later timestamp, same webhook-id. Acknowledged, not processed again.
    retry = deliver(*delivery, secret, attempt_id="att_2", at=datetime.now(UTC) + timedelta(seconds=5))
    assert app.post("/webhooks/dossier", retry.body, retry.headers)[0] == 200
    assert len(app.handled) == 1

    # A different delivery is processed.
    other = deliver(*delivery, secret, delivery_id="msg_doc_2")
    assert app.post("/webhooks/dossier", other.body, other.headers)[0] == 200
    assert len(app.handled) == 2


@pytest.mark.parametrize("name", ["flask_standard", "fastapi_standard"])
def test_standard_examples_reject_bad_deliveries(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_webhook_secret()
    app = Example(name, secret, monkeypatch)

    def reason(status_and_json: tuple[int, Any]) -> str:
        status, answer = status_and_json
        assert status == 401
        return str(answer.get("error") or answer.get("detail"))

    sent = deliver(*STANDARD, secret)
    reserialised = json.dumps(json.loads(sent.body), indent=1).encode()
    assert reason(app.post("/webhooks/dossier", reserialised, sent.headers)) == "signature_mismatch"
    assert (
        reason(app.post("/webhooks/dossier", sent.body.replace(b"1", b"2"), sent.headers))
        == "signature_mismatch"
    )

    wrong = deliver(*STANDARD, generate_webhook_secret())
    assert reason(app.post("/webhooks/dossier", wrong.body, wrong.headers)) == "signature_mismatch"

    stale = deliver(*STANDARD, secret, at=datetime.now(UTC) - timedelta(minutes=6), delivery_id="msg_old")
    assert reason(app.post("/webhooks/dossier", stale.body, stale.headers)) == "timestamp_too_old"

    no_sig = {k: v for k, v in sent.headers.items() if k != "webhook-signature"}
    assert reason(app.post("/webhooks/dossier", sent.body, no_sig)) == "missing_header"
    assert app.handled == []


@pytest.mark.parametrize("name", ["flask_standard", "fastapi_standard"])
def test_standard_examples_release_the_id_when_processing_fails(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = generate_webhook_secret()
    app = Example(name, secret, monkeypatch)
    calls: list[Any] = []

    def flaky(payload: Any) -> None:
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("database down")

    app.ns["handle"] = flaky
    if name.startswith("flask"):
        app.ns["app"].config["PROPAGATE_EXCEPTIONS"] = False  # answer 500 like production does
    else:
        app.post = _fastapi_without_raising(app.ns["app"])
    sent = deliver(*STANDARD, secret)
    assert app.post("/webhooks/dossier", sent.body, sent.headers)[0] == 500
    retry = deliver(*STANDARD, secret, attempt_id="att_2")
    assert app.post("/webhooks/dossier", retry.body, retry.headers)[0] == 200
    assert len(calls) == 2


def _fastapi_without_raising(app: Any) -> Client:
    client = TestClient(app, raise_server_exceptions=False)

    def post(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        response = client.post(path, content=body, headers=headers)
        return response.status_code, None

    return post


def test_flask_kuration_example(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_webhook_secret()
    app = Example("flask_kuration", secret, monkeypatch)
    sent = deliver(*KURATION, secret)
    assert app.post("/webhooks/kuration", sent.body, sent.headers) == (200, {"success": True})
    assert app.handled[0]["value"] == "7"
    # 002's canonical JSON: a proxy that re-indents the body does not break the signature.
    pretty = json.dumps(json.loads(sent.body), indent=2).encode()
    assert app.post("/webhooks/kuration", pretty, sent.headers)[0] == 200
    # The prefix is optional; a wrong one or a wrong secret is refused with its reason.
    header = sent.headers["X-Kuration-Signature"]
    assert app.post("/webhooks/kuration", sent.body, {"X-Kuration-Signature": header[7:]})[0] == 200
    assert app.post("/webhooks/kuration", sent.body, {"X-Kuration-Signature": "sha1=" + header[7:]}) == (
        401,
        {"error": "unsupported_signature"},
    )
    wrong = deliver(*KURATION, generate_webhook_secret())
    assert app.post("/webhooks/kuration", wrong.body, wrong.headers) == (401, {"error": "signature_mismatch"})
    assert app.post("/webhooks/kuration", sent.body, {}) == (401, {"error": "missing_signature"})


def test_fastapi_kernel_example_dedupes_on_webhook_id(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_webhook_secret()
    app = Example("fastapi_kernel", secret, monkeypatch)
    first = deliver(*KERNEL, secret, attempt_id="att_1")
    retry = deliver(*KERNEL, secret, attempt_id="att_2")
    assert first.headers["X-Kernel-Delivery"] != retry.headers["X-Kernel-Delivery"]
    assert app.post("/webhooks/kernel", first.body, first.headers)[0] == 200
    assert app.post("/webhooks/kernel", retry.body, retry.headers)[0] == 200
    assert [job["data"]["id"] for job in app.handled] == ["j1"]
    tampered = first.body.replace(b'"kernel_id":1', b'"kernel_id":2')
    assert app.post("/webhooks/kernel", tampered, first.headers) == (401, {"detail": "signature_mismatch"})


def test_redis_store_example() -> None:
    class FakeRedis:
        """The two redis-py calls the example makes, with their semantics."""

        def __init__(self) -> None:
            self.data: dict[str, tuple[str, int]] = {}

        def set(self, key: str, value: str, *, nx: bool, ex: int) -> bool | None:
            if nx and key in self.data:
                return None
            self.data[key] = (value, ex)
            return True

        def delete(self, key: str) -> int:
            return 1 if self.data.pop(key, None) else 0

    ns: dict[str, Any] = {"__name__": "docs_example_redis_store"}
    exec(compile(EXAMPLES["redis_store"], f"{DOC.name}:redis_store", "exec"), ns)
    redis = FakeRedis()
    guard = ns["IdempotencyGuard"](ns["RedisStore"](redis))
    assert guard.claim("msg_1") is True
    assert guard.claim("msg_1") is False
    assert redis.data == {"dossier-webhook:msg_1": ("1", 48 * 3600)}
    guard.release("msg_1")
    assert guard.claim("msg_1") is True
