"""Tracked companies, status changes, analyses and the account's integration webhook (document 001).

No HTTP here; services flush, the boundary commits. Every event (``changedStatus``, ``analysisCompleted``)
is written by the webhook engine in the transaction of the change it reports. The integration webhook is
the account's ``kruncher``-profile endpoint of that engine, not a second mechanism.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import utcnow
from dossier.enrichment.protocol import ToolContext, ToolOutcome
from dossier.enrichment.runner import run_tool
from dossier.errors import InvalidInput, NotFound
from dossier.net import OutboundClient
from dossier.pipeline.models import COMPLETED, FAILED, PENDING, RUNNING, Analysis, TrackedCompany
from dossier.queue.service import enqueue
from dossier.webhooks import service as webhooks
from dossier.webhooks.models import (
    ERROR_REQUEST,
    ERROR_RESPONSE,
    SUCCESS,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from dossier.webhooks.profiles.kruncher import (
    ANALYSIS_COMPLETED,
    CHANGED_STATUS,
    analysis_completed_data,
    changed_status_data,
)

RUN_ANALYSIS = "analysis.run"
KRUNCHER = "kruncher"
# The kruncher profile's endpoint option carrying the opted-in API key (its name in the webhooks API).
API_KEY_FIELD = "kruncher_api_key"
HISTORY_STATUSES = (SUCCESS, ERROR_REQUEST, ERROR_RESPONSE)
INTEGRATION_EVENTS = (ANALYSIS_COMPLETED, CHANGED_STATUS)
MAX_HISTORY_LIMIT = 100
MAX_NAME = 200
MAX_WEBSITE = 500
MAX_STAGE = 100


def _text(value: str | None, field: str, limit: int) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if len(text) > limit:
        raise InvalidInput(f"{field} must be at most {limit} characters")
    return text or None


def check_status(status: str, statuses: Sequence[str]) -> str:
    """``status`` if it is one of the configured statuses; InvalidInput listing them otherwise."""
    if status not in statuses:
        raise InvalidInput(
            f"unknown status {status!r}; valid statuses, in pipeline order: {', '.join(statuses)}",
            detail={"statuses": list(statuses)},
        )
    return status


# --- tracked companies ----------------------------------------------------------------------------------


async def create_company(
    session: AsyncSession,
    account_id: str,
    *,
    name: str,
    website: str | None,
    status: str | None,
    stage: str | None,
    statuses: Sequence[str],
) -> TrackedCompany:
    """Track a company; its status defaults to the first configured one. No event: nothing changed yet."""
    clean_name = _text(name, "name", MAX_NAME)
    if clean_name is None:
        raise InvalidInput("name must not be empty")
    now = utcnow()
    company = TrackedCompany(
        account_id=account_id,
        name=clean_name,
        website=_text(website, "website", MAX_WEBSITE),
        status=check_status(status, statuses) if status is not None else statuses[0],
        stage=_text(stage, "stage", MAX_STAGE),
        created_at=now,
        updated_at=now,
    )
    session.add(company)
    await session.flush()
    return company


async def get_company(session: AsyncSession, account_id: str, company_id: str) -> TrackedCompany:
    """A tracked company of the account; NotFound otherwise (another account's is not found)."""
    company = await session.get(TrackedCompany, company_id) if len(company_id) <= 36 else None
    if company is None or company.account_id != account_id:
        raise NotFound(f"no project {company_id!r}")
    return company


async def change_status(
    session: AsyncSession,
    account_id: str,
    company_id: str,
    *,
    status: str,
    stage: str | None,
    statuses: Sequence[str],
) -> TrackedCompany:
    """Move a company to ``status`` (and ``stage`` when given; omitted keeps it, "" clears it).

    When the status or the stage really changes, ``changedStatus`` is emitted in this transaction; setting
    what is already there changes nothing and emits nothing.
    """
    check_status(status, statuses)
    company = await get_company(session, account_id, company_id)
    new_stage = company.stage if stage is None else _text(stage, "stage", MAX_STAGE)
    if status == company.status and new_stage == company.stage:
        return company
    previous = company.status
    now = utcnow()
    company.status = status
    company.stage = new_stage
    company.updated_at = now
    await session.flush()
    await webhooks.emit_event(
        session,
        account_id,
        CHANGED_STATUS,
        changed_status_data(
            project_id=company.id,
            project_name=company.name,
            previous_status=previous,
            new_status=status,
            stage=new_stage,
            changed_at=now,
        ),
    )
    return company


# --- analyses -------------------------------------------------------------------------------------------


async def start_analysis(session: AsyncSession, account_id: str, company_id: str) -> Analysis:
    """Create a pending analysis of a tracked company and queue it, in the caller's transaction."""
    company = await get_company(session, account_id, company_id)
    analysis = Analysis(account_id=account_id, company_id=company.id, status=PENDING, created_at=utcnow())
    session.add(analysis)
    await session.flush()
    enqueue(session, RUN_ANALYSIS, {"analysis_id": analysis.id})
    return analysis


async def get_analysis(
    session: AsyncSession, account_id: str, analysis_id: str
) -> tuple[Analysis, TrackedCompany]:
    """An analysis of the account with its company; NotFound otherwise."""
    analysis = await session.get(Analysis, analysis_id) if len(analysis_id) <= 36 else None
    if analysis is None or analysis.account_id != account_id:
        raise NotFound(f"no analysis {analysis_id!r}")
    company = await session.get(TrackedCompany, analysis.company_id)
    assert company is not None  # analyses are deleted with their company
    return analysis, company


async def list_companies(session: AsyncSession, account_id: str, *, limit: int = 500) -> list[TrackedCompany]:
    """The account's tracked companies, newest first (the dashboard groups them by status)."""
    result = await session.scalars(
        select(TrackedCompany)
        .where(TrackedCompany.account_id == account_id)
        .order_by(TrackedCompany.created_at.desc(), TrackedCompany.id)
        .limit(limit)
    )
    return list(result)


async def list_analyses(session: AsyncSession, account_id: str, company_id: str) -> list[Analysis]:
    """A tracked company's analyses, newest first; NotFound for another account's company."""
    company = await get_company(session, account_id, company_id)
    result = await session.scalars(
        select(Analysis)
        .where(Analysis.company_id == company.id)
        .order_by(Analysis.created_at.desc(), Analysis.id)
    )
    return list(result)


@dataclass(frozen=True)
class AnalysisWork:
    """What an analysis run needs, read before the tools run (outside any transaction)."""

    analysis_id: str
    name: str
    website: str | None


async def begin_analysis(session: AsyncSession, analysis_id: str) -> AnalysisWork | None:
    """Mark an unfinished analysis running; None when it is finished or gone (a task that ran twice)."""
    analysis = await session.get(Analysis, analysis_id)
    if analysis is None or analysis.status not in (PENDING, RUNNING):
        return None
    company = await session.get(TrackedCompany, analysis.company_id)
    if company is None:
        return None
    analysis.status = RUNNING
    await session.flush()
    return AnalysisWork(analysis.id, company.name, company.website)


@dataclass(frozen=True)
class ToolResults:
    """The outcomes of the three tools of an analysis (firmographics is None when nothing was resolved)."""

    entity_resolution: ToolOutcome
    firmographics: ToolOutcome | None
    website: ToolOutcome | None


async def run_analysis_tools(work: AnalysisWork, ctx: ToolContext) -> ToolResults:
    """Entity resolution and the website at once, then firmographics of the resolved company: the same
    tools a project's columns run."""
    resolving = run_tool("entity_resolution", {"name": work.name, "website": work.website}, ctx)
    if work.website:
        resolved, site = await asyncio.gather(resolving, run_tool("website", {"website": work.website}, ctx))
    else:
        resolved, site = await resolving, None
    firmographics = None
    if resolved.status == "success" and isinstance(resolved.value, Mapping):
        firmographics = await run_tool("firmographics", {"kernel_id": resolved.value.get("kernel_id")}, ctx)
    return ToolResults(resolved, firmographics, site)


# The report's profile fields, in order: (wire name, source, key in the tool's value).
PROFILE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("kernelId", "entityResolution", "kernel_id"),
    ("legalName", "entityResolution", "name"),
    ("domain", "entityResolution", "domain"),
    ("country", "firmographics", "country_code"),
    ("industry", "firmographics", "industry"),
    ("sector", "firmographics", "sector"),
    ("employeeCount", "firmographics", "employee_count"),
    ("revenue", "firmographics", "revenue"),
    ("headquarters", "firmographics", "headquarters"),
    ("foundedYear", "firmographics", "founded_year"),
    ("companyType", "firmographics", "company_type"),
    ("identifiers", "firmographics", "identifiers"),
    ("title", "website", "title"),
    ("description", "website", "description"),
    ("language", "website", "language"),
    ("social", "website", "social"),
)


def _empty(value: Any) -> bool:
    if value is None or value == "" or value == [] or value == {}:
        return True
    # Nested records (revenue, headquarters, identifiers) count as found when any part is.
    if isinstance(value, Mapping):
        return all(_empty(v) for v in value.values())
    return False


def _source(outcome: ToolOutcome | None, why_not_run: str) -> dict[str, Any]:
    if outcome is None:
        return {"status": "skipped", "error": why_not_run, "value": None}
    return {"status": outcome.status, "error": outcome.error, "value": outcome.value}


def build_report(name: str, website: str | None, results: ToolResults) -> dict[str, Any]:
    """The analysis report: the enriched profile, what could not be found (and why), data completeness."""
    sources = {
        "entityResolution": _source(results.entity_resolution, ""),
        "firmographics": _source(results.firmographics, "the company was not resolved to the registry"),
        "website": _source(results.website, "the project has no website"),
    }
    profile: dict[str, Any] = {"name": name, "website": website}
    missing: list[dict[str, Any]] = []
    for wire, source, key in PROFILE_FIELDS:
        value_obj = sources[source]["value"]
        value = value_obj.get(key) if isinstance(value_obj, Mapping) else None
        profile[wire] = value
        if _empty(value):
            reason = sources[source]["error"] if sources[source]["status"] != "success" else None
            missing.append({"field": wire, "source": source, "reason": reason or f"{source} has no {wire}"})
    found = len(PROFILE_FIELDS) - len(missing)
    return {
        "profile": profile,
        "missing": missing,
        "completeness": {
            "found": found,
            "total": len(PROFILE_FIELDS),
            "ratio": round(found / len(PROFILE_FIELDS), 2),
        },
        "sources": sources,
    }


async def finish_analysis(
    session: AsyncSession, analysis_id: str, report: dict[str, Any], kernel_id: str | None
) -> Analysis | None:
    """Complete an analysis with its report and emit ``analysisCompleted`` in the same transaction.

    Returns None when another run already completed it (nothing is emitted twice).
    """
    analysis = await session.get(Analysis, analysis_id, with_for_update=True)
    if analysis is None or analysis.status == COMPLETED:
        return None
    company = await session.get(TrackedCompany, analysis.company_id)
    if company is None:
        return None
    analysis.status = COMPLETED
    analysis.report = report
    analysis.kernel_id = kernel_id
    analysis.completed_at = utcnow()
    await session.flush()
    await webhooks.emit_event(
        session,
        analysis.account_id,
        ANALYSIS_COMPLETED,
        analysis_completed_data(
            project_id=company.id,
            analysis_id=analysis.id,
            project_name=company.name,
            kruncher_entity_company_id=kernel_id,
        ),
    )
    return analysis


async def fail_analysis(session: AsyncSession, analysis_id: str, error: str) -> Analysis | None:
    """End an analysis whose task exhausted its retries: ``failed`` with the error, and
    ``analysisCompleted`` (the analysis is over; GET /api/analysis tells how) in one transaction. None when
    it already ended."""
    analysis = await session.get(Analysis, analysis_id, with_for_update=True)
    if analysis is None or analysis.status in (COMPLETED, FAILED):
        return None
    company = await session.get(TrackedCompany, analysis.company_id)
    analysis.status = FAILED
    analysis.error = error[:2000]
    analysis.completed_at = utcnow()
    await session.flush()
    if company is not None:
        await webhooks.emit_event(
            session,
            analysis.account_id,
            ANALYSIS_COMPLETED,
            analysis_completed_data(
                project_id=company.id,
                analysis_id=analysis.id,
                project_name=company.name,
                kruncher_entity_company_id=None,
            ),
        )
    return analysis


# --- the integration webhook (the account's kruncher endpoint) -----------------------------------------


async def find_integration(session: AsyncSession, account_id: str) -> WebhookEndpoint | None:
    """The account's integration webhook: its oldest ``kruncher`` endpoint, if any (not a `dossier listen`
    one)."""
    for endpoint in await webhooks.list_endpoints(session, account_id):
        if endpoint.profile == KRUNCHER and endpoint.listener is None:
            return endpoint
    return None


async def get_integration(session: AsyncSession, account_id: str) -> WebhookEndpoint:
    """The integration webhook; NotFound when none is configured."""
    endpoint = await find_integration(session, account_id)
    if endpoint is None:
        raise NotFound("no webhook is configured; POST /api/integration/webhook to create one")
    return endpoint


def _wanted(analysis_completed: bool, changed_status: bool) -> list[str]:
    chosen = {ANALYSIS_COMPLETED: analysis_completed, CHANGED_STATUS: changed_status}
    return [event for event in INTEGRATION_EVENTS if chosen[event]]


@dataclass(frozen=True)
class Integration:
    """The integration webhook after a POST/PUT; ``secret`` is set only when it was just created."""

    endpoint: WebhookEndpoint
    secret: str | None


async def configure_integration(
    session: AsyncSession,
    account_id: str,
    *,
    url: str,
    analysis_completed: bool,
    changed_status: bool,
    http: OutboundClient,
    api_key: str | bool | None = None,
) -> Integration:
    """Create the integration webhook, or update it (URL validated again, events, re-enabled if disabled).

    001 treats POST and PUT alike ("create a new webhook or update existing configuration"). ``api_key``:
    a key to send in ``x-kruncher-api-key`` (the opt-in), False to stop sending one, None to keep as is.
    """
    events = _wanted(analysis_completed, changed_status)
    endpoint = await find_integration(session, account_id)
    secret = None
    options: dict[str, str | None] = {}
    if api_key is False:
        options[API_KEY_FIELD] = None
    elif isinstance(api_key, str):
        options[API_KEY_FIELD] = api_key
    if endpoint is None:
        created = await webhooks.create_endpoint(
            session,
            account_id,
            url=url,
            profile=KRUNCHER,
            events=events or None,
            http=http,
            options={k: v for k, v in options.items() if v is not None},
        )
        endpoint, secret = created.endpoint, created.secret
    else:
        endpoint = await webhooks.update_endpoint(
            session,
            account_id,
            endpoint.id,
            http=http,
            url=url,
            events=events or None,
            active=True,
            options=options,
        )
    if not events:
        # The engine reads "no events given" as "every event of the profile"; 001's two false flags mean
        # none, so the subscription is emptied here: the endpoint stays configured and receives nothing.
        endpoint.events = []
        await session.flush()
    return Integration(endpoint, secret)


async def integration_history(
    session: AsyncSession,
    account_id: str,
    *,
    limit: int,
    offset: int,
    event: str | None,
    status: str | None,
) -> tuple[list[tuple[WebhookAttempt, WebhookDelivery]], int]:
    """001's delivery history: one entry per attempt to the integration webhook, newest first, and the
    total matching. Reads the webhook engine's tables (attempts are recorded there, nowhere else)."""
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_HISTORY_LIMIT}, not {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, not {offset}")
    if status is not None and status not in HISTORY_STATUSES:
        raise InvalidInput(f"unknown status {status!r}; valid statuses: {', '.join(HISTORY_STATUSES)}")
    if event is not None and event not in INTEGRATION_EVENTS:
        raise InvalidInput(f"unknown event {event!r}; valid events: {', '.join(INTEGRATION_EVENTS)}")
    endpoint = await find_integration(session, account_id)
    if endpoint is None:
        return [], 0
    where = [WebhookDelivery.account_id == account_id, WebhookDelivery.endpoint_id == endpoint.id]
    if status is not None:
        where.append(WebhookAttempt.outcome == status)
    if event is not None:
        where.append(WebhookDelivery.event_type == event)
    total = await session.scalar(
        select(func.count())
        .select_from(WebhookAttempt)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(*where)
    )
    rows = await session.execute(
        select(WebhookAttempt, WebhookDelivery)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(*where)
        .order_by(WebhookAttempt.started_at.desc(), WebhookAttempt.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [(attempt, delivery) for attempt, delivery in rows], int(total or 0)
