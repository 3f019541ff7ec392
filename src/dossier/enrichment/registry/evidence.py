"""Evidence beside the name: country, city, postal code, address and the fragments that qualified a name.

Each comparison answers ``True`` (agrees), ``False`` (disagrees) or ``None`` (one side has nothing to say),
and a matching adjustment of the confidence. Agreement adds little; disagreement costs enough that two
same-named organisations in different cities ("Lincoln School", Springfield / Denver) are told apart, and
that a perfect name in another city is not taken on the name alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

from dossier.enrichment.registry.countries import country_code, is_us_state
from dossier.enrichment.registry.normalize import fold

COUNTRY_BONUS = 0.03
COUNTRY_PENALTY = 0.2
CITY_BONUS = 0.04
CITY_PENALTY = 0.2
POSTAL_BONUS = 0.08
POSTAL_PENALTY = 0.15
ADDRESS_BONUS = 0.08
ADDRESS_PENALTY = 0.15
# A fragment after the name that nothing on the candidate explains ("Acme, Springfield" against an Acme
# with no city) costs a little; a site designator ("- Northside Site") a little less.
UNEXPLAINED_QUALIFIER = 0.06
SITE_QUALIFIER = 0.04
SITE_WORDS = frozenset(
    [
        "site",
        "campus",
        "branch",
        "location",
        "office",
        "store",
        "shop",
        "unit",
        "facility",
        "plant",
        "division",
        "dept",
        "department",
        "center",
        "centre",
        "clinic",
        "outlet",
        "franchise",
        "annex",
        "building",
        "premises",
    ]
)

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=1)
def _subdivisions() -> frozenset[str]:
    """ISO 3166-2 codes of two-letter subdivisions ("US-TX", "CA-BC", "AU-WA")."""
    import pycountry

    return frozenset(str(s.code) for s in pycountry.subdivisions if len(str(s.code).split("-")[1]) == 2)


def place_key(value: str | None) -> str | None:
    """A city or address for comparison: folded, without punctuation ("St. Louis" -> "st louis")."""
    if not value:
        return None
    key = " ".join(_NON_ALNUM.sub(" ", fold(value)).split())
    return key or None


def postal_key(value: str | None) -> str | None:
    """A postal code for comparison: letters and digits only, upper case; US ZIP+4 reduced to 5 digits."""
    if not value:
        return None
    key = re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if re.fullmatch(r"\d{9}", key):
        key = key[:5]
    return key or None


@dataclass(frozen=True, slots=True)
class Place:
    """The comparable location of a query or a registry record."""

    country: str | None = None
    city: str | None = None
    postal_code: str | None = None
    address: str | None = None

    @classmethod
    def of(
        cls,
        country: str | None = None,
        city: str | None = None,
        postal_code: str | None = None,
        address: str | None = None,
        code: str | None = None,
    ) -> Place:
        return cls(
            code or country_code(country), place_key(city), postal_key(postal_code), place_key(address)
        )


@dataclass(frozen=True, slots=True)
class Comparison:
    """One compared feature: what each side said and whether they agree."""

    feature: str
    query: str | None
    candidate: str | None
    agrees: bool | None
    adjustment: float

    def as_dict(self) -> dict[str, object]:
        return {"query": self.query, "candidate": self.candidate, "agrees": self.agrees}


def _compare(
    feature: str, query: str | None, candidate: str | None, bonus: float, penalty: float
) -> Comparison:
    if not query or not candidate:
        return Comparison(feature, query, candidate, None, 0.0)
    agrees = query == candidate
    return Comparison(feature, query, candidate, agrees, bonus if agrees else -penalty)


def compare_places(query: Place, candidate: Place) -> list[Comparison]:
    """Country, city, postal code and address, each when both sides give it."""
    out: list[Comparison] = []
    if query.country and candidate.country:
        out.append(_compare("country", query.country, candidate.country, COUNTRY_BONUS, COUNTRY_PENALTY))
        if query.country != candidate.country:
            return out  # a city of the same name in another country says nothing for the pair
    if query.city and candidate.city:
        out.append(_compare("city", query.city, candidate.city, CITY_BONUS, CITY_PENALTY))
    if query.postal_code and candidate.postal_code:
        out.append(
            _compare("postal_code", query.postal_code, candidate.postal_code, POSTAL_BONUS, POSTAL_PENALTY)
        )
    if query.address and candidate.address:
        agrees = same_address(query.address, candidate.address)
        adjustment = ADDRESS_BONUS if agrees else -ADDRESS_PENALTY if agrees is False else 0.0
        out.append(Comparison("address", query.address, candidate.address, agrees, adjustment))
    return out


def same_address(a: str, b: str) -> bool | None:
    """Two address keys: the same place (True), another one (False), or unclear (None).

    House numbers decide first ("163 Mill Street" is not "80 Mill Street"); then the words, one address
    being allowed to say more than the other ("163 Mill St" / "163 Mill Street, Pekanbaru").
    """
    numbers_a = {w for w in a.split() if w.isdigit()}
    numbers_b = {w for w in b.split() if w.isdigit()}
    if numbers_a and numbers_b and not numbers_a & numbers_b:
        return False
    similarity = fuzz.token_set_ratio(a, b) / 100
    return True if similarity >= 0.8 else False if similarity < 0.6 else None


def compare_qualifier(text: str, candidate: Place, candidate_words: frozenset[str]) -> Comparison:
    """A fragment that followed the query's name ("munich", "de", "northside site") against a candidate.

    It agrees when it is the candidate's country, city or words of its name or address; it disagrees when
    it names another country or the candidate has another city; otherwise it costs a little.
    """
    words = text.split()
    if len(text) == 2 and candidate.country and f"{candidate.country}-{text.upper()}" in _subdivisions():
        # "(TX)", "(BC)", "(WA)": a state or province of the candidate's country ("DE" for a US company is
        # Delaware, not Germany).
        return Comparison("qualifier", text, candidate.country, True, 0.0)
    code = country_code(text) if len(text) >= 2 else None
    if code is None and is_us_state(text):
        code = "US"
    if code is not None and candidate.country:
        agrees = code == candidate.country
        return Comparison("qualifier", text, candidate.country, agrees, 0.0 if agrees else -COUNTRY_PENALTY)
    if candidate.city and (set(words) & set(candidate.city.split()) or text in candidate.city):
        # "Seongnam-si" for Seongnam, "Huai'an" for Huai'an City: one place.
        return Comparison("qualifier", text, candidate.city, True, 0.0)
    if set(words) <= candidate_words:
        return Comparison("qualifier", text, text, True, 0.0)
    if candidate.address and text in candidate.address:
        return Comparison("qualifier", text, candidate.address, True, 0.0)
    if any(word in SITE_WORDS for word in words):
        return Comparison("qualifier", text, None, None, -SITE_QUALIFIER)
    if code is None and candidate.city and len(words) <= 2:
        # Most short fragments after a name are places: another city than the candidate's disagrees.
        return Comparison("qualifier", text, candidate.city, False, -CITY_PENALTY)
    return Comparison("qualifier", text, None, None, -UNEXPLAINED_QUALIFIER)
