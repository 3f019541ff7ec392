"""Wire shapes of the pipeline and integration API, spelled exactly as document 001 spells them
(camelCase, `{success, data}` envelopes, `...Z` times)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictBool

from dossier.pipeline.models import Analysis, TrackedCompany
from dossier.pipeline.service import Integration
from dossier.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from dossier.webhooks.profiles.base import iso_z
from dossier.webhooks.profiles.kruncher import ANALYSIS_COMPLETED, API_KEY_OPTION, CHANGED_STATUS

IsoZ = Annotated[datetime, PlainSerializer(lambda d: iso_z(d), return_type=str)]


class _In(BaseModel):
    # Unknown fields are refused: a misspelt field silently ignored is a bug the caller never sees.
    model_config = ConfigDict(extra="forbid")


class CompanyIn(_In):
    """``POST /api/company``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "Tesla Motors", "website": "https://tesla.com", "stage": "Series B"}]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    website: str | None = Field(default=None, max_length=500)
    status: str | None = Field(
        default=None, description="One of the configured statuses (default: the first)."
    )
    stage: str | None = Field(default=None, max_length=100, description="Investment stage, free text.")


class StatusIn(_In):
    """``PUT /api/company/status``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "projectId": "521a93a6-091d-4943-ba13-7c1a654a14ae",
                    "status": "diligence",
                    "stage": "Series B",
                }
            ]
        },
    )

    projectId: str = Field(min_length=1, max_length=100)
    status: str = Field(min_length=1, max_length=64)
    stage: str | None = Field(default=None, max_length=100, description='Omit to keep; "" clears it.')


class AnalysisIn(_In):
    """``POST /api/analysis``."""

    projectId: str = Field(min_length=1, max_length=100)


class WebhookConfigIn(_In):
    """``POST``/``PUT /api/integration/webhook`` (001's request body)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://your-server.com/webhooks/kruncher",
                    "analysisCompleted": True,
                    "changedStatus": True,
                }
            ]
        },
    )

    url: str = Field(min_length=1, max_length=2048)
    # Strict: "yes" or 1 is a 422, not true.
    analysisCompleted: StrictBool = False
    changedStatus: StrictBool = False
    sendApiKey: StrictBool | None = Field(
        default=None,
        description="Opt in to `x-kruncher-api-key` (001's verification example): deliveries then carry the "
        "API key this request was made with. Off by default (a key sent to a URL is a credential leak; "
        "deliveries are HMAC-signed either way). false stops it; omitted keeps the current choice.",
    )


class Company(BaseModel):
    id: str
    name: str
    website: str | None
    status: str
    stage: str | None
    createdAt: IsoZ
    updatedAt: IsoZ


class AnalysisOut(BaseModel):
    id: str
    projectId: str
    projectName: str
    status: Literal["pending", "running", "completed", "failed"]
    kruncherEntityCompanyId: str | None
    report: dict[str, Any] | None = Field(
        description="Profile, missing fields, completeness, per-tool sources."
    )
    createdAt: IsoZ
    completedAt: IsoZ | None


class WebhookConfig(BaseModel):
    id: str
    url: str
    analysisCompleted: bool
    changedStatus: bool
    isActive: bool
    createdAt: IsoZ
    updatedAt: IsoZ
    lastDelivery: IsoZ | None
    sendsApiKey: bool = Field(description="Whether deliveries carry `x-kruncher-api-key`.")


class WebhookConfigCreated(WebhookConfig):
    signingSecret: str | None = Field(
        default=None,
        description="Key of the X-Kruncher-Signature HMAC; only in the answer that created the webhook.",
    )


class HistoryEntry(BaseModel):
    id: str = Field(description="The attempt's id (unique per attempt).")
    deliveryId: str = Field(
        description="The delivery's id: the `x-delivery-id` header, stable across retries."
    )
    attempt: int
    event: str
    status: Literal["Success", "Error Request", "Error Response"]
    statusDescription: str | None
    payload: dict[str, Any]
    httpStatus: int | None
    createdAt: IsoZ
    deliveredAt: IsoZ


class Pagination(BaseModel):
    total: int
    limit: int
    offset: int


class CompanyEnvelope(BaseModel):
    success: bool = True
    data: Company


class AnalysisEnvelope(BaseModel):
    success: bool = True
    data: AnalysisOut


class WebhookEnvelope(BaseModel):
    success: bool = True
    data: WebhookConfigCreated


class HistoryEnvelope(BaseModel):
    success: bool = True
    data: list[HistoryEntry]
    pagination: Pagination


class StatusesEnvelope(BaseModel):
    success: bool = True
    data: list[str]


def company(row: TrackedCompany) -> CompanyEnvelope:
    return CompanyEnvelope(
        data=Company(
            id=row.id,
            name=row.name,
            website=row.website,
            status=row.status,
            stage=row.stage,
            createdAt=row.created_at,
            updatedAt=row.updated_at,
        )
    )


def analysis(row: Analysis, of: TrackedCompany) -> AnalysisEnvelope:
    return AnalysisEnvelope(
        data=AnalysisOut(
            id=row.id,
            projectId=of.id,
            projectName=of.name,
            status=row.status,
            kruncherEntityCompanyId=row.kernel_id,
            report=row.report,
            createdAt=row.created_at,
            completedAt=row.completed_at,
        )
    )


def webhook(endpoint: WebhookEndpoint, secret: str | None = None) -> WebhookEnvelope:
    events = endpoint.events or []
    return WebhookEnvelope(
        data=WebhookConfigCreated(
            id=endpoint.id,
            url=endpoint.url,
            analysisCompleted=ANALYSIS_COMPLETED in events or "*" in events,
            changedStatus=CHANGED_STATUS in events or "*" in events,
            isActive=endpoint.active,
            createdAt=endpoint.created_at,
            updatedAt=endpoint.updated_at,
            lastDelivery=endpoint.last_delivery_at,
            sendsApiKey=bool((endpoint.options or {}).get(API_KEY_OPTION)),
            signingSecret=secret,
        )
    )


def integration(result: Integration) -> WebhookEnvelope:
    return webhook(result.endpoint, result.secret)


def history(
    rows: list[tuple[WebhookAttempt, WebhookDelivery]], total: int, limit: int, offset: int
) -> HistoryEnvelope:
    entries = []
    for attempt, delivery in rows:
        body = delivery.payload or {}
        # 001 shows the event's data as `payload` (the envelope's `event` is already the `event` field).
        data = body.get("data") if isinstance(body.get("data"), dict) else body
        entries.append(
            HistoryEntry(
                id=attempt.attempt_id,
                deliveryId=delivery.id,
                attempt=attempt.number,
                event=delivery.event_type,
                status=attempt.outcome,
                statusDescription=attempt.error_text,
                payload=data,
                httpStatus=attempt.response_status,
                createdAt=delivery.created_at,
                deliveredAt=attempt.started_at,
            )
        )
    return HistoryEnvelope(data=entries, pagination=Pagination(total=total, limit=limit, offset=offset))
