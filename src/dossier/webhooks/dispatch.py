"""The dispatcher's side of a delivery: plan an attempt, record it, keep the endpoint's health (and
disable it).

Each delivery's attempt count guards the recording: an attempt already recorded by another run (a sweep whose
lease expired) is recognised and left out, which makes at-least-once execution safe.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.accounts.models import Account
from dossier.db.base import as_utc, utcnow
from dossier.settings import Settings
from dossier.webhooks.models import (
    ERROR_REQUEST,
    ERROR_RESPONSE,
    FAILED,
    PENDING,
    SUCCEEDED,
    SUCCESS,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookRateLimit,
    WebhookSecret,
)
from dossier.webhooks.profiles import SecretVersion, WebhookProfile, get_profile
from dossier.webhooks.profiles.base import ENDPOINT_DISABLED_EVENT
from dossier.webhooks.retry import DISABLE, RETRY, RetryDecision, RetrySchedule, decide
from dossier.webhooks.service import emit_event, signing_secrets
from dossier.webhooks.slack import NOTICE_ENDPOINT_DISABLED, NOTICE_ENDPOINT_FAILING, notify_slack
from dossier.webhooks.sweeps import destination_key

log = logging.getLogger("dossier.webhooks")


def profile_for(name: str, settings: Settings) -> WebhookProfile:
    """The profile ``name`` with the schedule the settings ask for, where its document fixes none."""
    profile = get_profile(name)
    if settings.webhook_retry_schedule is not None and profile.schedule_configurable:
        return get_profile(name, schedule=RetrySchedule.parse(settings.webhook_retry_schedule))
    return profile


@dataclass(frozen=True)
class AttemptPlan:
    """Everything one HTTP attempt needs, read in a short transaction before the request is sent."""

    delivery_id: str
    account_id: str
    endpoint_id: str | None
    url: str
    profile: str
    event_type: str
    payload: dict[str, Any]
    secrets: list[SecretVersion]
    options: dict[str, str]
    seq: int
    base: int
    trigger: str
    # When the delivery was written (its event's commit): the delivery-latency metric counts from here.
    created_at: datetime | None = None
    #: The endpoint's static headers (see ``WebhookProfile.render``).
    headers: dict[str, str] = field(default_factory=dict)
    #: Set for a `dossier listen` endpoint: the attempt goes to its stream, not over HTTP (see ``listen``).
    listener: str | None = None

    @property
    def destination(self) -> str:
        """The destination key (see :func:`destination_key`)."""
        return destination_key(self.endpoint_id, self.url if self.endpoint_id is None else None)


async def plan_attempts(
    session: AsyncSession, items: Sequence[tuple[str, int, int]], *, trigger: str
) -> list[AttemptPlan]:
    """What to send for a task's deliveries, skipping those with nothing to do (stale task, finished
    delivery, deleted endpoint). Deliveries whose endpoint is disabled are failed here, without an attempt."""
    wanted = {delivery_id: (seq, base) for delivery_id, seq, base in items}
    if not wanted:
        return []
    d, e = WebhookDelivery, WebhookEndpoint
    deliveries = (
        await session.execute(
            select(
                d.id,
                d.account_id,
                d.endpoint_id,
                d.target_url,
                d.profile,
                d.event_type,
                d.payload,
                d.status,
                d.attempts,
                d.created_at,
                e.id.label("found_endpoint"),
                e.url,
                e.active,
                e.disabled_reason,
                e.options,
                e.headers,
                e.rate_limit,
                e.listener,
            )
            .outerjoin(e, e.id == d.endpoint_id)
            .where(d.id.in_(list(wanted)))
        )
    ).all()
    secrets = await _signing_by_endpoint(
        session, {row.endpoint_id for row in deliveries if row.endpoint_id is not None}
    )
    account_secrets: dict[str, list[SecretVersion]] = {}
    disabled: list[dict[str, Any]] = []
    plans: list[AttemptPlan] = []
    rates: dict[str, float] = {}
    for row in deliveries:
        seq, base = wanted[row.id]
        if row.status != PENDING or row.attempts != seq:
            continue
        options: dict[str, str] = {}
        headers: dict[str, str] = {}
        if row.endpoint_id is not None:
            if row.found_endpoint is None:
                continue
            if not row.active:
                disabled.append(_failed_as_disabled(row.id, row.disabled_reason))
                continue
            url = row.url
            signing = secrets.get(row.endpoint_id, [])
            options = {k: str(v) for k, v in (row.options or {}).items()}
            headers = dict(row.headers or {})
            if row.rate_limit:
                rates[row.endpoint_id] = row.rate_limit
        else:
            signing = await _account_secrets(session, row.account_id, account_secrets)
            if row.target_url is None:
                continue
            url = row.target_url
        if not signing:
            continue
        plans.append(
            AttemptPlan(
                delivery_id=row.id,
                account_id=row.account_id,
                endpoint_id=row.endpoint_id,
                url=url,
                profile=row.profile,
                event_type=row.event_type,
                payload=dict(row.payload),
                secrets=signing,
                options=options,
                seq=seq,
                base=base,
                trigger=trigger,
                created_at=row.created_at,
                headers=headers,
                listener=row.listener if row.endpoint_id is not None else None,
            )
        )
    if disabled:
        await session.execute(update(WebhookDelivery), disabled)
    if rates:
        plans = await _within_rate_limits(session, plans, rates)
    return plans


# A rate-limited endpoint may take up to this long's worth of attempts at once (at least one), so any
# second holds at most about ``rate * (1 + RATE_BURST_SECONDS)`` attempts.
RATE_BURST_SECONDS = 0.1


async def _within_rate_limits(
    session: AsyncSession, plans: list[AttemptPlan], rates: Mapping[str, float]
) -> list[AttemptPlan]:
    """The plans the endpoints' rate limits allow now; the others' deliveries are moved to when they will
    be (not an attempt: their retry schedule is untouched).

    The state is one row per endpoint (GCRA's theoretical arrival time), locked while it is read and
    written, so the limit holds across every worker process and every sweep of the endpoint."""
    now = utcnow()
    allowed: list[AttemptPlan] = []
    deferred: list[dict[str, Any]] = []
    by_endpoint: dict[str, list[AttemptPlan]] = {}
    for plan in plans:
        if plan.endpoint_id is not None and plan.endpoint_id in rates:
            by_endpoint.setdefault(plan.endpoint_id, []).append(plan)
        else:
            allowed.append(plan)
    for endpoint_id in sorted(by_endpoint):
        interval = 1.0 / rates[endpoint_id]
        tolerance = timedelta(seconds=max(0.0, RATE_BURST_SECONDS - interval))
        state = await session.scalar(
            select(WebhookRateLimit).where(WebhookRateLimit.endpoint_id == endpoint_id).with_for_update()
        )
        if state is None:
            state = WebhookRateLimit(endpoint_id=endpoint_id, tat=now)
            session.add(state)
        tat = max(state.tat, now)
        for plan in by_endpoint[endpoint_id]:
            if tat - now <= tolerance:
                allowed.append(plan)
                tat += timedelta(seconds=interval)
            else:
                deferred.append({"id": plan.delivery_id, "next_attempt_at": tat - tolerance})
        state.tat = tat
    if deferred:
        await session.execute(update(WebhookDelivery), deferred)
    await session.flush()
    return allowed


def _failed_as_disabled(delivery_id: str, disabled_reason: str | None) -> dict[str, Any]:
    """The change that fails a delivery whose endpoint is disabled, without an attempt."""
    reason = f"endpoint disabled: {disabled_reason or 'no reason given'}"
    return {"id": delivery_id, "status": FAILED, "next_attempt_at": None, "last_error": reason}


async def _account_secrets(
    session: AsyncSession, account_id: str, known: dict[str, list[SecretVersion]]
) -> list[SecretVersion]:
    """The account's webhook secrets that sign now (they sign a job's one-off URL): the current one first,
    then the rotated-out one while its grace lasts. Looked up once per account."""
    if account_id not in known:
        account = await session.get(Account, account_id)
        versions: list[SecretVersion] = []
        if account is not None:
            versions.append(SecretVersion(account.webhook_secret))
            expires = account.previous_secret_expires_at
            if account.previous_webhook_secret and expires is not None and as_utc(expires) > utcnow():
                versions.append(SecretVersion(account.previous_webhook_secret, expires))
        known[account_id] = versions
    return known[account_id]


async def _signing_by_endpoint(
    session: AsyncSession, endpoint_ids: set[str]
) -> dict[str, list[SecretVersion]]:
    """The secrets that sign now, per endpoint (see ``service.signing_secrets``), in one query."""
    if not endpoint_ids:
        return {}
    now = utcnow()
    rows = await session.scalars(
        select(WebhookSecret)
        .where(WebhookSecret.endpoint_id.in_(endpoint_ids))
        .order_by(WebhookSecret.endpoint_id, WebhookSecret.version.desc())
    )
    grouped: dict[str, list[WebhookSecret]] = {}
    for secret in rows:
        grouped.setdefault(secret.endpoint_id, []).append(secret)
    return {endpoint_id: signing_secrets(versions, now) for endpoint_id, versions in grouped.items()}


@dataclass(frozen=True)
class AttemptResult:
    """What happened on the wire. ``status`` None means no response (``Error Request``)."""

    attempt_id: str
    started_at: datetime
    request_headers: dict[str, str]
    status: int | None
    response_headers: dict[str, str] | None
    response_body: str | None
    duration_ms: int
    error_class: str | None = None
    error_text: str | None = None
    timed_out: bool = False
    retry_after: str | None = None

    @property
    def succeeded(self) -> bool:
        """A 2xx answer; a 3xx is a failure because redirects are not followed."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        """The outcome name of ``001``'s delivery history."""
        if self.succeeded:
            return SUCCESS
        return ERROR_RESPONSE if self.status is not None else ERROR_REQUEST


def retry_decision(plan: AttemptPlan, result: AttemptResult, settings: Settings) -> RetryDecision | None:
    """What follows this attempt (None after a success): the profile's decision (``retry.decide``) for the
    attempt's number in its round, with the settings' time scale."""
    return decide(
        profile_for(plan.profile, settings),
        max(1, plan.seq + 1 - plan.base),
        status=result.status,
        timed_out=result.timed_out,
        retry_after_header=result.retry_after,
        scale=settings.webhook_time_scale,
    )


def delay_after(plan: AttemptPlan, result: AttemptResult, settings: Settings) -> float | None:
    """Seconds before the next attempt after this one; None when none follows."""
    decision = retry_decision(plan, result, settings)
    return decision.delay if decision is not None else None


# Successful deliveries refresh their endpoint's last_delivery_at at most this often (seconds): a burst to
# one endpoint would otherwise make every dispatcher task write, and queue on, the same endpoint row.
LAST_DELIVERY_RESOLUTION = 1.0


def _attempt_row(plan: AttemptPlan, result: AttemptResult) -> dict[str, Any]:
    """The history row of an attempt (``next_attempt_at`` is the delivery's, set by the caller)."""
    return {
        "delivery_id": plan.delivery_id,
        "number": plan.seq + 1,
        "attempt_id": result.attempt_id,
        "trigger": plan.trigger,
        "started_at": result.started_at,
        "url": plan.url,
        "request_headers": result.request_headers,
        "response_status": result.status,
        "response_headers": result.response_headers,
        "response_body": result.response_body,
        "duration_ms": result.duration_ms,
        "error_class": result.error_class,
        "error_text": result.error_text,
        "outcome": result.outcome,
        "next_attempt_at": None,
    }


def _delivery_change(
    plan: AttemptPlan, result: AttemptResult, decision: RetryDecision | None, now: datetime
) -> dict[str, Any]:
    """The delivery after an attempt: succeeded, pending until its retry, or failed."""
    change: dict[str, Any] = {
        "id": plan.delivery_id,
        "attempts": plan.seq + 1,
        "last_attempt_at": result.started_at,
        "last_status_code": result.status,
        "last_error": result.error_text,
        "status": FAILED,
        "next_attempt_at": None,
        "redelivered": False,
    }
    if result.succeeded:
        change.update(status=SUCCEEDED, delivered_at=now)
    elif decision is not None and decision.action == RETRY and decision.delay is not None:
        change.update(status=PENDING, next_attempt_at=now + timedelta(seconds=decision.delay))
    return change


_ATTEMPTS = WebhookAttempt.__table__
assert isinstance(_ATTEMPTS, Table)
_ATTEMPT_INSERT = insert(_ATTEMPTS)
_DELIVERY_FIELDS = (
    "attempts",
    "last_attempt_at",
    "last_status_code",
    "last_error",
    "status",
    "next_attempt_at",
    "redelivered",
)


@functools.cache
def _delivery_update(*, delivered: bool) -> Any:
    """UPDATE of a delivery by id after an attempt (the keys of ``_delivery_change``), run for a list."""
    table = WebhookDelivery.__table__
    assert isinstance(table, Table)
    fields = _DELIVERY_FIELDS + (("delivered_at",) if delivered else ())
    return (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({name: bindparam("b_" + name, type_=table.c[name].type) for name in fields})
    )


# An attempt as recorded: its plan, what happened, what follows, and the change made to its delivery.
_Recorded = tuple[AttemptPlan, AttemptResult, RetryDecision | None, dict[str, Any]]


async def record_attempts(
    session: AsyncSession,
    outcomes: Sequence[tuple[AttemptPlan, AttemptResult, RetryDecision | None]],
    *,
    settings: Settings,
) -> list[bool]:
    """Record a task's attempts and what follows each: (plan, result, its :func:`retry_decision`).

    A success ends its delivery; a failure schedules the next try when the decision is to retry, else the
    delivery fails. A decision to disable (410 Gone) disables the endpoint, and so does an
    endpoint failing continuously for ``webhook_disable_after_days``. Retries are made by the destination's
    sweep, which queues itself again for them when it ends (:func:`reschedule_sweep`).

    The deliveries are locked first (``FOR UPDATE`` on PostgreSQL; SQLite transactions hold the write lock),
    so an attempt that another run of the same task already recorded is recognised and left out (False in
    its place). Statements are shared by the lot: one SELECT, multi-row INSERT and UPDATEs.
    """
    d = WebhookDelivery
    ids = [plan.delivery_id for plan, _, _ in outcomes]
    current = {
        row.id: (row.status, row.attempts)
        for row in await session.execute(
            select(d.id, d.status, d.attempts)
            .where(d.id.in_(ids))
            .order_by(d.id)  # one lock order for every transaction: no deadlock between them
            .with_for_update()
        )
    }
    now = utcnow()
    recorded: list[bool] = []
    attempts: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    # Per endpoint, its outcomes in order: endpoints that only succeeded get one conditional UPDATE.
    by_endpoint: dict[str, list[_Recorded]] = {}
    for plan, result, decision in outcomes:
        if current.get(plan.delivery_id) != (PENDING, plan.seq):
            recorded.append(False)
            continue
        recorded.append(True)
        attempt, change = _attempt_row(plan, result), _delivery_change(plan, result, decision, now)
        attempt["next_attempt_at"] = change["next_attempt_at"]
        attempts.append(attempt)
        changes.append(change)
        if plan.endpoint_id is not None:
            by_endpoint.setdefault(plan.endpoint_id, []).append((plan, result, decision, change))
    if attempts:
        await session.execute(_ATTEMPT_INSERT, attempts)
        # Set-based: one UPDATE statement per shape of change (with or without delivered_at), built once.
        for delivered in (True, False):
            same = [
                {"b_" + k: v for k, v in c.items()} for c in changes if ("delivered_at" in c) is delivered
            ]
            if same:
                await session.execute(_delivery_update(delivered=delivered), same)
    await _record_endpoint_health(session, by_endpoint, now, settings)
    await session.flush()
    return recorded


async def _record_endpoint_health(
    session: AsyncSession,
    by_endpoint: Mapping[str, Sequence[_Recorded]],
    now: datetime,
    settings: Settings,
) -> None:
    healthy = [eid for eid, results in by_endpoint.items() if all(r.succeeded for _, r, _, _ in results)]
    if healthy:
        e = WebhookEndpoint
        await session.execute(
            update(e)
            .where(
                e.id.in_(healthy),
                or_(
                    e.failing_since.is_not(None),
                    e.failure_notified_at.is_not(None),
                    e.last_delivery_at.is_(None),
                    e.last_delivery_at < now - timedelta(seconds=LAST_DELIVERY_RESOLUTION),
                ),
            )
            .values(failing_since=None, failure_notified_at=None, last_delivery_at=now)
            .execution_options(synchronize_session=False)
        )
    failing = [eid for eid in by_endpoint if eid not in healthy]
    if not failing:
        return
    found = await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(failing)))
    limit = timedelta(days=settings.webhook_disable_after_days)
    for endpoint in found:
        for plan, result, decision, change in by_endpoint[endpoint.id]:
            if result.succeeded:
                endpoint.failing_since = None
                endpoint.failure_notified_at = None
                endpoint.last_delivery_at = now
                continue
            if decision is not None and decision.action == DISABLE:
                await disable_endpoint(session, endpoint, decision.reason or "disabled by its answer")
            if not endpoint.active:
                continue
            if endpoint.failing_since is None:
                endpoint.failing_since = result.started_at
            if now - endpoint.failing_since >= limit:
                await disable_endpoint(
                    session,
                    endpoint,
                    f"every attempt failed for {settings.webhook_disable_after_days:g} days "
                    f"(since {endpoint.failing_since.isoformat()})",
                )
            elif change["status"] == FAILED and endpoint.failure_notified_at is None:
                endpoint.failure_notified_at = now
                text = (
                    f"Webhook endpoint {endpoint.url} is failing: delivery {plan.delivery_id} "
                    f"({plan.event_type}) failed permanently after {change['attempts']} attempts "
                    f"(last: {result.status or result.error_class}: {result.error_text or ''})."
                )
                await notify_slack(
                    session,
                    endpoint.account_id,
                    NOTICE_ENDPOINT_FAILING,
                    text,
                    ":warning: *Webhook endpoint failing*",
                )


async def disable_endpoint(session: AsyncSession, endpoint: WebhookEndpoint, reason: str) -> None:
    """Disable an endpoint, tell the account (an event to its other endpoints, and Slack if connected)."""
    if not endpoint.active:
        return
    now = utcnow()
    endpoint.active = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.updated_at = now
    await session.flush()
    log.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.id, "reason": reason})
    await emit_event(
        session,
        endpoint.account_id,
        ENDPOINT_DISABLED_EVENT,
        {"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason, "disabled_at": now.isoformat()},
    )
    text = f"Webhook endpoint {endpoint.url} was disabled: {reason}. Re-enable it and recover what it missed."
    await notify_slack(
        session, endpoint.account_id, NOTICE_ENDPOINT_DISABLED, text, ":no_entry: *Webhook endpoint disabled*"
    )
