"""Entity resolution: an in-memory index of the registry and the scoring that decides "same company".

Blocking keeps a lookup independent of the registry size: the names with exactly the query's words, and
at most ``MAX_CANDIDATES`` more selected by its rarest words (plus fuzzy neighbours of words the registry
does not know, the name written without spaces, and the exact registrable domain), are scored; a record's
names are its name, its aliases and the trade or former names written into them ("DBA", "formerly").

Precision comes first, so scoring has hard rules before soft ones:
- a word of one name that the other lacks blocks the pair ("Mitsubishi Electric" is not "Mitsubishi
  Corporation"; a subsidiary "Acme Technology B.V." is not "Acme Ltd"), and so do differing numbers ("Fund
  II" / "Fund III", "#3" / "#2") and initials ("Smith, J." / "Smith, K."); legal forms, articles and
  words like "Group" are not such words (see ``normalize``);
- words match exactly, through an abbreviation, or with one typo in a word of 5+ letters; rarer words
  weigh more;
- country, city, postal code, address, website and the fragments that followed a name ("Acme GmbH,
  Munich") add or cost confidence (``evidence``).
A result needs a confidence above the threshold *and* a margin over every other record; within the margin
the one record whose whole normalised name, legal form included, equals the query's wins, and otherwise
the answer is "ambiguous": no match, with the candidates and the features that decided.
"""

from __future__ import annotations

import gc
import math
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from rapidfuzz.distance import OSA

from dossier.enrichment.registry.evidence import Comparison, Place, compare_fragments, compare_places
from dossier.enrichment.registry.normalize import (
    NormalizedName,
    name_variants,
    normalize_name,
    registrable_domain,
)
from dossier.enrichment.registry.similarity import (
    SPELLINGS,
    deletions,
    listed,
    token_similarity,
    unmatched,
)
from dossier.enrichment.registry.vocabulary import DESCRIPTORS
from dossier.metrics import observe_resolutions

DEFAULT_THRESHOLD = 0.86
DEFAULT_MARGIN = 0.05
MAX_CANDIDATES = 40
# Names sharing the query's exact words that are scored besides the voted ones.
_MAX_EXACT = 200
# How many candidates an answer reports.
REPORTED_CANDIDATES = 5
_VOTE_FLOOR = 0.4
# Tokens carried by more names than this are only used for blocking when nothing rarer is in the query.
_COMMON_DF_FLOOR = 300
MIN_FUZZY_LEN = 5
# What each differing weak word ("Group", "Holdings", "The") costs.
_WEAK_COST = 0.02
# Weight of a weak word in a name's coverage, against a rare word's several units.
_WEAK_WEIGHT = 0.6
# A name of one word that matches with a typo needs at least this similarity ("GeneTex" is not "Gentex").
_TYPO_FLOOR = 0.86
# A word written cut short ("EST.") against a word it begins ("estate").
_TRUNCATED_SIMILARITY = 0.8
# An unmatched descriptive word ("Communications") counts for this fraction of its weight.
_DESCRIPTOR_DISCOUNT = 0.3
# A pair with a blocking difference never scores above this.
_BLOCKED_CEILING = 0.6
_OTHER_DOMAIN_PENALTY = 0.12
# Word weights a snapshot-backed index keeps decoded.
_IDF_CACHE = 200_000


@dataclass(frozen=True, slots=True)
class EntityRow:
    """What the index needs of a registry entity."""

    kernel_id: str
    name: str
    aliases: Sequence[str] = ()
    domain: str | None = None
    country: str | None = None
    country_code: str | None = None
    isins: Sequence[str] = ()
    city: str | None = None
    postal_code: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A registry record considered for a query: its confidence and the features that decided it."""

    kernel_id: str
    name: str
    score: float
    features: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernel_id": self.kernel_id,
            "name": self.name,
            "score": self.score,
            "features": self.features,
        }


@dataclass(frozen=True, slots=True)
class Match:
    """A resolved entity. ``confidence`` is in 0..1; ``matched_on`` lists the evidence that agreed;
    ``candidates`` the best records considered (the match first) with their features."""

    kernel_id: str
    name: str
    domain: str | None
    country: str | None
    confidence: float
    matched_on: tuple[str, ...]
    candidates: tuple[Candidate, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernel_id": self.kernel_id,
            "name": self.name,
            "domain": self.domain,
            "country": self.country,
            "confidence": self.confidence,
            "matched_on": list(self.matched_on),
            "candidates": [c.as_dict() for c in self.candidates],
        }


@dataclass(frozen=True, slots=True)
class Resolution:
    """The answer to a query: a match, or none with the reason; the candidates either way."""

    match: Match | None
    candidates: tuple[Candidate, ...]
    reason: str | None = None


@dataclass(slots=True)
class _Scored:
    entity: int
    name_id: int
    confidence: float  # clipped to 0..1, as reported
    rank: float  # unclipped, for ordering and margins
    name_score: float
    conflicts: list[str]
    comparisons: list[Comparison]
    on_domain: bool
    # How much of the written name equals the query's: (legal form and all, articles and all, core and form).
    closeness: tuple[bool, bool, bool]
    query: NormalizedName | None  # the query's name compared (its legal name, or the name after "DBA")


def entity_place(row: EntityRow) -> Place:
    """The comparable location of a registry record."""
    return Place.of(row.country, row.city, row.postal_code, row.address, code=row.country_code)


def indexed_names(row: EntityRow) -> Iterator[tuple[str, NormalizedName, bool]]:
    """The names a record is found by, in index order: (as written, normalised, whether an alias).

    Its name, its aliases and the trade or former names written into them ("DBA", "formerly"); names
    without an identifying word are left out.
    """
    written = [v for raw in (row.name, *row.aliases) for v in name_variants(raw)]
    for position, raw in enumerate(dict.fromkeys(written)):
        normalized = normalize_name(raw)
        if normalized.core:
            yield raw, normalized, position > 0


def posting_tokens(normalized: NormalizedName) -> list[str]:
    """The keys a name is posted under: its core words, and the words written together when there are two+."""
    tokens = list(dict.fromkeys(normalized.core))
    if len(normalized.core) > 1:
        tokens.append(normalized.compact)
    return tokens


def deletion_neighbourhoods(vocabulary: Iterable[str]) -> dict[str, list[str]]:
    """Single-deletion neighbourhoods (SymSpell): a query word one edit away from a registry word finds it
    with a few dictionary reads instead of a scan of the vocabulary."""
    deletes: dict[str, list[str]] = defaultdict(list)
    for token in vocabulary:
        if len(token) >= MIN_FUZZY_LEN and not token.isdigit():
            deletes[token].append(token)
            for variant in deletions(token):
                deletes[variant].append(token)
    return dict(deletes)


# A posting list: the ids of the names carrying a word, ascending, as unsigned 32-bit integers (a view of a
# snapshot's file, or an array of an index built in memory).
PostingList: TypeAlias = "memoryview | array[int]"


def _tally(voting: Sequence[tuple[PostingList, float]]) -> list[int]:
    """The names the voting words select: each name's vote is the sum of the weights of the words it carries
    (added in ``voting``'s order); the names within ``_VOTE_FLOOR`` of the best vote are kept, in the order
    they first appear in the posting lists, or, when there are more than ``MAX_CANDIDATES``, the most voted
    of them (ties in that order).

    Array operations over the posting lists (unsigned 32-bit name ids, as the snapshot stores them): a
    common word's list of 10,000 names costs tens of microseconds, where a dictionary of votes costs
    milliseconds.
    """
    lists = [np.frombuffer(ids, dtype=np.uint32) for ids, _ in voting]
    ids = np.concatenate(lists) if len(lists) > 1 else lists[0]
    weights = np.repeat(np.array([weight for _, weight in voting]), [len(ids) for ids in lists])
    names, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    # bincount adds each name's weights in the lists' order: the same sums as adding word after word.
    votes = np.bincount(inverse, weights=weights)
    kept = votes >= votes.max() * _VOTE_FLOOR
    names, first, votes = names[kept], first[kept], votes[kept]
    if len(names) <= MAX_CANDIDATES:
        order = np.argsort(first)
    else:
        order = np.lexsort((first, -votes))[:MAX_CANDIDATES]
    return [int(name_id) for name_id in names[order]]


class _IdfOfPostings(Mapping[str, float]):
    """An index's word weights computed from its postings' lengths (for postings stored elsewhere)."""

    def __init__(self, index: EntityIndex) -> None:
        self._index = index
        # A lookup weighs every word of every candidate: each weight read from the file once (bounded).
        self._cache: dict[str, float | None] = {}

    def get(self, token: str, default: float | None = None) -> float | None:  # type: ignore[override]
        try:
            value = self._cache[token]
        except KeyError:
            ids = self._index._postings.get(token)
            value = None if ids is None else self._index._idf_of(len(ids))
            if len(self._cache) >= _IDF_CACHE:
                self._cache.clear()
            self._cache[token] = value
        return default if value is None else value

    def __getitem__(self, token: str) -> float:
        return self._index._idf_of(len(self._index._postings[token]))

    def __iter__(self) -> Iterator[str]:
        return iter(self._index._postings)

    def __len__(self) -> int:
        return len(self._index._postings)


class EntityIndex:
    """An immutable in-memory index of registry entities: build once, look up many times (reads are safe)."""

    def __init__(self, rows: Iterable[EntityRow]) -> None:
        # Building allocates millions of small containers: the cyclic collector would rescan them all many
        # times over (two thirds of the build time); none of them forms a cycle, so it pauses meanwhile.
        paused = gc.isenabled()
        gc.disable()
        try:
            self._build(rows)
        finally:
            if paused:
                gc.enable()

    entities: Sequence[EntityRow]
    _places: Sequence[Place]
    # name_id -> (entity, normalised name, the name as written, whether it is an alias)
    _names: Sequence[tuple[int, NormalizedName, str, bool]]
    _postings: Mapping[str, PostingList]
    _by_key: Mapping[str, Sequence[int]]  # core words -> names with exactly those
    _domains: Mapping[str, Sequence[int]]
    _deletes: Mapping[str, Sequence[str]]
    _idf: Mapping[str, float]

    def _build(self, rows: Iterable[EntityRow]) -> None:
        entities: list[EntityRow] = []
        places: list[Place] = []
        names: list[tuple[int, NormalizedName, str, bool]] = []
        postings: dict[str, list[int]] = defaultdict(list)
        by_key: dict[str, list[int]] = defaultdict(list)
        domains: dict[str, list[int]] = defaultdict(list)
        self.entities, self._places, self._names = entities, places, names
        for row in rows:
            index = len(entities)
            entities.append(row)
            places.append(entity_place(row))
            if row.domain:
                domains[row.domain].append(index)
            for raw, normalized, is_alias in indexed_names(row):
                name_id = len(names)
                names.append((index, normalized, raw, is_alias))
                by_key[normalized.key].append(name_id)
                for token in posting_tokens(normalized):
                    postings[token].append(name_id)
        # As the snapshot stores them: arrays of unsigned 32-bit name ids (``_tally`` reads them as such).
        self._postings = {token: array("I", ids) for token, ids in postings.items()}
        self._by_key = dict(by_key)
        self._domains = dict(domains)
        self._set_counts(len(names))
        self._idf = {token: self._idf_of(len(ids)) for token, ids in postings.items()}
        self._deletes = deletion_neighbourhoods(postings)

    def _set_counts(self, names: int) -> None:
        self._count = max(names, 1)
        self._idf_unknown = math.log((self._count + 1) / 0.5)
        self._common_df = max(_COMMON_DF_FLOOR, self._count // 50)

    def _idf_of(self, df: int) -> float:
        return math.log((self._count + 1) / (df + 0.5))

    @classmethod
    def from_parts(
        cls,
        *,
        entities: Sequence[EntityRow],
        places: Sequence[Place],
        names: Sequence[tuple[int, NormalizedName, str, bool]],
        postings: Mapping[str, PostingList],
        by_key: Mapping[str, Sequence[int]],
        domains: Mapping[str, Sequence[int]],
        deletes: Mapping[str, Sequence[str]],
        idf: Mapping[str, float] | None = None,
    ) -> EntityIndex:
        """An index over parts stored elsewhere (a memory-mapped snapshot): the same lookups and scores as
        an index built from the same rows. ``idf`` defaults to the one the postings' lengths give."""
        index = cls.__new__(cls)
        index.entities = entities
        index._places = places
        index._names = names
        index._postings = postings
        index._by_key = by_key
        index._domains = domains
        index._deletes = deletes
        index._set_counts(len(names))
        index._idf = idf if idf is not None else _IdfOfPostings(index)
        return index

    def __len__(self) -> int:
        return len(self.entities)

    # --- comparing names ----------------------------------------------------------------------------------

    def _weight(self, token: str) -> float:
        return self._idf.get(token, self._idf_unknown)

    def _coverage(
        self, tokens: Sequence[str], best: Sequence[float], weak: Sequence[str], other: set[str]
    ) -> float:
        """How much of ``tokens`` (weighted by rarity) finds a counterpart; ``best``: their similarities."""
        total = matched = 0.0
        for token, similarity in zip(tokens, best, strict=True):
            # A lone initial ("J Sainsbury") weighs like a weak word; a missing descriptive word less than
            # a distinctive one.
            weight = _WEAK_WEIGHT if len(token) == 1 else self._weight(token)
            if similarity > 0:
                matched += weight * similarity
                total += weight
            else:
                total += weight * (_DESCRIPTOR_DISCOUNT if token in DESCRIPTORS else 1.0)
        for token in weak:
            total += _WEAK_WEIGHT
            if token in other:
                matched += _WEAK_WEIGHT
        return matched / total if total else 0.0

    def compare_names(self, query: NormalizedName, candidate: NormalizedName) -> tuple[float, list[str]]:
        """Similarity of two normalised names in 0..1, and the differences that block them as one company."""
        conflicts: list[str] = []
        if query.numbers != candidate.numbers:
            conflicts.append(f"numbers differ ({listed(query.numbers)} / {listed(candidate.numbers)})")
        if query.initials != candidate.initials:
            conflicts.append(f"initials differ ({listed(query.initials)} / {listed(candidate.initials)})")
        weak_q = [t for t in query.weak if t not in candidate.weak]
        weak_c = [t for t in candidate.weak if t not in query.weak]
        if query.core == candidate.core:
            # Same identifying words; a differing "Group"/"Holdings" costs a little (it can be a parent).
            return 1.0 - _WEAK_COST * (len(weak_q) + len(weak_c)), conflicts
        words_q = {*query.core, *query.weak}
        words_c = {*candidate.core, *candidate.weak}
        best_q = [1.0 if t in words_c else 0.0 for t in query.core]
        best_c = [1.0 if t in words_q else 0.0 for t in candidate.core]
        # Fuzzy comparison only for query words without an exact partner: most pairs never get here.
        core_c = len(candidate.core)
        for i, token_q in enumerate(query.core):
            if best_q[i]:
                continue
            cut = token_q in query.truncated
            for j, token_c in enumerate((*candidate.core, *candidate.weak)):
                similarity = token_similarity(token_q, token_c)
                for spelling in SPELLINGS.get(token_c, ()):
                    # A typo of a word the normaliser rewrites ("Technfologies" / "Technologies", read
                    # "technology") is one edit from the word as written, not from its rewrite.
                    similarity = max(similarity, token_similarity(token_q, spelling))
                if cut and not similarity and token_c.startswith(token_q):
                    similarity = _TRUNCATED_SIMILARITY
                if similarity > best_q[i]:
                    best_q[i] = similarity
                if j < core_c and similarity > best_c[j]:
                    best_c[j] = similarity
        # Written with or without spaces ("MercadoLibre" / "Mercado Libre", "arGEN-X" / "argenx"), at most
        # one typo apart: a longer distance across long names would let "Chiba ... Research Center" be "Saga
        # ... Research Center".
        compact_q, compact_c = query.compact, candidate.compact
        if len(query.core) != len(candidate.core) and min(len(compact_q), len(compact_c)) >= 6:
            compact = 1.0 if compact_q == compact_c else 0.0
            if (
                not compact
                and min(len(compact_q), len(compact_c)) >= 8
                and OSA.distance(compact_q, compact_c) <= 1
            ):
                compact = OSA.normalized_similarity(compact_q, compact_c)
            if compact:
                conflicts = (
                    [c for c in conflicts if not c.startswith("initials")] if compact == 1.0 else conflicts
                )
                return compact - _WEAK_COST * (len(weak_q) + len(weak_c)), conflicts
        only_q = unmatched(query.core, best_q)
        only_c = unmatched(candidate.core, best_c)
        # A registry short name without a legal form ("Verizon") may leave out descriptive words of a legal
        # or listed name ("Verizon Communications Inc.", "UBER TECH. DL-,00001"); nothing else may be missing
        # on either side ("Hefei University of Technology" is not "Hefei University").
        excused = (
            (bool(query.legal) or query.listing)
            and not candidate.legal
            and not only_c
            and all(t in DESCRIPTORS for t in only_q)
        )
        if only_q and not excused:
            conflicts.append(f"words only in the query: {', '.join(only_q)}")
        if only_c:
            conflicts.append(f"words only in the candidate: {', '.join(only_c)}")
        # A name that is one short misspelt word ("GeneTex" / "Gentex") is another name.
        fuzzy = [b for b in best_q if 0 < b < 1]
        if len(query.core) == 1 and fuzzy and min(fuzzy) < _TYPO_FLOOR:
            conflicts.append("the only matching words differ by a typo")
        covered_q = self._coverage(query.core, best_q, weak_q, words_c)
        covered_c = self._coverage(candidate.core, best_c, weak_c, words_q)
        return math.sqrt(covered_q * covered_c), conflicts

    # --- lookup -----------------------------------------------------------------------------------------

    def _candidate_names(self, query: NormalizedName) -> list[int]:
        # Names with exactly the query's words always compete, however common the words ("Fraunhofer
        # Austria" among 80 Fraunhofer institutes, "Lincoln School" in many cities).
        exact = self._by_key.get(query.key, [])[:_MAX_EXACT]
        voted = self._voted_names(query)
        if not exact:
            return voted
        return list(dict.fromkeys([*exact, *voted]))

    def _voted_names(self, query: NormalizedName) -> list[int]:
        # (names carrying the word, the word, its factor, its posting list)
        refs: list[tuple[int, str, float, PostingList]] = []
        seen: set[str] = set()
        for token in dict.fromkeys(query.core):
            ids = self._postings.get(token)
            if ids is not None:
                refs.append((len(ids), token, 1.0, ids))
                seen.add(token)
                continue
            if len(token) >= MIN_FUZZY_LEN:
                neighbours: set[str] = set()
                for variant in (token, *deletions(token)):
                    neighbours.update(self._deletes.get(variant, ()))
                for neighbour in neighbours - seen:
                    if token_similarity(token, neighbour) > 0:
                        ids = self._postings[neighbour]
                        refs.append((len(ids), neighbour, 0.8, ids))
                        seen.add(neighbour)
        if len(query.core) > 1:
            ids = self._postings.get(query.compact)
            if ids is not None:
                refs.append((len(ids), query.compact, 1.0, ids))
        if not refs:
            return []
        refs.sort(key=lambda ref: ref[:2])
        voting: list[tuple[PostingList, float]] = []
        for position, (df, token, factor, ids) in enumerate(refs):
            # Rare words select candidates; a common word ("bank", "energy") only when nothing rarer is there.
            if df > self._common_df and position >= 2:
                break
            voting.append((ids, self._weight(token) * factor))
        return _tally(voting)

    def score(
        self,
        name: str | None = None,
        website: str | None = None,
        country: str | None = None,
        *,
        city: str | None = None,
        postal_code: str | None = None,
        address: str | None = None,
    ) -> list[_Scored]:
        """Every candidate with its confidence, best first (the evidence behind ``resolve``)."""
        variants = [normalize_name(v) for v in name_variants(name)] if name and name.strip() else []
        queries = [q for q in variants if q.core]
        domain = registrable_domain(website) if website else None
        place = Place.of(country, city, postal_code, address)
        if not queries and domain is None:
            return []
        # entity -> (name similarity, conflicts, the registry name compared, the query's name compared)
        best_name: dict[int, tuple[float, list[str], int, NormalizedName | None]] = {}
        for query in queries:
            for name_id in self._candidate_names(query):
                entity, normalized, _, _ = self._names[name_id]
                value, conflicts = self.compare_names(query, normalized)
                previous = best_name.get(entity)
                if previous is None or (not conflicts, value) > (not previous[1], previous[0]):
                    best_name[entity] = (value, conflicts, name_id, query)
        domain_hits = set(self._domains.get(domain, ())) if domain else set()
        for entity in domain_hits:
            best_name.setdefault(entity, (0.0, [], -1, None))
        has_name = bool(queries)
        results: list[_Scored] = []
        for entity, (name_value, conflicts, name_id, compared) in best_name.items():
            on_domain = entity in domain_hits
            if has_name:
                rank = name_value
                if on_domain:
                    # The website is strong evidence, but a name that disagrees makes the pair doubtful.
                    rank = 0.9 + 0.1 * name_value if name_value >= 0.4 else 0.8
                elif domain and self.entities[entity].domain:
                    rank -= _OTHER_DOMAIN_PENALTY
            else:
                rank = 0.95 if on_domain else 0.0
            comparisons = compare_places(place, self._places[entity])
            closeness = (False, False, False)
            if compared is not None and name_id >= 0:
                qualifiers, clash = compare_fragments(
                    compared, self._names[name_id][1], place, self._places[entity]
                )
                comparisons.extend(qualifiers)
                if clash:
                    conflicts = [*conflicts, clash]
                candidate = self._names[name_id][1]
                same_core = compared.core == candidate.core
                same_form = set(compared.legal) == set(candidate.legal)
                same_weak = set(compared.weak) == set(candidate.weak)
                closeness = (
                    same_core and same_form and same_weak,
                    same_core and same_weak,
                    same_core and same_form,
                )
            rank += sum(c.adjustment for c in comparisons)
            if conflicts:
                rank = min(rank, _BLOCKED_CEILING)
            results.append(
                _Scored(
                    entity,
                    name_id,
                    max(0.0, min(1.0, rank)),
                    rank,
                    name_value,
                    conflicts,
                    comparisons,
                    on_domain,
                    closeness,
                    compared,
                )
            )
        results.sort(key=lambda s: (-s.rank, -s.name_score, s.entity))
        return results

    def _features(self, domain: str | None, scored: _Scored) -> dict[str, Any]:
        row = self.entities[scored.entity]
        query = scored.query
        features: dict[str, Any] = {}
        if query is not None and scored.name_id >= 0:
            _, candidate, written, is_alias = self._names[scored.name_id]
            features["name"] = {
                "query": query.key,
                "candidate": candidate.key,
                "similarity": round(scored.name_score, 4),
            }
            if is_alias:
                features["alias"] = written
            if query.legal or candidate.legal:
                both = bool(query.legal and candidate.legal)
                features["legal_form"] = {
                    "query": " ".join(query.legal) or None,
                    "candidate": " ".join(candidate.legal) or None,
                    "agrees": set(query.legal) == set(candidate.legal) if both else None,
                }
        if domain or (row.domain and scored.on_domain):
            features["domain"] = {
                "query": domain,
                "candidate": row.domain,
                "agrees": scored.on_domain if domain and row.domain else None,
            }
        qualifiers = []
        for comparison in scored.comparisons:
            if comparison.feature == "qualifier":
                qualifiers.append(comparison.as_dict())
            else:
                features[comparison.feature] = comparison.as_dict()
        if qualifiers:
            features["qualifiers"] = qualifiers
        if scored.conflicts:
            features["conflicts"] = list(scored.conflicts)
        return features

    def _candidate(self, domain: str | None, scored: _Scored) -> Candidate:
        row = self.entities[scored.entity]
        return Candidate(row.kernel_id, row.name, round(scored.confidence, 4), self._features(domain, scored))

    @observe_resolutions
    def resolve(
        self,
        name: str | None = None,
        website: str | None = None,
        country: str | None = None,
        *,
        city: str | None = None,
        postal_code: str | None = None,
        address: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
    ) -> Resolution:
        """The registry entity that is confidently the same company (or none, and why), with the best
        ``REPORTED_CANDIDATES`` candidates and their features either way."""
        scored = self.score(name, website, country, city=city, postal_code=postal_code, address=address)
        domain = registrable_domain(website) if website else None
        if not scored:
            return Resolution(None, (), "no registry record shares a word or the website with the query")
        best = scored[0]
        tied = [s for s in scored if best.rank - s.rank < margin]
        chosen: _Scored | None = best
        reason: str | None = None
        if best.confidence < threshold:
            chosen = None
            reason = f"no candidate reaches the threshold {threshold:g}"
            if best.conflicts:
                reason += f" (best: {best.conflicts[0]})"
        elif len(tied) > 1:
            # Equally good records (a registry listing one company twice, or namesakes): the one whose whole
            # normalised name, legal form (then articles) included, equals the query's wins; otherwise nobody.
            closest = max(s.closeness for s in tied)
            exact = [s for s in tied if s.closeness == closest and s.confidence >= threshold]
            chosen = exact[0] if any(closest) and len(exact) == 1 else None
            if chosen is None:
                reason = f"ambiguous: {len(tied)} candidates within the margin {margin:g}"
        if chosen is not None and chosen is not best:
            scored = [chosen, *(s for s in scored if s is not chosen)]
        candidates = tuple(self._candidate(domain, s) for s in scored[:REPORTED_CANDIDATES])
        if chosen is None:
            return Resolution(None, candidates, reason)
        row = self.entities[chosen.entity]
        evidence: list[str] = []
        if name and chosen.name_score >= 0.5:
            evidence.append("name")
        if chosen.on_domain:
            evidence.append("domain")
        evidence.extend(c.feature for c in chosen.comparisons if c.agrees and c.feature != "qualifier")
        match = Match(
            kernel_id=row.kernel_id,
            name=row.name,
            domain=row.domain,
            country=row.country,
            confidence=round(chosen.confidence, 4),
            matched_on=tuple(dict.fromkeys(evidence)),
            candidates=candidates,
        )
        return Resolution(match, candidates, None)

    def lookup(
        self,
        name: str | None = None,
        website: str | None = None,
        country: str | None = None,
        *,
        city: str | None = None,
        postal_code: str | None = None,
        address: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
    ) -> Match | None:
        """The registry entity that is confidently the same company, or None (``resolve`` says why)."""
        return self.resolve(
            name,
            website,
            country,
            city=city,
            postal_code=postal_code,
            address=address,
            threshold=threshold,
            margin=margin,
        ).match
