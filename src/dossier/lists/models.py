from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from dossier.db.base import Base, JSONType, new_uuid, utcnow
from dossier.enrichment.registry.models import RegistryEntity

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
ACTIVE_STATUSES = (QUEUED, RUNNING)


class ListBuild(Base):
    """One request to add the registry companies that fit a spec (filters or kernel_ids) to a project."""

    __tablename__ = "list_builds"
    __table_args__ = (Index("ix_list_builds_project_spec", "project_id", "spec_hash"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # The normalised filters, kernel_ids and column mapping; spec_hash identifies a repeat of a request.
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    spec_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    # Companies a required column of the project has no value for (no website for a required website).
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    # Keyset position of the background build: the last kernel_id handled.
    after_kernel_id: Mapped[str] = mapped_column(String(20), default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ProjectCompany(Base):
    """A registry company that is in a project, with its row: what makes list building skip it."""

    __tablename__ = "project_companies"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    kernel_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    row_pk: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("rows.pk", ondelete="CASCADE"), index=True
    )


# Indexes on the registry for the search filters (migrations 0014 and 0015; on SQLite 0015 also adds the FTS5
# trigram index of names and aliases, ``registry_names_fts``, with its triggers). They belong to the registry
# table and are declared here, beside the search that needs them, so the registry's own module stays as it is.
REGISTRY_SEARCH_INDEXES = (
    # The filters' most common seek first, then the other filters' columns and kernel_id: a count, and a
    # page's kernel_ids on PostgreSQL, are read from the index alone.
    Index(
        "ix_registry_entities_country_filters",
        RegistryEntity.country_code,
        RegistryEntity.industry,
        RegistryEntity.employee_count,
        RegistryEntity.company_type,
        RegistryEntity.founded_year,
        RegistryEntity.domain,
        RegistryEntity.kernel_id,
    ),
    Index("ix_registry_entities_industry_employees", RegistryEntity.industry, RegistryEntity.employee_count),
    Index("ix_registry_entities_sector_country", RegistryEntity.sector, RegistryEntity.country_code),
    Index("ix_registry_entities_name", RegistryEntity.name),
    Index(
        "ix_registry_entities_employees_founded", RegistryEntity.employee_count, RegistryEntity.founded_year
    ),
    Index("ix_registry_entities_founded_year", RegistryEntity.founded_year),
    Index("ix_registry_entities_company_type", RegistryEntity.company_type),
    Index("ix_registry_entities_hq_city_lower", func.lower(RegistryEntity.hq_city)),
    Index("ix_registry_entities_parent_kernel_id", RegistryEntity.parent_kernel_id),
    Index("ix_registry_entities_revenue", RegistryEntity.revenue_currency, RegistryEntity.revenue_amount),
)
