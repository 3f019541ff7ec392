"""The database settings as operators meet them: URL forms hosting platforms hand out, and logs at DEBUG."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import text

from dossier.db.engine import create_engine
from dossier.settings import Settings, async_database_url
from tests.conftest import DOSSIER_BIN, PG_URL, start_server, stop_server


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///dossier.db", "sqlite+aiosqlite:///dossier.db"),
        ("sqlite:////var/lib/dossier.db", "sqlite+aiosqlite:////var/lib/dossier.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgres://u:p@db.example:5432/app", "postgresql+asyncpg://u:p@db.example:5432/app"),
        ("postgresql://u@h/app", "postgresql+asyncpg://u@h/app"),
        ("postgresql+psycopg2://u@h/app", "postgresql+asyncpg://u@h/app"),
        ("postgresql://u@h/app?sslmode=require", "postgresql+asyncpg://u@h/app?ssl=require"),
        ("postgresql+asyncpg://u@h/app", "postgresql+asyncpg://u@h/app"),
    ],
)
def test_plain_urls_get_the_async_driver(given: str, used: str) -> None:
    assert async_database_url(given) == used
    assert Settings(database_url=given).database_url == used


@pytest.mark.parametrize(
    ("given", "says"),
    [("mysql://u@h/app", "'mysql' is not supported"), ("dossier.db", "is not a database URL")],
)
def test_a_url_dossier_cannot_use_is_refused_at_start_saying_why(given: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings(database_url=given)


def test_the_cli_runs_on_a_plain_sqlite_url(tmp_path: Path) -> None:
    env = {**os.environ, "DOSSIER_DATABASE_URL": f"sqlite:///{tmp_path / 'plain.db'}"}
    done = subprocess.run(
        [DOSSIER_BIN, "registry", "sources", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "plain.db").stat().st_size > 0  # migrated through the async driver


@pytest.mark.skipif(PG_URL is None, reason="needs PostgreSQL (runs when DOSSIER_TEST_DATABASE_URL is set)")
async def test_a_plain_postgres_url_connects() -> None:
    assert PG_URL is not None
    plain = PG_URL.set(drivername="postgres").render_as_string(hide_password=False)
    engine = create_engine(Settings(database_url=plain))
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("select 1"))).scalar() == 1
    finally:
        await engine.dispose()


def test_debug_logs_print_no_key_and_no_secret(database_url: str, tmp_path: Path) -> None:
    """At DEBUG every logger speaks (the database drivers included); none may print a secret or a key."""
    server = start_server(database_url, tmp_path, env_extra={"DOSSIER_LOG_LEVEL": "DEBUG"})
    try:
        banner = re.search(r"dsk_[A-Za-z0-9_-]{40,}", server.output())
        assert banner, server.output()
        key = banner.group(0)
        created = httpx.post(
            f"{server.base_url}/api/enterprise/webhooks",
            json={"url": "http://127.0.0.1:9/hooks", "profile": "kuration"},
            headers={"kur-api-key": key},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        listed = httpx.get(
            f"{server.base_url}/api/enterprise/webhooks", headers={"x-api-key": key}, timeout=10
        )
        assert listed.status_code == 200
    finally:
        stop_server(server)
    log = server.output()
    records = [line for line in log.splitlines() if line.startswith("{")]
    assert any('"level": "debug"' in line for line in records)  # the level really was DEBUG
    assert key in log  # the first start's banner shows it, on purpose ...
    assert not [line for line in records if key in line]  # ... and no log record does
    assert secret not in log
