"""The Project Workflow API (000) and the project management it leaves to its web app. HTTP only."""

from __future__ import annotations

from fastapi import Query, status

from dossier.accounts.auth import CurrentAccount
from dossier.api.deps import Outbound, SettingsDep
from dossier.api.surfaces import ENTERPRISE
from dossier.db.session import SessionDep
from dossier.projects import schemas, service

router = ENTERPRISE.router(tags=["Project Workflow API"])
ERRORS = ENTERPRISE.responses({404: "Unknown project or row (or another account's)."})


@router.get("/projects", response_model=list[schemas.ProjectSummary], responses=ERRORS)
async def list_projects(session: SessionDep, account: CurrentAccount) -> list[schemas.ProjectSummary]:
    """All projects of the account, oldest first."""
    return [schemas.project_summary(stats) for stats in await service.list_projects(session, account)]


@router.post(
    "/projects", status_code=status.HTTP_201_CREATED, response_model=schemas.ProjectDetail, responses=ERRORS
)
async def create_project(
    body: schemas.ProjectCreate,
    session: SessionDep,
    account: CurrentAccount,
    settings: SettingsDep,
    http: Outbound,
) -> schemas.ProjectDetail:
    """Create a project with its columns (at most DOSSIER_MAX_COLUMNS, default 500)."""
    specs = [schemas.column_spec(c, http.policy) for c in body.columns]
    project = await service.create_project(
        session, account, body.name, specs, max_columns=settings.max_columns
    )
    return schemas.project_detail(await service.describe_project(session, account, project.id))


@router.get("/projects/{project_id}", response_model=schemas.ProjectDetail, responses=ERRORS)
async def get_project(project_id: str, session: SessionDep, account: CurrentAccount) -> schemas.ProjectDetail:
    """Columns schema and the first row's data."""
    return schemas.project_detail(await service.describe_project(session, account, project_id))


@router.delete("/projects/{project_id}", response_model=schemas.Deleted, responses=ERRORS)
async def delete_project(project_id: str, session: SessionDep, account: CurrentAccount) -> schemas.Deleted:
    """Delete a project with all its columns, rows and cells."""
    await service.delete_project(session, account, project_id)
    return schemas.Deleted()


@router.get("/projects/{project_id}/columns", response_model=list[schemas.ColumnOut], responses=ERRORS)
async def list_columns(
    project_id: str, session: SessionDep, account: CurrentAccount
) -> list[schemas.ColumnOut]:
    """The project's columns in order."""
    project = await service.get_project(session, account, project_id)
    return schemas.columns_out(await service.list_columns(session, project))


@router.post(
    "/projects/{project_id}/columns",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.ColumnOut,
    responses={**ERRORS, 409: {"description": "Name taken, or a required column on a project with rows."}},
)
async def add_column(
    project_id: str,
    body: schemas.ColumnCreate,
    session: SessionDep,
    account: CurrentAccount,
    settings: SettingsDep,
    http: Outbound,
) -> schemas.ColumnOut:
    """Add an input column, or a tool column (`tool`) that is then computed for every existing row."""
    await service.add_column(
        session, account, project_id, schemas.column_spec(body, http.policy), max_columns=settings.max_columns
    )
    project = await service.get_project(session, account, project_id)
    return schemas.columns_out(await service.list_columns(session, project))[-1]


@router.post(
    "/projects/{project_id}/columns/{col_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.ColumnOut,
    responses=ERRORS,
)
async def rerun_column(
    project_id: str, col_id: str, session: SessionDep, account: CurrentAccount
) -> schemas.ColumnOut:
    """Run a tool column again for every row (in the background; cells show `pending` until done)."""
    column = await service.rerun_column(session, account, project_id, col_id)
    project = await service.get_project(session, account, project_id)
    return next(
        c for c in schemas.columns_out(await service.list_columns(session, project)) if c.col_id == column.id
    )


@router.post(
    "/projects/{project_id}/rows/{row_id}/cells/{col_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RowDetail,
    responses=ERRORS,
)
async def rerun_cell(
    project_id: str,
    row_id: str,
    col_id: str,
    session: SessionDep,
    account: CurrentAccount,
    settings: SettingsDep,
) -> schemas.RowDetail:
    """Run one tool cell again; the cells that read it run again after it."""
    view = await service.rerun_cell(
        session, account, project_id, row_id, col_id, chunk_rows=settings.tool_chunk_rows
    )
    return schemas.row_detail(view)


@router.delete(
    "/projects/{project_id}/columns/{col_id}",
    response_model=schemas.Deleted,
    responses={**ERRORS, 409: {"description": "A tool column reads this column."}},
)
async def delete_column(
    project_id: str, col_id: str, session: SessionDep, account: CurrentAccount
) -> schemas.Deleted:
    """Delete a column and its cells."""
    await service.delete_column(session, account, project_id, col_id)
    return schemas.Deleted()


@router.post("/projects/{project_id}/rows", response_model=schemas.RowCreated, responses=ERRORS)
async def add_row(
    project_id: str,
    body: schemas.RowCreate,
    session: SessionDep,
    account: CurrentAccount,
    settings: SettingsDep,
) -> schemas.RowCreated:
    """Save one company as a new row; answers its `row_id`."""
    row = await service.add_row(
        session,
        account,
        project_id,
        body.company,
        max_chars=settings.max_value_chars,
        chunk_rows=settings.tool_chunk_rows,
    )
    return schemas.row_created(row.id)


@router.post("/projects/{project_id}/rows/batch", response_model=schemas.RowsBatchResult, responses=ERRORS)
async def add_rows(
    project_id: str,
    body: schemas.RowsBatchCreate,
    session: SessionDep,
    account: CurrentAccount,
    settings: SettingsDep,
) -> schemas.RowsBatchResult:
    """Save up to 1,000 companies. Each valid company becomes a row; each invalid one gets its error in
    `results` (same order as the request) and writes nothing. An over-long or empty batch writes nothing."""
    outcomes = await service.add_rows(
        session,
        account,
        project_id,
        body.companies,
        max_rows=settings.max_batch_rows,
        max_chars=settings.max_value_chars,
        chunk_rows=settings.tool_chunk_rows,
    )
    return schemas.batch_result(outcomes)


@router.get("/projects/{project_id}/rows", response_model=schemas.RowsPage, responses=ERRORS)
async def list_rows(
    project_id: str,
    session: SessionDep,
    account: CurrentAccount,
    page: int = Query(default=1, ge=1, description="1-based page number (past the end: an empty page)."),
    page_size: int = Query(
        default=50, ge=1, le=service.MAX_PAGE_SIZE, description="Rows per page, 1 to 200."
    ),
) -> schemas.RowsPage:
    """Rows in insertion order, a page at a time."""
    return schemas.rows_page(await service.list_rows(session, account, project_id, page, page_size))


@router.get("/projects/{project_id}/rows/{row_id}", response_model=schemas.RowDetail, responses=ERRORS)
async def get_row(
    project_id: str, row_id: str, session: SessionDep, account: CurrentAccount
) -> schemas.RowDetail:
    """One row with every cell; `is_loading` is true while a tool is still working on the cell."""
    return schemas.row_detail(await service.get_row(session, account, project_id, row_id))


@router.delete("/projects/{project_id}/rows/{row_id}", response_model=schemas.Deleted, responses=ERRORS)
async def delete_row(
    project_id: str, row_id: str, session: SessionDep, account: CurrentAccount
) -> schemas.Deleted:
    """Delete one row and its cells."""
    await service.delete_row(session, account, project_id, row_id)
    return schemas.Deleted()
