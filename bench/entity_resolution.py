"""Entity-resolution benchmark: lookups/s and accuracy. Prints figures; asserts nothing.

    .venv/bin/python bench/entity_resolution.py [--runs 5] [--database-url sqlite+aiosqlite:///...]

Builds the default registry (pytickersymbols) in a fresh SQLite database (or the one given), measures
lookups/s with the dev-pair queries, then imports ../shared/data/listed-companies.csv.gz (about 42k
companies) and measures again. Accuracy is measured on ../shared/data/er-dev-pairs.csv against the default
registry at the default threshold and margin. Only local files and the local database are touched.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dossier.db.engine import create_engine, create_sessionmaker
from dossier.db.migrate import upgrade_to_head
from dossier.enrichment.registry.matcher import EntityIndex, current_index
from dossier.enrichment.registry.normalize import normalize_name
from dossier.enrichment.registry.service import ensure_default_registry, import_file
from dossier.settings import Settings

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def lookups_per_second(
    index: EntityIndex, queries: list[tuple[str, str]], runs: int
) -> tuple[float, list[float]]:
    """Median lookups/s over ``runs`` passes; the name cache is cleared so every pass normalises afresh."""
    rates = []
    for _ in range(runs):
        normalize_name.cache_clear()
        start = time.perf_counter()
        for name, country in queries:
            index.lookup(name, None, country)
        rates.append(len(queries) / (time.perf_counter() - start))
    return statistics.median(rates), rates


def accuracy(index: EntityIndex, pairs: list[dict[str, str]], settings: Settings) -> dict[str, float]:
    tp = fp = top1 = 0
    positives = [p for p in pairs if p["expected_registry_name"]]
    for pair in pairs:
        expected = pair["expected_registry_name"]
        if expected:
            scored = index.score(pair["query_name"], None, pair["query_country"])
            if scored and index.entities[scored[0].entity].name == expected:
                top1 += 1
        match = index.lookup(
            pair["query_name"],
            None,
            pair["query_country"],
            threshold=settings.registry_match_threshold,
            margin=settings.registry_match_margin,
        )
        if match is None:
            continue
        if match.name == expected:
            tp += 1
        else:
            fp += 1
    return {
        "top1_accuracy": top1 / len(positives),
        "precision": tp / max(1, tp + fp),
        "recall": tp / len(positives),
        "true_positives": tp,
        "false_positives": fp,
        "returned_for_negatives": sum(
            1
            for p in pairs
            if not p["expected_registry_name"]
            and index.lookup(p["query_name"], None, p["query_country"]) is not None
        ),
    }


async def main(args: argparse.Namespace) -> None:
    pairs_path = DATA / "er-dev-pairs.csv"
    listed_path = DATA / "listed-companies.csv.gz"
    if not pairs_path.exists():
        sys.exit(f"{pairs_path} is absent: the shared data directory must be beside this checkout")
    with pairs_path.open(newline="") as handle:
        pairs = list(csv.DictReader(handle))
    queries = [(p["query_name"], p["query_country"]) for p in pairs]

    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite+aiosqlite:///{tmp.name}/bench.db"
    settings = Settings(database_url=url)
    engine = create_engine(settings)
    await upgrade_to_head(engine)
    maker = create_sessionmaker(engine)

    print(f"# Entity resolution benchmark, {dt.date.today().isoformat()}")
    print(
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {platform.machine()}, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}"
    )
    print(f"store: {engine.url.get_backend_name()}; queries: {len(queries)} dev-pair names, {args.runs} runs")

    start = time.perf_counter()
    async with maker() as session, session.begin():
        await ensure_default_registry(session)
    build = time.perf_counter() - start
    start = time.perf_counter()
    index = await current_index(maker)
    load = time.perf_counter() - start
    median, rates = lookups_per_second(index, queries, args.runs)
    print(f"\ndefault registry: {len(index):,} entities (built in {build:.1f} s, indexed in {load:.2f} s)")
    print(f"  lookups/s: median {median:,.0f} (runs: {', '.join(f'{r:,.0f}' for r in rates)})")

    figures = accuracy(index, pairs, settings)
    print(
        f"  dev pairs at threshold {settings.registry_match_threshold}, "
        f"margin {settings.registry_match_margin}: "
        f"top-1 accuracy {figures['top1_accuracy']:.3f}, precision {figures['precision']:.3f}, "
        f"recall {figures['recall']:.3f} (TP {figures['true_positives']:.0f}, "
        f"FP {figures['false_positives']:.0f}, answers for the 500 negatives: "
        f"{figures['returned_for_negatives']:.0f})"
    )

    if not listed_path.exists():
        print(f"\n{listed_path} is absent: the 42k measurement is skipped")
    else:
        start = time.perf_counter()
        async with maker() as session, session.begin():
            report = await import_file(session, listed_path, source="financedatabase")
        imported = time.perf_counter() - start
        start = time.perf_counter()
        index = await current_index(maker)
        load = time.perf_counter() - start
        median, rates = lookups_per_second(index, queries, args.runs)
        print(
            f"\ndefault + listed-companies: {len(index):,} entities (import of {report.rows:,} rows "
            f"in {imported:.1f} s, indexed in {load:.2f} s)"
        )
        print(f"  lookups/s: median {median:,.0f} (runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    await engine.dispose()
    tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--database-url", default=None, help="an existing, disposable database (default: temp)"
    )
    asyncio.run(main(parser.parse_args()))
