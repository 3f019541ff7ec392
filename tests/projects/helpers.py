"""Small helpers shared by the Project Workflow API tests."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

API = "/api/enterprise"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ROW_ID = re.compile(r"^[A-Za-z0-9]{20}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# The project of 000's examples: two required columns and one optional.
DOC_COLUMNS = [
    {"name": "company_name", "required": True},
    {"name": "website", "required": True},
    {"name": "industry"},
]

TABLES = ("projects", "columns", "rows", "cells")


async def counts(maker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """How many projects, columns, rows and cells the database holds (all accounts)."""
    async with maker() as session:
        return {
            table: int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
            for table in TABLES
        }


async def create_project(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    name: str = "Tech Companies Q4",
    columns: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/projects",
        json={"name": name, "columns": DOC_COLUMNS if columns is None else columns},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()
    return project


async def add_row(
    client: httpx.AsyncClient, headers: dict[str, str], project_id: str, company: dict[str, Any]
) -> str:
    response = await client.post(
        f"{API}/projects/{project_id}/rows", json={"company": company}, headers=headers
    )
    assert response.status_code == 200, response.text
    row_id: str = response.json()["row_id"]
    return row_id


def assert_error(response: httpx.Response, status: int, *, row_creation: bool = False) -> dict[str, Any]:
    """The documented error envelope of /api/enterprise: `{row_id: null, message, error_detail}` where a row
    is created, `{message, error_detail}` everywhere else; JSON, with a message a person can act on."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    expected = {"row_id", "message", "error_detail"} if row_creation else {"message", "error_detail"}
    assert set(body) == expected, body
    if row_creation:
        assert body["row_id"] is None
    assert isinstance(body["message"], str) and body["message"].strip()
    return body
