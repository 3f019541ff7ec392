"""Searching the registry and building lists of its companies into projects.

Services flush and never commit: the request, the queue task or the command owns the transaction.

Every registry company is visible to every account: the registry is the deployment's reference data (the
built-in default registry and whatever the deployment imported), and entity resolution matches against all
of it (``enrichment.registry.index_cache`` loads every entity, with no owner). Search answers from the same
rows; ``_visible`` is the one place that would narrow them if the registry ever gained owners.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pycountry
from sqlalchemy import Text, and_, cast, func, literal_column, or_, select, true, update
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from dossier.accounts.models import Account
from dossier.db.base import utcnow
from dossier.enrichment.events import emit_tool_outputs
from dossier.enrichment.registry.countries import country_code
from dossier.enrichment.registry.models import RegistryEntity
from dossier.enrichment.registry.service import firmographics_record, registry_generation
from dossier.enrichment.tools.entity_resolution import EntityResolutionTool
from dossier.errors import InvalidInput, NotFound
from dossier.lists.models import ACTIVE_STATUSES, DONE, FAILED, QUEUED, RUNNING, ListBuild, ProjectCompany
from dossier.projects import service as projects
from dossier.projects.models import SUCCESS, Cell, Column, Project, Row

RE = RegistryEntity
MAX_PAGE_SIZE = 200
MAX_NAME_FILTER_CHARS = 200
MAX_FACET_LIMIT = 500
MAX_KERNEL_IDS = 100_000
ENTITY_TOOL = EntityResolutionTool.name
_KERNEL_ID = re.compile(r"^[0-9]{1,20}$")
_IN_MAX = 1000

# --- filters ---------------------------------------------------------------------------------------------

MULTI_FILTERS = ("industry", "sector", "country", "city", "company_type")
INT_RANGES = {"employees": (0, 10**12), "founded": (1000, 2100)}
FLOAT_RANGES = {"revenue": (0.0, 1e18)}
FILTER_NAMES = frozenset(
    [
        *MULTI_FILTERS,
        *(f"{name}_{end}" for name in [*INT_RANGES, *FLOAT_RANGES] for end in ("min", "max")),
        "revenue_currency",
        "has_website",
        "name",
        "parent_kernel_id",
        "is_subsidiary",
    ]
)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class Filters:
    """What a search or a list asks for. Every given filter must hold (AND); several values of one filter
    are alternatives (OR)."""

    industry: tuple[str, ...] = ()
    sector: tuple[str, ...] = ()
    country: tuple[str, ...] = ()  # ISO alpha-2 codes
    city: tuple[str, ...] = ()  # lower case
    company_type: tuple[str, ...] = ()
    employees_min: int | None = None
    employees_max: int | None = None
    revenue_min: float | None = None
    revenue_max: float | None = None
    revenue_currency: str | None = None
    founded_min: int | None = None
    founded_max: int | None = None
    has_website: bool | None = None
    name: str | None = None
    parent_kernel_id: str | None = None
    is_subsidiary: bool | None = None
    kernel_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The filters that are set, as plain sorted data (the same filters give the same dict)."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None or value == ():
                continue
            out[item.name] = sorted(value) if isinstance(value, tuple) else value
        return out

    @property
    def empty(self) -> bool:
        return not self.as_dict()


def _bad(name: str, message: str, **detail: Any) -> InvalidInput:
    return InvalidInput(f"filter {name!r}: {message}", detail={"filter": name, **detail})


def _values(name: str, raw: Any) -> list[str]:
    items = raw if isinstance(raw, list | tuple) else [raw]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise _bad(name, "must be text (or a list of texts)")
        text = item.strip()
        if not text or "\x00" in text or len(text) > 300:
            raise _bad(name, "values must be non-empty text of at most 300 characters")
        out.append(text)
    return out


def _single(name: str, raw: Any) -> Any:
    if isinstance(raw, list | tuple):
        if len(raw) != 1:
            raise _bad(name, "takes one value")
        return raw[0]
    return raw


def _number(name: str, raw: Any, low: float, high: float, *, integer: bool) -> float:
    value = _single(name, raw)
    if isinstance(value, bool):
        raise _bad(name, "must be a number")
    if isinstance(value, str):
        try:
            value = int(value.strip()) if integer else float(value.strip())
        except ValueError:
            raise _bad(
                name, f"must be {'a whole number' if integer else 'a number'}, not {value!r}"
            ) from None
    if integer and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise _bad(name, "must be a whole number" if integer else "must be a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise _bad(name, f"must be between {low:g} and {high:g}")
    return value


def _boolean(name: str, raw: Any) -> bool:
    value = _single(name, raw)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _bad(name, "must be true or false")


def _kernel_id(name: str, raw: Any) -> str:
    value = _single(name, raw)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _KERNEL_ID.match(value.strip()):
        raise _bad(name, "must be a kernel_id (1 to 20 digits)")
    return value.strip()


def parse_filters(raw: Mapping[str, Any]) -> Filters:
    """Read filters from query parameters or a JSON object; ``InvalidInput`` naming the first bad one.

    Checks what can be checked without the registry (types, ranges, countries, currency); ``check_filters``
    then checks industry, sector and company type against the registry's own values."""
    unknown = sorted(key for key in raw if key not in FILTER_NAMES)
    if unknown:
        raise InvalidInput(
            f"unknown filter(s): {', '.join(map(repr, unknown))}",
            detail={"filter": unknown[0], "unknown_filters": unknown, "filters": sorted(FILTER_NAMES)},
        )
    values: dict[str, Any] = {}
    for name in ("industry", "sector", "company_type"):
        if name in raw:
            values[name] = tuple(dict.fromkeys(_values(name, raw[name])))
    if "country" in raw:
        codes = []
        for text in _values("country", raw["country"]):
            code = country_code(text)
            if code is None:
                raise _bad(
                    "country", f"unknown country {text!r} (use an ISO 3166 code such as DE)", value=text
                )
            codes.append(code)
        values["country"] = tuple(dict.fromkeys(codes))
    if "city" in raw:
        values["city"] = tuple(dict.fromkeys(text.lower() for text in _values("city", raw["city"])))
    for prefix, (low, high) in INT_RANGES.items():
        for end in ("min", "max"):
            if (key := f"{prefix}_{end}") in raw:
                values[key] = int(_number(key, raw[key], low, high, integer=True))
    for prefix, (flow, fhigh) in FLOAT_RANGES.items():
        for end in ("min", "max"):
            if (key := f"{prefix}_{end}") in raw:
                values[key] = float(_number(key, raw[key], flow, fhigh, integer=False))
    for prefix in [*INT_RANGES, *FLOAT_RANGES]:
        low_value, high_value = values.get(f"{prefix}_min"), values.get(f"{prefix}_max")
        if low_value is not None and high_value is not None and low_value > high_value:
            raise _bad(f"{prefix}_min", f"is above {prefix}_max ({low_value:g} > {high_value:g})")
    if "revenue_currency" in raw:
        currency = str(_single("revenue_currency", raw["revenue_currency"]) or "").strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency) or pycountry.currencies.get(alpha_3=currency) is None:
            raise _bad("revenue_currency", "must be an ISO 4217 currency code such as EUR")
        values["revenue_currency"] = currency
    if ("revenue_min" in values or "revenue_max" in values) and "revenue_currency" not in values:
        raise _bad(
            "revenue_currency",
            "is required with revenue_min or revenue_max: revenues are compared in the currency they are "
            "reported in",
        )
    for name in ("has_website", "is_subsidiary"):
        if name in raw:
            values[name] = _boolean(name, raw[name])
    if "name" in raw:
        text = _single("name", raw["name"])
        if not isinstance(text, str) or not text.strip() or "\x00" in text:
            raise _bad("name", "must be non-empty text")
        if len(text.strip()) > MAX_NAME_FILTER_CHARS:
            raise _bad("name", f"must be at most {MAX_NAME_FILTER_CHARS} characters")
        values["name"] = text.strip().lower()
    if "parent_kernel_id" in raw:
        values["parent_kernel_id"] = _kernel_id("parent_kernel_id", raw["parent_kernel_id"])
    return Filters(**values)


def filters_from_pairs(
    pairs: Iterable[tuple[str, str]], *, ignore: Iterable[str] = (), skip_empty: bool = False
) -> Filters:
    """Filters from query-string pairs (an HTTP query or a submitted form): the filters of MULTI_FILTERS
    repeat, the others take one value. ``ignore``: other parameters of the request (paging, sort);
    ``skip_empty``: a form's empty inputs are no filter."""
    skipped = set(ignore)
    raw: dict[str, list[str]] = {}
    for key, value in pairs:
        if key in skipped or (skip_empty and not value.strip()):
            continue
        raw.setdefault(key, []).append(value)
    return parse_filters({k: v if k in MULTI_FILTERS or len(v) != 1 else v[0] for k, v in raw.items()})


def parse_kernel_ids(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise _bad("kernel_ids", "must be a list of kernel_ids")
    if len(raw) > MAX_KERNEL_IDS:
        raise _bad("kernel_ids", f"takes at most {MAX_KERNEL_IDS} kernel_ids, got {len(raw)}")
    return tuple(dict.fromkeys(_kernel_id("kernel_ids", item) for item in raw))


def _visible() -> ColumnElement[bool]:
    """The registry rows an account may search: all of them (see the module's docstring)."""
    return true()


async def check_filters(session: AsyncSession, filters: Filters) -> Filters:
    """Check industry, sector and company type against the registry's own values (case-insensitively; the
    registry's spelling is kept) and that explicit kernel_ids exist. ``InvalidInput`` naming the filter."""
    changes: dict[str, Any] = {}
    for name in ("industry", "sector", "company_type"):
        wanted: tuple[str, ...] = getattr(filters, name)
        if not wanted:
            continue
        column = getattr(RE, name)
        # One index probe per value (a DISTINCT over the matches would read every company of a common one).
        exact = {
            value
            for value in wanted
            if await session.scalar(select(literal_column("1")).where(column == value, _visible()).limit(1))
        }
        missing = [value for value in wanted if value not in exact]
        found = {value: value for value in exact}
        if missing:
            # Another spelling (case) of a known value: the distinct values, read only on this slow path.
            known = list(await session.scalars(select(column).where(column.is_not(None)).distinct()))
            by_lower: dict[str, str] = {}
            for value in known:
                by_lower.setdefault(value.lower(), value)
            for value in missing:
                if value.lower() in by_lower:
                    found[value] = by_lower[value.lower()]
                else:
                    raise _bad(
                        name,
                        f"unknown {name.replace('_', ' ')} {value!r}; the registry's values are listed by "
                        f"GET /api/enterprise/registry/facets",
                        value=value,
                    )
        changes[name] = tuple(dict.fromkeys(found[value] for value in wanted))
    if filters.kernel_ids:
        known_ids: set[str] = set()
        for chunk in _chunks(list(filters.kernel_ids), _IN_MAX):
            known_ids.update(await session.scalars(select(RE.kernel_id).where(RE.kernel_id.in_(chunk))))
        unknown = [kid for kid in filters.kernel_ids if kid not in known_ids]
        if unknown:
            raise _bad(
                "kernel_ids",
                f"{len(unknown)} kernel_id(s) are not in the registry: {', '.join(unknown[:10])}",
                unknown_kernel_ids=unknown[:100],
            )
    return replace(filters, **changes) if changes else filters


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _steered_text(column: Any, plain: bool) -> Any:
    # ``x || ''`` / ``x + 0``: the same value, but no index serves it (the way SQLite's docs steer plans).
    return column.concat("") if plain else column


def _steered_number(column: Any, plain: bool) -> Any:
    return column + 0 if plain else column


# SQLite: the FTS5 trigram index of names and aliases (migration 0015), where this SQLite could create it.
NAME_INDEX = "registry_names_fts"
_NAME_INDEX_PRESENT: dict[str, bool] = {}
# The trigram index finds substrings of at least 3 characters; a shorter `name` scans.
_TRIGRAM = 3


async def _has_name_index(session: AsyncSession) -> bool:
    if _dialect(session) != "sqlite":
        return False
    key = _database_key(session)
    if key not in _NAME_INDEX_PRESENT:
        found = await session.scalar(
            select(literal_column("1"))
            .select_from(sql_table("sqlite_master", sql_column("name")))
            .where(sql_column("name") == NAME_INDEX)
        )
        _NAME_INDEX_PRESENT[key] = found is not None
    return _NAME_INDEX_PRESENT[key]


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _name_index_term(name: str, alias_text: str) -> ColumnElement[bool]:
    """Registry rows whose name or aliases hold these texts, case-insensitively, from the trigram index. It
    folds more letters than SQLite's lower() does, so the exact LIKE terms beside it still decide."""
    query = (
        _fts_phrase(name)
        if name == alias_text
        else f"name : {_fts_phrase(name)} OR aliases : {_fts_phrase(alias_text)}"
    )
    index = sql_table(NAME_INDEX, sql_column("rowid"))
    matching = select(index.c.rowid).where(literal_column(NAME_INDEX).op("MATCH")(query))
    return literal_column(f"{RE.__tablename__}.rowid").in_(matching)


async def _where(
    session: AsyncSession, filters: Filters, *, plain: bool = False, name_index: bool = True
) -> list[ColumnElement[bool]]:
    """``_conditions`` for this session's database; ``name_index``: use the name index where there is one."""
    name_index = name_index and await _has_name_index(session)
    return _conditions(filters, _dialect(session), plain=plain, name_index=name_index)


def _conditions(
    filters: Filters, dialect: str, *, plain: bool = False, name_index: bool = False
) -> list[ColumnElement[bool]]:
    """The WHERE terms of ``filters``. ``plain``: terms no index serves, so that the database walks the
    sort's index instead (a broad filter: walking the sort order finds a page sooner than sorting every
    match). ``name_index``: the SQLite trigram index of names exists."""
    where: list[ColumnElement[bool]] = [_visible()]
    if filters.industry:
        where.append(_steered_text(RE.industry, plain).in_(filters.industry))
    if filters.sector:
        where.append(_steered_text(RE.sector, plain).in_(filters.sector))
    if filters.company_type:
        where.append(_steered_text(RE.company_type, plain).in_(filters.company_type))
    if filters.country:
        where.append(_steered_text(RE.country_code, plain).in_(filters.country))
    if filters.city:
        where.append(_steered_text(func.lower(RE.hq_city), plain).in_(filters.city))
    employees = _steered_number(RE.employee_count, plain)
    if filters.employees_min is not None:
        where.append(employees >= filters.employees_min)
    if filters.employees_max is not None:
        where.append(employees <= filters.employees_max)
    revenue = _steered_number(RE.revenue_amount, plain)
    if filters.revenue_currency is not None:
        where.append(_steered_text(RE.revenue_currency, plain) == filters.revenue_currency)
        if filters.revenue_min is None and filters.revenue_max is None:
            where.append(RE.revenue_amount.is_not(None))
    if filters.revenue_min is not None:
        where.append(revenue >= filters.revenue_min)
    if filters.revenue_max is not None:
        where.append(revenue <= filters.revenue_max)
    founded = _steered_number(RE.founded_year, plain)
    if filters.founded_min is not None:
        where.append(founded >= filters.founded_min)
    if filters.founded_max is not None:
        where.append(founded <= filters.founded_max)
    if filters.has_website is not None:
        # Never through the domain index: a third of a registry may lack a website, and SQLite's planner
        # (without statistics) takes IS NULL on an indexed column for a narrow filter.
        site = func.coalesce(RE.domain, "")
        where.append(site != "" if filters.has_website else site == "")
    if filters.name is not None:
        # Aliases are a JSON array: its text holds each alias in JSON spelling (SQLite escapes non-ASCII).
        alias_text = json.dumps(filters.name, ensure_ascii=dialect == "sqlite")[1:-1]
        if name_index and len(filters.name) >= _TRIGRAM:
            where.append(_name_index_term(filters.name, alias_text))
        where.append(
            or_(
                func.lower(RE.name).contains(filters.name, autoescape=True),
                func.lower(cast(RE.aliases, Text)).contains(alias_text, autoescape=True),
            )
        )
    if filters.parent_kernel_id is not None:
        where.append(_steered_text(RE.parent_kernel_id, plain) == filters.parent_kernel_id)
    if filters.is_subsidiary is not None:
        where.append(
            RE.parent_kernel_id.is_not(None) if filters.is_subsidiary else RE.parent_kernel_id.is_(None)
        )
    if filters.kernel_ids:
        where.append(RE.kernel_id.in_(filters.kernel_ids))
    return where


def _database_key(session: AsyncSession) -> str:
    bind = session.get_bind()
    return str(bind.engine.url)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


# --- search ----------------------------------------------------------------------------------------------

SORTS: dict[str, Any] = {
    "kernel_id": RE.kernel_id,
    "name": RE.name,
    "employees": RE.employee_count,
    "revenue": RE.revenue_amount,
    "founded": RE.founded_year,
}
DEFAULT_SORT = "-employees"


@dataclass(frozen=True)
class Sort:
    key: str
    descending: bool

    @property
    def text(self) -> str:
        return ("-" if self.descending else "") + self.key


def parse_sort(raw: str | None) -> Sort:
    text = (raw or DEFAULT_SORT).strip()
    key = text.removeprefix("-")
    if key not in SORTS:
        raise InvalidInput(
            f"sort must be one of {', '.join(SORTS)} (prefix - for descending), not {text!r}",
            detail={"filter": "sort"},
        )
    return Sort(key, text.startswith("-"))


@dataclass(frozen=True)
class SearchPage:
    companies: list[RegistryEntity]
    total: int
    next_cursor: str | None
    sort: str


def _filters_hash(filters: Filters) -> str:
    return hashlib.sha256(json.dumps(filters.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _encode_cursor(sort: Sort, filters: Filters, value: Any, kernel_id: str) -> str:
    raw = json.dumps([sort.text, _filters_hash(filters), value, kernel_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: Sort, filters: Filters) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort_text, digest, value, kernel_id = json.loads(raw)
        if not isinstance(kernel_id, str) or not _KERNEL_ID.match(kernel_id):
            raise ValueError(kernel_id)
        if value is not None and not isinstance(value, str | int | float):
            raise ValueError(value)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API handed out", detail={"filter": "cursor"}) from None
    if sort_text != sort.text or digest != _filters_hash(filters):
        raise InvalidInput(
            "cursor belongs to another search: keep the filters and sort of the page that gave it",
            detail={"filter": "cursor"},
        )
    return value, kernel_id


# A search whose filters match at least this many companies walks the sort's index on SQLite (plain filter
# terms): about page_size x registry / matches rows read, against sorting every match.
WALK_SORT_INDEX_FROM = 5000
# ... but one whose name filter matches fewer than this many is read from the name index (SQLite's trigram
# index): reading every match costs less than walking past the many that do not match (measured on a million).
NAME_INDEX_PAGE_UNTIL = 20_000


async def _page(
    session: AsyncSession,
    filters: Filters,
    sort: Sort,
    after: tuple[Any, str] | None,
    limit: int,
    *,
    plain: bool,
    total: int,
) -> list[RegistryEntity]:
    """Up to ``limit`` companies after the cursor position, in the order of ``sort`` then kernel_id, companies
    without the sort value last. Read in two parts (with the value, then without), each in an index's own
    order: no NULLS LAST clause, which neither store serves from a plain index in both directions."""
    # A name found in many companies: walking the sort order finds a page among the first few thousand rows,
    # sooner than reading every match from the name index.
    name_index = not plain or total < NAME_INDEX_PAGE_UNTIL
    where = await _where(session, filters, plain=plain, name_index=name_index)
    column = SORTS[sort.key]
    if sort.key == "kernel_id":
        if after is not None:
            where.append(column < after[1] if sort.descending else column > after[1])
        return await _read(session, where, [column.desc() if sort.descending else column], limit)
    rows: list[RegistryEntity] = []
    value, kernel_id = after if after is not None else (None, "")
    if after is None or value is not None:
        terms = [*where, column.is_not(None)]
        if after is not None:
            beyond = column < value if sort.descending else column > value
            terms.append(or_(beyond, and_(column == value, RE.kernel_id > kernel_id)))
        order = column.desc() if sort.descending else column.asc()
        rows = await _read(session, terms, [order, RE.kernel_id], limit)
        kernel_id = ""
    if len(rows) < limit:
        terms = [*where, column.is_(None), RE.kernel_id > kernel_id]
        rows += await _read(session, terms, [RE.kernel_id], limit - len(rows))
    return rows


async def _read(
    session: AsyncSession, where: Sequence[ColumnElement[bool]], order: Sequence[Any], limit: int
) -> list[RegistryEntity]:
    """The first ``limit`` companies in ``order``. On PostgreSQL the page's kernel_ids first, then their rows:
    where an index holds the filters' columns, the sort's and kernel_id (the country index of migration 0015),
    the kernel_ids come from the index alone, and only the page's rows are read from the table."""
    if _dialect(session) == "postgresql":
        page = select(RE.kernel_id).where(*where).order_by(*order).limit(limit)
        stmt = select(RE).where(RE.kernel_id.in_(page)).order_by(*order)
    else:
        stmt = select(RE).where(*where).order_by(*order).limit(limit)
    return list(await session.scalars(stmt))


async def count(session: AsyncSession, filters: Filters) -> int:
    where = await _where(session, filters)
    return int(await session.scalar(select(func.count()).select_from(RE).where(*where)) or 0)


async def search(
    session: AsyncSession, filters: Filters, *, sort: Sort, cursor: str | None, page_size: int
) -> SearchPage:
    """One page of the registry companies that fit, the total count, and the cursor of the next page."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}", detail={"filter": "page_size"})
    after = _decode_cursor(cursor, sort, filters) if cursor else None
    total = await count(session, filters)
    plain = _dialect(session) == "sqlite" and total >= WALK_SORT_INDEX_FROM and not filters.kernel_ids
    rows = await _page(session, filters, sort, after, page_size + 1, plain=plain, total=total)
    next_cursor = None
    if len(rows) > page_size:
        rows = rows[:page_size]
        last = rows[-1]
        value = getattr(last, SORTS[sort.key].key)
        next_cursor = _encode_cursor(sort, filters, value, last.kernel_id)
    return SearchPage(companies=rows, total=total, next_cursor=next_cursor, sort=sort.text)


def company_record(entity: RegistryEntity) -> dict[str, Any]:
    """A search result: the firmographics record (as the firmographics tool gives it) and where it sits."""
    return {
        **firmographics_record(entity),
        "country": entity.country,
        "aliases": list(entity.aliases or []),
        "parent_kernel_id": entity.parent_kernel_id,
    }


FACET_FIELDS = {
    "industry": RE.industry,
    "sector": RE.sector,
    "country": RE.country_code,
    "company_type": RE.company_type,
    "city": RE.hq_city,
}
DEFAULT_FACETS = ("industry", "sector", "country", "company_type")


@dataclass(frozen=True)
class FacetValue:
    value: str
    count: int


def parse_facet_fields(raw: Sequence[str]) -> tuple[str, ...]:
    names = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    unknown = [name for name in names if name not in FACET_FIELDS]
    if unknown:
        raise InvalidInput(
            f"unknown facet field(s): {', '.join(map(repr, unknown))} (fields: {', '.join(FACET_FIELDS)})",
            detail={"filter": "fields"},
        )
    return tuple(dict.fromkeys(names)) or DEFAULT_FACETS


# Facets counted once per registry generation: every write to the registry bumps it (registry service), so a
# cached answer is exact until the registry changes. Per process, the most recent FACET_CACHE_SIZE answers.
FACET_CACHE_SIZE = 256
_FACET_CACHE: OrderedDict[tuple[Any, ...], tuple[int, dict[str, list[FacetValue]]]] = OrderedDict()


async def facets(
    session: AsyncSession, filters: Filters, names: Sequence[str], *, limit: int
) -> tuple[int, dict[str, list[FacetValue]]]:
    """The total of the companies that fit and, per field, its values among them with counts (most first).

    Counting every match costs up to about half a second on a registry of a million; the answer is cached
    until the registry's next write (its generation), so the pickers of a search screen cost that once."""
    if not 1 <= limit <= MAX_FACET_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_FACET_LIMIT}", detail={"filter": "limit"})
    generation = await registry_generation(session)
    key = (_database_key(session), generation, _filters_hash(filters), tuple(names), limit)
    if generation[0] and key in _FACET_CACHE:
        _FACET_CACHE.move_to_end(key)
        return _FACET_CACHE[key]
    answer = await _count_facets(session, filters, names, limit)
    if generation[0]:
        _FACET_CACHE[key] = answer
        while len(_FACET_CACHE) > FACET_CACHE_SIZE:
            _FACET_CACHE.popitem(last=False)
    return answer


async def _count_facets(
    session: AsyncSession, filters: Filters, names: Sequence[str], limit: int
) -> tuple[int, dict[str, list[FacetValue]]]:
    where = await _where(session, filters)
    total = int(await session.scalar(select(func.count()).select_from(RE).where(*where)) or 0)
    out: dict[str, list[FacetValue]] = {}
    for name in names:
        column = FACET_FIELDS[name]
        counted = func.count().label("n")
        result = await session.execute(
            select(column, counted)
            .where(*where, column.is_not(None))
            .group_by(column)
            .order_by(counted.desc(), column)
            .limit(limit)
        )
        out[name] = [FacetValue(str(value), int(n)) for value, n in result.all()]
    return total, out


# --- list building ---------------------------------------------------------------------------------------

# Registry fields a list writes into input columns, and the column names they go to by default.
FIELD_VALUES = {
    "name": lambda e: e.name,
    "website": lambda e: e.domain,
    "domain": lambda e: e.domain,
    "country": lambda e: e.country,
    "country_code": lambda e: e.country_code,
    "city": lambda e: e.hq_city,
    "kernel_id": lambda e: e.kernel_id,
    "industry": lambda e: e.industry,
    "sector": lambda e: e.sector,
    "employee_count": lambda e: e.employee_count,
    "founded_year": lambda e: e.founded_year,
    "company_type": lambda e: e.company_type,
}
DEFAULT_COLUMNS = {
    "company_name": "name",
    "company": "name",
    "name": "name",
    "website": "website",
    "domain": "domain",
    "url": "website",
    "country": "country",
    "country_code": "country_code",
    "city": "city",
    "kernel_id": "kernel_id",
}


@dataclass(frozen=True)
class ListSpec:
    """What to add: filters (kernel_ids among them) and which registry field goes to which input column."""

    filters: Filters
    columns: dict[str, str] = field(default_factory=dict)  # input column name -> registry field

    def as_dict(self) -> dict[str, Any]:
        return {"filters": self.filters.as_dict(), "columns": dict(sorted(self.columns.items()))}

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


def spec_from_dict(data: Mapping[str, Any]) -> ListSpec:
    """The spec stored with a build, read back."""
    raw = dict(data.get("filters") or {})
    kernel_ids = raw.pop("kernel_ids", [])
    filters = parse_filters(raw)
    if kernel_ids:
        filters = replace(filters, kernel_ids=tuple(kernel_ids))
    return ListSpec(filters=filters, columns=dict(data.get("columns") or {}))


def _column_mapping(columns: Sequence[Column], requested: Mapping[str, str] | None) -> dict[str, str]:
    """Input column name -> registry field: as requested, else by the columns' names."""
    inputs = {column.name: column for column in columns if not column.is_tool}
    if requested is not None:
        problems = []
        for column_name, registry_field in requested.items():
            if column_name not in inputs:
                problems.append(f"{column_name!r} is not an input column of the project")
            elif registry_field not in FIELD_VALUES:
                problems.append(
                    f"{column_name!r}: unknown registry field {registry_field!r} "
                    f"(fields: {', '.join(FIELD_VALUES)})"
                )
        if problems:
            raise InvalidInput(
                "columns: " + "; ".join(problems), detail={"filter": "columns", "problems": problems}
            )
        mapping = dict(requested)
    else:
        mapping = {name: DEFAULT_COLUMNS[name.lower()] for name in inputs if name.lower() in DEFAULT_COLUMNS}
    unmapped = [name for name, column in inputs.items() if column.required and name not in mapping]
    if unmapped:
        raise InvalidInput(
            f"columns: required column(s) {', '.join(map(repr, unmapped))} get no registry field; map them "
            f"in `columns` (fields: {', '.join(FIELD_VALUES)})",
            detail={"filter": "columns", "unmapped_required": unmapped},
        )
    entity_columns = [column for column in columns if column.tool_type == ENTITY_TOOL]
    if not mapping and not entity_columns:
        raise InvalidInput(
            "columns: the project has no column a registry company can fill (such as company_name, website, "
            "country, or an entity_resolution column); map its columns in `columns`",
            detail={"filter": "columns"},
        )
    return mapping


def entity_value(entity: RegistryEntity) -> dict[str, Any]:
    """The value of an entity_resolution cell for a company taken from the registry itself: the shape the tool
    writes for a match, certain (confidence 1.0), matched on its kernel_id."""
    return {
        "kernel_id": entity.kernel_id,
        "name": entity.name,
        "domain": entity.domain,
        "country": entity.country,
        "confidence": 1.0,
        "matched_on": ["kernel_id"],
        "candidates": [{"kernel_id": entity.kernel_id, "name": entity.name, "score": 1.0, "features": {}}],
    }


def _upsert(session: AsyncSession) -> Any:
    return pg_insert if _dialect(session) == "postgresql" else sqlite_insert


async def _lock_project(session: AsyncSession, project_id: str) -> None:
    """Builds of one project take turns (two at once would both see a company missing and both add it).
    FOR NO KEY UPDATE on PostgreSQL: rows posted to the project meanwhile (key-share locks) need not wait."""
    await session.execute(select(Project.id).where(Project.id == project_id).with_for_update(key_share=True))


async def _sync_resolved(session: AsyncSession, project_id: str, columns: Sequence[Column]) -> None:
    """Record the companies the project's rows already resolved to (their entity_resolution cells), so a
    list skips them as it skips the ones it added itself."""
    entity_ids = [column.id for column in columns if column.tool_type == ENTITY_TOOL]
    if not entity_ids:
        return
    kernel_id = Cell.value["kernel_id"].as_string()
    resolved = (
        select(Row.project_id, kernel_id, Row.pk)
        .join(Row, Row.pk == Cell.row_pk)
        .where(
            Row.project_id == project_id,
            Cell.column_id.in_(entity_ids),
            Cell.status == SUCCESS,
            kernel_id.is_not(None),
        )
    )
    stmt = (
        _upsert(session)(ProjectCompany)
        .from_select(["project_id", "kernel_id", "row_pk"], resolved)
        .on_conflict_do_nothing()
    )
    await session.execute(stmt)


async def _add_batch(
    session: AsyncSession,
    project: Project,
    columns: Sequence[Column],
    mapping: Mapping[str, str],
    entities: Sequence[RegistryEntity],
    *,
    max_chars: int,
    chunk_rows: int,
) -> tuple[int, int, int]:
    """Add these companies as rows, but those already in the project and those a required column has no
    value for; returns (added, skipped, rejected)."""
    present: set[str] = set()
    for chunk in _chunks([entity.kernel_id for entity in entities], _IN_MAX):
        present.update(
            await session.scalars(
                select(ProjectCompany.kernel_id).where(
                    ProjectCompany.project_id == project.id, ProjectCompany.kernel_id.in_(chunk)
                )
            )
        )
    fresh: list[RegistryEntity] = []
    valued: list[dict[str, Any]] = []
    rejected = 0
    for entity in entities:
        if entity.kernel_id in present:
            continue
        company = {name: FIELD_VALUES[field](entity) for name, field in mapping.items()}
        try:
            valued.append(projects.validate_company(columns, company, max_chars))
        except InvalidInput:
            # A required column the company has no value for (a website it lacks): it cannot be a row.
            rejected += 1
            continue
        fresh.append(entity)
    if not fresh:
        return 0, len(present), rejected
    entity_columns = [column for column in columns if column.tool_type == ENTITY_TOOL]
    outputs = [{column.id: entity_value(entity) for column in entity_columns} for entity in fresh]
    pks = await projects.insert_rows_with_outputs(
        session, project, columns, valued, outputs, chunk_rows=chunk_rows
    )
    await session.execute(
        _upsert(session)(ProjectCompany)
        .values(
            [
                {"project_id": project.id, "kernel_id": entity.kernel_id, "row_pk": pk}
                for entity, pk in zip(fresh, pks, strict=True)
            ]
        )
        .on_conflict_do_nothing()
    )
    # The entity cells are written as their tool would have written them: with their tool_output_ready events.
    for column in entity_columns:
        await emit_tool_outputs(session, column, pks)
    return len(pks), len(present), rejected


async def _next_entities(
    session: AsyncSession, filters: Filters, after: str, limit: int
) -> list[RegistryEntity]:
    where = await _where(session, filters)
    stmt = select(RE).where(*where, RE.kernel_id > after).order_by(RE.kernel_id).limit(limit)
    return list(await session.scalars(stmt))


@dataclass(frozen=True)
class StartedBuild:
    build: ListBuild
    # False when an identical build of this project was still running: that one is answered.
    created: bool


async def start_build(
    session: AsyncSession,
    account: Account,
    project_id: str,
    filters: Filters,
    columns_requested: Mapping[str, str] | None,
    *,
    foreground_max: int,
    max_companies: int,
    batch_rows: int,
    max_chars: int,
    chunk_rows: int,
) -> StartedBuild:
    """Check a list request and either add its companies now (when at most ``foreground_max`` match) or
    record a build for the background (the caller queues it). Nothing is written when it is refused."""
    project = await projects.get_project(session, account, project_id)
    if filters.empty:
        raise InvalidInput(
            "give filters or kernel_ids: a list of the whole registry is not built",
            detail={"filter": "filters"},
        )
    filters = await check_filters(session, filters)
    columns = await projects.list_columns(session, project)
    mapping = _column_mapping(columns, columns_requested)
    spec = ListSpec(filters=filters, columns=mapping)
    await _lock_project(session, project.id)
    running = await session.scalar(
        select(ListBuild)
        .where(
            ListBuild.project_id == project.id,
            ListBuild.spec_hash == spec.digest,
            ListBuild.status.in_(ACTIVE_STATUSES),
        )
        .limit(1)
    )
    if running is not None:
        return StartedBuild(running, created=False)
    matched = await count(session, filters)
    if matched > max_companies:
        raise InvalidInput(
            f"filters: {matched:,} companies match; a list takes at most {max_companies:,} "
            "(narrow the filters)",
            detail={"filter": "filters", "matched": matched, "max_companies": max_companies},
        )
    build = ListBuild(
        project_id=project.id, spec=spec.as_dict(), spec_hash=spec.digest, status=QUEUED, matched=matched
    )
    session.add(build)
    await session.flush()
    await _sync_resolved(session, project.id, columns)
    if matched <= foreground_max:
        while await run_batch(
            session,
            build,
            project,
            columns,
            batch_rows=batch_rows,
            max_chars=max_chars,
            chunk_rows=chunk_rows,
        ):
            pass
    return StartedBuild(build, created=True)


async def run_batch(
    session: AsyncSession,
    build: ListBuild,
    project: Project,
    columns: Sequence[Column],
    *,
    batch_rows: int,
    max_chars: int,
    chunk_rows: int,
) -> bool:
    """Add the next batch of a build; True while more may follow. The caller holds the project's lock."""
    spec = ListSpec(filters=spec_from_dict(build.spec).filters, columns=dict(build.spec.get("columns") or {}))
    entities = await _next_entities(session, spec.filters, build.after_kernel_id, batch_rows)
    added, skipped, rejected = 0, 0, 0
    if entities:
        added, skipped, rejected = await _add_batch(
            session, project, columns, spec.columns, entities, max_chars=max_chars, chunk_rows=chunk_rows
        )
    now = utcnow()
    build.processed += len(entities)
    build.added += added
    build.skipped += skipped
    build.rejected += rejected
    build.updated_at = now
    if entities:
        build.after_kernel_id = entities[-1].kernel_id
    more = len(entities) == batch_rows
    build.status = RUNNING if more else DONE
    if not more:
        build.finished_at = now
        # The registry may have changed since the count: the total is what was processed.
        build.matched = build.processed
    await session.flush()
    return more


async def continue_build(
    session: AsyncSession, build_id: str, *, batch_rows: int, max_chars: int, chunk_rows: int
) -> bool:
    """One background step of a build (in the caller's transaction); True while more follow. A build that is
    finished, or whose project is gone, does nothing."""
    build = await session.get(ListBuild, build_id)
    if build is None or build.status not in ACTIVE_STATUSES:
        return False
    await _lock_project(session, build.project_id)
    await session.refresh(build)
    if build.status not in ACTIVE_STATUSES:
        return False
    project = await session.get(Project, build.project_id)
    if project is None:
        return False
    columns = await projects.list_columns(session, project)
    return await run_batch(
        session, build, project, columns, batch_rows=batch_rows, max_chars=max_chars, chunk_rows=chunk_rows
    )


async def get_build(session: AsyncSession, account: Account, project_id: str, build_id: str) -> ListBuild:
    project = await projects.get_project(session, account, project_id)
    build = await session.scalar(
        select(ListBuild).where(ListBuild.id == build_id, ListBuild.project_id == project.id)
    )
    if build is None:
        raise NotFound(f"list {build_id} not found in project {project_id}")
    return build


async def list_builds(session: AsyncSession, account: Account, project_id: str) -> list[ListBuild]:
    project = await projects.get_project(session, account, project_id)
    result = await session.scalars(
        select(ListBuild)
        .where(ListBuild.project_id == project.id)
        .order_by(ListBuild.created_at, ListBuild.id)
    )
    return list(result)


def with_kernel_ids(filters: Filters, kernel_ids: tuple[str, ...]) -> Filters:
    """``filters`` narrowed to exactly these companies (an empty list is refused: it would mean none)."""
    if not kernel_ids:
        raise _bad("kernel_ids", "must not be empty")
    return replace(filters, kernel_ids=kernel_ids)


async def build_by_id(session: AsyncSession, build_id: str) -> ListBuild:
    build = await session.get(ListBuild, build_id, populate_existing=True)
    if build is None:
        raise NotFound(f"list {build_id} not found")
    return build


async def fail_build(session: AsyncSession, build_id: str, message: str) -> None:
    """End an unfinished build as failed (its command stopped); what it added stays."""
    await session.execute(
        update(ListBuild)
        .where(ListBuild.id == build_id, ListBuild.status.in_(ACTIVE_STATUSES))
        .values(status=FAILED, error=message, updated_at=utcnow(), finished_at=utcnow())
    )
