"""Entity-resolution evaluation data we own: registries and labelled queries per failure family.

Three datasets, all built from ``../shared/data`` (never copied into the repository), deterministically
(seeded random, splits by a stable hash of the organisation id):

- ``ror``: the Research Organization Registry as a gazetteer. Registry = display name, city, country code and
  first domain of four fifths of the active organisations (half of them also carry their aliases, labels and
  acronyms); queries = other names, names with locations appended, same-named records, held-out
  organisations (no match) and held-out children/parents/related organisations (hard negatives).
- ``listed``: listed companies (one registry record per website domain) plus synthetic records, with query
  variants for the families real data lacks (legal forms, locations, numbered sites, initials, group words,
  typos, articles, duplicated records, same-named branches) and held-out companies (no match).
- ``pairs``: ``er-dev-pairs.csv`` against the default registry (pytickersymbols).

Each labelled query belongs to a ``dev`` split (about 70%, for tuning) or a ``holdout`` split (about 30%,
kept out of tuning). ``evaluate`` scores a matcher per (dataset, family, split).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TypeVar

from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import extract, extractOne

from dossier.enrichment.registry.countries import country_code
from dossier.enrichment.registry.matcher import EntityIndex, EntityRow
from dossier.enrichment.registry.normalize import registrable_domain

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SEED = 20261201
T = TypeVar("T")
MAX_QUERIES = 4000

UNKNOWABLE_FAMILIES = frozenset({"unknown_name"})
FAMILIES = (
    "exact",
    "legal_form",
    "location",
    "alias",
    "unknown_name",
    "spelling",
    "distinguishing",
    "typo",
    "article",
    "tie",
    "same_name",
    "out_of_registry",
)


@dataclass(frozen=True, slots=True)
class Query:
    """A labelled query: ``expected_kernel_id`` None means the right answer is "no match"."""

    dataset: str
    family: str
    split: str
    name: str | None
    website: str | None = None
    country: str | None = None
    city: str | None = None
    postal_code: str | None = None
    address: str | None = None
    expected_kernel_id: str | None = None
    kind: str = ""  # the sub-case inside the family ("leading", "numbered", "no_city", ...)


@dataclass(slots=True)
class Dataset:
    name: str
    rows: list[EntityRow]
    queries: list[Query]
    names: dict[str, str] = field(default_factory=dict)  # kernel_id -> registry name, for reports

    def index(self) -> EntityIndex:
        return EntityIndex(self.rows)


# --- deterministic helpers --------------------------------------------------------------------------------


def _hash(salt: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}\x1f{key}".encode()).digest()[:8], "big")


def split_of(key: str) -> str:
    """``holdout`` for about 30% of organisations, ``dev`` for the rest; stable across runs and machines."""
    return "holdout" if _hash("split", key) % 10 < 3 else "dev"


def held_out(key: str) -> bool:
    """About a fifth of organisations are left out of the registry."""
    return _hash("held", key) % 5 == 0


def _rng(name: str) -> random.Random:
    return random.Random(f"{SEED}:{name}")


def _sample(rng: random.Random, items: Sequence[T], count: int) -> list[T]:
    return list(items) if len(items) <= count else rng.sample(list(items), count)


# --- a normalisation of our own (labels must not depend on the matcher under test) -----------------------

_TRAILING_FORMS = [
    r"s\.?\s?a\.?\s?b\.?\s+de\s+c\.?\s?v\.?",
    r"s\.?\s?a\.?\s+de\s+c\.?\s?v\.?",
    r"public\s+company\s+limited",
    r"public\s+limited\s+company",
    r"co(?:mpany)?\.?\s*,?\s*ltd\.?",
    r"co(?:mpany)?\.?\s*,?\s*limited",
    r"pty\.?\s+ltd\.?",
    r"pte\.?\s+ltd\.?",
    r"pvt\.?\s+ltd\.?",
    r"private\s+limited",
    r"sdn\.?\s+bhd\.?",
    r"sp\.?\s*z\s*o\.?\s?o\.?",
    r"(?:se|ag|gmbh)\s*&\s*co\.?\s*(?:kgaa|kg)",
    r"anonim\s+sirketi",
    r"ab\s*\(publ\)",
    r"\(publ\)",
    r"co\.?",
    r"(?:public\s+)?joint[\s-]+stock\s+company",
    r"incorporated",
    r"inc\.?",
    r"corporation",
    r"corp\.?",
    r"limited",
    r"ltd\.?",
    r"p\.?l\.?c\.?",
    r"l\.?l\.?c\.?",
    r"s\.?p\.?a\.?",
    r"s\.?a\.?s\.?",
    r"s\.?a\.?",
    r"s\.?l\.?",
    r"s\.?r\.?l\.?",
    r"s\.?r\.?o\.?",
    r"a\.?\s?s\.?",
    r"a/s",
    r"a\.?g\.?",
    r"s\.?e\.?",
    r"n\.?\s?v\.?",
    r"b\.?\s?v\.?",
    r"g\.?m\.?b\.?h\.?",
    r"e\.?\s?v\.?",
    r"k\.?\s?k\.?",
    r"ab",
    r"asa",
    r"oyj?",
    r"tbk\.?",
    r"bhd\.?",
    r"berhad",
    r"pcl\.?",
    r"kgaa",
    r"ltda\.?",
    r"sae",
    r"jsc",
    r"pjsc",
    r"societe\s+anonyme",
    r"aktiengesellschaft",
    r"naamloze\s+vennootschap",
    r"kabushiki\s+kaisha",
]
_TRAILING_RE = re.compile(r"[\s,\-]+(?:" + "|".join(_TRAILING_FORMS) + r")\s*$", re.IGNORECASE)
_LEADING_RE = re.compile(
    r"^(?:pt|pjsc|pao|oao|ooo|ao|jsc|n\.?v\.?|b\.?v\.?|(?:public\s+)?joint[\s-]+stock\s+company)\s+",
    re.IGNORECASE,
)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def strip_legal_form(name: str) -> str:
    """The name without its legal form(s) at the end (and PT/OOO/N.V. at the start); never empty."""
    stem = " ".join(name.split())
    while True:
        shorter = _TRAILING_RE.sub("", stem)
        shorter = _LEADING_RE.sub("", shorter).strip(" ,-")
        if shorter == stem or len(shorter) < 2:
            return stem
        stem = shorter


_FOLD = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ł": "l", "Ł": "L", "ß": "ss", "đ": "d"})


def _ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text.translate(_FOLD)).encode("ascii", "ignore").decode().casefold()


@cache
def simple_key(name: str) -> str:
    """Folded, legal forms removed, punctuation to spaces: our labels' notion of "the same name"."""
    return " ".join(_NON_ALNUM.sub(" ", _ascii_fold(strip_legal_form(name))).split())


# --- evaluation -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    query: Query
    returned_kernel_id: str | None

    @property
    def correct(self) -> bool:
        return (
            self.returned_kernel_id is not None and self.returned_kernel_id == self.query.expected_kernel_id
        )

    @property
    def wrong(self) -> bool:
        return (
            self.returned_kernel_id is not None and self.returned_kernel_id != self.query.expected_kernel_id
        )


@dataclass(slots=True)
class Stats:
    queries: int = 0
    positives: int = 0
    negatives: int = 0
    answered: int = 0
    correct: int = 0
    wrong: int = 0
    false_matches: int = 0  # answers to queries whose right answer is "no match"
    # Positives whose name the registry does not carry (family ``unknown_name``): no matcher can find them,
    # so totals leave them out of recall (their own row shows it); they still count for precision.
    unknowable: int = 0
    unknowable_correct: int = 0

    def add(self, outcome: Outcome) -> None:
        self.queries += 1
        if outcome.query.expected_kernel_id is None:
            self.negatives += 1
            self.false_matches += outcome.returned_kernel_id is not None
        else:
            self.positives += 1
            if outcome.query.family in UNKNOWABLE_FAMILIES:
                self.unknowable += 1
                self.unknowable_correct += outcome.correct
        self.answered += outcome.returned_kernel_id is not None
        self.correct += outcome.correct
        self.wrong += outcome.wrong

    def merge(self, other: Stats) -> None:
        for name in (
            "queries",
            "positives",
            "negatives",
            "answered",
            "correct",
            "wrong",
            "false_matches",
            "unknowable",
            "unknowable_correct",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def precision(self) -> float:
        """correct / answered (1.0 when nothing was answered: no answer is never a wrong one)."""
        return self.correct / self.answered if self.answered else 1.0

    @property
    def recall(self) -> float | None:
        """correct / positives, over the positives a matcher can know when there are any."""
        if self.positives > self.unknowable:
            return (self.correct - self.unknowable_correct) / (self.positives - self.unknowable)
        return self.correct / self.positives if self.positives else None

    @property
    def false_match_rate(self) -> float | None:
        return self.false_matches / self.negatives if self.negatives else None


def run_queries(index: EntityIndex, queries: Iterable[Query], **lookup_kwargs: object) -> list[Outcome]:
    outcomes = []
    for query in queries:
        match = index.lookup(
            query.name,
            query.website,
            query.country,
            city=query.city,
            postal_code=query.postal_code,
            address=query.address,
            **lookup_kwargs,  # type: ignore[arg-type]
        )
        outcomes.append(Outcome(query, match.kernel_id if match is not None else None))
    return outcomes


def summarize(
    outcomes: Iterable[Outcome], key: Callable[[Query], tuple[str, ...]] | None = None
) -> dict[tuple[str, ...], Stats]:
    """Stats per ``key`` (default: (dataset, family, split)), sorted by key."""
    key = key or (lambda q: (q.dataset, q.family, q.split))
    table: dict[tuple[str, ...], Stats] = defaultdict(Stats)
    for outcome in outcomes:
        table[key(outcome.query)].add(outcome)
    return dict(sorted(table.items()))


def evaluate(
    index: EntityIndex, queries: Iterable[Query], **lookup_kwargs: object
) -> dict[tuple[str, ...], Stats]:
    """Per (dataset, family, split): queries, answered, correct, wrong, precision, recall, false matches."""
    return summarize(run_queries(index, queries, **lookup_kwargs))


# --- ROR ---------------------------------------------------------------------------------------------------


_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")


def _latin(text: str) -> bool:
    return bool(_LATIN.search(text))


_ROR_ID = re.compile(r'"ror_id"\s*:\s*"([^"]+)"')


def load_ror(path: Path | None = None, max_queries: int = MAX_QUERIES, fraction: float = 1.0) -> Dataset:
    """``fraction`` < 1 keeps a stable subset of the organisations (a smaller, faster gazetteer for tests)."""
    path = path or DATA / "ror-organizations.jsonl.gz"
    records = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            found = _ROR_ID.search(line)
            if found is None or (fraction < 1 and _hash("subset", found.group(1)) % 1000 >= fraction * 1000):
                continue
            records.append(json.loads(line))
    records = [r for r in records if r.get("status") == "active" and r.get("name")]
    records.sort(key=lambda r: r["ror_id"])
    by_id = {r["ror_id"]: r for r in records}
    kept = {r["ror_id"] for r in records if not held_out(r["ror_id"])}
    with_aliases = {rid for rid in kept if _hash("aliases", rid) % 2 == 0}

    def kid(rid: str) -> str:
        return f"ror:{rid}"

    def other_names(record: dict[str, object]) -> list[tuple[str, str]]:
        cached = record.get("_other")
        if cached is not None:
            return cached  # type: ignore[return-value]
        out: list[tuple[str, str]] = []
        for entry in record.get("names") or []:  # type: ignore[attr-defined]
            types = entry.get("types") or []
            value = (entry.get("value") or "").strip()
            if not value or "ror_display" in types or not _latin(value):
                continue
            kind = "acronym" if "acronym" in types else "alias" if "alias" in types else "label"
            out.append((kind, value))
        record["_other"] = out
        return out

    rows: list[EntityRow] = []
    names: dict[str, str] = {}
    # simple key -> kept ror ids carrying that name (display names, plus aliases where the registry has them)
    carriers: dict[str, set[str]] = defaultdict(set)
    display_carriers: dict[str, set[str]] = defaultdict(set)
    for record in records:
        rid = record["ror_id"]
        if rid not in kept:
            continue
        aliases = tuple(dict.fromkeys(v for _, v in other_names(record))) if rid in with_aliases else ()
        domains = record.get("domains") or []
        rows.append(
            EntityRow(
                kid(rid),
                record["name"],
                aliases=aliases,
                domain=domains[0] if domains else None,
                country_code=record.get("country_code"),
                city=record.get("city"),
            )
        )
        names[kid(rid)] = record["name"]
        display_carriers[simple_key(record["name"])].add(rid)
        for value in (record["name"], *aliases):
            carriers[simple_key(value)].add(rid)

    def expect(name: str, cc: str | None, city: str | None, own: str | None) -> str | None:
        """The single kept record carrying ``name`` in the query's country (and city when given), or None."""
        holders = {
            rid
            for rid in carriers.get(simple_key(name), ())
            if (cc is None or by_id[rid].get("country_code") == cc)
            and (city is None or by_id[rid].get("city") == city)
        }
        if own is not None and own in kept:
            holders.add(own)
        return kid(next(iter(holders))) if len(holders) == 1 else None

    rng = _rng("ror")
    candidates: dict[str, list[Query]] = defaultdict(list)
    for record in records:
        rid, name = record["ror_id"], record["name"]
        cc, city = record.get("country_code"), record.get("city")
        split = split_of(rid)
        key = simple_key(name)
        if not key:
            continue
        shared = len(display_carriers.get(key, ())) > 1 or (rid not in kept and key in display_carriers)

        def add(family: str, kind: str, query_name: str, expected: str | None, **extra: str | None) -> None:
            candidates[family].append(
                Query("ror", family, split, query_name, expected_kernel_id=expected, kind=kind, **extra)  # noqa: B023
            )

        if rid in kept:
            if shared:
                # Same-named records: the city decides; without it (or when it does not), no match.
                add("same_name", "with_city", name, expect(name, cc, city, None), country=cc, city=city)
                add("same_name", "no_city", name, expect(name, cc, None, None), country=cc)
                continue
            if carriers[key] != {rid}:
                continue  # our display name is another record's alias: ambiguous by construction
            domains = record.get("domains") or []
            website = f"https://www.{domains[0]}/" if domains and rng.random() < 0.5 else None
            add("exact", "website" if website else "name", name, kid(rid), country=cc, website=website)
            if city and _ascii_fold(city) not in _ascii_fold(name):
                pattern = rng.choice(
                    ["{n}, {c}", "{n} ({c})", "{n}, {c}, {cc}", "{n} - {c} Site", "{n} {cc}"]
                )
                query_name = pattern.format(n=name, c=city, cc=cc or "")
                add("location", pattern, query_name, kid(rid), country=cc)
            for kind, value in other_names(record):
                if simple_key(value) == key or not simple_key(value):
                    continue
                if rid in with_aliases:
                    add("alias", kind, value, expect(value, cc, None, rid), country=cc)
                elif kind != "acronym" and not carriers.get(simple_key(value)):
                    # The registry does not know this name (a former name, a translation it lacks): the
                    # record is the right answer but no matcher can know it, so recall is low by design;
                    # another record is wrong. Left out when another record carries the name itself.
                    add("unknown_name", f"unregistered_{kind}", value, kid(rid), country=cc)
        else:
            if shared:
                # Held out, but its name is a kept record's display name: only the city tells them apart.
                others = display_carriers[key]
                if city and all(by_id[o].get("city") != city for o in others):
                    add("same_name", "other_city", name, None, country=cc, city=city)
                continue
            if key in carriers:
                continue  # a kept record carries this name as an alias: the registry says they are one
            relations = record.get("relationships") or []
            succession = any(r["type"] in ("predecessor", "successor") and r["id"] in kept for r in relations)
            if succession:
                continue  # a former/later name of a kept record: not clearly "no match"
            related = [
                r for r in relations if r["id"] in kept and r["type"] in ("parent", "child", "related")
            ]
            if related:
                add("distinguishing", related[0]["type"], name, None, country=cc, city=city)
            else:
                add("out_of_registry", "display", name, None, country=cc)

    quotas = {
        "exact": 400,
        "location": 500,
        "alias": 600,
        "unknown_name": 300,
        "same_name": 700,
        "distinguishing": 700,
        "out_of_registry": 700,
    }
    scale = min(1.0, max_queries / sum(quotas.values())) * fraction
    queries: list[Query] = []
    for family, quota in quotas.items():
        queries.extend(_sample(_rng(f"ror:{family}"), candidates[family], int(quota * scale)))
    return Dataset("ror", rows, queries, names)


# --- listed companies ------------------------------------------------------------------------------------

# Per country: kinds of legal form, each with spellings (abbreviated with/without dots, written out).
FORMS: dict[str, list[list[str]]] = {
    "US": [["Inc.", "Inc", "Incorporated"], ["Corp.", "Corp", "Corporation"], ["LLC", "L.L.C."]],
    "GB": [["Ltd", "Ltd.", "Limited"], ["PLC", "plc", "P.L.C.", "Public Limited Company"]],
    "IE": [["Ltd", "Limited"], ["PLC", "plc", "Public Limited Company"]],
    "CA": [["Inc.", "Inc", "Incorporated"], ["Ltd.", "Limited"], ["Corp.", "Corporation"]],
    "AU": [["Pty Ltd", "Pty. Ltd.", "Proprietary Limited"], ["Limited", "Ltd"]],
    "NZ": [["Limited", "Ltd"]],
    "IN": [["Pvt Ltd", "Pvt. Ltd.", "Private Limited"], ["Limited", "Ltd."]],
    "NL": [["N.V.", "NV", "naamloze vennootschap"], ["B.V.", "BV", "besloten vennootschap"]],
    "BE": [["N.V.", "NV", "naamloze vennootschap"], ["S.A.", "SA", "société anonyme"]],
    "DE": [
        ["AG", "A.G.", "Aktiengesellschaft"],
        ["GmbH", "G.m.b.H."],
        ["e.V.", "eV", "eingetragener Verein"],
    ],
    "AT": [["AG", "Aktiengesellschaft"], ["GmbH", "G.m.b.H."]],
    "CH": [["AG", "Aktiengesellschaft"], ["SA", "S.A.", "société anonyme"]],
    "FR": [["S.A.", "SA", "société anonyme"], ["S.A.S.", "SAS"], ["SARL", "S.A.R.L."]],
    "ES": [["S.A.", "SA", "sociedad anónima"], ["S.L.", "SL", "sociedad limitada"]],
    "IT": [["S.p.A.", "SpA", "società per azioni"], ["S.r.l.", "Srl"]],
    "PL": [
        ["Sp. z o.o.", "sp. z o.o.", "Sp z oo", "spółka z ograniczoną odpowiedzialnością"],
        ["S.A.", "SA"],
    ],
    "CZ": [["s.r.o.", "sro", "spol. s r.o."], ["a.s.", "as"]],
    "RU": [["OOO", "LLC"], ["PJSC", "PAO"], ["AO", "JSC"]],
    "JP": [["K.K.", "KK", "Kabushiki Kaisha"], ["Co., Ltd.", "Co Ltd"], ["Corporation", "Corp."]],
    "MY": [["Sdn Bhd", "Sdn. Bhd.", "Sendirian Berhad"], ["Bhd", "Berhad"]],
    "SG": [["Pte. Ltd.", "Pte Ltd", "Private Limited"], ["Ltd", "Limited"]],
    "SE": [["AB", "Aktiebolag", "AB (publ)"]],
    "DK": [["A/S", "AS"]],
    "NO": [["ASA"], ["AS", "A/S"]],
    "FI": [["Oyj"], ["Oy"]],
    "ID": [["Tbk", "Tbk."]],
    "BR": [["S.A.", "SA"], ["Ltda.", "Ltda"]],
    "MX": [["S.A.B. de C.V.", "SAB de CV"], ["S.A. de C.V.", "SA de CV"]],
    "CN": [["Co., Ltd.", "Co Ltd", "Company Limited"], ["Corporation", "Corp."]],
    "HK": [["Limited", "Ltd"]],
    "TW": [["Co., Ltd.", "Co Ltd", "Company Limited"], ["Corporation", "Corp."]],
    "KR": [["Co., Ltd.", "Co Ltd", "Company Limited"], ["Corporation", "Corp."]],
    "TH": [["Public Company Limited", "PCL", "Pcl."]],
    "IL": [["Ltd.", "Ltd", "Limited"]],
    "TR": [["A.S.", "AS", "Anonim Sirketi"]],
    "ZA": [["Limited", "Ltd"], ["(Pty) Ltd"]],
}
DEFAULT_FORMS = [["Ltd.", "Ltd", "Limited"], ["Inc.", "Inc"]]
# Forms written before the name (leading), by country.
LEADING_FORMS: dict[str, list[str]] = {
    "NL": ["N.V.", "NV", "B.V."],
    "BE": ["N.V.", "NV"],
    "RU": ["OOO", "PJSC", "AO"],
    "ID": ["PT"],
    "JP": ["Kabushiki Kaisha", "K.K."],
    "FR": ["Société dite", "S.A."],
    "DE": ["Firma"],
    "AT": ["Firma"],
    "CH": ["Firma"],
    "PL": ["Firma"],
}
# Registry records written with the form first, and the same form as a query writes it last.
REGISTRY_LEADING: dict[str, tuple[str, str]] = {
    "NL": ("N.V.", "N.V."),
    "BE": ("N.V.", "NV"),
    "RU": ("PJSC", "PJSC"),
    "JP": ("Kabushiki Kaisha", "K.K."),
    "FR": ("S.A.", "SA"),
}
ARTICLES = {
    "ES": ["El", "La", "Los"],
    "MX": ["El", "La"],
    "AR": ["El", "La"],
    "CL": ["El", "La"],
    "FR": ["Le", "La", "Les"],
    "BE": ["Le", "De"],
    "NL": ["De", "Het"],
    "DE": ["Der", "Die", "Das"],
    "AT": ["Der", "Die"],
    "IT": ["La", "Il"],
}
GROUP_WORDS = [
    "Technology",
    "Logistics",
    "Leasing",
    "Real Estate",
    "Insurance",
    "Finance",
    "Securities",
    "Energy",
    "Chemicals",
    "Electric",
    "Trading",
    "Properties",
    "Pharma",
    "Retail",
    "Shipping",
    "Steel",
    "Motors",
    "Engineering",
    "Foods",
    "Bank",
]
SURNAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Martin",
    "Jackson",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Hill",
    "Campbell",
    "Mitchell",
    "Roberts",
    "Carter",
    "Phillips",
    "Evans",
    "Turner",
    "Parker",
    "Collins",
    "Edwards",
    "Stewart",
    "Morris",
    "Murphy",
    "Cook",
    "Rogers",
    "Morgan",
    "Cooper",
    "Peterson",
    "Reed",
    "Bailey",
    "Bell",
    "Kelly",
    "Howard",
    "Ward",
    "Cox",
    "Richardson",
    "Wood",
    "Watson",
    "Brooks",
    "Bennett",
    "Gray",
    "Hughes",
    "Price",
    "Sanders",
    "Myers",
    "Long",
    "Ross",
    "Foster",
    "Mueller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Dubois",
    "Laurent",
    "Moreau",
    "Lefebvre",
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "Garcia",
    "Fernandez",
    "Lopez",
    "Martinez",
    "Sanchez",
    "Jansen",
    "Visser",
    "Bakker",
    "Janssens",
    "Peeters",
    "Nowak",
    "Kowalski",
    "Novak",
    "Svoboda",
]
ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII"]
TRANSLITERATIONS = [
    ("ae", "a"),
    ("oe", "o"),
    ("ue", "u"),
    ("ph", "f"),
    ("ks", "x"),
    ("y", "i"),
    ("w", "v"),
    ("c", "k"),
    ("sh", "ch"),
    ("ou", "u"),
    ("kh", "h"),
    ("j", "y"),
]
STREETS = ["Main", "Station", "Church", "High", "Park", "Mill", "Bridge", "Market", "Harbour", "Garden"]


@dataclass(slots=True)
class _Company:
    key: str  # stable id (the website's registrable domain)
    name: str
    stem: str
    country: str
    code: str | None
    city: str | None
    state: str | None
    zipcode: str | None
    domain: str
    spellings: list[str]

    @property
    def kernel_id(self) -> str:
        return f"listed:{self.key}"


def _load_companies(path: Path) -> list[_Company]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        raw = list(csv.DictReader(handle))
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in raw:
        domain = registrable_domain(row.get("website") or None)
        if domain and row.get("name"):
            groups[domain].append(row)
    companies = []
    for domain, rows in sorted(groups.items()):
        # The fullest row (city known, then the longest name) names the company.
        rows.sort(key=lambda r: (not r.get("city"), not r.get("zipcode"), -len(r["name"]), r["symbol"]))
        first = rows[0]
        name = " ".join(first["name"].split())
        stem = strip_legal_form(name)
        if not simple_key(name) or not re.search(r"[A-Za-z]{3}", stem):
            continue
        # Other listings of the same security (same ISIN): groups and fund families share websites too.
        isin = first.get("isin")
        spellings = list(
            dict.fromkeys(" ".join(r["name"].split()) for r in rows[1:] if isin and r.get("isin") == isin)
        )
        companies.append(
            _Company(
                domain,
                name,
                stem,
                first.get("country") or "",
                country_code(first.get("country")),
                first.get("city") or None,
                first.get("state") or None,
                first.get("zipcode") or None,
                domain,
                [s for s in spellings if simple_key(s) != simple_key(name)],
            )
        )
    return companies


def _forms(code: str | None) -> list[list[str]]:
    return FORMS.get(code or "", DEFAULT_FORMS)


def _form_kind(name: str, code: str | None) -> list[str] | None:
    """The kind of legal form ``name`` ends with (its spellings), when our table knows it."""
    tail = _ascii_fold(name).replace(",", " ")
    for kind in _forms(code):
        for spelling in kind:
            if tail.endswith(" " + _ascii_fold(spelling).replace(",", " ")):
                return kind
    return None


def _typo(word: str, rng: random.Random) -> str:
    """One edit (substitution, deletion, insertion or swap), never at the first letter."""
    i = rng.randrange(1, len(word) - 1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    op = rng.choice(["sub", "del", "ins", "swap"])
    if op == "sub":
        return word[:i] + rng.choice([c for c in letters if c != word[i].lower()]) + word[i + 1 :]
    if op == "del":
        return word[:i] + word[i + 1 :]
    if op == "ins":
        return word[:i] + rng.choice(letters) + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _transliterate(text: str, rng: random.Random) -> str | None:
    options = [(a, b) for a, b in TRANSLITERATIONS if a in text[1:].lower()]
    if not options:
        return None
    a, b = rng.choice(options)
    position = text.lower().index(a, 1)
    return text[:position] + b + text[position + len(a) :]


def load_listed(path: Path | None = None, max_queries: int = MAX_QUERIES) -> Dataset:
    path = path or DATA / "listed-companies.csv.gz"
    companies = _load_companies(path)
    kept = [c for c in companies if not held_out(c.key)]
    held = [c for c in companies if held_out(c.key)]
    rows: dict[str, EntityRow] = {}
    for company in kept:
        rows[company.kernel_id] = EntityRow(
            company.kernel_id,
            company.name,
            domain=company.domain,
            country=company.country,
            country_code=company.code,
            city=company.city,
            postal_code=company.zipcode,
        )
    # Real names only: companies whose name collides with another kept company are not used as bases.
    key_count: dict[str, int] = defaultdict(int)
    for company in kept:
        key_count[simple_key(company.name)] += 1
    bases = [
        c
        for c in kept
        if key_count[simple_key(c.name)] == 1
        and len(simple_key(c.stem)) >= 4
        and re.fullmatch(r"[A-Za-z0-9&'.,\- ]+", c.name)
    ]
    rng = _rng("listed")
    rng.shuffle(bases)
    cities_by_country: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for company in companies:
        if company.city and company.code:
            cities_by_country[company.code].append((company.city, company.zipcode))
    queries: list[Query] = []

    def q(
        company_key: str, family: str, kind: str, name: str, expected: str | None, **extra: str | None
    ) -> None:
        queries.append(
            Query(
                "listed", family, split_of(company_key), name, expected_kernel_id=expected, kind=kind, **extra
            )
        )

    # Each synthetic family gets its own base companies, so the records one family adds never meet another's.
    used: set[str] = set()

    def next_bases(count: int, accept: Callable[[_Company], bool] = lambda c: True) -> list[_Company]:
        chosen: list[_Company] = []
        for company in bases:
            if len(chosen) == count:
                break
            if company.key not in used and accept(company):
                used.add(company.key)
                chosen.append(company)
        return chosen

    scale = min(1.0, max_queries / 4000)

    def n(count: int) -> int:
        return max(1, int(count * scale))

    # 1. Legal forms: same company with its legal form spelled differently, leading or trailing, written out,
    # clerical prefixes; a fifth of the registry records are rewritten with the form leading.
    for company in next_bases(n(320)):
        code = company.code
        kind = _form_kind(company.name, code) or rng.choice(_forms(code))
        spelling = rng.choice(kind)
        leading = LEADING_FORMS.get(code or "")
        roll = rng.random()
        if leading and roll < 0.4:
            query_name, how = f"{rng.choice(leading)} {company.stem}", "leading"
        elif roll < 0.7 and code in REGISTRY_LEADING:
            # Registry written with the form first ("N.V. Acme"), query with it last ("Acme N.V.").
            prefix, suffix = REGISTRY_LEADING[code]
            rows[company.kernel_id] = _renamed(rows[company.kernel_id], f"{prefix} {company.stem}")
            query_name, how = f"{company.stem} {suffix}", "registry_leading"
        else:
            query_name, how = f"{company.stem} {spelling}", "trailing"
        if rng.random() < 0.3:
            query_name = query_name.upper()
        q(company.key, "legal_form", how, query_name, company.kernel_id, country=company.country)
        if rng.random() < 0.5:
            q(company.key, "legal_form", "none", company.stem, company.kernel_id, country=company.country)

    # 2. Locations and sites appended.
    for company in next_bases(n(350)):
        if not company.city:
            continue
        cc = company.code or ""
        patterns = [
            "{n}, {city}, {cc}",
            "{n} ({state})",
            "{s} - {city} Site",
            "{n} {country}",
            "{n}, {cc}",
            "{s} - {city} Branch",
            "{n} - {city} Office",
        ]
        pattern = rng.choice([p for p in patterns if company.state or "{state}" not in p])
        query_name = pattern.format(
            n=company.name,
            s=company.stem,
            city=company.city,
            cc=cc,
            state=company.state,
            country=company.country,
        )
        q(company.key, "location", pattern, query_name, company.kernel_id, country=company.country)

    # 4a. Numbered sites and funds: synthetic numbered siblings; another number is not a match.
    for company in next_bases(n(80)):
        roman = rng.random() < 0.5
        numbers = [2, 3] if roman else [1, 2, 5]
        style = rng.choice(["#{}", "No. {}", "{}"]) if not roman else "Fund {}"

        def numbered(
            number: int, company: _Company = company, style: str = style, roman: bool = roman
        ) -> str:
            return f"{company.stem} " + style.format(ROMAN[number - 1] if roman else number)

        for number in numbers:
            kid = f"{company.kernel_id}~no{number}"
            rows[kid] = EntityRow(kid, numbered(number), country=company.country, city=company.city)
        present = rng.choice(numbers)
        absent = (max(numbers) + 1) if rng.random() < 0.5 else min(numbers) + 1
        if absent in numbers:
            absent = max(numbers) + 1
        country = company.country
        q(
            company.key,
            "distinguishing",
            "number_present",
            numbered(present),
            f"{company.kernel_id}~no{present}",
            country=country,
        )
        q(company.key, "distinguishing", "number_absent", numbered(absent), None, country=country)

    # 4b. Initials: synthetic "Surname, X." records; another initial is not a match.
    initials = "ABCDEGHJKLMPRSTW"
    for surname in SURNAMES:
        r = _rng(f"initials:{surname}")
        letters = r.sample(initials, 2)
        missing = r.choice([c for c in initials if c not in letters])
        suffix = r.choice(["", "", " & Co.", " Ltd", " GmbH"])
        for letter in letters:
            kid = f"initials:{surname}:{letter}"
            rows[kid] = EntityRow(kid, f"{surname}, {letter}.{suffix}")
        split = split_of(f"initials:{surname}")
        queries.append(
            Query(
                "listed",
                "distinguishing",
                split,
                f"{surname}, {letters[0]}.{suffix}",
                expected_kernel_id=f"initials:{surname}:{letters[0]}",
                kind="initial_letters",
            )
        )
        queries.append(
            Query(
                "listed",
                "distinguishing",
                split,
                f"{letters[1]}. {surname}{suffix}",
                expected_kernel_id=f"initials:{surname}:{letters[1]}",
                kind="initial_reordered",
            )
        )
        queries.append(
            Query(
                "listed",
                "distinguishing",
                split,
                f"{surname}, {missing}.{suffix}",
                expected_kernel_id=None,
                kind="initial_absent",
            )
        )

    # 4c. A word naming another company of the group: not a match, unless the registry lists it as an alias.
    for company in next_bases(n(260)):
        word = rng.choice([w for w in GROUP_WORDS if w.lower() not in company.stem.lower()])
        subsidiary = f"{company.stem} {word}"
        form = rng.choice(rng.choice(_forms(company.code)))
        if rng.random() < 0.3:
            rows[company.kernel_id] = _renamed(rows[company.kernel_id], company.name, aliases=(subsidiary,))
            q(
                company.key,
                "distinguishing",
                "group_word_alias",
                f"{subsidiary} {form}",
                company.kernel_id,
                country=company.country,
            )
        else:
            q(
                company.key,
                "distinguishing",
                "group_word",
                f"{subsidiary} {form}",
                None,
                country=company.country,
            )

    # 5. Typos and transliterations; a typo between two close records is no match.
    typo_queries: list[tuple[_Company, str, str]] = []
    for company in next_bases(n(420)):
        words = company.stem.split()
        long_words = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if not long_words:
            continue
        i = rng.choice(long_words)
        roll = rng.random()
        if roll < 0.25:
            # A synthetic near-twin two edits away, and a query one edit from both.
            twin_word = _typo(_typo(words[i], rng), rng)
            if Levenshtein.distance(twin_word.lower(), words[i].lower()) != 2:
                continue
            twin = " ".join([*words[:i], twin_word, *words[i + 1 :]])
            kid = f"{company.kernel_id}~twin"
            rows[kid] = EntityRow(kid, twin, country=company.country)
            middle = Levenshtein.editops(words[i], twin_word)[:1].apply(words[i], twin_word)  # type: ignore[union-attr]
            query_name = " ".join([*words[:i], middle, *words[i + 1 :]])
            q(company.key, "typo", "between_twins", query_name, None, country=company.country)
            continue
        if roll < 0.45:
            changed = _transliterate(words[i], rng)
            how = "transliteration"
        elif roll < 0.8:
            changed, how = _typo(words[i], rng), "one_edit"
        elif len(long_words) >= 2:
            # Two edits, one in each of two words.
            j = rng.choice([k for k in long_words if k != i])
            words = [*words]
            words[j] = _typo(words[j], rng)
            changed, how = _typo(words[i], rng), "two_edits"
        elif len(words[i]) >= 9:
            changed, how = _typo(_typo(words[i], rng), rng), "two_edits"
        else:
            changed, how = _typo(words[i], rng), "one_edit"
        if not changed or changed.lower() == words[i].lower():
            continue
        typo_queries.append((company, " ".join([*words[:i], changed, *words[i + 1 :]]), how))
    # Label typos against every registry name: the company when nothing else is as close, else no match.
    registry_keys = [(kid, simple_key(row.name)) for kid, row in rows.items()]
    choices = [key for _, key in registry_keys]
    for company, query_name, how in typo_queries:
        query_key = simple_key(query_name)
        own = Levenshtein.distance(query_key, simple_key(rows[company.kernel_id].name))
        near = extract(query_key, choices, scorer=Levenshtein.distance, score_cutoff=own + 1, limit=None)
        nearest_other = min(
            (int(d) for _, d, j in near if registry_keys[j][0] != company.kernel_id), default=99
        )
        if nearest_other <= own:
            expected: str | None = None
        elif nearest_other == own + 1:
            continue  # too close to call: left out rather than labelled either way
        else:
            expected = company.kernel_id
            q(company.key, "typo", how, query_name, expected, country=company.country)

    # 6. Articles: records whose name starts with an article, with traps where the article is dropped or
    # read as an abbreviation ("El" -> "Electric").
    real_articles = [
        c for c in kept if re.match(r"(?i)^(el|la|le|les|de|het|der|die|das|los|las|il)\s", c.name)
    ]
    for company in real_articles:
        form = rng.choice(rng.choice(_forms(company.code)))
        q(
            company.key,
            "article",
            "real",
            f"{company.stem} {form}",
            company.kernel_id,
            country=company.country,
        )
    # Synthetic: a company registered with its language's article first ("El X S.A.", "De X N.V."); for "El" a
    # trap record "Electric X" of another company (and, when the article record is in the registry, sometimes
    # a record "X" without the article). With the article record absent, "El X" must not become "Electric X".
    for company in next_bases(n(220), lambda c: c.code in ARTICLES):
        article = rng.choice(ARTICLES[company.code or ""])
        art_name = f"{article} {company.name}"
        in_registry = not held_out(f"{company.key}~art")
        if in_registry:
            rows[company.kernel_id] = _renamed(rows[company.kernel_id], art_name)
        else:
            del rows[company.kernel_id]
        if article == "El" or (in_registry and rng.random() < 0.3):
            # The trap: "El" read as the abbreviation of "Electric" (or the article dropped).
            trap_kid = f"{company.kernel_id}~trap"
            trap_name = f"Electric {company.name}" if article == "El" else company.name
            rows[trap_kid] = EntityRow(trap_kid, trap_name, country=company.country)
            q(company.key, "article", "trap_itself", trap_name, trap_kid, country=company.country)
        form = rng.choice(rng.choice(_forms(company.code)))
        q(
            company.key,
            "article",
            f"{article}_{'registry' if in_registry else 'not_in_registry'}",
            f"{article} {company.stem} {form}",
            company.kernel_id if in_registry else None,
            country=company.country,
        )

    # 7. Ties: a duplicated registry; the record whose full name (legal form included) equals the query wins.
    for company in next_bases(n(180)):
        forms = _forms(company.code)
        base_kind = _form_kind(company.name, company.code)
        other_kinds = [k for k in forms if k is not base_kind]
        dup_kid = f"{company.kernel_id}~dup"
        if other_kinds and rng.random() < 0.6:
            kind = rng.choice(other_kinds)
            rows[dup_kid] = EntityRow(dup_kid, f"{company.stem} {kind[0]}", country=company.country)
            q(company.key, "tie", "own_form", company.name, company.kernel_id, country=company.country)
            q(
                company.key,
                "tie",
                "dup_form",
                f"{company.stem} {kind[-1] if len(kind) > 1 else kind[0]}",
                dup_kid,
                country=company.country,
            )
            if base_kind is not None:
                q(company.key, "tie", "no_form", company.stem, None, country=company.country)
        else:
            rows[dup_kid] = EntityRow(dup_kid, company.name, country=company.country)
            q(company.key, "tie", "identical", company.name, None, country=company.country)

    # 8. Same-named branches in several cities: the city, postal code or address decides; otherwise no match.
    for company in next_bases(n(160)):
        if not company.city or not company.code:
            continue
        r = _rng(f"branches:{company.key}")
        by_city: dict[str, str | None] = {}
        for city_name, zip_code in cities_by_country[company.code]:
            if city_name != company.city:
                by_city.setdefault(city_name, zip_code)
        pool = sorted(by_city.items())
        if len(pool) < 3:
            continue
        branches = [(company.kernel_id, company.city, company.zipcode)]
        for j, (city, zipcode) in enumerate(r.sample(pool, r.choice([1, 2, 3]))):
            kid = f"{company.kernel_id}~site{j}"
            branches.append((kid, city, zipcode))
        addresses = {}
        for kid, city, zipcode in branches:
            address = f"{r.randrange(1, 200)} {r.choice(STREETS)} Street, {city}"
            addresses[kid] = address
            if kid == company.kernel_id:
                rows[kid] = _renamed(rows[kid], company.name, address=address)
            else:
                rows[kid] = EntityRow(
                    kid,
                    company.name,
                    country=company.country,
                    city=city,
                    postal_code=zipcode,
                    address=address,
                )
        kid, city, zipcode = r.choice(branches)
        cities = [b[1] for b in branches]
        country = company.country
        q(
            company.key,
            "same_name",
            "with_city",
            company.name,
            kid if cities.count(city) == 1 else None,
            country=country,
            city=city,
        )
        q(company.key, "same_name", "no_city", company.name, None, country=country)
        if zipcode and [b[2] for b in branches].count(zipcode) == 1:
            q(
                company.key,
                "same_name",
                "with_postal_code",
                company.name,
                kid,
                country=country,
                postal_code=zipcode,
            )
        q(
            company.key,
            "same_name",
            "with_address",
            company.name,
            kid,
            country=country,
            address=addresses[kid],
        )
        unknown = next((c for c, _ in pool if c not in cities), None)
        if unknown:
            q(company.key, "same_name", "other_city", company.name, None, country=country, city=unknown)

    # Out of registry: held-out companies, unless their name is (nearly) a kept company's.
    kept_keys = [simple_key(c.name) for c in kept]
    kept_first: dict[str, int] = defaultdict(int)
    for key in kept_keys:
        kept_first[key.split()[0]] += 1
    candidates = [c for c in held if simple_key(c.name) not in key_count and len(simple_key(c.name)) >= 3]
    candidates = _sample(_rng("listed:held"), candidates, n(700))
    for company in candidates:
        if extractOne(simple_key(company.name), kept_keys, scorer=Levenshtein.distance, score_cutoff=2):
            continue  # probably the same company listed under another website
        r = _rng(f"held:{company.key}")
        query_name = (
            company.name if r.random() < 0.6 else f"{company.stem} {r.choice(r.choice(_forms(company.code)))}"
        )
        first_word = simple_key(company.name).split()[0]
        # A distinctive first word shared with a kept company ("Mitsubishi Electric" / "Mitsubishi Corp"):
        # the hard negatives of the group-word family.
        family, sub_kind = (
            ("distinguishing", "group_real")
            if len(first_word) >= 4 and kept_first[first_word]
            else ("out_of_registry", "held_out")
        )
        q(company.key, family, sub_kind, query_name, None, country=company.country)
        for spelling in company.spellings[:1]:
            if simple_key(spelling) not in key_count:
                q(
                    company.key,
                    "out_of_registry",
                    "held_out_spelling",
                    spelling,
                    None,
                    country=company.country,
                )

    names = {kid: row.name for kid, row in rows.items()}
    if len(queries) > max_queries:
        queries = _sample(_rng("listed:cap"), queries, max_queries)
    return Dataset("listed", list(rows.values()), queries, names)


def _renamed(row: EntityRow, name: str, aliases: Sequence[str] = (), address: str | None = None) -> EntityRow:
    return EntityRow(
        row.kernel_id,
        name,
        aliases=tuple(aliases) or row.aliases,
        domain=row.domain,
        country=row.country,
        country_code=row.country_code,
        isins=row.isins,
        city=row.city,
        postal_code=row.postal_code,
        address=address or row.address,
    )


# --- er-dev-pairs against the default registry ----------------------------------------------------------


def default_registry_rows() -> list[EntityRow]:
    """The default registry (pytickersymbols) as index rows, without a database."""
    from dossier.enrichment.registry.pytickersymbols_source import iter_default_records
    from dossier.enrichment.registry.service import kernel_id_for

    return [
        EntityRow(
            kernel_id_for(record["source"], record["source_key"]),
            record["name"],
            aliases=tuple(record.get("aliases") or ()),
            domain=record.get("domain"),
            country=record.get("country"),
            country_code=record.get("country_code"),
            isins=tuple(record.get("isins") or ()),
            city=record.get("hq_city"),
        )
        for record in iter_default_records()
    ]


# er-dev-pairs.csv labels these negatives ("not close to any registry name"), yet each is a listing of the
# registry company named here (the same company under another share line's ISIN): the file's README warns
# that a few labels are wrong. Corrected here rather than counted as false matches.
PAIR_LABEL_CORRECTIONS: dict[str, str] = {
    "SAREPTA THERAP.  DL-,0001": "Sarepta Therapeutics",
    "PACIRA BIOSCIENC. DL-,001": "Pacira BioSciences, Inc.",
    "ASM INTL N.V. NY/1 EO-,04": "ASM International",
}


def load_pairs(path: Path | None = None, rows: list[EntityRow] | None = None) -> Dataset:
    path = path or DATA / "er-dev-pairs.csv"
    rows = rows if rows is not None else default_registry_rows()
    by_name = {row.name: row.kernel_id for row in rows}
    queries = []
    with path.open(newline="", encoding="utf-8") as handle:
        for pair in csv.DictReader(handle):
            expected_name = pair["expected_registry_name"].strip()
            expected_name = PAIR_LABEL_CORRECTIONS.get(pair["query_name"], expected_name)
            if expected_name and expected_name not in by_name:
                continue  # the registry no longer has that company: the label cannot be checked
            family = "spelling" if expected_name else "out_of_registry"
            queries.append(
                Query(
                    "pairs",
                    family,
                    split_of(f"pairs:{pair['query_name']}"),
                    pair["query_name"],
                    country=pair["query_country"] or None,
                    expected_kernel_id=by_name[expected_name] if expected_name else None,
                    kind="listed_pair" if expected_name else "not_in_registry",
                )
            )
    return Dataset("pairs", rows, queries, {row.kernel_id: row.name for row in rows})


LOADERS: dict[str, Callable[[], Dataset]] = {"ror": load_ror, "listed": load_listed, "pairs": load_pairs}


def data_available() -> bool:
    return all(
        (DATA / name).exists()
        for name in ("ror-organizations.jsonl.gz", "listed-companies.csv.gz", "er-dev-pairs.csv")
    )


__all__ = [
    "DATA",
    "FAMILIES",
    "LOADERS",
    "Dataset",
    "Outcome",
    "Query",
    "Stats",
    "evaluate",
    "load_listed",
    "load_pairs",
    "load_ror",
    "run_queries",
    "simple_key",
    "split_of",
    "strip_legal_form",
    "summarize",
]
