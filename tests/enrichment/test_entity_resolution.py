"""The default registry, the matcher and the entity_resolution / firmographics tools on a real database."""

from __future__ import annotations

import csv
import random
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.protocol import ToolContext, ToolOutcome
from dossier.enrichment.registry.index_cache import current_index, load_rows
from dossier.enrichment.registry.matcher import EntityIndex
from dossier.enrichment.registry.models import RegistryEntity
from dossier.enrichment.registry.service import (
    bump_generation,
    ensure_default_registry,
    entity_count,
    firmographics_record,
    get_entity,
    kernel_id_for,
)
from dossier.enrichment.tools import get_tool
from dossier.settings import Settings
from tests.conftest import shared_data

FIRMOGRAPHICS_KEYS = {
    "kernel_id",
    "name",
    "domain",
    "industry",
    "sector",
    "employee_count",
    "revenue",
    "headquarters",
    "country_code",
    "founded_year",
    "company_type",
    "identifiers",
}


@pytest.fixture
async def registry(sessionmaker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    async with sessionmaker() as session, session.begin():
        await ensure_default_registry(session)
    return sessionmaker


def _ctx(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> ToolContext:
    # These tools never use the network; the outbound client is not needed.
    return ToolContext(settings=settings, sessionmaker=sessionmaker, http=cast(Any, None))


async def _run(tool_name: str, values: dict[str, Any], ctx: ToolContext, **config: Any) -> ToolOutcome:
    tool = get_tool(tool_name)
    return await tool.run(values, tool.parse_config(config), ctx)


async def test_default_registry_is_built_once(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        first = await ensure_default_registry(session)
    async with sessionmaker() as session, session.begin():
        second = await ensure_default_registry(session)
        total = await entity_count(session)
        micron = await get_entity(session, kernel_id_for("pytickersymbols", "Micron Technology"))
    assert first > 1500 and second == 0 and total == first
    assert micron is not None and micron.domain == "micron.com"


async def test_entity_resolution_tool(registry: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    ctx = _ctx(settings, registry)
    micron_id = kernel_id_for("pytickersymbols", "Micron Technology")

    by_name = await _run("entity_resolution", {"name": "MICRON TECHN. INC. DL-,10", "country": "US"}, ctx)
    assert by_name.status == "success", by_name.error
    assert by_name.value["kernel_id"] == micron_id
    assert by_name.value["matched_on"] == ["name", "country"]
    assert set(by_name.value) == {
        "kernel_id",
        "name",
        "domain",
        "country",
        "confidence",
        "matched_on",
        "candidates",
    }
    assert by_name.value["candidates"][0]["kernel_id"] == micron_id  # the match first, with its evidence
    assert by_name.value["candidates"][0]["features"]["name"]["candidate"] == "micron technology"
    assert 0.86 <= by_name.value["confidence"] <= 1

    by_site = await _run("entity_resolution", {"website": "https://www.micron.com/products?x=1"}, ctx)
    assert by_site.status == "success" and by_site.value["kernel_id"] == micron_id
    assert by_site.value["matched_on"] == ["domain"]

    everything = await _run(
        "entity_resolution",
        {"name": "Micron Technology Inc", "website": "micron.com", "country": "United States"},
        ctx,
    )
    assert everything.value["matched_on"] == ["name", "domain", "country"]
    assert everything.value["confidence"] == 1.0

    for variant in ("Microsoft Corporation", "MICROSOFT CORP", "Mircosoft Corp."):  # the last has a typo
        outcome = await _run("entity_resolution", {"name": variant}, ctx)
        assert outcome.status == "success" and outcome.value["name"] == "Microsoft", variant

    assert (await _run("entity_resolution", {"name": "Eni S.p.A.", "country": "IT"}, ctx)).value[
        "name"
    ] == "Eni"
    # A column may ask for more certainty than the settings do.
    strict = await _run("entity_resolution", {"name": "Mircosoft Corp."}, ctx, threshold=0.99)
    assert strict.status == "skipped"

    empty = await _run("entity_resolution", {"name": "  ", "country": "DE"}, ctx)
    assert empty.status == "skipped" and empty.error


@pytest.mark.parametrize(
    "name",
    [
        "Zyxel Obscure Widgets GmbH",
        "Apple Bank for Savings",  # the registry has Apple Inc. and Apple Hospitality REIT: neither is this
        "Bank",
        "Deutsche Bahn AG",
        "Siemens Gamesa Renewable Energy",
        "Microsoft Bank of Mars",
    ],
)
async def test_no_wrong_company_when_the_true_one_is_absent(
    registry: async_sessionmaker[AsyncSession], settings: Settings, name: str
) -> None:
    outcome = await _run("entity_resolution", {"name": name}, _ctx(settings, registry))
    assert outcome.status == "skipped", outcome.value


async def test_held_out_companies_are_not_matched_to_others(
    registry: async_sessionmaker[AsyncSession],
) -> None:
    """Index half of the registry and look up the other half: every answer would be a wrong company."""
    async with registry() as session:
        rows = await load_rows(session)
    random.Random(7).shuffle(rows)
    kept, held_out = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    index = EntityIndex(kept)
    wrong = []
    for row in held_out:
        match = index.lookup(row.name, None, row.country)
        if match is not None:
            wrong.append((row.name, match.name, match.confidence))
    # Precision first: at most 1% of absent companies may find a (wrong) namesake.
    assert len(wrong) <= 0.01 * len(held_out), wrong


async def test_firmographics_tool(registry: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    ctx = _ctx(settings, registry)
    micron_id = kernel_id_for("pytickersymbols", "Micron Technology")
    by_id = await _run("firmographics", {"kernel_id": micron_id}, ctx)
    assert by_id.status == "success", by_id.error
    record = by_id.value
    assert set(record) == FIRMOGRAPHICS_KEYS
    assert record["kernel_id"] == micron_id and record["country_code"] == "US"
    assert record["headquarters"] == {"city": "Boise", "country": "United States"}
    assert isinstance(record["employee_count"], int) and record["employee_count"] > 10_000
    assert record["revenue"]["currency"] == "USD" and record["revenue"]["amount"] > 1e9
    assert record["identifiers"] == {"isin": ["US5951121038"]}

    resolved = await _run("entity_resolution", {"name": "Micron Technology"}, ctx)
    from_column = await _run("firmographics", {"kernel_id": resolved.value}, ctx)
    assert from_column.status == "success" and from_column.value == record

    unknown = await _run("firmographics", {"kernel_id": "123"}, ctx)
    assert unknown.status == "error" and "123" in (unknown.error or "")
    assert (await _run("firmographics", {"kernel_id": "not-an-id"}, ctx)).status == "error"
    assert (await _run("firmographics", {"kernel_id": None}, ctx)).status == "skipped"


async def test_firmographics_record_has_nulls_for_what_is_unknown(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        session.add(RegistryEntity(kernel_id="42", source="test", source_key="bare", name="Bare Ltd"))
        await session.flush()
        entity = await session.scalar(select(RegistryEntity).where(RegistryEntity.kernel_id == "42"))
        assert entity is not None
        record = firmographics_record(entity)
    assert record["revenue"] == {"amount": None, "currency": None, "year": None}
    assert record["headquarters"] == {"city": None, "country": None}
    assert record["identifiers"] == {"isin": []}
    assert record["employee_count"] is None and record["country_code"] is None


async def test_index_follows_registry_changes(registry: async_sessionmaker[AsyncSession]) -> None:
    before = await current_index(registry)
    assert await current_index(registry) is before  # cached
    assert before.lookup("Quuxbridge Instruments") is None
    async with registry() as session, session.begin():
        session.add(
            RegistryEntity(kernel_id="77", source="test", source_key="q", name="Quuxbridge Instruments plc")
        )
        await session.flush()
        # Whatever writes the registry bumps its generation (the services do): that is what indexes follow.
        await bump_generation(session)
    after = await current_index(registry)
    assert after is not before and len(after) == len(before) + 1
    match = after.lookup("QUUXBRIDGE INSTRUMENTS")
    assert match is not None and match.kernel_id == "77"


async def test_precision_on_the_dev_pairs(
    registry: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    path = shared_data("er-dev-pairs.csv")
    index = await current_index(registry)
    with path.open(newline="") as handle:
        pairs = list(csv.DictReader(handle))
    true_positive = false_positive = 0
    for pair in pairs:
        match = index.lookup(
            pair["query_name"],
            None,
            pair["query_country"],
            threshold=settings.registry_match_threshold,
            margin=settings.registry_match_margin,
        )
        if match is None:
            continue
        if match.name == pair["expected_registry_name"]:
            true_positive += 1
        else:
            false_positive += 1
    precision = true_positive / max(1, true_positive + false_positive)
    positives = sum(1 for p in pairs if p["expected_registry_name"])
    assert precision >= 0.98, (precision, true_positive, false_positive)
    assert (
        true_positive / positives >= 0.85
    )  # recall is secondary, but a matcher that says nothing is useless
