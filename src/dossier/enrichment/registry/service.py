"""The reference registry: the default build, file imports (upserts), reads and the firmographics record.

Services flush and never commit: the caller owns the transaction (the CLI runs a whole import in one, so a
failed import leaves the registry as it was).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import re
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

from sqlalchemy import Table, delete, exists, func, select, update
from sqlalchemy import text as text_sql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import utcnow
from dossier.enrichment.registry import name_index
from dossier.enrichment.registry.countries import COUNTRIES, country_code, is_country_code
from dossier.enrichment.registry.index_cache import invalidate_index
from dossier.enrichment.registry.models import RegistryEntity, RegistryState
from dossier.enrichment.registry.normalize import fold, registrable_domain
from dossier.enrichment.registry.pytickersymbols_source import SOURCE as DEFAULT_SOURCE
from dossier.enrichment.registry.pytickersymbols_source import iter_default_records, parse_employees
from dossier.errors import InvalidInput
from dossier.settings import Settings, get_settings

DEFAULT_IMPORT_SOURCE = "import"
BATCH_SIZE = 2000

# Every column an import file may carry (besides these, a column's value goes to ``extra``).
STRING_LIMITS: dict[str, int] = {
    "name": 300,
    "source": 64,
    "source_key": 200,
    "domain": 253,
    "country": 100,
    "industry": 200,
    "sector": 200,
    "hq_city": 200,
    "hq_country": 100,
    "address": 500,
    "postal_code": 20,
    "company_type": 100,
}
# Spellings accepted for the typed columns (listed-companies.csv.gz uses the right-hand side's keys).
COLUMN_ALIASES: dict[str, str] = {
    "city": "hq_city",
    "headquarters_city": "hq_city",
    "headquarters_country": "hq_country",
    "summary": "description",
    "isin": "isins",
    "employees": "employee_count",
    "founded": "founded_year",
    "revenue": "revenue_amount",
    "currency": "revenue_currency",
    "website": "domain",
    "id": "kernel_id",
    "zipcode": "postal_code",
    "zip_code": "postal_code",
    "zip": "postal_code",
    "postcode": "postal_code",
    "postal": "postal_code",
}
_ENTITY_COLUMNS = frozenset(c.key for c in RegistryEntity.__table__.columns) - {"updated_at"}
_EMPTY_ROW: dict[str, Any] = dict.fromkeys(_ENTITY_COLUMNS)
_TABLE: Table = RegistryEntity.__table__  # type: ignore[assignment]
_LIST_SPLIT = re.compile(r"\s*[|;]\s*")


class RegistryImportError(InvalidInput):
    """The file as a whole cannot be imported (unreadable, wrong format, no name column)."""


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did. ``rejected`` rows were skipped entirely; the others were written."""

    rows: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    # Entities deleted because they left the file's sources (``remove_missing``), and whether that was
    # refused because rows were rejected.
    removed: int = 0
    removal_skipped: bool = False
    sources: set[str] = field(default_factory=set)
    bytes_read: int = 0
    bytes_total: int = 0


ProgressCallback = Callable[[ImportReport], None]


def kernel_id_for(source: str, source_key: str) -> str:
    """The stable kernel_id of (source, source_key): 18 digits of a SHA-256, the same on every install.

    18 digits rather than 10 so that a registry of millions of entities has no realistic collision.
    """
    digest = hashlib.sha256(f"{source}\x1f{source_key}".encode()).digest()
    return str(10**17 + int.from_bytes(digest[:8], "big") % (9 * 10**17))


# --- upsert ----------------------------------------------------------------------------------------------


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _full_row(values: Mapping[str, Any], stamp: datetime | None = None) -> dict[str, Any]:
    row: dict[str, Any] = dict(_EMPTY_ROW)
    row.update(aliases=[], isins=[], extra={})
    row.update(values)
    row["updated_at"] = stamp or utcnow()
    return row


async def _upsert(
    session: AsyncSession, rows: list[dict[str, Any]], provided: Iterable[str], update: bool
) -> None:
    """Insert complete rows; on a known kernel_id update only the ``provided`` columns (or nothing).

    Core statements with one parameter set per row (executemany; multi-row VALUES on PostgreSQL): the ORM's
    per-object bookkeeping would cost more than the database does.
    """
    if not rows:
        return
    if update and session.get_bind().dialect.name == "postgresql":
        await _copy_upsert(session, rows, provided)
        return
    insert = _insert(session)
    stmt = insert(_TABLE)
    if update:
        columns = [*sorted(set(provided) - {"kernel_id"}), "updated_at"]
        stmt = stmt.on_conflict_do_update(
            index_elements=["kernel_id"], set_={c: getattr(stmt.excluded, c) for c in columns}
        )
    else:
        stmt = stmt.on_conflict_do_nothing()
    await session.execute(stmt, rows)


_JSON_COLUMNS = frozenset({"aliases", "isins", "extra"})
_STAGING = "registry_import_staging"


async def _copy_upsert(session: AsyncSession, rows: list[dict[str, Any]], provided: Iterable[str]) -> None:
    """PostgreSQL: COPY the rows into a temporary table, then one INSERT ... SELECT ... ON CONFLICT.

    Set-based: a batch costs two statements whatever its size, where an executemany costs a round of
    parsing and planning per row.
    """
    columns = [c.name for c in _TABLE.columns]
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} "
        "(LIKE registry_entities INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    await driver.execute(f"TRUNCATE {_STAGING}")
    records = [tuple(json.dumps(row[c]) if c in _JSON_COLUMNS else row[c] for c in columns) for row in rows]
    await driver.copy_records_to_table(_STAGING, records=records, columns=columns)
    updated = [*sorted(set(provided) - {"kernel_id"}), "updated_at"]
    names = ", ".join(columns)
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)
    await driver.execute(
        f"INSERT INTO registry_entities ({names}) SELECT {names} FROM {_STAGING} "
        f"ON CONFLICT (kernel_id) DO UPDATE SET {assignments}"
    )


async def bump_generation(session: AsyncSession) -> int:
    """Mark the registry as changed: a new generation (and token) that index snapshots are named after.

    Every write to ``registry_entities`` calls this in the same transaction, so a process that sees the new
    generation also sees the rows. Returns the new generation. Flushes; the caller commits.
    """
    token = uuid.uuid4().hex
    now = utcnow()
    result = await session.execute(
        update(RegistryState)
        .where(RegistryState.id == 1)
        .values(generation=RegistryState.generation + 1, token=token, changed_at=now)
    )
    if not getattr(result, "rowcount", 0):
        insert = _insert(session)
        await session.execute(
            insert(RegistryState)
            .values(id=1, generation=1, token=token, changed_at=now)
            .on_conflict_do_update(
                index_elements=["id"],
                set_={"generation": RegistryState.generation + 1, "token": token, "changed_at": now},
            )
        )
    await session.flush()
    invalidate_index()
    return int(await session.scalar(select(RegistryState.generation).where(RegistryState.id == 1)) or 0)


async def registry_generation(session: AsyncSession) -> tuple[int, str]:
    """The registry's (generation, token); (0, "") for a registry never written to."""
    row = (
        await session.execute(
            select(RegistryState.generation, RegistryState.token).where(RegistryState.id == 1)
        )
    ).one_or_none()
    return (int(row[0]), str(row[1])) if row is not None else (0, "")


async def build_default_registry(session: AsyncSession) -> int:
    """Build the default registry from pytickersymbols when it has no entity of that source yet.

    Whatever the settings say (``dossier registry build-default`` calls this). Idempotent and safe when
    several processes start at once (conflicting inserts are ignored). Returns the number of entities inserted
    (0 when it was already there). Flushes; the caller commits.
    """
    present = await session.scalar(select(exists().where(RegistryEntity.source == DEFAULT_SOURCE)))
    if present:
        return 0
    records = list(iter_default_records())
    for record in records:
        record["kernel_id"] = kernel_id_for(DEFAULT_SOURCE, record["source_key"])
    for start in range(0, len(records), BATCH_SIZE):
        await _upsert(session, [_full_row(r) for r in records[start : start + BATCH_SIZE]], (), update=False)
    await session.flush()
    await bump_generation(session)
    return len(records)


async def ensure_default_registry(session: AsyncSession, settings: Settings | None = None) -> int:
    """Build the default registry if the deployment uses it (``registry_builtin``) and it is not there yet.

    With ``DOSSIER_REGISTRY_BUILTIN=false`` nothing is built: entity resolution matches only the companies the
    deployment imported. ``settings`` defaults to the process settings. Returns the number of entities
    inserted. Flushes; the caller commits.
    """
    if not (settings if settings is not None else get_settings()).registry_builtin:
        return 0
    return await build_default_registry(session)


async def entity_count(session: AsyncSession, source: str | None = None) -> int:
    """How many entities the registry holds (of one source, if given)."""
    stmt = select(func.count()).select_from(RegistryEntity)
    if source is not None:
        stmt = stmt.where(RegistryEntity.source == source)
    return int(await session.scalar(stmt) or 0)


async def get_entity(session: AsyncSession, kernel_id: str) -> RegistryEntity | None:
    """The entity with this kernel_id, or None."""
    return await session.get(RegistryEntity, str(kernel_id).strip())


@dataclass(frozen=True)
class SourceCount:
    source: str
    companies: int


async def list_sources(session: AsyncSession) -> list[SourceCount]:
    """Every source in the registry with its number of entities, largest first (then by name)."""
    count = func.count().label("companies")
    result = await session.execute(
        select(RegistryEntity.source, count)
        .group_by(RegistryEntity.source)
        .order_by(count.desc(), RegistryEntity.source)
    )
    return [SourceCount(source, int(companies)) for source, companies in result]


async def delete_source(session: AsyncSession, source: str) -> int:
    """Delete every entity of ``source``; returns how many were deleted (0 for an unknown source).

    Flushes; the caller commits. This process's index notices at once; other processes within their index
    check interval (the entity count changes).
    """
    result = await session.execute(delete(RegistryEntity).where(RegistryEntity.source == source))
    deleted = int(getattr(result, "rowcount", 0) or 0)
    await session.flush()
    if deleted:
        await bump_generation(session)
    return deleted


# --- reading import files --------------------------------------------------------------------------------


class _CountingReader(io.RawIOBase):
    """Counts the bytes read from the file on disk (compressed bytes for .gz), for the progress bar."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def _open_text(path: Path) -> tuple[IO[str], _CountingReader, int, bytes]:
    """The file as text (gunzipped when it is gzip), its byte counter, its size and its first bytes."""
    size = path.stat().st_size
    raw = _CountingReader(path.open("rb"))
    buffered = io.BufferedReader(raw, buffer_size=1 << 16)
    # Both readers have peek(); typeshed gives them no common type that TextIOWrapper accepts.
    binary: Any = buffered
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        binary = gzip.GzipFile(fileobj=buffered, mode="rb")
    head: bytes = binary.peek(64)[:64]
    # utf-8-sig: spreadsheet exports start with a byte-order mark.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline=""), raw, size, head


def _detect_format(path: Path, head: bytes) -> Literal["csv", "jsonl"]:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffixes and suffixes[-1] in {".csv", ".tsv", ".txt"}:
        return "csv"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def _iter_csv(text: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise RegistryImportError("the file is empty (expected a header row with a 'name' column)") from None
    header = [h.strip().lower() for h in header]
    if "name" not in header:
        raise RegistryImportError(f"no 'name' column in the header (found: {', '.join(header) or 'nothing'})")
    line = reader.line_num + 1
    for values in reader:
        start, line = line, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield start, f"expected {len(header)} fields, found {len(values)}"
            continue
        yield start, dict(zip(header, values, strict=True))


def _iter_jsonl(text: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg})"
            continue
        if not isinstance(value, dict):
            yield number, "not a JSON object"
            continue
        yield number, {str(k).strip().lower(): v for k, v in value.items()}


# --- validating one row ----------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise ValueError("expected text")
    text = str(value).strip()
    return text or None


def _int(value: Any, column: str, low: int, high: int) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{column}: not a number")
    if isinstance(value, (int, float)):
        number = int(value)
    else:
        text = str(value).strip().replace("_", "")
        if not re.fullmatch(r"\d{1,3}(,\d{3})+|\d+(\.0+)?", text):
            raise ValueError(f"{column}: {str(value)[:40]!r} is not a whole number")
        number = int(float(text.replace(",", "")))
    if not low <= number <= high:
        raise ValueError(f"{column}: {number} is out of range")
    return number


def _float(value: Any, column: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{column}: not a number")
    try:
        number = float(str(value).replace(",", "")) if isinstance(value, str) else float(value)
    except ValueError:
        raise ValueError(f"{column}: {str(value)[:40]!r} is not a number") from None
    if number != number or number < 0:
        raise ValueError(f"{column}: must be a non-negative number")
    return number


def _list(value: Any, column: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        items = [str(v).strip() for v in value if v is not None]
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"{column}: not a JSON list") from None
            return _list(parsed if isinstance(parsed, list) else None, column)
        items = _LIST_SPLIT.split(text)
    else:
        raise ValueError(f"{column}: expected a list")
    return [i for i in dict.fromkeys(items) if i]


def parse_row(raw: Mapping[str, Any], default_source: str) -> tuple[dict[str, Any], set[str]]:
    """Validate one import row -> (column values, the columns it provides); ValueError says why not."""
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        column = COLUMN_ALIASES.get(key, key)
        if column in _ENTITY_COLUMNS and column not in values:
            values[column] = value
        elif key not in _ENTITY_COLUMNS and value not in (None, ""):
            extra[key] = value
    out: dict[str, Any] = {}
    provided: set[str] = set()
    name = _text(values.get("name"))
    if name is None:
        raise ValueError("name is required")
    out["name"] = name
    for column, limit in STRING_LIMITS.items():
        if column in ("name", "domain"):
            continue
        if column in values:
            text = _text(values[column])
            if text is not None and len(text) > limit:
                raise ValueError(f"{column}: longer than {limit} characters")
            out[column] = text
    if "domain" in values:
        given = _text(values["domain"])
        domain = registrable_domain(given)
        if given and domain is None and "domain" in raw:
            raise ValueError(f"domain: {given[:60]!r} is not a domain name")
        out["domain"] = domain
    kernel_id = _text(values.get("kernel_id"))
    if kernel_id is not None and not re.fullmatch(r"\d{1,20}", kernel_id):
        raise ValueError("kernel_id: must be 1 to 20 digits")
    out["kernel_id"] = kernel_id
    if "parent_kernel_id" in values:
        parent = _text(values["parent_kernel_id"])
        if parent is not None and not re.fullmatch(r"\d{1,20}", parent):
            raise ValueError("parent_kernel_id: must be 1 to 20 digits")
        if parent is not None and parent == kernel_id:
            raise ValueError("parent_kernel_id: a company cannot be its own parent")
        out["parent_kernel_id"] = parent
    if "country_code" in values or "country" in values:
        # Either column may hold a code (alpha-2 or alpha-3) or a name: "GH", "GHA" and "Ghana" are all GH.
        code_text = _text(values.get("country_code"))
        code = country_code(code_text) if code_text else country_code(out.get("country"))
        if code_text and code is None:
            raise ValueError(
                f"country_code: {code_text[:40]!r} is not an ISO 3166 country code or a known country name"
            )
        out["country_code"] = code
        if code is not None and (out.get("country") is None or is_country_code(out.get("country"))):
            out["country"] = COUNTRIES[code]
    if "employee_count" in values:
        raw_count = values["employee_count"]
        try:
            out["employee_count"] = _int(raw_count, "employee_count", 0, 10**8)
        except ValueError:
            # Free text such as "23,299 (December, 2024)" is read the way the default registry reads it.
            parsed = parse_employees(raw_count)
            if parsed is None:
                raise
            out["employee_count"] = parsed
    for column in ("founded_year", "revenue_year"):
        if column in values:
            out[column] = _int(values[column], column, 1000, 2200)
    if "revenue_amount" in values:
        out["revenue_amount"] = _float(values["revenue_amount"], "revenue_amount")
    if "revenue_currency" in values:
        currency = _text(values["revenue_currency"])
        if currency is not None and not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise ValueError("revenue_currency: must be a 3-letter ISO 4217 code")
        out["revenue_currency"] = currency.upper() if currency else None
    if "description" in values:
        out["description"] = _text(values["description"])
    for column in ("aliases", "isins"):
        if column in values:
            items = _list(values[column], column)
            if column == "isins":
                items = [i.upper() for i in items]
                bad = [i for i in items if not re.fullmatch(r"[A-Z]{2}[A-Z0-9]{9}\d", i)]
                if bad:
                    raise ValueError(f"isins: {bad[0][:20]!r} is not an ISIN")
            out[column] = items
    if "extra" in values and isinstance(values["extra"], dict):
        extra = {**values["extra"], **extra}
    if extra:
        out["extra"] = {k: v for k, v in extra.items() if k not in {"source", "source_key"}}
    # Listing files give the headquarters' country as "country": use it when no HQ country is given.
    if out.get("hq_country") is None and out.get("country") and ("hq_city" in out or "hq_country" in values):
        out["hq_country"] = out["country"]
    # source/source_key count as provided only when the row gives them: an update by kernel_id keeps the
    # entity's own key otherwise.
    provided = {k for k in out if k not in {"kernel_id", "source", "source_key"}}
    provided |= {k for k in ("source", "source_key") if out.get(k)}
    source = out.get("source") or default_source
    out["source"] = source
    source_key = out.get("source_key") or _text(raw.get("symbol"))
    if source_key is None and kernel_id is None:
        # Nothing identifies the row but its name: the same name and country is the same entity on re-import.
        source_key = f"{fold(name)}|{out.get('country_code') or ''}"
    out["source_key"] = (source_key or f"kernel:{kernel_id}")[:200]
    return out, provided


# --- import ----------------------------------------------------------------------------------------------


async def _write_batch(
    session: AsyncSession,
    batch: list[tuple[int, dict[str, Any], set[str]]],
    report: ImportReport,
    stamp: datetime,
) -> None:
    keys = {(row["source"], row["source_key"]) for _, row, _ in batch}
    by_key: dict[tuple[str, str], str] = {}
    by_source: dict[str, list[str]] = {}
    for src, key in keys:
        by_source.setdefault(src, []).append(key)
    # One source and a list of keys per query: a list of (source, key) pairs is not planned as an index
    # lookup on PostgreSQL, and each batch would scan the table.
    for src, source_keys in by_source.items():
        result = await session.execute(
            select(RegistryEntity.source_key, RegistryEntity.kernel_id).where(
                RegistryEntity.source == src, RegistryEntity.source_key.in_(source_keys)
            )
        )
        by_key.update({(src, k): kid for k, kid in result})
    known = set(by_key.values())
    resolved: dict[str, tuple[dict[str, Any], set[str]]] = {}
    for line, row, provided in batch:
        key = (row["source"], row["source_key"])
        owner = by_key.get(key)
        kernel_id = row["kernel_id"] or owner or kernel_id_for(*key)
        if owner is not None and owner != kernel_id:
            report.rejected.append(
                RejectedRow(line, f"source_key {key[1]!r} of source {key[0]!r} belongs to kernel_id {owner}")
            )
            continue
        by_key[key] = kernel_id
        row["kernel_id"] = kernel_id
        resolved[kernel_id] = (row, provided)  # a later row for the same entity wins
        report.sources.add(key[0])
    if not resolved:
        return
    # Rows found by their source key exist; only the others (new keys, or an explicit kernel_id) need a look.
    unknown = [kid for kid in resolved if kid not in known]
    existing = set(known & resolved.keys())
    for start in range(0, len(unknown), 5000):
        existing.update(
            (
                await session.scalars(
                    select(RegistryEntity.kernel_id).where(
                        RegistryEntity.kernel_id.in_(unknown[start : start + 5000])
                    )
                )
            ).all()
        )
    # New entities: one statement with every column. Known ones: one statement per set of provided columns,
    # so a column the file does not have is left as it was.
    fresh: list[dict[str, Any]] = []
    fresh_columns: set[str] = set()
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for kernel_id, (row, provided) in resolved.items():
        if kernel_id in existing:
            groups.setdefault(frozenset(provided), []).append(_full_row(row, stamp))
            report.updated += 1
        else:
            fresh.append(_full_row(row, stamp))
            fresh_columns |= provided
            report.inserted += 1
    # A concurrent import may have inserted a new one meanwhile: it is then updated like a known one.
    await _upsert(session, fresh, fresh_columns, update=True)
    for provided_columns, rows in groups.items():
        await _upsert(session, rows, provided_columns, update=True)


# SQLite's page cache while an import runs (KiB), and its default (negative: KiB; SQLite's own default).
_IMPORT_CACHE_KIB = 256 * 1024
_SQLITE_DEFAULT_CACHE = -2000


@contextlib.asynccontextmanager
async def _import_page_cache(session: AsyncSession, *, sqlite: bool) -> AsyncIterator[None]:
    """On SQLite, a 256 MB page cache for the import, back to the default after it, failed or not.

    Every row goes into a dozen indexes (the matcher's and list building's) in random key order: with SQLite's
    default 2 MB page cache each batch re-reads most index pages from the file. The setting belongs to the
    connection, not the transaction, so a failed import must reset it too (unless its session can no longer
    run a statement)."""
    if not sqlite:
        yield
        return
    await session.execute(text_sql(f"PRAGMA cache_size = -{_IMPORT_CACHE_KIB}"))
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await session.execute(text_sql(f"PRAGMA cache_size = {_SQLITE_DEFAULT_CACHE}"))


# An import this large (rows, estimated from the file's size) rebuilds SQLite's name index once.
_BULK_ROWS = 50_000


async def _bulk_name_index(session: AsyncSession, report: ImportReport, read: int, total: int) -> bool:
    """After the first batch: suspend SQLite's name index for the rest of the import when the file holds
    many rows, more than half the registry's (a rebuild reads the whole table)."""
    if not read or not total or not await name_index.present(session):
        return False
    estimated = report.rows * total // read
    if estimated < _BULK_ROWS:
        return False
    existing = await session.scalar(select(func.count()).select_from(RegistryEntity)) or 0
    if estimated * 2 < existing:
        return False
    await name_index.suspend(session)
    return True


async def import_file(
    session: AsyncSession,
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    batch_size: int = BATCH_SIZE,
    progress: ProgressCallback | None = None,
    remove_missing: bool = False,
) -> ImportReport:
    """Import a CSV or JSONL file (optionally gzip-compressed) into the registry, streaming in batches.

    Each row is upserted: by ``kernel_id`` when given, else by (``source``, ``source_key``) (source defaults
    to ``source``/"import", source_key to the ``symbol`` column, else name and country); a known source key
    keeps its kernel_id. Invalid rows are rejected with their line number and never partly written.

    ``remove_missing``: afterwards delete the entities of the file's sources that the file no longer has
    (``report.removed``); refused (``report.removal_skipped``) when a row was rejected, since a rejected row
    would otherwise count as gone. Raises RegistryImportError when the file as a whole cannot be read.
    Flushes after every batch and bumps the registry generation; the caller commits (or rolls back all).
    """
    file_path = Path(path)
    default_source = (source or DEFAULT_IMPORT_SOURCE).strip()
    if not default_source or len(default_source) > 64:
        raise RegistryImportError("the source name must be 1 to 64 characters")
    try:
        text, counter, total, head = _open_text(file_path)
    except OSError as exc:
        raise RegistryImportError(f"cannot read {file_path}: {exc.strerror or exc}") from None
    report = ImportReport(bytes_total=total)
    # Every entity this import writes gets this updated_at: the ones without it left the source.
    stamp = utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    analyzed = 0
    # Whether SQLite's name index is rebuilt once at the end instead of row by row (decided after a batch).
    bulk: bool | None = None
    async with _import_page_cache(session, sqlite=not postgres):
        try:
            with text:
                kind = _detect_format(file_path, head)
                rows = _iter_jsonl(text) if kind == "jsonl" else _iter_csv(text)
                batch: list[tuple[int, dict[str, Any], set[str]]] = []
                for line, item in rows:
                    report.rows += 1
                    if isinstance(item, str):
                        report.rejected.append(RejectedRow(line, item))
                    else:
                        try:
                            values, provided = parse_row(item, default_source)
                        except ValueError as exc:
                            report.rejected.append(RejectedRow(line, str(exc)))
                        else:
                            batch.append((line, values, provided))
                    if len(batch) >= batch_size:
                        await _write_batch(session, batch, report, stamp)
                        batch = []
                        if bulk is None:
                            bulk = await _bulk_name_index(session, report, counter.count, total)
                        if postgres and report.inserted >= 2 * analyzed + batch_size:
                            # Fresh statistics as the table grows within this transaction: planned on an empty
                            # table's, the key lookups of each batch would scan the whole table.
                            await session.execute(text_sql("ANALYZE registry_entities"))
                            analyzed = report.inserted
                        report.bytes_read = counter.count
                        if progress is not None:
                            progress(report)
                await _write_batch(session, batch, report, stamp)
        except (UnicodeDecodeError, OSError, EOFError, csv.Error, zlib.error) as exc:
            message = f"cannot read {file_path.name} after row {report.rows}: {exc}"
            raise RegistryImportError(message) from None
        if remove_missing:
            if report.rejected:
                report.removal_skipped = True
            elif report.sources:
                result = await session.execute(
                    delete(RegistryEntity).where(
                        RegistryEntity.source.in_(sorted(report.sources)), RegistryEntity.updated_at != stamp
                    )
                )
                report.removed = int(getattr(result, "rowcount", 0) or 0)
        await session.flush()
        if bulk:
            await name_index.rebuild(session)
    report.bytes_read = total
    if progress is not None:
        progress(report)
    if report.inserted or report.updated or report.removed:
        await bump_generation(session)
    return report


# --- firmographics ---------------------------------------------------------------------------------------


def firmographics_record(entity: RegistryEntity) -> dict[str, Any]:
    """The firmographics value of an entity: always the same keys, null where the registry has nothing."""
    code = entity.country_code or country_code(entity.country)
    has_revenue = entity.revenue_amount is not None
    amount: float | int | None = entity.revenue_amount
    if amount is not None and float(amount).is_integer():
        amount = int(amount)
    return {
        "kernel_id": entity.kernel_id,
        "name": entity.name,
        "domain": entity.domain,
        "industry": entity.industry,
        "sector": entity.sector,
        "employee_count": entity.employee_count,
        "revenue": {
            "amount": amount,
            "currency": entity.revenue_currency if has_revenue else None,
            "year": entity.revenue_year if has_revenue else None,
        },
        "headquarters": {"city": entity.hq_city, "country": entity.hq_country},
        "country_code": code,
        "founded_year": entity.founded_year,
        "company_type": entity.company_type,
        "identifiers": {"isin": list(entity.isins or [])},
    }
