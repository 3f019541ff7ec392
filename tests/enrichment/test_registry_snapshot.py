"""The index snapshot answers exactly as the in-memory index built from the same rows: the same match, the
same candidates with the same scores and features, for names as written, without their legal form, with a
typo (found through the typo neighbourhoods), written without spaces, and lower-cased."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.registry_data import iter_organisations

from dossier.enrichment.registry.matcher import EntityIndex, EntityRow
from dossier.enrichment.registry.snapshot import (
    FORMAT,
    SnapshotBuilder,
    SnapshotError,
    build_snapshot,
    open_snapshot,
)

OURS = [
    EntityRow("K-MERCADO", "MercadoLibre Inc.", domain="mercadolibre.com", country_code="AR"),
    EntityRow("K-RHEIN", "Rheinmetall AG", aliases=("Rheinmetall Group",), country_code="DE"),
    EntityRow("K-QUILL", "Quillfeather Orchards Oy", country_code="FI", city="Turku"),
    EntityRow("K-FUND2", "Northwind Growth Fund II LP", country_code="US"),
    EntityRow("K-FUND3", "Northwind Growth Fund III LP", country_code="US"),
]


def _rows(generated: int) -> list[EntityRow]:
    rows = list(OURS)
    for record in iter_organisations(generated, source="snapshot-test"):
        rows.append(
            EntityRow(
                f"K{record['source_key']}",
                str(record["name"]),
                tuple(record.get("aliases", ())),  # type: ignore[arg-type]
                country_code=str(record["country_code"]),
                city=record.get("hq_city"),  # type: ignore[arg-type]
            )
        )
    return rows


def _queries(rows: list[EntityRow]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = [
        ("Mercado Libre", None),
        ("Mercadolibre", "AR"),
        ("Rheinmetal", "DE"),  # a typo: one letter short
        ("Rheinmetall Grup", None),
        ("Quilfeather Orchards", "FI"),
        ("quillfeather orchards oy", None),
        ("Northwind Growth Fund II", None),
        ("Northwind Growth Fund", None),
    ]
    for number, row in enumerate(rows[len(OURS) :: 7]):
        name = row.name
        if number % 4 == 0:
            out.append((name, row.country_code))
        elif number % 4 == 1:
            out.append((name.rsplit(" ", 1)[0], None))
        elif number % 4 == 2 and len(name) > 8:
            cut = len(name) // 2
            out.append((name[:cut] + name[cut + 1 :], None))
        else:
            out.append((name.lower().replace(" ", "", 1), None))
    return out


def test_the_snapshot_answers_every_query_as_the_in_memory_index_does(tmp_path: Path) -> None:
    rows = _rows(1500)
    memory = EntityIndex(rows)
    snapshot = open_snapshot(build_snapshot(rows, tmp_path / "registry.idx"))
    queries = _queries(rows)
    matched = 0
    for name, country in queries:
        expected = memory.resolve(name, None, country)
        answer = snapshot.index.resolve(name, None, country)
        assert answer.reason == expected.reason, name
        assert [c.as_dict() for c in answer.candidates] == [c.as_dict() for c in expected.candidates], name
        assert (answer.match and answer.match.as_dict()) == (expected.match and expected.match.as_dict())
        matched += answer.match is not None
    # The set is not vacuous: most queries resolve, and the typo and spacing variants of ours do.
    assert matched > len(queries) // 2
    for name, country, kernel_id in [
        ("Rheinmetal", "DE", "K-RHEIN"),
        ("Quilfeather Orchards", "FI", "K-QUILL"),
        ("Mercado Libre", None, "K-MERCADO"),
        ("Northwind Growth Fund II", None, "K-FUND2"),
    ]:
        match = snapshot.index.lookup(name, None, country)
        assert match is not None and match.kernel_id == kernel_id, name
    # Different fund numbers are different funds, in the snapshot as in memory.
    assert snapshot.index.lookup("Northwind Growth Fund IV", None, None) is None


def test_a_snapshot_of_another_format_is_refused_not_misread(tmp_path: Path) -> None:
    path = build_snapshot(_rows(20), tmp_path / "registry.idx")
    data = bytearray(path.read_bytes())
    header_at = data.rindex(b'{"format": ')
    data[header_at : header_at + 12] = f'{{"format": {FORMAT + 1}'.encode()[:12]
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="format"):
        open_snapshot(path)


def test_a_build_with_worker_processes_answers_as_one_built_alone(tmp_path: Path) -> None:
    rows = _rows(600)
    alone = build_snapshot(rows, tmp_path / "alone.idx")
    # Rows given in several batches, as a build streaming from the database gives them.
    builder = SnapshotBuilder(tmp_path / "pooled.idx", workers=2)
    for start in range(0, len(rows), 100):
        builder.add(rows[start : start + 100])
    pooled = builder.finish()
    # (The bytes may differ: marshal marks interned strings, and interning differs between processes.)
    one, other = open_snapshot(alone).index, open_snapshot(pooled).index
    assert len(other) == len(one) == len(rows)
    for name, country in _queries(rows):
        expected, answer = one.resolve(name, None, country), other.resolve(name, None, country)
        assert [c.as_dict() for c in answer.candidates] == [c.as_dict() for c in expected.candidates], name
    match = other.lookup("Quillfeather Orchards", None, "FI")
    assert match is not None and match.kernel_id == "K-QUILL"
