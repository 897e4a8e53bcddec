"""SQLite commits return before their fsync: a reply still waits for it, and after a failed
fsync nothing more is acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from databases import TestDatabase
from support import load_fixture, start_service
from test_sqlite_dedupe import prepared

import server.store.sqlite_sync as sqlite_sync
from server import keys
from server.store.sqlite import SqliteStore
from server.store.sqlite_sync import NotDurable, WalSync

NOT_SYNCED = "The database could not be synced to disk; the server must be restarted."


def stored(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


class HeldFsyncs:
    """Every fsync waits for `release` (`running` is set once one has started); the paths
    synced, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.running, self.release = threading.Event(), threading.Event()
        self.synced: list[str] = []
        real_fsync = sqlite_sync.fsync_path

        def held(name: str) -> None:
            self.running.set()
            self.release.wait(10)
            real_fsync(name)
            self.synced.append(name)

        monkeypatch.setattr(sqlite_sync, "fsync_path", held)


@contextlib.asynccontextmanager
async def store_with_held_fsyncs(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SqliteStore, HeldFsyncs]]:
    store = SqliteStore(str(path))
    await store.open()
    fsyncs = HeldFsyncs(monkeypatch)
    try:
        yield store, fsyncs
    finally:
        fsyncs.release.set()
        await store.close()


async def test_the_reply_waits_for_the_fsync_after_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sync.db"
    async with store_with_held_fsyncs(path, monkeypatch) as (store, fsyncs):
        release, synced = fsyncs.release, fsyncs.synced
        reply = asyncio.ensure_future(store.ingest(prepared("-a")))
        for _ in range(200):  # committed: readers see it...
            if stored(path) == 11:
                break
            await asyncio.sleep(0.01)
        assert stored(path) == 11
        await asyncio.sleep(0.05)
        assert not reply.done() and synced == []  # ...but nobody is answered before the fsync
        release.set()
        result = await asyncio.wait_for(reply, 10)
        assert (result.accepted, result.duplicates) == (11, 0)
        assert synced == [f"{path}-wal"]


async def test_the_commits_made_while_an_fsync_runs_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "share.db"
    async with store_with_held_fsyncs(path, monkeypatch) as (store, fsyncs):
        running, release, synced = fsyncs.running, fsyncs.release, fsyncs.synced
        first = asyncio.ensure_future(store.ingest(prepared("-a")))
        assert await asyncio.to_thread(running.wait, 10)  # its fsync runs, held
        for n in "bcd":  # three more commits (groups) meanwhile
            await store._commit_group([prepared(f"-{n}")])
        assert stored(path) == 44 and synced == []
        release.set()
        result = await asyncio.wait_for(first, 10)
        assert (result.accepted, result.duplicates) == (11, 0)
        await asyncio.wait_for(store._wal.last(), 10)  # the fsync after the last commit
        assert synced == [f"{path}-wal"] * 2  # the first commit's, then one for the others


async def test_after_a_failed_fsync_no_write_is_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = TestDatabase("sqlite", path=tmp_path / "tapzone.db")
    client, app = await start_service(database)
    try:
        project = (await app[keys.STORE].list_projects())[0]
        headers = {
            "Authorization": f"Bearer {project.ingest_key}",
            "Content-Type": "application/json",
        }
        body = json.dumps(load_fixture("batches/seed_batch.json"))
        calls: list[str] = []

        def failing_fsync(name: str) -> None:
            calls.append(name)
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(sqlite_sync, "fsync_path", failing_fsync)
        for _ in range(2):
            resp = await client.post("/v1/batch", data=body, headers=headers)
            assert resp.status == 503
            assert await resp.json() == {"status": 503, "error": NOT_SYNCED}
        assert len(calls) == 1  # not tried again: the first failure stands until a restart
        resp = await client.get("/healthz")
        assert resp.status == 503
        with pytest.raises(NotDurable, match=NOT_SYNCED):
            await app[keys.STORE].create_project("after")
        assert len(calls) == 1
    finally:
        await client.close()
    assert stored(tmp_path / "tapzone.db") == 11  # committed, but never acknowledged


def test_without_a_wal_file_the_database_file_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()  # rollback journal
    synced: list[str] = []
    real_fsync = sqlite_sync.fsync_path

    def recording_fsync(name: str) -> None:
        real_fsync(name)
        synced.append(name)

    monkeypatch.setattr(sqlite_sync, "fsync_path", recording_fsync)
    wal = WalSync(str(path))
    try:
        wal.sync_now()
    finally:
        wal.close()
    assert synced == [str(path)] and not wal.failed
