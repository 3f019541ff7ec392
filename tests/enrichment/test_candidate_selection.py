"""Which registry names a query's words select for scoring: the right company among hundreds of names that
share its common words, or more namesakes than are ever scored, in memory and through a snapshot alike."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

import pytest
from bench.registry_data import iter_organisations

from dossier.enrichment.registry.matcher import MAX_CANDIDATES, EntityIndex, EntityRow
from dossier.enrichment.registry.snapshot import build_snapshot, open_snapshot


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(8)).capitalize()


def _rows() -> list[EntityRow]:
    rng = random.Random(11)
    rows = [
        EntityRow("K-SHYNANT", "Shynant Real Estate GmbH", country_code="DE"),
        EntityRow("K-ZORBLAT-MINING", "Zorblat Mining Corp", country_code="CA"),
    ]
    # Hundreds of names sharing the common words of the first, and more names carrying the rare word of the
    # second than are ever scored.
    rows += [EntityRow(f"K-RE{i}", f"{_word(rng)} Real Estate GmbH", country_code="DE") for i in range(400)]
    rows += [
        EntityRow(f"K-Z{i}", f"Zorblat {_word(rng)} Ltd", country_code="CA")
        for i in range(3 * MAX_CANDIDATES)
    ]
    for record in iter_organisations(2000, source="selection-test"):
        rows.append(
            EntityRow(
                f"K{record['source_key']}", str(record["name"]), country_code=str(record["country_code"])
            )
        )
    return rows


@pytest.fixture(scope="module", params=["memory", "snapshot"])
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntityIndex]:
    rows = _rows()
    if request.param == "memory":
        yield EntityIndex(rows)
        return
    # The snapshot object stays referenced while its index is used.
    snapshot = open_snapshot(build_snapshot(rows, tmp_path_factory.mktemp("selection") / "registry.idx"))
    yield snapshot.index


def test_a_rare_word_finds_its_company_among_hundreds_sharing_the_common_words(index: EntityIndex) -> None:
    # "Esate" is a typo of a word 400 other names carry: the rare "Shynant" still selects the company.
    match = index.lookup("Shynant Real Esate GmbH")
    assert match is not None and match.kernel_id == "K-SHYNANT"
    assert index.lookup("Shynant Real Estate") is not None


def test_among_more_namesakes_than_are_scored_the_ones_sharing_most_words_are(index: EntityIndex) -> None:
    scored = index.score("Zorblat Mining")
    # 120 names carry "Zorblat"; the one carrying both words is among the at most MAX_CANDIDATES scored.
    assert len(scored) <= MAX_CANDIDATES
    assert index.entities[scored[0].entity].kernel_id == "K-ZORBLAT-MINING"
    match = index.lookup("Zorblat Mining", country="CA")
    assert match is not None and match.kernel_id == "K-ZORBLAT-MINING"


def test_common_words_alone_select_no_company(index: EntityIndex) -> None:
    resolution = index.resolve("Real Estate GmbH")
    assert resolution.match is None
