"""A registry of a million organisations: import, index snapshot, lookups/s, and processes sharing it.

    .venv/bin/python bench/registry.py --db sqlite+aiosqlite:////tmp/reg.db --file /tmp/reg_1m.jsonl
        [--count 1000000] [--skip-import] [--queries 2000] [--runs 3] [--processes 1,4]

Generates the file (bench/registry_data.py) if it is missing, imports it (one transaction, as
``dossier registry import`` does), builds the index snapshot, then measures lookups/s through the snapshot in
this process, and starts 1 and then 4 fresh processes that each open the registry's index and answer: the
time from the process start to its first answer, lookups/s, and memory (RSS, and USS: the pages private to
the process; the snapshot's pages are shared through the page cache). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.registry_data import DEFAULT_SOURCE, SEED, iter_organisations, write_registry
from dossier.db.lifecycle import open_database
from dossier.enrichment.registry import index_cache, service
from dossier.settings import Settings


def queries(count: int, registry_size: int) -> list[tuple[str, str | None]]:
    """(name, country) queries about organisations of the registry: as written, without the legal form,
    with a typo, or lower-cased; a third with the country."""
    rng = random.Random(SEED + 7)
    # Every fifth of the first organisations: generating all of a million to spread them costs a minute.
    step = 5 if registry_size >= 5 * count else 1
    out: list[tuple[str, str | None]] = []
    for number, record in enumerate(iter_organisations(registry_size)):
        if number % step:
            continue
        name = str(record["name"])
        kind = rng.random()
        if kind < 0.25:
            name = name.rsplit(" ", 1)[0]
        elif kind < 0.5 and len(name) > 8:
            cut = rng.randrange(1, len(name) - 1)
            name = name[:cut] + name[cut + 1 :]
        elif kind < 0.75:
            name = name.lower()
        out.append((name, str(record["country_code"]) if rng.random() < 0.33 else None))
        if len(out) >= count:
            break
    return out


def _memory() -> dict[str, int]:
    """RSS, PSS and USS (private) of this process in MB, from /proc/self/smaps_rollup."""
    values: dict[str, int] = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
            values[parts[0][:-1]] = int(parts[1])
    private = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return {
        "rss_mb": values.get("Rss", 0) // 1024,
        "pss_mb": values.get("Pss", 0) // 1024,
        "uss_mb": private // 1024,
    }


def child(database_url: str, started: float, count: int, registry_size: int) -> None:
    """One worker-like process: open the registry's index, answer, report (JSON on stdout)."""

    async def run() -> dict[str, Any]:
        settings = Settings(database_url=database_url, registry_builtin=False)
        async with open_database(settings, migrate=False) as maker:
            index = await index_cache.current_index(maker)
            index.lookup("Haintdiova Wijaiseo Polymers GmbH", None, "DE")
            first = time.time() - started
            first_cpu = time.process_time()
            asked = queries(count, registry_size)
            # What `dossier serve` and `dossier worker` do once started (cli._freeze_startup_objects).
            gc.collect()
            gc.freeze()
            begin, cpu = time.perf_counter(), time.process_time()
            answered = sum(1 for name, country in asked if index.lookup(name, None, country) is not None)
            rate = len(asked) / (time.perf_counter() - begin)
            return {
                "first_answer_s": round(first, 2),
                "cpu_to_first_answer_s": round(first_cpu, 2),
                "lookups_per_s": round(rate),
                "lookups_per_cpu_s": round(len(asked) / (time.process_time() - cpu)),
                "answered": answered,
                "built": sum(index_cache.BUILDS.values()),
                **_memory(),
            }

    print(json.dumps(asyncio.run(run())))


def processes(database_url: str, number: int, count: int, registry_size: int) -> list[dict[str, Any]]:
    started = time.time()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                str(started),
                "--db",
                database_url,
                "--queries",
                str(count),
                "--count",
                str(registry_size),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(number)
    ]
    return [json.loads(p.communicate()[0]) for p in procs]


async def import_and_index(database_url: str, path: Path) -> tuple[float, float, service.ImportReport]:
    settings = Settings(database_url=database_url, registry_builtin=False)
    async with open_database(settings, migrate=True) as maker:
        start = time.perf_counter()
        async with maker() as session, session.begin():
            report = await service.import_file(session, path)
        imported = time.perf_counter() - start
        start = time.perf_counter()
        await index_cache.ensure_snapshot(maker)
        return imported, time.perf_counter() - start, report


def main(args: argparse.Namespace) -> None:
    print(f"# Registry bench, {time.strftime('%Y-%m-%d %H:%M')} UTC")
    print(
        f"nproc {len(os.sched_getaffinity(0))}, load average {os.getloadavg()}, database {args.db.split('://')[0]}"
    )
    if not args.skip_import:
        if not args.file.exists():
            start = time.perf_counter()
            write_registry(args.file, args.count, source=DEFAULT_SOURCE)
            print(f"generated {args.count:,} organisations in {time.perf_counter() - start:.1f} s")
        imported, indexed, report = asyncio.run(import_and_index(args.db, args.file))
        print(
            f"import: {report.rows:,} rows ({report.inserted:,} inserted, {report.updated:,} updated) in "
            f"{imported:.1f} s ({report.rows / imported:,.0f} rows/s); snapshot built in {indexed:.1f} s"
        )

    async def open_index() -> Any:
        settings = Settings(database_url=args.db, registry_builtin=False)
        async with open_database(settings, migrate=False) as maker:
            start = time.perf_counter()
            index = await index_cache.current_index(maker)
            return index, time.perf_counter() - start

    index, opened = asyncio.run(open_index())
    print(f"index: {len(index):,} organisations, opened in {opened * 1000:.0f} ms (snapshot already built)")
    asked = queries(args.queries, args.count)
    gc.collect()
    gc.freeze()
    for name, country in asked[:200]:
        index.lookup(name, None, country)
    rates, cpu_rates = [], []
    for _ in range(args.runs):
        start, cpu = time.perf_counter(), time.process_time()
        for name, country in asked:
            index.lookup(name, None, country)
        rates.append(len(asked) / (time.perf_counter() - start))
        cpu_rates.append(len(asked) / (time.process_time() - cpu))
    # On a shared machine the wall clock counts other programs' turns; CPU time counts this process's only.
    print(
        f"lookups/s, one process, {len(asked):,} queries: median {statistics.median(rates):,.0f} by the wall "
        f"clock (runs: {', '.join(f'{r:,.0f}' for r in rates)}), {statistics.median(cpu_rates):,.0f} per "
        f"CPU-second; load average {os.getloadavg()}"
    )
    for number in args.processes:
        results = processes(args.db, number, args.queries, args.count)
        print(f"{number} process(es), load average {os.getloadavg()}:")
        for result in results:
            print("  " + json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--file", type=Path, default=Path("/tmp/registry_1m.jsonl"))
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--skip-import", action="store_true", help="the database already holds the file")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=lambda v: [int(x) for x in v.split(",")], default=[1, 4])
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.child is not None:
        child(parsed.db, parsed.child, parsed.queries, parsed.count)
    else:
        main(parsed)
