"""Registry search and list building on the enterprise surface. HTTP only."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response, status

from dossier.accounts.auth import CurrentAccount
from dossier.api.deps import SettingsDep
from dossier.api.surfaces import ENTERPRISE
from dossier.db.session import SessionDep
from dossier.enrichment.dependencies import DefaultRegistry
from dossier.errors import InvalidInput
from dossier.lists import schemas, service, tasks

router = ENTERPRISE.router(tags=["List building"])
ERRORS = ENTERPRISE.responses({422: "A bad filter; `error_detail.filter` names it. Nothing is added."})

Many = Annotated[list[str] | None, Query()]
One = Annotated[str | None, Query()]
_PAGING = {"sort", "cursor", "page_size", "fields", "limit"}


def _filters_from_query(request: Request, *, allowed_extra: set[str]) -> service.Filters:
    return service.filters_from_pairs(request.query_params.multi_items(), ignore=allowed_extra)


def _page_size(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(
            f"page_size must be a whole number, not {raw!r}", detail={"filter": "page_size"}
        ) from None


@router.get("/registry/companies", response_model=schemas.CompaniesPage, responses=ERRORS)
async def search_companies(
    request: Request,
    _registry: DefaultRegistry,
    session: SessionDep,
    account: CurrentAccount,
    industry: Many = None,
    sector: Many = None,
    country: Many = None,
    city: Many = None,
    company_type: Many = None,
    employees_min: One = None,
    employees_max: One = None,
    revenue_min: One = None,
    revenue_max: One = None,
    revenue_currency: One = None,
    founded_min: One = None,
    founded_max: One = None,
    has_website: One = None,
    name: One = None,
    parent_kernel_id: One = None,
    is_subsidiary: One = None,
    sort: Annotated[
        str | None, Query(description="name, employees, revenue, founded, kernel_id; - descends.")
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    page_size: Annotated[str | None, Query(description="1 to 200 (default 50).")] = None,
) -> schemas.CompaniesPage:
    """Registry companies that fit every given filter (several values of one filter: any of them), with
    their total, a page at a time. Industry, sector and company type take the registry's own values
    (GET /registry/facets lists them); country an ISO 3166 code or name; city is case-insensitive;
    `name` matches names and aliases containing it."""
    filters = _filters_from_query(request, allowed_extra=_PAGING - {"fields", "limit"})
    filters = await service.check_filters(session, filters)
    page = await service.search(
        session, filters, sort=service.parse_sort(sort), cursor=cursor, page_size=_page_size(page_size, 50)
    )
    return schemas.companies_page(page)


@router.get("/registry/facets", response_model=schemas.FacetsOut, responses=ERRORS)
async def registry_facets(
    request: Request,
    _registry: DefaultRegistry,
    session: SessionDep,
    account: CurrentAccount,
    fields: Annotated[
        list[str] | None,
        Query(description="industry, sector, country, company_type, city (default: all but city)."),
    ] = None,
    limit: Annotated[str | None, Query(description="Values per field, 1 to 500 (default 100).")] = None,
) -> schemas.FacetsOut:
    """The values of industry, sector, country, company type (and city) among the companies that fit the
    filters (the same filters as /registry/companies), with their counts, most frequent first."""
    filters = await service.check_filters(
        session, _filters_from_query(request, allowed_extra={"fields", "limit"})
    )
    names = service.parse_facet_fields(fields or [])
    total, values = await service.facets(session, filters, names, limit=_page_size(limit, 100))
    return schemas.facets_out(total, values)


@router.post(
    "/projects/{project_id}/lists",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.ListOut,
    responses={
        **ERRORS,
        202: {"description": "A large list: queued for the background; follow it at /lists/{list_id}."},
    },
)
async def build_list(
    project_id: str,
    body: schemas.ListCreate,
    response: Response,
    _registry: DefaultRegistry,
    session: SessionDep,
    account: CurrentAccount,
    settings: SettingsDep,
) -> schemas.ListOut:
    """Add the registry companies that fit `filters` (or exactly `kernel_ids`) to the project as rows, but
    those already in it. Up to DOSSIER_LIST_FOREGROUND_MAX companies are added before answering (201);
    more are added in the background (202, `status` queued, progress at GET .../lists/{list_id}). The same
    request while an identical one is still running answers that one."""
    filters = service.parse_filters(body.filters)
    if body.kernel_ids is not None:
        filters = service.with_kernel_ids(filters, service.parse_kernel_ids(body.kernel_ids))
    started = await service.start_build(
        session,
        account,
        project_id,
        filters,
        body.columns,
        foreground_max=settings.list_foreground_max,
        max_companies=settings.list_max_companies,
        batch_rows=settings.list_batch_rows,
        max_chars=settings.max_value_chars,
        chunk_rows=settings.tool_chunk_rows,
    )
    build = started.build
    if build.status != "done":
        if started.created:
            tasks.queue_build(session, build.id)
        response.status_code = status.HTTP_202_ACCEPTED
    return schemas.list_out(build)


@router.get("/projects/{project_id}/lists", response_model=list[schemas.ListOut], responses=ERRORS)
async def list_lists(project_id: str, session: SessionDep, account: CurrentAccount) -> list[schemas.ListOut]:
    """The lists built into the project, oldest first, with their progress."""
    return [schemas.list_out(build) for build in await service.list_builds(session, account, project_id)]


@router.get("/projects/{project_id}/lists/{list_id}", response_model=schemas.ListOut, responses=ERRORS)
async def get_list(
    project_id: str, list_id: str, session: SessionDep, account: CurrentAccount
) -> schemas.ListOut:
    """One list and its progress: `processed` of `matched`, `added`, `skipped`, `status`."""
    return schemas.list_out(await service.get_build(session, account, project_id, list_id))
