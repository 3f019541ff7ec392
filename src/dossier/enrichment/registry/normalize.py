"""Company-name and website normalisation for entity resolution.

A name is reduced to *core* tokens (what identifies the company) and *weak* tokens (words such as "Group" or
"Holdings" that some sources add and others leave out). Legal forms, share-class and exchange noise are
removed, accents and punctuation folded, and common abbreviations expanded, so that "MICRON TECHN. INC.
DL-,10", "Micron Technology, Inc." and "Micron Technology" all reduce to ``micron technology``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

# Legal forms: they say how a company is incorporated, not which company it is, and sources disagree on them
# ("Enel SpA" / "Enel"), so they are dropped. Tokens are compared after dots are removed ("S.p.A." -> "spa").
# Not here on purpose: "group"/"holdings" (weak, see below), "bank", "trust" and "partners" (they distinguish
# real companies: "Apple" vs "Apple Hospitality REIT" needs every such word kept).
LEGAL_FORMS = frozenset(
    [
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "cos",
        "ltd",
        "limited",
        "llc",
        "plc",
        "nv",
        "bv",
        "ag",
        "se",
        "gmbh",
        "sa",
        "spa",
        "ab",
        "asa",
        "as",
        "oyj",
        "oy",
        "kgaa",
        "kk",
        "sarl",
        "sas",
        "srl",
        "lp",
        "llp",
        "pty",
        "bhd",
        "tbk",
        "sae",
        "nl",
        "lda",
        "aps",
        "hf",
        "ojsc",
        "pjsc",
        "jsc",
        "sab",
        "cv",
        "pcl",
        "tas",
        "ltda",
        "sca",
        "ad",
        "dd",
        "doo",
        "kft",
        "zrt",
        "rt",
        "akt",
        "aktiengesellschaft",
        "aktiebolag",
        "mbh",
        "ohg",
        "kg",
        "pte",
        "berhad",
        "public",
        "societe",
        "anonyme",
        "kabushiki",
        "kaisha",
        "stift",
        "stiftung",
        "socimi",
        "publ",
    ]
)
# Legal forms count as such after the first word only: "AB InBev" and "AS Roma" keep their first word.
# Two prefixes are dropped at the start (Indonesian "PT", and "The").
_LEADING_LEGAL = frozenset({"pt", "the"})

# Share-class and German exchange listing noise ("INH." bearer, "NA" registered, "VZO" preference,
# "O.N." no par value, "ADR"...). Dropped anywhere but at the start of a name.
NOISE = frozenset(
    [
        "inh",
        "na",
        "vz",
        "vzo",
        "vzi",
        "st",
        "stk",
        "on",
        "adr",
        "ads",
        "gdr",
        "sponsored",
        "unsponsored",
        "ord",
        "shs",
        "sh",
        "reg",
        "regd",
        "npv",
        "nvtg",
        "pref",
        "prf",
        "class",
        "cl",
        "units",
        "unit",
        "common",
        "stock",
        "shares",
        "share",
        "registered",
        "bearer",
        "br",
        "rts",
        "wts",
        "dl",
        "eo",
        "ls",
        "sf",
        "yn",
        "nk",
        "dk",
        "sk",
        "hd",
        "cd",
        "rc",
        "dr",
        "ny",
        "nyrs",
        "fgn",
        "foreign",
        "new",
        "cdi",
        "unsp",
        "wi",
        "vna",
        "nom",
        "namens",
    ]
)

# Words some sources append and others omit; they weigh little when comparing names.
# Prepositions are weak too: "Banco de Sabadell" / "Banco Sabadell".
WEAK = frozenset(
    {"group", "holdings", "the", "and", "of", "company", "de", "del", "di", "du", "des", "koninklijke"}
)

# Descriptive words that registries often leave out of a short name ("Costco Wholesale" -> "Costco").
# A query word of this list missing from the registry name costs less than a distinctive word would.
DESCRIPTORS = frozenset(
    [
        "wholesale",
        "communications",
        "communication",
        "technology",
        "technologies",
        "systems",
        "international",
        "industries",
        "laboratories",
        "pharmaceuticals",
        "sciences",
        "solutions",
        "services",
        "enterprises",
        "brands",
        "worldwide",
        "global",
        "networks",
        "software",
        "therapeutics",
        "incorporated",
        "corporation",
        "bancorp",
        "financial",
        "resources",
        "energy",
        "motors",
        "manufacturing",
        "products",
        "electric",
        "electronics",
        "partners",
        "entertainment",
        "healthcare",
        "health",
        "insurance",
        "investment",
        "investments",
        "properties",
        "realty",
        "trust",
        "capital",
        "industrial",
        "chemical",
        "chemicals",
        "automotive",
        "airlines",
        "telecom",
        "telecommunications",
        "semiconductor",
        "semiconductors",
        "holdings",
        "group",
        "company",
        "reit",
        "immobilien",
        "computer",
    ]
)

# Abbreviation -> canonical word. Both sides of a comparison go through this map, so only consistency matters.
ABBREVIATIONS: dict[str, str] = {
    "intl": "international",
    "internat": "international",
    "intern": "international",
    "int": "international",
    "mfg": "manufacturing",
    "manuf": "manufacturing",
    "bkg": "banking",
    "bk": "bank",
    "grp": "group",
    "gp": "group",
    "hldg": "holdings",
    "hldgs": "holdings",
    "hld": "holdings",
    "hlds": "holdings",
    "holding": "holdings",
    "hold": "holdings",
    "techn": "technology",
    "technol": "technology",
    "technologies": "technology",
    "techs": "technology",
    "tech": "technology",
    "lab": "laboratories",
    "labs": "laboratories",
    "laboratory": "laboratories",
    "pharma": "pharmaceuticals",
    "pharm": "pharmaceuticals",
    "pharmaceutical": "pharmaceuticals",
    "ind": "industries",
    "inds": "industries",
    "indus": "industries",
    "industry": "industries",
    "el": "electric",
    "elec": "electric",
    "electr": "electric",
    "westn": "western",
    "svcs": "services",
    "svc": "services",
    "serv": "services",
    "sys": "systems",
    "comm": "communications",
    "comms": "communications",
    "communication": "communications",
    "natl": "national",
    "finl": "financial",
    "fin": "financial",
    "mgmt": "management",
    "mgt": "management",
    "engr": "engineering",
    "eng": "engineering",
    "motor": "motors",
    "bros": "brothers",
    "amer": "american",
    "gen": "general",
    "prods": "products",
    "prod": "products",
    "assoc": "associates",
    "sci": "sciences",
    "hlth": "health",
    "util": "utilities",
    "utils": "utilities",
    "tr": "trust",
    "bncp": "bancorp",
    "invest": "investment",
    "chem": "chemical",
    "chems": "chemicals",
    "resrcs": "resources",
    "res": "resources",
    "ent": "entertainment",
    "entmt": "entertainment",
    "telecomm": "telecommunications",
    "semicon": "semiconductor",
    "svgs": "savings",
    "ctr": "center",
    "centre": "center",
    "mtrs": "motors",
    "elect": "electric",
    "electrical": "electric",
    "aktiebolaget": "ab",
    "und": "and",
    "grupo": "group",
    "gruppo": "group",
    "groupe": "group",
    "gruppe": "group",
    "kon": "koninklijke",
    "strs": "stores",
    "netwks": "networks",
    "dev": "development",
    "bco": "banco",
    "companies": "company",
    "compagnie": "company",
    "cie": "company",
    "telefonaktiebolaget": "company",
}

_FOLD = str.maketrans(
    {
        "ø": "o",
        "Ø": "o",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "ł": "l",
        "Ł": "l",
        "đ": "d",
        "Đ": "d",
        "þ": "th",
        "\u0131": "i",
        "ß": "ss",
    }
)

# "DL-,10", "EO-,01", "LS -,76797385", "-,00003", "EO 2": nominal values of German exchange listings.
_PAR_VALUE = re.compile(
    r"(?:\b(?:dl|eo|ls|sf|yn|dk|nk|sk|hd|cd|ad|rc|sd|zy|il|rm|au)\s*-?\s*,?\s*)?-\s*,\d+\b|"
    r"\b(?:dl|eo|ls|sf|yn|dk|nk|sk|hd|cd)\s*-?\s*[,.]?\d+(?:[,.]\d+)?\s*$"
)
_CLASS = re.compile(r"\b(?:class|cl|series|ser|serie)\s+[a-z0-9]\b")
_DOTTED = re.compile(r"\b(?:[a-z]\.){1,}[a-z]\b\.?")
_POSSESSIVE = re.compile("(?<=[a-z])['\u2019]s\\b")
_APOSTROPHE = re.compile("['\u2019`\u00b4]")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_LETTER_PAIR = re.compile(r"\b([a-z]{1,2})\s*[&+]\s*([a-z])\b")
# Decimal figures are nominal values ("ADR/0,02"), never part of a name.
_DECIMAL = re.compile(r"\b\d+[,.]\d+\b")
# "Amazon.com", "SALESFORCE.COM": the web suffix is not part of the name.
_WEB_SUFFIX = re.compile(r"(?<=[a-z0-9])\.(?:com|net|org)\b")
_PARENS = re.compile(r"\([^()]*\)")


@dataclass(frozen=True, slots=True)
class NormalizedName:
    """A company name reduced for comparison.

    ``core``: identifying tokens in order; ``weak``: low-weight tokens (group, holdings...);
    ``key``: the core tokens joined by spaces; ``compact``: the same without spaces (catches "MercadoLibre").
    """

    core: tuple[str, ...]
    weak: tuple[str, ...]

    @property
    def key(self) -> str:
        return " ".join(self.core)

    @property
    def compact(self) -> str:
        return "".join(self.core)


def fold(text: str) -> str:
    """Lower-case, accents removed, special letters folded ("Ørsted" -> "orsted")."""
    text = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()


def _merge_initials(tokens: list[str]) -> list[str]:
    # "a o smith" and "ao smith" are the same name: runs of single letters become one token.
    out: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and token.isalpha():
            run.append(token)
            continue
        if run:
            out.append("".join(run))
            run = []
        if token:
            out.append(token)
    return out


@lru_cache(maxsize=65_536)
def normalize_name(name: str) -> NormalizedName:
    """Reduce a company name to core and weak tokens (cached: registries and queries repeat names)."""
    # Parenthesised text qualifies ("Puma (brand)", "Alphabet Inc. (Class C)"); it never names.
    text = _PARENS.sub(" ", fold(name))
    text = _LETTER_PAIR.sub(r"\1\2", text)  # "K+S", "H&M", "AT&T": one word, not two initials
    text = text.replace("&", " and ").replace("+", " and ")
    text = _PAR_VALUE.sub(" ", text)
    text = _DECIMAL.sub(" ", text)
    text = _WEB_SUFFIX.sub(" ", text)
    text = _CLASS.sub(" ", text)
    text = re.sub(r"\ba/s\b", " as ", text)
    text = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _POSSESSIVE.sub("", text)
    text = _APOSTROPHE.sub("", text)
    raw = _NON_ALNUM.sub(" ", text).split()
    if not raw:
        return NormalizedName((), ())
    raw = _merge_initials(raw)
    tokens = [ABBREVIATIONS.get(t, t) for t in raw]

    # Share-class noise and bare numbers after the first word ("... CORP. A", "BNP PARIBAS INH. EO 2").
    kept = [tokens[0]] + [t for t in tokens[1:] if t not in NOISE]
    # A trailing single letter is a share class ("APPLOVIN CORP.A").
    while len(kept) > 1 and len(kept[-1]) == 1:
        kept.pop()

    core: list[str] = []
    weak: list[str] = []
    last = len(kept) - 1
    for i, token in enumerate(kept):
        if i == 0 and token in _LEADING_LEGAL and last > 0:
            continue
        if i > 0 and token in LEGAL_FORMS:
            continue
        if token in WEAK:
            weak.append(token)
            continue
        if token not in core or len(token) < 3:  # "ACERINOX SA ACERINOX ORD SHS": a repeat adds nothing
            core.append(token)
    if not core:
        # The whole name was generic ("The Group", "AB"): keep what there was rather than nothing.
        core = [t for t in kept if t not in {"the", "and", "of"}] or kept
        weak = []
    return NormalizedName(tuple(core), tuple(weak))


_DOMAIN_OK = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")


@lru_cache(maxsize=1)
def _extractor() -> Any:
    import tldextract

    # Offline: the bundled public-suffix snapshot, never a fetch. Private suffixes (github.io, ...) count as
    # suffixes so that two sites on one hosting platform do not share a "domain".
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


@lru_cache(maxsize=65_536)
def registrable_domain(website: str | None) -> str | None:
    """``https://www.Example.co.uk/about`` -> ``example.co.uk``; None when it is not a web address."""
    if not website:
        return None
    text = website.strip().lower()
    if "@" in text and "://" not in text:
        text = text.rsplit("@", 1)[1]  # an e-mail address names its company's domain too
    # Free-text sources write "engie.com /en"; keep the first word only.
    text = text.split()[0] if text.split() else ""
    if "://" not in text:
        text = "http://" + text
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        return None
    host = host.strip(".")
    if not host or not _DOMAIN_OK.match(host):
        return None
    parts = _extractor()(host)
    if not parts.suffix or not parts.domain:
        return None
    return f"{parts.domain}.{parts.suffix}"
