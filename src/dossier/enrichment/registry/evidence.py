"""Evidence beside the name: country, city, postal code, address and the fragments that qualified a name.

Each comparison answers ``True`` (agrees), ``False`` (disagrees) or ``None`` (one side has nothing to say),
and a matching adjustment of the confidence. Agreement adds little; disagreement costs enough that two
same-named organisations in different cities ("Lincoln School", Springfield / Denver) are told apart, and
that a perfect name in another city is not taken on the name alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

from dossier.enrichment.registry.countries import country_code, is_us_state
from dossier.enrichment.registry.normalize import NormalizedName, fold

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
# What a parenthesised note of the candidate's name that the query does not carry costs
# ("Wendel (Beteiligungsgesellschaft)").
NOTE_COST = 0.02
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


def compare_fragments(
    query: NormalizedName, candidate: NormalizedName, place: Place, candidate_place: Place
) -> tuple[list[Comparison], str | None]:
    """The fragments after the query's name and after the candidate's, each against the other side, and
    the conflict they make, if any.

    The query may be more specific than the record in a small way (a city, a site: it costs a little) but
    not name more of it ("Erasmus MC - Sophia Children's Hospital" is not "Erasmus MC"); a record more
    specific than the query ("Shiv Nadar University, Chennai" for "Shiv Nadar University") is another
    organisation unless the query's own city or country says it is this one.
    """
    out: list[Comparison] = []
    conflict: str | None = None
    candidate_words = _words_of(candidate, candidate_place)
    for text in query.qualifiers:
        if _resembles(text, candidate.qualifiers):
            # The same fragment on both sides, maybe with a typo ("Becton, Dikcinson and Company").
            out.append(Comparison("qualifier", text, text, True, 0.0))
            continue
        comparison = compare_qualifier(text, candidate_place, candidate_words)
        out.append(comparison)
        if not comparison.agrees and len(text.split()) >= 3 and comparison.adjustment != -SITE_QUALIFIER:
            conflict = f"the query names more: {text}"
    query_words = _words_of(query, place)
    unexplained = [c.query for c in out if not c.agrees and c.query and not _is_country(c.query)]
    for text in candidate.qualifiers:
        if _resembles(text, query.qualifiers):
            continue  # compared above
        comparison = compare_qualifier(text, place, query_words)
        if text in candidate.bracketed and not _is_country(text) and not comparison.agrees:
            # A note in parentheses ("Wendel (Beteiligungsgesellschaft)") describes; it costs a little.
            comparison = Comparison("qualifier", text, None, None, -NOTE_COST)
        elif comparison.agrees is None and not _is_country(text):
            conflict = conflict or f"the candidate names more: {text}"
        elif unexplained and not _is_country(text):
            # Both names go on, differently ("..., Amministrazione Centrale" / "..., Laboratori di
            # Frascati"): two parts of one organisation.
            conflict = conflict or f"the names go on differently: {unexplained[0]} / {text}"
        if comparison.agrees is not None or not _is_country(text):
            out.append(comparison)
    return out, conflict


def _words_of(name: NormalizedName, place: Place) -> frozenset[str]:
    """Every word of a name, of the fragments after it and of its city."""
    words = {*name.core, *name.weak, *(w for q in name.qualifiers for w in q.split())}
    if place.city:
        words.update(place.city.split())
    return frozenset(words)


def _resembles(text: str, others: Sequence[str]) -> bool:
    """``text`` is one of ``others`` but for a typo (numbers equal: "Fund 4" is not "Fund 2")."""
    digits = {w for w in text.split() if w.isdigit()}
    return any(
        fuzz.ratio(text, other) >= 85 and digits == {w for w in other.split() if w.isdigit()}
        for other in others
    )


def _is_country(text: str) -> bool:
    return country_code(text) is not None or is_us_state(text)
