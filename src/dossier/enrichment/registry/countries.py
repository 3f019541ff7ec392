"""Country names and ISO 3166-1 alpha-2 codes, offline.

Registry sources and users spell countries many ways ("United States", "U.S.", "USA", "US", "Houston, Texas");
matching and firmographics need one code. The table covers the countries listed companies come from; an
unknown name simply has no code (it is never guessed).
"""

from __future__ import annotations

import re
import unicodedata

# code -> canonical English name (as most listings spell it)
COUNTRIES: dict[str, str] = {
    "AE": "United Arab Emirates",
    "AR": "Argentina",
    "AT": "Austria",
    "AU": "Australia",
    "AZ": "Azerbaijan",
    "BB": "Barbados",
    "BD": "Bangladesh",
    "BE": "Belgium",
    "BG": "Bulgaria",
    "BH": "Bahrain",
    "BM": "Bermuda",
    "BR": "Brazil",
    "BS": "Bahamas",
    "BW": "Botswana",
    "BZ": "Belize",
    "CA": "Canada",
    "CH": "Switzerland",
    "CL": "Chile",
    "CN": "China",
    "CO": "Colombia",
    "CR": "Costa Rica",
    "CW": "Curacao",
    "CY": "Cyprus",
    "CZ": "Czech Republic",
    "DE": "Germany",
    "DK": "Denmark",
    "EE": "Estonia",
    "EG": "Egypt",
    "ES": "Spain",
    "FI": "Finland",
    "FK": "Falkland Islands",
    "FO": "Faroe Islands",
    "FR": "France",
    "GA": "Gabon",
    "GB": "United Kingdom",
    "GE": "Georgia",
    "GF": "French Guiana",
    "GG": "Guernsey",
    "GI": "Gibraltar",
    "GR": "Greece",
    "HK": "Hong Kong",
    "HR": "Croatia",
    "HU": "Hungary",
    "ID": "Indonesia",
    "IE": "Ireland",
    "IL": "Israel",
    "IM": "Isle of Man",
    "IN": "India",
    "IS": "Iceland",
    "IT": "Italy",
    "JE": "Jersey",
    "JO": "Jordan",
    "JP": "Japan",
    "KE": "Kenya",
    "KG": "Kyrgyzstan",
    "KH": "Cambodia",
    "KR": "South Korea",
    "KW": "Kuwait",
    "KY": "Cayman Islands",
    "KZ": "Kazakhstan",
    "LI": "Liechtenstein",
    "LK": "Sri Lanka",
    "LT": "Lithuania",
    "LU": "Luxembourg",
    "LV": "Latvia",
    "MA": "Morocco",
    "MC": "Monaco",
    "MK": "Macedonia",
    "MM": "Myanmar",
    "MN": "Mongolia",
    "MO": "Macau",
    "MT": "Malta",
    "MU": "Mauritius",
    "MX": "Mexico",
    "MY": "Malaysia",
    "MZ": "Mozambique",
    "NG": "Nigeria",
    "NL": "Netherlands",
    "NO": "Norway",
    "NZ": "New Zealand",
    "OM": "Oman",
    "PA": "Panama",
    "PE": "Peru",
    "PG": "Papua New Guinea",
    "PH": "Philippines",
    "PK": "Pakistan",
    "PL": "Poland",
    "PR": "Puerto Rico",
    "PT": "Portugal",
    "QA": "Qatar",
    "RO": "Romania",
    "RS": "Serbia",
    "RU": "Russia",
    "SA": "Saudi Arabia",
    "SE": "Sweden",
    "SG": "Singapore",
    "SI": "Slovenia",
    "SK": "Slovakia",
    "SN": "Senegal",
    "TH": "Thailand",
    "TR": "Turkey",
    "TW": "Taiwan",
    "UA": "Ukraine",
    "US": "United States",
    "UY": "Uruguay",
    "VG": "British Virgin Islands",
    "VN": "Vietnam",
    "ZA": "South Africa",
    "ZM": "Zambia",
}

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
    "the netherlands": "NL",
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

_BY_NAME: dict[str, str] = {}


def _key(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def _build() -> dict[str, str]:
    if not _BY_NAME:
        for code, name in COUNTRIES.items():
            _BY_NAME[_key(name)] = code
        _BY_NAME.update(_ALIASES)
    return _BY_NAME


def country_code(value: str | None) -> str | None:
    """The ISO alpha-2 code of a country name, alias or code; None when it is not recognised."""
    if not value:
        return None
    stripped = value.strip()
    if len(stripped) == 2 and stripped.isalpha() and stripped.upper() in COUNTRIES:
        return stripped.upper()
    return _build().get(_key(stripped))


def country_name(code: str | None) -> str | None:
    """The canonical English name of an ISO alpha-2 code."""
    return COUNTRIES.get(code.upper()) if code else None


def is_us_state(value: str) -> bool:
    return _key(value) in US_STATES
