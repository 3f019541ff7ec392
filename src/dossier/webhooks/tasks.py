"""The webhook dispatcher: each queue task attempts deliveries to ONE destination; and Slack messages.

First attempts: a burst of events to an endpoint becomes ``deliver`` tasks of up to
``service.DELIVERY_BATCH`` deliveries. Every later attempt (retries, manual redeliveries) is made by the
destination's one ``retry_due`` sweep, from the due times stored on the deliveries, a batch at a time. A
task is a short read transaction (what to send), the requests outside any transaction, then one write
transaction that records every attempt, schedules the retries and ends the task, all in one commit. A crash
anywhere leaves the task in the queue (its lease expires and another worker runs it): at-least-once; the
attempts made but not recorded are sent again.

Concurrency, per worker process: a limit on attempts in flight in all (``webhook_concurrency``), one per
endpoint (``webhook_endpoint_concurrency``), and a number of worker slots per destination (see ``_Limits``):
a fast destination's extra tasks wait in memory for a slot, a slow one's are parked (put back in the queue,
spaced so that a big backlog costs a bounded number of claims) and their slots go to other destinations. So
a slow or dead endpoint never holds the slots, nor the database time, the other endpoints need.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import utcnow
from dossier.net import BlockedURL, OutboundClient, OutboundError, RequestTimeout
from dossier.queue.service import Snooze, TaskRun, task_handler
from dossier.settings import Settings
from dossier.webhooks import service
from dossier.webhooks.models import MANUAL, SCHEDULED, SlackConnection
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
# Worker slots a slow destination may hold in a process: two, so it pipelines (one task sends while the
# next loads) and cannot starve the others.
TASKS_PER_DESTINATION = 2
# ...and a fast one (its tasks mostly wait on the database) at most this many.
MAX_TASKS_PER_DESTINATION = 6
# A destination is slow while its attempts take this long on average (seconds, recent attempts weigh most).
SLOW_ATTEMPT_SECONDS = 0.5
LATENCY_WEIGHT = 0.2
# Destinations whose latency is remembered per process (least recently used forgotten first).
LATENCIES_KEPT = 10_000
# Spacing of the tasks put back in the queue while their destination is busy (seconds; not scaled: it is
# not a retry but a queueing delay).
DEFER_STEP = 0.1
# A parked task not back this long after it was due was taken by another worker: stop counting it.
PARKED_EXPIRY = 30.0
# A sweep that found due retries but could attempt none of them looks again after this long (seconds).
IDLE_SWEEP_DELAY = 60.0


class _Limits:
    """The dispatcher's limits in one event loop (asyncio primitives are bound to the loop that made them).

    Attempts in flight: ``total`` in all, ``endpoint(key)`` per destination. Worker slots: a slow
    destination (its recent attempts take SLOW_ATTEMPT_SECONDS or more: a slow receiver, or timeouts)
    runs at most TASKS_PER_DESTINATION tasks, a fast one at most MAX_TASKS_PER_DESTINATION. A task beyond
    that waits here for a slot of its destination when the destination is fast and fewer than
    ``max_waiting`` tasks wait in all (half the worker's slots, so the other half stays free for other
    destinations); otherwise it is parked (put back in the queue).
    """

    def __init__(self, settings: Settings) -> None:
        self.total = asyncio.Semaphore(settings.webhook_concurrency)
        self.per_endpoint_size = settings.webhook_endpoint_concurrency
        self.per_endpoint: dict[str, asyncio.Semaphore] = {}
        self.max_waiting = max(1, settings.worker_concurrency // 2)
        # Dispatcher tasks of this process working for each destination (each holds a worker slot).
        self.tasks: dict[str, int] = {}
        # Tasks waiting in this process for a slot of their destination, in arrival order.
        self.waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self.waiting = 0
        # Recent attempt duration per destination (seconds, moving average).
        self.latency: OrderedDict[str, float] = OrderedDict()
        # Tasks of each destination put back in the queue because it was busy and not yet back: task id ->
        # when it should be back (monotonic). Another worker may run a parked task: entries expire.
        self.parked: dict[str, dict[int, float]] = {}

    def endpoint(self, key: str) -> asyncio.Semaphore:
        sem = self.per_endpoint.get(key)
        if sem is None:
            sem = self.per_endpoint[key] = asyncio.Semaphore(self.per_endpoint_size)
        return sem

    def observe(self, key: str, seconds: float) -> None:
        """Fold an attempt's duration into its destination's latency."""
        previous = self.latency.pop(key, None)
        self.latency[key] = seconds if previous is None else previous + LATENCY_WEIGHT * (seconds - previous)
        if len(self.latency) > LATENCIES_KEPT:
            self.latency.popitem(last=False)

    def slow(self, key: str) -> bool:
        """Whether this destination's recent attempts are slow (unknown destinations are not)."""
        return self.latency.get(key, 0.0) >= SLOW_ATTEMPT_SECONDS

    def _full(self, key: str) -> bool:
        slots = TASKS_PER_DESTINATION if self.slow(key) else MAX_TASKS_PER_DESTINATION
        return self.tasks.get(key, 0) >= slots

    async def take_slot(self, key: str) -> bool:
        """A worker slot for a task of ``key``, now or after waiting; False: park the task instead."""
        while self._full(key):
            if self.slow(key) or self.waiting >= self.max_waiting:
                return False
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.setdefault(key, deque()).append(waiter)
            self.waiting += 1
            try:
                await waiter
            finally:
                self.waiting -= 1
                if not waiter.done():
                    waiter.cancel()
        self.tasks[key] = self.tasks.get(key, 0) + 1
        return True

    def give_slot(self, key: str) -> None:
        """A task of ``key`` ended: its slot goes to the first task waiting for one."""
        left = self.tasks[key] - 1
        if left:
            self.tasks[key] = left
        else:
            del self.tasks[key]
        waiters = self.waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
        if waiters is not None and not waiters:
            del self.waiters[key]

    def park(self, key: str, task_id: int) -> float:
        """Count a task put back for ``key``; returns its delay. Parked tasks come back one step apart
        however many there are: a backlog costs a bounded number of claims per second."""
        now = time.monotonic()
        parked = self.parked.setdefault(key, {})
        for stale in [tid for tid, due in parked.items() if due < now - PARKED_EXPIRY]:
            del parked[stale]
        # A fast destination is parked only for want of slots: it comes back sooner than a slow one.
        step = DEFER_STEP if self.slow(key) else DEFER_STEP / 5
        delay = step * (len(parked) + 1) * random.uniform(1.0, 1.2)
        parked[task_id] = now + delay
        return delay

    def unpark(self, key: str, task_id: int) -> None:
        """A task of ``key`` is back (or was never parked)."""
        parked = self.parked.get(key)
        if parked is not None and parked.pop(task_id, None) is not None and not parked:
            del self.parked[key]

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
    """Make the first attempt of each delivery the task carries (queue-level retries only cover database
    trouble; failed attempts are retried by the destination's sweep, :func:`retry_due`).

    A task's deliveries share one destination: a burst to an endpoint is a few tasks of many deliveries.
    """
    trigger = str(run.payload.get("trigger", SCHEDULED))
    items = service.task_items(run.payload)

    async def load(session: AsyncSession) -> list[service.AttemptPlan]:
        return await service.plan_attempts(session, items, trigger=trigger)

    key = run.payload.get("key")
    await _for_destination(run, key if isinstance(key, str) else None, load)


@task_handler(service.RETRY_TASK, max_attempts=25, backoff=(1.0, 5.0, 15.0, 60.0, 300.0))
async def retry_due(run: TaskRun) -> None:
    """The retry sweep of one destination: attempt its due retries and manual redeliveries, a batch at a
    time, then schedule the next sweep at the earliest one still pending."""
    key = str(run.payload["key"])
    started = utcnow()
    found = 0

    async def load(session: AsyncSession) -> list[service.AttemptPlan]:
        nonlocal found
        due = await service.due_retries(session, key, now=started)
        found = len(due)
        # The first attempt of a round started by hand is ``manual``; the rest follow the schedule.
        manual = [item for item in due if item[1] == item[2]]
        scheduled = [item for item in due if item[1] != item[2]]
        plans = await service.plan_attempts(session, manual, trigger=MANUAL)
        return plans + await service.plan_attempts(session, scheduled, trigger=SCHEDULED)

    async def then(session: AsyncSession, attempted: bool) -> None:
        # Nothing attempted though retries were due (their endpoint cannot sign, say): do not spin on them.
        stuck = found and not attempted
        floor = utcnow() + timedelta(seconds=IDLE_SWEEP_DELAY if stuck else 0.0)
        await service.reschedule_retries(session, key, not_before=floor)

    await _for_destination(run, key, load, then)


Load = Callable[[AsyncSession], Awaitable[list[service.AttemptPlan]]]
Then = Callable[[AsyncSession, bool], Awaitable[None]]


async def _for_destination(run: TaskRun, key: str | None, load: Load, then: Then | None = None) -> None:
    """Run ``_send`` in a worker slot of destination ``key``; park the task when the destination has none."""
    limits = _limits_for(run.resources.settings)
    if key is None:
        await _send(run, limits, load, then)
        return
    limits.unpark(key, run.task_id)
    if not await limits.take_slot(key):
        # Back in the queue for a moment, deliveries untouched, the worker slot free for another
        # destination.
        raise Snooze(limits.park(key, run.task_id))
    try:
        await _send(run, limits, load, then)
    finally:
        limits.give_slot(key)


async def _send(run: TaskRun, limits: _Limits, load: Load, then: Then | None) -> None:
    """Plan (a short read), send (no transaction open), record (one write that also ends the task)."""
    resources = run.resources
    settings = resources.settings
    async with resources.sessionmaker() as session, session.begin():
        plans = await load(session)
        if not plans:
            await run.complete_in(session)
            if then is not None:
                await then(session, False)
            return
    keys = {plan.destination for plan in plans}

    async def one(plan: service.AttemptPlan) -> service.AttemptResult:
        async with limits.endpoint(plan.destination), limits.total:
            result = await attempt(resources.http, plan, settings)
        limits.observe(plan.destination, result.duration_ms / 1000)
        return result

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
        # The end of this task, the attempts and the retries they schedule commit together. The task row is
        # locked first, always: a transaction holding another task's row (a retry sweep's) must never wait
        # for this one's.
        await run.complete_in(session)
        recorded = await service.record_attempts(session, outcomes, settings=settings)
        if then is not None:
            await then(session, True)
    stale = [plan.delivery_id for plan, made in zip(plans, recorded, strict=True) if not made]
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
