"""Columns per project are bounded by a setting and creating them is linear; an `http` tool column whose URL
names a private or loopback host literally is refused when it is saved (the outbound policy decides)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dossier.settings import Settings

API = "/api/enterprise"
MAX_COLUMNS = 1600


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_columns": MAX_COLUMNS})


def _http_column(name: str, reads: str, url: str = "https://api.example.com/{{ v }}") -> dict[str, Any]:
    return {"name": name, "tool": {"type": "http", "inputs": {"v": reads}, "config": {"url": url}}}


async def test_columns_past_the_limit_are_422_and_write_nothing(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    too_many = [{"name": f"c{i}"} for i in range(MAX_COLUMNS + 1)]
    response = await client.post(
        f"{API}/projects", json={"name": "wide", "columns": too_many}, headers=headers
    )
    assert response.status_code == 422, response.text
    assert f"at most {MAX_COLUMNS} columns" in response.json()["message"]
    assert (await client.get(f"{API}/projects", headers=headers)).json() == []

    full = await client.post(
        f"{API}/projects", json={"name": "full", "columns": too_many[:MAX_COLUMNS]}, headers=headers
    )
    assert full.status_code == 201 and len(full.json()["columns"]) == MAX_COLUMNS
    one_more = await client.post(
        f"{API}/projects/{full.json()['id']}/columns", json={"name": "x"}, headers=headers
    )
    assert one_more.status_code == 422 and "at most" in one_more.json()["message"]


async def test_a_long_chain_of_tool_columns_is_created(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    # Each column reads the one after it: the cycle check walks a chain far deeper than Python's recursion
    # limit, starting from its far end.
    last = MAX_COLUMNS - 1
    columns = [_http_column(f"c{i}", f"c{i + 1}") for i in range(last)] + [{"name": f"c{last}"}]
    response = await client.post(
        f"{API}/projects", json={"name": "chain", "columns": columns}, headers=headers
    )
    assert response.status_code == 201, response.text[:500]
    assert len(response.json()["columns"]) == MAX_COLUMNS


@pytest.mark.parametrize(
    "url",
    [
        "https://10.1.2.3/lookup/{{ v }}",
        "https://192.168.0.10/{{ v }}",
        "https://127.0.0.2/{{ v }}",
        "https://[::ffff:127.0.0.2]/{{ v }}",
        "http://169.254.169.254/latest/meta-data",
        "http://api.example.com/{{ v }}",
    ],
)
async def test_an_http_column_to_a_refused_host_is_422(
    client: httpx.AsyncClient, headers: dict[str, str], url: str
) -> None:
    project = await client.post(
        f"{API}/projects", json={"name": "p", "columns": [{"name": "a"}]}, headers=headers
    )
    added = await client.post(
        f"{API}/projects/{project.json()['id']}/columns", json=_http_column("h", "a", url), headers=headers
    )
    assert added.status_code == 422, added.text
    assert "url" in added.json()["message"] and "DOSSIER_OUTBOUND_ALLOW" in added.json()["message"]
    created = await client.post(
        f"{API}/projects",
        json={"name": "q", "columns": [{"name": "a"}, _http_column("h", "a", url)]},
        headers=headers,
    )
    assert created.status_code == 422
    assert len((await client.get(f"{API}/projects", headers=headers)).json()) == 1


async def test_an_http_column_to_an_allowed_host_is_saved(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = await client.post(
        f"{API}/projects", json={"name": "p", "columns": [{"name": "a"}]}, headers=headers
    )
    for url in ("https://api.example.com/{{ v }}", "http://127.0.0.1:9/{{ v }}"):  # 127.0.0.1: allow-listed
        added = await client.post(
            f"{API}/projects/{project.json()['id']}/columns",
            json=_http_column(f"h{len(url)}", "a", url),
            headers=headers,
        )
        assert added.status_code == 201, added.text
