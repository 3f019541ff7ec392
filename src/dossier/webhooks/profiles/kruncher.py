"""``kruncher``: account webhooks of ``001`` (``analysisCompleted``, ``changedStatus``).

``001`` has receivers compare an ``x-kruncher-api-key`` header with their API key. Sending an account's API
key to a URL hands a credential to whoever controls that URL (or a proxy, or a log), and a key that can call
the whole API is far more than a receiver needs to authenticate a webhook. So deliveries are signed with HMAC
like the other profiles (``X-Kruncher-Signature``) and the API-key header is sent only when the endpoint
explicitly opts in, for receivers written against ``001`` that cannot be changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from dossier.webhooks.profiles.base import (
    USER_AGENT,
    EndpointOption,
    EventType,
    WebhookProfile,
    hmac_sha256_hex,
    iso_z,
)

ANALYSIS_COMPLETED = "analysisCompleted"
CHANGED_STATUS = "changedStatus"
#: Option carrying the API key to send in ``x-kruncher-api-key``; present only for opted-in endpoints.
API_KEY_OPTION = "api_key"


class AnalysisCompletedData(BaseModel):
    """``data`` of ``analysisCompleted`` (``001``)."""

    model_config = ConfigDict(extra="forbid")

    projectId: str
    analysisId: str
    projectName: str
    kruncherEntityCompanyId: str | None = Field(description="The resolved registry id, or null.")


class ChangedStatusData(BaseModel):
    """``data`` of ``changedStatus`` (``001``)."""

    model_config = ConfigDict(extra="forbid")

    projectId: str
    projectName: str
    previousStatus: str | None
    newStatus: str
    stage: str | None
    changedAt: str = Field(description="ISO 8601, UTC (Z).")


def analysis_completed_data(
    *, project_id: str, analysis_id: str, project_name: str, kruncher_entity_company_id: str | None
) -> dict[str, Any]:
    """``data`` of ``analysisCompleted``, in ``001``'s spelling."""
    return AnalysisCompletedData(
        projectId=str(project_id),
        analysisId=str(analysis_id),
        projectName=project_name,
        kruncherEntityCompanyId=kruncher_entity_company_id,
    ).model_dump()


def changed_status_data(
    *,
    project_id: str,
    project_name: str,
    previous_status: str | None,
    new_status: str,
    stage: str | None,
    changed_at: datetime,
) -> dict[str, Any]:
    """``data`` of ``changedStatus``, in ``001``'s spelling."""
    return ChangedStatusData(
        projectId=str(project_id),
        projectName=project_name,
        previousStatus=previous_status,
        newStatus=new_status,
        stage=stage,
        changedAt=iso_z(changed_at),
    ).model_dump()


KRUNCHER_EVENT_TYPES = (
    EventType(
        name=ANALYSIS_COMPLETED,
        description="An analysis of a tracked company finished (001).",
        data=AnalysisCompletedData,
        example={
            "projectId": "5d0c1b9e-0000-4000-8000-000000000000",
            "analysisId": "7a1e2f3d-0000-4000-8000-000000000000",
            "projectName": "Tesla Motors",
            "kruncherEntityCompanyId": "1234",
        },
    ),
    EventType(
        name=CHANGED_STATUS,
        description="A tracked company moved to another pipeline status or stage (001).",
        data=ChangedStatusData,
        example={
            "projectId": "5d0c1b9e-0000-4000-8000-000000000000",
            "projectName": "Tesla Motors",
            "previousStatus": "sourcing",
            "newStatus": "screening",
            "stage": "Series B",
            "changedAt": "2026-06-08T15:30:00Z",
        },
    ),
)


class KruncherProfile(WebhookProfile):
    """``{event, data}``, ``x-delivery-id``, ``X-Kruncher-Signature``; 30 s timeout; default schedule."""

    name: ClassVar[str] = "kruncher"
    events: ClassVar[frozenset[str] | None] = frozenset({ANALYSIS_COMPLETED, CHANGED_STATUS})
    event_types: ClassVar[tuple[EventType, ...]] = KRUNCHER_EVENT_TYPES
    timeout: ClassVar[float] = 30.0
    endpoint_options: ClassVar[tuple[EndpointOption, ...]] = (
        EndpointOption(field="kruncher_api_key", key=API_KEY_OPTION, secret=True),
    )
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-kruncher-signature", "x-kruncher-api-key"})

    def test_event(self, now: datetime) -> tuple[str, dict[str, Any]]:
        """An ``analysisCompleted`` of a made-up project."""
        return ANALYSIS_COMPLETED, analysis_completed_data(
            project_id="00000000-0000-4000-8000-000000000000",
            analysis_id="00000000-0000-4000-8000-000000000001",
            project_name="Test project",
            kruncher_entity_company_id=None,
        )

    def envelope(self, event_type: str, data: Mapping[str, Any], *, occurred_at: datetime) -> dict[str, Any]:
        """``{"event": ..., "data": {...}}``; build ``data`` with the helpers above."""
        return {"event": event_type, "data": dict(data)}

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
        """``x-delivery-id`` is the stable delivery id: ``001`` tells receivers to deduplicate on it."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "x-delivery-id": delivery_id,
            "X-Kruncher-Signature": "sha256=" + hmac_sha256_hex(secret, body),
        }
        api_key = options.get(API_KEY_OPTION)
        if api_key:
            headers["x-kruncher-api-key"] = api_key
        return headers
