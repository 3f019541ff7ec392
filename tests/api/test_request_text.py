"""Request text no database stores is refused the same way on every API and both stores; declared charsets
are honoured; OPTIONS and 405 name every method of a path; booleans are strict; the OpenAPI document says
what the API checks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

NUL_BODIES = [
    ("/rest/v1/entity-resolution", {"legal_name": "Ac\u0000me"}),
    ("/rest/v1/firmographics", {"kernel_id": "1\u00002"}),
    ("/api/company", {"name": "Ac\u0000me"}),
    ("/api/analysis", {"projectId": "a\u0000b"}),
    ("/api/enterprise/projects", {"name": "fine", "columns": [{"name": "a\u0000b"}]}),
    ("/api/enterprise/webhooks", {"url": "http://127.0.0.1:9/h", "description": "a\u0000b"}),
    ("/api/enterprise/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["tool_output_ready\u0000"]}),
]
NUL_PATHS = [
    "/rest/v1/entity-resolution/a%00b",
    "/rest/v1/firmographics/a%00b",
    "/api/enterprise/projects/a%00b",
    "/api/enterprise/projects/a%00b/rows",
    "/api/enterprise/webhooks/a%00b",
    "/api/enterprise/webhooks/deliveries/a%00b",
    "/api/company/retrieve?projectId=a%00b",
    "/api/analysis?analysisId=a%00b",
    "/api/enterprise/projects/x/rows?page=1&x%00=1",
]


def _message(body: dict[str, Any]) -> str:
    """The error text of any surface's envelope."""
    if "message" in body:
        return str(body["message"])
    if isinstance(body.get("error"), dict):
        return str(body["error"]["message"])
    return str(body["error"])


@pytest.mark.parametrize(("path", "body"), NUL_BODIES)
async def test_a_nul_in_a_body_is_422_and_writes_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert "NUL" in _message(response.json())
    # Nothing was created: the account still has no project, endpoint or tracked company.
    assert (await client.get("/api/enterprise/projects", headers=headers)).json() == []
    assert (await client.get("/api/enterprise/webhooks", headers=headers)).json() == []


@pytest.mark.parametrize("path", NUL_PATHS)
async def test_a_nul_in_a_path_id_or_query_is_422(
    client: httpx.AsyncClient, headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=headers)
    assert response.status_code == 422, response.text
    assert "NUL" in _message(response.json())


async def test_a_nul_in_a_delivery_filter_is_422(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    created = await client.post(
        "/api/enterprise/webhooks", json={"url": "http://127.0.0.1:9/h"}, headers=headers
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]
    response = await client.get(
        f"/api/enterprise/webhooks/{endpoint}/deliveries", params={"event": "a\u0000b"}, headers=headers
    )
    assert response.status_code == 422 and "NUL" in response.json()["message"]


async def test_escaped_backslash_before_u0000_is_plain_text(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    # "a\\u0000b" in JSON is the six characters \u0000, not a NUL: stored as given.
    response = await client.post(
        "/api/enterprise/projects",
        content=b'{"name": "a\\\\u0000b"}',
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "a\\u0000b"


async def test_a_latin1_body_is_decoded_as_latin1(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    body = '{"name": "Caf\u00e9 M\u00fcller"}'.encode("latin-1")
    response = await client.post(
        "/api/enterprise/projects",
        content=body,
        headers={**headers, "content-type": "application/json; charset=latin-1"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Caf\u00e9 M\u00fcller"


async def test_an_unknown_charset_is_415(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post(
        "/api/enterprise/projects",
        content=b'{"name": "x"}',
        headers={**headers, "content-type": "application/json; charset=klingon"},
    )
    assert response.status_code == 415 and "charset" in response.json()["message"]
    assert (await client.get("/api/enterprise/projects", headers=headers)).json() == []


async def test_options_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.options("/api/enterprise/projects")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    item = await client.options("/api/enterprise/webhooks/some-id")
    assert item.headers["allow"] == "GET, HEAD, PATCH, DELETE, OPTIONS"
    assert (await client.options("/nowhere")).status_code == 404


async def test_a_405_names_every_method(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.put("/api/enterprise/projects", headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, "1", None])
async def test_booleans_are_strict(client: httpx.AsyncClient, headers: dict[str, str], value: Any) -> None:
    created = await client.post(
        "/api/enterprise/webhooks", json={"url": "http://127.0.0.1:9/h"}, headers=headers
    )
    endpoint = created.json()["id"]
    response = await client.patch(
        f"/api/enterprise/webhooks/{endpoint}", json={"active": value}, headers=headers
    )
    if value is None:
        assert response.status_code == 200  # null: leave it as it is
    else:
        assert response.status_code == 422, response.text
    column = await client.post(
        "/api/enterprise/projects",
        json={"name": "p", "columns": [{"name": "a", "required": value}]},
        headers=headers,
    )
    assert column.status_code == 422
    hook = await client.post(
        "/api/integration/webhook",
        json={"url": "http://127.0.0.1:9/h", "analysisCompleted": value},
        headers=headers,
    )
    assert hook.status_code == 422


async def test_a_standard_endpoint_refuses_unknown_events(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    url = "http://127.0.0.1:9/h"
    unknown = await client.post(
        "/api/enterprise/webhooks",
        json={"url": url, "profile": "standard", "events": ["no.such"]},
        headers=headers,
    )
    assert unknown.status_code == 422 and "no.such" in unknown.json()["message"]
    for events in (["*"], ["tool_output_ready", "changedStatus", "webhook_endpoint.disabled"]):
        known = await client.post(
            "/api/enterprise/webhooks",
            json={"url": url, "profile": "standard", "events": events},
            headers=headers,
        )
        assert known.status_code == 201, known.text
    endpoint = known.json()["id"]
    patched = await client.patch(
        f"/api/enterprise/webhooks/{endpoint}", json={"events": ["typo"]}, headers=headers
    )
    assert patched.status_code == 422


async def test_openapi_says_what_the_api_checks(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    rows = paths["/api/enterprise/projects/{project_id}/rows"]["get"]
    page_size = next(p for p in rows["parameters"] if p["name"] == "page_size")
    assert page_size["schema"]["maximum"] == 200 and page_size["schema"]["minimum"] == 1
    assert "400" in rows["responses"] and "400" in paths["/rest/v1/entity-resolution"]["post"]["responses"]
    assert "400" in paths["/api/company"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    companies = schemas["RowsBatchCreate"]["properties"]["companies"]
    assert (companies["minItems"], companies["maxItems"]) == (1, 1000)
    inputs = schemas["ResolutionBatchIn"]["properties"]["inputs"]
    assert (inputs["minItems"], inputs["maxItems"]) == (1, 1000)
    deliveries = paths["/api/enterprise/webhooks/{endpoint_id}/deliveries"]["get"]["parameters"]
    status = next(p for p in deliveries if p["name"] == "status")
    assert {"pending", "succeeded", "failed"} == set(status["schema"]["anyOf"][0]["enum"])
    history = paths["/api/integration/webhook/history"]["get"]["parameters"]
    outcome = next(p for p in history if p["name"] == "status")
    assert set(outcome["schema"]["anyOf"][0]["enum"]) == {"Success", "Error Request", "Error Response"}
    # The statuses the answers carry are enums too, so a client can generate exhaustive handling.
    answers = {
        ("JobOut", "status"): {"pending", "running", "completed", "failed"},
        ("AnalysisOut", "status"): {"pending", "running", "completed", "failed"},
        ("HistoryEntry", "status"): {"Success", "Error Request", "Error Response"},
        ("DeliveryOut", "status"): {"pending", "succeeded", "failed"},
        ("ListOut", "status"): {"queued", "running", "done", "failed"},
        ("CellFull", "status"): {"default", "pending", "running", "success", "error", "skipped"},
        ("CellBrief", "status"): {"default", "pending", "running", "success", "error", "skipped"},
    }
    for (name, field), values in answers.items():
        assert set(schemas[name]["properties"][field]["enum"]) == values, name


async def test_a_path_with_a_missing_id_is_a_clear_404(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    project = (await client.post("/api/enterprise/projects", json={"name": "p"}, headers=headers)).json()
    for path in (f"/api/enterprise/projects/{project['id']}/columns/", "/api/enterprise/projects//rows"):
        response = await client.delete(path, headers=headers)
        assert response.status_code == 404, response.text
        assert "id in it is empty" in response.json()["message"]
