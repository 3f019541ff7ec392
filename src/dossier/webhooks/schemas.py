"""Wire shapes of the webhook and Slack management API (``/api/enterprise/webhooks``, ``/integrations``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from dossier.webhooks.models import (
    SlackConnection,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from dossier.webhooks.profiles import PROFILES
from dossier.webhooks.profiles.kruncher import API_KEY_OPTION


def _hint(secret: str, keep: int = 10) -> str:
    """The first characters of a secret, enough to tell two apart, never enough to use one."""
    return secret[:keep] + "…"


class EndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://example.com/webhooks/dossier", "profile": "kuration"},
                {
                    "url": "https://example.com/hooks",
                    "profile": "standard",
                    "events": ["tool_output_ready", "webhook_endpoint.disabled"],
                    "description": "data warehouse loader",
                },
            ]
        },
    )

    url: str = Field(description="HTTPS URL that receives POSTs (checked against the outbound policy).")
    profile: str = Field(
        default="kuration",
        description="Wire format: kuration, kernel, kruncher or standard (docs/webhooks.md).",
    )
    events: list[str] | None = Field(
        default=None,
        description="Event types to receive; default: all the profile carries ('*' = any, standard only).",
    )
    description: str | None = Field(default=None, max_length=500, description="A note for humans.")
    kruncher_api_key: str | None = Field(
        default=None,
        description="kruncher profile only: send this value in `x-kruncher-api-key` (off unless given; "
        "deliveries are HMAC-signed either way, see docs/webhooks.md).",
    )
    kuration_signature: str | None = Field(
        default=None,
        description="kuration profile only: `sha256` (default: `X-Kuration-Signature: sha256=<hex>`, as 002 "
        "specifies) or `hex` (the bare digest the handler printed in 000 compares with).",
    )
    kuration_projects: list[str] | None = Field(
        default=None, description="kuration profile only: deliver only these projects' events."
    )
    headers: dict[str, str] | None = Field(
        default=None,
        description="Static headers sent with every delivery (never a signature, Standard Webhooks or HTTP "
        "header). Redacted in the delivery history.",
    )
    rate_limit: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        allow_inf_nan=False,
        description="At most this many requests per second to the endpoint, across every worker process.",
    )


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"events": ["tool_output_ready"]}, {"active": False}]},
    )

    url: str | None = Field(default=None, description="New URL (validated again).")
    events: list[str] | None = Field(default=None, description="New subscription list.")
    description: str | None = Field(default=None, max_length=500)
    active: StrictBool | None = Field(default=None, description="false pauses deliveries; true re-enables.")
    kruncher_api_key: str | None = Field(default=None, description="Set, or null to stop sending it.")
    kuration_signature: str | None = Field(default=None, description="`sha256` or `hex`; null: default.")
    kuration_projects: list[str] | None = Field(default=None, description="Project filter; null removes it.")
    headers: dict[str, str] | None = Field(
        default=None, description="Replace the static headers; null: none."
    )
    rate_limit: float | None = Field(
        default=None, gt=0, le=10_000, allow_inf_nan=False, description="Requests per second; null: no limit."
    )


def options_in(body: BaseModel) -> dict[str, Any]:
    """The profiles' endpoint options a request body sets, by their API names (null: remove)."""
    declared = {option.field for profile in PROFILES.values() for option in profile.endpoint_options}
    return {name: getattr(body, name) for name in body.model_fields_set & declared}


class EndpointOut(BaseModel):
    id: str
    url: str
    profile: str
    events: list[str]
    description: str | None
    active: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    last_delivery_at: datetime | None
    sends_kruncher_api_key: bool
    options: dict[str, Any] = Field(
        description="The profile's endpoint options (kuration_signature, kuration_projects, kruncher_api_key "
        "as a bool: whether it is set)."
    )
    headers: list[str] = Field(description="Names of the static headers sent (values are not shown).")
    rate_limit: float | None = Field(description="Requests per second at most; null: no limit.")
    listener: str | None = Field(description="The `dossier listen` session this endpoint streams to, if any.")
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The signing secret, shown in full only now (and on rotation).")


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(**_endpoint_fields(endpoint))


def endpoint_with_secret(endpoint: WebhookEndpoint, secret: str) -> EndpointWithSecret:
    return EndpointWithSecret(**_endpoint_fields(endpoint), secret=secret)


def _endpoint_fields(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "profile": endpoint.profile,
        "events": list(endpoint.events or []),
        "description": endpoint.description,
        "active": endpoint.active,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": endpoint.disabled_at,
        "failing_since": endpoint.failing_since,
        "last_delivery_at": endpoint.last_delivery_at,
        "sends_kruncher_api_key": bool((endpoint.options or {}).get(API_KEY_OPTION)),
        "options": PROFILES[endpoint.profile].option_out(endpoint.options or {})
        if endpoint.profile in PROFILES
        else {},
        "headers": sorted(endpoint.headers or {}),
        "rate_limit": endpoint.rate_limit,
        "listener": endpoint.listener,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


# A grace period is for a deployment to pick up the new secret, not for keeping the old one for ever.
MAX_GRACE_HOURS = 24 * 365


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"grace_hours": 24}, {}]})

    grace_hours: float | None = Field(
        default=None,
        ge=0,
        le=MAX_GRACE_HOURS,
        allow_inf_nan=False,
        description="Hours the old secret keeps signing `webhook-signature`, at most a year (default the "
        "DOSSIER_WEBHOOK_SECRET_GRACE_HOURS setting; 0 = revoke now).",
    )


class DeliveryOut(BaseModel):
    id: str = Field(description="Stable delivery id, sent as `webhook-id` on every attempt.")
    event_id: str
    event_type: str
    endpoint_id: str | None
    target_url: str | None
    profile: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The body sent (before serialisation).")


class AttemptOut(BaseModel):
    number: int
    attempt_id: str
    trigger: str = Field(description="scheduled or manual.")
    started_at: datetime
    url: str
    request_headers: dict[str, Any] = Field(description="Headers sent; signatures and API keys redacted.")
    response_status: int | None
    response_headers: dict[str, Any] | None
    response_body: str | None = Field(description="The first 2 KiB of the response body.")
    duration_ms: int
    error_class: str | None
    error_text: str | None
    outcome: str = Field(description="Success, Error Request (no response) or Error Response (not 2xx).")
    next_attempt_at: datetime | None


class DeliveryDetail(DeliveryOut):
    history: list[AttemptOut] = Field(description="Every attempt, oldest first.")


class Pagination(BaseModel):
    total: int
    limit: int
    offset: int


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    pagination: Pagination


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(**_delivery_fields(delivery))


def _delivery_fields(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "endpoint_id": delivery.endpoint_id,
        "target_url": delivery.target_url,
        "profile": delivery.profile,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_attempt_at": delivery.last_attempt_at,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
        "payload": delivery.payload,
    }


def delivery_detail(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryDetail:
    history = [
        AttemptOut(
            number=a.number,
            attempt_id=a.attempt_id,
            trigger=a.trigger,
            started_at=a.started_at,
            url=a.url,
            request_headers=a.request_headers,
            response_status=a.response_status,
            response_headers=a.response_headers,
            response_body=a.response_body,
            duration_ms=a.duration_ms,
            error_class=a.error_class,
            error_text=a.error_text,
            outcome=a.outcome,
            next_attempt_at=a.next_attempt_at,
        )
        for a in attempts
    ]
    return DeliveryDetail(**_delivery_fields(delivery), history=history)


class RecoverIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"since": "2026-01-01T00:00:00Z"}]}
    )

    since: datetime = Field(
        description="Redeliver failed deliveries created at or after this time (with zone)."
    )

    @field_validator("since")
    @classmethod
    def _representable(cls, value: datetime) -> datetime:
        # "0001-01-01T00:00:00+14:00" is a day before year 1 in UTC: no datetime can hold it.
        if value.tzinfo is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise ValueError("since is out of range (before 0001-01-01 UTC)") from None
        return value


class RecoverOut(BaseModel):
    recovered: int = Field(description="How many failed deliveries were queued again.")


class SlackConnect(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.slack.com/services/T000/B000/XXXX",
                    "notices": ["enrichment_finished", "endpoint_failing", "endpoint_disabled"],
                }
            ]
        },
    )

    url: str = Field(description="A Slack incoming-webhook URL.")
    notices: list[str] | None = Field(
        default=None,
        description="enrichment_finished, endpoint_failing, endpoint_disabled (default: all three).",
    )


class SlackNotices(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"notices": ["endpoint_disabled"]}]}
    )

    notices: list[str]


class SlackOut(BaseModel):
    url_hint: str = Field(
        description="The start of the incoming-webhook URL (the whole URL is a credential)."
    )
    notices: list[str]
    created_at: datetime
    updated_at: datetime


def slack_out(connection: SlackConnection) -> SlackOut:
    return SlackOut(
        url_hint=_hint(connection.url, 32),
        notices=list(connection.notices),
        created_at=connection.created_at,
        updated_at=connection.updated_at,
    )


class Deleted(BaseModel):
    message: str = "deleted"


# --- dossier listen -------------------------------------------------------------------------------------


class ListenIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "laptop:3000", "profile": "standard"}]},
    )

    name: str = Field(
        min_length=1,
        max_length=100,
        description="The listener's name: a CLI started again under the same name resumes its endpoint.",
    )
    profile: str = Field(default="standard", description="Wire profile of the deliveries.")
    events: list[str] | None = Field(
        default=None, description="Event types; default all the profile carries."
    )


class ListenOut(EndpointWithSecret):
    created: bool = Field(description="false when an existing listener of that name was resumed.")
    stream: str = Field(description="Path of the Server-Sent Events stream of deliveries.")
    answers: str = Field(description="Path the listener posts the local answers to.")


def listen_out(endpoint: WebhookEndpoint, secret: str, *, created: bool) -> ListenOut:
    base = f"/api/enterprise/webhooks/listen/{endpoint.id}"
    return ListenOut(
        **_endpoint_fields(endpoint),
        secret=secret,
        created=created,
        stream=base + "/stream",
        answers=base + "/answers",
    )


class ListenAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempt_id: str = Field(min_length=1, max_length=40)
    status: int | None = Field(default=None, ge=100, le=599, description="The local URL's status code.")
    headers: dict[str, str] | None = Field(default=None, description="Its response headers.")
    body: str | None = Field(default=None, max_length=65536, description="Its response body (kept: 2 KiB).")
    duration_ms: int | None = Field(default=None, ge=0, le=86_400_000)
    error: str | None = Field(
        default=None, max_length=2000, description="Why there is no status (the local URL was unreachable)."
    )


class Recorded(BaseModel):
    message: str = "recorded"


# --- the event catalogue --------------------------------------------------------------------------------


class RenderedEvent(BaseModel):
    profile: str
    schema_: dict[str, Any] = Field(
        alias="schema", description="JSON Schema of the body this profile sends for the event."
    )
    example: dict[str, Any] = Field(description="An example body.")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class EventTypeOut(BaseModel):
    type: str
    description: str
    data_schema: dict[str, Any] = Field(
        description="JSON Schema of the event's data (the `standard` `data`)."
    )
    profiles: list[RenderedEvent] = Field(description="Each profile an endpoint can receive it in.")
