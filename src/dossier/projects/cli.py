"""`dossier import` and `dossier export`: bulk rows in and out of a project as CSV, streamed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from dossier.db.lifecycle import open_database
from dossier.errors import DossierError
from dossier.projects import service
from dossier.settings import Settings, get_settings

err = Console(stderr=True)
IMPORT_BATCH = 1000
EXPORT_BATCH = 1000


class _CountingReader(io.RawIOBase):
    """Counts bytes read from a binary file, so progress can follow a streamed CSV."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.consumed += len(data)
        return len(data)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", soft_wrap=True, markup=True, highlight=False)
    return typer.Exit(code=1)


def _progress(*, in_bytes: bool = False) -> Progress:
    """A progress bar; ``in_bytes`` counts bytes (shown as sizes), otherwise items (shown as M/N)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn() if in_bytes else MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


async def _import(
    settings: Settings, project_id: str, path: Path, size: int
) -> tuple[int, list[tuple[int, str]]]:
    rejected: list[tuple[int, str]] = []
    written = 0
    try:
        async with open_database(settings, migrate=settings.auto_migrate) as maker:
            async with maker() as session:
                account = await service.project_owner(session, project_id)
                project = await service.get_project(session, account, project_id)
                columns = await service.list_columns(session, project)
            with path.open("rb") as raw_file, _progress(in_bytes=True) as progress:
                counter = _CountingReader(raw_file)
                text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
                reader = csv.DictReader(text)
                if not reader.fieldnames:
                    raise DossierError(f"{path} has no header row")
                _check_header(path, list(reader.fieldnames), columns)
                task = progress.add_task("reading", total=size, note="")
                batch: list[tuple[int, dict[str, Any]]] = []

                async def flush() -> None:
                    nonlocal written
                    if not batch:
                        return
                    async with maker() as session, session.begin():
                        outcomes = await service.add_rows(
                            session,
                            account,
                            project_id,
                            [company for _, company in batch],
                            max_rows=len(batch),
                            max_chars=settings.max_value_chars,
                            chunk_rows=settings.tool_chunk_rows,
                        )
                    for (line, _), outcome in zip(batch, outcomes, strict=True):
                        if outcome.error is not None:
                            rejected.append((line, outcome.error.message))
                    written += sum(1 for outcome in outcomes if outcome.row_id is not None)
                    batch.clear()
                    progress.update(
                        task,
                        completed=counter.consumed,
                        note=f"{written} written, {len(rejected)} rejected",
                    )

                records = 0
                for record in reader:
                    records += 1
                    # Empty CSV fields mean "no value"; a short line leaves its missing fields as None.
                    company = {k: (v if v != "" else None) for k, v in record.items() if k is not None}
                    if None in record:
                        rejected.append((reader.line_num, "more fields than the header has"))
                        continue
                    batch.append((reader.line_num, company))
                    if len(batch) >= IMPORT_BATCH:
                        await flush()
                await flush()
                progress.update(task, completed=size)
                if records == 0:
                    raise DossierError(f"{path} has a header but no data rows: nothing to import")
    except UnicodeDecodeError as exc:
        where = _first_bad_line(path)
        raise DossierError(
            f"{path} line {where[0] if where else '?'} is not UTF-8 text ({exc.reason}"
            f"{f', byte {where[1]} of the line' if where else ''}); save the file as UTF-8. "
            f"{written} rows before it were written."
        ) from None
    except csv.Error as exc:
        raise DossierError(f"{path} is not valid CSV: {exc}") from None
    return written, rejected


def _check_header(path: Path, header: list[str], columns: list[Any]) -> None:
    """One clear error up front when the header does not fit the project's input columns."""
    names = list(header)
    inputs = {column.name for column in columns if not column.is_tool}
    tools = {column.name for column in columns if column.is_tool}
    problems = []
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        problems.append(f"named twice: {', '.join(duplicated)}")
    if unknown := [name for name in names if name not in inputs and name not in tools]:
        problems.append(f"not columns of the project: {', '.join(unknown)}")
    if filled := [name for name in names if name in tools]:
        problems.append(f"filled by a tool, cannot be imported: {', '.join(filled)}")
    required = [column.name for column in columns if column.required and not column.is_tool]
    if missing := [name for name in required if name not in names]:
        problems.append(f"required columns missing: {', '.join(missing)}")
    if problems:
        raise DossierError(
            f"{path}: the header does not match the project's columns ({'; '.join(problems)}). "
            f"Its input columns are: {', '.join(sorted(inputs)) or 'none'}"
        )


def _first_bad_line(path: Path) -> tuple[int, int] | None:
    """(line number, byte within it) of the first line that is not UTF-8, counting the header as line 1."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, exc.start + 1
    return None


def import_rows(
    project_id: Annotated[str, typer.Argument(help="Project id.")],
    file: Annotated[Path, typer.Argument(help="CSV file whose header names the project's input columns.")],
) -> None:
    """Add every row of a CSV file to a project (streamed; invalid lines are reported and skipped)."""
    if not file.is_file():
        raise _fail(f"{file} is not a file")
    settings = get_settings()
    try:
        written, rejected = asyncio.run(_import(settings, project_id, file, file.stat().st_size))
    except DossierError as exc:
        raise _fail(exc.message) from None
    for line, reason in rejected[:50]:
        err.print(f"line {line}: {reason}")
    if len(rejected) > 50:
        err.print(f"... and {len(rejected) - 50} more rejected lines")
    err.print(f"{written} rows written, {len(rejected)} rejected")
    if rejected:
        raise typer.Exit(code=2)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def _export(settings: Settings, project_id: str, out: IO[str], wait: bool, poll: float) -> int:
    count = 0
    async with open_database(settings) as maker:
        async with maker() as session:
            account = await service.project_owner(session, project_id)
            project = await service.get_project(session, account, project_id)
        if wait:
            with _progress() as progress:
                task = progress.add_task("cells", total=None, note="")
                while True:
                    async with maker() as session:
                        state = await service.enrichment_progress(session, project)
                    progress.update(task, total=state.total, completed=state.done, note="enriching")
                    if state.finished:
                        break
                    await asyncio.sleep(poll)
        async with maker() as session:
            columns = await service.list_columns(session, project)
            writer = csv.writer(out)
            writer.writerow(["row_id", *(column.name for column in columns)])
            after = 0
            while True:
                views = await service.rows_after(session, project, columns, after, EXPORT_BATCH)
                if not views:
                    break
                for view in views:
                    values = (_cell_text(cell.value if cell else None) for _, cell in view.cells)
                    writer.writerow([view.row.id, *values])
                count += len(views)
                after = views[-1].row.pk
    return count


def export_rows(
    project_id: Annotated[str, typer.Argument(help="Project id.")],
    file: Annotated[str, typer.Argument(help="CSV file to write ('-' for standard output).")],
    wait: Annotated[bool, typer.Option("--wait", help="First wait until every tool cell is final.")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between progress checks with --wait.")] = 0.5,
) -> None:
    """Write a project's rows as CSV: input values, and tool values (JSON for structured ones)."""
    settings = get_settings()
    try:
        if file == "-":
            count = asyncio.run(_export(settings, project_id, sys.stdout, wait, poll))
        else:
            count = _export_to_file(settings, project_id, Path(file), wait, poll)
    except DossierError as exc:
        raise _fail(exc.message) from None
    err.print(f"{count} rows exported")


def _export_to_file(settings: Settings, project_id: str, target: Path, wait: bool, poll: float) -> int:
    """Write aside and rename: an export that fails or is interrupted leaves neither a truncated file nor
    its ``.partial``."""
    if not target.parent.is_dir():
        raise DossierError(f"cannot write {target}: the folder {target.parent} does not exist")
    if target.is_dir():
        raise DossierError(f"cannot write {target}: it is a folder; give a file name")
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("w", newline="", encoding="utf-8") as out:
            count = asyncio.run(_export(settings, project_id, out, wait, poll))
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DossierError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count
