"""The pipeline and integration API of document 001. HTTP only: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Literal

from fastapi import Query, Request, status

from dossier.accounts.auth import CurrentAccount, api_key_from_request
from dossier.api.deps import Outbound, SettingsDep
from dossier.api.surfaces import PIPELINE
from dossier.db.session import SessionDep
from dossier.pipeline import schemas, service

# One router for the surface's three prefixes (/api/company, /api/analysis, /api/integration).
router = PIPELINE.router(tags=["Pipeline and integration API"], prefix="/api")
ERRORS = PIPELINE.responses()
# Far beyond any history kept, and well inside a 64-bit OFFSET.
MAX_OFFSET = 1_000_000_000


@router.post(
    "/company", status_code=status.HTTP_201_CREATED, response_model=schemas.CompanyEnvelope, responses=ERRORS
)
async def create_company(
    body: schemas.CompanyIn, session: SessionDep, account: CurrentAccount, settings: SettingsDep
) -> schemas.CompanyEnvelope:
    """Track a company (a "project"); `status` defaults to the first configured status."""
    row = await service.create_company(
        session,
        account.id,
        name=body.name,
        website=body.website,
        status=body.status,
        stage=body.stage,
        statuses=settings.pipeline_statuses,
    )
    return schemas.company(row)


@router.get("/company/retrieve", response_model=schemas.CompanyEnvelope, responses=ERRORS)
async def retrieve_company(
    session: SessionDep,
    account: CurrentAccount,
    projectId: str = Query(description="The project id."),
) -> schemas.CompanyEnvelope:
    """A tracked company."""
    return schemas.company(await service.get_company(session, account.id, projectId))


@router.get("/company/statuses", response_model=schemas.StatusesEnvelope, responses=ERRORS)
async def list_statuses(account: CurrentAccount, settings: SettingsDep) -> schemas.StatusesEnvelope:
    """The configured statuses, in pipeline order."""
    return schemas.StatusesEnvelope(data=list(settings.pipeline_statuses))


@router.put("/company/status", response_model=schemas.CompanyEnvelope, responses=ERRORS)
async def change_status(
    body: schemas.StatusIn, session: SessionDep, account: CurrentAccount, settings: SettingsDep
) -> schemas.CompanyEnvelope:
    """Move a company to another status (and stage); emits `changedStatus` when either changes."""
    row = await service.change_status(
        session,
        account.id,
        body.projectId,
        status=body.status,
        stage=body.stage,
        statuses=settings.pipeline_statuses,
    )
    return schemas.company(row)


@router.post(
    "/analysis",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.AnalysisEnvelope,
    responses=ERRORS,
)
async def start_analysis(
    body: schemas.AnalysisIn, session: SessionDep, account: CurrentAccount
) -> schemas.AnalysisEnvelope:
    """Start an analysis (entity resolution, firmographics, website); `analysisCompleted` when done."""
    row = await service.start_analysis(session, account.id, body.projectId)
    analysis, company = await service.get_analysis(session, account.id, row.id)
    return schemas.analysis(analysis, company)


@router.get("/analysis", response_model=schemas.AnalysisEnvelope, responses=ERRORS)
async def get_analysis(
    session: SessionDep,
    account: CurrentAccount,
    analysisId: str = Query(description="The analysis id."),
) -> schemas.AnalysisEnvelope:
    """An analysis and, once `completed`, its report."""
    analysis, company = await service.get_analysis(session, account.id, analysisId)
    return schemas.analysis(analysis, company)


@router.get(
    "/integration/webhook",
    response_model=schemas.WebhookEnvelope,
    response_model_exclude_none=False,
    responses=ERRORS,
)
async def get_webhook(session: SessionDep, account: CurrentAccount) -> schemas.WebhookEnvelope:
    """The account's webhook configuration."""
    return schemas.webhook(await service.get_integration(session, account.id))


@router.post("/integration/webhook", response_model=schemas.WebhookEnvelope, responses=ERRORS)
@router.put("/integration/webhook", response_model=schemas.WebhookEnvelope, responses=ERRORS)
async def configure_webhook(
    body: schemas.WebhookConfigIn,
    request: Request,
    session: SessionDep,
    account: CurrentAccount,
    http: Outbound,
) -> schemas.WebhookEnvelope:
    """Create the webhook or update it (POST and PUT alike). `signingSecret` is shown only on creation.
    `sendApiKey: true` opts in to the `x-kruncher-api-key` header (the key of this request)."""
    api_key: str | bool | None = None
    if body.sendApiKey is not None:
        api_key = api_key_from_request(request) if body.sendApiKey else False
    result = await service.configure_integration(
        session,
        account.id,
        url=body.url,
        analysis_completed=body.analysisCompleted,
        changed_status=body.changedStatus,
        http=http,
        api_key=api_key,
    )
    return schemas.integration(result)


@router.get("/integration/webhook/history", response_model=schemas.HistoryEnvelope, responses=ERRORS)
async def webhook_history(
    session: SessionDep,
    account: CurrentAccount,
    limit: int = Query(default=50, ge=1, le=100, description="Records per page, 1 to 100."),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET, description="Records to skip."),
    event: Literal["analysisCompleted", "changedStatus"] | None = Query(
        default=None, description="Only this event."
    ),
    status: Literal["Success", "Error Request", "Error Response"] | None = Query(
        default=None, description="Only attempts with this outcome."
    ),
) -> schemas.HistoryEnvelope:
    """Every delivery attempt to the webhook, newest first."""
    rows, total = await service.integration_history(
        session, account.id, limit=limit, offset=offset, event=event, status=status
    )
    return schemas.history(rows, total, limit, offset)
