"""The real `dossier` command: `accounts create`, and the key the first `serve` prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import dossier_env, run_cli, start_server, stop_server
from tests.projects.helpers import API

KEY = re.compile(r"dsk_[A-Za-z0-9_-]{40,}")


async def test_accounts_create_json_prints_one_object_and_the_key_works(
    database_url: str, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    result = run_cli("accounts", "create", "x", "--json", env=dossier_env(database_url))
    assert result.returncode == 0, result.stderr
    # stdout is exactly one JSON object (scripts do `dossier accounts create x --json | jq -r .api_key`).
    created = json.loads(result.stdout)
    assert result.stdout.strip().count("\n") == 0
    assert set(created) == {"account_id", "api_key", "webhook_secret"}
    assert KEY.fullmatch(created["api_key"])
    assert created["webhook_secret"].startswith("whsec_")

    response = await client.get(f"{API}/projects", headers={"kur-api-key": created["api_key"]})
    assert response.status_code == 200 and response.json() == []

    # Only a hash of the key is stored: no column of any api_keys row holds the key or its secret part.
    async with sessionmaker() as session:
        stored = (await session.execute(text("SELECT * FROM api_keys"))).mappings().all()
    assert len(stored) == 1
    secret_part = created["api_key"].removeprefix("dsk_")
    for value in stored[0].values():
        assert secret_part[:16] not in str(value)
    assert stored[0]["account_id"] == created["account_id"]


async def test_accounts_create_without_json_prints_the_key_once(
    database_url: str, client: httpx.AsyncClient
) -> None:
    result = run_cli("accounts", "create", "acme-corp", env=dossier_env(database_url))
    assert result.returncode == 0, result.stderr
    keys = KEY.findall(result.stdout)
    assert len(keys) == 1
    assert (await client.get(f"{API}/projects", headers={"x-api-key": keys[0]})).status_code == 200


def test_duplicate_account_name_fails_clearly(database_url: str) -> None:
    env = dossier_env(database_url)
    assert run_cli("accounts", "create", "dup", "--json", env=env).returncode == 0
    again = run_cli("accounts", "create", "dup", "--json", env=env)
    assert again.returncode != 0
    assert again.stdout == ""  # nothing a script could mistake for credentials
    assert "already exists" in again.stderr and "dup" in again.stderr


def test_first_serve_prints_a_working_key_and_a_second_start_creates_no_account(
    database_url: str, tmp_path: Path
) -> None:
    # --no-worker: the worker plays no part in start-up and only slows the two starts and stops down.
    server = start_server(database_url, tmp_path, "--no-worker")
    try:
        output = server.output()
        keys = set(KEY.findall(output))
        assert len(keys) == 1, output
        key = keys.pop()
        assert f"{server.base_url}/api/enterprise/projects" in output
        assert f"{server.base_url}/docs" in output
        created = httpx.post(
            f"{server.base_url}{API}/projects", json={"name": "kept"}, headers={"kur-api-key": key}, timeout=5
        )
        assert created.status_code == 201
    finally:
        stop_server(server)

    again = start_server(database_url, tmp_path, "--no-worker")
    try:
        output = again.output()
        assert not KEY.search(output), "a second start must not create or print another key"
        assert f"{again.base_url}/docs" in output
        listed = httpx.get(f"{again.base_url}{API}/projects", headers={"kur-api-key": key}, timeout=5)
        assert [p["name"] for p in listed.json()] == ["kept"]
    finally:
        stop_server(again)
    # Still exactly one account: `default`, made by the first start.
    taken = run_cli("accounts", "create", "default", "--json", env=dossier_env(database_url))
    assert taken.returncode != 0 and "already exists" in taken.stderr
