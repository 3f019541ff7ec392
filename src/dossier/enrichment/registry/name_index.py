"""SQLite's trigram index of registry names and aliases (``registry_names_fts``, migration 0015) during a
large import.

The index is kept in step with ``registry_entities`` by triggers, one index write per row written. A large
import instead drops the triggers inside its transaction, writes its rows, rebuilds the index from the table
in one pass and puts the triggers back, all before it commits: a reader never sees the two apart. The
statements are those of migration 0015, which created the index.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

TABLE = "registry_names_fts"
_ADD = f"INSERT INTO {TABLE}(rowid, name, aliases) VALUES (new.rowid, new.name, new.aliases);"
_REMOVE = (
    f"INSERT INTO {TABLE}({TABLE}, rowid, name, aliases) VALUES ('delete', old.rowid, old.name, old.aliases);"
)
_TRIGGERS = {
    "registry_names_fts_insert": (
        f"CREATE TRIGGER registry_names_fts_insert AFTER INSERT ON registry_entities BEGIN {_ADD} END"
    ),
    "registry_names_fts_delete": (
        f"CREATE TRIGGER registry_names_fts_delete AFTER DELETE ON registry_entities BEGIN {_REMOVE} END"
    ),
    "registry_names_fts_update": (
        "CREATE TRIGGER registry_names_fts_update AFTER UPDATE OF name, aliases ON registry_entities "
        f"BEGIN {_REMOVE} {_ADD} END"
    ),
}


async def present(session: AsyncSession) -> bool:
    """Whether this database keeps the index (SQLite with FTS5's trigram tokenizer, migrated)."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    found = await session.scalar(
        text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'registry_names_fts_%'")
    )
    return bool(found)


async def suspend(session: AsyncSession) -> None:
    """Stop maintaining the index row by row (in the caller's transaction); ``rebuild`` must follow."""
    for name in _TRIGGERS:
        await session.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


async def rebuild(session: AsyncSession) -> None:
    """Recompute the index from the table and maintain it row by row again (in the caller's transaction)."""
    await session.execute(text(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')"))
    for name, create in _TRIGGERS.items():
        await session.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        await session.execute(text(create))
