"""The Reconciliation Service API 0.2 over the registry: reconcile query batches with the matcher, suggest
entities / properties / types, preview an entity, and extend entities with their firmographics. No HTTP here.
"""

from __future__ import annotations

import asyncio
import bisect
import html
import re
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier import __version__
from dossier.enrichment.registry.index_cache import current_index
from dossier.enrichment.registry.matcher import REPORTED_CANDIDATES, Candidate, EntityIndex, EntityRow
from dossier.enrichment.registry.models import RegistryEntity
from dossier.enrichment.registry.normalize import fold
from dossier.enrichment.registry.service import firmographics_record, get_entity
from dossier.errors import InvalidInput, NotFound, PayloadTooLarge
from dossier.settings import Settings

if TYPE_CHECKING:  # the wire shapes sit above the service (schemas -> service)
    from dossier.reconciliation.schemas import ExtendQuery, ReconciliationQuery

# The one type of the registry's entities.
ORGANIZATION = {"id": "organization", "name": "Organization"}

# Properties a query can carry (`properties: [{pid, v}]`), as the matcher reads them.
QUERY_PROPERTIES: dict[str, tuple[str, str]] = {
    "country": ("Country", "Country name or ISO 3166 code; a company elsewhere needs a closer name."),
    "city": ("City", "City of the headquarters; tells same-named companies apart."),
    "website": ("Website", "Website URL, bare domain or e-mail address; strong evidence."),
    "postal_code": ("Postal code", "Postal code of the headquarters; evidence like the city."),
    "address": ("Address", "Street address of the headquarters; evidence like the city."),
}


# Most queries in one batch (the manifest's `batchSize`); a larger batch is refused with 413.
MAX_BATCH = 1000
# Most ids and properties in one data extension query.
MAX_EXTEND_IDS = 1000
MAX_EXTEND_PROPERTIES = 50
# Suggestions per page (a `limit` parameter may ask for fewer or up to SUGGEST_MAX_LIMIT).
SUGGEST_PAGE = 10
SUGGEST_MAX_LIMIT = 50
# The iframe the manifest declares for previews.
PREVIEW_WIDTH = 400
PREVIEW_HEIGHT = 220

IDENTIFIER_SPACE = "urn:dossier:registry:kernel_id"
SCHEMA_SPACE = "urn:dossier:registry:type"

# A kernel_id is 1 to 20 digits (docs/registry.md); anything else is unknown without asking the database.
_KERNEL_ID = re.compile(r"\d{1,20}")

# Features of the jobs API (Candidate.features) whose `agrees` becomes 1 / -1 / 0 (agree, disagree, unclear).
_AGREEMENT_FEATURES = ("legal_form", "domain", "country", "city", "postal_code", "address")


# --- the index, as suggest and description need it ----------------------------------------------------


@dataclass(frozen=True)
class _Lookup:
    by_id: dict[str, EntityRow]
    # (folded name or alias, position in index.entities), sorted: a prefix is a contiguous range.
    names: list[tuple[str, int]]


_LOOKUPS: weakref.WeakKeyDictionary[EntityIndex, _Lookup] = weakref.WeakKeyDictionary()


def _fold_name(text: str) -> str:
    return " ".join(fold(text).split())


def _build_lookup(index: EntityIndex) -> _Lookup:
    by_id: dict[str, EntityRow] = {}
    names: list[tuple[str, int]] = []
    for position, row in enumerate(index.entities):
        by_id[row.kernel_id] = row
        for written in dict.fromkeys((row.name, *row.aliases)):
            folded = _fold_name(written)
            if folded:
                names.append((folded, position))
    names.sort()
    return _Lookup(by_id, names)


async def _lookup_of(index: EntityIndex) -> _Lookup:
    lookup = _LOOKUPS.get(index)
    if lookup is None:
        lookup = await asyncio.to_thread(_build_lookup, index)
        _LOOKUPS[index] = lookup
    return lookup


async def registry_index(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[EntityIndex, _Lookup]:
    """This process's index of the registry (the routes build the default registry first, on first use:
    ``enrichment.dependencies``)."""
    index = await current_index(sessionmaker)
    return index, await _lookup_of(index)


def describe(row: EntityRow) -> str:
    """A short line telling namesakes apart: where the company is, and its website."""
    place = ", ".join(part for part in (row.city, row.country) if part)
    return " · ".join(part for part in (place, row.domain or "") if part)


# --- manifest --------------------------------------------------------------------------------------------


def manifest(service_url: str, *, preview_key: str | None = None) -> dict[str, Any]:
    """The service manifest for the endpoint at ``service_url`` (absolute, no trailing slash).

    ``preview_key``: a valid key the manifest was asked with; the preview URL carries it, because clients
    load previews in a browser frame that sends no headers.
    """
    preview = f"{service_url}/preview?id={{{{id}}}}"
    if preview_key:
        from urllib.parse import quote

        preview += f"&api_key={quote(preview_key, safe='')}"
    suggest_base = {"service_url": service_url}
    return {
        "versions": ["0.2"],
        "name": "Dossier company registry",
        "identifierSpace": IDENTIFIER_SPACE,
        "schemaSpace": SCHEMA_SPACE,
        "serviceVersion": __version__,
        # This server's API reference (docs/reconciliation.md is the guide).
        "documentation": service_url.removesuffix("/api/reconcile") + "/docs",
        "defaultTypes": [ORGANIZATION],
        "authentication": {
            "type": "apiKey",
            "name": "api_key",
            "in": "query",
            "description": "Your Dossier API key (also accepted in the x-api-key header).",
        },
        "batchSize": MAX_BATCH,
        "preview": {"url": preview, "width": PREVIEW_WIDTH, "height": PREVIEW_HEIGHT},
        "suggest": {
            "entity": {**suggest_base, "service_path": "/suggest/entity"},
            "property": {**suggest_base, "service_path": "/suggest/property"},
            "type": {**suggest_base, "service_path": "/suggest/type"},
        },
        "extend": {
            "propose_properties": {"service_url": service_url, "service_path": "/properties"},
            "property_settings": [],
        },
    }


# --- reconciliation --------------------------------------------------------------------------------------


def _agreement(value: Any) -> int:
    return 1 if value is True else -1 if value is False else 0


def spec_features(features: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The matcher's evidence (the jobs API's `features`) as the spec's `[{id, value}]`; the mapping is in
    docs/reconciliation.md."""
    out: list[dict[str, Any]] = []
    name = features.get("name")
    if isinstance(name, Mapping) and name.get("similarity") is not None:
        out.append({"id": "name_similarity", "value": float(name["similarity"])})
    if features.get("alias"):
        out.append({"id": "alias", "value": 1})
    for key in _AGREEMENT_FEATURES:
        feature = features.get(key)
        if isinstance(feature, Mapping):
            out.append({"id": key, "value": _agreement(feature.get("agrees"))})
    qualifiers = features.get("qualifiers")
    if qualifiers:
        said = [q.get("agrees") for q in qualifiers if isinstance(q, Mapping)]
        value = -1 if False in said else 1 if True in said else 0
        out.append({"id": "qualifiers", "value": value})
    conflicts = features.get("conflicts")
    if conflicts:
        out.append({"id": "conflicts", "value": len(conflicts)})
    return out


def _candidate_out(candidate: Candidate, match: bool, lookup: _Lookup) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": candidate.kernel_id,
        "name": candidate.name,
        "score": round(candidate.score * 100, 2),
        "match": match,
        "features": spec_features(candidate.features),
        "type": [ORGANIZATION],
    }
    row = lookup.by_id.get(candidate.kernel_id)
    description = describe(row) if row is not None else ""
    if description:
        out["description"] = description
    return out


def _answer(
    index: EntityIndex, lookup: _Lookup, query: ReconciliationQuery, threshold: float, margin: float
) -> list[dict[str, Any]]:
    limit = REPORTED_CANDIDATES if query.limit is None else max(1, min(REPORTED_CANDIDATES, int(query.limit)))
    name = (query.query or "").strip() or None
    if name is not None and name.isdigit() and name in lookup.by_id:
        # An identifier as the query is that entity, surely.
        row = lookup.by_id[name]
        exact = Candidate(row.kernel_id, row.name, 1.0, {})
        found = _candidate_out(exact, True, lookup)
        found["features"] = [{"id": "kernel_id", "value": 1}]
        return [found]
    website = query.property_text("website")
    if name is None and website is None:
        return []
    resolution = index.resolve(
        name,
        website,
        query.property_text("country"),
        city=query.property_text("city"),
        postal_code=query.property_text("postal_code"),
        address=query.property_text("address"),
        threshold=threshold,
        margin=margin,
    )
    matched = resolution.match.kernel_id if resolution.match is not None else None
    return [_candidate_out(c, c.kernel_id == matched, lookup) for c in resolution.candidates[:limit]]


async def reconcile(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    queries: Mapping[str, ReconciliationQuery],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """A result batch: each query's candidates, best first; `match` only on the record Dossier resolves to."""
    if len(queries) > MAX_BATCH:
        raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH} queries, not {len(queries)}")
    if not queries:
        return {}
    index, lookup = await registry_index(sessionmaker)
    threshold, margin = settings.registry_match_threshold, settings.registry_match_margin

    def run() -> dict[str, dict[str, list[dict[str, Any]]]]:
        return {
            key: {"result": _answer(index, lookup, query, threshold, margin)}
            for key, query in queries.items()
        }

    # Matching is CPU work: off the event loop, so the server keeps answering meanwhile.
    return await asyncio.to_thread(run)


# --- suggest ---------------------------------------------------------------------------------------------


def _prefix_entities(lookup: _Lookup, index: EntityIndex, prefix: str) -> Iterator[EntityRow]:
    """Entities whose id is ``prefix``, then those whose name or an alias starts with it, in name order."""
    seen: set[str] = set()
    exact = lookup.by_id.get(prefix.strip())
    if exact is not None:
        seen.add(exact.kernel_id)
        yield exact
    folded = _fold_name(prefix)
    if not folded:
        return
    position = bisect.bisect_left(lookup.names, (folded, -1))
    while position < len(lookup.names) and lookup.names[position][0].startswith(folded):
        row = index.entities[lookup.names[position][1]]
        position += 1
        if row.kernel_id not in seen:
            seen.add(row.kernel_id)
            yield row


async def suggest_entities(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    prefix: str,
    cursor: int = 0,
    limit: int = SUGGEST_PAGE,
) -> dict[str, Any]:
    """Registry companies whose name (or an alias, or the id) starts with ``prefix``, case and accents aside;
    ``cursor`` skips that many, ``limit`` bounds the page."""
    if not prefix.strip():
        return {"result": []}
    index, lookup = await registry_index(sessionmaker)
    result: list[dict[str, Any]] = []
    for position, row in enumerate(_prefix_entities(lookup, index, prefix)):
        if position < cursor:
            continue
        if len(result) >= limit:
            break
        item: dict[str, Any] = {"id": row.kernel_id, "name": row.name, "notable": [ORGANIZATION]}
        description = describe(row)
        if description:
            item["description"] = description
        result.append(item)
    return {"result": result}


def _paged(items: Sequence[dict[str, Any]], prefix: str, cursor: int, limit: int) -> dict[str, Any]:
    wanted = _fold_name(prefix)
    matching = [
        item
        for item in items
        if not wanted
        or _fold_name(item["id"]).startswith(wanted)
        or _fold_name(item["name"]).startswith(wanted)
    ]
    return {"result": matching[cursor : cursor + limit]}


def suggest_properties(prefix: str, cursor: int = 0, limit: int = SUGGEST_PAGE) -> dict[str, Any]:
    """The properties a query can carry, whose id or name starts with ``prefix`` (all for an empty one)."""
    items = [
        {"id": pid, "name": name, "description": description}
        for pid, (name, description) in QUERY_PROPERTIES.items()
    ]
    return _paged(items, prefix, cursor, limit)


def suggest_types(prefix: str, cursor: int = 0, limit: int = SUGGEST_PAGE) -> dict[str, Any]:
    """The one type (every registry entity is an organisation), when ``prefix`` starts it."""
    item = {**ORGANIZATION, "description": "A company or other organisation of the registry."}
    return _paged([item], prefix, cursor, limit)


# --- data extension --------------------------------------------------------------------------------------

Value = dict[str, Any]
_Getter = Callable[[RegistryEntity, dict[str, Any]], Any]


@dataclass(frozen=True)
class ExtensionProperty:
    id: str
    name: str
    description: str
    get: _Getter


def _record(key: str, *path: str) -> _Getter:
    def get(entity: RegistryEntity, record: dict[str, Any]) -> Any:
        value: Any = record.get(key)
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        return value

    return get


def _amount(entity: RegistryEntity, record: dict[str, Any]) -> Any:
    amount = record["revenue"]["amount"]
    return None if amount is None else float(amount)


# The firmographics record (as the jobs API answers it), nested values flattened into properties.
EXTENSION_PROPERTIES: tuple[ExtensionProperty, ...] = (
    ExtensionProperty("name", "Name", "The company's name in the registry.", _record("name")),
    ExtensionProperty(
        "domain", "Website domain", "The registrable domain of its website.", _record("domain")
    ),
    ExtensionProperty("industry", "Industry", "Industry.", _record("industry")),
    ExtensionProperty("sector", "Sector", "Sector.", _record("sector")),
    ExtensionProperty("employee_count", "Employees", "Number of employees.", _record("employee_count")),
    ExtensionProperty("revenue_amount", "Revenue", "Revenue, in revenue_currency.", _amount),
    ExtensionProperty(
        "revenue_currency",
        "Revenue currency",
        "ISO 4217 currency of the revenue.",
        _record("revenue", "currency"),
    ),
    ExtensionProperty(
        "revenue_year", "Revenue year", "The year the revenue is for.", _record("revenue", "year")
    ),
    ExtensionProperty(
        "hq_city", "Headquarters city", "City of the headquarters.", _record("headquarters", "city")
    ),
    ExtensionProperty(
        "hq_country",
        "Headquarters country",
        "Country of the headquarters.",
        _record("headquarters", "country"),
    ),
    ExtensionProperty("country", "Country", "Country of the company.", lambda e, r: e.country),
    ExtensionProperty("country_code", "Country code", "ISO 3166 alpha-2 code.", _record("country_code")),
    ExtensionProperty(
        "founded_year", "Founded", "The year the company was founded.", _record("founded_year")
    ),
    ExtensionProperty(
        "company_type", "Company type", "Kind of company (public, private...).", _record("company_type")
    ),
    ExtensionProperty(
        "isin", "ISIN", "Its securities' ISINs (one value each).", _record("identifiers", "isin")
    ),
    ExtensionProperty(
        "postal_code", "Postal code", "Postal code of the headquarters.", lambda e, r: e.postal_code
    ),
    ExtensionProperty("address", "Address", "Street address of the headquarters.", lambda e, r: e.address),
    ExtensionProperty(
        "updated_at", "Updated", "When the registry last changed this record.", lambda e, r: e.updated_at
    ),
)
EXTENSION_BY_ID = {p.id: p for p in EXTENSION_PROPERTIES}
# The query properties' names, accepted in extend too (property suggest offers them).
EXTENSION_ALIASES = {"city": "hq_city", "website": "domain"}


def propose_properties(type_id: str | None, limit: int | None) -> dict[str, Any]:
    """The properties data extension can fetch for ``type_id`` (the one type)."""
    wanted = type_id or ORGANIZATION["id"]
    if wanted != ORGANIZATION["id"]:
        raise InvalidInput(f"unknown type {wanted!r}: the only type is {ORGANIZATION['id']!r}")
    properties = [{"id": p.id, "name": p.name, "description": p.description} for p in EXTENSION_PROPERTIES]
    out: dict[str, Any] = {"type": wanted, "properties": properties[:limit] if limit else properties}
    if limit is not None:
        out["limit"] = limit
    return out


def spec_values(value: Any) -> list[Value]:
    """A value as the spec's list of value objects: [] for none, one per item of a list."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [v for item in value for v in spec_values(item)]
    if isinstance(value, bool):
        return [{"str": "true" if value else "false"}]
    if isinstance(value, int):
        return [{"int": value}]
    if isinstance(value, float):
        return [{"float": value}]
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return [{"date": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}]
    return [{"str": str(value)}]


async def extend(session: AsyncSession, query: ExtendQuery) -> dict[str, Any]:
    """A data extension response: for each id, each requested property's values."""
    if len(query.ids) > MAX_EXTEND_IDS:
        raise PayloadTooLarge(
            f"a data extension query holds at most {MAX_EXTEND_IDS} ids, not {len(query.ids)}"
        )
    if len(query.properties) > MAX_EXTEND_PROPERTIES:
        raise InvalidInput(f"a data extension query asks for at most {MAX_EXTEND_PROPERTIES} properties")
    requested: list[tuple[str, ExtensionProperty]] = []
    unknown_properties = []
    for prop in query.properties:
        found = EXTENSION_BY_ID.get(EXTENSION_ALIASES.get(prop.id, prop.id))
        if found is None:
            unknown_properties.append(prop.id)
        else:
            requested.append((prop.id, found))
    if unknown_properties:
        raise InvalidInput(
            f"unknown properties: {', '.join(unknown_properties)} (see the property proposals)",
            detail={"unknown_properties": unknown_properties, "known": [p.id for p in EXTENSION_PROPERTIES]},
        )
    entities: dict[str, RegistryEntity] = {}
    unknown_ids = []
    for kernel_id in dict.fromkeys(query.ids):
        entity = await get_entity(session, kernel_id) if _KERNEL_ID.fullmatch(kernel_id) else None
        if entity is None:
            unknown_ids.append(kernel_id)
        else:
            entities[kernel_id] = entity
    if unknown_ids:
        shown = ", ".join(unknown_ids[:10]) + (" ..." if len(unknown_ids) > 10 else "")
        raise InvalidInput(f"unknown ids: {shown}", detail={"unknown_ids": unknown_ids})
    rows: dict[str, dict[str, list[Value]]] = {}
    for kernel_id, entity in entities.items():
        record = firmographics_record(entity)
        rows[kernel_id] = {pid: spec_values(prop.get(entity, record)) for pid, prop in requested}
    meta = [{"id": pid, "name": prop.name} for pid, prop in dict(requested).items()]
    return {"meta": meta, "rows": rows}


# --- preview ---------------------------------------------------------------------------------------------


async def preview(session: AsyncSession, kernel_id: str) -> str:
    """An HTML card of the company's firmographics (every value escaped), for the manifest's iframe."""
    entity = await get_entity(session, kernel_id) if _KERNEL_ID.fullmatch(kernel_id) else None
    if entity is None:
        raise NotFound(f"no registry company has the id {kernel_id!r}")
    record = firmographics_record(entity)
    lines: list[tuple[str, str]] = []
    place = ", ".join(p for p in (record["headquarters"]["city"], record["headquarters"]["country"]) if p)
    revenue = record["revenue"]
    for label, value in (
        ("Website", record["domain"]),
        ("Industry", " / ".join(p for p in (record["sector"], record["industry"]) if p)),
        ("Headquarters", place or entity.country),
        ("Employees", f"{record['employee_count']:,}" if record["employee_count"] is not None else None),
        (
            "Revenue",
            f"{revenue['amount']:,} {revenue['currency'] or ''} ({revenue['year']})".replace(" ()", "")
            if revenue["amount"] is not None
            else None,
        ),
        ("Founded", record["founded_year"]),
        ("Type", record["company_type"]),
        ("ISIN", ", ".join(record["identifiers"]["isin"])),
    ):
        if value not in (None, ""):
            lines.append((label, str(value)))
    rows = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>" for label, value in lines
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(entity.name)}</title>
<style>
body{{margin:0;font:13px/1.4 system-ui,sans-serif;color:#222}}
.card{{padding:8px 10px;width:{PREVIEW_WIDTH - 20}px;height:{PREVIEW_HEIGHT - 16}px;overflow:hidden}}
h1{{font-size:15px;margin:0 0 2px}} .id{{color:#777;font-size:11px;margin-bottom:6px}}
th{{text-align:left;font-weight:600;padding:1px 8px 1px 0;vertical-align:top;white-space:nowrap}}
td{{padding:1px 0}}
</style></head>
<body><div class="card">
<h1>{html.escape(entity.name)}</h1>
<div class="id">kernel_id {html.escape(entity.kernel_id)}</div>
<table>
{rows}
</table>
</div></body></html>
"""
