"""``entity_resolution``: name, website, country, city, postal code and address (any subset with a name or a
website) -> the registry company, or ``skipped``.

The value is ``{kernel_id, name, domain, country, confidence, matched_on, candidates}``. The cell is
``skipped`` unless one company is confidently the same one (precision over recall); a skipped cell's value
is ``{kernel_id: null, candidates}`` and its error says why (nothing close, or ambiguous), so a person can see
which records came close and what disagreed. The index is the registry's memory-mapped snapshot
(``registry.index_cache``), so a lookup costs no query; a column's chunk of cells is resolved at once in a
matching process (``registry.matching``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.protocol import Tool, ToolContext, ToolInput, ToolOutcome
from dossier.enrichment.registry.index_cache import index_cache_key
from dossier.enrichment.registry.matcher import Resolution
from dossier.enrichment.registry.matching import MatchQuery, resolve_many
from dossier.enrichment.registry.service import ensure_default_registry
from dossier.enrichment.tools import register
from dossier.settings import Settings

_ENSURED: set[str] = set()


class EntityResolutionConfig(BaseModel):
    """Per-column overrides of the process-wide matching settings."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        default=None, ge=0.5, le=1.0, description="Lowest confidence returned (default: settings)."
    )
    margin: float | None = Field(
        default=None, ge=0.0, le=0.5, description="Lead required over the best different company."
    )


def input_text(value: Any, *keys: str) -> str | None:
    """A cell value as text: a string, a number, or the first of ``keys`` in another tool's dict output."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        for key in keys:
            found = input_text(value.get(key))
            if found:
                return found
        return None
    if isinstance(value, (list, tuple, set)):
        return None
    text = str(value).strip()
    return text or None


async def ensure_default_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings | None = None
) -> None:
    """Build the default registry on first use in this process when nobody has yet (one short transaction),
    unless ``settings.registry_builtin`` is false."""
    key = index_cache_key(sessionmaker)
    if key in _ENSURED:
        return
    async with sessionmaker() as session, session.begin():
        await ensure_default_registry(session, settings)
    _ENSURED.add(key)


class EntityResolutionTool(Tool):
    name = "entity_resolution"
    waits = False
    description = (
        "Resolve a company (name, website and/or country) to the reference registry: kernel_id, name, "
        "domain, country, confidence and the evidence that matched; skipped unless one company is surely it."
    )
    inputs = (
        ToolInput("name", "Company name as written anywhere (legal forms, case and accents do not matter)."),
        ToolInput("website", "Website URL, bare domain or e-mail address."),
        ToolInput("country", "Country name or ISO 3166 code; a company elsewhere needs a closer name."),
        ToolInput("city", "City; tells same-named organisations apart, and another city counts against."),
        ToolInput("postal_code", "Postal code; evidence like the city."),
        ToolInput("address", "Street address; evidence like the city."),
    )
    config_model = EntityResolutionConfig

    runs_chunks = True

    async def run(self, values: Mapping[str, Any], config: BaseModel, ctx: ToolContext) -> ToolOutcome:
        return (await self.run_chunk([values], config, ctx))[0]

    async def run_chunk(
        self, chunk: Sequence[Mapping[str, Any]], config: BaseModel, ctx: ToolContext
    ) -> list[ToolOutcome]:
        """Resolve a chunk of rows at once: in a matching process (``registry.matching``), so a chunk's
        matching never holds the event loop."""
        assert isinstance(config, EntityResolutionConfig)
        outcomes: list[ToolOutcome | None] = []
        queries: list[MatchQuery] = []
        for values in chunk:
            query = MatchQuery(
                name=input_text(values.get("name"), "name"),
                website=input_text(values.get("website"), "domain", "url", "website"),
                country=input_text(values.get("country"), "country_code", "country"),
                city=input_text(values.get("city"), "city"),
                postal_code=input_text(values.get("postal_code"), "postal_code"),
                address=input_text(values.get("address"), "address"),
            )
            if query.name is None and query.website is None:
                outcomes.append(ToolOutcome.skipped("no name or website to resolve"))
            else:
                outcomes.append(None)
                queries.append(query)
        if queries:
            await ensure_default_once(ctx.sessionmaker, ctx.settings)
            settings = ctx.settings
            resolutions = iter(
                await resolve_many(
                    ctx.sessionmaker,
                    settings,
                    queries,
                    threshold=settings.registry_match_threshold
                    if config.threshold is None
                    else config.threshold,
                    margin=settings.registry_match_margin if config.margin is None else config.margin,
                )
            )
            outcomes = [_outcome(next(resolutions)) if o is None else o for o in outcomes]
        return [o for o in outcomes if o is not None]


def _outcome(resolution: Resolution) -> ToolOutcome:
    if resolution.match is None:
        candidates = [c.as_dict() for c in resolution.candidates]
        return ToolOutcome(
            "skipped",
            {"kernel_id": None, "candidates": candidates},
            f"no registry company matches confidently: {resolution.reason}",
        )
    return ToolOutcome.success(resolution.match.as_dict())


register(EntityResolutionTool())
