"""A registry index written once to a file and memory-mapped by every process that matches.

Building an ``EntityIndex`` of a million organisations takes minutes and gigabytes; each worker and API
process doing so would multiply both. A snapshot holds the same parts (records, normalised names, postings,
exact-name keys, domains, typo neighbourhoods) in one file: opening it reads a header, lookups read the pages
they touch, and the operating system's page cache shares those pages between processes. The lookups and
scores are those of an index built in memory from the same rows (``EntityIndex.from_parts``).

Layout (little-endian): ``MAGIC``, where the header is (u64) and the header (JSON: counts, section offsets),
then 8-byte aligned sections: record blobs with their u64 offsets (entities, names), one u32 array holding
every id list, and open-addressing hash tables (u64 slots: entry offset + 1 in the low 40 bits, a 24-bit tag
of the key's hash above) whose entries are length-prefixed ``marshal`` data. Only this module reads or writes
the format; ``FORMAT`` changes whenever it does, and a file of another format is rebuilt, never misread.
"""

from __future__ import annotations

import json
import marshal
import mmap
import os
import struct
import zlib
from array import array
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import IO, Any

from dossier.enrichment.registry.evidence import Place
from dossier.enrichment.registry.matcher import (
    MIN_FUZZY_LEN,
    EntityIndex,
    EntityRow,
    entity_place,
    indexed_names,
    posting_tokens,
)
from dossier.enrichment.registry.normalize import NO_WORDS, NormalizedName
from dossier.enrichment.registry.similarity import deletions

MAGIC = b"DOSSIDX\x00"
FORMAT = 2
_LEN = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_OFFSET_BITS = 40
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
_TAG_SEED = 0x9E3779B9
# Rows handed to the builder at a time by ``build_snapshot``.
_BUILD_BATCH = 10_000
# Names decoded per process are kept (a lookup reads each candidate's several times); bounded.
_NAME_CACHE = 50_000


class SnapshotError(Exception):
    """The file is not a snapshot this version can read (another format, truncated, not a snapshot)."""


def _hashes(key: str) -> tuple[int, int]:
    data = key.encode()
    return zlib.crc32(data), zlib.crc32(data, _TAG_SEED) >> 8


class _Writer:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def tell(self) -> int:
        return self.out.tell()

    def align(self) -> int:
        position = self.out.tell()
        if position % 8:
            self.out.write(b"\x00" * (8 - position % 8))
        return self.out.tell()

    def section(self, data: bytes | array[int]) -> tuple[int, int]:
        start = self.align()
        self.out.write(data)
        return start, self.out.tell() - start


def _write_table(writer: _Writer, entries: Iterable[tuple[str, Any]], count: int) -> dict[str, int]:
    """A hash table of ``count`` entries: (key, value) -> marshal'd entries, then the slots."""
    size = 8
    while size < count * 2:
        size *= 2
    mask = size - 1
    slots = array("Q", bytes(8 * size))
    start = writer.align()
    # Entries are gathered in a buffer and written in large pieces: a write and a tell per entry cost
    # more than the entry's encoding.
    buffer = bytearray()
    written = 0
    pack = _LEN.pack
    for key, value in entries:
        data = marshal.dumps((key, value))
        offset = written + len(buffer)
        buffer += pack(len(data))
        buffer += data
        position, tag = _hashes(key)
        position &= mask
        while slots[position]:
            position = (position + 1) & mask
        slots[position] = (tag << _OFFSET_BITS) | (offset + 1)
        if len(buffer) >= 1 << 20:
            writer.out.write(buffer)
            written += len(buffer)
            buffer.clear()
    writer.out.write(buffer)
    entries_length = writer.tell() - start
    slots_start, _ = writer.section(slots)
    return {"entries": start, "entries_length": entries_length, "slots": slots_start, "size": size}


def _write_neighbourhoods(writer: _Writer, vocabulary: Iterable[str]) -> dict[str, int]:
    """The typo neighbourhoods (``matcher.deletion_neighbourhoods``) as a multimap: the fuzzy vocabulary's
    words (records), then an open-addressing table with one u64 slot per (variant, word) pair: a 32-bit tag
    of the variant's hash above the word's number + 1. Nothing is kept per variant but its slot, so the
    build needs the table's memory only, not a dictionary of millions of strings."""
    words = [w for w in vocabulary if len(w) >= MIN_FUZZY_LEN and not w.isdigit()]
    pairs = sum(len(w) + 1 for w in words)  # an upper bound: a word and each of its deletions
    size = 8
    while size * 0.7 < pairs:
        size *= 2
    mask = size - 1
    slots = array("Q", bytes(8 * size))
    for number, word in enumerate(words):
        entry = number + 1
        for variant in {word, *deletions(word)}:
            data = variant.encode()
            position = zlib.crc32(data) & mask
            while slots[position]:
                position = (position + 1) & mask
            slots[position] = (zlib.crc32(data, _TAG_SEED) << 32) | entry
    offsets = array("Q", [0])
    blob = bytearray()
    for word in words:
        blob += word.encode()
        offsets.append(len(blob))
    blob_start, _ = writer.section(bytes(blob))
    offsets_start, _ = writer.section(offsets)
    slots_start, _ = writer.section(slots)
    return {
        "blob": blob_start,
        "offsets": offsets_start,
        "count": len(words),
        "slots": slots_start,
        "size": size,
    }


# A row as the builder writes it: its record, its domain, and per indexed name (record, key, posting tokens).
_EncodedRow = tuple[bytes, str | None, list[tuple[bytes, str, list[str]]]]


def encode_rows(rows: Sequence[EntityRow]) -> list[_EncodedRow]:
    """Normalise and encode rows for the snapshot (pure: runs in a worker process when the build has them)."""
    out: list[_EncodedRow] = []
    for row in rows:
        place = entity_place(row)
        record = (
            row.kernel_id,
            row.name,
            tuple(row.aliases),
            row.domain,
            row.country,
            row.country_code,
            tuple(row.isins),
            row.city,
            row.postal_code,
            row.address,
            (place.country, place.city, place.postal_code, place.address),
        )
        names = []
        for raw, n, is_alias in indexed_names(row):
            fields = (n.core, n.weak, n.legal, n.qualifiers, tuple(n.truncated), tuple(n.bracketed))
            names.append((marshal.dumps((raw, is_alias, *fields, n.listing)), n.key, posting_tokens(n)))
        out.append((marshal.dumps(record), row.domain, names))
    return out


class SnapshotBuilder:
    """Writes a snapshot from rows given in batches (``add``), then ``finish``; memory: the id lists only.

    The file is written to ``path`` + ".tmp" and renamed when complete, so a reader never sees half a file.
    """

    def __init__(
        self, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None, *, workers: int = 1
    ) -> None:
        self.path = Path(path)
        # Normalising names is most of a build's CPU: with workers > 1 it runs in that many processes
        # (spawned: the building process may be a server with threads) while this one reads and writes.
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = (
            ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None
        )
        self._pending: deque[Future[list[_EncodedRow]]] = deque()
        self._name_entities = array("I")
        self.meta = dict(meta or {})
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._entities = self._tmp.with_name(self._tmp.name + ".entities")
        self._names = self._tmp.with_name(self._tmp.name + ".names")
        self._entity_out = self._entities.open("wb")
        self._name_out = self._names.open("wb")
        self._entity_offsets = array("Q", [0])
        self._name_offsets = array("Q", [0])
        self._postings: dict[str, array[int]] = defaultdict(lambda: array("I"))
        self._by_key: dict[str, array[int]] = defaultdict(lambda: array("I"))
        self._domains: dict[str, array[int]] = defaultdict(lambda: array("I"))

    def add(self, rows: Iterable[EntityRow]) -> None:
        """Index ``rows`` (in order). With workers, their names are normalised in the pool meanwhile."""
        batch = list(rows)
        if self._pool is None:
            self._append(encode_rows(batch))
            return
        step = max(1, -(-len(batch) // self._workers))
        for start in range(0, len(batch), step):
            self._pending.append(self._pool.submit(encode_rows, batch[start : start + step]))
        # Bounded read-ahead: a few pieces per worker in flight, the oldest appended in order.
        while len(self._pending) > 2 * self._workers:
            self._append(self._pending.popleft().result())

    def _append(self, encoded: list[_EncodedRow]) -> None:
        for record, domain, names in encoded:
            index = len(self._entity_offsets) - 1
            self._entity_out.write(record)
            self._entity_offsets.append(self._entity_offsets[-1] + len(record))
            if domain:
                self._domains[domain].append(index)
            for data, key, tokens in names:
                name_id = len(self._name_offsets) - 1
                self._name_out.write(data)
                self._name_offsets.append(self._name_offsets[-1] + len(data))
                self._name_entities.append(index)
                self._by_key[key].append(name_id)
                for token in tokens:
                    self._postings[token].append(name_id)

    def _drain(self) -> None:
        while self._pending:
            self._append(self._pending.popleft().result())
        self._close_pool()

    def _close_pool(self) -> None:
        if self._pool is not None:
            for future in self._pending:
                future.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def finish(self) -> Path:
        """Write the file and move it into place; returns its path."""
        try:
            self._drain()
        except BaseException:
            self.abort()
            raise
        self._entity_out.close()
        self._name_out.close()
        sections: dict[str, Any] = {}
        try:
            with self._tmp.open("wb") as out:
                writer = _Writer(out)
                out.write(MAGIC)
                out.write(bytes(8))  # the header's length and offset, written last
                for label, blob, offsets in (
                    ("entities", self._entities, self._entity_offsets),
                    ("names", self._names, self._name_offsets),
                ):
                    start = writer.align()
                    with blob.open("rb") as source:
                        while chunk := source.read(1 << 20):
                            out.write(chunk)
                    offsets_start, _ = writer.section(offsets)
                    sections[label] = {"blob": start, "offsets": offsets_start, "count": len(offsets) - 1}
                sections["names"]["entities"], _ = writer.section(self._name_entities)
                # Every id list in one u32 array; the tables hold (key, start, length) into it.
                ints_start = writer.align()
                refs: dict[str, dict[str, tuple[int, int]]] = {}
                position = 0
                for label, lists in (
                    ("postings", self._postings),
                    ("by_key", self._by_key),
                    ("domains", self._domains),
                ):
                    refs[label] = {}
                    for key, ids in lists.items():
                        out.write(ids)
                        refs[label][key] = (position, len(ids))
                        position += len(ids)
                sections["ints"] = {"start": ints_start, "count": position}
                for label, table in refs.items():
                    entries = ((key, ref) for key, ref in table.items())
                    sections[label] = _write_table(writer, entries, len(table))
                sections["deletes"] = _write_neighbourhoods(writer, self._postings)
                header = json.dumps({"format": FORMAT, "sections": sections, "meta": self.meta}).encode()
                header_start = writer.align()
                out.write(header)
                out.seek(len(MAGIC))
                out.write(_U64.pack((header_start << 24) | len(header)))
                out.flush()
                os.fsync(out.fileno())
            os.replace(self._tmp, self.path)
        finally:
            for leftover in (self._entities, self._names, self._tmp):
                leftover.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        self._close_pool()
        for handle in (self._entity_out, self._name_out):
            handle.close()
        for leftover in (self._entities, self._names, self._tmp):
            leftover.unlink(missing_ok=True)


def build_snapshot(
    rows: Iterable[EntityRow],
    path: str | os.PathLike[str],
    meta: Mapping[str, Any] | None = None,
    *,
    workers: int = 1,
) -> Path:
    """Write the snapshot of ``rows`` to ``path`` (atomically); returns the path."""
    builder = SnapshotBuilder(path, meta, workers=workers)
    try:
        iterator = iter(rows)
        while batch := list(islice(iterator, _BUILD_BATCH)):
            builder.add(batch)
    except BaseException:
        builder.abort()
        raise
    return builder.finish()


# --- reading -----------------------------------------------------------------------------------------------


class _Records:
    """Length-prefix-free records: blob[offsets[i]:offsets[i + 1]]."""

    def __init__(self, view: memoryview, section: Mapping[str, int]) -> None:
        count = section["count"]
        self.count = count
        self.blob = section["blob"]
        self.offsets = view[section["offsets"] : section["offsets"] + 8 * (count + 1)].cast("Q")
        self.view = view

    def raw(self, index: int) -> Any:
        if not 0 <= index < self.count:
            raise IndexError(index)
        start = self.blob + self.offsets[index]
        return marshal.loads(self.view[start : self.blob + self.offsets[index + 1]])


class _Entities(Sequence[EntityRow]):
    def __init__(self, records: _Records) -> None:
        self._records = records

    def __len__(self) -> int:
        return self._records.count

    def __getitem__(self, index: int) -> EntityRow:  # type: ignore[override]
        record = self._records.raw(index)
        return EntityRow(*record[:10])


class _Places(Sequence[Place]):
    def __init__(self, records: _Records) -> None:
        self._records = records

    def __len__(self) -> int:
        return self._records.count

    def __getitem__(self, index: int) -> Place:  # type: ignore[override]
        return Place(*self._records.raw(index)[10])


class _Names(Sequence[tuple[int, NormalizedName, str, bool]]):
    def __init__(self, records: _Records, entities: memoryview) -> None:
        self._records = records
        self._entities = entities
        self._cache: dict[int, tuple[int, NormalizedName, str, bool]] = {}

    def __len__(self) -> int:
        return self._records.count

    def __getitem__(self, index: int) -> tuple[int, NormalizedName, str, bool]:  # type: ignore[override]
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        raw, is_alias, core, weak, legal, qualifiers, truncated, bracketed, listing = self._records.raw(index)
        entity = self._entities[index]
        name = NormalizedName(
            core,
            weak,
            legal,
            qualifiers,
            frozenset(truncated) if truncated else NO_WORDS,
            frozenset(bracketed) if bracketed else NO_WORDS,
            listing,
        )
        value = (entity, name, raw, is_alias)
        if len(self._cache) >= _NAME_CACHE:
            self._cache.clear()
        self._cache[index] = value
        return value


class _Table(Mapping[str, Any]):
    """A read-only hash table of the file: ``get`` decodes the entry of a key, or gives the default."""

    def __init__(self, view: memoryview, section: Mapping[str, int]) -> None:
        self._view = view
        self._entries = section["entries"]
        self._size = section["size"]
        self._mask = self._size - 1
        self._slots = view[section["slots"] : section["slots"] + 8 * self._size].cast("Q")
        self._count: int | None = None

    def _value(self, key: str) -> Any:
        position, tag = _hashes(key)
        position &= self._mask
        slots = self._slots
        while True:
            slot = slots[position]
            if not slot:
                return None
            if slot >> _OFFSET_BITS == tag:
                start = self._entries + (slot & _OFFSET_MASK) - 1
                (length,) = _LEN.unpack_from(self._view, start)
                found, value = marshal.loads(self._view[start + 4 : start + 4 + length])
                if found == key:
                    return value
            position = (position + 1) & self._mask

    def _decode(self, value: Any) -> Any:
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._value(key)
        return default if value is None else self._decode(value)

    def __getitem__(self, key: str) -> Any:
        value = self._value(key)
        if value is None:
            raise KeyError(key)
        return self._decode(value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._value(key) is not None

    def _keys(self) -> Iterator[str]:
        for slot in self._slots:
            if slot:
                start = self._entries + (slot & _OFFSET_MASK) - 1
                (length,) = _LEN.unpack_from(self._view, start)
                yield marshal.loads(self._view[start + 4 : start + 4 + length])[0]

    def __iter__(self) -> Iterator[str]:
        return self._keys()

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for slot in self._slots if slot)
        return self._count


class _IdTable(_Table):
    """Keys -> id lists: views of the file's u32 array (no copy)."""

    def __init__(self, view: memoryview, section: Mapping[str, int], ints: memoryview) -> None:
        super().__init__(view, section)
        self._ints = ints

    def _decode(self, value: Any) -> memoryview:
        start, length = value
        return self._ints[start : start + length]


class _Neighbourhoods(Mapping[str, tuple[str, ...]]):
    """The typo neighbourhoods' multimap: ``get(variant)`` gives the words one deletion away (or equal)."""

    def __init__(self, view: memoryview, section: Mapping[str, int]) -> None:
        count = section["count"]
        self._count = count
        self._blob = view[section["blob"] : section["offsets"]]
        self._offsets = view[section["offsets"] : section["offsets"] + 8 * (count + 1)].cast("Q")
        self._size = section["size"]
        self._mask = self._size - 1
        self._slots = view[section["slots"] : section["slots"] + 8 * self._size].cast("Q")

    def _word(self, number: int) -> str:
        return bytes(self._blob[self._offsets[number] : self._offsets[number + 1]]).decode()

    def get(self, variant: str, default: Any = None) -> Any:
        data = variant.encode()
        position = zlib.crc32(data) & self._mask
        tag = zlib.crc32(data, _TAG_SEED)
        slots = self._slots
        found: list[str] = []
        length = len(variant)
        while slot := slots[position]:
            if slot >> 32 == tag:
                word = self._word((slot & 0xFFFFFFFF) - 1)
                # 32 bits of tag and the slot's position agree: a collision is (nearly) impossible, and
                # a word of another length cannot be one deletion away in any case.
                if len(word) - length in (0, 1):
                    found.append(word)
            position = (position + 1) & self._mask
        return tuple(found) if found else default

    def __getitem__(self, variant: str) -> tuple[str, ...]:
        found = self.get(variant)
        if found is None:
            raise KeyError(variant)
        return found  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        # The variants themselves are not stored (only their hashes): iterate the words.
        return (self._word(number) for number in range(self._count))

    def __len__(self) -> int:
        return self._count


class Snapshot:
    """An open snapshot: ``index`` is the EntityIndex over it. Keep the object while the index is used."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with self.path.open("rb") as handle:
            try:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:
                raise SnapshotError(f"{self.path.name}: empty file") from None
        view = memoryview(self._map)
        try:
            if bytes(view[: len(MAGIC)]) != MAGIC:
                raise SnapshotError(f"{self.path.name}: not a registry index snapshot")
            (packed,) = _U64.unpack_from(view, len(MAGIC))
            start, length = packed >> 24, packed & 0xFFFFFF
            header = json.loads(bytes(view[start : start + length]))
        except (struct.error, ValueError) as exc:
            raise SnapshotError(f"{self.path.name}: unreadable header ({exc})") from None
        if header.get("format") != FORMAT:
            raise SnapshotError(f"{self.path.name}: format {header.get('format')}, expected {FORMAT}")
        self.meta: dict[str, Any] = header.get("meta", {})
        sections = header["sections"]
        ints_section = sections["ints"]
        ints = view[ints_section["start"] : ints_section["start"] + 4 * ints_section["count"]].cast("I")
        entities = _Records(view, sections["entities"])
        names = sections["names"]
        name_entities = view[names["entities"] : names["entities"] + 4 * names["count"]].cast("I")
        self.index = EntityIndex.from_parts(
            entities=_Entities(entities),
            places=_Places(entities),
            names=_Names(_Records(view, names), name_entities),
            postings=_IdTable(view, sections["postings"], ints),
            by_key=_IdTable(view, sections["by_key"], ints),
            domains=_IdTable(view, sections["domains"], ints),
            deletes=_Neighbourhoods(view, sections["deletes"]),
        )

    def __len__(self) -> int:
        return len(self.index)


def open_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Open (memory-map) a snapshot; SnapshotError when the file is not one this version reads."""
    return Snapshot(path)
