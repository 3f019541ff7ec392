"""A realistic registry of organisations, generated: names with the legal forms of many countries, cities,
websites, industries, sizes, parents and aliases, in the registry's import format (JSONL, one object a line).

    .venv/bin/python bench/registry_data.py OUT.jsonl[.gz] [--count 1000000] [--seed 20261201] [--source gen]

``iter_organisations`` yields the records (deterministic for a seed: the same call gives the same records) and
``write_registry`` streams them to a file; both are used by the registry benches and by anything else that
needs a large registry. Records carry ``source_key`` (``ORG0000001``...), so a re-import of the same file
updates in place; ``parent_kernel_id`` is the kernel_id the registry gives the parent's source key. Only
standard-library code and ``kernel_id_for``; nothing is read from the network.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dossier.enrichment.registry.service import kernel_id_for

SEED = 20261201
DEFAULT_SOURCE = "generated"

# country code -> (country name, web suffix, legal forms (most frequent first), cities)
COUNTRIES: dict[str, tuple[str, str, list[str], list[str]]] = {
    "US": (
        "United States",
        "com",
        ["Inc.", "LLC", "Corp.", "Co.", "L.P."],
        [
            "New York",
            "Chicago",
            "Houston",
            "Phoenix",
            "Dallas",
            "Austin",
            "Seattle",
            "Denver",
            "Boston",
            "Atlanta",
            "Miami",
            "Portland",
            "Detroit",
            "Nashville",
            "San Diego",
            "Columbus",
            "Charlotte",
        ],
    ),
    "GB": (
        "United Kingdom",
        "co.uk",
        ["Ltd", "Limited", "PLC", "LLP"],
        [
            "London",
            "Manchester",
            "Birmingham",
            "Leeds",
            "Glasgow",
            "Bristol",
            "Liverpool",
            "Edinburgh",
            "Cardiff",
            "Sheffield",
            "Nottingham",
            "Leicester",
        ],
    ),
    "DE": (
        "Germany",
        "de",
        ["GmbH", "AG", "GmbH & Co. KG", "KG", "e.K.", "UG"],
        [
            "Berlin",
            "Hamburg",
            "München",
            "Köln",
            "Frankfurt am Main",
            "Stuttgart",
            "Düsseldorf",
            "Leipzig",
            "Dortmund",
            "Essen",
            "Bremen",
            "Dresden",
            "Hannover",
            "Nürnberg",
        ],
    ),
    "FR": (
        "France",
        "fr",
        ["SAS", "SARL", "SA", "SASU", "EURL", "SCI"],
        [
            "Paris",
            "Marseille",
            "Lyon",
            "Toulouse",
            "Nice",
            "Nantes",
            "Strasbourg",
            "Montpellier",
            "Bordeaux",
            "Lille",
            "Rennes",
            "Reims",
        ],
    ),
    "NL": (
        "Netherlands",
        "nl",
        ["B.V.", "N.V.", "V.O.F."],
        ["Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Eindhoven", "Groningen", "Tilburg", "Almere"],
    ),
    "IT": (
        "Italy",
        "it",
        ["S.r.l.", "S.p.A.", "S.n.c.", "S.a.s."],
        ["Roma", "Milano", "Napoli", "Torino", "Palermo", "Genova", "Bologna", "Firenze", "Bari"],
    ),
    "ES": (
        "Spain",
        "es",
        ["S.L.", "S.A.", "S.L.U.", "S.C."],
        ["Madrid", "Barcelona", "Valencia", "Sevilla", "Zaragoza", "Málaga", "Murcia", "Bilbao"],
    ),
    "SE": (
        "Sweden",
        "se",
        ["AB", "HB", "KB"],
        ["Stockholm", "Göteborg", "Malmö", "Uppsala", "Västerås", "Örebro", "Linköping"],
    ),
    "NO": ("Norway", "no", ["AS", "ASA", "ANS"], ["Oslo", "Bergen", "Trondheim", "Stavanger", "Drammen"]),
    "DK": ("Denmark", "dk", ["A/S", "ApS", "I/S"], ["København", "Aarhus", "Odense", "Aalborg", "Esbjerg"]),
    "FI": ("Finland", "fi", ["Oy", "Oyj", "Ky"], ["Helsinki", "Espoo", "Tampere", "Vantaa", "Oulu", "Turku"]),
    "PL": (
        "Poland",
        "pl",
        ["Sp. z o.o.", "S.A.", "sp.k."],
        ["Warszawa", "Kraków", "Łódź", "Wrocław", "Poznań", "Gdańsk", "Szczecin"],
    ),
    "CH": (
        "Switzerland",
        "ch",
        ["AG", "GmbH", "SA", "Sàrl"],
        ["Zürich", "Genève", "Basel", "Lausanne", "Bern", "Winterthur", "Luzern"],
    ),
    "AT": ("Austria", "at", ["GmbH", "AG", "OG", "KG"], ["Wien", "Graz", "Linz", "Salzburg", "Innsbruck"]),
    "BE": (
        "Belgium",
        "be",
        ["NV", "BV", "SA", "SRL"],
        ["Bruxelles", "Antwerpen", "Gent", "Charleroi", "Liège", "Brugge"],
    ),
    "BR": (
        "Brazil",
        "com.br",
        ["Ltda.", "S.A.", "EIRELI", "ME"],
        ["São Paulo", "Rio de Janeiro", "Brasília", "Salvador", "Fortaleza", "Belo Horizonte", "Curitiba"],
    ),
    "MX": (
        "Mexico",
        "com.mx",
        ["S.A. de C.V.", "S. de R.L. de C.V.", "S.A.P.I. de C.V."],
        ["Ciudad de México", "Guadalajara", "Monterrey", "Puebla", "Tijuana", "León"],
    ),
    "JP": (
        "Japan",
        "co.jp",
        ["K.K.", "Co., Ltd.", "G.K."],
        ["Tokyo", "Osaka", "Yokohama", "Nagoya", "Sapporo", "Fukuoka", "Kobe", "Kyoto"],
    ),
    "IN": (
        "India",
        "in",
        ["Pvt. Ltd.", "Private Limited", "Ltd.", "LLP"],
        ["Mumbai", "Delhi", "Bengaluru", "Hyderabad", "Chennai", "Kolkata", "Pune", "Ahmedabad"],
    ),
    "AU": (
        "Australia",
        "com.au",
        ["Pty Ltd", "Pty. Limited", "Ltd"],
        ["Sydney", "Melbourne", "Brisbane", "Perth", "Adelaide", "Canberra", "Hobart"],
    ),
    "CA": (
        "Canada",
        "ca",
        ["Inc.", "Ltd.", "Corp.", "ULC"],
        ["Toronto", "Montréal", "Vancouver", "Calgary", "Edmonton", "Ottawa", "Winnipeg"],
    ),
    "ZA": (
        "South Africa",
        "co.za",
        ["(Pty) Ltd", "Ltd", "Inc."],
        ["Johannesburg", "Cape Town", "Durban", "Pretoria", "Port Elizabeth"],
    ),
    "SG": ("Singapore", "com.sg", ["Pte. Ltd.", "Ltd."], ["Singapore"]),
    "PT": ("Portugal", "pt", ["Lda.", "S.A.", "Unipessoal Lda."], ["Lisboa", "Porto", "Braga", "Coimbra"]),
    "IE": ("Ireland", "ie", ["Limited", "DAC", "Teoranta"], ["Dublin", "Cork", "Galway", "Limerick"]),
}
# Rough share of each country in a registry (a global register leans to the US and Europe).
WEIGHTS = {
    "US": 22,
    "GB": 10,
    "DE": 9,
    "FR": 7,
    "NL": 4,
    "IT": 5,
    "ES": 5,
    "SE": 3,
    "NO": 2,
    "DK": 2,
    "FI": 2,
    "PL": 3,
    "CH": 3,
    "AT": 2,
    "BE": 2,
    "BR": 4,
    "MX": 3,
    "JP": 4,
    "IN": 4,
    "AU": 3,
    "CA": 3,
    "ZA": 1,
    "SG": 1,
    "PT": 1,
    "IE": 1,
}

# The currency each country reports revenue in.
CURRENCIES = {
    "US": "USD",
    "GB": "GBP",
    "SE": "SEK",
    "NO": "NOK",
    "DK": "DKK",
    "PL": "PLN",
    "CH": "CHF",
    "BR": "BRL",
    "MX": "MXN",
    "JP": "JPY",
    "IN": "INR",
    "AU": "AUD",
    "CA": "CAD",
    "ZA": "ZAR",
    "SG": "SGD",
}  # every other country: EUR

INDUSTRIES: list[tuple[str, str, list[str]]] = [
    ("Technology", "Software", ["Software", "Systems", "Technologies", "Digital", "Data", "Labs", "Cloud"]),
    ("Technology", "Semiconductors", ["Semiconductor", "Microsystems", "Electronics", "Devices"]),
    ("Industrials", "Machinery", ["Engineering", "Machinery", "Industries", "Tools", "Automation"]),
    ("Industrials", "Construction", ["Construction", "Builders", "Bau", "Contracting", "Infrastructure"]),
    ("Industrials", "Logistics", ["Logistics", "Transport", "Freight", "Shipping", "Cargo"]),
    ("Consumer", "Food", ["Foods", "Bakery", "Dairy", "Brewery", "Beverages", "Kitchen"]),
    ("Consumer", "Retail", ["Retail", "Stores", "Trading", "Fashion", "Outfitters", "Market"]),
    ("Health Care", "Pharmaceuticals", ["Pharma", "Therapeutics", "Biosciences", "Health", "Medical"]),
    ("Financials", "Banking", ["Bank", "Capital", "Finance", "Investments", "Partners", "Asset Management"]),
    ("Financials", "Insurance", ["Insurance", "Assurance", "Underwriters"]),
    ("Energy", "Renewables", ["Energy", "Solar", "Wind", "Power", "Renewables"]),
    ("Materials", "Chemicals", ["Chemicals", "Materials", "Polymers", "Coatings", "Metals"]),
    ("Real Estate", "Real Estate", ["Properties", "Real Estate", "Estates", "Homes", "Development"]),
    ("Services", "Consulting", ["Consulting", "Advisory", "Solutions", "Services", "Management"]),
    ("Services", "Media", ["Media", "Studios", "Publishing", "Productions", "Communications"]),
    ("Agriculture", "Farming", ["Farms", "Agro", "Harvest", "Seeds", "Orchards"]),
]

SURNAMES = [
    "Smith",
    "Johnson",
    "Miller",
    "Brown",
    "Wilson",
    "Taylor",
    "Anderson",
    "Thomas",
    "Moore",
    "Martin",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Koch",
    "Dubois",
    "Lefebvre",
    "Moreau",
    "Laurent",
    "Girard",
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "García",
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Jansen",
    "de Vries",
    "van Dijk",
    "Bakker",
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nielsen",
    "Hansen",
    "Virtanen",
    "Nowak",
    "Kowalski",
    "Wiśniewski",
    "Silva",
    "Santos",
    "Oliveira",
    "Pereira",
    "Tanaka",
    "Suzuki",
    "Takahashi",
    "Watanabe",
    "Sharma",
    "Patel",
    "Singh",
    "Kumar",
    "Gupta",
    "O'Brien",
    "Murphy",
    "Kelly",
    "Walsh",
    "Dupont",
]
_ONSETS = [
    "b",
    "br",
    "c",
    "ch",
    "d",
    "dr",
    "f",
    "fl",
    "g",
    "gr",
    "h",
    "j",
    "k",
    "kl",
    "l",
    "m",
    "n",
    "p",
    "pr",
    "qu",
    "r",
    "s",
    "sk",
    "st",
    "t",
    "tr",
    "v",
    "w",
    "z",
    "x",
    "ph",
    "sh",
    "th",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y"]
_CODAS = ["", "", "n", "r", "s", "x", "l", "m", "nt", "rk", "st", "v", "tt", "ck", "nd"]
_ENDINGS = ["", "", "", "ia", "ex", "on", "ix", "ara", "ent", "ico", "ova", "ant", "us", "eo", "ity"]


def _brand_words(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct invented brand words ("Kalvex", "Trionta"): most of a registry's vocabulary."""
    words: dict[str, None] = {}
    while len(words) < count:
        syllables = rng.choice((1, 2, 2, 2, 3))
        word = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
        )
        word += rng.choice(_ENDINGS)
        if 4 <= len(word) <= 12:
            words[word.capitalize()] = None
    return list(words)


def _slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in folded if c.isascii() and c.isalnum())


def _acronym(words: list[str]) -> str:
    return "".join(w[0] for w in words if w[:1].isalpha()).upper()


def iter_organisations(
    count: int = 1_000_000, *, seed: int = SEED, source: str = DEFAULT_SOURCE
) -> Iterator[dict[str, Any]]:
    """``count`` organisations as import records, deterministic for ``seed``.

    About 10% are subsidiaries of an earlier record (its brand, a country or city, another legal form, and
    ``parent_kernel_id``), 15% carry aliases (an acronym, a trade name, a former name), 75% a website, 60% a
    revenue in their country's currency (drawn from a second random stream, so the other fields are the same
    as before revenues were added).
    Keeps only a bounded sample of earlier records in memory (for parents), so any count streams.
    """
    rng = random.Random(seed)
    money = random.Random(seed + 1)
    brands = _brand_words(rng, max(2000, min(count // 4, 300_000)))
    codes = list(WEIGHTS)
    weights = [WEIGHTS[c] for c in codes]
    parents: list[tuple[str, str, str, str]] = []  # (source_key, brand, sector words..., industry index)
    for number in range(1, count + 1):
        source_key = f"ORG{number:07d}"
        code = rng.choices(codes, weights)[0]
        country, suffix, forms, cities = COUNTRIES[code]
        form = forms[0] if rng.random() < 0.6 else rng.choice(forms)
        city = rng.choice(cities)
        industry_index = rng.randrange(len(INDUSTRIES))
        sector, industry, descriptors = INDUSTRIES[industry_index]
        record: dict[str, Any] = {"source": source, "source_key": source_key}
        aliases: list[str] = []
        parent = rng.choice(parents) if parents and rng.random() < 0.1 else None
        if parent is not None:
            parent_key, brand, _, parent_industry = parent
            sector, industry, descriptors = INDUSTRIES[int(parent_industry)]
            where = rng.choice((country, city, rng.choice(descriptors)))
            words = [brand, where]
            record["parent_kernel_id"] = kernel_id_for(source, parent_key)
        else:
            style = rng.random()
            brand = rng.choice(brands)
            if style < 0.45:
                words = [brand, rng.choice(descriptors)]
            elif style < 0.6:
                words = [brand]
            elif style < 0.72:
                words = [rng.choice(SURNAMES), "&", rng.choice(SURNAMES)]
                brand = words[0]
            elif style < 0.82:
                words = [brand, rng.choice(brands), rng.choice(descriptors)]
            elif style < 0.9:
                words = [city, rng.choice(descriptors)]
                brand = city
            else:
                words = [rng.choice(SURNAMES), rng.choice(descriptors)]
                brand = words[0]
        name = f"{' '.join(words)} {form}"
        record["name"] = name
        record["country_code"] = code
        record["hq_city"] = city
        if rng.random() < 0.75:
            slug = _slug("".join(w for w in words[:3] if w != "&"))
            record["website"] = f"{slug}{rng.choice(('', '', '', '-' + code.lower()))}.{suffix}"
        record["industry"] = industry
        record["sector"] = sector
        record["employee_count"] = max(1, int(rng.lognormvariate(3.0, 1.6)))
        record["founded_year"] = rng.randint(1850, 2025)
        if money.random() < 0.6:
            record["revenue_amount"] = round(record["employee_count"] * money.uniform(50_000, 400_000), -3)
            record["revenue_currency"] = CURRENCIES.get(code, "EUR")
            record["revenue_year"] = 2024
        record["company_type"] = (
            "subsidiary" if parent is not None else rng.choice(("private", "private", "public"))
        )
        if rng.random() < 0.3:
            record["postal_code"] = f"{rng.randint(1000, 99999)}"
            record["address"] = f"{rng.randint(1, 250)} {rng.choice(SURNAMES)} Street"
        if rng.random() < 0.15:
            kind = rng.random()
            if kind < 0.4 and len(words) > 1:
                aliases.append(_acronym(words))
            elif kind < 0.7:
                aliases.append(f"{rng.choice(brands)} {rng.choice(descriptors)}")
            else:
                aliases.append(f"{rng.choice(brands)} {rng.choice(forms)}")
        if aliases:
            record["aliases"] = aliases
        if parent is None and len(parents) < 50_000:
            parents.append((source_key, brand, industry, str(industry_index)))
        elif parent is None and rng.random() < 0.05:
            parents[rng.randrange(len(parents))] = (source_key, brand, industry, str(industry_index))
        yield record


def _open_out(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=3)
    return path.open("w", encoding="utf-8")


def write_registry(
    path: str | Path, count: int = 1_000_000, *, seed: int = SEED, source: str = DEFAULT_SOURCE
) -> int:
    """Stream ``count`` organisations to ``path`` as JSONL (gzip when it ends in .gz); returns the count."""
    written = 0
    with _open_out(Path(path)) as out:
        for record in iter_organisations(count, seed=seed, source=source):
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
            written += 1
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path, help="output file (.jsonl or .jsonl.gz)")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="source name the file is imported under")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    written = write_registry(args.out, args.count, seed=args.seed, source=args.source)
    print(f"{written:,} organisations written to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
