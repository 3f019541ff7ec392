"""`dossier list build` as a user runs it: the real command in a subprocess against a real database."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import dossier_env, run_cli
from tests.lists.helpers import row_count, seed_registry
from tests.lists.test_build import COLUMNS
from tests.projects.helpers import create_project


async def test_list_build_adds_the_companies_that_fit_and_skips_them_the_second_time(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed_registry(sessionmaker)
    project = await create_project(client, headers, columns=COLUMNS)
    env = dossier_env(database_url, DOSSIER_REGISTRY_BUILTIN="false", DOSSIER_LIST_BATCH_ROWS="2")
    args = [
        "list",
        "build",
        project["id"],
        "--country",
        "DE",
        "--industry",
        "software",
        "--employees",
        "100-5000",
    ]
    result = await asyncio.to_thread(run_cli, *args, env=env)
    assert result.returncode == 0, result.stderr
    assert "3 companies added" in result.stdout
    assert "adding companies" in result.stderr  # the progress bar
    assert await row_count(sessionmaker) == 3
    again = await asyncio.to_thread(run_cli, *args, "--json", env=env)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["added"], summary["skipped"], summary["status"]) == (0, 3, "done")
    assert await row_count(sessionmaker) == 3


async def test_list_build_with_a_bad_filter_names_it_and_adds_nothing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed_registry(sessionmaker)
    project = await create_project(client, headers, columns=COLUMNS)
    env = dossier_env(database_url, DOSSIER_REGISTRY_BUILTIN="false")
    for args, named in (
        (["--industry", "Basket weaving"], "industry"),
        (["--employees", "5000-500"], "employees_min"),
        (["--country", "XQ"], "country"),
        (["--employees", "lots"], "employees"),
    ):
        result = await asyncio.to_thread(run_cli, "list", "build", project["id"], *args, env=env)
        assert result.returncode == 1, result.stdout
        assert named in result.stderr
    assert await row_count(sessionmaker) == 0
