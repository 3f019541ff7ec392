"""The jobs API of document 003 under ``/rest/v1``. HTTP only: parse, call the service, shape the answer."""

from __future__ import annotations

from fastapi import status

from dossier.accounts.auth import CurrentAccount
from dossier.api.deps import Outbound, SettingsDep
from dossier.api.surfaces import JOBS
from dossier.db.session import SessionDep
from dossier.errors import InvalidInput
from dossier.jobs import schemas, service
from dossier.jobs.models import ENTITY_RESOLUTION, FIRMOGRAPHICS

router = JOBS.router(tags=["Jobs API"])
ERRORS = JOBS.responses()


@router.post(
    "/entity-resolution",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.JobOut,
    responses=ERRORS,
)
async def create_entity_resolution(
    body: schemas.ResolutionIn,
    session: SessionDep,
    account: CurrentAccount,
    http: Outbound,
    settings: SettingsDep,
) -> schemas.JobOut:
    """Start resolving one company to the registry; answers the `pending` job at once."""
    jobs = await service.create_resolution_jobs(
        session, account.id, [body.request()], http=http, chunk=settings.jobs_chunk
    )
    return schemas.job_out(jobs[0])


@router.post(
    "/entity-resolution/batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.JobsOut,
    responses=ERRORS,
)
async def create_entity_resolution_batch(
    body: schemas.ResolutionBatchIn,
    session: SessionDep,
    account: CurrentAccount,
    http: Outbound,
    settings: SettingsDep,
) -> schemas.JobsOut:
    """Start one job per input (up to 1,000); `jobs` answers them in the order of `inputs`."""
    if not body.inputs or len(body.inputs) > settings.jobs_max_batch:
        raise InvalidInput(
            f"inputs must hold 1 to {settings.jobs_max_batch} companies, not {len(body.inputs)}"
        )
    requests = [item.request(body.webhook_url) for item in body.inputs]
    jobs = await service.create_resolution_jobs(
        session, account.id, requests, http=http, chunk=settings.jobs_chunk
    )
    return schemas.JobsOut(jobs=[schemas.job_out(job) for job in jobs])


@router.get("/entity-resolution/{job_id}", response_model=schemas.JobOut, responses=ERRORS)
async def get_entity_resolution(job_id: str, session: SessionDep, account: CurrentAccount) -> schemas.JobOut:
    """An entity-resolution job: `record` is the matched company once `completed`."""
    return schemas.job_out(await service.get_job(session, account.id, ENTITY_RESOLUTION, job_id))


@router.post(
    "/firmographics", status_code=status.HTTP_202_ACCEPTED, response_model=schemas.JobOut, responses=ERRORS
)
async def create_firmographics(
    body: schemas.FirmographicsIn, session: SessionDep, account: CurrentAccount, http: Outbound
) -> schemas.JobOut:
    """Start a firmographic enrichment of a kernel_id; answers the `pending` job at once."""
    job = await service.create_firmographics_job(
        session, account.id, body.kernel_id, webhook_url=body.webhook_url, http=http
    )
    return schemas.job_out(job)


@router.get("/firmographics/{job_id}", response_model=schemas.JobOut, responses=ERRORS)
async def get_firmographics(job_id: str, session: SessionDep, account: CurrentAccount) -> schemas.JobOut:
    """A firmographics job: `record` is the company's firmographics once `completed`."""
    return schemas.job_out(await service.get_job(session, account.id, FIRMOGRAPHICS, job_id))
