"""FastAPI dependencies of the surfaces that read the registry (list building, reconciliation, the
dashboard's companies)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dossier.api.deps import SettingsDep
from dossier.db.session import writing_sessionmaker
from dossier.enrichment.tools.entity_resolution import ensure_default_once


async def default_registry(request: Request, settings: SettingsDep) -> None:
    """The default registry, built on first use as for entity resolution (unless turned off): in a short
    transaction of its own on the writing sessions, committed before the request's (read-only for a GET)."""
    await ensure_default_once(writing_sessionmaker(request), settings)


# Listed before the session in a route's parameters, so the registry exists before the request reads it.
DefaultRegistry = Annotated[None, Depends(default_registry)]
