"""``kernel``: job callbacks of ``003`` (entity resolution and firmographic enrichment).

``X-Kernel-Delivery`` is unique per attempt, exactly as documented, so receivers cannot deduplicate on it;
the ``webhook-id`` header every profile carries is the stable id. Exactly 3 attempts: now, +30 s, +2 min.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from dossier.webhooks.profiles.base import (
    USER_AGENT,
    EventType,
    WebhookProfile,
    hmac_sha256_hex,
    iso_z,
    literal,
)
from dossier.webhooks.retry import RetrySchedule

KERNEL_EVENTS = frozenset(
    {
        "entity-resolution.completed",
        "entity-resolution.failed",
        "firmographic-enrichment.completed",
        "firmographic-enrichment.failed",
    }
)
_DATA_FIELDS = ("id", "status", "created_at", "completed_at", "record")

#: ``003``: 3 attempts, immediately, +30 s, +2 min; then the delivery is permanently failed.
KERNEL_SCHEDULE = RetrySchedule(delays=(30.0, 120.0))


def _when(value: datetime | str | None) -> str | None:
    return iso_z(value) if isinstance(value, datetime) else value


def kernel_job_data(
    *,
    job_id: str,
    status: str,
    created_at: datetime | str,
    completed_at: datetime | str | None,
    record: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ``data`` object of a job callback; ``record`` is None for a failed job (``003``)."""
    if status not in ("completed", "failed"):
        raise ValueError("kernel job status is 'completed' or 'failed'")
    return KernelJobData(
        id=str(job_id),
        status=status,
        created_at=_when(created_at),
        completed_at=_when(completed_at),
        record=None if status == "failed" or record is None else dict(record),
    ).model_dump()


class KernelJobData(BaseModel):
    """The ``data`` of a job callback (``003``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The job id.")
    status: Literal["completed", "failed"]
    created_at: str | None = Field(description="ISO 8601, UTC (Z).")
    completed_at: str | None = Field(description="ISO 8601, UTC (Z).")
    record: dict[str, Any] | None = Field(
        description="The job's result (the resolved entity or its firmographics); null for a failed job."
    )


_DESCRIPTIONS = {
    "entity-resolution.completed": "An entity-resolution job (003) finished; `record` is its match.",
    "entity-resolution.failed": "An entity-resolution job (003) failed; `record` is null.",
    "firmographic-enrichment.completed": "A firmographics job (003) finished; `record` is its result.",
    "firmographic-enrichment.failed": "A firmographics job (003) failed; `record` is null.",
}


def _example(event: str) -> dict[str, Any]:
    status = event.rsplit(".", 1)[-1]
    record = {"kernel_id": 1234, "legal_name": "MICRON TECHNOLOGY INC", "country": "US"}
    return kernel_job_data(
        job_id="3f2b9c1e-0000-4000-8000-000000000000",
        status=status,
        created_at="2026-06-08T15:30:00Z",
        completed_at="2026-06-08T15:30:02Z",
        record=record if status == "completed" else None,
    )


KERNEL_EVENT_TYPES = tuple(
    EventType(name=name, description=_DESCRIPTIONS[name], data=KernelJobData, example=_example(name))
    for name in sorted(KERNEL_EVENTS)
)


class KernelProfile(WebhookProfile):
    """``X-Kernel-Signature`` (HMAC of the raw body), ``X-Kernel-Event``, ``X-Kernel-Delivery``; 5 s."""

    name: ClassVar[str] = "kernel"
    events: ClassVar[frozenset[str] | None] = KERNEL_EVENTS
    event_types: ClassVar[tuple[EventType, ...]] = KERNEL_EVENT_TYPES
    timeout: ClassVar[float] = 5.0
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-kernel-signature"})
    default_schedule: ClassVar[RetrySchedule] = KERNEL_SCHEDULE
    # 003's jobs call back their own webhook_url in this profile.
    serves_one_off_urls: ClassVar[bool] = True
    # 003 documents the schedule: the retry setting does not replace it.
    schedule_configurable: ClassVar[bool] = False

    def test_event(self, now: datetime) -> tuple[str, dict[str, Any]]:
        """A completed entity-resolution job."""
        return "entity-resolution.completed", kernel_job_data(
            job_id="00000000-0000-4000-8000-000000000000",
            status="completed",
            created_at=now,
            completed_at=now,
            record={"test": True},
        )

    def payload_model(self, event: EventType) -> type[BaseModel]:
        """``{event, timestamp, data}``."""
        return create_model(
            "Kernel" + "".join(part.capitalize() for part in event.name.replace("-", ".").split(".")),
            __config__=ConfigDict(extra="forbid"),
            event=(literal(event.name), ...),
            timestamp=(str, Field(description="ISO 8601, UTC (Z).")),
            data=(KernelJobData, ...),
        )

    def envelope(self, event_type: str, data: Mapping[str, Any], *, occurred_at: datetime) -> dict[str, Any]:
        """``{event, timestamp, data: {id, status, created_at, completed_at, record}}``.

        Build ``data`` with :func:`kernel_job_data`.
        """
        missing = [name for name in _DATA_FIELDS if name not in data]
        if missing:
            raise ValueError(f"kernel: event data lacks {missing}")
        expected = event_type.rsplit(".", 1)[-1]
        if data["status"] != expected:
            raise ValueError(f"kernel: {event_type} needs status {expected!r}, not {data['status']!r}")
        return {
            "event": event_type,
            "timestamp": iso_z(occurred_at),
            "data": {name: data[name] for name in _DATA_FIELDS},
        }

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
        """``003``'s headers; ``X-Kernel-Delivery`` is the attempt id (unique per attempt, as documented)."""
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Kernel-Signature": "sha256=" + hmac_sha256_hex(secret, body),
            "X-Kernel-Event": event_type,
            "X-Kernel-Delivery": attempt_id,
        }
