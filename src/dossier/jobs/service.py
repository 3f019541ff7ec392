"""Jobs: create them, find them, and finish them. No HTTP here; services flush, the boundary commits.

A job is the tool-column engine's work with another front door: it runs the very same tools
(``entity_resolution``, ``firmographics``) on the work queue. Its final state and its ``webhook_url``
delivery (profile ``kernel``, signed with the account's secret) are written in one transaction, so a
callback is sent exactly for the jobs that really finished.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import utcnow
from dossier.enrichment.protocol import ToolContext, ToolOutcome
from dossier.enrichment.runner import run_tool
from dossier.errors import InvalidInput, NotFound
from dossier.jobs.models import (
    COMPLETED,
    ENTITY_RESOLUTION,
    FAILED,
    FINAL,
    FIRMOGRAPHICS,
    KINDS,
    PENDING,
    RUNNING,
    Job,
)
from dossier.net import BlockedURL, OutboundClient
from dossier.queue.service import enqueue
from dossier.webhooks import history
from dossier.webhooks import service as webhooks
from dossier.webhooks.models import WebhookDelivery
from dossier.webhooks.profiles.kernel import kernel_job_data

RUN_JOBS = "jobs.run"
STATUSES = (PENDING, RUNNING, COMPLETED, FAILED)
# The event prefix of each kind: 003 spells firmographics callbacks "firmographic-enrichment.*".
EVENT_PREFIX = {ENTITY_RESOLUTION: "entity-resolution", FIRMOGRAPHICS: "firmographic-enrichment"}
# The tool that does each kind's work: the same one a tool column of that type runs.
TOOL_OF = {ENTITY_RESOLUTION: "entity_resolution", FIRMOGRAPHICS: "firmographics"}


@dataclass(frozen=True)
class ResolutionRequest:
    """One entity-resolution request (003's body)."""

    legal_name: str
    website: str | None = None
    country: str | None = None
    city: str | None = None
    postal_code: str | None = None
    address: str | None = None
    webhook_url: str | None = None


async def check_webhook_url(http: OutboundClient, url: str) -> str:
    """A job's ``webhook_url`` through the outbound policy (https unless allow-listed, no private address
    unless allow-listed, the name must resolve); InvalidInput (422) saying why when refused."""
    try:
        return await webhooks.validate_url(http, url)
    except BlockedURL as exc:
        raise InvalidInput(f"webhook_url refused: {exc.message}", detail={"webhook_url": url}) from None


async def _checked_urls(http: OutboundClient, urls: Sequence[str | None]) -> dict[str, str]:
    # A batch usually repeats one URL: validate (and resolve) each distinct one once.
    checked: dict[str, str] = {}
    for url in urls:
        if url is not None and url not in checked:
            checked[url] = await check_webhook_url(http, url)
    return checked


def _queue(session: AsyncSession, jobs: Sequence[Job], chunk: int) -> None:
    for start in range(0, len(jobs), chunk):
        enqueue(session, RUN_JOBS, {"job_ids": [job.id for job in jobs[start : start + chunk]]})


async def create_resolution_jobs(
    session: AsyncSession,
    account_id: str,
    requests: Sequence[ResolutionRequest],
    *,
    http: OutboundClient,
    chunk: int = 50,
) -> list[Job]:
    """One pending entity-resolution job per request, in order, queued in the caller's transaction.

    Every ``webhook_url`` is validated first: one refused URL refuses the whole call and creates nothing.
    """
    urls = await _checked_urls(http, [r.webhook_url for r in requests])
    now = utcnow()
    jobs = [
        Job(
            account_id=account_id,
            kind=ENTITY_RESOLUTION,
            status=PENDING,
            input={
                "legal_name": r.legal_name,
                "website": r.website,
                "country": r.country,
                "city": r.city,
                "postal_code": r.postal_code,
                "address": r.address,
            },
            webhook_url=urls[r.webhook_url] if r.webhook_url is not None else None,
            created_at=now,
        )
        for r in requests
    ]
    session.add_all(jobs)
    await session.flush()
    _queue(session, jobs, chunk)
    return jobs


async def create_firmographics_job(
    session: AsyncSession,
    account_id: str,
    kernel_id: str,
    *,
    webhook_url: str | None,
    http: OutboundClient,
) -> Job:
    """A pending firmographics job for ``kernel_id``, queued in the caller's transaction."""
    urls = await _checked_urls(http, [webhook_url])
    job = Job(
        account_id=account_id,
        kind=FIRMOGRAPHICS,
        status=PENDING,
        input={"kernel_id": kernel_id},
        webhook_url=urls[webhook_url] if webhook_url is not None else None,
        created_at=utcnow(),
    )
    session.add(job)
    await session.flush()
    _queue(session, [job], 1)
    return job


async def get_job(session: AsyncSession, account_id: str, kind: str, job_id: str) -> Job:
    """A job of the account and of this kind; NotFound otherwise (another account's job is not found)."""
    job = await session.get(Job, job_id) if len(job_id) <= 36 else None
    if job is None or job.account_id != account_id or job.kind != kind:
        raise NotFound(f"no {kind} job {job_id!r}")
    return job


async def list_jobs(
    session: AsyncSession,
    account_id: str,
    *,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """One page of the account's jobs, newest first (of one kind and status when given), and the total."""
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"unknown job kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"unknown job status {status!r}; choose one of: {', '.join(STATUSES)}")
    where = [Job.account_id == account_id]
    if kind is not None:
        where.append(Job.kind == kind)
    if status is not None:
        where.append(Job.status == status)
    total = await session.scalar(select(func.count()).select_from(Job).where(*where))
    page = await session.scalars(
        select(Job)
        .where(*where)
        .order_by(Job.created_at.desc(), Job.id)
        .limit(max(1, min(limit, 200)))
        .offset(max(0, offset))
    )
    return list(page), int(total or 0)


async def find_job(session: AsyncSession, account_id: str, job_id: str) -> Job:
    """A job of the account, whatever its kind; NotFound otherwise."""
    job = await session.get(Job, job_id) if len(job_id) <= 36 else None
    if job is None or job.account_id != account_id:
        raise NotFound(f"no job {job_id!r}")
    return job


async def job_callbacks(session: AsyncSession, job: Job) -> list[WebhookDelivery]:
    """The deliveries of a job's ``webhook_url`` callback (normally one; more if it ever ran twice)."""
    if job.webhook_url is None:
        return []
    found = await history.deliveries_to_target(session, job.account_id, job.webhook_url, since=job.created_at)
    return [delivery for delivery, event in found if event.payload.get("id") == job.id]


async def start_jobs(session: AsyncSession, job_ids: Sequence[str]) -> list[Job]:
    """Mark the unfinished jobs among ``job_ids`` running and return them (finished ones are skipped, so a
    task that runs twice does not redo work). A ``running`` job is taken again: its worker died."""
    if not job_ids:
        return []
    jobs = list(
        await session.scalars(
            select(Job).where(Job.id.in_(list(job_ids)), Job.status.in_([PENDING, RUNNING])).order_by(Job.id)
        )
    )
    now = utcnow()
    for job in jobs:
        job.status = RUNNING
        job.started_at = now
    await session.flush()
    return jobs


def tool_values(kind: str, job_input: Mapping[str, Any]) -> dict[str, Any]:
    """The tool inputs of a job, named as the tool names them."""
    if kind == ENTITY_RESOLUTION:
        return {
            "name": job_input.get("legal_name"),
            "website": job_input.get("website"),
            "country": job_input.get("country"),
            "city": job_input.get("city"),
            "postal_code": job_input.get("postal_code"),
            "address": job_input.get("address"),
        }
    return {"kernel_id": job_input.get("kernel_id")}


async def run_job_tool(kind: str, job_input: Mapping[str, Any], ctx: ToolContext) -> ToolOutcome:
    """The tool outcome of one job (the same tool a column of that type runs)."""
    return await run_tool(TOOL_OF[kind], tool_values(kind, job_input), ctx)


async def finish_job(session: AsyncSession, job_id: str, outcome: ToolOutcome) -> Job | None:
    """Write a job's final state and, in the same transaction, its ``webhook_url`` callback.

    ``success`` completes it with the tool's value as ``record``; ``skipped`` (nothing matched) and ``error``
    fail it with the tool's reason (a skipped resolution keeps its candidates in ``record``, which the API
    and the callback show as null for a failed job, as 003 says). Returns None when the job was already
    finished by another run of its task (at-least-once), which then sends nothing twice.
    """
    now = utcnow()
    completed = outcome.status == "success"
    status = COMPLETED if completed else FAILED
    reason = None if completed else (outcome.error or "the job failed")
    claimed = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(list(FINAL)))
        .values(
            status=status,
            record=outcome.value if completed or outcome.status == "skipped" else None,
            reason=reason,
            completed_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    job = await session.get(Job, job_id, populate_existing=True)
    assert job is not None
    if job.webhook_url is not None:
        await webhooks.emit_event(
            session,
            job.account_id,
            f"{EVENT_PREFIX[job.kind]}.{status}",
            kernel_job_data(
                job_id=job.id,
                status=status,
                created_at=job.created_at,
                completed_at=job.completed_at,
                record=job.record,
            ),
            target=job.webhook_url,
            target_profile="kernel",
        )
    await session.flush()
    return job
