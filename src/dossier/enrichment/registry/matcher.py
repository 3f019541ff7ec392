"""Entity resolution: an in-memory index of the registry and the scoring that decides "same company".

Blocking keeps a lookup independent of the registry size: a query's rarest name tokens (plus fuzzy
neighbours of tokens the registry does not know, the name written without spaces, and the exact registrable
domain) select at most ``MAX_CANDIDATES`` names; only those are scored. Scoring is token based (rapidfuzz
for typos) and weighs tokens by rarity, so "Costco Wholesale Corporation" finds "Costco" while "Apple
Hospitality REIT" does not find "Apple". Precision comes first: a result needs a confidence above the
threshold *and* a margin over the best different company, otherwise nothing is returned.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import OSA
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.registry.countries import country_code
from dossier.enrichment.registry.models import RegistryEntity
from dossier.enrichment.registry.normalize import (
    DESCRIPTORS,
    NormalizedName,
    normalize_name,
    registrable_domain,
)

DEFAULT_THRESHOLD = 0.86
DEFAULT_MARGIN = 0.05
MAX_CANDIDATES = 40
_VOTE_FLOOR = 0.4
# Tokens carried by more names than this are only used for blocking when nothing rarer is in the query.
_COMMON_DF_FLOOR = 300
_MIN_FUZZY_LEN = 5
# Weight of a weak token (group, holdings, ...) relative to nothing: present but small.
_WEAK_WEIGHT = 0.6
# An unmatched descriptive word ("wholesale", "communications") counts for this fraction of its weight.
_DESCRIPTOR_DISCOUNT = 0.3
_COUNTRY_BONUS = 0.03
_COUNTRY_PENALTY = 0.12
_OTHER_DOMAIN_PENALTY = 0.12


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


@dataclass(frozen=True, slots=True)
class Match:
    """A resolved entity. ``confidence`` is in 0..1; ``matched_on`` lists the evidence that agreed."""

    kernel_id: str
    name: str
    domain: str | None
    country: str | None
    confidence: float
    matched_on: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernel_id": self.kernel_id,
            "name": self.name,
            "domain": self.domain,
            "country": self.country,
            "confidence": self.confidence,
            "matched_on": list(self.matched_on),
        }


@dataclass(slots=True)
class _Scored:
    entity: int
    confidence: float
    name_score: float
    on_domain: bool
    on_country: bool


def _deletions(token: str) -> set[str]:
    return {token[:i] + token[i + 1 :] for i in range(len(token))}


def _token_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    if len(shorter) < 3 or (shorter[0] != longer[0] and shorter[1] != longer[1]):
        return 0.0  # cheap exit: short words never match fuzzily; two typos at the start are not "one typo"
    if longer.startswith(shorter):
        # Exchanges truncate long words ("SAREPTA THERAP.", "MITSUBISHI EST."): a prefix is nearly the word.
        return 0.85 if len(shorter) >= 4 else 0.75
    # A similarity of 0.8 or more needs lengths within a fifth of each other.
    if len(shorter) >= 4 and len(longer) - len(shorter) <= len(longer) // 5:
        similarity = OSA.normalized_similarity(a, b)
        # One typo (or swapped pair) in a word of 5+ letters; anything looser makes unrelated words "similar".
        if similarity >= 0.8:
            return similarity
    return 0.0


class EntityIndex:
    """An immutable in-memory index of registry entities: build once, look up many times (reads are safe)."""

    def __init__(self, rows: Iterable[EntityRow]) -> None:
        self.entities: list[EntityRow] = []
        self._entity_keys: list[str] = []
        self._names: list[tuple[int, NormalizedName]] = []
        self._postings: dict[str, list[int]] = defaultdict(list)
        self._domains: dict[str, list[int]] = defaultdict(list)
        self._codes: list[str | None] = []
        for row in rows:
            index = len(self.entities)
            self.entities.append(row)
            self._codes.append(row.country_code or country_code(row.country))
            if row.domain:
                self._domains[row.domain].append(index)
            keys: list[str] = []
            for raw in dict.fromkeys([row.name, *row.aliases]):
                normalized = normalize_name(raw)
                if not normalized.core:
                    continue
                keys.append(normalized.key)
                name_id = len(self._names)
                self._names.append((index, normalized))
                for token in dict.fromkeys(normalized.core):
                    self._postings[token].append(name_id)
                if len(normalized.core) > 1:
                    self._postings[normalized.compact].append(name_id)
            self._entity_keys.append(keys[0] if keys else "")
        self._postings = dict(self._postings)
        self._domains = dict(self._domains)
        count = max(len(self._names), 1)
        self._idf_unknown = math.log((count + 1) / 0.5)
        self._idf = {token: math.log((count + 1) / (len(ids) + 0.5)) for token, ids in self._postings.items()}
        self._common_df = max(_COMMON_DF_FLOOR, count // 50)
        # Single-deletion neighbourhoods (SymSpell): a query word one edit away from a registry word finds it
        # with a few dictionary reads instead of a scan of the vocabulary.
        deletes: dict[str, list[str]] = defaultdict(list)
        for token in self._postings:
            if len(token) >= _MIN_FUZZY_LEN and not token.isdigit():
                deletes[token].append(token)
                for variant in _deletions(token):
                    deletes[variant].append(token)
        self._deletes = dict(deletes)

    def __len__(self) -> int:
        return len(self.entities)

    # --- scoring ----------------------------------------------------------------------------------------

    def _weight(self, token: str) -> float:
        return self._idf.get(token, self._idf_unknown)

    def _coverage(
        self, tokens: Sequence[str], best: Sequence[float], weak: Sequence[str], other: set[str]
    ) -> float:
        """How much of ``tokens`` (weighted by rarity) finds a counterpart; ``best``: their similarities."""
        total = matched = 0.0
        for token, similarity in zip(tokens, best, strict=True):
            weight = self._weight(token)
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

    def name_score(self, query: NormalizedName, candidate: NormalizedName) -> float:
        """Similarity of two normalised names in 0..1 (1: same core words)."""
        if not query.core or not candidate.core:
            return 0.0
        weak_q = [t for t in query.weak if t not in candidate.weak]
        weak_c = [t for t in candidate.weak if t not in query.weak]
        if query.core == candidate.core:
            # Same identifying words; a differing "Group"/"Holdings" costs a little (it can be a parent).
            return 1.0 - 0.02 * (len(weak_q) + len(weak_c))
        words_q = {*query.core, *query.weak}
        words_c = {*candidate.core, *candidate.weak}
        best_q = [1.0 if t in words_c else 0.0 for t in query.core]
        best_c = [1.0 if t in words_q else 0.0 for t in candidate.core]
        # Fuzzy comparison only for query words without an exact partner: most pairs never get here.
        core_c = len(candidate.core)
        for i, token_q in enumerate(query.core):
            if best_q[i]:
                continue
            for j, token_c in enumerate((*candidate.core, *candidate.weak)):
                similarity = _token_similarity(token_q, token_c)
                if similarity > best_q[i]:
                    best_q[i] = similarity
                if j < core_c and similarity > best_c[j]:
                    best_c[j] = similarity
        covered_q = self._coverage(query.core, best_q, weak_q, words_c)
        covered_c = self._coverage(candidate.core, best_c, weak_c, words_q)
        score = math.sqrt(covered_q * covered_c)
        # Written with or without spaces ("MercadoLibre" / "Mercado Libre"), or one typo across the name.
        compact_q, compact_c = query.compact, candidate.compact
        if min(len(compact_q), len(compact_c)) >= 6:
            compact = OSA.normalized_similarity(compact_q, compact_c)
            if compact >= 0.9:
                score = max(score, compact)
        return score

    # --- lookup -----------------------------------------------------------------------------------------

    def _candidate_names(self, query: NormalizedName) -> list[int]:
        refs: list[tuple[int, str, float]] = []
        seen: set[str] = set()
        for token in dict.fromkeys(query.core):
            ids = self._postings.get(token)
            if ids is not None:
                refs.append((len(ids), token, 1.0))
                seen.add(token)
                continue
            if len(token) >= _MIN_FUZZY_LEN:
                neighbours: set[str] = set()
                for variant in (token, *_deletions(token)):
                    neighbours.update(self._deletes.get(variant, ()))
                for neighbour in neighbours - seen:
                    if _token_similarity(token, neighbour) > 0:
                        refs.append((len(self._postings[neighbour]), neighbour, 0.8))
                        seen.add(neighbour)
        if len(query.core) > 1 and query.compact in self._postings:
            refs.append((len(self._postings[query.compact]), query.compact, 1.0))
        if not refs:
            return []
        refs.sort()
        votes: dict[int, float] = defaultdict(float)
        for position, (df, token, factor) in enumerate(refs):
            # Rare words select candidates; a common word ("bank", "energy") only when nothing rarer is there.
            if df > self._common_df and position >= 2:
                break
            weight = self._weight(token) * factor
            for name_id in self._postings[token]:
                votes[name_id] += weight
        # A name sharing much less rare-word weight than the best candidate cannot score near it: skip it.
        floor = max(votes.values()) * _VOTE_FLOOR
        kept = [name_id for name_id, vote in votes.items() if vote >= floor]
        if len(kept) <= MAX_CANDIDATES:
            return kept
        return heapq.nlargest(MAX_CANDIDATES, kept, key=votes.__getitem__)

    def score(
        self, name: str | None = None, website: str | None = None, country: str | None = None
    ) -> list[_Scored]:
        """Every candidate with its confidence, best first (the evidence behind ``lookup``)."""
        query = normalize_name(name) if name and name.strip() else None
        domain = registrable_domain(website) if website else None
        code = country_code(country) if country else None
        if (query is None or not query.core) and domain is None:
            return []
        best_name: dict[int, float] = {}
        if query is not None and query.core:
            for name_id in self._candidate_names(query):
                entity, normalized = self._names[name_id]
                value = self.name_score(query, normalized)
                if value > best_name.get(entity, -1.0):
                    best_name[entity] = value
        domain_hits = set(self._domains.get(domain, ())) if domain else set()
        for entity in domain_hits:
            best_name.setdefault(entity, 0.0)
        results: list[_Scored] = []
        has_name = query is not None and bool(query.core)
        for entity, name_value in best_name.items():
            row = self.entities[entity]
            on_domain = entity in domain_hits
            if has_name:
                confidence = name_value
                if on_domain:
                    # The website is strong evidence, but a name that disagrees makes the pair doubtful.
                    confidence = 0.9 + 0.1 * name_value if name_value >= 0.4 else 0.8
                elif domain and row.domain:
                    confidence -= _OTHER_DOMAIN_PENALTY
            else:
                confidence = 0.95 if on_domain else 0.0
            entity_code = self._codes[entity]
            on_country = bool(code and entity_code and code == entity_code)
            if code and entity_code:
                confidence += _COUNTRY_BONUS if on_country else -_COUNTRY_PENALTY
            results.append(_Scored(entity, max(0.0, min(1.0, confidence)), name_value, on_domain, on_country))
        results.sort(key=lambda s: (-s.confidence, -s.name_score, s.entity))
        return results

    def _same_company(self, a: int, b: int) -> bool:
        # The registry may hold one company several times (several listings, several spellings): those are
        # not competitors for the margin test.
        ra, rb = self.entities[a], self.entities[b]
        if ra.domain and ra.domain == rb.domain:
            return True
        if ra.isins and rb.isins and set(ra.isins) & set(rb.isins):
            return True
        return bool(self._entity_keys[a]) and self._entity_keys[a] == self._entity_keys[b]

    def lookup(
        self,
        name: str | None = None,
        website: str | None = None,
        country: str | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
    ) -> Match | None:
        """The registry entity that is confidently the same company, or None."""
        scored = self.score(name, website, country)
        if not scored or scored[0].confidence < threshold:
            return None
        best = scored[0]
        for other in scored[1:]:
            if best.confidence - other.confidence >= margin:
                break
            if not self._same_company(best.entity, other.entity):
                return None  # two different companies are about as likely: say nothing
        row = self.entities[best.entity]
        evidence: list[str] = []
        if name and best.name_score >= 0.5:
            evidence.append("name")
        if best.on_domain:
            evidence.append("domain")
        if best.on_country:
            evidence.append("country")
        return Match(
            kernel_id=row.kernel_id,
            name=row.name,
            domain=row.domain,
            country=row.country,
            confidence=round(best.confidence, 4),
            matched_on=tuple(evidence),
        )


# --- the per-process cached index -----------------------------------------------------------------------

_RECHECK_SECONDS = 2.0


@dataclass
class _Cached:
    index: EntityIndex
    fingerprint: tuple[Any, ...]
    checked_at: float = field(default_factory=time.monotonic)


_CACHE: dict[str, _Cached] = {}
_LOCKS: dict[tuple[int, str], asyncio.Lock] = {}


def invalidate_index() -> None:
    """Make the next ``current_index`` re-check the registry now (called after this process changes it)."""
    for cached in _CACHE.values():
        cached.checked_at = -math.inf


def index_cache_key(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    bind = sessionmaker.kw.get("bind")
    url = getattr(bind, "url", None)
    return url.render_as_string(hide_password=True) if url is not None else f"maker-{id(sessionmaker)}"


async def _fingerprint(session: AsyncSession) -> tuple[Any, ...]:
    # Entities are only ever inserted or updated (and every write sets updated_at), so the count and the
    # newest update time change whenever the registry does.
    row = (
        await session.execute(
            select(func.count(), func.max(RegistryEntity.updated_at)).select_from(RegistryEntity)
        )
    ).one()
    return (row[0], row[1])


async def load_rows(session: AsyncSession) -> list[EntityRow]:
    """The index's view of every registry entity (only the columns matching needs)."""
    result = await session.execute(
        select(
            RegistryEntity.kernel_id,
            RegistryEntity.name,
            RegistryEntity.aliases,
            RegistryEntity.domain,
            RegistryEntity.country,
            RegistryEntity.country_code,
            RegistryEntity.isins,
        ).order_by(RegistryEntity.kernel_id)
    )
    return [
        EntityRow(kid, name, tuple(aliases or ()), domain, country, code, tuple(isins or ()))
        for kid, name, aliases, domain, country, code, isins in result
    ]


async def current_index(sessionmaker: async_sessionmaker[AsyncSession]) -> EntityIndex:
    """This process's index of the registry, rebuilt when the registry changed (checked at most every 2 s)."""
    key = index_cache_key(sessionmaker)
    cached = _CACHE.get(key)
    if cached is not None and time.monotonic() - cached.checked_at < _RECHECK_SECONDS:
        return cached.index
    lock = _LOCKS.setdefault((id(asyncio.get_running_loop()), key), asyncio.Lock())
    async with lock:
        cached = _CACHE.get(key)
        if cached is not None and time.monotonic() - cached.checked_at < _RECHECK_SECONDS:
            return cached.index
        async with sessionmaker() as session:
            fingerprint = await _fingerprint(session)
            if cached is not None and cached.fingerprint == fingerprint:
                cached.checked_at = time.monotonic()
                return cached.index
            rows = await load_rows(session)
        # Building takes about a second for 40k entities: off the event loop, so the server keeps answering.
        index = await asyncio.to_thread(EntityIndex, rows)
        _CACHE[key] = _Cached(index, fingerprint)
        return index
