"""registry state: the generation that versions the registry's index snapshots

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_state")),
    )
    # A token of its own from the start: a database created again at the same URL never shares a snapshot
    # name with the one before it.
    state = sa.table(
        "registry_state",
        sa.column("id", sa.Integer()),
        sa.column("generation", sa.BigInteger()),
        sa.column("token", sa.String()),
        sa.column("changed_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        state, [{"id": 1, "generation": 1, "token": uuid.uuid4().hex, "changed_at": datetime.now(UTC)}]
    )


def downgrade() -> None:
    op.drop_table("registry_state")
