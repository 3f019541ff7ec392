"""A large registry's import and shared index, on small generated data: streaming, re-import in place,
removal on request, parents and aliases, and the snapshot every process opens (and follows on re-import)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bench.registry_data import iter_organisations, write_registry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.registry import index_cache, service
from dossier.enrichment.registry.models import RegistryEntity
from dossier.enrichment.registry.service import kernel_id_for
from tests.conftest import REGISTRY_INDEX_DIR, dossier_env, run_cli

SOURCE = "generated"


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


async def _kernel_ids(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(RegistryEntity.source_key, RegistryEntity.kernel_id))
    return {key: kid for key, kid in rows}


async def test_import_streams_in_batches_and_keeps_parents_and_aliases(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    path = tmp_path / "orgs.jsonl"
    assert write_registry(path, 400, source=SOURCE) == 400
    seen: list[tuple[int, int]] = []
    async with sessionmaker() as session, session.begin():
        report = await service.import_file(
            session, path, batch_size=50, progress=lambda r: seen.append((r.bytes_read, r.rows))
        )
    assert (report.inserted, report.updated, report.rejected) == (400, 0, [])
    # Written batch by batch while the file is read, not after reading all of it.
    assert len(seen) >= 8 and seen[0][0] < seen[-1][0] == path.stat().st_size and seen[0][1] == 50
    records = list(iter_organisations(400, source=SOURCE))
    with_parent = [r for r in records if "parent_kernel_id" in r]
    with_aliases = [r for r in records if r.get("aliases")]
    assert with_parent and with_aliases
    async with sessionmaker() as session:
        ids = await _kernel_ids(session)
        for record in with_parent:
            child = await service.get_entity(session, ids[str(record["source_key"])])
            assert child is not None and child.parent_kernel_id == record["parent_kernel_id"]
            assert await service.get_entity(session, str(record["parent_kernel_id"])) is not None
        for record in with_aliases:
            entity = await service.get_entity(session, ids[str(record["source_key"])])
            assert entity is not None and entity.aliases == record["aliases"]
    assert all(ids[str(r["source_key"])] == kernel_id_for(SOURCE, str(r["source_key"])) for r in records)


async def test_reimport_updates_in_place_and_removes_only_when_asked(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    records = list(iter_organisations(120, source=SOURCE))
    async with sessionmaker() as session, session.begin():
        await service.import_file(session, _write(tmp_path / "a.jsonl", records))
        before = await _kernel_ids(session)
        generation = (await service.registry_generation(session))[0]
    kept = records[:100]
    kept[0] = {**kept[0], "name": "Renamed Example Holdings GmbH"}
    second = _write(tmp_path / "b.jsonl", kept)

    async with sessionmaker() as session, session.begin():
        report = await service.import_file(session, second)
    assert (report.inserted, report.updated, report.removed) == (0, 100, 0)
    async with sessionmaker() as session:
        assert await _kernel_ids(session) == before  # all 120 still there, same kernel_ids
        renamed = await service.get_entity(session, before[str(kept[0]["source_key"])])
        assert renamed is not None and renamed.name == "Renamed Example Holdings GmbH"
        assert (await service.registry_generation(session))[0] == generation + 1

    # A rejected row would count as gone: nothing is removed then.
    bad = _write(tmp_path / "c.jsonl", [*kept, {"source": SOURCE, "source_key": "X", "name": ""}])
    async with sessionmaker() as session, session.begin():
        report = await service.import_file(session, bad, remove_missing=True)
    assert report.removal_skipped and report.removed == 0 and len(report.rejected) == 1

    async with sessionmaker() as session, session.begin():
        report = await service.import_file(session, second, remove_missing=True)
    assert (report.inserted, report.updated, report.removed) == (0, 100, 20)
    async with sessionmaker() as session:
        after = await _kernel_ids(session)
        assert after == {k: v for k, v in before.items() if k in {str(r["source_key"]) for r in kept}}
        # Another source is never touched by a removal.
        assert await session.scalar(select(func.count()).select_from(RegistryEntity)) == 100


_PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    from dossier.db.engine import create_engine, create_sessionmaker
    from dossier.enrichment.registry import index_cache
    from dossier.settings import Settings

    async def main():
        engine = create_engine(Settings(database_url=sys.argv[1]))
        try:
            maker = create_sessionmaker(engine)
            index = await index_cache.current_index(maker)
            match = index.lookup(sys.argv[2], None, "FI")
            print(json.dumps({"built": sum(index_cache.BUILDS.values()), "size": len(index),
                              "match": match.kernel_id if match else None}))
        finally:
            await engine.dispose()

    asyncio.run(main())
    """
)


def _probe(database_url: str, name: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, database_url, name],
        env=dossier_env(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_processes_open_the_snapshot_the_import_built_and_follow_a_reimport(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = list(iter_organisations(150, source=SOURCE))
    ours = {"source": SOURCE, "source_key": "Q1", "name": "Quillfeather Orchards Oy", "country_code": "FI"}
    env = dossier_env(database_url, DOSSIER_REGISTRY_BUILTIN="false")
    result = run_cli("registry", "import", str(_write(tmp_path / "a.jsonl", [*records, ours])), env=env)
    assert result.returncode == 0, result.stderr
    assert "151 inserted" in result.stdout and "index snapshot:" in result.stderr
    first = {p.name for p in REGISTRY_INDEX_DIR.glob("registry-*.idx")}
    kernel_id = kernel_id_for(SOURCE, "Q1")

    # Another process opens the snapshot: it answers without building an index of its own.
    assert _probe(database_url, "Quillfeather Orchards") == {"built": 0, "size": 151, "match": kernel_id}

    async def follow() -> None:
        from dossier.db.engine import create_engine, create_sessionmaker
        from dossier.settings import Settings

        engine = create_engine(Settings(database_url=database_url))
        try:
            maker = create_sessionmaker(engine)
            builds = sum(index_cache.BUILDS.values())
            old = await index_cache.current_index(maker)
            assert old.lookup("Quillfeather Orchards", None, "FI") is not None
            renamed = {**ours, "name": "Quillfeather Harvest Oy"}
            again = run_cli(
                "registry", "import", str(_write(tmp_path / "b.jsonl", [*records, renamed])), env=env
            )
            assert again.returncode == 0 and "151 updated" in again.stdout, again.stderr
            # A long-running process notices the new generation at its next check (compressed to 0 s here).
            monkeypatch.setattr(index_cache, "_RECHECK_SECONDS", 0.0)
            new = await index_cache.current_index(maker)
            assert new is not old
            match = new.lookup("Quillfeather Harvest", None, "FI")
            assert match is not None and match.kernel_id == kernel_id
            assert new.lookup("Quillfeather Orchards", None, "FI") is None
            assert sum(index_cache.BUILDS.values()) == builds  # opened, never built here
        finally:
            await engine.dispose()

    asyncio.run(follow())
    second = {p.name for p in REGISTRY_INDEX_DIR.glob("registry-*.idx")}
    # The new generation's snapshot replaced the old one's.
    assert len(second - first) == 1 and len(first - second) == 1
    assert _probe(database_url, "Quillfeather Harvest") == {"built": 0, "size": 151, "match": kernel_id}
