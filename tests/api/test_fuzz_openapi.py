"""A bounded schemathesis run of every operation of `/openapi.json` against a real `dossier serve` on each
store: no answer may be a server error, and every answer must match the schema the API publishes.

The budget is fixed (examples per operation and generation mode) and the generation deterministic
(Hypothesis ``derandomize``), so a run takes the same requests and about a minute per store. Path and query
ids are half the time ones that exist (a seeded project, row, endpoint, delivery, job, company and
analysis), so the fuzzing reaches the logic behind the 404s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import ServerProcess, start_server, stop_server

# Examples per operation and generation mode (positive and negative): about 2 x 54 x 10 requests a store.
EXAMPLES = 10
KEY_PATTERN = "dsk_"
AUTH_HEADERS = {"kur-api-key", "x-api-key", "authorization"}


@dataclass
class Seeded:
    server: ServerProcess
    key: str
    path_ids: dict[str, str]
    query_ids: dict[str, str]


def _seed(base: str, key: str) -> tuple[dict[str, str], dict[str, str]]:
    """One of everything an id can name, made through the API."""
    auth = {"kur-api-key": key}
    with httpx.Client(base_url=base, headers=auth, timeout=10) as http:

        def post(path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
            response = http.post(path, json=body)
            assert response.status_code == status, (path, response.text)
            answer: dict[str, Any] = response.json()
            return answer

        project = post(
            "/api/enterprise/projects",
            {"name": "fuzz", "columns": [{"name": "company_name", "required": True}, {"name": "website"}]},
            201,
        )
        row = post(
            f"/api/enterprise/projects/{project['id']}/rows", {"company": {"company_name": "Acme"}}, 200
        )
        endpoint = post(
            "/api/enterprise/webhooks", {"url": "http://127.0.0.1:9/hook", "profile": "standard"}, 201
        )
        delivery = post(f"/api/enterprise/webhooks/{endpoint['id']}/test", {}, 202)
        job = post("/rest/v1/entity-resolution", {"legal_name": "Acme"}, 202)
        company = post("/api/company", {"name": "Acme"}, 201)["data"]
        analysis = post("/api/analysis", {"projectId": company["id"]}, 202)["data"]
    path_ids = {
        "project_id": project["id"],
        "col_id": project["columns"][1]["col_id"],
        "row_id": row["row_id"],
        "endpoint_id": endpoint["id"],
        "delivery_id": delivery["id"],
        "job_id": job["id"],
    }
    query_ids = {"projectId": company["id"], "analysisId": analysis["id"]}
    return path_ids, query_ids


@pytest.fixture
def seeded(database_url: str, tmp_path: Path) -> Iterator[Seeded]:
    server = start_server(
        database_url,
        tmp_path,
        env_extra={"DOSSIER_REGISTRY_BUILTIN": "false", "DOSSIER_LOG_LEVEL": "WARNING"},
    )
    try:
        output = server.output()
        start = output.index(KEY_PATTERN)
        key = output[start:].split()[0]
        path_ids, query_ids = _seed(server.base_url, key)
        yield Seeded(server, key, path_ids, query_ids)
    finally:
        stop_server(server)


def _use_known_ids(case: Any, seeded: Seeded) -> None:
    """Make ``case`` name what exists, with only the valid key (the API-key headers are parameters too)."""
    if case.headers:
        case.headers = {k: v for k, v in case.headers.items() if k.lower() not in AUTH_HEADERS}
    if case.method.upper() == "DELETE":
        return  # keep the seeded resources for the operations after it
    for name in list(case.path_parameters or {}):
        if name in seeded.path_ids:
            case.path_parameters[name] = seeded.path_ids[name]
    if case.query:
        for name in list(case.query):
            if name in seeded.query_ids:
                case.query[name] = seeded.query_ids[name]


def test_no_operation_answers_a_server_error_or_breaks_its_schema(seeded: Seeded) -> None:
    schema = schemathesis.openapi.from_url(f"{seeded.server.base_url}/openapi.json")
    auth = {"kur-api-key": seeded.key}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40  # every surface is in the schema

    for operation in operations:
        # Negative data needs something typed to break: a body or a query parameter (any string is a
        # valid path id, so ids are fuzzed by the positive run).
        has_input = bool(operation.body) or any(p.location == "query" for p in operation.iter_parameters())
        modes = (
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input else (GenerationMode.POSITIVE,)
        )
        for mode in modes:

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode), known=st.booleans())
            def run(case: Any, known: bool) -> None:
                if known:
                    _use_known_ids(case, seeded)
                case.call_and_validate(
                    base_url=seeded.server.base_url,
                    headers=auth,
                    checks=[not_a_server_error, response_schema_conformance],
                    timeout=15,
                )

            try:
                run()
            except Exception as exc:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
