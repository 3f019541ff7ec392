"""Wire shapes of registry search and list building (snake_case, like the rest of /api/enterprise)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dossier.lists.models import DONE, ListBuild
from dossier.lists.service import FacetValue, SearchPage, company_record


class Revenue(BaseModel):
    amount: float | int | None
    currency: str | None
    year: int | None


class Headquarters(BaseModel):
    city: str | None
    country: str | None


class Identifiers(BaseModel):
    isin: list[str]


class CompanyOut(BaseModel):
    """A registry company: its kernel_id and firmographics (the firmographics tool's record), its country,
    aliases and parent."""

    kernel_id: str
    name: str
    domain: str | None
    industry: str | None
    sector: str | None
    employee_count: int | None
    revenue: Revenue
    headquarters: Headquarters
    country_code: str | None
    country: str | None
    founded_year: int | None
    company_type: str | None
    identifiers: Identifiers
    aliases: list[str]
    parent_kernel_id: str | None


class CompaniesPage(BaseModel):
    companies: list[CompanyOut]
    total: int = Field(description="How many registry companies fit the filters (every page).")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")
    sort: str


class FacetValueOut(BaseModel):
    value: str
    count: int


class FacetsOut(BaseModel):
    total: int = Field(description="How many registry companies fit the filters.")
    facets: dict[str, list[FacetValueOut]] = Field(
        description="Per field, its values among the companies that fit, most frequent first."
    )


class ListCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "filters": {
                        "country": ["DE"],
                        "industry": ["Software"],
                        "employees_min": 500,
                        "employees_max": 5000,
                    },
                },
                {
                    "kernel_ids": ["157963266835069525"],
                    "columns": {"company_name": "name", "website": "website"},
                },
            ]
        },
    )

    filters: dict[str, Any] = Field(
        default_factory=dict, description="The filters of GET /registry/companies, as a JSON object."
    )
    kernel_ids: list[Any] | None = Field(default=None, description="Exactly these registry companies.")
    columns: dict[str, str] | None = Field(
        default=None,
        description="Input column name -> registry field (name, website, domain, country, country_code, "
        "city, kernel_id, industry, sector, employee_count, founded_year, company_type). "
        "Default: by column name.",
    )


class ListOut(BaseModel):
    list_id: str
    project_id: str
    status: Literal["queued", "running", "done", "failed"]
    matched: int = Field(description="Companies that fit when the list started (when done: processed).")
    processed: int
    added: int = Field(description="Rows added.")
    skipped: int = Field(description="Companies already in the project.")
    rejected: int = Field(description="Companies a required column has no value for.")
    progress: float = Field(description="processed / matched, 0 to 1.")
    filters: dict[str, Any]
    columns: dict[str, str]
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def companies_page(page: SearchPage) -> CompaniesPage:
    return CompaniesPage(
        companies=[CompanyOut.model_validate(company_record(e)) for e in page.companies],
        total=page.total,
        next_cursor=page.next_cursor,
        sort=page.sort,
    )


def facets_out(total: int, values: dict[str, list[FacetValue]]) -> FacetsOut:
    return FacetsOut(
        total=total,
        facets={
            name: [FacetValueOut(value=v.value, count=v.count) for v in items]
            for name, items in values.items()
        },
    )


def list_out(build: ListBuild) -> ListOut:
    if build.status == DONE:
        progress = 1.0
    else:
        progress = min(1.0, build.processed / build.matched) if build.matched else 0.0
    return ListOut(
        list_id=build.id,
        project_id=build.project_id,
        status=build.status,
        matched=build.matched,
        processed=build.processed,
        added=build.added,
        skipped=build.skipped,
        rejected=build.rejected,
        progress=round(progress, 4),
        filters=dict(build.spec.get("filters") or {}),
        columns=dict(build.spec.get("columns") or {}),
        error=build.error,
        created_at=build.created_at,
        updated_at=build.updated_at,
        finished_at=build.finished_at,
    )
