"""Legal-form databases compared on our own cases: which leaves the bare name. Prints; asserts nothing.

    .venv/bin/python bench/legal_forms.py [--show-misses]

Each case is a company name with a legal form (leading, trailing, dotted or not, written out, clerical
prefixes) and the name without it. A library gets a case right when the words it leaves equal the name's.
Compared: OpenSanctions' ``rigour`` (``remove_org_types``) and ``fingerprints`` (``remove_types``),
``cleanco`` (``basename``, prefixes and suffixes), and Dossier's normaliser (the union of fingerprints' and
cleanco's lists with a few additions, position-aware). rigour is not a dependency of Dossier: it is measured
only when installed (``pip install rigour``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from dossier.enrichment.registry.normalize import fold, normalize_name

# (name with a legal form, the name's own words)
CASES: list[tuple[str, str]] = [
    ("N.V. Acme", "acme"),
    ("Acme N.V.", "acme"),
    ("Acme NV", "acme"),
    ("Acme Sp. z o.o.", "acme"),
    ("Acme sp. z.o.o.", "acme"),
    ("OOO Acme", "acme"),
    ("Acme Pvt Ltd", "acme"),
    ("Acme Private Limited", "acme"),
    ("Acme s.r.o.", "acme"),
    ("Acme Sdn Bhd", "acme"),
    ("Acme Sendirian Berhad", "acme"),
    ("Acme S.L.", "acme"),
    ("Acme e.V.", "acme"),
    ("Acme K.K.", "acme"),
    ("Acme naamloze vennootschap", "acme"),
    ("Acme besloten vennootschap", "acme"),
    ("Acme société anonyme", "acme"),
    ("Acme Aktiengesellschaft", "acme"),
    ("Acme kabushiki kaisha", "acme"),
    ("Société dite Acme", "acme"),
    ("Firma Acme", "acme"),
    ("Acme GmbH", "acme"),
    ("Acme GmbH & Co. KG", "acme"),
    ("Acme Inc.", "acme"),
    ("Acme Corp", "acme"),
    ("Acme Corporation", "acme"),
    ("Acme Co., Ltd.", "acme"),
    ("Acme Company Limited", "acme"),
    ("Acme (Pty) Ltd", "acme"),
    ("Acme Proprietary Limited", "acme"),
    ("Acme A/S", "acme"),
    ("Acme AB (publ)", "acme"),
    ("PT Acme Tbk", "acme"),
    ("Acme Public Company Limited", "acme"),
    ("Acme S.A. de C.V.", "acme"),
    ("Acme S. de R.L. de C.V.", "acme"),
    ("Acme S.p.A.", "acme"),
    ("Acme S.r.l.", "acme"),
    ("Acme Ltda.", "acme"),
    ("Acme Oyj", "acme"),
    ("Acme d.o.o.", "acme"),
    ("Acme Kft.", "acme"),
    ("Acme A.Ş.", "acme"),
    ("ZAO Acme", "acme"),
    ("PJSC Acme", "acme"),
    ("Acme Public Joint Stock Company", "acme"),
    ("Acme sociedad limitada", "acme"),
    ("Acme LLC", "acme"),
    ("Acme L.L.C.", "acme"),
    ("Acme plc", "acme"),
    # Names that begin with what could be a form, and forms that are words: the name must stay whole.
    ("AB InBev", "ab inbev"),
    ("AS Roma", "as roma"),
    ("Institute of Public Administration", "institute of public administration"),
    ("Bank of America", "bank of america"),
]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _words(text: str) -> str:
    return " ".join(_NON_ALNUM.sub(" ", fold(text).replace(".", "")).split())


def _dossier(name: str) -> str:
    normalized = normalize_name(name)
    # The normaliser's own rewrites ("Bank of America" keeps "of" as a weak word) are not legal forms.
    words = [w for w in _words(name).split() if w in {*normalized.core, *normalized.weak}]
    return " ".join(words)


def _libraries() -> dict[str, Callable[[str], str]]:
    import fingerprints.types
    from cleanco import basename

    libraries: dict[str, Callable[[str], str]] = {
        "fingerprints": lambda name: _words(fingerprints.types.remove_types(fold(name))),
        "cleanco": lambda name: _words(basename(name, prefix=True, suffix=True, middle=False)),
    }
    try:
        from rigour.names.org_types import remove_org_types
    except ImportError:
        pass
    else:
        libraries["rigour"] = lambda name: _words(remove_org_types(fold(name)))
    libraries["dossier"] = _dossier
    return libraries


def main(show_misses: bool) -> None:
    print(f"{len(CASES)} cases (docs/registry.md, 'Legal forms')")
    print(f"{'library':<14} {'right':>5}  misses")
    for label, strip in _libraries().items():
        misses = [(name, strip(name)) for name, expected in CASES if strip(name) != expected]
        examples = ", ".join(f"{name!r} -> {got!r}" for name, got in misses[:6]) if show_misses else ""
        print(f"{label:<14} {len(CASES) - len(misses):>5}  {len(misses)} {examples}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-misses", action="store_true")
    main(parser.parse_args().show_misses)
