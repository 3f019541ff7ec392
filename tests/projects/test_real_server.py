"""Document 000's Python examples, run as written (URL and key replaced) against a real `dossier serve`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from tests.conftest import ServerProcess, start_server, stop_server
from tests.projects.helpers import DOC_COLUMNS, ROW_ID, TIMESTAMP

KEY = re.compile(r"dsk_[A-Za-z0-9_-]{40,}")
BODY_LIMIT = 4096


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """`dossier serve` on a fresh database (SQLite or PostgreSQL), with the key its first start printed."""
    process = start_server(database_url, tmp_path, env_extra={"DOSSIER_MAX_BODY_BYTES": str(BODY_LIMIT)})
    try:
        match = KEY.search(process.output())
        assert match, process.output()
        yield process, match.group(0)
    finally:
        stop_server(process)


def _create_project(base: str, key: str) -> str:
    """What 000 leaves to its web app: make the project of its examples."""
    response = requests.post(
        f"{base}/api/enterprise/projects",
        json={"name": "Tech Companies Q4", "columns": DOC_COLUMNS},
        headers={"kur-api-key": key},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    project_id: str = response.json()["id"]
    return project_id


def test_the_000_examples_print_the_documented_shapes(
    server: tuple[ServerProcess, str], capsys: pytest.CaptureFixture[str]
) -> None:
    process, YOUR_API_KEY = server  # the names 000 uses
    base = process.base_url
    YOUR_PROJECT_ID = _create_project(base, YOUR_API_KEY)

    # --- List All Projects (000, verbatim but for the URL) ---
    url = f"{base}/api/enterprise/projects"
    headers = {"accept": "application/json", "kur-api-key": YOUR_API_KEY}
    response = requests.get(url, headers=headers)
    print(response.json())
    projects: list[dict[str, Any]] = response.json()
    assert [set(p) for p in projects] == [
        {"id", "name", "creator_id", "company_count", "createdAt", "updatedAt"}
    ]
    assert projects[0]["id"] == YOUR_PROJECT_ID and projects[0]["company_count"] == 0
    assert TIMESTAMP.match(projects[0]["createdAt"])

    # --- Save Company Data ---
    project_id = YOUR_PROJECT_ID
    url = f"{base}/api/enterprise/projects/{project_id}/rows"
    headers = {"accept": "application/json", "Content-Type": "application/json", "kur-api-key": YOUR_API_KEY}
    data = {"company": {"company_name": "Acme Corporation", "website": "https://acme.com"}}
    response = requests.post(url, headers=headers, json=data)
    print(response.json())
    saved = response.json()
    assert set(saved) == {"row_id", "message", "error_detail"}
    assert ROW_ID.match(saved["row_id"]) and saved["message"] == "Success" and saved["error_detail"] is None
    row_id_from_save = saved["row_id"]

    # --- Get Project Details ---
    url = f"{base}/api/enterprise/projects/{project_id}"
    headers = {"accept": "application/json", "kur-api-key": YOUR_API_KEY}
    response = requests.get(url, headers=headers)
    print(response.json())
    details = response.json()
    assert [(c["name"], c["required"]) for c in details["columns"]] == [
        ("company_name", True),
        ("website", True),
        ("industry", False),
    ]
    assert all({"col_id", "name", "required"} <= set(c) for c in details["columns"])
    assert details["first_company_data"]["company_name"] == "Acme Corporation"
    assert details["first_company_data"]["website"] == "https://acme.com"

    # --- Get All Rows ---
    url = f"{base}/api/enterprise/projects/{project_id}/rows"
    headers = {"accept": "application/json", "kur-api-key": YOUR_API_KEY}
    params = {"page": 1, "page_size": 50}
    response = requests.get(url, headers=headers, params=params)
    print(json.dumps(response.json(), indent=2))
    page = response.json()
    assert set(page) == {"rows", "page", "page_size", "total"}
    assert (page["page"], page["page_size"], page["total"]) == (1, 50, 1)
    [row] = page["rows"]
    assert set(row) == {"id", "company"} and row["id"] == row_id_from_save
    assert row["company"]["company_name"] == {"value": "Acme Corporation", "status": "default"}
    assert row["company"]["website"] == {"value": "https://acme.com", "status": "default"}

    # --- Get Row Results ---
    row_id = row_id_from_save
    url = f"{base}/api/enterprise/projects/{project_id}/rows/{row_id}"
    headers = {"accept": "application/json", "kur-api-key": YOUR_API_KEY}
    response = requests.get(url, headers=headers)
    print(response.json())
    result = response.json()
    assert set(result) == {"id", "project_id", "company"}
    assert (result["id"], result["project_id"]) == (row_id, project_id)
    for name, value in data["company"].items():
        cell = result["company"][name]
        assert {k: cell[k] for k in ("name", "value", "status", "is_loading")} == {
            "name": name,
            "value": value,
            "status": "default",
            "is_loading": False,
        }

    printed = capsys.readouterr().out
    assert "'row_id'" in printed and '"page_size": 50' in printed


def test_bodies_over_the_limit_are_413_with_or_without_content_length(
    server: tuple[ServerProcess, str],
) -> None:
    process, key = server
    base = process.base_url
    project_id = _create_project(base, key)
    url = f"{base}/api/enterprise/projects/{project_id}/rows"
    headers = {"kur-api-key": key, "content-type": "application/json"}
    company = {"company_name": "Acme", "website": "https://acme.com", "industry": "x" * BODY_LIMIT}
    body = json.dumps({"company": company}).encode()

    declared = httpx.post(url, content=body, headers=headers, timeout=5)
    assert declared.status_code == 413
    assert declared.json()["row_id"] is None and "limit" in declared.json()["message"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    chunked = httpx.post(url, content=chunks(), headers=headers, timeout=5)
    assert chunked.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413
    assert chunked.json()["row_id"] is None and "limit" in chunked.json()["message"]

    # Nothing was written, and a body under the limit sent chunked is read in full.
    rows = httpx.get(url, headers={"kur-api-key": key}, timeout=5).json()
    assert rows["total"] == 0
    small = json.dumps({"company": {"company_name": "Acme", "website": "https://acme.com"}}).encode()
    ok = httpx.post(url, content=iter([small[:10], small[10:]]), headers=headers, timeout=5)
    assert ok.status_code == 200 and ok.json()["message"] == "Success"
