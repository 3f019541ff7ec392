"""The webhook dispatcher: a queue task carries attempts of deliveries to ONE destination; and Slack messages.

A burst of events to an endpoint becomes tasks of up to ``service.DELIVERY_BATCH`` deliveries; a retry or a
redelivery is a task of one. A task is a short read transaction (what to send), the requests outside any
transaction, then one write transaction that records every attempt and, in the same commit, queues the
retries. A crash anywhere leaves the task in the queue (its lease expires and another worker runs it):
at-least-once; the attempts made but not recorded are sent again.

Concurrency, per worker process: a limit on attempts in flight in all (``webhook_concurrency``), one per
endpoint (``webhook_endpoint_concurrency``), and at most ``TASKS_PER_DESTINATION`` worker slots per endpoint.
A task whose endpoint already holds its slots is parked: put back in the queue, spaced so that a big
backlog costs a bounded number of claims, and its slot goes to another endpoint. So a slow or dead endpoint
never holds the slots, nor the database time, the other endpoints need.
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
# Worker slots one destination may hold in a process: two, so a busy endpoint pipelines (one task sends
# while the next loads) and a slow one cannot starve the others.
TASKS_PER_DESTINATION = 2
# ...and a destination whose requests are quick (its tasks mostly wait on the database) at most this many.
MAX_TASKS_PER_DESTINATION = 6
# Spacing of the tasks put back in the queue while their destination is busy (seconds; not scaled: it is
# not a retry but a queueing delay).
DEFER_STEP = 0.1


class _Limits:
    """Semaphores of one event loop (asyncio primitives are bound to the loop that first uses them)."""

    def __init__(self, settings: Settings) -> None:
        self.total = asyncio.Semaphore(settings.webhook_concurrency)
        self.per_endpoint_size = settings.webhook_endpoint_concurrency
        self.per_endpoint: dict[str, asyncio.Semaphore] = {}
        # Dispatcher tasks of this process working for each destination (each holds a worker slot).
        self.tasks: dict[str, int] = {}
        # Tasks of each destination put back in the queue because it was busy, not yet back.
        self.parked: dict[str, int] = {}

    def endpoint(self, key: str) -> asyncio.Semaphore:
        sem = self.per_endpoint.get(key)
        if sem is None:
            sem = self.per_endpoint[key] = asyncio.Semaphore(self.per_endpoint_size)
        return sem

    def busy(self, key: str) -> bool:
        """Whether a new task for this destination should be parked instead of taking a worker slot.

        A destination whose requests fill its per-endpoint limit (a slow or dead endpoint) gets at most
        TASKS_PER_DESTINATION slots; a fast one that only waits on the database may use a few more.
        """
        running = self.tasks.get(key, 0)
        if running < TASKS_PER_DESTINATION:
            return False
        return running >= MAX_TASKS_PER_DESTINATION or self.saturated(key)

    def saturated(self, key: str) -> bool:
        """Whether this destination's requests fill its per-endpoint limit right now."""
        sem = self.per_endpoint.get(key)
        return sem is not None and sem.locked()

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
    """Make one attempt of each delivery the task carries (queue-level retries only cover database trouble).

    A task's deliveries share one destination: a burst to an endpoint is a few tasks of many deliveries;
    retries and redeliveries carry one each.
    """
    resources = run.resources
    settings = resources.settings
    limits = _limits_for(settings)
    key = run.payload.get("key")
    if isinstance(key, str) and run.payload.get("parked"):
        # Back from the queue: no longer parked (it may park again just below).
        left = limits.parked.get(key, 0) - 1
        if left > 0:
            limits.parked[key] = left
        else:
            limits.parked.pop(key, None)
    if isinstance(key, str) and limits.busy(key):
        # This destination already has its share of worker slots (maybe a slow endpoint): let the slot go
        # to another endpoint and come back shortly, without touching the deliveries.
        # Parked tasks come back one DEFER_STEP apart, however many there are: a backlog to a slow endpoint
        # costs a bounded number of claims per second instead of a storm that delays everyone's tasks.
        parked = limits.parked.get(key, 0) + 1
        limits.parked[key] = parked
        # A fast endpoint is parked only for want of slots: it comes back sooner than a slow one.
        step = DEFER_STEP if limits.saturated(key) else DEFER_STEP / 5
        delay = step * parked * random.uniform(1.0, 1.2)
        async with resources.sessionmaker() as session, session.begin():
            enqueue(session, service.DELIVER_TASK, {**run.payload, "parked": True}, delay=delay)
        return
    counted = key if isinstance(key, str) else None
    if counted is not None:
        limits.tasks[counted] = limits.tasks.get(counted, 0) + 1
    try:
        await _deliver(run, limits)
    finally:
        if counted is not None:
            left = limits.tasks[counted] - 1
            if left:
                limits.tasks[counted] = left
            else:
                del limits.tasks[counted]


async def _deliver(run: TaskRun, limits: _Limits) -> None:
    resources = run.resources
    settings = resources.settings
    trigger = str(run.payload.get("trigger", "scheduled"))
    async with resources.sessionmaker() as session, session.begin():
        plans = await service.plan_attempts(session, service.task_items(run.payload), trigger=trigger)
    if not plans:
        return
    keys = {service.destination_key(plan.endpoint_id, plan.url) for plan in plans}

    async def one(plan: service.AttemptPlan) -> service.AttemptResult:
        async with limits.endpoint(service.destination_key(plan.endpoint_id, plan.url)), limits.total:
            return await attempt(resources.http, plan, settings)

    try:
        results = await asyncio.gather(*(one(plan) for plan in plans))
    finally:
        for key in keys:
            limits.release_idle(key)
    outcomes = [
        (plan, result, None if result.succeeded else _delay_after(plan, result, settings))
        for plan, result in zip(plans, results, strict=True)
    ]
    async with resources.sessionmaker() as session, session.begin():
        recorded = await service.record_attempts(session, outcomes, settings=settings)
    stale = [plan.delivery_id for plan, attempt in zip(plans, recorded, strict=True) if attempt is None]
    if stale:
        log.info("attempts made by a stale task were not recorded", extra={"delivery_ids": stale})


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
