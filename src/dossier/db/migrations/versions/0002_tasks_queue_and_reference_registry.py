"""tasks queue and reference registry

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:38:12.729714
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_entities",
        sa.Column("kernel_id", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column(
            "aliases",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("domain", sa.String(length=253), nullable=True),
        sa.Column("country", sa.String(length=100), nullable=True),
        sa.Column("country_code", sa.String(length=2), nullable=True),
        sa.Column("industry", sa.String(length=200), nullable=True),
        sa.Column("sector", sa.String(length=200), nullable=True),
        sa.Column("employee_count", sa.BigInteger(), nullable=True),
        sa.Column("revenue_amount", sa.Float(), nullable=True),
        sa.Column("revenue_currency", sa.String(length=3), nullable=True),
        sa.Column("revenue_year", sa.Integer(), nullable=True),
        sa.Column("hq_city", sa.String(length=200), nullable=True),
        sa.Column("hq_country", sa.String(length=100), nullable=True),
        sa.Column("founded_year", sa.Integer(), nullable=True),
        sa.Column("company_type", sa.String(length=100), nullable=True),
        sa.Column(
            "isins",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "extra",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kernel_id", name=op.f("pk_registry_entities")),
        sa.UniqueConstraint("source", "source_key", name="uq_registry_entities_source_key"),
    )
    with op.batch_alter_table("registry_entities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registry_entities_domain"), ["domain"], unique=False)

    op.create_table(
        "tasks",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "errors",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_due", ["status", "run_at"], unique=False)
        batch_op.create_index("ix_tasks_lease", ["status", "lease_expires_at"], unique=False)
        # At most one unfinished task per dedupe key (partial: a failed task does not hold its key).
        batch_op.create_index(
            "uq_tasks_dedupe_key",
            ["dedupe_key"],
            unique=True,
            postgresql_where=sa.text("status IN ('queued', 'running')"),
            sqlite_where=sa.text("status IN ('queued', 'running')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("uq_tasks_dedupe_key")
        batch_op.drop_index("ix_tasks_lease")
        batch_op.drop_index("ix_tasks_due")

    op.drop_table("tasks")
    with op.batch_alter_table("registry_entities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_entities_domain"))

    op.drop_table("registry_entities")
