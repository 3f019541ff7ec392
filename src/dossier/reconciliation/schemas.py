"""Wire shapes of the Reconciliation Service API 0.2 (`../shared/reconciliation-api-0.2/`): the query batch
and the data extension query as they arrive, and the answers' pieces.

Queries are parsed strictly, as the spec's JSON Schemas say: a query holds only `query`, `type`, `limit`,
`properties` and `type_strict` (a misspelt field is refused, not ignored), and at least a `query` or one
property.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from dossier.errors import InvalidInput, MalformedRequest

# Longest query string and property value read (a company name, an address); longer queries are refused.
MAX_QUERY_LENGTH = 1000


class EntityValue(BaseModel):
    """A property value that is itself an entity (a previously reconciled cell): its name is compared."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str | None = None


PropertyValue = str | float | bool | EntityValue


class QueryProperty(BaseModel):
    model_config = ConfigDict(extra="allow")

    pid: str
    v: PropertyValue | list[PropertyValue]

    def text(self) -> str | None:
        """The first non-empty value as text (an entity by its name, else its id)."""
        values = self.v if isinstance(self.v, list) else [self.v]
        for value in values:
            if isinstance(value, EntityValue):
                text = value.name or value.id
            elif isinstance(value, bool):
                continue
            elif isinstance(value, float):
                text = f"{value:g}"
            else:
                text = value
            if text and text.strip():
                return text.strip()[:MAX_QUERY_LENGTH]
        return None


class ReconciliationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(default=None, max_length=MAX_QUERY_LENGTH)
    type: str | list[str] | None = None
    limit: float | None = Field(default=None, gt=0)
    properties: list[QueryProperty] | None = None
    type_strict: Literal["any", "should", "all"] | None = None

    @model_validator(mode="after")
    def _query_or_properties(self) -> ReconciliationQuery:
        if self.query is None and not self.properties:
            raise ValueError("a query needs a `query` string or at least one property")
        return self

    def property_text(self, pid: str) -> str | None:
        for prop in self.properties or ():
            if prop.pid == pid:
                text = prop.text()
                if text is not None:
                    return text
        return None


class QueryBatch(RootModel[dict[str, ReconciliationQuery]]):
    pass


class ExtendProperty(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    settings: dict[str, Any] | None = None


class ExtendQuery(BaseModel):
    model_config = ConfigDict(extra="allow")

    ids: list[str]
    properties: list[ExtendProperty]


def _describe(exc: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ())) or "(root)"
        details.append({"loc": location, "msg": str(error.get("msg", "invalid"))})
    message = "; ".join(f"{d['loc']}: {d['msg']}" for d in details[:5])
    return message, details


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def load_json(text: str | bytes, what: str) -> Any:
    """Strict JSON (NaN and Infinity, which Python would read, are refused); MalformedRequest if it is not."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"{what} is not valid JSON: {exc}") from None


def parse_query_batch(raw: str | bytes | dict[str, Any]) -> dict[str, ReconciliationQuery]:
    """A reconciliation query batch (JSON text, or already decoded) -> its queries by id.

    MalformedRequest (400) for text that is not JSON; InvalidInput (422) for JSON that is not a query batch.
    """
    data = load_json(raw, "`queries`") if isinstance(raw, str | bytes) else raw
    if not isinstance(data, dict):
        raise InvalidInput("`queries` must be a JSON object of queries by id")
    try:
        return QueryBatch.model_validate_json(json.dumps(data), strict=True).root
    except ValidationError as exc:
        message, details = _describe(exc)
        raise InvalidInput(f"invalid query batch: {message}", detail=details) from None


def parse_extend_query(raw: str | bytes | dict[str, Any]) -> ExtendQuery:
    """A data extension query (JSON text, or already decoded); 400 / 422 as ``parse_query_batch``."""
    data = load_json(raw, "`extend`") if isinstance(raw, str | bytes) else raw
    if not isinstance(data, dict):
        raise InvalidInput("`extend` must be a JSON object with `ids` and `properties`")
    try:
        return ExtendQuery.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        message, details = _describe(exc)
        raise InvalidInput(f"invalid data extension query: {message}", detail=details) from None
