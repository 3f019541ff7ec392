"""Forms the dashboard builds from data: a tool's config form from its JSON Schema, and reading it back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dossier.errors import InvalidInput


@dataclass(frozen=True)
class Field:
    """One input of a form built from a JSON Schema property."""

    name: str
    label: str
    kind: str  # "text", "number", "integer", "select", "json", "checkbox"
    required: bool
    description: str
    default: Any
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def default_text(self) -> str:
        if self.default is None:
            return ""
        if self.kind == "json":
            return json.dumps(self.default)
        return str(self.default)


def _plain(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The non-null branch of an ``anyOf: [X, null]``."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return {**schema, **options[0]}
    return schema


def fields_from_schema(schema: Mapping[str, Any]) -> list[Field]:
    """The inputs of a tool's config form, in the schema's order."""
    required = set(schema.get("required", []))
    fields: list[Field] = []
    for name, raw in (schema.get("properties") or {}).items():
        prop = _plain(raw)
        kind = "json"
        choices: tuple[str, ...] = ()
        if "enum" in prop:
            kind, choices = "select", tuple(str(v) for v in prop["enum"])
        elif prop.get("type") in ("number", "integer", "string", "boolean"):
            kind = {"number": "number", "integer": "integer", "string": "text", "boolean": "checkbox"}[
                prop["type"]
            ]
        minimum = prop.get("minimum", prop.get("exclusiveMinimum"))
        fields.append(
            Field(
                name=name,
                label=str(prop.get("title") or name),
                kind=kind,
                required=name in required,
                description=str(prop.get("description") or ""),
                default=prop.get("default"),
                choices=choices,
                minimum=minimum,
                maximum=prop.get("maximum"),
            )
        )
    return fields


def config_from_form(fields: list[Field], form: Mapping[str, str]) -> dict[str, Any]:
    """The config a submitted form describes: empty inputs are left out (the tool's default applies)."""
    config: dict[str, Any] = {}
    for field in fields:
        key = f"config.{field.name}"
        if field.kind == "checkbox":
            if key in form:
                config[field.name] = True
            continue
        raw = (form.get(key) or "").strip()
        if not raw:
            continue
        try:
            if field.kind == "number":
                config[field.name] = float(raw)
            elif field.kind == "integer":
                config[field.name] = int(raw)
            elif field.kind == "json":
                config[field.name] = json.loads(raw)
            else:
                config[field.name] = raw
        except ValueError:
            what = {"number": "a number", "integer": "a whole number", "json": "JSON"}.get(
                field.kind, "valid"
            )
            raise InvalidInput(f"{field.label} must be {what}") from None
    return config
