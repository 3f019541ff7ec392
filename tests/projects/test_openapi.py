"""The OpenAPI schema behind /docs describes the whole enterprise surface."""

from __future__ import annotations

from typing import Any

import httpx

# Every operation of issue 2 (000's five and the project management around them).
ENTERPRISE = {
    ("get", "/api/enterprise/projects"),
    ("post", "/api/enterprise/projects"),
    ("get", "/api/enterprise/projects/{project_id}"),
    ("delete", "/api/enterprise/projects/{project_id}"),
    ("get", "/api/enterprise/projects/{project_id}/columns"),
    ("post", "/api/enterprise/projects/{project_id}/columns"),
    ("delete", "/api/enterprise/projects/{project_id}/columns/{col_id}"),
    ("post", "/api/enterprise/projects/{project_id}/rows"),
    ("post", "/api/enterprise/projects/{project_id}/rows/batch"),
    ("get", "/api/enterprise/projects/{project_id}/rows"),
    ("get", "/api/enterprise/projects/{project_id}/rows/{row_id}"),
    ("delete", "/api/enterprise/projects/{project_id}/rows/{row_id}"),
}


async def test_every_enterprise_operation_is_described(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")  # no key needed to read the docs
    assert response.status_code == 200
    schema = response.json()
    operations = {(method, path): op for path, ops in schema["paths"].items() for method, op in ops.items()}
    assert set(operations) >= ENTERPRISE
    for key in ENTERPRISE:
        op: dict[str, Any] = operations[key]
        assert op.get("summary") and op.get("description", "").strip(), key
        assert {"200", "201"} & set(op["responses"]), key
        assert {"401", "404", "422"} <= set(op["responses"]), key
        # Any of the three key headers can be used from the Authorize button of /docs.
        assert {name for requirement in op["security"] for name in requirement} == {
            "kur-api-key",
            "x-api-key",
            "Authorization",
        }, key


async def test_pagination_and_wire_names_are_in_the_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    rows = schema["paths"]["/api/enterprise/projects/{project_id}/rows"]["get"]
    params = {p["name"]: p for p in rows["parameters"]}
    assert params["page"]["schema"]["default"] == 1 and params["page"].get("description")
    assert params["page_size"]["schema"]["default"] == 50 and "200" in params["page_size"]["description"]
    components = schema["components"]["schemas"]
    assert {"createdAt", "updatedAt", "creator_id", "company_count"} <= set(
        components["ProjectSummary"]["properties"]
    )
    assert {"row_id", "message", "error_detail"} <= set(components["RowCreated"]["properties"])
    assert {"name", "value", "status", "is_loading"} <= set(components["CellFull"]["properties"])


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200 and "openapi.json" in response.text
