"""Wire shapes of the Project Workflow API, spelled exactly as document 000 spells them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictBool

from dossier.net import OutboundPolicy
from dossier.projects.models import Cell, Column
from dossier.projects.service import (
    LOADING_STATUSES,
    ColumnSpec,
    ProjectStats,
    ProjectView,
    RowOutcome,
    RowsPageView,
    RowView,
)
from dossier.projects.tool_engine import ToolSpec

# 000 writes timestamps as "2024-01-15T10:30:00Z".
IsoZ = Annotated[datetime, PlainSerializer(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"), return_type=str)]

Scalar = str | int | float | bool | None
# The most companies a batch may hold (the DOSSIER_MAX_BATCH_ROWS setting may lower it).
MAX_BATCH = 1000


class ToolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="Tool name: domain, entity_resolution, firmographics, website, http.")
    inputs: dict[str, str] = Field(description="Tool input name -> the column of the row it reads.")
    config: dict[str, Any] = Field(default_factory=dict, description="Tool settings; see docs/tools.md.")


class ColumnCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "website"},
                {"name": "industry", "tool": {"type": "firmographics", "inputs": {"kernel_id": "entity"}}},
            ]
        },
    )

    name: str = Field(description="Column name; the key used in `company` objects.")
    required: StrictBool = Field(default=False, description="Rows must give a non-empty value for it.")
    tool: ToolIn | None = Field(default=None, description="Makes this a tool column that fills itself in.")


class ToolOut(BaseModel):
    type: str
    inputs: dict[str, str]
    config: dict[str, Any]


class ColumnOut(BaseModel):
    col_id: str
    name: str
    required: bool
    type: str = Field(description="`input` or `tool`.")
    tool: ToolOut | None = None


class ProjectCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Tech Companies Q4",
                    "columns": [{"name": "company_name", "required": True}, {"name": "website"}],
                }
            ]
        },
    )

    name: str
    columns: list[ColumnCreate] = Field(
        default_factory=list,
        max_length=10_000,
        description="The columns, in order: at most DOSSIER_MAX_COLUMNS (default 500).",
    )


class ProjectSummary(BaseModel):
    id: str
    name: str
    creator_id: str
    company_count: int
    createdAt: IsoZ
    updatedAt: IsoZ


class ProjectDetail(BaseModel):
    id: str
    name: str
    columns: list[ColumnOut]
    first_company_data: dict[str, Any]
    company_count: int
    createdAt: IsoZ
    updatedAt: IsoZ


class RowCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"company": {"company_name": "Acme Corporation", "website": "https://acme.com"}}]
        }
    )

    company: dict[str, Any] = Field(description="Column name -> text, number, boolean or null.")


class RowCreated(BaseModel):
    row_id: str | None
    message: str
    error_detail: Any = None


class RowsBatchCreate(BaseModel):
    # list[Any], not list[dict]: a company that is not an object is that company's error, not the batch's.
    companies: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="1 to 1,000 companies, each like `company` above (DOSSIER_MAX_BATCH_ROWS may lower it).",
    )


class RowsBatchResult(BaseModel):
    results: list[RowCreated] = Field(description="One result per company, in request order.")
    created: int
    failed: int


#: A cell's state: `default` for an input cell, the others for a tool cell.
CellStatus = Literal["default", "pending", "running", "success", "error", "skipped"]


class CellBrief(BaseModel):
    value: Any
    status: CellStatus


class RowListItem(BaseModel):
    id: str
    company: dict[str, CellBrief]


class RowsPage(BaseModel):
    rows: list[RowListItem]
    page: int
    page_size: int
    total: int


class CellFull(BaseModel):
    name: str
    value: Any
    status: CellStatus
    is_loading: bool
    error: str | None = None


class RowDetail(BaseModel):
    id: str
    project_id: str
    company: dict[str, CellFull]


class Deleted(BaseModel):
    message: str = "Deleted"


# --- translation from service views to the wire ---------------------------------------------------------


def column_out(column: Column, names_by_id: dict[str, str]) -> ColumnOut:
    tool = None
    if column.tool_type is not None:
        tool = ToolOut(
            type=column.tool_type,
            inputs={param: names_by_id.get(cid, cid) for param, cid in (column.tool_inputs or {}).items()},
            config=column.tool_config or {},
        )
    return ColumnOut(
        col_id=column.id,
        name=column.name,
        required=column.required,
        type="tool" if column.is_tool else "input",
        tool=tool,
    )


def columns_out(columns: list[Column]) -> list[ColumnOut]:
    names = {column.id: column.name for column in columns}
    return [column_out(column, names) for column in columns]


def column_spec(body: ColumnCreate, outbound: OutboundPolicy | None = None) -> ColumnSpec:
    """The service's column spec; ``outbound`` checks the URLs a tool config names when it is saved."""
    tool = None
    if body.tool is not None:
        tool = ToolSpec(
            type=body.tool.type, inputs=body.tool.inputs, config=body.tool.config, outbound=outbound
        )
    return ColumnSpec(name=body.name, required=body.required, tool=tool)


def project_summary(stats: ProjectStats) -> ProjectSummary:
    project = stats.project
    return ProjectSummary(
        id=project.id,
        name=project.name,
        creator_id=project.creator_id,
        company_count=stats.company_count,
        createdAt=project.created_at,
        updatedAt=stats.updated_at,
    )


def project_detail(view: ProjectView) -> ProjectDetail:
    project = view.stats.project
    return ProjectDetail(
        id=project.id,
        name=project.name,
        columns=columns_out(view.columns),
        first_company_data=view.first_company_data,
        company_count=view.stats.company_count,
        createdAt=project.created_at,
        updatedAt=view.stats.updated_at,
    )


def _status(column: Column, cell: Cell | None) -> str:
    if cell is not None:
        return cell.status
    return "pending" if column.is_tool else "default"


def row_list_item(view: RowView) -> RowListItem:
    return RowListItem(
        id=view.row.id,
        company={
            column.name: CellBrief(value=cell.value if cell else None, status=_status(column, cell))
            for column, cell in view.cells
        },
    )


def rows_page(view: RowsPageView) -> RowsPage:
    return RowsPage(
        rows=[row_list_item(row) for row in view.rows],
        page=view.page,
        page_size=view.page_size,
        total=view.total,
    )


def row_detail(view: RowView) -> RowDetail:
    company = {}
    for column, cell in view.cells:
        status = _status(column, cell)
        company[column.name] = CellFull(
            name=column.name,
            value=cell.value if cell else None,
            status=status,
            is_loading=status in LOADING_STATUSES,
            error=cell.error if cell else None,
        )
    return RowDetail(id=view.row.id, project_id=view.row.project_id, company=company)


def row_created(row_id: str) -> RowCreated:
    return RowCreated(row_id=row_id, message="Success", error_detail=None)


def batch_result(outcomes: list[RowOutcome]) -> RowsBatchResult:
    results = [
        row_created(outcome.row_id)
        if outcome.row_id is not None
        else RowCreated(
            row_id=None,
            message=outcome.error.message if outcome.error else "refused",
            error_detail=outcome.error.detail if outcome.error else None,
        )
        for outcome in outcomes
    ]
    created = sum(1 for outcome in outcomes if outcome.row_id is not None)
    return RowsBatchResult(results=results, created=created, failed=len(outcomes) - created)
