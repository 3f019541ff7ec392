"""Fixtures of the reconciliation tests: the spec's JSON Schemas (from ../shared, never copied here) behind
one validator, and a few registry companies of our own beside the default registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.registry.service import import_file
from tests.conftest import REPO

SPEC = REPO.parent / "shared" / "reconciliation-api-0.2"
SCHEMA_BASE = "https://reconciliation-api.github.io/specs/0.2/schemas/"

# The manifest's `authentication` refers to Swagger 2.0's security scheme definition, which is not shipped
# with the spec. This is that definition (swagger.io/v2/schema.json), restricted to what it checks on one
# scheme: `type` among basic / apiKey / oauth2, and for an apiKey, `name` and `in` (header or query).
SWAGGER_V2 = {
    "$id": "http://swagger.io/v2/schema.json",
    "definitions": {
        "securityDefinitions": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [
                    {"$ref": "#/definitions/basicAuthenticationSecurity"},
                    {"$ref": "#/definitions/apiKeySecurity"},
                    {"$ref": "#/definitions/oauth2Security"},
                ]
            },
        },
        "basicAuthenticationSecurity": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["basic"]}, "description": {"type": "string"}},
            "patternProperties": {"^x-": {}},
            "additionalProperties": False,
        },
        "apiKeySecurity": {
            "type": "object",
            "required": ["type", "name", "in"],
            "properties": {
                "type": {"enum": ["apiKey"]},
                "name": {"type": "string"},
                "in": {"enum": ["header", "query"]},
                "description": {"type": "string"},
            },
            "patternProperties": {"^x-": {}},
            "additionalProperties": False,
        },
        "oauth2Security": {
            "type": "object",
            "required": ["type", "flow"],
            "properties": {
                "type": {"enum": ["oauth2"]},
                "flow": {"enum": ["implicit", "password", "application", "accessCode"]},
                "scopes": {"type": "object"},
                "authorizationUrl": {"type": "string"},
                "tokenUrl": {"type": "string"},
                "description": {"type": "string"},
            },
            "patternProperties": {"^x-": {}},
            "additionalProperties": False,
        },
    },
}

Validate = Callable[[str, Any], list[str]]


def spec_dir() -> Path:
    """The spec's directory in ../shared, or skip the test saying why."""
    if not (SPEC / "schemas").is_dir():
        pytest.skip(f"{SPEC} is absent: the shared directory is not beside this checkout")
    return SPEC


def _registry(root: Path) -> Registry:
    resources = [(SWAGGER_V2["$id"], Resource.from_contents(SWAGGER_V2, default_specification=DRAFT7))]
    for path in sorted((root / "schemas").glob("*.json")):
        if path.name == "openapi.json":
            continue
        contents = json.loads(path.read_text())
        resource = Resource.from_contents(contents, default_specification=DRAFT7)
        # Each schema under the name the others use for it (some declare another $id, e.g. a draft one).
        resources.append((SCHEMA_BASE + path.name, resource))
        if contents.get("$id"):
            resources.append((contents["$id"], resource))
    return Registry().with_resources(resources)


@pytest.fixture(scope="session")
def validate() -> Validate:
    """``validate(schema_file, instance)`` -> the schema's complaints (empty: valid)."""
    root = spec_dir()
    registry = _registry(root)
    validators: dict[str, Draft7Validator] = {}

    def check(schema: str, instance: Any) -> list[str]:
        if schema not in validators:
            contents = json.loads((root / "schemas" / schema).read_text())
            contents = {**contents, "$id": SCHEMA_BASE + schema}
            validators[schema] = Draft7Validator(contents, registry=registry)
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validators[schema].iter_errors(instance)
        ]

    return check


def examples(kind: str, validity: str) -> list[Path]:
    folder = SPEC / "examples" / kind / validity
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


# Two namesakes in two cities (only the city tells them apart), and one whose name needs escaping.
LYON = "900000000000000001"
LILLE = "900000000000000002"
ESCAPE = "900000000000000003"
COMPANIES = [
    {
        "kernel_id": LYON,
        "name": "Quillfeather Analytics",
        "country": "France",
        "city": "Lyon",
        "domain": "quillfeather-lyon.fr",
        "industry": "Software",
        "sector": "Technology",
        "employees": 120,
        "revenue": 1500000,
        "currency": "EUR",
        "revenue_year": 2024,
        "hq_country": "France",
        "founded": 2011,
        "company_type": "private",
        "isin": "FR0000000017|FR0000000025",
    },
    {
        "kernel_id": LILLE,
        "name": "Quillfeather Analytics",
        "country": "France",
        "city": "Lille",
        "domain": "quillfeather-lille.fr",
    },
    {
        "kernel_id": ESCAPE,
        "name": "<script>alert(1)</script> & Sons",
        "country": "US",
        "city": "Boston",
        "industry": "Tools <b>&</b> dies",
    },
]


@pytest.fixture
async def companies(sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "companies.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in COMPANIES) + "\n")
    async with sessionmaker() as session, session.begin():
        report = await import_file(session, path, source="reconciliation-tests")
    assert not report.rejected, report.rejected
    return COMPANIES
