"""The SQLite zoning file: folded beside the writer, caught up by each query, in chunks, and
folded again when it is ahead of the events file."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import sqlite3
import time
from pathlib import Path

import pytest
from test_zoning_records import check, commit, prepared
from test_zoning_store import forget_zoning, open_store
from zoning_data import DataSet

import server.store.sqlite_zoning_file as zoning_file_module
from server.store.sqlite import SqliteStore
from server.store.sqlite_folder import ZoningBehind
from server.store.sqlite_zoning_file import zoning_file
from server.zoning import ZoningQuery

# The rollups, which the same events give whatever the folds; not the day blocks, which
# depend on when each fold saw a later screenview (the queries check those).
ROLLUPS = (
    "zoning_users", "zoning_sessions", "zoning_tvps", "zoning_transactions", "zoning_gestures",
    "zoning_screenviews",
)  # fmt: skip


def zoning_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of the zoning file's rollups, and its mark."""
    with contextlib.closing(sqlite3.connect(zoning_file(str(path)))) as conn:
        rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall() for t in ROLLUPS}
        rows["mark"] = conn.execute("SELECT event_id, euid FROM zoning_folded").fetchall()
    return rows


async def test_replies_do_not_wait_for_the_fold_but_queries_do(tmp_path: Path) -> None:
    data = DataSet(seed=11, users=8)
    path = tmp_path / "z.db"
    store = await open_store(path)
    lock = os.open(f"{path}.zoning-lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as if another worker were folding
        # The group-commit path (POST /v1/batch): answered once durable, fold pending.
        results = await asyncio.gather(*(store.ingest(b) for b in prepared(data.batches)))
        assert sum(r.accepted for r in results) > 100
        assert zoning_rows(path)["mark"] == [(0, None)]
        query = asyncio.create_task(store.zoning(ZoningQuery(1, "Sales")))
        await asyncio.sleep(0.3)
        assert not query.done()  # it waits for the fold, which waits for the lock
        fcntl.flock(lock, fcntl.LOCK_UN)
        await query
        with contextlib.closing(sqlite3.connect(path)) as conn:
            last = conn.execute("SELECT rowid, euid FROM events ORDER BY rowid DESC LIMIT 1")
            assert zoning_rows(path)["mark"] == last.fetchall()
        assert await check(store, data, data.batches) > 5
    finally:
        os.close(lock)
        await store.close()


async def test_a_failed_fold_fails_the_query_not_the_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = DataSet(seed=12, users=8)
    store = await open_store(tmp_path / "z.db")
    try:
        with monkeypatch.context() as patch:

            def broken(conn: sqlite3.Connection, after: int, upto: int) -> None:
                raise sqlite3.OperationalError("database or disk is full")

            patch.setattr(zoning_file_module, "update_zoning", broken)
            results = await asyncio.gather(*(store.ingest(b) for b in prepared(data.batches)))
            assert sum(r.accepted for r in results) > 100
            with pytest.raises(ZoningBehind) as exc:
                await store.zoning(ZoningQuery(1, "Sales"))
            assert exc.value.status == 503
            assert str(exc.value) == (
                "The zoning tables could not be brought up to date with the stored events; "
                "the server log says why."
            )
        # The next fold takes every event the failed ones left.
        assert await check(store, data, data.batches) > 5
    finally:
        await store.close()


async def test_a_fold_holds_no_snapshot_of_the_events_file_while_it_folds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It copies what it folds and ends its read of the events file first: a checkpoint of
    the events file's WAL made meanwhile copies every frame, also one committed after the
    copy."""
    data = DataSet(seed=14, users=8)
    path = tmp_path / "z.db"
    store = await open_store(path)
    try:
        await store._commit_group(prepared(data.batches)[:5])  # stored, not folded yet
        seen: list[tuple[int, int, int]] = []
        fold_range = zoning_file_module.update_zoning

        def checkpoint_first(conn: sqlite3.Connection, after: int, upto: int) -> None:
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
                other.execute("CREATE TABLE IF NOT EXISTS probe (x)")  # a commit, now
                for _ in range(100):  # busy while the store's checkpointer runs one
                    outcome = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if outcome[0] == 0:
                        break
                    time.sleep(0.01)
                seen.append(outcome)
            fold_range(conn, after, upto)

        monkeypatch.setattr(zoning_file_module, "update_zoning", checkpoint_first)
        await store.zoning(ZoningQuery(1, "Sales"))  # it folds first
        [(busy, frames, copied)] = seen
        assert (busy, copied) == (0, frames) and frames > 0
        assert await check(store, data, data.batches[:5]) > 0
    finally:
        await store.close()


async def test_a_backlog_is_folded_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = DataSet(seed=13, users=8)
    path = tmp_path / "z.db"
    store = await open_store(path)
    await commit(store, data.batches, random.Random(13))
    await store.close()
    whole = zoning_rows(path)
    forget_zoning(path)
    ranges: list[tuple[int, int]] = []
    fold_range = zoning_file_module.update_zoning

    def spy(conn: sqlite3.Connection, after: int, upto: int) -> None:
        ranges.append((after, upto))
        fold_range(conn, after, upto)

    monkeypatch.setattr(zoning_file_module, "FOLD_CHUNK_EVENTS", 29)
    monkeypatch.setattr(zoning_file_module, "update_zoning", spy)
    store = await open_store(path)  # its warm-up folds the backlog
    try:
        stored = whole["mark"][0][0]
        assert ranges == [(a, min(a + 29, stored)) for a in range(0, stored, 29)]
        assert len(ranges) > 8
        assert zoning_rows(path) == whole  # the same rows as when folded commit by commit
        assert await check(store, data, data.batches) > 5
    finally:
        await store.close()


async def test_a_zoning_file_ahead_of_the_events_is_folded_again(tmp_path: Path) -> None:
    """A power cut can keep folds of commits the events file lost (the zoning file is not
    fsynced before replies, but the OS may have written it): the mark then names an event
    that is gone, or another event at its rowid."""
    data = DataSet(seed=14, users=8)
    path = tmp_path / "z.db"
    kept, lost = data.batches[: len(data.batches) // 2], data.batches[len(data.batches) // 2 :]
    store = await open_store(path)
    await commit(store, kept, random.Random(14))
    await store.close()
    expected = zoning_rows(path)
    store = await open_store(path)
    await store.ingest_group(prepared(lost))  # one transaction: then lost by the events file
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        (last_kept,) = conn.execute("SELECT max(batch_id) - ? FROM batches", (len(lost),))
        for table in ("events", "quarantine", "batches"):
            conn.execute(f"DELETE FROM {table} WHERE batch_id > ?", last_kept)
    assert zoning_rows(path) != expected
    store = await open_store(path)  # the mark's event is gone: folded again from the start
    try:
        assert zoning_rows(path) == expected
        assert await check(store, data, kept) > 5
    finally:
        await store.close()
    # Another event at the mark's rowid: also folded again.
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE events SET euid = 'another' WHERE rowid = ?", expected["mark"][0][:1])
    with contextlib.closing(sqlite3.connect(zoning_file(str(path)))) as conn, conn:
        conn.execute("DELETE FROM zoning_users")  # shows whether the fold starts again
    store = SqliteStore(str(path))
    await store.open()
    try:
        await store.warm_up()
        again = zoning_rows(path)
        assert again["mark"] == [(expected["mark"][0][0], "another")]
        assert again["zoning_users"] == expected["zoning_users"]
    finally:
        await store.close()


async def test_a_zoning_file_of_events_all_lost_is_emptied(tmp_path: Path) -> None:
    data = DataSet(seed=15, users=4)
    path = tmp_path / "z.db"
    store = await open_store(path)
    await commit(store, data.batches, random.Random(15))
    await store.close()
    assert zoning_rows(path)["zoning_users"]
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for table in ("events", "quarantine", "batches"):
            conn.execute(f"DELETE FROM {table}")
    store = await open_store(path)
    try:
        assert zoning_rows(path) == {table: [] for table in ROLLUPS} | {"mark": [(0, None)]}
        report = await store.zoning(ZoningQuery(1, "Sales"))
        assert (report.screenviews, report.zones) == (0, [])
    finally:
        await store.close()
