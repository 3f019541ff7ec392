"""Country names and ISO 3166-1 codes, offline (from ``pycountry``).

Registry sources and users spell countries many ways ("United States", "U.S.", "USA", "US", "Ghana", "GHA",
"Houston, Texas"); matching and firmographics need one alpha-2 code. Every ISO 3166-1 country is known by its
alpha-2 and alpha-3 codes and its ISO, official and common names; a few aliases and native names are added.
An unknown name simply has no code (it is never guessed).

The tables are built once, at import, from pycountry's data file (a few milliseconds).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pycountry


def _key(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = re.sub("['\u2019]", "", text)  # "People's Republic" and "Peoples Republic" are one key
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


# The English names Dossier shows (and stores in the default registry's ``country``/``hq_country``): how most
# listings spell them. Every other country is shown by its pycountry common name, else its ISO name.
_DISPLAY_NAMES: dict[str, str] = {
    "BN": "Brunei",
    "BO": "Bolivia",
    "CD": "Democratic Republic of the Congo",
    "CW": "Curacao",
    "CZ": "Czech Republic",
    "FK": "Falkland Islands",
    "FM": "Micronesia",
    "IR": "Iran",
    "KP": "North Korea",
    "KR": "South Korea",
    "LA": "Laos",
    "MD": "Moldova",
    "MF": "Saint Martin",
    "MK": "Macedonia",
    "MO": "Macau",
    "PS": "Palestine",
    "RU": "Russia",
    "SH": "Saint Helena",
    "SX": "Sint Maarten",
    "SY": "Syria",
    "TR": "Turkey",
    "TW": "Taiwan",
    "TZ": "Tanzania",
    "VA": "Vatican City",
    "VE": "Venezuela",
    "VG": "British Virgin Islands",
    "VI": "U.S. Virgin Islands",
    "VN": "Vietnam",
    "XK": "Kosovo",  # user-assigned code, used by the EU, banks and most data providers
}

# Spellings that are neither an ISO name nor a display name (keys as ``_key`` makes them).
_ALIASES: dict[str, str] = {
    "usa": "US",
    "us": "US",
    "u s": "US",
    "u s a": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "korea": "KR",
    "republic of korea": "KR",
    "korea republic of": "KR",
    "korea south": "KR",
    "korea north": "KP",
    "dprk": "KP",
    "holland": "NL",
    "czechia": "CZ",
    "russian federation": "RU",
    "turkiye": "TR",
    "deutschland": "DE",
    "schweiz": "CH",
    "suisse": "CH",
    "espana": "ES",
    "italia": "IT",
    "nederland": "NL",
    "sverige": "SE",
    "norge": "NO",
    "suomi": "FI",
    "danmark": "DK",
    "osterreich": "AT",
    "belgique": "BE",
    "uae": "AE",
    "macao": "MO",
    "viet nam": "VN",
    "north macedonia": "MK",
    "netherlands antilles": "CW",
    "hong kong sar": "HK",
    "people s republic of china": "CN",
    "prc": "CN",
    "taiwan roc": "TW",
    "virgin islands british": "VG",
    "cayman": "KY",
    "bvi": "VG",
    "ivory coast": "CI",
    "cape verde": "CV",
    "swaziland": "SZ",
    "burma": "MM",
    "east timor": "TL",
    "vatican": "VA",
    "holy see": "VA",
    "dr congo": "CD",
    "drc": "CD",
    "congo kinshasa": "CD",
    "congo brazzaville": "CG",
    "republic of ireland": "IE",
    "eire": "IE",
    "kosovo": "XK",
}

US_STATES = frozenset(
    [
        "alabama",
        "alaska",
        "arizona",
        "arkansas",
        "california",
        "colorado",
        "connecticut",
        "delaware",
        "florida",
        "georgia",
        "hawaii",
        "idaho",
        "illinois",
        "indiana",
        "iowa",
        "kansas",
        "kentucky",
        "louisiana",
        "maine",
        "maryland",
        "massachusetts",
        "michigan",
        "minnesota",
        "mississippi",
        "missouri",
        "montana",
        "nebraska",
        "nevada",
        "ohio",
        "oklahoma",
        "oregon",
        "pennsylvania",
        "tennessee",
        "texas",
        "utah",
        "vermont",
        "virginia",
        "washington",
        "wisconsin",
        "wyoming",
    ]
) | frozenset(
    {
        "new hampshire",
        "new jersey",
        "new mexico",
        "new york",
        "north carolina",
        "north dakota",
        "rhode island",
        "south carolina",
        "south dakota",
        "west virginia",
        "district of columbia",
        "d c",
        "dc",
        "washington d c",
    }
)


def _build() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(alpha-2 -> display name, alpha-3 -> alpha-2, name key -> alpha-2) from pycountry and the tables."""
    names: dict[str, str] = {}
    alpha3: dict[str, str] = {"XKX": "XK"}
    iso_names: dict[str, str] = {}
    # "Bolivia, Plurinational State of" is also "Bolivia", when the head names one country only ("Korea" is
    # left to the aliases) and no country has it as its name ("Congo" is CG, not "Congo, The Democratic ...").
    heads: dict[str, set[str]] = {}
    for country in pycountry.countries:
        code = str(country.alpha_2)
        alpha3[str(country.alpha_3)] = code
        spellings = [str(getattr(country, a, "") or "") for a in ("name", "official_name", "common_name")]
        names[code] = _DISPLAY_NAMES.get(code) or spellings[2] or spellings[0]
        for spelling in filter(None, spellings):
            iso_names[_key(spelling)] = code
            if "," in spelling:
                head, _, tail = spelling.partition(",")
                heads.setdefault(_key(head), set()).add(code)
                iso_names[_key(f"{tail} {head}")] = code  # "Korea, Republic of" -> "Republic of Korea"
    for code, name in _DISPLAY_NAMES.items():
        names.setdefault(code, name)
    by_name = {head: next(iter(codes)) for head, codes in heads.items() if len(codes) == 1}
    by_name.update(iso_names)
    by_name.update({_key(name): code for code, name in names.items()})
    by_name.update(_ALIASES)
    # "The Bahamas", "the Netherlands", "the State of Palestine": the article never decides.
    by_name.update({key[4:]: code for key, code in list(by_name.items()) if key.startswith("the ")})
    return dict(sorted(names.items())), alpha3, by_name


# code -> English name (as most listings spell it): every ISO 3166-1 country, and Kosovo (XK).
COUNTRIES: dict[str, str]
COUNTRIES, _ALPHA3, _BY_NAME = _build()


@lru_cache(maxsize=65_536)
def country_code(value: str | None) -> str | None:
    """The ISO alpha-2 code of a country code (alpha-2 or alpha-3), name or alias; None if not recognised."""
    if not value:
        return None
    stripped = value.strip()
    if stripped.isascii() and stripped.isalpha():
        upper = stripped.upper()
        if len(upper) == 2 and upper in COUNTRIES:
            return upper
        if len(upper) == 3 and upper in _ALPHA3:
            return _ALPHA3[upper]
    key = _key(stripped)
    code = _BY_NAME.get(key)
    if code is None and key.startswith("the "):
        code = _BY_NAME.get(key[4:])
    return code


def is_country_code(value: str | None) -> bool:
    """Whether ``value`` is an ISO 3166-1 alpha-2 or alpha-3 code (any case), rather than a name."""
    if not value:
        return False
    stripped = value.strip().upper()
    return stripped.isascii() and (stripped in COUNTRIES or stripped in _ALPHA3)


def country_name(code: str | None) -> str | None:
    """The English name of an ISO alpha-2 code."""
    return COUNTRIES.get(code.strip().upper()) if code else None


def is_us_state(value: str) -> bool:
    return _key(value) in US_STATES
