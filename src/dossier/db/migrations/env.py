"""Alembic environment: always run with a connection handed in by ``dossier.db.migrate``."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from dossier.db.base import UTCDateTime
from dossier.db.migrations.models import metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Write our column types as plain SQLAlchemy types, so migrations do not import application code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `dossier migrate` (dossier.db.migrate.upgrade_to_head)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
