"""Wire shapes of the jobs API, spelled exactly as document 003 spells them (snake_case, `...Z` times)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator, model_serializer

from dossier.jobs.models import FAILED, Job
from dossier.jobs.service import ResolutionRequest
from dossier.webhooks.profiles.base import iso_z

# The same rendering as the kernel callbacks, so a polled job and its webhook agree to the byte.
IsoZ = Annotated[datetime, PlainSerializer(lambda d: iso_z(d), return_type=str)]

MAX_TEXT = 500
MAX_URL = 2048


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    return text or None


class ResolutionIn(BaseModel):
    """``POST /rest/v1/entity-resolution``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"legal_name": "Stripe", "webhook_url": "https://example.com/webhooks/kernel"}]
        },
    )

    legal_name: str = Field(min_length=1, max_length=MAX_TEXT, description="The company's name, as written.")
    website: str | None = Field(default=None, max_length=MAX_TEXT, description="Website, domain or e-mail.")
    country: str | None = Field(default=None, max_length=MAX_TEXT, description="Country name or ISO code.")
    city: str | None = Field(
        default=None, max_length=MAX_TEXT, description="City: tells same-named organisations apart."
    )
    postal_code: str | None = Field(default=None, max_length=40, description="Postal code.")
    address: str | None = Field(default=None, max_length=MAX_TEXT, description="Street address.")
    webhook_url: str | None = Field(
        default=None, max_length=MAX_URL, description="HTTPS URL that receives the job's callback."
    )

    @field_validator("legal_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("legal_name must not be blank")
        return value.strip()

    @field_validator("website", "country", "city", "postal_code", "address", "webhook_url")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return _clean(value)

    def request(self, default_webhook_url: str | None = None) -> ResolutionRequest:
        return ResolutionRequest(
            legal_name=self.legal_name,
            website=self.website,
            country=self.country,
            city=self.city,
            postal_code=self.postal_code,
            address=self.address,
            webhook_url=self.webhook_url or default_webhook_url,
        )


# The most inputs of one batch (the DOSSIER_JOBS_MAX_BATCH setting may lower it).
MAX_BATCH = 1000


class ResolutionBatchIn(BaseModel):
    """``POST /rest/v1/entity-resolution/batch``: up to 1,000 inputs, one job each."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "inputs": [
                        {"legal_name": "Stripe"},
                        {"legal_name": "Micron Technology", "country": "US"},
                    ],
                    "webhook_url": "https://example.com/webhooks/kernel",
                }
            ]
        },
    )

    inputs: list[ResolutionIn] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="1 to 1,000 companies to resolve (DOSSIER_JOBS_MAX_BATCH may lower it); the answer keeps "
        "this order.",
    )
    webhook_url: str | None = Field(
        default=None, max_length=MAX_URL, description="Callback URL of every input that names none itself."
    )

    @field_validator("webhook_url")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return _clean(value)


class FirmographicsIn(BaseModel):
    """``POST /rest/v1/firmographics``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kernel_id": "6347422643", "webhook_url": "https://example.com/webhooks/kernel"}]
        },
    )

    kernel_id: str = Field(
        min_length=1, max_length=40, description="A kernel_id, as an entity-resolution record gives it."
    )
    webhook_url: str | None = Field(default=None, max_length=MAX_URL)

    @field_validator("kernel_id", mode="before")
    @classmethod
    def _kernel_id(cls, value: Any) -> Any:
        # JSON clients often send the id as a number; it is the same id.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value.strip() if isinstance(value, str) else value

    @field_validator("webhook_url")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return _clean(value)


class JobOut(BaseModel):
    """003's job: ``{id, status, created_at, completed_at, record}``; a failed job adds ``reason``."""

    id: str
    status: Literal["pending", "running", "completed", "failed"]
    created_at: IsoZ
    completed_at: IsoZ | None
    record: dict[str, Any] | None = Field(description="The result; null until completed, and when failed.")
    reason: str | None = Field(default=None, description="Why the job failed (present only when failed).")
    candidates: list[dict[str, Any]] | None = Field(
        default=None,
        description=(
            "An entity-resolution job that failed because nothing matched confidently: the registry records "
            "that came closest, each with its score and the features that agreed or disagreed (present only "
            "then; a completed job has them in `record.candidates`)."
        ),
    )

    # No return annotation on purpose: with one, the OpenAPI document would describe a job as "an object";
    # without, it shows the fields (this serializer only drops the absent optional ones).
    @model_serializer(mode="wrap")
    def _drop_reason(self, handler: Any):  # type: ignore[no-untyped-def]
        data: dict[str, Any] = handler(self)
        if self.status != FAILED:
            data.pop("reason", None)
        if self.candidates is None:
            data.pop("candidates", None)
        return data


class JobsOut(BaseModel):
    """The batch answer: one job per input, in the order of ``inputs``."""

    jobs: list[JobOut]


def job_out(job: Job) -> JobOut:
    failed = job.status == FAILED
    # A failed resolution keeps its candidates in ``record``; 003 shows a failed job's record as null.
    candidates = job.record.get("candidates") if failed and isinstance(job.record, dict) else None
    return JobOut(
        id=job.id,
        status=job.status,
        created_at=job.created_at,
        completed_at=job.completed_at,
        record=job.record if not failed else None,
        reason=job.reason if failed else None,
        candidates=candidates if isinstance(candidates, list) else None,
    )
