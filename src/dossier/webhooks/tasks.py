"""The webhook dispatcher: one sweep task per destination makes every attempt to it; and Slack messages.

A sweep reads a batch of its destination's due deliveries (new events' first attempts, retries whose time
has come, manual redeliveries) in a short transaction, sends them with no transaction open, and records the
attempts, with the retry each failure schedules, in one write; again while batches come full. The
transaction that records the last batch (or finds nothing due) also ends the task and queues the next sweep
at the earliest delivery still pending. A crash anywhere leaves the task in the queue (its lease expires and
another worker runs it): at-least-once; the attempts made but not recorded are sent again.

Concurrency: one sweep per destination in the whole cluster, at most ``webhook_endpoint_concurrency``
attempts in flight to it; at most ``webhook_concurrency`` in flight per process; and sweeps of slow
destinations hold at most half a worker's slots (see ``_Limits``). So a slow or dead endpoint never holds
the slots, nor the database time, the other endpoints need.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier import metrics, tracing
from dossier.db.base import new_hex_id, utcnow
from dossier.logs import bound_log_context
from dossier.net import BlockedURL, OutboundClient, OutboundError, RequestTimeout
from dossier.queue.handlers import Snooze, TaskRun, task_handler
from dossier.settings import Settings
from dossier.webhooks import dispatch, listen, slack, sweeps
from dossier.webhooks.models import MANUAL, SCHEDULED, SlackConnection
from dossier.webhooks.retry import RetryDecision

log = logging.getLogger("dossier.webhooks")

BODY_KEPT = 2048
MAX_HEADERS_KEPT = 50
MAX_HEADER_CHARS = 1000
# A destination is slow while its attempts take this long on average (seconds, recent attempts weigh most).
SLOW_ATTEMPT_SECONDS = 0.5
# A destination whose attempts take less than this on average, and whose last batch got through, is swept
# FAST_DELIVERY_BATCH deliveries at a time (sweeps.FAST_DELIVERY_BATCH).
FAST_ATTEMPT_SECONDS = 0.05
LATENCY_WEIGHT = 0.2
# Destinations whose latency is remembered per process (least recently used forgotten first).
LATENCIES_KEPT = 10_000
# A sweep ends after this long (seconds) and queues itself again, so a destination that is never idle
# still lets its task move between workers (and a stopping worker finish).
SWEEP_SECONDS = 10.0
# Seconds before a slow destination's sweep, put back for want of a slot, is claimed again (not scaled:
# it is not a retry but a queueing delay).
SLOW_SWEEP_PARK = 0.5
# After a batch of which no attempt succeeded, the destination's next sweep is held this long (seconds,
# scaled like retries) so a dead endpoint's new events are tried in batches, not a few at a time. Short:
# a dead endpoint's batches are work its process does at once, which the other destinations' deliveries
# wait behind (bench/e2e.py --dead-endpoints 2: healthy p99 108 ms with 1 s, 54 ms with 0.25 s, and more
# CPU with 0.1 s).
FAILING_SWEEP_PAUSE = 0.25
# A sweep that found due deliveries but could attempt none of them looks again after this long (seconds).
IDLE_SWEEP_DELAY = 60.0


class _Limits:
    """The dispatcher's limits in one event loop (asyncio primitives are bound to the loop that made them).

    ``total`` bounds the attempts in flight in the process. Each destination's latency is a moving average
    of its attempts' durations: a destination is slow while it is SLOW_ATTEMPT_SECONDS or more (a slow
    receiver, or timeouts). Sweeps of slow destinations hold at most half the worker's slots; another one
    is put back in the queue, so slow and dead endpoints never take the slots the others need. A
    destination that answers in under FAST_ATTEMPT_SECONDS and whose last batch got through is swept
    sweeps.FAST_DELIVERY_BATCH at a time.
    """

    def __init__(self, settings: Settings) -> None:
        self.total = asyncio.Semaphore(settings.webhook_concurrency)
        self.max_slow = max(1, settings.worker_concurrency // 2)
        self.slow_sweeps = 0
        # Recent attempt duration per destination (seconds, moving average).
        self.latency: OrderedDict[str, float] = OrderedDict()
        # Destinations whose last batch had an attempt that succeeded.
        self.accepting: OrderedDict[str, None] = OrderedDict()

    def observe(self, key: str, seconds: float) -> None:
        """Fold an attempt's duration into its destination's latency."""
        previous = self.latency.pop(key, None)
        self.latency[key] = seconds if previous is None else previous + LATENCY_WEIGHT * (seconds - previous)
        if len(self.latency) > LATENCIES_KEPT:
            self.latency.popitem(last=False)

    def batch_ended(self, key: str, *, any_succeeded: bool) -> None:
        """Note whether the destination's last batch got anything through."""
        self.accepting.pop(key, None)
        if any_succeeded:
            self.accepting[key] = None
            if len(self.accepting) > LATENCIES_KEPT:
                self.accepting.popitem(last=False)

    def batch_size(self, key: str) -> int:
        """Deliveries the destination's next batch takes: FAST_DELIVERY_BATCH while it answers fast and
        accepts what it gets, else DELIVERY_BATCH (a new, slow or failing destination)."""
        latency = self.latency.get(key)
        if latency is not None and latency < FAST_ATTEMPT_SECONDS and key in self.accepting:
            return sweeps.FAST_DELIVERY_BATCH
        return sweeps.DELIVERY_BATCH

    def slow(self, key: str) -> bool:
        """Whether this destination's recent attempts are slow (unknown destinations are not)."""
        return self.latency.get(key, 0.0) >= SLOW_ATTEMPT_SECONDS

    def take_slow_slot(self) -> bool:
        """A worker slot for a slow destination's sweep; False when they hold their share already."""
        if self.slow_sweeps >= self.max_slow:
            return False
        self.slow_sweeps += 1
        return True

    def give_slow_slot(self) -> None:
        self.slow_sweeps -= 1


_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Limits] = weakref.WeakKeyDictionary()


def _limits_for(settings: Settings) -> _Limits:
    loop = asyncio.get_running_loop()
    limits = _limits.get(loop)
    if limits is None:
        limits = _limits[loop] = _Limits(settings)
    return limits


async def attempt(
    http: OutboundClient,
    plan: dispatch.AttemptPlan,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> dispatch.AttemptResult:
    """Render ``plan`` through its profile and send it once; never raises for network trouble. A listener
    endpoint's attempt goes to its `dossier listen` stream (``listen.exchange``) instead of an HTTP POST."""
    profile = dispatch.profile_for(plan.profile, settings)
    attempt_id = "att_" + new_hex_id()
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
        custom_headers=plan.headers,
    )
    recorded = profile.redact(rendered.headers, custom=plan.headers)
    clock = time.monotonic()
    try:
        # The policy is enforced by the client on this very request: the URL, every address DNS returns
        # and the socket address, so a name that now resolves to a private address is refused here.
        if plan.listener is not None and plan.endpoint_id is not None and sessionmaker is not None:
            response = await listen.exchange(
                sessionmaker,
                endpoint_id=plan.endpoint_id,
                delivery_id=plan.delivery_id,
                event_type=plan.event_type,
                attempt_id=attempt_id,
                body=rendered.body,
                headers=rendered.headers,
                answer_within=profile.timeout,
                poll_interval=settings.webhook_listen_poll_interval,
                stale_after=settings.webhook_listen_stale_seconds,
            )
        else:
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
        return dispatch.AttemptResult(
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
    return dispatch.AttemptResult(
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


def _span_of(plan: dispatch.AttemptPlan) -> dict[str, Any]:
    return {
        "name": "webhook attempt",
        "kind": "client",
        "dossier.delivery.id": plan.delivery_id,
        "dossier.webhook.profile": plan.profile,
        "dossier.webhook.event_type": plan.event_type,
        "dossier.webhook.attempt": plan.seq + 1,
        "dossier.webhook.trigger": plan.trigger,
    }


def log_attempt(plan: dispatch.AttemptPlan, result: dispatch.AttemptResult, span: Any) -> None:
    """Count the attempt (metrics), log it (its delivery id comes from the log context), and note its
    outcome on its span."""
    span.set_attribute("dossier.webhook.outcome", result.outcome)
    if result.status is not None:
        span.set_attribute("http.response.status_code", result.status)
    delivered = utcnow() if result.succeeded and plan.base == 0 else None
    metrics.webhook_attempt(
        plan.profile,
        result.outcome,
        result.duration_ms / 1000,
        created_at=plan.created_at,
        delivered_at=delivered,
    )
    log.log(
        logging.DEBUG if result.succeeded else logging.INFO,
        "webhook attempt",
        extra={
            "profile": plan.profile,
            "attempt": plan.seq + 1,
            "outcome": result.outcome,
            "status": result.status,
            "error": result.error_class,
            "duration_ms": result.duration_ms,
        },
    )


def _bounded_headers(headers: Any) -> dict[str, str]:
    # A receiver controls its answer's headers; the history keeps a bounded copy, not whatever it sends.
    kept: dict[str, str] = {}
    for name, value in list(headers.items())[:MAX_HEADERS_KEPT]:
        kept[str(name)[:200]] = str(value)[:MAX_HEADER_CHARS]
    return kept


@task_handler(sweeps.SWEEP_TASK, max_attempts=25, backoff=(1.0, 5.0, 15.0, 60.0, 300.0))
async def sweep(run: TaskRun) -> None:
    """Make every due attempt to one destination, a batch at a time, then queue the next sweep at the
    earliest delivery still pending. Queue-level retries only cover database trouble: failed attempts are
    retried from the schedule stored on each delivery."""
    key = str(run.payload["key"])
    limits = _limits_for(run.resources.settings)
    if not limits.slow(key):
        await _sweep(run, key, limits)
        return
    if not limits.take_slow_slot():
        # Back in the queue for a moment, deliveries untouched, the slot free for a fast destination.
        raise Snooze(SLOW_SWEEP_PARK * random.uniform(1.0, 1.2))
    try:
        await _sweep(run, key, limits)
    finally:
        limits.give_slow_slot()


async def _sweep(run: TaskRun, key: str, limits: _Limits) -> None:
    """Read a batch of due deliveries (a short transaction), send them (none open), record them (one
    write); again while batches come full, until the sweep has run SWEEP_SECONDS or a whole batch
    failed. The transaction that ends the task also queues the next sweep, in one commit."""
    resources = run.resources
    settings = resources.settings
    deadline = time.monotonic() + SWEEP_SECONDS
    while True:
        batch = limits.batch_size(key)
        async with resources.sessionmaker() as session, session.begin():
            due: list[sweeps.DueDelivery] = []
            if time.monotonic() < deadline:
                due = await sweeps.due_deliveries(session, key, now=utcnow(), limit=batch)
            plans = await _plans(session, due)
            if not plans and due:
                # Deliveries a rate limit moved to later are no longer due: only the others make it idle.
                due = await sweeps.due_deliveries(session, key, now=utcnow(), limit=batch)
            if not plans:
                # Due deliveries none of which can be sent (their endpoint cannot sign): do not spin.
                await _end(run, session, key, wait=IDLE_SWEEP_DELAY if due else 0.0)
                return
        outcomes = await _attempt_all(resources.http, plans, settings, limits, resources.sessionmaker)
        any_succeeded = any(result.succeeded for _, result, _ in outcomes)
        limits.batch_ended(key, any_succeeded=any_succeeded)
        async with resources.sessionmaker() as session, session.begin():
            recorded = await dispatch.record_attempts(session, outcomes, settings=settings)
            ended = True
            if len(due) >= batch:
                # A full batch: more may be due now, and the schedule promises them now, failing or not.
                ended = False
            elif not any_succeeded:
                # Nothing got through: the destination is down or refusing. Its next sweep is held a
                # moment (in the queue, so new events do not wake it meanwhile, in any process) and its
                # new events go in one batch, rather than a batch (and two transactions) for every few.
                pause = FAILING_SWEEP_PAUSE * settings.webhook_time_scale
                await _end(run, session, key, wait=pause, hold=True)
            else:
                # Everything due was in this batch: end now rather than in one more transaction that
                # would most likely find nothing (what came meanwhile gets a new sweep, due at once).
                await _end(run, session, key, wait=0.0)
        stale = [plan.delivery_id for plan, made in zip(plans, recorded, strict=True) if not made]
        if stale:
            log.info("attempts already recorded by another run were left out", extra={"delivery_ids": stale})
        if ended:
            return


async def _end(run: TaskRun, session: AsyncSession, key: str, *, wait: float, hold: bool = False) -> None:
    # The task row is locked before anything is read for the next sweep (see sweeps.schedule_sweep).
    await run.complete_in(session)
    await sweeps.reschedule_sweep(session, key, not_before=utcnow() + timedelta(seconds=wait), hold=hold)


async def _plans(session: AsyncSession, due: list[sweeps.DueDelivery]) -> list[dispatch.AttemptPlan]:
    plans: list[dispatch.AttemptPlan] = []
    for trigger in (MANUAL, SCHEDULED):
        items = [(d.delivery_id, d.attempts, d.round_start) for d in due if d.trigger == trigger]
        plans += await dispatch.plan_attempts(session, items, trigger=trigger)
    return plans


Outcome = tuple[dispatch.AttemptPlan, dispatch.AttemptResult, RetryDecision | None]


async def _attempt_all(
    http: OutboundClient,
    plans: list[dispatch.AttemptPlan],
    settings: Settings,
    limits: _Limits,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> list[Outcome]:
    """Send a batch to its destination, at most ``webhook_endpoint_concurrency`` at once; each result with
    what follows it (see ``dispatch.retry_decision``)."""
    endpoint = asyncio.Semaphore(settings.webhook_endpoint_concurrency)

    async def one(plan: dispatch.AttemptPlan) -> Outcome:
        with bound_log_context(delivery_id=plan.delivery_id), tracing.span(**_span_of(plan)) as span:
            async with endpoint, limits.total:
                result = await attempt(http, plan, settings, sessionmaker)
            log_attempt(plan, result, span)
        limits.observe(plan.destination, result.duration_ms / 1000)
        return plan, result, dispatch.retry_decision(plan, result, settings)

    return list(await asyncio.gather(*(one(plan) for plan in plans)))


@task_handler(slack.SLACK_TASK, max_attempts=6, backoff=(5.0, 30.0, 120.0, 600.0, 1800.0))
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
