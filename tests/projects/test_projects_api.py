from __future__ import annotations

import httpx


async def test_create_project_then_add_and_read_a_row(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = await client.post(
        "/api/enterprise/projects",
        json={"name": "Tech", "columns": [{"name": "company_name", "required": True}, {"name": "website"}]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    row = await client.post(
        f"/api/enterprise/projects/{project_id}/rows",
        json={"company": {"company_name": "Acme", "website": "https://acme.com"}},
        headers=headers,
    )
    assert row.status_code == 200
    body = row.json()
    assert body["message"] == "Success" and body["error_detail"] is None
    got = await client.get(f"/api/enterprise/projects/{project_id}/rows/{body['row_id']}", headers=headers)
    assert got.json()["company"]["company_name"] == {
        "name": "company_name",
        "value": "Acme",
        "status": "default",
        "is_loading": False,
        "error": None,
    }
