"""``kuration``: the ``tool_output_ready`` delivery of ``002`` (which wins over the example in ``000``).

Body: ``json.dumps(payload, separators=(",", ":")).encode()``. Because that is also ``002``'s canonical
signed string, a receiver that HMACs the raw body and one that parses and re-serialises agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from dossier.db.base import as_utc
from dossier.webhooks.profiles.base import EndpointOption, EventType, WebhookProfile, hmac_sha256_hex

TOOL_OUTPUT_READY = "tool_output_ready"
#: Option: the form of ``X-Kuration-Signature``. ``sha256`` (``sha256=<hex>``, as ``002`` specifies) or
#: ``hex`` (the bare digest the handler and ``verify_webhook_signature`` printed in ``000`` compare with).
SIGNATURE_FORM = "signature_form"
SIGNATURE_FORMS = ("sha256", "hex")
#: Option: only events of these projects (comma-separated ids); absent, every project's.
PROJECTS = "projects"
MAX_PROJECTS = 100
USER_AGENT = "Kuration-Webhook/1.0"
_FIELDS = ("project_id", "row_id", "col_id", "value", "status")


def kuration_timestamp(when: datetime) -> str:
    """``2024-01-20T14:45:00.000000``: naive UTC ISO with microseconds, as ``002`` prints it."""
    return as_utc(when).replace(tzinfo=None).isoformat(timespec="microseconds")


def value_string(value: Any) -> str:
    """``value`` is a string on the wire (``002``): strings pass through, other outputs are JSON-serialised.

    None (a cell that produced nothing, e.g. on error) becomes ``""`` rather than ``"null"``: a receiver
    testing ``if payload["value"]`` should not see a truthy placeholder.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ToolOutputReadyData(BaseModel):
    """The data of ``tool_output_ready``: one tool cell's outcome."""

    model_config = ConfigDict(extra="forbid")

    project_id: str = Field(description="Project UUID.")
    row_id: str = Field(description="Row identifier (20 characters, [A-Za-z0-9]).")
    col_id: str = Field(description="Tool column UUID.")
    value: str = Field(description="The tool's output as a string (non-string outputs JSON-serialised).")
    status: str = Field(description="success, error or skipped.")


class ToolOutputReady(BaseModel):
    """The ``tool_output_ready`` body of ``002``; the field order is the documented one (and signed)."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["tool_output_ready"]
    project_id: str = Field(description="Project UUID.")
    row_id: str = Field(description="Row identifier (20 characters, [A-Za-z0-9]).")
    col_id: str = Field(description="Tool column UUID.")
    value: str = Field(description="The tool's output as a string (non-string outputs JSON-serialised).")
    status: str = Field(description="success, error or skipped.")
    timestamp: str = Field(
        description="Naive UTC ISO 8601 with microseconds, e.g. 2024-01-20T14:45:00.000000."
    )


def tool_output_ready_payload(
    *, project_id: str, row_id: str, col_id: str, value: Any, status: str, timestamp: datetime
) -> dict[str, Any]:
    """The ``tool_output_ready`` object, keys in the documented order (order is part of the signed bytes)."""
    return ToolOutputReady(
        event=TOOL_OUTPUT_READY,
        project_id=str(project_id),
        row_id=str(row_id),
        col_id=str(col_id),
        value=value_string(value),
        status=str(status),
        timestamp=kuration_timestamp(timestamp),
    ).model_dump()


TOOL_OUTPUT_READY_EVENT = EventType(
    name=TOOL_OUTPUT_READY,
    description="A tool column wrote a cell (002): its value as a string and its status.",
    data=ToolOutputReadyData,
    example={
        "project_id": "98e79cf8-87c9-49b0-9899-58edb6f31234",
        "row_id": "Jxl8KwcI6bAHH8wdQ123",
        "col_id": "466527f1-ef79-4cd6-bf03-c878681d1234",
        "value": "Technology",
        "status": "success",
    },
)


@dataclass(frozen=True)
class SignatureFormOption(EndpointOption):
    """``sha256`` (default) or ``hex``."""

    def check(self, value: Any) -> str:
        if value not in SIGNATURE_FORMS:
            raise ValueError(f"{self.field} must be one of: {', '.join(SIGNATURE_FORMS)}")
        return str(value)


@dataclass(frozen=True)
class ProjectsOption(EndpointOption):
    """A list of project ids, stored comma-separated."""

    def check(self, value: Any) -> str:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{self.field} must be a non-empty list of project ids")
        ids: list[str] = []
        for raw in value:
            project_id = raw.strip()
            if not project_id or len(project_id) > 100 or any(c in project_id for c in ", \r\n\0"):
                raise ValueError(f"{self.field}: {raw!r} is not a project id")
            if project_id not in ids:
                ids.append(project_id)
        if len(ids) > MAX_PROJECTS:
            raise ValueError(f"{self.field}: at most {MAX_PROJECTS} projects")
        return ",".join(ids)


class KurationProfile(WebhookProfile):
    """``X-Kuration-Signature: sha256=<hex>`` over the canonical-JSON body; 5 s timeout; default schedule."""

    name: ClassVar[str] = "kuration"
    events: ClassVar[frozenset[str] | None] = frozenset({TOOL_OUTPUT_READY})
    event_types: ClassVar[tuple[EventType, ...]] = (TOOL_OUTPUT_READY_EVENT,)
    timeout: ClassVar[float] = 5.0
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-kuration-signature"})
    endpoint_options: ClassVar[tuple[EndpointOption, ...]] = (
        SignatureFormOption(field="kuration_signature", key=SIGNATURE_FORM),
        ProjectsOption(field="kuration_projects", key=PROJECTS),
    )

    def payload_model(self, event: EventType) -> type[BaseModel]:
        """The flat ``002`` object."""
        return ToolOutputReady

    def accepts(self, event_type: str, data: Mapping[str, Any], options: Mapping[str, str]) -> bool:
        """With a project filter, only those projects' cells."""
        projects = options.get(PROJECTS)
        return not projects or str(data.get("project_id")) in projects.split(",")

    def option_out(self, options: Mapping[str, Any]) -> dict[str, Any]:
        projects = options.get(PROJECTS)
        return {
            "kuration_signature": options.get(SIGNATURE_FORM) or "sha256",
            "kuration_projects": projects.split(",") if projects else None,
        }

    def test_event(self, now: datetime) -> tuple[str, dict[str, Any]]:
        """A made-up cell's ``tool_output_ready``."""
        return TOOL_OUTPUT_READY, {
            "project_id": "00000000-0000-4000-8000-000000000000",
            "row_id": "TestRow0000000000000",
            "col_id": "00000000-0000-4000-8000-000000000001",
            "value": "test",
            "status": "success",
        }

    def envelope(self, event_type: str, data: Mapping[str, Any], *, occurred_at: datetime) -> dict[str, Any]:
        """The flat ``002`` object from a cell's project_id, row_id, col_id, value and status."""
        missing = [name for name in _FIELDS if name not in data]
        if missing:
            raise ValueError(f"kuration: event data lacks {missing}")
        return tool_output_ready_payload(
            project_id=data["project_id"],
            row_id=data["row_id"],
            col_id=data["col_id"],
            value=data["value"],
            status=data["status"],
            timestamp=occurred_at,
        )

    def vendor_headers(
        self,
        event_type: str,
        body: bytes,
        *,
        delivery_id: str,
        attempt_id: str,
        secret: str,
        options: Mapping[str, str],
    ) -> dict[str, str]:
        """``Content-Type``, ``User-Agent: Kuration-Webhook/1.0`` and ``X-Kuration-Signature``
        (``sha256=<hex>``, or the bare hex digest for an endpoint whose signature form is ``hex``)."""
        digest = hmac_sha256_hex(secret, body)
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Kuration-Signature": digest if options.get(SIGNATURE_FORM) == "hex" else "sha256=" + digest,
        }
