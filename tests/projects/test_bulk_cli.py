"""`dossier import` and `dossier export` through the real command, on both stores."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.service import NewAccount
from dossier.projects import service as projects
from dossier.projects.models import Row
from dossier.projects.tool_engine import ToolSpec
from tests.conftest import DOSSIER_BIN, dossier_env, run_cli


async def _project(
    maker: async_sessionmaker[AsyncSession], account: NewAccount, *, with_tool: bool = False
) -> str:
    columns = [projects.ColumnSpec("company_name", required=True), projects.ColumnSpec("website")]
    if with_tool:
        columns.append(projects.ColumnSpec("domain", tool=ToolSpec("domain", {"website": "website"}, {})))
    async with maker() as session, session.begin():
        return (await projects.create_project(session, account.account, "bulk", columns)).id


async def _rows(maker: async_sessionmaker[AsyncSession], project_id: str) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count(Row.pk)).where(Row.project_id == project_id)) or 0)


def _write(path: Path, lines: list[list[str]]) -> None:
    with path.open("w", newline="") as out:
        csv.writer(out).writerows(lines)


async def test_import_writes_valid_lines_and_reports_rejected_ones_by_line(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount, tmp_path: Path
) -> None:
    project_id = await _project(sessionmaker, account)
    source = tmp_path / "companies.csv"
    lines = [["company_name", "website"]]
    lines += [[f"Company {i}", f"https://c{i}.example.com"] for i in range(2500)]
    lines[101] = ["", "https://nameless.example.com"]  # line 102 of the file: required column empty
    _write(source, lines)

    result = run_cli("import", project_id, str(source), env=dossier_env(database_url))

    assert result.returncode == 2, result.stderr
    assert "line 102: missing required column(s): company_name" in result.stderr
    assert "2499 rows written, 1 rejected" in result.stderr
    assert await _rows(sessionmaker, project_id) == 2499


async def test_import_refuses_unknown_columns_and_unknown_projects(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount, tmp_path: Path
) -> None:
    project_id = await _project(sessionmaker, account)
    source = tmp_path / "bad.csv"
    _write(source, [["company_name", "ceo"], ["Acme", "Wile E."]])
    env = dossier_env(database_url)

    # The header is checked up front: one message, not one per line, and nothing written.
    unknown_column = run_cli("import", project_id, str(source), env=env)
    assert unknown_column.returncode == 1
    assert "the header does not match the project's columns (not columns of the project: ceo)" in (
        " ".join(unknown_column.stderr.split())
    )
    assert "line 2" not in unknown_column.stderr

    unknown_project = run_cli("import", "no-such-project", str(source), env=env)
    assert unknown_project.returncode == 1
    assert "project no-such-project not found" in unknown_project.stderr

    missing_file = run_cli("import", project_id, str(tmp_path / "absent.csv"), env=env)
    assert missing_file.returncode == 1
    assert "is not a file" in missing_file.stderr
    assert await _rows(sessionmaker, project_id) == 0


async def test_export_waits_for_tool_cells_and_writes_every_column(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount, tmp_path: Path
) -> None:
    project_id = await _project(sessionmaker, account, with_tool=True)
    source = tmp_path / "in.csv"
    _write(source, [["company_name", "website"], ["Acme", "https://www.acme.co.uk/about"], ["Nowhere", ""]])
    env = dossier_env(database_url, DOSSIER_WORKER_POLL_INTERVAL="0.1")
    assert run_cli("import", project_id, str(source), env=env).returncode == 0

    worker = subprocess.Popen(  # noqa: ASYNC220 - starting a child does not block
        [DOSSIER_BIN, "worker", "--no-migrate"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        target = tmp_path / "out.csv"
        result = run_cli("export", project_id, str(target), "--wait", "--poll", "0.1", env=env, timeout=120)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    assert result.returncode == 0, result.stderr
    assert "2 rows exported" in result.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [(r["company_name"], r["website"], r["domain"]) for r in rows] == [
        ("Acme", "https://www.acme.co.uk/about", "acme.co.uk"),
        ("Nowhere", "", ""),
    ]
    assert all(len(r["row_id"]) == 20 for r in rows)
    assert not (tmp_path / "out.csv.partial").exists()


async def test_import_checks_the_whole_header_first(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount, tmp_path: Path
) -> None:
    project_id = await _project(sessionmaker, account, with_tool=True)
    env = dossier_env(database_url)
    source = tmp_path / "bad.csv"
    _write(source, [["website", "domain"], *[[f"https://c{i}.example.com", "x"] for i in range(50)]])
    result = run_cli("import", project_id, str(source), env=env)
    message = " ".join(result.stderr.split())
    assert result.returncode == 1
    assert "filled by a tool, cannot be imported: domain" in message
    assert "required columns missing: company_name" in message
    assert "Traceback" not in result.stderr and await _rows(sessionmaker, project_id) == 0


async def test_a_header_only_file_is_an_error(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount, tmp_path: Path
) -> None:
    project_id = await _project(sessionmaker, account)
    source = tmp_path / "empty.csv"
    _write(source, [["company_name", "website"]])
    result = run_cli("import", project_id, str(source), env=dossier_env(database_url))
    assert result.returncode == 1
    assert "has a header but no data rows" in " ".join(result.stderr.split())


async def test_non_utf8_input_is_reported_by_line(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount, tmp_path: Path
) -> None:
    project_id = await _project(sessionmaker, account)
    source = tmp_path / "latin1.csv"
    lines = ["company_name,website"] + [f"Company {i},https://c{i}.example.com" for i in range(30)]
    lines[21] = "Caf\u00e9 M\u00fcller,https://cafe.example.com"
    source.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    result = run_cli("import", project_id, str(source), env=dossier_env(database_url))
    message = " ".join(result.stderr.split())
    assert result.returncode == 1
    assert "line 22 is not UTF-8 text" in message and "byte" in message, message


async def test_import_progress_counts_bytes_not_rows(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount, tmp_path: Path
) -> None:
    project_id = await _project(sessionmaker, account)
    source = tmp_path / "companies.csv"
    _write(source, [["company_name", "website"], *[[f"C{i}", "w"] for i in range(10)]])
    result = run_cli("import", project_id, str(source), env={**dossier_env(database_url), "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert (
        "reading" in result.stderr
        and "bytes" in result.stderr
        and "rows " not in result.stderr.split("\n")[0]
    )


async def test_export_to_a_missing_folder_is_one_clear_line_and_leaves_nothing(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], account: NewAccount, tmp_path: Path
) -> None:
    project_id = await _project(sessionmaker, account)
    env = dossier_env(database_url)
    missing = run_cli("export", project_id, str(tmp_path / "nope" / "out.csv"), env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "does not exist" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr

    failed = run_cli("export", "no-such-project", str(tmp_path / "out.csv"), env=env)
    assert failed.returncode == 1 and "not found" in failed.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("out.csv")]  # noqa: ASYNC240
    assert leftovers == []  # no .partial left behind
