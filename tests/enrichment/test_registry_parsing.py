"""Parsing pytickersymbols' free text, name normalisation and kernel_id stability (no database)."""

from __future__ import annotations

import pytest

from dossier.enrichment.registry.normalize import normalize_name, registrable_domain
from dossier.enrichment.registry.pytickersymbols_source import (
    iter_default_records,
    parse_employees,
    parse_place,
    parse_revenue,
    parse_year,
)
from dossier.enrichment.registry.service import kernel_id_for


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("23,299 (December, 2024)", 23299),
        ("3,167 (average, 2021)", 3167),
        ("c. 16,000 : 2 (2025)", 16000),
        ("6,269 (non-consolidated) 51,500 (consolidated) (as of December 31, 2013)", 51500),
        ("570 (June 30, 2020)", 570),
        ("14.046 (December 2022)", 14046),
        ("3 500", 3500),
        ("Approximately 2,000", 2000),
        ("62,850+ (FY 2025)", 62850),
        (44641, 44641),
        ("", None),
        (None, None),
    ],
)
def test_employees(raw: object, expected: int | None) -> None:
    assert parse_employees(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2006 ; 20 years ago ( 2006 )", 2006),
        ("1957 ( 1957 ) , 69 years ago", 1957),
        ("May 10, 1933 ; 92 years ago ( 1933-05-10 ) Osaka , Japan", 1933),
        ("June 1897 ; 128 years ago ( 1897-06 )", 1897),
        (1988, 1988),
        (0, None),
        ("unknown", None),
    ],
)
def test_founded_year(raw: object, expected: int | None) -> None:
    assert parse_year(raw) == expected


@pytest.mark.parametrize(
    ("raw", "country", "amount", "currency", "year"),
    [
        ("US$ 24.8 billion (2024)", "US", 24.8e9, "USD", 2024),
        ("€4.400 billion (2020)", "DE", 4.4e9, "EUR", 2020),
        ("4.7 billion Euro (2024)", "DE", 4.7e9, "EUR", 2024),
        ("7,925,610,000 euro (2023)", "FR", 7_925_610_000, "EUR", 2023),
        ("¥ 12.63 trillion (2024)", "JP", 12.63e12, "JPY", 2024),
        ("63.751 billion kr (2024)", "SE", 63.751e9, "SEK", 2024),
        ("$690.6 Million(2021)", "US", 690.6e6, "USD", 2021),
        ("£ 1.2 billion", "GB", 1.2e9, "GBP", None),
        ("€4.169 billion (2023) €4.479 billion (2022)", "DE", 4.169e9, "EUR", 2023),
    ],
)
def test_revenue(raw: str, country: str, amount: float, currency: str, year: int | None) -> None:
    revenue = parse_revenue(raw, country)
    assert revenue is not None
    assert revenue.amount == pytest.approx(amount)
    assert (revenue.currency, revenue.year) == (currency, year)


@pytest.mark.parametrize(
    ("raw", "city", "code"),
    [
        ("Montabaur , Germany", "Montabaur", "DE"),
        ("Chandler, Arizona , U.S.", "Chandler", "US"),
        ("Atlanta, Georgia", "Atlanta", "US"),
        ("Coalville , England, UK", "Coalville", "GB"),
        ("Ohtemachi Building, 1-6-1, Ōtemachi , Chiyoda-ku , Tokyo 100-8185, Japan", "Tokyo", "JP"),
        ("11501 Northlake Drive, Cincinnati, Ohio", "Cincinnati", "US"),
    ],
)
def test_headquarters(raw: str, city: str, code: str) -> None:
    place = parse_place(raw)
    assert place is not None
    assert (place.city, place.code) == (city, code)


def test_the_default_records_are_typed_and_complete_enough() -> None:
    records = list(iter_default_records())
    assert len(records) > 1500
    assert len({r["source_key"] for r in records}) == len(records)
    by_name = {r["name"]: r for r in records}
    one_and_one = by_name["1&1"]
    assert one_and_one["employee_count"] == 3167
    assert one_and_one["founded_year"] == 1988
    assert one_and_one["domain"] == "1und1.ag"
    assert (one_and_one["hq_city"], one_and_one["country_code"]) == ("Montabaur", "DE")
    assert one_and_one["revenue_currency"] == "EUR" and one_and_one["revenue_year"] == 2021
    assert one_and_one["isins"] == ["DE0005545503"]
    # Most companies get typed fields out of the free text.
    with_employees = sum(1 for r in records if r["employee_count"])
    with_country = sum(1 for r in records if r["country_code"])
    assert with_employees > 0.75 * len(records) and with_country > 0.9 * len(records)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Micron Technology, Inc.", "MICRON TECHN. INC. DL-,10"),
        ("Micron Technology", "micron technology corporation"),
        ("Eni S.p.A.", "ENI SPA"),
        ("Koninklijke Philips N.V.", "Koninklijke Philips NV"),
        ("Nestlé S.A.", "NESTLE SA"),
        ("Ørsted A/S", "Orsted AS"),
        ("The Southern Company", "Southern Co"),
        ("Procter & Gamble", "Procter and Gamble Co."),
        ("A. O. Smith", "A.O. Smith Corp"),
        ("Alphabet Inc. Class C", "Alphabet Inc."),
        ("SAP SE", "SAP"),
        ("Bayer AG", "BAYER AKTIENGESELLSCHAFT"),
        ("Amazon.com, Inc.", "Amazon"),
        ("K+S AG", "K + S"),
        ("Sainsbury's", "J Sainsbury plc"[2:]),
        ("Abbott Laboratories", "ABBOTT LABS"),
        ("Henkel AG & Co. KGaA", "Henkel KGaA"),
        ("AHOLD DELHAIZE,KON.EO-,01", "Koninklijke Ahold Delhaize N.V."),
    ],
)
def test_names_that_normalise_alike(a: str, b: str) -> None:
    assert normalize_name(a).core == normalize_name(b).core


def test_distinct_names_stay_distinct() -> None:
    assert normalize_name("Apple Hospitality REIT").core != normalize_name("Apple Inc.").core
    assert normalize_name("AB InBev").core == ("ab", "inbev")  # a leading "AB" is a name, not a legal form
    assert normalize_name("Holdings Group").core  # never reduced to nothing


@pytest.mark.parametrize(
    ("website", "domain"),
    [
        ("https://www.Example.co.uk/about?x=1", "example.co.uk"),
        ("www.micron.com", "micron.com"),
        ("engie.com /en", "engie.com"),
        ("holdings.fujifilm.com", "fujifilm.com"),
        ("jane@acme.de", "acme.de"),
        ("acme.github.io", "acme.github.io"),
        ("not a website", None),
        ("", None),
    ],
)
def test_registrable_domain(website: str, domain: str | None) -> None:
    assert registrable_domain(website) == domain


def test_kernel_ids_are_stable_numeric_strings() -> None:
    # Pinned values: the same (source, key) must give the same id on every install and every version.
    assert kernel_id_for("pytickersymbols", "Micron Technology") == "157963266835069525"
    assert kernel_id_for("pytickersymbols", "1&1") == kernel_id_for("pytickersymbols", "1&1")
    assert kernel_id_for("a", "b") != kernel_id_for("b", "a")
    kid = kernel_id_for("import", "x")
    assert kid.isdigit() and len(kid) == 18
