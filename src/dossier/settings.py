"""One typed settings object for the whole process (environment prefix ``DOSSIER_``)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting Dossier reads. Each one is documented in ``docs/configuration.md``."""

    model_config = SettingsConfigDict(env_prefix="DOSSIER_", env_file=None, extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./dossier.db",
        description="Database URL: sqlite:///path or postgresql://user:password@host/db (the forms hosting "
        "platforms hand out, postgres:// included, are accepted; Dossier picks its async driver).",
    )
    host: str = Field(default="127.0.0.1", description="Interface `dossier serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `dossier serve` listens on.")
    public_url: str | None = Field(
        default=None, description="Base URL printed and used in links; defaults to http://HOST:PORT."
    )
    auto_migrate: bool = Field(default=True, description="Apply pending migrations when serve/worker start.")
    db_pool_size: int = Field(default=10, ge=1, description="Connections kept per process (PostgreSQL).")
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0, description="SQLite busy timeout.")
    sqlite_read_connections: int = Field(
        default=4,
        ge=0,
        le=64,
        description="SQLite: connections per API process for GET requests, beside the one writing connection "
        "(0: reads share it).",
    )
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="Largest request body accepted; larger gets 413."
    )
    max_batch_rows: int = Field(
        default=1000, ge=1, le=1000, description="Most companies in one rows/batch request (at most 1,000)."
    )
    max_columns: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Most columns one project may have (creating or adding past it is a 422).",
    )
    max_value_chars: int = Field(default=65_536, ge=1, description="Longest text value of one input cell.")
    log_level: str = Field(default="INFO", description="Root log level.")
    log_json: bool = Field(
        default=False,
        description="One JSON object per log line (for log collectors); false: readable lines with the "
        "same fields as key=value.",
    )
    tool_chunk_rows: int = Field(
        default=100, ge=1, le=1000, description="Rows per queued tool-cell task (one task per column chunk)."
    )
    # List building (docs/list-building.md).
    list_foreground_max: int = Field(
        default=1000,
        ge=0,
        description="Largest list added before answering; larger ones run in the background.",
    )
    list_batch_rows: int = Field(
        default=1000, ge=1, le=10_000, description="Companies a background list adds per transaction."
    )
    list_max_companies: int = Field(
        default=250_000, ge=1, description="Most companies one list may add; more is a 422 (narrow filters)."
    )
    tool_concurrency: int = Field(default=16, ge=1, description="Cells of one chunk computed at once.")
    tool_timeout_seconds: float = Field(default=30.0, gt=0, description="Longest one tool run may take.")
    outbound_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts and CIDRs outbound requests may reach even if private/loopback (comma-separated).",
    )
    # Outbound HTTP (docs/outbound-http.md): the policy of dossier.net for webhooks and fetching tools.
    outbound_allow_http: bool = Field(
        default=False,
        description="Allow plain http to any host; otherwise http only to hosts in DOSSIER_OUTBOUND_ALLOW.",
    )
    outbound_timeout: float = Field(
        default=10.0, gt=0, description="Default seconds for a whole outbound request (DNS to last byte)."
    )
    outbound_connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to resolve the host and open a connection."
    )
    outbound_max_response_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1, description="Default cap on the response body bytes read."
    )
    outbound_max_redirects: int = Field(
        default=5, ge=0, description="Most redirects followed by tools (webhooks never follow redirects)."
    )
    outbound_max_connections: int = Field(
        default=200, ge=1, description="Open outbound connections per process, all hosts together."
    )
    outbound_max_connections_per_host: int = Field(
        default=50, ge=0, description="Open outbound connections per process to one host:port (0 = no limit)."
    )
    outbound_user_agent: str = Field(
        default="Dossier/0.1", description="User-Agent of outbound requests that do not set their own."
    )
    outbound_ca_file: str | None = Field(
        default=None,
        description="PEM file of extra CA certificates trusted for outbound https (private CAs).",
    )

    # Work queue (docs/configuration.md, "Work queue"). Every duration is a float so tests can compress time.
    worker_concurrency: int = Field(
        default=8, ge=1, description="Tasks one worker process runs at once (`dossier worker --concurrency`)."
    )
    worker_batch_size: int = Field(default=20, ge=1, description="Most tasks claimed by one claim statement.")
    worker_poll_interval: float = Field(
        default=2.0,
        gt=0,
        description="Seconds an idle worker waits before looking for due tasks again when nothing woke it.",
    )
    worker_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a claimed task stays reserved without a heartbeat; after that another worker "
        "may run it again (its worker is presumed dead).",
    )
    worker_heartbeat_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between lease renewals of the tasks in hand (capped at a third of the lease).",
    )
    worker_shutdown_grace: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, seconds in-flight tasks get to finish before going back to the queue.",
    )
    task_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra Python modules workers import to register task handlers (comma-separated).",
    )

    # Retention (docs/operations.md, "Retention"): days each kind of finished data is kept; 0 keeps it.
    retention_delivered_days: float = Field(
        default=30.0, ge=0, description="Days succeeded webhook deliveries (and their attempts) are kept."
    )
    retention_failed_days: float = Field(
        default=90.0, ge=0, description="Days failed webhook deliveries (and their attempts) are kept."
    )
    retention_events_days: float = Field(
        default=30.0,
        ge=0,
        description="Days a webhook event is kept once it has no delivery left (none subscribed, or its "
        "deliveries were pruned). Events with deliveries stay as long as those do.",
    )
    retention_jobs_days: float = Field(
        default=30.0, ge=0, description="Days finished (completed or failed) /rest/v1 jobs are kept."
    )
    retention_analyses_days: float = Field(
        default=90.0, ge=0, description="Days finished (completed or failed) pipeline analyses are kept."
    )
    retention_failed_tasks_days: float = Field(
        default=30.0, ge=0, description="Days failed queue tasks (kept for `dossier queue retry`) are kept."
    )
    retention_interval: float = Field(
        default=3600.0, gt=0, description="Seconds between two runs of the cluster's one retention task."
    )
    retention_batch_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Rows (deliveries with their attempts, events, jobs, ...) deleted per transaction.",
    )
    retention_batch_pause: float = Field(
        default=0.05,
        ge=0,
        description="Seconds the retention task waits between two batches, so live traffic is never queued "
        "behind it (SQLite has one writer).",
    )

    # Secrets at rest (docs/operations.md, "Secrets at rest").
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that encrypts webhook secrets and endpoint credentials at rest (`dossier secrets "
        "generate-key`); comma-separated during a rotation: the first encrypts, all decrypt. Required "
        "with PostgreSQL; on SQLite a key file beside the database is made when unset.",
    )

    # Operations (docs/operations.md): probes.
    readyz_worker_max_age: float = Field(
        default=60.0,
        gt=0,
        description="/readyz needs a worker heartbeat seen within this many seconds (workers beat every "
        "DOSSIER_WORKER_HEARTBEAT_INTERVAL).",
    )
    otel_enabled: bool = Field(
        default=False,
        description="Export OpenTelemetry traces (needs `pip install 'dossier[otel]'`; the exporter is "
        "configured by the standard OTEL_* variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT).",
    )
    readyz_require_worker: bool = Field(
        default=True,
        description="Whether /readyz fails when no worker is alive (false for an API tier whose readiness "
        "should not depend on the workers).",
    )

    # Registry and matching (docs/configuration.md, "Registry and matching").
    registry_builtin: bool = Field(
        default=True,
        description="Build the default registry (listed companies from pytickersymbols) on first use. "
        "False: entity resolution matches only the companies this deployment imported.",
    )
    registry_match_threshold: float = Field(
        default=0.86,
        ge=0.5,
        le=1.0,
        description="Lowest confidence entity_resolution returns; below it the cell is skipped. "
        "Higher: fewer but surer matches.",
    )
    registry_match_margin: float = Field(
        default=0.05,
        ge=0.0,
        le=0.5,
        description="Lead the best record needs over every other record; within it the one whose whole name "
        "equals the query's wins, else nothing is returned.",
    )

    registry_match_processes: int | None = Field(
        default=None,
        ge=0,
        le=32,
        description="Processes that resolve entity_resolution's chunks of cells beside each worker, so that "
        "matching never holds the event loop the API and the webhook deliveries share (default: one less "
        "than the CPUs, at most 4; 0: match in the worker's own process).",
    )
    registry_index_dir: Path | None = Field(
        default=None,
        description="Directory of the registry's index snapshots, shared by every process on the host "
        "(default: ~/.cache/dossier/registry-index). Safe to delete: a missing snapshot is rebuilt.",
    )
    registry_index_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Processes that normalise names while a registry index snapshot of 20,000 organisations "
        "or more is built (0: one per CPU; 1: only the building process).",
    )

    # Webhooks (docs/configuration.md, "Webhooks").
    webhook_concurrency: int = Field(
        default=64,
        ge=1,
        description="Webhook HTTP attempts one worker process has in flight at once, over all endpoints.",
    )
    webhook_endpoint_concurrency: int = Field(
        default=8,
        ge=1,
        description="Attempts in flight to one endpoint, in the whole cluster (its one sweep task holds "
        "them).",
    )
    webhook_retry_schedule: str | None = Field(
        default=None,
        description="Replaces the default retry schedule (profiles whose document gives none), e.g. "
        "'5s,5m,30m,2h,5h,10h,10h'. The kernel profile keeps its documented 3 attempts.",
    )
    webhook_time_scale: float = Field(
        default=1.0,
        gt=0,
        description="Multiplies every webhook retry delay and Retry-After wait (tests compress time: 0.001).",
    )
    webhook_secret_grace_hours: float = Field(
        default=24.0,
        ge=0,
        description="After a secret rotation, hours the old secret still signs the Standard Webhooks header "
        "(0 = revoked at once).",
    )
    webhook_disable_after_days: float = Field(
        default=5.0,
        gt=0,
        description="An endpoint whose attempts have failed continuously for this many days is disabled.",
    )
    webhook_listen_poll_interval: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="Seconds between the looks a `dossier listen` stream, and an attempt waiting for the "
        "listener's answer, take at the database.",
    )
    webhook_listen_stale_seconds: float = Field(
        default=5.0,
        gt=0,
        description="A `dossier listen` stream not seen for this long is gone: attempts to its endpoint fail "
        "at once (Error Request) and retry on the schedule until it is back.",
    )

    # Idempotency-Key (docs/configuration.md, "API").
    idempotency_key_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="Hours an Idempotency-Key is remembered: a repeat within them gets the first answer.",
    )

    # Jobs and pipeline (docs/configuration.md, "Jobs and pipeline").
    jobs_max_batch: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Most inputs in one POST /rest/v1/entity-resolution/batch (at most 1,000).",
    )
    jobs_chunk: int = Field(
        default=50, ge=1, le=1000, description="Jobs of one request run by one queued task."
    )
    pipeline_statuses: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["sourcing", "screening", "diligence", "ic_review", "invested", "passed"],
        description="The ordered pipeline statuses of tracked companies (comma-separated); the first is the "
        "default of a new company.",
    )

    # The dashboard (docs/dashboard.md).
    session_secret: str | None = Field(
        default=None,
        min_length=32,
        description="Key that signs dashboard session cookies (32+ characters). Unset: a random key per "
        "process, so sessions end when it restarts; set it when several server processes share the load.",
    )
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="Hours a dashboard session lasts after sign-in."
    )
    dashboard_page_size: int = Field(
        default=50, ge=1, le=200, description="Rows per page of a project's table in the dashboard."
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return async_database_url(value)

    @field_validator("outbound_allow", "task_modules", "pipeline_statuses", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _check_outbound_allow(cls, value: list[str]) -> list[str]:
        # Parsed by the policy itself (one parser), so a bad entry stops the process at start.
        from dossier.net import OutboundPolicy

        OutboundPolicy(allow=tuple(value))
        return value

    @field_validator("pipeline_statuses")
    @classmethod
    def _check_statuses(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one pipeline status is required")
        if len(set(value)) != len(value):
            raise ValueError("pipeline statuses must be distinct")
        if any(len(status) > 64 for status in value):
            raise ValueError("a pipeline status is at most 64 characters")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


# Drivers Dossier runs on, by database; a URL naming another driver of the same database is moved to it.
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql", "pgsql": "postgresql"}


def async_database_url(url: str) -> str:
    """``sqlite:///x.db`` -> ``sqlite+aiosqlite:///x.db``; ``postgres://...`` and ``postgresql+psycopg2://...``
    -> ``postgresql+asyncpg://...`` (with ``sslmode=`` read as asyncpg's ``ssl=``). ValueError names what is
    wrong with a URL Dossier cannot use."""
    text = url.strip()
    scheme, separator, rest = text.partition("://")
    if not separator:
        raise ValueError(f"{text[:60]!r} is not a database URL (expected sqlite:///path or postgresql://...)")
    database = _SCHEMES.get(scheme.split("+", 1)[0].lower())
    if database is None:
        raise ValueError(f"database {scheme.split('+', 1)[0]!r} is not supported: use SQLite or PostgreSQL")
    if database == "postgresql":
        # asyncpg spells libpq's sslmode "ssl" (same values).
        rest = re.sub(r"([?&])sslmode=", r"\1ssl=", rest)
    return f"{_ASYNC_DRIVERS[database]}://{rest}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
