from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dossier.db.base import Base, JSONType, utcnow


class RegistryEntity(Base):
    """A reference company. ``kernel_id`` is a numeric string derived from (source, source_key): stable."""

    __tablename__ = "registry_entities"
    __table_args__ = (UniqueConstraint("source", "source_key", name="uq_registry_entities_source_key"),)

    kernel_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    source_key: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    aliases: Mapped[list[str]] = mapped_column(JSONType, default=list)
    domain: Mapped[str | None] = mapped_column(String(253), index=True, default=None)
    country: Mapped[str | None] = mapped_column(String(100), default=None)
    country_code: Mapped[str | None] = mapped_column(String(2), default=None)
    industry: Mapped[str | None] = mapped_column(String(200), default=None)
    sector: Mapped[str | None] = mapped_column(String(200), default=None)
    employee_count: Mapped[int | None] = mapped_column(BigInteger, default=None)
    revenue_amount: Mapped[float | None] = mapped_column(Float, default=None)
    revenue_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    revenue_year: Mapped[int | None] = mapped_column(Integer, default=None)
    hq_city: Mapped[str | None] = mapped_column(String(200), default=None)
    hq_country: Mapped[str | None] = mapped_column(String(100), default=None)
    address: Mapped[str | None] = mapped_column(String(500), default=None)
    postal_code: Mapped[str | None] = mapped_column(String(20), default=None)
    # The kernel_id of the parent company; not a foreign key: a parent may be imported after its children.
    parent_kernel_id: Mapped[str | None] = mapped_column(String(20), default=None)
    founded_year: Mapped[int | None] = mapped_column(Integer, default=None)
    company_type: Mapped[str | None] = mapped_column(String(100), default=None)
    isins: Mapped[list[str]] = mapped_column(JSONType, default=list)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegistryState(Base):
    """One row (id 1): the registry's generation, changed by every write to ``registry_entities``.

    ``token`` is random per change, so an index snapshot named after it can never be mistaken for another
    database's (or a recreated database's) snapshot of the same generation number.
    """

    __tablename__ = "registry_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    token: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
