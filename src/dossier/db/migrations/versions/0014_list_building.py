"""list building: list builds, the registry companies in each project, and indexes for registry search

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

# The search filters' indexes on the registry (docs/list-building.md, "Speed").
REGISTRY_INDEXES: list[tuple[str, list[str | sa.TextClause]]] = [
    ("ix_registry_entities_country_industry_employees", ["country_code", "industry", "employee_count"]),
    ("ix_registry_entities_industry_employees", ["industry", "employee_count"]),
    ("ix_registry_entities_sector_country", ["sector", "country_code"]),
    ("ix_registry_entities_name", ["name"]),
    ("ix_registry_entities_employee_count", ["employee_count"]),
    ("ix_registry_entities_founded_year", ["founded_year"]),
    ("ix_registry_entities_company_type", ["company_type"]),
    ("ix_registry_entities_hq_city_lower", [sa.text("lower(hq_city)")]),
    ("ix_registry_entities_parent_kernel_id", ["parent_kernel_id"]),
    ("ix_registry_entities_revenue", ["revenue_currency", "revenue_amount"]),
]


def upgrade() -> None:
    op.create_table(
        "list_builds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column(
            "spec",
            sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql"),
            nullable=False,
        ),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("after_kernel_id", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_list_builds_project_id_projects", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_list_builds"),
    )
    op.create_index("ix_list_builds_project_spec", "list_builds", ["project_id", "spec_hash"])
    op.create_table(
        "project_companies",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("kernel_id", sa.String(length=20), nullable=False),
        sa.Column("row_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_project_companies_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["row_pk"], ["rows.pk"], name="fk_project_companies_row_pk_rows", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "kernel_id", name="pk_project_companies"),
    )
    op.create_index("ix_project_companies_row_pk", "project_companies", ["row_pk"])
    for name, columns in REGISTRY_INDEXES:
        op.create_index(name, "registry_entities", columns)
    if op.get_bind().dialect.name == "postgresql":
        # The `name` filter (name or alias contains) through trigram indexes, where pg_trgm may be created
        # (a trusted extension: the database owner can); elsewhere it stays a scan. A DO block's handler is
        # a subtransaction, so a refusal leaves the migration going.
        op.execute(
            """
            DO $$ BEGIN
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'pg_trgm is not available: the name filter of registry search scans';
            END $$;
            """
        )
        op.execute(
            """
            DO $$ BEGIN
                IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
                    CREATE INDEX ix_registry_entities_name_trgm
                        ON registry_entities USING gin (lower(name) gin_trgm_ops);
                    CREATE INDEX ix_registry_entities_aliases_trgm
                        ON registry_entities USING gin (lower(aliases::text) gin_trgm_ops);
                END IF;
            END $$;
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_registry_entities_aliases_trgm")
        op.execute("DROP INDEX IF EXISTS ix_registry_entities_name_trgm")
    for name, _ in reversed(REGISTRY_INDEXES):
        op.drop_index(name, table_name="registry_entities")
    op.drop_index("ix_project_companies_row_pk", table_name="project_companies")
    op.drop_table("project_companies")
    op.drop_index("ix_list_builds_project_spec", table_name="list_builds")
    op.drop_table("list_builds")
