"""A small registry with every field the filters read, and the fixtures the list-building tests share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.registry.models import RegistryEntity
from dossier.enrichment.registry.service import bump_generation
from dossier.projects.models import Row


def _company(kernel_id: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"kernel_id": kernel_id, "source": "test", "source_key": kernel_id, "name": name, **fields}


# 12 companies: 5 German software companies of several sizes, a subsidiary, banks, and sparse records.
COMPANIES = [
    _company(
        "1001",
        "Alpha Software AG",
        domain="alpha.de",
        country="Germany",
        country_code="DE",
        industry="Software",
        sector="Technology",
        employee_count=800,
        revenue_amount=120e6,
        revenue_currency="EUR",
        revenue_year=2024,
        hq_city="Berlin",
        hq_country="Germany",
        founded_year=1998,
        company_type="Public",
        aliases=["Alpha Soft"],
    ),
    _company(
        "1002",
        "Beta Systems GmbH",
        domain="beta.de",
        country="Germany",
        country_code="DE",
        industry="Software",
        sector="Technology",
        employee_count=4500,
        revenue_amount=900e6,
        revenue_currency="EUR",
        revenue_year=2024,
        hq_city="Munich",
        hq_country="Germany",
        founded_year=2005,
        company_type="Private",
    ),
    _company(
        "1003",
        "Gamma Cloud SE",
        domain="gamma.de",
        country="Germany",
        country_code="DE",
        industry="Software",
        sector="Technology",
        employee_count=12000,
        revenue_amount=3e9,
        revenue_currency="EUR",
        revenue_year=2023,
        hq_city="Berlin",
        hq_country="Germany",
        founded_year=1989,
        company_type="Public",
    ),
    _company(
        "1004",
        "Delta Apps GmbH",
        country="Germany",
        country_code="DE",
        industry="Software",
        sector="Technology",
        employee_count=120,
        hq_city="Hamburg",
        hq_country="Germany",
        founded_year=2015,
        company_type="Private",
    ),
    _company(
        "1005",
        "Epsilon Data GmbH",
        domain="epsilon.de",
        country="Germany",
        country_code="DE",
        industry="Software",
        sector="Technology",
        employee_count=None,
        hq_city="berlin",
        hq_country="Germany",
        company_type="Private",
        aliases=["über Daten"],
    ),
    _company(
        "1006",
        "Alpha Software Austria GmbH",
        domain="alpha.at",
        country="Austria",
        country_code="AT",
        industry="Software",
        sector="Technology",
        employee_count=600,
        hq_city="Vienna",
        hq_country="Austria",
        founded_year=2001,
        company_type="Private",
        parent_kernel_id="1001",
    ),
    _company(
        "1007",
        "First Bank of Testing",
        domain="firstbank.com",
        country="United States",
        country_code="US",
        industry="Banks",
        sector="Financials",
        employee_count=20000,
        revenue_amount=5e9,
        revenue_currency="USD",
        revenue_year=2024,
        hq_city="Boston",
        hq_country="United States",
        founded_year=1850,
        company_type="Public",
    ),
    _company(
        "1008",
        "Deutsche Testbank AG",
        domain="testbank.de",
        country="Germany",
        country_code="DE",
        industry="Banks",
        sector="Financials",
        employee_count=3000,
        revenue_amount=2e9,
        revenue_currency="EUR",
        revenue_year=2024,
        hq_city="Frankfurt",
        hq_country="Germany",
        founded_year=1870,
        company_type="Public",
    ),
    _company(
        "1009",
        "Omega 100% Tools Ltd",
        domain="omega.co.uk",
        country="United Kingdom",
        country_code="GB",
        industry="Machinery",
        sector="Industrials",
        employee_count=700,
        hq_city="Leeds",
        hq_country="United Kingdom",
        founded_year=1960,
        company_type="Private",
    ),
    _company(
        "1010",
        "Zeta Machines",
        country="France",
        country_code="FR",
        industry="Machinery",
        sector="Industrials",
        employee_count=700,
        hq_city="Lyon",
        hq_country="France",
        founded_year=1990,
    ),
    _company(
        "1011",
        "Eta Motors",
        country="France",
        country_code="FR",
        industry="Machinery",
        sector="Industrials",
        employee_count=50,
    ),
    _company("1012", "Theta Unknown"),
]


async def seed_registry(
    maker: async_sessionmaker[AsyncSession], companies: list[dict[str, Any]] | None = None
) -> None:
    async with maker() as session, session.begin():
        session.add_all(RegistryEntity(**company) for company in (companies or COMPANIES))
        # As every writer of the registry does: cached facets (and index snapshots) follow the generation.
        await bump_generation(session)


async def row_count(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count()).select_from(Row)) or 0)
