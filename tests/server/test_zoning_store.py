"""Zoning rollups in both stores: any arrival order and grouping; SQLite's backfill."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from databases import TestDatabase
from test_zoning import assert_same
from zoning_data import (
    SKEW_LIMIT_MS,
    TARGET_MAP,
    Batch,
    DataSet,
    reference_report,
    stored_events,
)

from server.ingest import prepare_batch
from server.store import sqlite_schema as schema
from server.store.base import Store
from server.store.sqlite import SqliteStore
from server.store.sqlite_schema import MIGRATIONS
from server.store.sqlite_zoning_file import zoning_file
from server.zoning import ZoningQuery, ZoningReport

SCREENS = ("Home", "Sales", "Cart", "Product detail", "/settings/main")
PERIODS = ((None, None), (date(2024, 3, 2), date(2024, 3, 4)), (date(2024, 3, 5), None))


def as_json(report: ZoningReport) -> dict:
    import msgspec

    return json.loads(msgspec.json.encode(report))


async def open_store(path: Path | TestDatabase) -> Store:
    store = SqliteStore(str(path)) if isinstance(path, Path) else path.store()
    await store.open()
    await store.warm_up()  # what the server does before serving
    if not await store.list_projects():
        await store.create_project("main", pid=1)
        await store.create_project("other", pid=2)
    return store


async def commit_in_groups(store: Store, batches: list[Batch], rng: random.Random) -> None:
    """Every group of batches is one transaction (as group commit makes them)."""
    prepared = [
        prepare_batch(
            json.dumps(b.body).encode(),
            max_events=1000,
            received_ms=b.received_ms,
            skew_limit_ms=SKEW_LIMIT_MS,
        )
        for b in batches
    ]
    start = 0
    while start < len(prepared):
        size = rng.choice((1, 1, 2, 5, 17))
        await store.ingest_group(prepared[start : start + size])
        start += size


async def check_all(store: Store, data: DataSet, target_map: dict) -> int:
    events = stored_events(data.batches, data.screens)
    checked = 0
    for screen in SCREENS:
        for from_day, to_day in PERIODS:
            for av, dt in ((None, None), ("2.4.0", None), (None, 5)):
                query = ZoningQuery(1, screen, from_day, to_day, av, dt)
                want = reference_report(
                    events, target_map, pid=1, screen=screen, from_day=from_day,
                    to_day=to_day, av=av, dt=dt,
                )  # fmt: skip
                assert_same(as_json(await store.zoning(query)), want)
                checked += bool(want["zones"])
    return checked


@pytest.mark.parametrize("seed", range(8))
async def test_any_order_and_grouping_gives_the_reference(
    new_database: Callable[[], TestDatabase], seed: int
) -> None:
    data = DataSet(seed=seed, users=10)
    rng = random.Random(seed)
    rng.shuffle(data.batches)  # retries may now come before the first copy, or with it
    database = new_database()
    store = await open_store(database)
    try:
        await commit_in_groups(store, data.batches, rng)
        database.execute_many(
            "INSERT INTO target_map VALUES (1, ?, ?, ?, ?, ?)",
            [(*k, *v) for k, v in TARGET_MAP.items()],
        )
        assert await check_all(store, data, TARGET_MAP) > 10
    finally:
        await store.close()


@pytest.mark.parametrize("seed", range(3))
async def test_two_writers_at_once_give_the_reference(
    new_database: Callable[[], TestDatabase], seed: int
) -> None:
    """Two stores on one database, as two worker processes have: every batch goes to either
    one (retries to both), their groups commit concurrently, and nothing is lost or doubled."""
    data = DataSet(seed=seed, users=10)
    rng = random.Random(seed)
    rng.shuffle(data.batches)
    database = new_database()
    first = await open_store(database)
    second = await open_store(database)
    try:
        halves: tuple[list[Batch], list[Batch]] = ([], [])
        for batch in data.batches:
            halves[rng.randrange(2)].append(batch)
        await asyncio.gather(
            commit_in_groups(first, halves[0], random.Random(seed)),
            commit_in_groups(second, halves[1], random.Random(seed + 1)),
        )
        events = stored_events(data.batches, data.screens)
        assert database.query("SELECT count(*) FROM events") == [(len(events),)]
        assert await check_all(second, data, {}) > 10
    finally:
        await first.close()
        await second.close()


def forget_zoning(path: Path) -> None:
    """Remove the zoning file, as if it had been lost: a store folds the events again."""
    for suffix in ("", "-wal", "-shm"):
        Path(zoning_file(str(path)) + suffix).unlink(missing_ok=True)


async def store_all(path: Path, data: DataSet, seed: int) -> None:
    store = await open_store(path)
    await commit_in_groups(store, data.batches, random.Random(seed))
    await store.close()


async def check_reopened(path: Path, data: DataSet) -> None:
    """A store opened again on `path` (its warm-up folds what the zoning file lacks) gives
    the reference's answers."""
    store = await open_store(path)
    try:
        assert await check_all(store, data, {}) > 10
    finally:
        await store.close()


async def test_a_lost_zoning_file_is_folded_again(tmp_path: Path) -> None:
    data = DataSet(seed=3, users=12)
    path = tmp_path / "z.db"
    await store_all(path, data, 3)
    forget_zoning(path)
    await check_reopened(path, data)


async def test_a_database_from_before_zoning_ends_with_the_zoning_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations 2-6 over events stored before them (the zoning tables built in the events
    file, then converted), then migration 7: those tables gone, the zoning file folded."""
    data = DataSet(seed=5, users=12)
    path = tmp_path / "z.db"
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        await store_all(path, data, 5)
    forget_zoning(path)
    await check_reopened(path, data)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (7,)
    assert not {t for t in tables if t.startswith("zoning")}
    assert {"events", "target_map", "snapshots"} <= tables


def test_the_zoning_migration_is_number_two() -> None:
    versions = [version for version, _ in MIGRATIONS]
    assert versions[:2] == [1, 2]
    assert "CREATE TABLE IF NOT EXISTS target_map" in dict(MIGRATIONS)[2]
