"""The Reconciliation Service API 0.2 over HTTP; every answer is validated against the spec's JSON Schemas."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from dossier.accounts.service import NewAccount
from dossier.enrichment.registry.service import kernel_id_for
from dossier.errors import InvalidInput
from dossier.reconciliation.schemas import parse_query_batch
from tests.reconciliation.conftest import ESCAPE, LILLE, LYON, Validate, examples, spec_dir

URL = "/api/reconcile"
MICRON = kernel_id_for("pytickersymbols", "Micron Technology")


@pytest.fixture
def key(account: NewAccount) -> dict[str, str]:
    return {"x-api-key": account.api_key}


async def _reconcile(
    client: httpx.AsyncClient, key: dict[str, str], queries: dict[str, Any], validate: Validate
) -> dict[str, Any]:
    response = await client.post(URL, data={"queries": json.dumps(queries)}, headers=key)
    assert response.status_code == 200, response.text
    assert validate("reconciliation-query-batch.json", queries) == []
    body: dict[str, Any] = response.json()
    assert validate("reconciliation-result-batch.json", body) == []
    assert set(body) == set(queries)
    return body


# --- manifest --------------------------------------------------------------------------------------------


async def test_manifest_needs_no_key_and_validates(client: httpx.AsyncClient, validate: Validate) -> None:
    response = await client.get(URL)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    manifest = response.json()
    assert validate("manifest.json", manifest) == []
    assert manifest["versions"] == ["0.2"]
    assert manifest["authentication"] == {
        "type": "apiKey",
        "name": "api_key",
        "in": "query",
        "description": "Your Dossier API key (also accepted in the x-api-key header).",
    }
    assert manifest["defaultTypes"] == [{"id": "organization", "name": "Organization"}]
    assert manifest["preview"]["url"] == "http://dossier.test/api/reconcile/preview?id={{id}}"
    assert manifest["suggest"]["entity"] == {
        "service_url": "http://dossier.test/api/reconcile",
        "service_path": "/suggest/entity",
    }
    assert manifest["batchSize"] == 1000


async def test_cross_origin_preflight_is_answered_without_a_key(client: httpx.AsyncClient) -> None:
    for path in (URL, f"{URL}/suggest/entity", f"{URL}/preview"):
        response = await client.options(
            path,
            headers={
                "Origin": "https://tool.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-api-key",
            },
        )
        assert response.status_code == 204, (path, response.text)
        assert response.headers["access-control-allow-origin"] == "*"
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "x-api-key" in response.headers["access-control-allow-headers"]


async def test_the_validator_agrees_with_the_specs_own_manifests(validate: Validate) -> None:
    valid, invalid = examples("manifest", "valid"), examples("manifest", "invalid")
    assert valid and invalid
    for path in valid:
        assert validate("manifest.json", json.loads(path.read_text())) == [], path.name
    for path in invalid:
        assert validate("manifest.json", json.loads(path.read_text())) != [], path.name


async def test_manifest_asked_with_a_valid_key_carries_it_in_the_preview_url(
    client: httpx.AsyncClient, account: NewAccount, validate: Validate
) -> None:
    manifest = (await client.get(URL, params={"api_key": account.api_key})).json()
    assert validate("manifest.json", manifest) == []
    assert manifest["preview"]["url"].endswith(f"/preview?id={{{{id}}}}&api_key={account.api_key}")
    # An invalid key is not echoed; the manifest is served all the same.
    response = await client.get(URL, params={"api_key": "not-a-key"})
    assert response.status_code == 200 and "not-a-key" not in response.text


# --- query batches ---------------------------------------------------------------------------------------


async def test_the_specs_query_batches_are_accepted_or_refused_as_they_say(
    client: httpx.AsyncClient, key: dict[str, str], validate: Validate
) -> None:
    spec_dir()
    valid = examples("reconciliation-query-batch", "valid")
    invalid = examples("reconciliation-query-batch", "invalid")
    assert valid and invalid
    for path in valid:
        batch = json.loads(path.read_text())
        assert validate("reconciliation-query-batch.json", batch) == [], path.name
        assert set(parse_query_batch(path.read_text())) == set(batch)
        body = await _reconcile(client, key, batch, validate)
        assert all(isinstance(answer["result"], list) for answer in body.values())
    for path in invalid:
        assert validate("reconciliation-query-batch.json", json.loads(path.read_text())) != [], path.name
        with pytest.raises(InvalidInput):
            parse_query_batch(path.read_text())
        response = await client.post(URL, data={"queries": path.read_text()}, headers=key)
        assert response.status_code == 422, (path.name, response.text)
        assert response.json()["error"]["status"] == 422


async def test_the_validator_agrees_with_the_specs_result_batches(validate: Validate) -> None:
    for path in examples("reconciliation-result-batch", "valid"):
        assert validate("reconciliation-result-batch.json", json.loads(path.read_text())) == [], path.name
    for path in examples("reconciliation-result-batch", "invalid"):
        assert validate("reconciliation-result-batch.json", json.loads(path.read_text())) != [], path.name


async def test_a_query_that_resolves_is_the_one_match(
    client: httpx.AsyncClient, key: dict[str, str], validate: Validate
) -> None:
    body = await _reconcile(
        client,
        key,
        {
            "q0": {"query": "Micron Technology Inc.", "properties": [{"pid": "country", "v": "US"}]},
            "q1": {"query": "Zyxqwv Plumbing Cooperative of Nowhere"},
        },
        validate,
    )
    first = body["q0"]["result"]
    assert first[0]["id"] == MICRON and first[0]["match"] is True
    assert first[0]["name"] == "Micron Technology"
    assert 86 <= first[0]["score"] <= 100
    assert first[0]["type"] == [{"id": "organization", "name": "Organization"}]
    features = {f["id"]: f["value"] for f in first[0]["features"]}
    assert features["name_similarity"] == 1.0 and features["country"] == 1
    assert [c["match"] for c in first[1:]] == [False] * (len(first) - 1)
    assert all(not c["match"] for c in body["q1"]["result"])
    assert all(c["score"] < 86 for c in body["q1"]["result"])


async def test_properties_tell_namesakes_apart(
    client: httpx.AsyncClient, key: dict[str, str], validate: Validate, companies: Any
) -> None:
    name = "Quillfeather Analytics"
    body = await _reconcile(
        client,
        key,
        {
            "alone": {"query": name},
            "lyon": {
                "query": name,
                "properties": [{"pid": "city", "v": "Lyon"}, {"pid": "country", "v": "FR"}],
            },
            "lille": {
                "query": name,
                "properties": [{"pid": "city", "v": ["", {"id": "x", "name": "Lille"}]}],
            },
            "site": {
                "query": name,
                "properties": [{"pid": "website", "v": "https://www.quillfeather-lille.fr/"}],
            },
        },
        validate,
    )
    alone = body["alone"]["result"]
    assert {c["id"] for c in alone[:2]} == {LYON, LILLE}
    assert not any(c["match"] for c in alone)  # two namesakes: Dossier resolves to neither
    for key_, expected in (("lyon", LYON), ("lille", LILLE), ("site", LILLE)):
        result = body[key_]["result"]
        assert result[0]["id"] == expected and result[0]["match"] is True, (key_, result)
        assert [c for c in result if c["match"]] == [result[0]]
    lyon_features = {f["id"]: f["value"] for f in body["lyon"]["result"][0]["features"]}
    assert lyon_features["city"] == 1 and lyon_features["country"] == 1
    other = next(c for c in body["lyon"]["result"] if c["id"] == LILLE)
    assert {f["id"]: f["value"] for f in other["features"]}["city"] == -1
    assert body["lyon"]["result"][0]["description"] == "Lyon, France · quillfeather-lyon.fr"
    site_features = {f["id"]: f["value"] for f in body["site"]["result"][0]["features"]}
    assert site_features["domain"] == 1


async def test_get_post_form_and_json_body_answer_alike(
    client: httpx.AsyncClient, key: dict[str, str], validate: Validate, companies: Any
) -> None:
    queries = {
        "q": {"query": "Quillfeather Analytics", "properties": [{"pid": "city", "v": "Lyon"}], "limit": 1}
    }
    by_form = await _reconcile(client, key, queries, validate)
    by_get = await client.get(URL, params={"queries": json.dumps(queries)}, headers=key)
    by_json = await client.post(URL, json=queries, headers=key)
    assert by_get.status_code == by_json.status_code == 200
    assert by_form == by_get.json() == by_json.json()
    assert len(by_form["q"]["result"]) == 1  # limit honoured


async def test_limit_and_identifier_queries(
    client: httpx.AsyncClient, key: dict[str, str], validate: Validate, companies: Any
) -> None:
    body = await _reconcile(
        client,
        key,
        {
            "many": {"query": "Quillfeather Analytics", "limit": 50},
            "two": {"query": "Quillfeather Analytics", "limit": 2},
            "id": {"query": LILLE},
            "nothing": {"properties": [{"pid": "uid", "v": "27eb892afbb2"}]},
        },
        validate,
    )
    assert 2 <= len(body["many"]["result"]) <= 5  # at most the 5 candidates the matcher reports
    assert len(body["two"]["result"]) == 2
    [by_id] = body["id"]["result"]
    assert by_id["id"] == LILLE and by_id["match"] is True and by_id["score"] == 100
    assert body["nothing"]["result"] == []


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"queries": "{not json"}, 400),
        ({"queries": "[1, 2]"}, 422),
        ({"queries": '{"q": {"query": "x", "limit": Infinity}}'}, 400),
        ({"queries": '{"q": {"properties": [{"pid": "city", "v": NaN}]}}'}, 400),
        ({"queries": json.dumps({"q": {"query": 5}})}, 422),
        ({"queries": json.dumps({"q": {"query": "x", "limit": 0}})}, 422),
        ({"queries": json.dumps({"q": {"query": "x", "limit": True}})}, 422),
        ({"queries": json.dumps({"q": {"query": "x", "type_strict": "maybe"}})}, 422),
        ({"queries": json.dumps({"q": "Acme"})}, 422),
        ({"queries": json.dumps({"q": {"query": "Acme " * 300}})}, 422),
        ({"queries": json.dumps({f"q{i}": {"query": "Acme"} for i in range(1001)})}, 413),
        ({"extend": "{"}, 400),
        ({"extend": json.dumps({"ids": "1", "properties": []})}, 422),
        ({"nothing": "here"}, 422),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    client: httpx.AsyncClient, key: dict[str, str], form: dict[str, str], status: int
) -> None:
    response = await client.post(URL, data=form, headers=key)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["message"]
    assert response.headers["access-control-allow-origin"] == "*"


async def test_a_body_neither_form_nor_json_is_415(client: httpx.AsyncClient, key: dict[str, str]) -> None:
    response = await client.post(URL, content=b"queries", headers={**key, "content-type": "text/plain"})
    assert response.status_code == 415, response.text
    not_json = await client.post(
        URL, content=b'{"q": {"query": NaN', headers={**key, "content-type": "application/json"}
    )
    assert not_json.status_code == 400, not_json.text


# --- suggest ---------------------------------------------------------------------------------------------


async def test_entity_suggest_by_prefix_with_cursor(
    client: httpx.AsyncClient, key: dict[str, str], validate: Validate, companies: Any
) -> None:
    path = f"{URL}/suggest/entity"
    first = (await client.get(path, params={"prefix": "QUÍLLFEATHER an"}, headers=key)).json()
    assert validate("suggest-entities-response.json", first) == []
    assert [r["id"] for r in first["result"]] == sorted([LYON, LILLE])
    assert first["result"][0]["notable"] == [{"id": "organization", "name": "Organization"}]
    second = (await client.get(path, params={"prefix": "quillfeather", "cursor": 1}, headers=key)).json()
    assert validate("suggest-entities-response.json", second) == []
    assert [r["id"] for r in second["result"]] == [first["result"][1]["id"]]
    assert (await client.get(path, params={"prefix": "quillfeather", "cursor": 2}, headers=key)).json() == {
        "result": []
    }
    micron = (await client.get(path, params={"prefix": "micron"}, headers=key)).json()["result"]
    assert micron[0]["id"] == MICRON and micron[0]["name"] == "Micron Technology"
    page = (await client.get(path, params={"prefix": "a", "limit": 7}, headers=key)).json()["result"]
    assert len(page) == 7 and all(r["name"].lower().startswith("a") or r["id"] for r in page)
    by_id = (await client.get(path, params={"prefix": LILLE}, headers=key)).json()["result"]
    assert by_id[0]["id"] == LILLE
    assert (await client.get(path, params={"prefix": "  "}, headers=key)).json() == {"result": []}
    assert (await client.get(path, params={"prefix": "a", "cursor": -1}, headers=key)).status_code == 422


async def test_property_and_type_suggest(
    client: httpx.AsyncClient, key: dict[str, str], validate: Validate
) -> None:
    everything = (await client.get(f"{URL}/suggest/property", params={"prefix": ""}, headers=key)).json()
    assert validate("suggest-properties-response.json", everything) == []
    assert [p["id"] for p in everything["result"]] == ["country", "city", "website", "postal_code", "address"]
    ci = (await client.get(f"{URL}/suggest/property", params={"prefix": "ci"}, headers=key)).json()
    assert [p["id"] for p in ci["result"]] == ["city"]
    types = (await client.get(f"{URL}/suggest/type", params={"prefix": "org"}, headers=key)).json()
    assert validate("suggest-types-response.json", types) == []
    assert [t["id"] for t in types["result"]] == ["organization"]
    none = (await client.get(f"{URL}/suggest/type", params={"prefix": "person"}, headers=key)).json()
    assert none == {"result": []}


# --- preview and data extension --------------------------------------------------------------------------


async def test_preview_escapes_every_value(
    client: httpx.AsyncClient, key: dict[str, str], companies: Any
) -> None:
    response = await client.get(f"{URL}/preview", params={"id": ESCAPE}, headers=key)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Sons" in page
    assert "Tools &lt;b&gt;&amp;&lt;/b&gt; dies" in page
    lyon = (await client.get(f"{URL}/preview", params={"id": LYON}, headers=key)).text
    assert "Quillfeather Analytics" in lyon and "120" in lyon and "Lyon, France" in lyon
    for unknown in ("12345", "<b>"):
        missing = await client.get(f"{URL}/preview", params={"id": unknown}, headers=key)
        assert missing.status_code == 404 and missing.json()["error"]["status"] == 404
    # A NUL is refused like everywhere else (no store keeps it).
    nul = await client.get(f"{URL}/preview", params={"id": "x\u0000y"}, headers=key)
    assert nul.status_code == 422 and "NUL" in nul.json()["error"]["message"]


async def test_property_proposals(client: httpx.AsyncClient, key: dict[str, str], validate: Validate) -> None:
    for path in examples("data-extension-property-proposal", "valid"):
        assert validate("data-extension-property-proposal.json", json.loads(path.read_text())) == []
    body = (await client.get(f"{URL}/properties", params={"type": "organization"}, headers=key)).json()
    assert validate("data-extension-property-proposal.json", body) == []
    ids = [p["id"] for p in body["properties"]]
    for wanted in (
        "industry",
        "employee_count",
        "revenue_amount",
        "revenue_currency",
        "hq_city",
        "hq_country",
    ):
        assert wanted in ids
    limited = (
        await client.get(f"{URL}/properties", params={"type": "organization", "limit": 3}, headers=key)
    ).json()
    assert validate("data-extension-property-proposal.json", limited) == []
    assert len(limited["properties"]) == 3 and limited["limit"] == 3
    unknown = await client.get(f"{URL}/properties", params={"type": "person"}, headers=key)
    assert unknown.status_code == 422


async def test_extend_answers_firmographics_as_value_objects(
    client: httpx.AsyncClient, key: dict[str, str], validate: Validate, companies: Any
) -> None:
    for path in examples("data-extension-response", "valid"):
        assert validate("data-extension-response.json", json.loads(path.read_text())) == []
    for path in examples("data-extension-response", "invalid"):
        assert validate("data-extension-response.json", json.loads(path.read_text())) != []
    query = {
        "ids": [LYON, LILLE],
        "properties": [
            {"id": p}
            for p in (
                "industry",
                "employee_count",
                "revenue_amount",
                "revenue_currency",
                "revenue_year",
                "hq_city",
                "city",
                "isin",
                "founded_year",
                "updated_at",
            )
        ],
    }
    assert validate("data-extension-query.json", query) == []
    response = await client.post(URL, data={"extend": json.dumps(query)}, headers=key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert validate("data-extension-response.json", body) == []
    assert [m["id"] for m in body["meta"]] == [p["id"] for p in query["properties"]]
    lyon = body["rows"][LYON]
    assert lyon["industry"] == [{"str": "Software"}]
    assert lyon["employee_count"] == [{"int": 120}]
    assert lyon["revenue_amount"] == [{"float": 1500000.0}]
    assert lyon["revenue_currency"] == [{"str": "EUR"}] and lyon["revenue_year"] == [{"int": 2024}]
    assert lyon["hq_city"] == lyon["city"] == [{"str": "Lyon"}]
    assert lyon["isin"] == [{"str": "FR0000000017"}, {"str": "FR0000000025"}]
    assert lyon["founded_year"] == [{"int": 2011}]
    assert len(lyon["updated_at"]) == 1 and lyon["updated_at"][0]["date"].endswith("Z")
    assert body["rows"][LILLE]["industry"] == [] and body["rows"][LILLE]["hq_city"] == [{"str": "Lille"}]
    # GET and a JSON body answer the same.
    by_get = await client.get(URL, params={"extend": json.dumps(query)}, headers=key)
    by_json = await client.post(URL, json=query, headers=key)
    assert by_get.json() == by_json.json() == body


async def test_extend_refuses_unknown_ids_and_properties(
    client: httpx.AsyncClient, key: dict[str, str], companies: Any
) -> None:
    unknown_id = {"ids": [LYON, "4242", "x\u0000y", "1" * 300], "properties": [{"id": "industry"}]}
    response = await client.post(URL, data={"extend": json.dumps(unknown_id)}, headers=key)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["detail"] == {"unknown_ids": ["4242", "x\u0000y", "1" * 300]}
    unknown_property = {"ids": [LYON], "properties": [{"id": "shoe_size"}]}
    response = await client.post(URL, data={"extend": json.dumps(unknown_property)}, headers=key)
    assert response.status_code == 422 and "shoe_size" in response.json()["error"]["message"]
    too_many = {"ids": [LYON] * 1001, "properties": [{"id": "industry"}]}
    response = await client.post(URL, data={"extend": json.dumps(too_many)}, headers=key)
    assert response.status_code == 413


# --- authentication --------------------------------------------------------------------------------------


async def test_every_endpoint_but_the_manifest_needs_a_key(
    client: httpx.AsyncClient, account: NewAccount
) -> None:
    queries = json.dumps({"q": {"query": "Micron Technology"}})
    extend = json.dumps({"ids": [MICRON], "properties": [{"id": "industry"}]})
    requests = [
        ("GET", URL, {"queries": queries}),
        ("POST", URL, {"queries": queries}),
        ("GET", URL, {"extend": extend}),
        ("GET", f"{URL}/suggest/entity", {"prefix": "micron"}),
        ("GET", f"{URL}/suggest/property", {"prefix": "c"}),
        ("GET", f"{URL}/suggest/type", {"prefix": "o"}),
        ("GET", f"{URL}/properties", {"type": "organization"}),
        ("GET", f"{URL}/preview", {"id": MICRON}),
    ]
    for method, path, params in requests:
        form = params if method == "POST" else None
        query = None if method == "POST" else params
        missing = await client.request(method, path, params=query, data=form)
        assert missing.status_code == 401, (path, missing.text)
        assert "api_key query parameter" in missing.json()["error"]["message"]
        assert missing.headers["access-control-allow-origin"] == "*"
        wrong = await client.request(method, path, params={**(query or {}), "api_key": "nope"}, data=form)
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
        by_query = await client.request(
            method, path, params={**(query or {}), "api_key": account.api_key}, data=form
        )
        assert by_query.status_code == 200, (path, by_query.text)
        by_header = await client.request(
            method, path, params=query, data=form, headers={"x-api-key": account.api_key}
        )
        assert by_header.status_code == 200, (path, by_header.text)
        bearer = {"Authorization": f"Bearer {account.api_key}"}
        assert (
            await client.request(method, path, params=query, data=form, headers=bearer)
        ).status_code == 200


async def test_other_surfaces_still_refuse_keys_in_urls(
    client: httpx.AsyncClient, account: NewAccount
) -> None:
    response = await client.get("/api/enterprise/projects", params={"api_key": account.api_key})
    assert response.status_code == 401
    response = await client.get("/rest/v1/firmographics/x", params={"api_key": account.api_key})
    assert response.status_code == 401
