"""What projects needs from the engine that computes tool cells, and the one place that engine registers.

A project table holds tool columns, but what a tool is and when its cells run belong to the enrichment
engine, which reads this package's tables. So that projects never imports it, projects declares here what it
asks of a tool engine; ``dossier.enrichment`` implements it and registers it when it is imported (every entry
point imports enrichment). Asking for the engine before one is registered fails loudly.

Every scheduling method writes through the caller's session and never commits: the cells it marks and the
tasks it queues commit with the rows or the column that caused them, or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from dossier.net import OutboundPolicy
from dossier.projects.models import Column


@dataclass(frozen=True)
class ToolSpec:
    """A tool column as a caller describes it: inputs name columns, not ids."""

    type: str
    inputs: Mapping[str, str]
    config: Mapping[str, Any]
    # The process's outbound policy: URLs a config names are checked against it when the column is saved
    # (a literal private or loopback host is refused then, not at the first row). None: syntax only.
    outbound: OutboundPolicy | None = None


class ToolEngine(Protocol):
    """The tool-cell engine, as projects uses it."""

    def resolve_tool_spec(
        self, spec: ToolSpec, column_ids_by_name: Mapping[str, str]
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Check a tool column against its tool; return (tool input name -> column id, config as plain data).

        Raises ``InvalidInput`` saying everything wrong with it."""
        ...

    async def schedule_new_rows(
        self, session: AsyncSession, columns: Sequence[Column], row_pks: Sequence[int], *, chunk_rows: int
    ) -> None:
        """Create and schedule every tool cell of freshly inserted rows."""
        ...

    async def schedule_cells(
        self,
        session: AsyncSession,
        column: Column,
        row_pks: Sequence[int],
        columns_by_id: Mapping[str, Column],
        *,
        chunk_rows: int,
    ) -> int:
        """(Re)compute ``column``'s cells of these rows and, after them, the cells that read them."""
        ...

    def schedule_backfill(
        self, session: AsyncSession, column: Column, *, until_pk: int | None = None
    ) -> None:
        """(Re)compute a tool column for every row of its project (up to ``until_pk``), in the background."""
        ...


class ToolEngineMissing(RuntimeError):
    """Projects asked for the tool engine and none is registered: a wiring error, not a caller's."""


_engine: ToolEngine | None = None


def register_tool_engine(engine: ToolEngine) -> None:
    """Make ``engine`` the one that projects schedules tool cells through (a later call replaces it)."""
    global _engine
    _engine = engine


def tool_engine() -> ToolEngine:
    """The registered tool engine; ``ToolEngineMissing`` when there is none."""
    if _engine is None:
        raise ToolEngineMissing(
            "no tool engine is registered: import dossier.enrichment (every entry point does) "
            "before defining tool columns or adding rows"
        )
    return _engine
