"""Prometheus metrics of this process: every name and label is here, documented in docs/operations.md.

Label values are bounded by construction: task kinds, webhook profiles, tool names and route templates come
from code, outcomes from small fixed sets; never an id, a URL or user input. Code that counts something calls
one helper of this module (one line at the site); what is read from the database at scrape time (queue
depth, endpoint states) is set by ``dossier.operations.collect`` just before a scrape is rendered.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

P = ParamSpec("P")
R = TypeVar("R")

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Buckets in seconds: fast paths (requests, matching) and slow ones (delivery after retries).
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DELIVERY = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    7200.0,
    43200.0,
)

# --- the work queue ---------------------------------------------------------------------------------------
QUEUE_TASKS = Gauge(
    "dossier_queue_tasks",
    "Tasks in the queue (cluster-wide, read at scrape time) by kind and state: waiting (queued, due or "
    "delayed), running (claimed), failed (ended failed, kept for `dossier queue retry`).",
    ["kind", "state"],
)
QUEUE_OLDEST_DUE = Gauge(
    "dossier_queue_oldest_due_task_age_seconds",
    "Seconds the oldest due, unclaimed task has waited past its run_at (0 when none is due): the backlog.",
)
TASK_RUNS = Counter(
    "dossier_task_runs_total",
    "Task attempts run by this process, by kind and outcome (succeeded, retried, failed, snoozed).",
    ["kind", "outcome"],
)
TASK_SECONDS = Histogram(
    "dossier_task_duration_seconds",
    "Time a task's handler ran in this process, by kind.",
    ["kind"],
    buckets=_FAST,
)
WORKERS_ALIVE = Gauge(
    "dossier_workers_alive",
    "Worker processes whose heartbeat was seen within DOSSIER_READYZ_WORKER_MAX_AGE (cluster-wide).",
)

# --- webhooks ---------------------------------------------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter(
    "dossier_webhook_attempts_total",
    "Webhook HTTP attempts made by this process, by profile and outcome (Success, Error Request, Error "
    "Response).",
    ["profile", "outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "dossier_webhook_attempt_duration_seconds",
    "Duration of one webhook HTTP attempt, by profile.",
    ["profile"],
    buckets=_FAST,
)
WEBHOOK_DELIVERY_LATENCY = Histogram(
    "dossier_webhook_delivery_latency_seconds",
    "From the commit that created a delivery to its successful attempt (retries included; manual "
    "redeliveries excluded), by profile.",
    ["profile"],
    buckets=_DELIVERY,
)
WEBHOOK_ENDPOINTS = Gauge(
    "dossier_webhook_endpoints",
    "Webhook endpoints (cluster-wide, read at scrape time) by state: healthy, failing (its recent attempts "
    "failed, still active), disabled.",
    ["state"],
)

# --- enrichment -------------------------------------------------------------------------------------------
TOOL_RUNS = Counter(
    "dossier_tool_runs_total",
    "Tool runs (tool cells, jobs and analyses) by tool and outcome (success, error, skipped).",
    ["tool", "outcome"],
)
TOOL_SECONDS = Histogram(
    "dossier_tool_run_duration_seconds", "Duration of one tool run, by tool.", ["tool"], buckets=_FAST
)
ER_LOOKUPS = Counter(
    "dossier_entity_resolution_lookups_total",
    "Entity-resolution lookups against the registry, by outcome (match, no_match).",
    ["outcome"],
)
ER_SECONDS = Histogram(
    "dossier_entity_resolution_duration_seconds",
    "Time of one entity-resolution lookup in the in-memory index.",
    buckets=_FAST,
)

# --- HTTP -------------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "dossier_http_requests_total",
    "HTTP requests answered, by method, route template (unmatched for paths no route serves) and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "dossier_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=_FAST,
)

# --- retention --------------------------------------------------------------------------------------------
RETENTION_DELETED = Counter(
    "dossier_retention_deleted_total",
    "Rows deleted by the retention task of this process, by kind of data.",
    ["kind"],
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def render() -> bytes:
    """This process's metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)


# --- the one-line hooks -----------------------------------------------------------------------------------


def task_finished(kind: str, outcome: str, seconds: float) -> None:
    """A task attempt ended: ``outcome`` is succeeded, retried, failed or snoozed."""
    TASK_RUNS.labels(kind, outcome).inc()
    TASK_SECONDS.labels(kind).observe(seconds)


def webhook_attempt(
    profile: str, outcome: str, seconds: float, *, created_at: datetime | None, delivered_at: datetime | None
) -> None:
    """One webhook attempt; with ``delivered_at`` (a success of a scheduled round) the commit-to-delivery
    latency of its delivery is observed too."""
    children = _webhook_children.get((profile, outcome))
    if children is None:
        children = _webhook_children[(profile, outcome)] = (
            WEBHOOK_ATTEMPTS.labels(profile, outcome),
            WEBHOOK_ATTEMPT_SECONDS.labels(profile),
            WEBHOOK_DELIVERY_LATENCY.labels(profile),
        )
    attempts, attempt_seconds, latency = children
    attempts.inc()
    attempt_seconds.observe(seconds)
    if created_at is not None and delivered_at is not None:
        latency.observe(max(0.0, (delivered_at - created_at).total_seconds()))


# The tool metrics' children per (tool, status): a cell run would otherwise make two ``labels()`` calls.
_tool_children: dict[tuple[str, str], tuple[Any, Any]] = {}
# The webhook metrics' children per (profile, outcome): ``labels()`` costs more than the update itself, and
# every attempt makes three. A handful of keys (profiles x outcomes).
_webhook_children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    verb = method if method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(verb, route, str(status)).inc()
    HTTP_SECONDS.labels(verb, route).observe(seconds)


def record_tool_runs(tool: str, statuses: Sequence[str], seconds: float) -> None:
    """Count tool runs of ``tool`` by outcome status; ``seconds`` is what they took together (a chunk run
    at once is timed as that many runs of an equal share)."""
    share = seconds / len(statuses) if statuses else 0.0
    for status in statuses:
        key = (tool, status)
        children = _tool_children.get(key)
        if children is None:
            children = _tool_children[key] = (TOOL_RUNS.labels(*key), TOOL_SECONDS.labels(tool))
        children[0].inc()
        children[1].observe(share)


def observe_tool_runs(
    run: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    """Decorates the one tool runner: counts each run by its tool (first argument) and outcome status."""

    @functools.wraps(run)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        outcome = await run(*args, **kwargs)
        tool = str(args[0]) if args else str(kwargs.get("tool_name", "unknown"))
        record_tool_runs(tool, (str(getattr(outcome, "status", "unknown")),), time.perf_counter() - started)
        return outcome

    return wrapper


def record_resolution(matched: bool, seconds: float) -> None:
    """Count one entity-resolution lookup by whether it matched, and its time."""
    ER_SECONDS.observe(seconds)
    ER_LOOKUPS.labels("match" if matched else "no_match").inc()


def observe_resolutions(resolve: Callable[P, R]) -> Callable[P, R]:
    """Decorates the entity-resolution lookup: counts it by whether it matched, and times it."""

    @functools.wraps(resolve)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        resolution: Any = resolve(*args, **kwargs)
        record_resolution(getattr(resolution, "match", None) is not None, time.perf_counter() - started)
        return resolution  # type: ignore[no-any-return]

    return wrapper
