"""Legal forms of organisations, in many languages, from maintained databases.

The forms come from two maintained lists, unioned: OpenSanctions' ``fingerprints`` type database (ISO 20275
and OCCRP's list: written-out forms in dozens of languages and scripts, mapped to one short form each:
"naamloze vennootschap" -> ``nv``, "Aktiengesellschaft" -> ``ag``) and ``cleanco``'s suffix list. A few forms
neither knows are added here (``K.K.`` / "kabushiki kaisha", ``Pvt``, ``S.L.``). On our own cases
(docs/registry.md, "Legal forms") the union misses least: ``rigour``'s table lacks ``S.L.``, ``K.K.``,
``A/S``, ``Corp`` and ``Pvt``; cleanco alone lacks written-out and leading forms.

Forms are compared as *compact keys*: the words of the form run together after the name normaliser's own
folding, so "Sp. z o.o.", "sp. z.o.o." and "SP ZOO" are all ``spzoo``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from normality import ascii_text

# Single words the databases list as forms that also name things, or that are too short to tell from
# initials, country codes and words ("PR", "UK", "II", "Export", "International"): never dropped.
_NOT_FORMS = frozenset(
    [
        "ii",
        "uk",
        "na",
        "is",
        "up",
        "too",
        "os",
        "im",
        "ins",
        "san",
        "tic",
        "sanayi",
        "ticaret",
        "insaat",
        "lojistik",
        "tesisat",
        "export",
        "exp",
        "import",
        "imp",
        "international",
        "internationale",
        "intl",
        "enterprise",
        "ent",
        "cooperation",
        "cooperative",
        "coop",
        "koop",
        "kooperacia",
        "kooperatsia",
        "compania",
        "kompania",
        "private",
        "unlimited",
        "jv",
        "et",
        "eu",
        "ca",
        "da",
        "ee",
        "ei",
        "ep",
        "ok",
        "ba",
        "bl",
        "bm",
        "bt",
        "mb",
        "ps",
        "pp",
        "pc",
        "sc",
        "sd",
        "sf",
        "ss",
        "ud",
        "kt",
        "ks",
        "kv",
        "kd",
        "at",
        "aj",
        "ae",
        "od",
        "og",
        "ou",
        "oe",
        "ed",
        "cs",
        "cp",
        "dp",
        "gs",
        "hk",
        "jp",
        "lo",
        "np",
        "pe",
        "pr",
        "rp",
        "rs",
        "sb",
        "tk",
        "tu",
        "uu",
        "xt",
        "xk",
        "qk",
        "yu",
        "ju",
        "giu",
        "vat",
        "ans",
        "ec",
        "ik",
        "ij",
        "fa",
        "fie",
        "firma",
        "saatio",
        "andelslag",
        "staatskonzern",
        "cio",
        "cic",
        "ta",
        "ay",
        "ky",
        "mtu",
        "ry",
    ]
)
# Two-letter forms that are dropped (others of two letters are too ambiguous: see above).
_SHORT_FORMS = frozenset(
    [
        "ag",
        "ab",
        "as",
        "sa",
        "se",
        "nv",
        "bv",
        "kg",
        "oy",
        "kk",
        "gk",
        "cv",
        "sl",
        "ev",
        "pt",
        "dd",
        "ad",
        "hf",
        "lp",
        "nl",
        "sp",
        "co",
        "yk",
    ]
)

# Forms neither database lists, as written -> their short form.
_EXTRA: dict[str, str] = {
    "k.k.": "kk",
    "kabushiki kaisha": "kk",
    "kabushikigaisha": "kk",
    "kabushiki gaisha": "kk",
    "godo kaisha": "gk",
    "yugen kaisha": "yk",
    "pvt": "pvt",
    "pvt ltd": "pvtltd",
    "pvt. ltd.": "pvtltd",
    "private limited": "pvtltd",
    "s.l.": "sl",
    "s.l.u.": "sl",
    "slu": "sl",
    "publ": "publ",
    "public company": "plc",
    "public company limited": "plc",
    "public limited company": "plc",
    "a/s": "as",
    "public joint stock company": "pjsc",
    "public joint-stock company": "pjsc",
    "public stock company": "pjsc",
    "proprietary limited": "ptyltd",
    "proprietary limited company": "ptyltd",
    "(pty) ltd": "ptyltd",
    "company limited": "coltd",
    "sociedad limitada": "sl",
    "sociedade limitada": "ltda",
    "sociedad anonima": "sa",
    "sociedade anonima": "sa",
    "societe anonyme": "sa",
    "societa per azioni": "spa",
    "aktieselskab": "as",
    "corp": "corp",
    "corporation": "corp",
    "inc": "inc",
    "incorporated": "inc",
    "company": "co",
    "co": "co",
    "cos": "co",
    "companies": "co",
    "ltd": "ltd",
    "limited": "ltd",
    "llc": "llc",
    "l.l.c.": "llc",
    "plc": "plc",
    "ohg": "ohg",
    "kgaa": "kgaa",
    "mbh": "gmbh",
    "sarl": "sarl",
    "spa": "spa",
    "s.p.a.": "spa",
    "oyj": "oyj",
    "tbk": "tbk",
    "pte": "pte",
    "pte ltd": "pteltd",
    "pty": "pty",
    "pty ltd": "ptyltd",
    "bhd": "bhd",
    "berhad": "bhd",
    "sdn bhd": "sdnbhd",
    "sendirian berhad": "sdnbhd",
    "lda": "lda",
    "ltda": "ltda",
    "sab de cv": "sadecv",
    "stiftung": "stiftung",
    "socimi": "socimi",
    "pcl": "pcl",
    "ojsc": "ojsc",
    "pjsc": "pjsc",
    "jsc": "jsc",
    "ooo": "ooo",
    "zao": "zao",
    "oao": "oao",
    "pao": "pao",
    "tov": "tov",
    "sro": "sro",
    "s.r.o.": "sro",
    "spol. s r.o.": "sro",
    "e.v.": "ev",
    "eingetragener verein": "ev",
    "haftungsbeschrankt": "ug",
    "ug": "ug",
    "gbr": "gbr",
    "kft": "kft",
    "zrt": "zrt",
    "nyrt": "nyrt",
    "rt": "rt",
    "doo": "doo",
    "d.o.o.": "doo",
    "as oy": "asoy",
    "s. de r.l.": "sderl",
    "s. de r.l. de c.v.": "sderldecv",
    "sa de cv": "sadecv",
    "s.a. de c.v.": "sadecv",
    "sapi de cv": "sapidecv",
    "sas": "sas",
    "sasu": "sas",
    "bvba": "bvba",
    "vzw": "vzw",
    "asbl": "asbl",
    "llp": "llp",
    "lllp": "lllp",
    "pllc": "pllc",
    "ltd sti": "ltdsti",
    "ltd. sti.": "ltdsti",
    "a.s.": "as",
    "a.ş.": "as",
}

# Forms that end a name wherever they stand ("Acme GmbH Munich"): unambiguous abbreviations only, never a
# word that can be part of a name ("Institute of Public Administration", "Company").
CUT_FORMS = frozenset(
    {
        "gmbh",
        "ltd",
        "inc",
        "llc",
        "plc",
        "sarl",
        "srl",
        "spa",
        "sro",
        "kft",
        "oyj",
        "bhd",
        "sdnbhd",
        "pty",
        "ptyltd",
        "pvtltd",
        "coltd",
        "tbk",
        "kgaa",
        "llp",
        "pjsc",
        "ojsc",
    }
)

# Words written before a name by clerks ("Société dite Acme", "Firma Acme", "Messrs Acme"): dropped at the
# start only, like a leading legal form.
CLERICAL_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("societe", "dite"),
    ("ste", "dite"),
    ("firma",),
    ("messrs",),
    ("m", "s"),
    ("cong", "ty"),
    ("cty",),
)
# Forms that are taken at the start of a name without dots: they are rarely the first word of a name.
# "AB", "AS", "SA" are not here ("AB InBev", "AS Roma"); written with dots ("N.V. Acme") any form is.
LEADING_FORMS = frozenset(
    [
        "pt",
        "ooo",
        "zao",
        "oao",
        "pao",
        "ao",
        "tov",
        "too",
        "uab",
        "sia",
        "ojsc",
        "pjsc",
        "jsc",
        "cjsc",
        "fop",
        "chp",
        "cv",
        "nv",
        "bv",
        "plc",
        "llc",
        "gmbh",
        "ag",
    ]
)

# The most words a form has that is looked for ("eenpersoons besloten vennootschap met beperkte ...").
MAX_FORM_WORDS = 7

_DOT_RUN = re.compile(r"\b(?:[a-z]\.){1,}[a-z]?\b\.?")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def form_words(text: str) -> list[str]:
    """The words of a legal form (or of a name) as the name normaliser splits them, dots joined first."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).casefold()
    if not folded.isascii():
        folded = (ascii_text(folded) or "").casefold()
    folded = folded.replace("&", " and ").replace("+", " and ")
    folded = _DOT_RUN.sub(lambda m: m.group(0).replace(".", ""), folded)
    return _NON_ALNUM.sub(" ", folded).split()


def _compact(text: str) -> str:
    return "".join(form_words(text))


@lru_cache(maxsize=1)
def legal_forms() -> dict[str, str]:
    """Every known form's compact key -> its short form (``"naamlozevennootschap"`` -> ``"nv"``)."""
    from cleanco import prepare_default_terms
    from fingerprints.types.data import TYPES

    forms: dict[str, str] = {}

    def add(written: str, short: str) -> None:
        words = form_words(written)
        key = "".join(words)
        if not key or key.isdigit():
            return
        if len(words) == 1 and (key in _NOT_FORMS or (len(key) <= 2 and key not in _SHORT_FORMS)):
            return
        forms.setdefault(key, _compact(short) or key)

    for entry in TYPES["types"]:
        for written in (entry["main"], *entry["forms"]):
            add(written, entry["main"])
    for _, words in prepare_default_terms():
        add(" ".join(words), "".join(words))
    for written, short in _EXTRA.items():
        forms[_compact(written)] = short
    return forms
