"""The webhook dispatcher: one queue task = one HTTP attempt of one delivery; and Slack messages.

Each attempt is a short read transaction (what to send), the request outside any transaction, then a
short write transaction that records the attempt and, in the same commit, queues the next one. A crash
anywhere leaves the task in the queue (its lease expires and another worker runs it): at-least-once.

Concurrency: a process-wide limit on attempts in flight, and a per-endpoint one. An attempt to an endpoint
that already has its share in flight is not awaited: the task puts itself back in the queue a moment later
and frees its worker slot, so a slow or dead endpoint never holds the slots other endpoints need.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
import weakref
from typing import Any

from dossier.db.base import utcnow
from dossier.net import BlockedURL, OutboundClient, OutboundError, RequestTimeout
from dossier.queue.service import TaskRun, enqueue, task_handler
from dossier.settings import Settings
from dossier.webhooks import service
from dossier.webhooks.models import SlackConnection
from dossier.webhooks.retry import next_delay

log = logging.getLogger("dossier.webhooks")

BODY_KEPT = 2048
# Headers whose values would let a reader of the history forge deliveries or call our API.
SECRET_HEADERS = frozenset(
    {
        "x-kuration-signature",
        "x-kernel-signature",
        "x-kruncher-signature",
        "webhook-signature",
        "x-kruncher-api-key",
    }
)
REDACTED = "[redacted]"
MAX_HEADERS_KEPT = 50
MAX_HEADER_CHARS = 1000
# How long an attempt waits for its endpoint's turn before trying again (seconds; not scaled: it is not a
# retry but a queueing delay).
DEFER_MIN, DEFER_MAX = 0.05, 0.25


class _Limits:
    """Semaphores of one event loop (asyncio primitives are bound to the loop that first uses them)."""

    def __init__(self, settings: Settings) -> None:
        self.total = asyncio.Semaphore(settings.webhook_concurrency)
        self.per_endpoint_size = settings.webhook_endpoint_concurrency
        self.per_endpoint: dict[str, asyncio.Semaphore] = {}

    def endpoint(self, key: str) -> asyncio.Semaphore:
        sem = self.per_endpoint.get(key)
        if sem is None:
            sem = self.per_endpoint[key] = asyncio.Semaphore(self.per_endpoint_size)
        return sem

    def release_idle(self, key: str) -> None:
        # Keep the map small: drop a semaphore nobody holds (one entry per endpoint ever seen otherwise).
        sem = self.per_endpoint.get(key)
        if sem is not None and sem._value == self.per_endpoint_size:
            del self.per_endpoint[key]


_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Limits] = weakref.WeakKeyDictionary()


def _limits_for(settings: Settings) -> _Limits:
    loop = asyncio.get_running_loop()
    limits = _limits.get(loop)
    if limits is None:
        limits = _limits[loop] = _Limits(settings)
    return limits


def redact(headers: dict[str, str]) -> dict[str, str]:
    """Headers as recorded in the history: signatures and API keys replaced, the rest as sent."""
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


async def attempt(
    http: OutboundClient, plan: service.AttemptPlan, settings: Settings
) -> service.AttemptResult:
    """Render ``plan`` through its profile and send it once; never raises for network trouble."""
    profile = service.profile_for(plan.profile, settings)
    attempt_id = "att_" + uuid.uuid4().hex
    started = utcnow()
    options = {k: v for k, v in plan.options.items() if k in profile.option_names}
    rendered = profile.render(
        plan.event_type,
        plan.payload,
        delivery_id=plan.delivery_id,
        attempt_id=attempt_id,
        timestamp=started,
        secrets=plan.secrets,
        options=options,
    )
    recorded = redact(rendered.headers)
    clock = time.monotonic()
    try:
        # The policy is enforced by the client on this very request: the URL, every address DNS returns
        # and the socket address, so a name that now resolves to a private address is refused here.
        response = await http.request(
            "POST",
            plan.url,
            content=rendered.body,
            headers=rendered.headers,
            timeout=profile.timeout,
            max_bytes=BODY_KEPT,
            follow_redirects=False,
            on_too_large="truncate",
        )
    except OutboundError as exc:
        return service.AttemptResult(
            attempt_id=attempt_id,
            started_at=started,
            request_headers=recorded,
            status=None,
            response_headers=None,
            response_body=None,
            duration_ms=int((time.monotonic() - clock) * 1000),
            error_class=type(exc).__name__,
            error_text=exc.message
            if not isinstance(exc, BlockedURL)
            else f"refused by policy: {exc.message}",
            timed_out=isinstance(exc, RequestTimeout),
        )
    status = response.status
    error_class = error_text = None
    if not response.ok:
        error_class = "HTTPStatus"
        error_text = f"HTTP {status}"
        if 300 <= status < 400:
            error_text += " (redirects are not followed: point the endpoint at the final URL)"
    return service.AttemptResult(
        attempt_id=attempt_id,
        started_at=started,
        request_headers=recorded,
        status=status,
        response_headers=_bounded_headers(response.headers),
        response_body=response.body[:BODY_KEPT].decode("utf-8", errors="replace"),
        duration_ms=int(response.elapsed * 1000),
        error_class=error_class,
        error_text=error_text,
        retry_after=response.headers.get("Retry-After"),
    )


def _bounded_headers(headers: Any) -> dict[str, str]:
    # A receiver controls its answer's headers; the history keeps a bounded copy, not whatever it sends.
    kept: dict[str, str] = {}
    for name, value in list(headers.items())[:MAX_HEADERS_KEPT]:
        kept[str(name)[:200]] = str(value)[:MAX_HEADER_CHARS]
    return kept


def _delay_after(
    plan: service.AttemptPlan, result: service.AttemptResult, settings: Settings
) -> float | None:
    profile = service.profile_for(plan.profile, settings)
    number_in_round = plan.seq + 1 - plan.base
    return next_delay(
        profile,
        max(1, number_in_round),
        status=result.status,
        timed_out=result.timed_out,
        retry_after_header=result.retry_after,
        scale=settings.webhook_time_scale,
    )


@task_handler(service.DELIVER_TASK, max_attempts=25, backoff=(1.0, 5.0, 15.0, 60.0, 300.0))
async def deliver(run: TaskRun) -> None:
    """Make one attempt of one delivery (queue-level retries only cover database trouble)."""
    resources = run.resources
    settings = resources.settings
    payload = run.payload
    delivery_id = str(payload["delivery_id"])
    seq = int(payload["seq"])
    base = int(payload.get("base", 0))
    trigger = str(payload.get("trigger", "scheduled"))
    async with resources.sessionmaker() as session, session.begin():
        plan = await service.plan_attempt(session, delivery_id, seq=seq, base=base, trigger=trigger)
    if plan is None:
        return
    limits = _limits_for(settings)
    key = plan.endpoint_id or plan.url
    gate = limits.endpoint(key)
    if gate.locked():
        # Not our turn: requeue instead of waiting, so this worker slot goes to another endpoint.
        async with resources.sessionmaker() as session, session.begin():
            enqueue(session, service.DELIVER_TASK, dict(payload), delay=random.uniform(DEFER_MIN, DEFER_MAX))
        return
    try:
        async with gate, limits.total:
            result = await attempt(resources.http, plan, settings)
    finally:
        limits.release_idle(key)
    delay = None if result.succeeded else _delay_after(plan, result, settings)
    async with resources.sessionmaker() as session, session.begin():
        recorded = await service.record_attempt(session, plan, result, settings=settings, next_delay=delay)
    if recorded is None:
        log.info("attempt made by a stale task was not recorded", extra={"delivery_id": delivery_id})


@task_handler(service.SLACK_TASK, max_attempts=6, backoff=(5.0, 30.0, 120.0, 600.0, 1800.0))
async def send_slack(run: TaskRun) -> None:
    """Post one message to the account's Slack incoming webhook (text + blocks)."""
    resources = run.resources
    account_id = str(run.payload["account_id"])
    async with resources.sessionmaker() as session:
        connection = await session.get(SlackConnection, account_id)
        url = connection.url if connection is not None else None
    if url is None:
        return
    body: dict[str, Any] = {"text": run.payload["text"], "blocks": run.payload.get("blocks") or []}
    http: OutboundClient = resources.http
    response = await http.request("POST", url, json=body, timeout=10.0, max_bytes=BODY_KEPT)
    if not response.ok:
        # The queue retries with its backoff; Slack answers 4xx for a revoked hook, which retries cannot fix.
        if 400 <= response.status < 500 and response.status != 429:
            log.warning(
                "Slack refused a message", extra={"account_id": account_id, "status": response.status}
            )
            return
        raise RuntimeError(f"Slack answered {response.status}")
