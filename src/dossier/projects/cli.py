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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
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
            with path.open("rb") as raw_file, _progress() as progress:
                counter = _CountingReader(raw_file)
                text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
                reader = csv.DictReader(text)
                if not reader.fieldnames:
                    raise DossierError(f"{path} has no header row")
                task = progress.add_task("rows", total=size, note="")
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

                for record in reader:
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
    except UnicodeDecodeError as exc:
        raise DossierError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except csv.Error as exc:
        raise DossierError(f"{path} is not valid CSV: {exc}") from None
    return written, rejected


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
            target = Path(file)
            partial = target.with_name(target.name + ".partial")
            with partial.open("w", newline="", encoding="utf-8") as out:
                count = asyncio.run(_export(settings, project_id, out, wait, poll))
            # Written aside and renamed: an interrupted export never leaves a truncated file behind.
            partial.replace(target)
    except DossierError as exc:
        raise _fail(exc.message) from None
    err.print(f"{count} rows exported")
