"""Countries from pycountry, address columns, bring-your-own registry and the registry's sources."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any, cast

import pycountry
import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.cli import _first_start
from dossier.db.engine import create_engine, create_sessionmaker
from dossier.enrichment.protocol import ToolContext
from dossier.enrichment.registry.countries import COUNTRIES, country_code, country_name, is_us_state
from dossier.enrichment.registry.index_cache import current_index
from dossier.enrichment.registry.models import RegistryEntity
from dossier.enrichment.registry.service import (
    RegistryImportError,
    delete_source,
    ensure_default_registry,
    entity_count,
    import_file,
    kernel_id_for,
    list_sources,
    parse_row,
)
from dossier.enrichment.tools import get_tool
from dossier.settings import Settings
from tests.conftest import DOSSIER_BIN, dossier_env, run_cli

# --- countries ---------------------------------------------------------------------------------------------


def test_every_iso_country_is_known_by_code_and_name() -> None:
    for country in pycountry.countries:
        code = country.alpha_2
        assert code in COUNTRIES
        assert country_code(code) == code and country_code(code.lower()) == code
        assert country_code(country.alpha_3) == code
        assert country_code(country.name) == code, country.name
        for attr in ("official_name", "common_name"):
            if getattr(country, attr, None):
                assert country_code(getattr(country, attr)) == code, getattr(country, attr)
        assert country_code(COUNTRIES[code]) == code, COUNTRIES[code]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("GH", "GH"),
        ("gh", "GH"),
        ("GHA", "GH"),
        ("Ghana", "GH"),
        (" ghana ", "GH"),
        ("U.S.", "US"),
        ("USA", "US"),
        ("United States of America", "US"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("Holland", "NL"),
        ("The Netherlands", "NL"),
        ("South Korea", "KR"),
        ("Korea, Republic of", "KR"),
        ("Republic of Korea", "KR"),
        ("North Korea", "KP"),
        ("Russia", "RU"),
        ("Russian Federation", "RU"),
        ("Czechia", "CZ"),
        ("Türkiye", "TR"),
        ("Côte d'Ivoire", "CI"),
        ("Ivory Coast", "CI"),
        ("Bolivia", "BO"),
        ("Viet Nam", "VN"),
        ("The Bahamas", "BS"),
        ("Congo", "CG"),
        ("Democratic Republic of the Congo", "CD"),
        ("Kosovo", "XK"),
        ("Deutschland", "DE"),
        ("XX", None),
        ("Narnia", None),
        ("Texas", None),
        ("", None),
        (None, None),
    ],
)
def test_country_code(value: str | None, code: str | None) -> None:
    assert country_code(value) == code


def test_country_names_stay_as_listings_spell_them() -> None:
    assert country_name("US") == "United States" and country_name("gb") == "United Kingdom"
    assert country_name("KR") == "South Korea" and country_name("CZ") == "Czech Republic"
    assert country_name("RU") == "Russia" and country_name("VN") == "Vietnam"
    assert (
        country_name("GH") == "Ghana" and country_name("TW") == "Taiwan" and country_name("BO") == "Bolivia"
    )
    assert country_name("XX") is None and country_name(None) is None
    assert all("," not in name for name in COUNTRIES.values() if name != "Bonaire, Sint Eustatius and Saba")
    assert is_us_state("Texas") and is_us_state("New York") and not is_us_state("Ghana")


def test_parse_row_countries_and_new_columns() -> None:
    row, provided = parse_row({"name": "Acme", "country": "Ghana"}, "import")
    assert (row["country"], row["country_code"]) == ("Ghana", "GH")
    row, _ = parse_row({"name": "Acme", "country_code": "GHA"}, "import")
    assert (row["country"], row["country_code"]) == ("Ghana", "GH")
    row, _ = parse_row({"name": "Acme", "country": "gh"}, "import")
    assert (row["country"], row["country_code"]) == ("Ghana", "GH")
    row, _ = parse_row({"name": "Acme", "country_code": "Ghana"}, "import")
    assert row["country_code"] == "GH"
    row, _ = parse_row({"name": "Acme", "country": "Atlantis"}, "import")
    assert (row["country"], row["country_code"]) == ("Atlantis", None)
    with pytest.raises(ValueError, match="country_code: 'XX' is not an ISO 3166 country code"):
        parse_row({"name": "Acme", "country_code": "XX"}, "import")

    row, provided = parse_row(
        {"name": "Acme", "zipcode": "02139", "address": "1 Main St", "parent_kernel_id": 42}, "import"
    )
    assert (row["postal_code"], row["address"], row["parent_kernel_id"]) == ("02139", "1 Main St", "42")
    assert {"postal_code", "address", "parent_kernel_id"} <= provided and "extra" not in row
    for alias in ("zip", "zip_code", "postcode", "postal", "postal_code"):
        assert parse_row({"name": "Acme", alias: "SW1A 1AA"}, "import")[0]["postal_code"] == "SW1A 1AA"
    with pytest.raises(ValueError, match="postal_code: longer than 20"):
        parse_row({"name": "Acme", "postal_code": "1" * 21}, "import")
    with pytest.raises(ValueError, match="address: longer than 500"):
        parse_row({"name": "Acme", "address": "x" * 501}, "import")
    with pytest.raises(ValueError, match="parent_kernel_id: must be 1 to 20 digits"):
        parse_row({"name": "Acme", "parent_kernel_id": "acme-parent"}, "import")
    with pytest.raises(ValueError, match="own parent"):
        parse_row({"name": "Acme", "kernel_id": "7", "parent_kernel_id": "7"}, "import")


# --- importing countries and addresses through the real command --------------------------------------------


def _entities(database_url: str) -> dict[str, RegistryEntity]:
    async def read() -> dict[str, RegistryEntity]:
        engine = create_engine(Settings(database_url=database_url))
        try:
            async with create_sessionmaker(engine)() as session:
                return {e.kernel_id: e for e in (await session.scalars(select(RegistryEntity))).all()}
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_import_countries_addresses_and_parents_csv(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "companies.csv"
    path.write_text(
        "symbol,name,country,country_code,city,address,zipcode,parent_kernel_id,aliases\n"
        "GH1,Acme Ghana,,GH,Accra,1 Independence Ave,GA-123-4567,900001,Acme GH|Acme Accra\n"
        "BT1,Druk Widgets,Bhutan,,Thimphu,,11001,,\n"
        "NA1,Namib Mining,NAM,,,,,,\n"
        "AL1,Tirana Foods,,ALB,,,,,Tirana Food; TF\n"
        "XX1,Nowhere Inc,,XX,,,,,\n"
        "PK1,Bad Parent,Ghana,,,,,parent-1,\n"
    )
    env = dossier_env(database_url)
    result = run_cli("registry", "import", str(path), "--source", "mine", env=env)
    assert result.returncode == 0, result.stderr
    assert "4 inserted" in result.stdout and "2 rejected" in result.stdout, result.stdout
    assert "line 6: country_code: 'XX' is not an ISO 3166 country code" in result.stderr, result.stderr
    assert "line 7: parent_kernel_id" in result.stderr

    entities = _entities(database_url)
    ghana = entities[kernel_id_for("mine", "GH1")]
    assert (ghana.country, ghana.country_code, ghana.hq_city, ghana.hq_country) == (
        "Ghana",
        "GH",
        "Accra",
        "Ghana",
    )
    assert (ghana.address, ghana.postal_code, ghana.parent_kernel_id) == (
        "1 Independence Ave",
        "GA-123-4567",
        "900001",
    )
    assert ghana.aliases == ["Acme GH", "Acme Accra"] and ghana.extra == {"symbol": "GH1"}
    bhutan = entities[kernel_id_for("mine", "BT1")]
    assert (bhutan.country, bhutan.country_code, bhutan.postal_code) == ("Bhutan", "BT", "11001")
    assert bhutan.address is None and bhutan.parent_kernel_id is None
    namibia = entities[kernel_id_for("mine", "NA1")]
    assert (namibia.country, namibia.country_code) == ("Namibia", "NA")
    albania = entities[kernel_id_for("mine", "AL1")]
    assert (albania.country, albania.country_code) == ("Albania", "AL")
    assert albania.aliases == ["Tirana Food", "TF"]

    # An update without the address columns keeps them; an empty value clears one.
    path.write_text("symbol,name,zipcode\nGH1,Acme Ghana Ltd,\n")
    again = run_cli("registry", "import", str(path), "--source", "mine", env=env)
    assert again.returncode == 0 and "1 updated" in again.stdout, again.stdout + again.stderr
    ghana = _entities(database_url)[kernel_id_for("mine", "GH1")]
    assert (ghana.name, ghana.postal_code, ghana.address) == ("Acme Ghana Ltd", None, "1 Independence Ave")
    assert ghana.parent_kernel_id == "900001" and ghana.aliases == ["Acme GH", "Acme Accra"]


def test_import_countries_addresses_and_parents_jsonl(database_url: str, tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {
            "kernel_id": "800001",
            "name": "Kumasi Cocoa",
            "country": "Ghana",
            "hq_city": "Kumasi",
            "address": "Adum Road 5",
            "postal_code": 233,
            "parent_kernel_id": "800002",
            "aliases": ["KC", "Kumasi Cocoa Processing"],
        },
        {"kernel_id": "800002", "name": "Cocoa Holdings", "country_code": "gh", "postcode": "AK-039"},
        {"kernel_id": "800003", "name": "Lagos Foods", "country": "NGA", "zip": "100001"},
        {"kernel_id": "800004", "name": "Unknown Land", "country_code": "ZZ"},
    ]
    path = tmp_path / "companies.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli("registry", "import", str(path), env=dossier_env(database_url))
    assert result.returncode == 0, result.stderr
    assert "3 inserted" in result.stdout and "1 rejected" in result.stdout
    assert "line 4: country_code: 'ZZ'" in result.stderr

    entities = _entities(database_url)
    kumasi = entities["800001"]
    assert (kumasi.country, kumasi.country_code, kumasi.hq_city, kumasi.hq_country) == (
        "Ghana",
        "GH",
        "Kumasi",
        "Ghana",
    )
    assert (kumasi.address, kumasi.postal_code, kumasi.parent_kernel_id) == ("Adum Road 5", "233", "800002")
    assert kumasi.aliases == ["KC", "Kumasi Cocoa Processing"]
    holdings = entities["800002"]
    assert (holdings.country, holdings.country_code, holdings.postal_code) == ("Ghana", "GH", "AK-039")
    lagos = entities["800003"]
    assert (lagos.country, lagos.country_code, lagos.postal_code) == ("Nigeria", "NG", "100001")
    assert "800004" not in entities


async def test_migration_adds_the_address_columns(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        connection = await session.connection()
        columns = await connection.run_sync(
            lambda sync: {c["name"]: c for c in inspect(sync).get_columns("registry_entities")}
        )
        version = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        assert version.scalar_one() >= "0008"
    for name, length in (("address", 500), ("postal_code", 20), ("parent_kernel_id", 20)):
        assert columns[name]["nullable"] is True
        assert getattr(columns[name]["type"], "length", None) == length


async def test_imported_country_names_resolve(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "ghana.csv"
    path.write_text("name,country,website\nKumasi Cocoa Processing,Ghana,kumasicocoa.com.gh\n")
    async with sessionmaker() as session, session.begin():
        report = await import_file(session, path, source="mine")
    assert report.inserted == 1
    ctx = ToolContext(
        settings=settings.model_copy(update={"registry_builtin": False}),
        sessionmaker=sessionmaker,
        http=cast(Any, None),
    )
    tool = get_tool("entity_resolution")
    for country in ("GH", "GHA", "Ghana", "ghana"):
        outcome = await tool.run(
            {"name": "Kumasi Cocoa Processing Ltd", "country": country}, tool.parse_config({}), ctx
        )
        assert outcome.status == "success", outcome.error
        assert outcome.value["country"] == "Ghana" and "country" in outcome.value["matched_on"]


# --- bring your own registry ------------------------------------------------------------------------------


async def test_builtin_registry_is_not_built_when_the_setting_is_false(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    own = settings.model_copy(update={"registry_builtin": False})
    ctx = ToolContext(settings=own, sessionmaker=sessionmaker, http=cast(Any, None))
    outcome = await get_tool("entity_resolution").run(
        {"name": "Micron Technology", "country": "US"}, get_tool("entity_resolution").parse_config({}), ctx
    )
    assert outcome.status == "skipped"
    firmo = get_tool("firmographics")
    missing = await firmo.run(
        {"kernel_id": kernel_id_for("pytickersymbols", "Micron Technology")}, firmo.parse_config({}), ctx
    )
    assert missing.status == "error"
    await _first_start(own, default_account=False)  # what `serve` and `worker` do at start
    async with sessionmaker() as session, session.begin():
        assert await ensure_default_registry(session, own) == 0
        assert await entity_count(session) == 0

    async with sessionmaker() as session, session.begin():
        built = await ensure_default_registry(session, settings)
    async with sessionmaker() as session:
        assert built > 1500 and await entity_count(session, "pytickersymbols") == built


async def test_first_start_builds_the_builtin_registry_by_default(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    assert settings.registry_builtin is True
    await _first_start(settings, default_account=False)
    async with sessionmaker() as session:
        assert await entity_count(session, "pytickersymbols") > 1500


def test_build_default_command_builds_even_when_the_setting_is_false(database_url: str) -> None:
    env = dossier_env(database_url, DOSSIER_REGISTRY_BUILTIN="false")
    built = run_cli("registry", "build-default", env=env)
    assert built.returncode == 0 and "default registry built" in built.stdout, built.stderr


# --- sources -----------------------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str], answer: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOSSIER_BIN, *args], env=env, input=answer, capture_output=True, text=True, timeout=60, check=False
    )


def test_sources_and_delete_source_commands(database_url: str, tmp_path: Path) -> None:
    env = dossier_env(database_url)
    empty = _cli("registry", "sources", "--json", env=env)
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    crm = tmp_path / "crm.csv"
    crm.write_text("name,country\nAlpha Ltd,Ghana\nBeta Ltd,Kenya\nGamma Ltd,GH\n")
    listings = tmp_path / "listings.jsonl"
    listings.write_text(json.dumps({"name": "Delta AG", "source": "listings", "country_code": "DE"}) + "\n")
    for path, source in ((crm, "crm"), (listings, "other")):
        imported = _cli("registry", "import", str(path), "--source", source, env=env)
        assert imported.returncode == 0, imported.stderr

    as_json = _cli("registry", "sources", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {"source": "crm", "companies": 3},
        {"source": "listings", "companies": 1},
    ]
    table = _cli("registry", "sources", env=env)
    assert table.returncode == 0, table.stderr
    assert "crm" in table.stdout and "listings" in table.stdout and "4 companies in 2 sources" in table.stdout

    refused = _cli("registry", "delete-source", "crm", env=env, answer="n\n")
    assert refused.returncode == 1 and "Delete 3 companies of source 'crm'?" in refused.stdout
    assert "nothing deleted" in refused.stderr
    assert len(_entities(database_url)) == 4

    accepted = _cli("registry", "delete-source", "crm", env=env, answer="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "deleted 3 companies of source 'crm'" in accepted.stdout
    assert {e.source for e in _entities(database_url).values()} == {"listings"}

    unknown = _cli("registry", "delete-source", "crm", "--yes", env=env)
    assert unknown.returncode == 1 and "no registry company has source 'crm'" in unknown.stderr

    forced = _cli("registry", "delete-source", "listings", "--yes", env=env)
    assert forced.returncode == 0 and "deleted 1 companies" in forced.stdout, forced.stderr
    final = _cli("registry", "sources", env=env)
    assert final.returncode == 0 and "the registry is empty" in final.stdout


async def test_delete_source_service_and_the_index(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    mine = tmp_path / "mine.csv"
    mine.write_text("name,country,website\nKumasi Cocoa Processing,Ghana,kumasicocoa.com.gh\n")
    other = tmp_path / "other.csv"
    other.write_text("name,country\nTamale Shea Butter,Ghana\nMombasa Tea Estates,Kenya\n")
    async with sessionmaker() as session, session.begin():
        await import_file(session, mine, source="mine")
        await import_file(session, other, source="other")
    async with sessionmaker() as session:
        assert [(s.source, s.companies) for s in await list_sources(session)] == [("other", 2), ("mine", 1)]

    index = await current_index(sessionmaker)
    assert index.lookup("Kumasi Cocoa Processing", "kumasicocoa.com.gh", "GH") is not None
    assert index.lookup("Tamale Shea Butter", None, "Ghana") is not None

    async with sessionmaker() as session, session.begin():
        assert await delete_source(session, "other") == 2
        assert await delete_source(session, "nope") == 0
    index = await current_index(sessionmaker)
    assert index.lookup("Tamale Shea Butter", None, "Ghana") is None
    assert index.lookup("Kumasi Cocoa Processing", "kumasicocoa.com.gh", "GH") is not None
    async with sessionmaker() as session, session.begin():
        assert await delete_source(session, "mine") == 1
        assert await list_sources(session) == []
    index = await current_index(sessionmaker)
    assert index.lookup("Kumasi Cocoa Processing", "kumasicocoa.com.gh", "GH") is None


async def test_a_failed_import_gives_back_its_page_cache(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    # An import raises SQLite's page cache to 256 MB; the setting belongs to the connection (the server's one
    # writing connection), so an import that fails part-way must set it back too.
    if sessionmaker.kw["bind"].dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL has no page cache setting per connection")
    rows = ({"source_key": f"x{n}", "name": f"Ostrava Tanners {n}"} for n in range(30))
    good = "".join(json.dumps(row) + "\n" for row in rows)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(good.encode() + b'{"source_key": "bad", "name": "\xff\xfe"}\n')
    with pytest.raises(RegistryImportError):
        async with sessionmaker() as session, session.begin():
            await import_file(session, broken, source="broken", batch_size=5)
    async with sessionmaker() as session:
        assert await session.scalar(text("PRAGMA cache_size")) == -2000  # SQLite's default, 2 MB
        assert await entity_count(session) == 0


def test_every_registry_setting_is_documented() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    text = (docs / "configuration.md").read_text()
    section = text.split("## Registry and matching", 1)[1].split("\n## ", 1)[0]
    names = [name for name in Settings.model_fields if name.startswith("registry_")]
    assert "registry_builtin" in names
    for name in names:
        rows = [line for line in section.splitlines() if line.startswith(f"| `DOSSIER_{name.upper()}` |")]
        assert len(rows) == 1, f"DOSSIER_{name.upper()} is missing from docs/configuration.md"
        default = Settings.model_fields[name].default
        if default is None:
            assert "| unset" in rows[0], name
        else:
            assert f"`{str(default).lower() if isinstance(default, bool) else default}`" in rows[0], name
    assert "DOSSIER_REGISTRY_BUILTIN" in (docs / "registry.md").read_text()
