"""`dossier registry import` through the real command: CSV, JSONL, gzip, upserts and rejected rows."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

from sqlalchemy import select

from dossier.db.engine import create_engine, create_sessionmaker
from dossier.enrichment.registry.index_cache import load_rows
from dossier.enrichment.registry.models import RegistryEntity
from dossier.enrichment.registry.service import kernel_id_for
from dossier.settings import Settings
from tests.conftest import dossier_env, run_cli, shared_data

LISTED_HEADER = (
    "symbol,name,country,state,city,zipcode,website,sector,industry_group,industry,exchange,market_cap,isin,"
    "summary"
)


def _entities(database_url: str) -> dict[str, RegistryEntity]:
    async def read() -> dict[str, RegistryEntity]:
        engine = create_engine(Settings(database_url=database_url))
        try:
            async with create_sessionmaker(engine)() as session:
                rows = (await session.scalars(select(RegistryEntity))).all()
                return {row.kernel_id: row for row in rows}
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_import_listed_companies_csv_and_upsert(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "companies.csv"
    path.write_text(
        LISTED_HEADER + "\n"
        "ACME.DE,Acme Widgets AG,Germany,,Berlin,10115,https://www.acme-widgets.de/en,Industrials,"
        'Capital Goods,Machinery,GER,Small Cap,DE0001234566,"Acme makes widgets, and more."\n'
        "BAD.X,,Germany,,,,,,,,,,,\n"
        "ZZZ.L,Zed Holdings plc,United Kingdom,,London,,zed.co.uk,,,,LSE,,,\n"
    )
    env = dossier_env(database_url)
    result = run_cli("registry", "import", str(path), "--source", "listings", env=env)
    assert result.returncode == 0, result.stderr
    assert "2 inserted" in result.stdout and "0 updated" in result.stdout and "1 rejected" in result.stdout
    assert "line 3: name is required" in result.stderr

    entities = _entities(database_url)
    acme = entities[kernel_id_for("listings", "ACME.DE")]
    assert acme.name == "Acme Widgets AG" and acme.domain == "acme-widgets.de"
    assert (acme.country, acme.country_code, acme.hq_city, acme.hq_country) == (
        "Germany",
        "DE",
        "Berlin",
        "Germany",
    )
    assert acme.isins == ["DE0001234566"] and acme.industry == "Machinery"
    assert acme.description == "Acme makes widgets, and more."
    assert acme.extra["exchange"] == "GER" and acme.extra["market_cap"] == "Small Cap"
    # zipcode is the postal code; state has no column of its own.
    assert acme.postal_code == "10115" and "zipcode" not in acme.extra and "state" not in acme.extra
    assert len(entities) == 2

    # Re-import with a changed row: the same kernel_id is updated, nothing is duplicated.
    path.write_text(LISTED_HEADER + "\nACME.DE,Acme Widgets SE,Germany,,Munich,,,,,,,,,\n")
    again = run_cli("registry", "import", str(path), "--source", "listings", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 inserted" in again.stdout and "1 updated" in again.stdout
    entities = _entities(database_url)
    acme = entities[kernel_id_for("listings", "ACME.DE")]
    assert (acme.name, acme.hq_city) == ("Acme Widgets SE", "Munich")
    assert len(entities) == 2


def test_import_jsonl_gz_by_kernel_id_and_bad_rows(database_url: str, tmp_path: Path) -> None:
    rows = [
        {
            "kernel_id": "900001",
            "name": "Northwind Traders",
            "domain": "northwind-traders.com",
            "employee_count": 120,
            "revenue_amount": 1.5e6,
            "revenue_currency": "usd",
            "revenue_year": 2024,
            "isins": ["US0000000001"],
            "aliases": ["Northwind"],
            "country_code": "US",
            "founded_year": 1999,
        },
        {"name": "Contoso", "source": "crm", "source_key": "c-1", "employee_count": "1,200"},
        {"name": "Broken Employees", "employee_count": "lots"},
        {"name": "Broken Id", "kernel_id": "abc"},
        "not an object",
        {"name": "Broken Country", "country_code": "XX"},
    ]
    path = tmp_path / "companies.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        handle.write("{not json\n")
    env = dossier_env(database_url)
    result = run_cli("registry", "import", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert "2 inserted" in result.stdout and "5 rejected" in result.stdout
    for line in (
        "line 3: employee_count",
        "line 4: kernel_id",
        "line 5: not a JSON object",
        "line 6: country_code",
        "line 7: not valid JSON",
    ):
        assert line in result.stderr, result.stderr

    entities = _entities(database_url)
    northwind = entities["900001"]
    assert northwind.revenue_currency == "USD" and northwind.employee_count == 120
    assert northwind.country == "United States" and northwind.aliases == ["Northwind"]
    contoso = entities[kernel_id_for("crm", "c-1")]
    assert contoso.employee_count == 1200

    # An update by kernel_id changes only the columns the file has.
    path2 = tmp_path / "update.jsonl"
    path2.write_text(
        json.dumps({"kernel_id": "900001", "name": "Northwind Traders Inc", "employee_count": 150})
    )
    again = run_cli("registry", "import", str(path2), env=env)
    assert again.returncode == 0 and "1 updated" in again.stdout, again.stdout + again.stderr
    northwind = _entities(database_url)["900001"]
    assert northwind.name == "Northwind Traders Inc" and northwind.employee_count == 150
    assert northwind.domain == "northwind-traders.com" and northwind.revenue_year == 2024


def test_a_bad_file_is_refused_and_nothing_is_written(database_url: str, tmp_path: Path) -> None:
    env = dossier_env(database_url)
    no_name = tmp_path / "no-name.csv"
    no_name.write_text("symbol,country\nA,Germany\n")
    result = run_cli("registry", "import", str(no_name), env=env)
    assert result.returncode == 1 and "no 'name' column" in result.stderr

    missing = run_cli("registry", "import", str(tmp_path / "absent.csv"), env=env)
    assert missing.returncode == 1 and "not a readable file" in missing.stderr

    # Valid rows first, then bytes that are not UTF-8: the whole import is refused and rolled back.
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(b"name,country\n" + b"Good Co,France\n" * 3000 + b"Bad \xff\xfe Co,France\n")
    broken = run_cli("registry", "import", str(mixed), env=env)
    assert broken.returncode == 1 and "cannot read" in broken.stderr
    assert _entities(database_url) == {}


def test_build_default_and_listed_companies_import(database_url: str) -> None:
    env = dossier_env(database_url)
    built = run_cli("registry", "build-default", env=env)
    assert built.returncode == 0 and "default registry built" in built.stdout, built.stderr
    again = run_cli("registry", "build-default", env=env)
    assert again.returncode == 0 and "already present" in again.stdout

    listed = shared_data("listed-companies.csv.gz")
    result = run_cli("registry", "import", str(listed), "--source", "financedatabase", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "41,752 inserted" in result.stdout and "0 rejected" in result.stdout

    async def count() -> int:
        engine = create_engine(Settings(database_url=database_url))
        try:
            async with create_sessionmaker(engine)() as session:
                return len(await load_rows(session))
        finally:
            await engine.dispose()

    assert asyncio.run(count()) > 43_000
