"""Company-name and website normalisation for entity resolution.

A name is reduced to *core* tokens (what identifies the company), *weak* tokens (words such as "Group",
"Holdings" or articles that some sources add and others leave out), its *legal forms* (leading or trailing,
in many languages: ``legal_forms``) and its *qualifiers* (the place or site fragments that followed it:
"Acme GmbH, Munich, DE", "Sunrise Learning - Northside Site", "Vodafone Germany"). Share-class and exchange
noise are removed, accents and punctuation folded, other scripts transliterated, numbers written one way
("#3", "No. 3" -> ``3``; "III" -> ``3``) and common abbreviations expanded, so that "MICRON TECHN. INC.
DL-,10", "Micron Technology, Inc." and "Micron Technology" all reduce to ``micron technology``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from normality import ascii_text
from rapidfuzz.distance import OSA

from dossier.enrichment.registry.countries import country_code
from dossier.enrichment.registry.legal_forms import (
    CLERICAL_PREFIXES,
    CUT_FORMS,
    LEADING_FORMS,
    MAX_FORM_WORDS,
    legal_forms,
)
from dossier.enrichment.registry.vocabulary import ABBREVIATIONS, DESCRIPTORS, NOISE, WEAK

# Legal forms come from maintained multilingual databases (``legal_forms``); they say how a company is
# incorporated, not which company it is, so they leave the compared words and are kept apart (``legal``),
# where they break ties between otherwise equal names.
# Dropped as a prefix too when written this way (Indonesian "PT", "The").
_LEADING_LEGAL = frozenset({"the"})

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
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
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
_PARENS = re.compile(r"\(([^()]*)\)")
# "#3", "No. 3", "Nr 3", "Number 3", "№ 3" -> "3"; "3rd" -> "3": a number, however it is written.
_NUMBER_SIGN = re.compile(r"(?:#|\u2116|\b(?:no|nr|num|number|nummer|numero)\b\.?)\s*(?=\d)")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th|e|er|eme|o|a)\b")
# Fragments after these separate a name from what qualifies it: "Acme GmbH, Munich, DE",
# "Sunrise Learning - Northside Site", "Acme | Berlin".
_SEGMENTS = re.compile(r"\s*(?:[,;|]|\s[-\u2013\u2014]+\s|\s[-\u2013\u2014]+$)\s*")
_TRUNCATED = re.compile(r"\b([a-z]{2,})\.(?=[\s,]|$)")
_LEADING_DOTTED = re.compile(r"^((?:[a-z]{1,3}\.\s*){1,4})\s*")
_ROMAN = {
    "ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9", "xi": "11",
    "xii": "12", "xiii": "13", "xiv": "14", "xv": "15", "xvi": "16", "xvii": "17", "xviii": "18",
    "xix": "19", "xx": "20",
}  # fmt: skip
# Single letters that join two words ("Química y Minera", "Caixa e Previdência") rather than initials.
_CONJUNCTIONS = frozenset({"y", "e", "i", "u"})


@dataclass(frozen=True, slots=True)
class NormalizedName:
    """A company name reduced for comparison.

    ``core``: identifying tokens in order (numbers and initials included: they distinguish); ``weak``:
    low-weight tokens (group, holdings, articles...); ``legal``: the short legal forms the name carried
    (``nv``, ``gmbh``); ``qualifiers``: location or site fragments that followed the name ("munich",
    "northside site"); ``key``: the core tokens joined by spaces; ``compact``: the same without spaces
    (catches "MercadoLibre").
    """

    core: tuple[str, ...]
    weak: tuple[str, ...]
    legal: tuple[str, ...] = ()
    qualifiers: tuple[str, ...] = ()
    # Core words written cut short with a dot ("MITSUBISHI EST.", "ASSOC. BR. FOODS"): prefixes of a word.
    truncated: frozenset[str] = frozenset()
    # Qualifiers that were written in parentheses: notes ("Orion Corporation (pharmaceutical company)").
    bracketed: frozenset[str] = frozenset()
    # The name is an exchange listing (par values, share classes: "NATURGY ENERGY INH. EO 1").
    listing: bool = False

    # Derived from ``core`` once (a lookup reads them for every candidate it compares).
    key: str = field(init=False, compare=False, repr=False)
    compact: str = field(init=False, compare=False, repr=False)
    # Core tokens that are numbers: "Fund 2" and "Fund 3" are different funds.
    numbers: frozenset[str] = field(init=False, compare=False, repr=False)
    # Single-letter core tokens: "Smith J" and "Smith K" are different people's firms.
    initials: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        core = self.core
        assign = object.__setattr__
        assign(self, "key", " ".join(core))
        assign(self, "compact", "".join(core))
        # Most names have no number and no initial: they share one empty set (fewer objects for the
        # collector to walk in a process that caches thousands of names).
        numbers = [t for t in core if t.isdigit()]
        assign(self, "numbers", frozenset(numbers) if numbers else NO_WORDS)
        has_letter = bool(core) and min(map(len, core)) == 1
        assign(
            self,
            "initials",
            frozenset(t for t in core if len(t) == 1 and t.isalpha()) if has_letter else NO_WORDS,
        )


NO_WORDS: frozenset[str] = frozenset()


def fold(text: str) -> str:
    """Lower-case, accents removed, special letters folded, other scripts transliterated ("Ørsted" ->
    "orsted", "Газпром" -> "gazprom")."""
    if text.isascii():
        return text.casefold()
    text = _COMBINING.sub("", unicodedata.normalize("NFKD", text.translate(_FOLD))).casefold()
    if not text.isascii():
        text = (ascii_text(text) or "").casefold()
    return text


def _merge_initials(tokens: list[str]) -> list[str]:
    # "a o smith" and "ao smith" are the same name: runs of two or more single letters become one token.
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


def _words(text: str) -> list[str]:
    text = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _POSSESSIVE.sub("", text)
    text = _APOSTROPHE.sub("", text)
    return _NON_ALNUM.sub(" ", text).split()


def _form_at_end(tokens: Sequence[str], keep: int) -> tuple[int, str] | None:
    """The longest legal form ending ``tokens`` that leaves ``keep`` tokens: (its length, its short form)."""
    forms = legal_forms()
    for size in range(min(MAX_FORM_WORDS, len(tokens) - keep), 0, -1):
        short = forms.get("".join(tokens[len(tokens) - size :]))
        if short is not None:
            return size, short
    if len(tokens) > keep and (short := misspelt_form(tokens[-1])) is not None:
        return 1, short
    return None


@lru_cache(maxsize=1)
def _long_forms() -> dict[str, str]:
    return {key: short for key, short in legal_forms().items() if len(key) >= 7 and key.isalpha()}


@lru_cache(maxsize=16_384)
def misspelt_form(token: str) -> str | None:
    """The short form of a long legal form written with one typo ("CORPORATON", "LIMTED"), or None."""
    if len(token) < 6 or not token.isalpha() or token in legal_forms():
        return None
    for key, short in _long_forms().items():
        if abs(len(key) - len(token)) <= 1 and key[0] == token[0] and OSA.distance(key, token) <= 1:
            return short
    return None


def _form_at(tokens: Sequence[str], start: int) -> tuple[int, str] | None:
    forms = legal_forms()
    for size in range(min(MAX_FORM_WORDS, len(tokens) - start), 0, -1):
        short = forms.get("".join(tokens[start : start + size]))
        if short is not None:
            return size, short
    return None


def _strip_leading(text: str, legal: list[str]) -> list[str]:
    """The words of the name part, with clerical prefixes and a leading legal form removed."""
    dotted = _LEADING_DOTTED.match(text)
    if dotted:
        # "N.V. Acme", "S.A. Acme": a dotted prefix that is a legal form.
        short = legal_forms().get("".join(_NON_ALNUM.sub(" ", dotted.group(1)).split()))
        if short is not None and _words(text[dotted.end() :]):
            legal.append(short)
            text = text[dotted.end() :]
    words = _words(text)
    changed = True
    while changed and len(words) > 1:
        changed = False
        for prefix in CLERICAL_PREFIXES:
            if len(words) > len(prefix) and tuple(words[: len(prefix)]) == prefix:
                words = words[len(prefix) :]
                changed = True
        found = _form_at(words, 0)
        # Written-out forms ("naamloze vennootschap") and the usual leading ones ("PT", "OOO") only.
        if found is not None and len(words) > found[0] and (found[0] > 1 or words[0] in LEADING_FORMS):
            legal.append(found[1])
            words = words[found[0] :]
            changed = True
    return words


def _country_words(words: Sequence[str]) -> bool:
    """Whether ``words`` name a country ("germany", "united kingdom", "uk", "usa", "jp"); 3-letter words
    do not ("and", "can")."""
    text = " ".join(words)
    return (len(text) >= 4 or len(text) == 2 or text in {"usa"}) and country_code(text) is not None


def _split_segment(words: list[str]) -> tuple[list[str], list[str], str]:
    """A fragment after the name -> (its leading legal-form words, the rest, what the rest is).

    The rest is "legal" (nothing but forms), "noise" (listing noise or an article: "N.A.", "(The)"), "name"
    (initials or a number: "Smith, J.", "Davis, S. GmbH"), or "qualifier" (a place or a site: "Munich",
    "DE", "Ltd, South Korea" -> "south korea").
    """
    lead: list[str] = []
    rest = list(words)
    while rest and (found := _form_at(rest, 0)) is not None:
        lead.extend(rest[: found[0]])
        rest = rest[found[0] :]
    core = list(rest)
    while core and (found := _form_at_end(core, 0)) is not None:
        del core[len(core) - found[0] :]
    if not core:
        return lead, rest, "legal"
    if _country_words(core):
        return lead, rest, "qualifier"
    if all(w in NOISE or ABBREVIATIONS.get(w, w) in WEAK for w in core):
        return lead, rest, "noise"
    if all(len(w) == 1 and w.isalpha() for w in core) or all(w.isdigit() for w in core):
        return lead, rest, "name"
    return lead, rest, "qualifier"


def _fragment(words: Sequence[str]) -> str:
    """A qualifier's text, numbers written one way ("Fund IV" -> "fund 4")."""
    return " ".join(_ROMAN.get(w, w) for w in words)


def _segment_kind(words: list[str]) -> str:
    return _split_segment(words)[2]


# "Acme LLC DBA Sunrise Learning", "Acme Corp (formerly Widget Co)", "Acme Inc f/k/a Widget": two names of
# one organisation. "c/o", "attn": what follows is not the organisation.
_ALTERNATIVE = re.compile(
    r"\s*(?:\b(?:d\s*/\s*b\s*/\s*a|dba|t\s*/\s*a|aka|a\s*/\s*k\s*/\s*a|fka|f\s*/\s*k\s*/\s*a|"
    r"formerly(?:\s+known\s+as)?|doing\s+business\s+as|trading\s+as)\b\.?:?)\s*",
    re.IGNORECASE,
)
_CARE_OF = re.compile(r"\s*(?:\bc\s*/\s*o\b|\battn\b|\bcare\s+of\b).*$", re.IGNORECASE)


@lru_cache(maxsize=65_536)
def name_variants(name: str) -> tuple[str, ...]:
    """The names a written name stands for: itself, or its parts around "DBA", "AKA", "formerly"...
    (the first is the legal name), without a "c/o ..." tail."""
    text = _CARE_OF.sub("", name).strip() or name
    parts = _ALTERNATIVE.split(text)
    if len(parts) == 1 or not parts[0].strip():
        return (text,)  # no marker, or one that begins the name ("T/A Holdings"): it is the name
    # "Acme Corp (formerly Widget Co)": each part loses the bracket the marker cut in two.
    cleaned = [_balanced(p.strip(" ,;")) for p in parts]
    return tuple(dict.fromkeys(p for p in cleaned if p))


def _balanced(text: str) -> str:
    if text.count("(") > text.count(")"):
        text = text.replace("(", " ", text.count("(") - text.count(")"))
    if text.count(")") > text.count("("):
        text = text[::-1].replace(")", " ", text.count(")") - text.count("("))[::-1]
    return text.strip()


@lru_cache(maxsize=131_072)
def normalize_name(name: str) -> NormalizedName:
    """Reduce a company name to core, weak, legal and qualifier parts (cached: names repeat)."""
    folded = fold(name)
    text = _CLASS.sub(" ", _PAR_VALUE.sub(" ", folded))
    listing = text != folded  # exchange-listing noise: a trailing letter is then a share class
    qualifiers: list[str] = []
    legal: list[str] = []
    # Parenthesised text qualifies ("Puma (brand)", "Acme Inc (Delaware)"); it names only when nothing else
    # does ("(ISC)²").
    if _PARENS.search(text) and all(w.isdigit() for w in _words(_PARENS.sub(" ", text))):
        text = _PARENS.sub(lambda m: f" {m.group(1)} ", text)
    bracketed: set[str] = set()
    for inner in _PARENS.findall(text):
        words = _words(inner)
        kind = _segment_kind(words)
        if kind == "legal" and "".join(words) in legal_forms():
            legal.append(legal_forms()["".join(words)])
        elif kind == "qualifier":
            qualifiers.append(_fragment(words))
            bracketed.add(_fragment(words))
    text = _PARENS.sub(" ", text)
    text = _LETTER_PAIR.sub(r"\1\2", text)  # "K+S", "H&M", "AT&T": one word, not two initials
    text = text.replace("&", " and ").replace("+", " and ")
    text = _PAR_VALUE.sub(" ", text)
    text = _DECIMAL.sub(" ", text)
    text = _WEB_SUFFIX.sub(" ", text)
    text = _CLASS.sub(" ", text)
    text = _NUMBER_SIGN.sub(" ", text)
    text = _ORDINAL.sub(r"\1", text)
    text = re.sub(r"\ba/s\b", " as ", text)
    segments = [seg for seg in _SEGMENTS.split(text.strip()) if seg.strip()]
    if not segments:
        return NormalizedName((), ())
    raw = _strip_leading(segments[0].strip(), legal)
    for segment in segments[1:]:
        lead, rest, kind = _split_segment(_words(segment))
        raw.extend(lead)
        if kind == "legal" or (kind == "name" and not qualifiers):
            raw.extend(rest)
        elif kind == "qualifier":
            qualifiers.append(_fragment(rest))
    if not raw:
        return NormalizedName((), ())

    # A legal form inside the name ends it: "Acme GmbH Munich" -> "acme", qualified by "munich"; so does
    # a country after any form ("Acme Corp Germany").
    for i in range(1, len(raw) - 1):
        found = _form_at(raw, i)
        if found is None or i + found[0] >= len(raw):
            continue
        tail = [t for t in raw[i + found[0] :] if t not in NOISE]
        if tail and len(tail[0]) >= 3 and raw[0].startswith(tail[0]):
            # Listings repeat the name after its form ("ICADE SA ICADE REIT ORD SHS", "UNITEDHEALTH GROUP INC
            # UNITEDHE"): the rest is noise.
            raw = raw[: i + found[0]]
            break
        unambiguous = found[1] in CUT_FORMS
        if tail and _segment_kind(tail) == "qualifier" and (unambiguous or _country_words(tail)):
            qualifiers.append(_fragment(tail))
            raw = raw[: i + found[0]]
            break
    # Written-out forms at the end first: their words can be listing noise elsewhere ("Public Joint Stock
    # Company").
    trailing: list[str] = []
    while len(raw) > 1 and (found := _form_at_end(raw, 1)) is not None and found[0] > 1:
        trailing.insert(0, found[1])
        del raw[len(raw) - found[0] :]
    # Share-class noise after the first word ("... CORP. A", "BNP PARIBAS INH. EO 2").
    listing = listing or any(t in NOISE for t in raw[1:])
    tokens = [raw[0]] + [t for t in raw[1:] if t not in NOISE]
    # A single letter after a legal form or in a listing is a share class ("APPLOVIN CORP.A", "BCO DE
    # SABADELL A EO-,125"), not an initial.
    if len(tokens) > 2 and len(tokens[-1]) == 1 and (listing or _form_at_end(tokens[:-1], 1) is not None):
        tokens.pop()
    while len(tokens) > 1:
        found = _form_at_end(tokens, 1)
        if found is None:
            break
        trailing.insert(0, found[1])
        del tokens[len(tokens) - found[0] :]
    legal.extend(trailing)
    # A country written after the name ("Vodafone Germany", "Acme Ltd UK") places it; after "of" or "de"
    # it names it ("Bank of America").
    # The rest must still name something ("Bank America", "Air France" keep their country).
    for size in (3, 2, 1):
        rest = tokens[:-size]
        distinctive = any(len(t) >= 5 and t not in DESCRIPTORS and t not in WEAK for t in rest)
        # A two-letter code needs more name before it: "Erasmus MC" is a name, "Krishna University IN" a
        # name and a country.
        code = size == 1 and len(tokens[-1]) == 2
        if (
            rest
            and distinctive
            and rest[-1] not in WEAK
            and not (code and len(rest) < 2)
            and _country_words(tokens[-size:])
        ):
            qualifiers.append(_fragment(tokens[-size:]))
            del tokens[-size:]
            while len(tokens) > 1 and (found := _form_at_end(tokens, 1)) is not None:
                legal.append(found[1])
                del tokens[len(tokens) - found[0] :]
            break
    tokens = _merge_initials(tokens)
    tokens = [_ROMAN.get(t, ABBREVIATIONS.get(t, t)) for t in tokens]
    # After the first word, "EL." is a listing's "Electric" ("MITSUBISHI EL. CORP."); first, an article.
    tokens[1:] = ["electric" if t == "el" else t for t in tokens[1:]]

    core: list[str] = []
    weak: list[str] = []
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if i == 0 and token in _LEADING_LEGAL and last > 0:
            continue
        joins = token in _CONJUNCTIONS and 0 < i < last and len(tokens[i - 1]) > 1 and len(tokens[i + 1]) > 1
        if token in WEAK or joins:
            weak.append("and" if joins else token)
            continue
        if token not in core or len(token) < 3:  # "ACERINOX SA ACERINOX ORD SHS": a repeat adds nothing
            core.append(token)
    if not core:
        # The whole name was generic ("The Group", "AB"): keep what there was rather than nothing.
        core = [t for t in tokens if t not in {"the", "and", "of"}] or tokens
        weak = []
    # Forms found in pieces ("Co.," + "Ltd.") are one form when together they are one ("coltd").
    joined = legal_forms().get("".join(legal)) if len(legal) > 1 else None
    forms = (joined,) if joined else tuple(dict.fromkeys(legal))
    truncated = frozenset(_TRUNCATED.findall(folded)) & set(core) if "." in folded else frozenset()
    return NormalizedName(
        tuple(core), tuple(weak), forms, tuple(qualifiers), truncated, frozenset(bracketed), listing
    )


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
