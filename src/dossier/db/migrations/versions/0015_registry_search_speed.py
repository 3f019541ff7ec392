"""registry search speed: covering indexes for filter combinations, and the name filter's index on SQLite

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# (new index, its columns, the index of 0014 it replaces): the new ones start with the same columns, so they
# serve everything the old ones did, and hold the other filters' columns (and kernel_id) too, so that a count
# (and a page's kernel_ids, on PostgreSQL) is read from the index alone (docs/list-building.md, "Speed").
REPLACED = [
    (
        "ix_registry_entities_country_filters",
        ["country_code", "industry", "employee_count", "company_type", "founded_year", "domain", "kernel_id"],
        ("ix_registry_entities_country_industry_employees", ["country_code", "industry", "employee_count"]),
    ),
    (
        "ix_registry_entities_employees_founded",
        ["employee_count", "founded_year"],
        ("ix_registry_entities_employee_count", ["employee_count"]),
    ),
]

# SQLite: the `name` filter (name or an alias contains) through an FTS5 trigram index of the names and
# aliases, kept in step with registry_entities by triggers (every write path, with no code of its own). The
# index reads its text from registry_entities by rowid (an external-content table).
FTS_TABLE = "registry_names_fts"
SQLITE_FTS = [
    f"""CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(
        name, aliases, content='registry_entities', content_rowid='rowid', tokenize='trigram')""",
    f"""CREATE TRIGGER registry_names_fts_insert AFTER INSERT ON registry_entities BEGIN
        INSERT INTO {FTS_TABLE}(rowid, name, aliases) VALUES (new.rowid, new.name, new.aliases);
    END""",
    f"""CREATE TRIGGER registry_names_fts_delete AFTER DELETE ON registry_entities BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, name, aliases)
            VALUES ('delete', old.rowid, old.name, old.aliases);
    END""",
    f"""CREATE TRIGGER registry_names_fts_update AFTER UPDATE OF name, aliases ON registry_entities BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, name, aliases)
            VALUES ('delete', old.rowid, old.name, old.aliases);
        INSERT INTO {FTS_TABLE}(rowid, name, aliases) VALUES (new.rowid, new.name, new.aliases);
    END""",
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
]


def _sqlite_has_trigram_fts(bind: sa.engine.Connection) -> bool:
    """FTS5 with the trigram tokenizer: SQLite 3.34 or later, built with FTS5 (Python's builds are)."""
    version = str(bind.exec_driver_sql("SELECT sqlite_version()").scalar() or "0")
    major, minor = (int(part) for part in version.split(".")[:2])
    options = {str(row[0]) for row in bind.exec_driver_sql("PRAGMA compile_options")}
    return (major, minor) >= (3, 34) and "ENABLE_FTS5" in options


def upgrade() -> None:
    for name, columns, (old, _) in REPLACED:
        op.create_index(name, "registry_entities", columns)
        op.drop_index(old, table_name="registry_entities")
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and _sqlite_has_trigram_fts(bind):
        for statement in SQLITE_FTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS registry_names_fts_{trigger}")
        op.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    for name, _, (old, old_columns) in reversed(REPLACED):
        op.create_index(old, "registry_entities", old_columns)
        op.drop_index(name, table_name="registry_entities")
