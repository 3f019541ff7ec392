"""Projects, columns and rows. Services flush and never commit: the request or job boundary does."""

from __future__ import annotations

import math
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.accounts.models import Account
from dossier.db.base import new_uuid, utcnow
from dossier.errors import Conflict, InvalidInput, NotFound
from dossier.projects.models import INPUT_STATUS, SUCCESS, Cell, Column, Project, Row
from dossier.projects.tool_engine import ToolSpec, tool_engine

ROW_ID_ALPHABET = string.ascii_letters + string.digits
ROW_ID_LENGTH = 20
MAX_NAME_CHARS = 200
MAX_PAGE_SIZE = 200
# Columns a project may have unless the DOSSIER_MAX_COLUMNS setting says otherwise.
DEFAULT_MAX_COLUMNS = 500
LOADING_STATUSES = frozenset({"pending", "running"})

_ROWS = Row.__table__
_CELLS = Cell.__table__
assert isinstance(_ROWS, Table) and isinstance(_CELLS, Table)
# Core statements on the tables, built once: executed with a list of parameter sets (executemany, or one
# multi-row INSERT with RETURNING), never compiled again.
_ROW_INSERT = insert(_ROWS)
_CELL_INSERT = insert(_CELLS)


# Random bytes below this map evenly onto the alphabet (4 x 62); the others are dropped, so no bias.
_ROW_ID_BYTE_LIMIT = 256 - 256 % len(ROW_ID_ALPHABET)


def new_row_id() -> str:
    """A 20-character `[A-Za-z0-9]` row id, as 000 shows them (about 119 bits of randomness)."""
    # One read of the system's randomness per id rather than one per character (a batch makes 1,000).
    chosen = [b for b in secrets.token_bytes(2 * ROW_ID_LENGTH) if b < _ROW_ID_BYTE_LIMIT]
    while len(chosen) < ROW_ID_LENGTH:
        chosen += [b for b in secrets.token_bytes(ROW_ID_LENGTH) if b < _ROW_ID_BYTE_LIMIT]
    return "".join(ROW_ID_ALPHABET[b % len(ROW_ID_ALPHABET)] for b in chosen[:ROW_ID_LENGTH])


@dataclass(frozen=True)
class ColumnSpec:
    """What a caller asks for when adding a column."""

    name: str
    required: bool = False
    tool: ToolSpec | None = None


@dataclass(frozen=True)
class ProjectStats:
    project: Project
    company_count: int
    updated_at: datetime


@dataclass(frozen=True)
class ProjectView:
    stats: ProjectStats
    columns: list[Column]
    first_company_data: dict[str, Any]


@dataclass(frozen=True)
class RowView:
    row: Row
    cells: list[tuple[Column, Cell | None]]


@dataclass(frozen=True)
class RowsPageView:
    rows: list[RowView]
    page: int
    page_size: int
    total: int


@dataclass
class RowOutcome:
    """One company of a batch: the row id it got, or why it was refused."""

    row_id: str | None = None
    error: InvalidInput | None = None
    values: dict[str, Any] = field(default_factory=dict)


# --- projects -------------------------------------------------------------------------------------------


def _text_problem(text: str) -> str | None:
    """Why a string cannot be stored on every supported database, or None when it can."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    return None


def _clean_name(raw: str, what: str) -> str:
    name = raw.strip()
    if not name:
        raise InvalidInput(f"{what} must not be empty")
    if (problem := _text_problem(name)) is not None:
        raise InvalidInput(f"{what} {problem}")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"{what} must be at most {MAX_NAME_CHARS} characters")
    return name


def _check_column_count(count: int, max_columns: int) -> None:
    if count > max_columns:
        raise InvalidInput(
            f"a project has at most {max_columns} columns (DOSSIER_MAX_COLUMNS), not {count}",
            detail={"max_columns": max_columns},
        )


async def create_project(
    session: AsyncSession,
    account: Account,
    name: str,
    columns: Sequence[ColumnSpec],
    *,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> Project:
    """Create a project with its columns, in the order given. Tool columns may read any column of the
    request, including other tool columns, as long as no cycle forms. Linear in the number of columns,
    which ``max_columns`` bounds."""
    _check_column_count(len(columns), max_columns)
    project = Project(account_id=account.id, name=_clean_name(name, "project name"), creator_id=account.id)
    new_columns: list[Column] = []
    seen: set[str] = set()
    for position, spec in enumerate(columns):
        col_name = _clean_name(spec.name, "column name")
        if col_name in seen:
            raise InvalidInput(f"column {col_name!r} is given twice")
        seen.add(col_name)
        new_columns.append(Column(id=new_uuid(), name=col_name, required=spec.required, position=position))
    ids_by_name = {column.name: column.id for column in new_columns}
    for column, spec in zip(new_columns, columns, strict=True):
        _apply_tool(column, spec, ids_by_name)
    check_acyclic(new_columns)
    session.add(project)
    await session.flush()
    for column in new_columns:
        column.project_id = project.id
    session.add_all(new_columns)
    await session.flush()
    return project


def check_acyclic(columns: Sequence[Column]) -> None:
    """Refuse a set of columns whose tool inputs form a cycle (a column reading itself, directly or not).

    An iterative depth-first search: linear in columns and inputs, and no recursion limit on long chains.
    """
    reads = {column.id: sorted(set((column.tool_inputs or {}).values())) for column in columns}
    names = {column.id: column.name for column in columns}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for column in columns:
        if column.id in state:
            continue
        path: list[str] = [column.id]
        state[column.id] = 1
        pending: list[list[str]] = [list(reads.get(column.id, ()))]
        while path:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            upstream = pending[-1].pop()
            if state.get(upstream) == 2:
                continue
            if state.get(upstream) == 1:
                cycle = [*path[path.index(upstream) :], upstream]
                raise InvalidInput(
                    "tool columns form a cycle: " + " -> ".join(names.get(c, c) for c in cycle),
                    detail={"cycle": [names.get(c, c) for c in cycle]},
                )
            state[upstream] = 1
            path.append(upstream)
            pending.append(list(reads.get(upstream, ())))


def _apply_tool(column: Column, spec: ColumnSpec, ids_by_name: dict[str, str]) -> None:
    if spec.tool is None:
        return
    if spec.required:
        raise InvalidInput(f"column {column.name!r}: a tool column cannot be required (a tool fills it)")
    inputs, config = tool_engine().resolve_tool_spec(spec.tool, ids_by_name)
    column.tool_type = spec.tool.type
    column.tool_inputs = inputs
    column.tool_config = config


async def get_project(session: AsyncSession, account: Account, project_id: str) -> Project:
    """The account's project, or NotFound (also for another account's project)."""
    project: Project | None = await session.scalar(
        select(Project).where(Project.id == project_id, Project.account_id == account.id)
    )
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return project


def _stats_query() -> Any:
    return (
        select(Project, func.count(Row.pk), func.max(Row.updated_at))
        .outerjoin(Row, Row.project_id == Project.id)
        .group_by(Project.id)
    )


def _stats(project: Project, count: int | None, last_row: datetime | None) -> ProjectStats:
    updated = max(project.updated_at, last_row) if last_row else project.updated_at
    return ProjectStats(project=project, company_count=int(count or 0), updated_at=updated)


async def list_projects(session: AsyncSession, account: Account) -> list[ProjectStats]:
    """The account's projects, oldest first, with their row counts."""
    result = await session.execute(
        _stats_query().where(Project.account_id == account.id).order_by(Project.created_at, Project.id)
    )
    return [_stats(project, count, last) for project, count, last in result.all()]


async def project_stats(session: AsyncSession, project: Project) -> ProjectStats:
    result = await session.execute(_stats_query().where(Project.id == project.id))
    _, count, last = result.one()
    return _stats(project, count, last)


async def list_columns(session: AsyncSession, project: Project) -> list[Column]:
    result = await session.scalars(
        select(Column).where(Column.project_id == project.id).order_by(Column.position)
    )
    return list(result)


async def describe_project(session: AsyncSession, account: Account, project_id: str) -> ProjectView:
    """Columns and the first row's values, as 000's project details show them."""
    project = await get_project(session, account, project_id)
    columns = await list_columns(session, project)
    first = await session.scalar(select(Row).where(Row.project_id == project.id).order_by(Row.pk).limit(1))
    first_data: dict[str, Any] = {}
    if first is not None:
        view = (await _row_views(session, [first], columns))[0]
        first_data = {column.name: cell.value if cell else None for column, cell in view.cells}
    return ProjectView(
        stats=await project_stats(session, project), columns=columns, first_company_data=first_data
    )


async def delete_project(session: AsyncSession, account: Account, project_id: str) -> None:
    project = await get_project(session, account, project_id)
    await session.delete(project)
    await session.flush()


# --- columns --------------------------------------------------------------------------------------------


async def add_column(
    session: AsyncSession,
    account: Account,
    project_id: str,
    spec: ColumnSpec,
    *,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> Column:
    """Add a column at the end. A required input column cannot be added once rows exist; a tool column
    is computed for every existing row in the background. A project holds at most ``max_columns``."""
    project = await get_project(session, account, project_id)
    columns = await list_columns(session, project)
    _check_column_count(len(columns) + 1, max_columns)
    name = _clean_name(spec.name, "column name")
    if any(column.name == name for column in columns):
        raise Conflict(f"project already has a column named {name!r}")
    last_row = await session.scalar(select(func.max(Row.pk)).where(Row.project_id == project.id))
    if spec.required and spec.tool is None and last_row is not None:
        raise Conflict(f"cannot add required column {name!r}: existing rows have no value for it")
    column = Column(
        id=new_uuid(),
        project_id=project.id,
        name=name,
        required=spec.required,
        position=max((c.position for c in columns), default=-1) + 1,
    )
    _apply_tool(column, spec, {c.name: c.id for c in columns})
    check_acyclic([*columns, column])
    session.add(column)
    await session.flush()
    if column.is_tool and last_row is not None:
        # Rows added from now on are scheduled when they are inserted; the backfill covers the rest.
        tool_engine().schedule_backfill(session, column, until_pk=last_row)
    return column


async def rerun_column(session: AsyncSession, account: Account, project_id: str, col_id: str) -> Column:
    """Compute a tool column again for every row (in the background)."""
    project = await get_project(session, account, project_id)
    column = _find_column(await list_columns(session, project), col_id, project_id)
    if not column.is_tool:
        raise InvalidInput(f"column {column.name!r} is an input column; only tool columns run")
    tool_engine().schedule_backfill(session, column)
    return column


async def rerun_cell(
    session: AsyncSession, account: Account, project_id: str, row_id: str, col_id: str, *, chunk_rows: int
) -> RowView:
    """Compute one tool cell again (and, after it, the cells that read it)."""
    project = await get_project(session, account, project_id)
    columns = await list_columns(session, project)
    column = _find_column(columns, col_id, project_id)
    if not column.is_tool:
        raise InvalidInput(f"column {column.name!r} is an input column; only tool cells run")
    row = await _get_row(session, project, row_id)
    await tool_engine().schedule_cells(
        session, column, [row.pk], {c.id: c for c in columns}, chunk_rows=chunk_rows
    )
    return (await _row_views(session, [row], columns))[0]


def _find_column(columns: Sequence[Column], col_id: str, project_id: str) -> Column:
    column = next((c for c in columns if c.id == col_id), None)
    if column is None:
        raise NotFound(f"column {col_id} not found in project {project_id}")
    return column


async def delete_column(session: AsyncSession, account: Account, project_id: str, col_id: str) -> None:
    """Delete a column and its cells; refused while a tool column reads it."""
    project = await get_project(session, account, project_id)
    columns = await list_columns(session, project)
    target = _find_column(columns, col_id, project_id)
    readers = [c.name for c in columns if c.tool_inputs and col_id in c.tool_inputs.values()]
    if readers:
        raise Conflict(f"column {target.name!r} is read by tool column(s) {', '.join(readers)}")
    await session.execute(delete(Cell).where(Cell.column_id == col_id))
    await session.delete(target)
    await session.flush()


# --- rows -----------------------------------------------------------------------------------------------


def _check_value(name: str, value: Any, max_chars: int) -> str | None:
    """Why a value cannot be stored in an input cell, or None when it can."""
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{name}: numbers must be finite"
    if isinstance(value, str):
        if (problem := _text_problem(value)) is not None:
            return f"{name}: text {problem}"
        return None if len(value) <= max_chars else f"{name}: text longer than {max_chars} characters"
    return f"{name}: must be text, a number, a boolean or null, not {type(value).__name__}"


def validate_company(columns: Sequence[Column], company: Any, max_chars: int) -> dict[str, Any]:
    """Map a `company` object onto input column ids, or raise InvalidInput saying everything wrong with it."""
    if not isinstance(company, dict):
        raise InvalidInput("company must be a JSON object of column name -> value")
    by_name = {column.name: column for column in columns}
    # Error messages quote keys with ascii() where they are not storable text, so the answer can be encoded.
    bad_keys = [ascii(k) for k in company if _text_problem(k) is not None]
    unknown = sorted(k for k in company if k not in by_name and _text_problem(k) is None)
    tool_written = sorted(k for k in company if k in by_name and by_name[k].is_tool)
    invalid = [
        problem
        for key, value in company.items()
        if (problem := _check_value(key if _text_problem(key) is None else ascii(key), value, max_chars))
        is not None
    ]
    missing = [
        column.name
        for column in columns
        if column.required and not column.is_tool and _is_blank(company.get(column.name))
    ]
    problems: list[str] = []
    detail: dict[str, Any] = {}
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
        detail["missing_columns"] = missing
    if bad_keys:
        problems.append(f"column names that are not valid text: {', '.join(bad_keys)}")
        detail["invalid_column_names"] = bad_keys
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown)}")
        detail["unknown_columns"] = unknown
    if tool_written:
        problems.append(f"column(s) filled by a tool cannot be written: {', '.join(tool_written)}")
        detail["tool_columns"] = tool_written
    if invalid:
        problems.append("; ".join(invalid))
        detail["invalid_values"] = invalid
    if problems:
        raise InvalidInput("; ".join(problems), detail=detail)
    return {by_name[key].id: value for key, value in company.items()}


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True)
class NewRow:
    """A row just inserted: its key (insertion order) and its public id."""

    pk: int
    id: str


async def _insert_rows(
    session: AsyncSession,
    columns: Sequence[Column],
    project: Project,
    valued: Sequence[dict[str, Any]],
    *,
    chunk_rows: int,
) -> list[NewRow]:
    """Insert rows with their input cells, and schedule their tool cells in the same transaction.

    Set-based: one INSERT of the rows (their keys returned in order) and one of their cells, with Core
    statements (no ORM object per row; a batch is 1,000 rows)."""
    if not valued:
        return []
    now = utcnow()
    ids = [new_row_id() for _ in valued]
    # RETURNING in any order, matched back by id: asking for the parameters' order makes SQLAlchemy send
    # SQLite one INSERT per row (it has no sentinel to sort by), a fifth of a millisecond each.
    result = await session.execute(
        _ROW_INSERT.returning(_ROWS.c.id, _ROWS.c.pk),
        [{"id": row_id, "project_id": project.id, "created_at": now, "updated_at": now} for row_id in ids],
    )
    pk_by_id: dict[str, int] = {row_id: pk for row_id, pk in result.all()}
    rows = [NewRow(pk_by_id[row_id], row_id) for row_id in ids]
    cell_rows = [
        {"row_pk": row.pk, "column_id": column_id, "value": value, "status": INPUT_STATUS}
        for row, values in zip(rows, valued, strict=True)
        for column_id, value in values.items()
    ]
    if cell_rows:
        await session.execute(_CELL_INSERT, cell_rows)
    if rows:
        await tool_engine().schedule_new_rows(
            session, columns, [row.pk for row in rows], chunk_rows=chunk_rows
        )
    return rows


async def insert_rows_with_outputs(
    session: AsyncSession,
    project: Project,
    columns: Sequence[Column],
    valued: Sequence[dict[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
    *,
    chunk_rows: int,
) -> list[int]:
    """Insert rows whose input values (``valued``, checked by ``validate_company``) and some tool outputs
    (``outputs``: tool column id -> value, known already) are given; returns their pks, in order. The given
    tool cells are written final (``success``); every other tool cell is scheduled exactly as for a posted
    row, so the cells that read a given output are queued at once. Statements go in bulk (lists of
    thousands of companies come this way)."""
    if not valued:
        return []
    now = utcnow()
    ids = [new_row_id() for _ in valued]
    pk_by_id: dict[str, int] = {}
    for start in range(0, len(ids), 1000):
        result = await session.execute(
            insert(Row).returning(Row.id, Row.pk),
            [
                {"id": row_id, "project_id": project.id, "created_at": now, "updated_at": now}
                for row_id in ids[start : start + 1000]
            ],
        )
        pk_by_id.update({row_id: pk for row_id, pk in result.all()})
    pks = [pk_by_id[row_id] for row_id in ids]
    cell_rows = [
        {"row_pk": pk, "column_id": column_id, "value": value, "status": INPUT_STATUS, "updated_at": now}
        for pk, values in zip(pks, valued, strict=True)
        for column_id, value in values.items()
    ] + [
        {"row_pk": pk, "column_id": column_id, "value": value, "status": SUCCESS, "updated_at": now}
        for pk, given in zip(pks, outputs, strict=True)
        for column_id, value in given.items()
    ]
    for start in range(0, len(cell_rows), 1000):
        await session.execute(insert(Cell), cell_rows[start : start + 1000])
    given_ids = {column_id for given in outputs for column_id in given}
    by_id = {column.id: column for column in columns}
    engine = tool_engine()
    for column in columns:
        if column.is_tool and column.id not in given_ids:
            await engine.schedule_cells(session, column, pks, by_id, chunk_rows=chunk_rows)
    return pks


async def add_row(
    session: AsyncSession, account: Account, project_id: str, company: Any, *, max_chars: int, chunk_rows: int
) -> NewRow:
    """Validate one company and store it as a new row."""
    project = await get_project(session, account, project_id)
    columns = await list_columns(session, project)
    values = validate_company(columns, company, max_chars)
    return (await _insert_rows(session, columns, project, [values], chunk_rows=chunk_rows))[0]


async def add_rows(
    session: AsyncSession,
    account: Account,
    project_id: str,
    companies: Sequence[Any],
    *,
    max_rows: int,
    max_chars: int,
    chunk_rows: int,
) -> list[RowOutcome]:
    """Store every valid company as a row; report each invalid one. A row is written whole or not at all."""
    if len(companies) > max_rows:
        raise InvalidInput(f"a batch takes at most {max_rows} companies, got {len(companies)}")
    if not companies:
        raise InvalidInput("companies must not be empty")
    project = await get_project(session, account, project_id)
    columns = await list_columns(session, project)
    outcomes: list[RowOutcome] = []
    for company in companies:
        try:
            outcomes.append(RowOutcome(values=validate_company(columns, company, max_chars)))
        except InvalidInput as exc:
            outcomes.append(RowOutcome(error=exc))
    valid = [outcome for outcome in outcomes if outcome.error is None]
    rows = await _insert_rows(
        session, columns, project, [outcome.values for outcome in valid], chunk_rows=chunk_rows
    )
    for outcome, row in zip(valid, rows, strict=True):
        outcome.row_id = row.id
    return outcomes


async def _row_views(session: AsyncSession, rows: Sequence[Row], columns: Sequence[Column]) -> list[RowView]:
    if not rows:
        return []
    cells = await session.scalars(select(Cell).where(Cell.row_pk.in_([row.pk for row in rows])))
    by_key = {(cell.row_pk, cell.column_id): cell for cell in cells}
    return [
        RowView(row=row, cells=[(column, by_key.get((row.pk, column.id))) for column in columns])
        for row in rows
    ]


async def list_rows(
    session: AsyncSession, account: Account, project_id: str, page: int, page_size: int
) -> RowsPageView:
    """One page of rows in insertion order."""
    if page < 1:
        raise InvalidInput("page must be 1 or more")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    project = await get_project(session, account, project_id)
    columns = await list_columns(session, project)
    total = int(await session.scalar(select(func.count(Row.pk)).where(Row.project_id == project.id)) or 0)
    offset = (page - 1) * page_size
    # Past the end answers an empty page without asking the database, whose integers a huge page overflows.
    rows = (
        list(
            await session.scalars(
                select(Row)
                .where(Row.project_id == project.id)
                .order_by(Row.pk)
                .offset(offset)
                .limit(page_size)
            )
        )
        if offset < total
        else []
    )
    return RowsPageView(
        rows=await _row_views(session, rows, columns), page=page, page_size=page_size, total=total
    )


async def _get_row(session: AsyncSession, project: Project, row_id: str) -> Row:
    row: Row | None = await session.scalar(select(Row).where(Row.id == row_id, Row.project_id == project.id))
    if row is None:
        raise NotFound(f"row {row_id} not found in project {project.id}")
    return row


async def get_row(session: AsyncSession, account: Account, project_id: str, row_id: str) -> RowView:
    """One row with every column's cell."""
    project = await get_project(session, account, project_id)
    row = await _get_row(session, project, row_id)
    return (await _row_views(session, [row], await list_columns(session, project)))[0]


async def delete_row(session: AsyncSession, account: Account, project_id: str, row_id: str) -> None:
    project = await get_project(session, account, project_id)
    row = await _get_row(session, project, row_id)
    await session.delete(row)
    await session.flush()


# --- administration (the CLI acts for the project's own account) -------------------------------------------


async def project_owner(session: AsyncSession, project_id: str) -> Account:
    """The account that owns a project; NotFound when there is no such project."""
    account: Account | None = await session.scalar(
        select(Account).join(Project, Project.account_id == Account.id).where(Project.id == project_id)
    )
    if account is None:
        raise NotFound(f"project {project_id} not found")
    return account


async def rows_after(
    session: AsyncSession, project: Project, columns: Sequence[Column], after_pk: int, limit: int
) -> list[RowView]:
    """Rows in insertion order after ``after_pk``: keyset pagination for streaming exports."""
    rows = list(
        await session.scalars(
            select(Row).where(Row.project_id == project.id, Row.pk > after_pk).order_by(Row.pk).limit(limit)
        )
    )
    return await _row_views(session, rows, columns)


@dataclass(frozen=True)
class EnrichmentProgress:
    """Tool cells of a project: how many there should be, and how many are final."""

    total: int
    done: int

    @property
    def finished(self) -> bool:
        return self.done >= self.total


async def enrichment_progress(session: AsyncSession, project: Project) -> EnrichmentProgress:
    """Count final tool cells against rows x tool columns (a missing cell counts as not done)."""
    columns = await list_columns(session, project)
    tool_ids = [column.id for column in columns if column.is_tool]
    if not tool_ids:
        return EnrichmentProgress(0, 0)
    rows = int(await session.scalar(select(func.count(Row.pk)).where(Row.project_id == project.id)) or 0)
    done = int(
        await session.scalar(
            select(func.count())
            .select_from(Cell)
            .join(Row, Row.pk == Cell.row_pk)
            .where(
                Row.project_id == project.id,
                Cell.column_id.in_(tool_ids),
                Cell.status.in_(["success", "error", "skipped"]),
            )
        )
        or 0
    )
    return EnrichmentProgress(total=rows * len(tool_ids), done=done)
