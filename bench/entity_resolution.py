"""Entity-resolution benchmark: accuracy per dataset, family and split, and lookups/s. Asserts nothing.

    .venv/bin/python bench/entity_resolution.py [--runs 5] [--dataset ror] [--family typo] [--split dev]
                                                [--errors 10] [--misses 10] [--threshold 0.86 --margin 0.05]

Datasets (built by ``bench/er_data.py`` from ../shared/data, which is only read): ``ror`` (ROR organisations
as a gazetteer), ``listed`` (listed companies with labelled variants per failure family), ``pairs``
(er-dev-pairs.csv against the default pytickersymbols registry). For each (dataset, family, split) the table
gives the queries (positives / expected "no match"), the answers, precision (correct / answered), recall
(correct / positives) and false matches (answers to queries whose right answer is "no match"). ``--errors N``
prints up to N wrong answers per family (query -> returned, expected); ``--misses N`` up to N positives left
unanswered. Only local files are touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.er_data import DATA, LOADERS, Dataset, Outcome, Query, Stats, run_queries, summarize
from bench.registry_data import SEED, iter_organisations
from dossier.enrichment.registry.matcher import DEFAULT_MARGIN, DEFAULT_THRESHOLD, EntityIndex, EntityRow
from dossier.enrichment.registry.normalize import normalize_name, registrable_domain
from dossier.enrichment.registry.service import kernel_id_for
from dossier.enrichment.registry.snapshot import build_snapshot, open_snapshot


def lookups_per_second(
    index: EntityIndex, queries: list[Query], runs: int, **kwargs: object
) -> tuple[float, list[float]]:
    """Median lookups/s over ``runs`` passes; the name cache is cleared so every pass normalises afresh."""
    rates = []
    for _ in range(runs):
        normalize_name.cache_clear()
        start = time.perf_counter()
        run_queries(index, queries, **kwargs)
        rates.append(len(queries) / (time.perf_counter() - start))
    return statistics.median(rates), rates


def distractor_rows(count: int) -> Iterator[EntityRow]:
    """``count`` generated organisations (bench/registry_data.py) as index rows: names no query targets."""
    for record in iter_organisations(count, seed=SEED + 1, source="distractors"):
        yield EntityRow(
            kernel_id_for("distractors", str(record["source_key"])),
            str(record["name"]),
            tuple(record.get("aliases", ())),
            registrable_domain(record.get("website")),
            None,
            str(record["country_code"]),
            (),
            str(record["hq_city"]),
            record.get("postal_code"),
            record.get("address"),
        )


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


HEADER = (
    f"{'dataset':8} {'family':16} {'split':8} {'queries':>7} {'pos':>5} {'neg':>5} {'answered':>8} "
    f"{'correct':>7} {'wrong':>5} {'precision':>9} {'recall':>6} {'false matches':>15}"
)


def _line(label: tuple[str, str, str], stats: Stats) -> str:
    false = f"{stats.false_matches}/{stats.negatives}" if stats.negatives else "-"
    rate = f" {stats.false_match_rate:.3f}" if stats.false_match_rate is not None else ""
    return (
        f"{label[0]:8} {label[1]:16} {label[2]:8} {stats.queries:7d} {stats.positives:5d} "
        f"{stats.negatives:5d} "
        f"{stats.answered:8d} {stats.correct:7d} {stats.wrong:5d} {_fmt(stats.precision):>9} "
        f"{_fmt(stats.recall):>6} {false + rate:>15}"
    )


def _describe(dataset: Dataset, outcome: Outcome) -> str:
    query = outcome.query
    extra = ", ".join(
        f"{name}={value!r}"
        for name, value in (
            ("country", query.country),
            ("website", query.website),
            ("city", query.city),
            ("postal_code", query.postal_code),
            ("address", query.address),
        )
        if value
    )
    returned = dataset.names.get(outcome.returned_kernel_id or "", None)
    expected = dataset.names.get(query.expected_kernel_id or "", None)
    return (
        f"  [{query.split}/{query.kind}] {query.name!r} ({extra}) -> {returned!r} "
        f"[{outcome.returned_kernel_id}], expected {expected!r} [{query.expected_kernel_id}]"
    )


def _spread(outcomes: list[Outcome], count: int) -> list[Outcome]:
    """Up to ``count`` outcomes, taken in turn from each kind so one sub-case does not fill the list."""
    by_kind: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_kind[outcome.query.kind].append(outcome)
    picked: list[Outcome] = []
    queues = [list(v) for _, v in sorted(by_kind.items())]
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def main(args: argparse.Namespace) -> None:
    missing = [
        name
        for name in ("ror-organizations.jsonl.gz", "listed-companies.csv.gz")
        if not (DATA / name).exists()
    ]
    if missing:
        sys.exit(f"{DATA} lacks {', '.join(missing)}: the shared data directory must be beside this checkout")
    kwargs = {"threshold": args.threshold, "margin": args.margin}
    print(f"# Entity resolution benchmark, {dt.date.today().isoformat()}")
    print(
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {platform.machine()}, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}"
    )
    print(
        f"threshold {args.threshold}, margin {args.margin}; lookups/s: median of {args.runs} runs, one thread"
    )
    if args.distractors:
        print(
            f"registries: each dataset's plus {args.distractors:,} generated organisations, from a snapshot"
        )

    all_outcomes: list[Outcome] = []
    datasets: dict[str, Dataset] = {}
    speed: list[str] = []
    for name in args.dataset or list(LOADERS):
        start = time.perf_counter()
        dataset = LOADERS[name]()
        built = time.perf_counter() - start
        start = time.perf_counter()
        if args.distractors:
            # The dataset's registry plus generated organisations, in a snapshot like the one processes use.
            path = Path(tempfile.gettempdir()) / f"er-{name}-{args.distractors}.idx"
            rows = itertools.chain(dataset.rows, distractor_rows(args.distractors))
            build_snapshot(rows, path, workers=len(os.sched_getaffinity(0)))
            snapshot = open_snapshot(path)
            index = snapshot.index
        else:
            index = dataset.index()
        indexed = time.perf_counter() - start
        queries = [
            q
            for q in dataset.queries
            if (not args.family or q.family in args.family) and (not args.split or q.split in args.split)
        ]
        datasets[name] = dataset
        all_outcomes.extend(run_queries(index, queries, **kwargs))
        median, rates = lookups_per_second(index, queries, args.runs, **kwargs) if queries else (0.0, [])
        speed.append(
            f"{name:8} {len(dataset.rows):7,} records (data built in {built:.1f} s, indexed in "
            f"{indexed:.1f} s), {len(queries):5,} queries: {median:,.0f} lookups/s "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )

    print("\n## Speed")
    for line in speed:
        print(line)

    print("\n## Accuracy per dataset, family and split")
    print(HEADER)
    table = summarize(all_outcomes)
    for label, stats in table.items():
        print(_line((label[0], label[1], label[2]), stats))

    print("\n## Totals")
    print(HEADER)
    for label, stats in summarize(all_outcomes, lambda q: (q.dataset, "(all)", q.split)).items():
        print(_line((label[0], label[1], label[2]), stats))
    for label, stats in summarize(all_outcomes, lambda q: ("(all)", "(all)", q.split)).items():
        print(_line((label[0], label[1], label[2]), stats))
    overall = Stats()
    for stats in table.values():
        overall.merge(stats)
    print(_line(("(all)", "(all)", "(all)"), overall))

    def unanswered(outcome: Outcome) -> bool:
        return outcome.returned_kernel_id is None and outcome.query.expected_kernel_id is not None

    def wrong(outcome: Outcome) -> bool:
        return outcome.wrong

    lists: list[tuple[int, str, Callable[[Outcome], bool]]] = [
        (args.errors, "Wrong answers", wrong),
        (args.misses, "Positives left unanswered", unanswered),
    ]
    for flag, title, keep in lists:
        if not flag:
            continue
        print(f"\n## {title} (up to {flag} per dataset and family)")
        grouped: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
        for outcome in all_outcomes:
            if keep(outcome):
                grouped[(outcome.query.dataset, outcome.query.family)].append(outcome)
        for (dataset_name, family), outcomes in sorted(grouped.items()):
            print(f"\n### {dataset_name} / {family}: {len(outcomes)}")
            for outcome in _spread(outcomes, flag):
                print(_describe(datasets[dataset_name], outcome))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timing passes (median reported)")
    parser.add_argument("--dataset", action="append", choices=list(LOADERS), help="repeatable; default all")
    parser.add_argument("--family", action="append", help="repeatable; default all")
    parser.add_argument("--split", action="append", choices=["dev", "holdout"], help="default both")
    parser.add_argument("--errors", type=int, default=0, help="print up to N wrong answers per family")
    parser.add_argument("--misses", type=int, default=0, help="print up to N unanswered positives per family")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    parser.add_argument(
        "--distractors",
        type=int,
        default=0,
        help="add N generated organisations to each registry, matched through a memory-mapped snapshot",
    )
    main(parser.parse_args())
