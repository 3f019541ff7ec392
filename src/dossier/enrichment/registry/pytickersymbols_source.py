"""The default registry: listed companies shipped by the ``pytickersymbols`` package (MIT).

The package's metadata is free text copied from Wikipedia infoboxes ("23,299 (December, 2024)",
"2006 ; 20 years ago ( 2006 )", "US$ 24.8 billion (2024)", "Chandler, Arizona , U.S."). The parsers here turn
it into typed fields; anything they cannot read confidently stays None rather than being guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from dossier.enrichment.registry.countries import COUNTRIES, country_code, is_us_state
from dossier.enrichment.registry.normalize import fold, normalize_name, registrable_domain

SOURCE = "pytickersymbols"

_YEAR = re.compile(r"\b(1[5-9]\d{2}|20\d{2})\b")
_NUMBER = re.compile(r"(\d{1,3}(?:[,.\u00a0 ]\d{3})+(?![\d])|\d+(?:\.\d+)?)\s*(million|thousand)?", re.I)


def parse_year(value: Any) -> int | None:
    """``"2006 ; 20 years ago ( 2006 )"`` -> 2006; ``1988`` -> 1988; the first plausible year, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1500 <= value <= 2100 else None
    if not isinstance(value, str):
        return None
    match = _YEAR.search(value)
    return int(match.group(1)) if match else None


def _to_number(text: str) -> float:
    if re.fullmatch(r"\d{1,3}(?:[,.\u00a0 ]\d{3})+", text):
        # Thousands separators: "23,299", "14.046" (European), "3 500".
        return float(re.sub(r"\D", "", text))
    return float(text)


def parse_employees(value: Any) -> int | None:
    """``"23,299 (December, 2024)"`` -> 23299; ``"c. 16,000 (2025)"`` -> 16000; an int stays an int.

    When several figures are given, the consolidated one wins ("6,269 (non-consolidated) 51,500
    (consolidated)"), else the first. Years in parentheses are never taken for head counts.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    consolidated = re.search(r"([\d][\d,. ]*)\s*\(\s*consolidated", text, re.I)
    if consolidated:
        text = consolidated.group(1)
    for match in _NUMBER.finditer(text):
        start = match.start()
        # Skip numbers inside a parenthesised date: "570 (June 30, 2020)".
        if text.count("(", 0, start) > text.count(")", 0, start):
            continue
        try:
            number = _to_number(match.group(1).strip())
        except ValueError:
            continue
        if match.group(2):
            number *= 1_000_000 if match.group(2).lower() == "million" else 1_000
        return int(number) if number >= 1 else None
    return None


# (regex, ISO 4217); order matters: longer symbols first ("US$" before "$", "JP¥" before "¥").
_CURRENCIES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.I), code)
    for p, code in [
        (r"US\s?\$|\$\s?US|\bUSD\b|United States dollars?", "USD"),
        (r"CA\$|C\$|\bCAD\b", "CAD"),
        (r"A\$|AU\$|\bAUD\b", "AUD"),
        (r"HK\$|\bHKD\b", "HKD"),
        (r"NT\$|\bTWD\b", "TWD"),
        (r"S\$|\bSGD\b", "SGD"),
        (r"R\$|\bBRL\b", "BRL"),
        (r"JP¥|\bJPY\b|\byen\b", "JPY"),
        (r"CN¥|\bRMB\b|\bCNY\b|\byuan\b", "CNY"),
        (r"€|\beuros?\b|\bEUR\b", "EUR"),
        (r"£|\bGBP\b|\bpounds?\b", "GBP"),
        (r"\bCHF\b|\bSFr\b", "CHF"),
        (r"\bSEK\b", "SEK"),
        (r"\bNOK\b", "NOK"),
        (r"\bDKK\b", "DKK"),
        (r"₩|\bKRW\b|\bwon\b", "KRW"),
        (r"₹|\bINR\b|\bRs\.?", "INR"),
        (r"zł|\bPLN\b", "PLN"),
        (r"\bkr\b", "KR"),  # Scandinavian crown: which one depends on the country
        (r"¥", "YEN"),  # Japanese unless the company is Chinese
        (r"\$", "USD"),
    ]
]
_SCALES = {"trillion": 1e12, "billion": 1e9, "bn": 1e9, "b": 1e9, "million": 1e6, "mln": 1e6, "m": 1e6}
_AMOUNT = re.compile(
    r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?)\s*(trillion|billion|bn|mln|million|b|m)?\b", re.I
)


@dataclass(frozen=True)
class Revenue:
    amount: float
    currency: str | None
    year: int | None


def parse_revenue(value: Any, country_code_hint: str | None = None) -> Revenue | None:
    """``"US$ 24.8 billion (2024)"`` -> Revenue(24.8e9, "USD", 2024); the first figure of several."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.replace("\u00a0", " ").strip()
    amount_match = _AMOUNT.search(text)
    if amount_match is None:
        return None
    raw, scale = amount_match.group(1), (amount_match.group(2) or "").lower()
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", raw):
        number = float(raw.replace(",", ""))
    else:
        number = float(raw.replace(",", "."))
    number *= _SCALES.get(scale, 1.0)
    # The currency is the symbol nearest the figure: look just before it, then just after it.
    before = text[max(0, amount_match.start() - 12) : amount_match.start()]
    after = text[amount_match.end() : amount_match.end() + 20]
    currency = None
    for window in (before, after):
        currency = next((code for pattern, code in _CURRENCIES if pattern.search(window)), None)
        if currency is not None:
            break
    if currency == "KR":
        currency = {"NO": "NOK", "DK": "DKK", "IS": "ISK"}.get(country_code_hint or "", "SEK")
    elif currency == "YEN":
        currency = "CNY" if country_code_hint == "CN" else "JPY"
    year_match = _YEAR.search(text, amount_match.end())
    if number <= 0:
        return None
    return Revenue(number, currency, int(year_match.group(1)) if year_match else None)


@dataclass(frozen=True)
class Place:
    city: str | None
    country: str | None  # canonical English name
    code: str | None


def _place_code(part: str) -> str | None:
    cleaned = part.strip(" .")
    # States first: in "Atlanta, Georgia" Georgia is the state, and the sources are mostly American.
    if is_us_state(cleaned):
        return "US"
    return country_code(cleaned)


def parse_place(value: Any) -> Place | None:
    """``"Chandler, Arizona , U.S."`` -> Place("Chandler", "United States", "US")."""
    if not isinstance(value, str) or not value.strip():
        return None
    parts = [p.strip(" .;") for p in value.split(",")]
    parts = [p for p in parts if p]
    code: str | None = None
    city: str | None = None
    after_state = False
    for part in reversed(parts):
        part_code = _place_code(part)
        # "Lebanon, Tennessee": before a US state, a country's name is a town's.
        if part_code is not None and not (after_state and not is_us_state(part.strip(" ."))):
            code = code or part_code
            after_state = after_state or is_us_state(part.strip(" ."))
            continue
        cleaned = re.sub(r"^and\s+", "", part)
        cleaned = re.sub(r"[\d\u2013\u2014-]{3,}", "", cleaned).strip(" -")  # post codes ("Tokyo 100-8185")
        if not cleaned or re.search(r"\d", cleaned):
            continue  # a street address
        city = cleaned
        break
    if city is None and code is None:
        return None
    return Place(city, COUNTRIES.get(code) if code else None, code)


_SECTORS = frozenset(
    {
        "financials",
        "industrials",
        "consumer discretionary",
        "health care",
        "healthcare",
        "information technology",
        "real estate",
        "energy",
        "utilities",
        "materials",
        "basic materials",
        "consumer staples",
        "communication services",
        "technology",
        "consumer cyclicals",
        "consumer non-cyclicals",
    }
)


def _alias_from_wikipedia(url: Any, name: str) -> str | None:
    if not isinstance(url, str) or "/wiki/" not in url:
        return None
    title = unquote(urlsplit(url).path.rsplit("/wiki/", 1)[1]).replace("_", " ")
    title = re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()  # "Apple (company)" -> "Apple"
    if not title or fold(title) == fold(name):
        return None
    # The package has a few wrong links (one company pointing at another's article, "Apollo Commercial Real
    # Estate Finance" -> "Apollo Global Management"); an alias must contain the name's words or be contained
    # in them, or it could make entity resolution return the wrong company.
    ours, theirs = set(normalize_name(name).core), set(normalize_name(title).core)
    if not ours or not theirs or not (ours <= theirs or theirs <= ours):
        return None
    return title


def record_from_stock(stock: Mapping[str, Any]) -> dict[str, Any] | None:
    """One pytickersymbols stock as RegistryEntity column values (without kernel_id/updated_at)."""
    name = str(stock.get("name") or "").strip()
    if not name:
        return None
    meta: Mapping[str, Any] = stock.get("metadata") or {}
    hq = parse_place(meta.get("headquarters"))
    listed = parse_place(stock.get("country"))
    # "country" is usually a country, sometimes the HQ city ("Houston, Texas").
    code = (listed.code if listed else None) or (hq.code if hq else None)
    raw_country = str(stock.get("country") or "").strip()
    country = (
        COUNTRIES.get(code) if code else (raw_country if raw_country.casefold() not in {"", "none"} else None)
    )
    hq_city = hq.city if hq else None
    if hq_city is None and listed is not None and listed.code is not None and listed.city:
        hq_city = listed.city
    industries = [str(i).strip() for i in stock.get("industries") or [] if str(i).strip()]
    sector = next((i for i in industries if i.casefold() in _SECTORS), None)
    industry = next((i for i in industries if i.casefold() not in _SECTORS), None)
    revenue = parse_revenue(meta.get("revenue"), code)
    company_type = meta.get("company_type")
    aliases = [a for a in [_alias_from_wikipedia(meta.get("wikipedia_url"), name)] if a]
    isins = sorted({str(i).strip().upper() for i in stock.get("isins") or [] if str(i).strip()})
    symbols = [
        s.get("yahoo") for s in stock.get("symbols") or [] if isinstance(s, Mapping) and s.get("yahoo")
    ]
    return {
        "source": SOURCE,
        "source_key": name[:200],
        "name": name[:300],
        "aliases": aliases,
        "domain": registrable_domain(meta.get("website")),
        "country": country,
        "country_code": code,
        "industry": industry[:200] if industry else None,
        "sector": sector,
        "employee_count": parse_employees(meta.get("employees")),
        "revenue_amount": revenue.amount if revenue else None,
        "revenue_currency": revenue.currency if revenue else None,
        "revenue_year": revenue.year if revenue else None,
        "hq_city": hq_city[:200] if hq_city else None,
        "hq_country": (hq.country if hq and hq.country else country),
        "founded_year": parse_year(meta.get("founded")),
        "company_type": " ".join(str(company_type).split())[:100] if company_type else None,
        "isins": isins,
        "description": None,
        "extra": {
            "symbol": stock.get("symbol"),
            "yahoo_symbols": symbols,
            "wikipedia_url": meta.get("wikipedia_url"),
            "industries": industries,
        },
    }


def iter_default_records() -> Iterator[dict[str, Any]]:
    """Every company of the installed pytickersymbols package, parsed (about 1,800)."""
    from pytickersymbols import PyTickerSymbols

    seen: set[str] = set()
    for stock in PyTickerSymbols().get_all_stocks():
        record = record_from_stock(stock)
        # Names are the package's unique key; a repeat (none today) would otherwise break the upsert.
        if record is None or record["source_key"] in seen:
            continue
        seen.add(record["source_key"])
        yield record
