"""How alike two words are: typos, truncations and transliterations (used by ``matcher``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

from rapidfuzz.distance import OSA

from dossier.enrichment.registry.vocabulary import ABBREVIATIONS


def deletions(token: str) -> set[str]:
    """Every string one deletion away (SymSpell neighbourhoods)."""
    return {token[:i] + token[i + 1 :] for i in range(len(token))}


def token_similarity(a: str, b: str) -> float:
    """How alike two words are, 0..1: 1 equal, 0.9 transliterated, 0.75-0.9 a prefix or one typo, else 0."""
    if a == b:
        return 1.0
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    if len(shorter) < 3 or (shorter[0] != longer[0] and shorter[1] != longer[1]):
        return 0.0  # cheap exit: short words never match fuzzily; two typos at the start are not "one typo"
    if shorter.isdigit() or longer.isdigit():
        return 0.0  # numbers distinguish: 2019 is not 2018
    if sound(a) == sound(b):
        # Transliterations: "Stroeer" / "Ströer", "Gasprom" / "Gazprom", "Tekhnologies" / "Technologies".
        return 0.9
    if longer.startswith(shorter):
        # Exchanges truncate long words ("SAREPTA THERAP.", "MITSUBISHI EST."): a prefix is nearly the word
        # (and one letter short is a typo: "Rheinmetal").
        prefix = 0.85 if len(shorter) >= 5 else 0.75 if len(shorter) >= 4 else 0.0
        return max(prefix, OSA.normalized_similarity(a, b)) if prefix else 0.0
    # A similarity of 0.8 or more needs lengths within a fifth of each other.
    if len(shorter) >= 5 and len(longer) - len(shorter) <= len(longer) // 5:
        similarity = OSA.normalized_similarity(a, b)
        # One typo (or swapped pair) in a word of 5+ letters; anything looser makes unrelated words "similar".
        if similarity >= 0.8:
            return similarity
    return 0.0


# Spellings that transliterations of one sound differ by, reduced to one ("ph" -> "f", "z" -> "s").
_SOUNDS = (
    ("ae", "a"),
    ("oe", "o"),
    ("ue", "u"),
    ("ph", "f"),
    ("c", "k"),
    ("kh", "k"),
    ("z", "s"),
    ("y", "i"),
)


def _written_spellings() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = defaultdict(list)
    for written, word in ABBREVIATIONS.items():
        if len(written) >= 5:
            out[word].append(written)
    return {word: tuple(spellings) for word, spellings in out.items()}


# A rewritten word -> the longer spellings it was rewritten from ("technology" <- "technologies").
SPELLINGS = _written_spellings()


@lru_cache(maxsize=1 << 16)
def sound(token: str) -> str:
    """A word with the spellings of one sound made one ("gazprom" -> "gasprom")."""
    for spelling, sound in _SOUNDS:
        token = token.replace(spelling, sound)
    return token


def listed(tokens: Iterable[str]) -> str:
    """Words for a reason ("2, 3"), or "none"."""
    return ", ".join(sorted(tokens)) or "none"


def unmatched(tokens: Sequence[str], best: Sequence[float]) -> list[str]:
    """The words without a counterpart (numbers and initials have their own rules)."""
    return [t for t, b in zip(tokens, best, strict=True) if not b and not t.isdigit() and len(t) > 1]
