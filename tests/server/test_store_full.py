"""A full disk: the write is rolled back whole and answered 503 with Retry-After, logged in
one line, and ingest works again once there is room; on both backends."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import asyncpg
import pytest
from support import Service, load_fixture
from test_snapshots import post_snapshot

from server import keys
from server.store import sqlite_checkpoint
from server.store.base import RETRY_WHEN_FULL_S
from server.store.sqlite import SqliteStore
from server.store.sqlite_checkpoint import Checkpointer

FULL = {
    "status": 503,
    "error": "The database has no space left; nothing of this request was stored. Retry later.",
}


def cap_pages(store: SqliteStore, full: bool) -> None:
    """Cap the database at its size now (SQLite answers SQLITE_FULL past it, as on a full
    disk), or lift the cap."""
    conn = store._conn()
    if full:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")
    else:
        conn.execute("PRAGMA max_page_count = 4294967294")


async def test_a_full_database_answers_503_and_takes_the_batch_once_there_is_room(
    service: Service, seed_batch: dict, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    store = service.app[keys.STORE]
    if isinstance(store, SqliteStore):
        await store._in_writer(cap_pages, store, True)
    else:  # what asyncpg raises when PostgreSQL cannot extend a file (SQLSTATE 53100)
        commit = store._commit

        async def full(batches: object) -> object:
            raise asyncpg.DiskFullError("could not extend file: No space left on device")

        monkeypatch.setattr(store, "_commit", full)
    seed_batch["padding"] = "x" * 200_000  # ignored, but stored in the raw body: new pages
    batches_before = service.query("SELECT count(*) FROM batches")
    resp = await service.post_batch(seed_batch)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == str(RETRY_WHEN_FULL_S) == "60"
    assert await resp.json() == FULL
    assert service.query("SELECT count(*) FROM batches") == batches_before
    assert service.query("SELECT count(*) FROM events") == [(0,)]
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.getMessage(), r.exc_info) for r in failures] == [
        (f"group commit of 1 items failed: {FULL['error']}", None)
    ]
    # Room again: the same batch is stored, once.
    if isinstance(store, SqliteStore):
        await store._in_writer(cap_pages, store, False)
    else:
        monkeypatch.setattr(store, "_commit", commit)
    resp = await service.post_batch(seed_batch)
    assert await resp.json() == {"accepted": 11, "duplicates": 0, "rejected": []}
    assert service.query("SELECT count(*) FROM events") == [(11,)]


def test_a_checkpoint_that_keeps_failing_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = [sqlite3.OperationalError("database or disk is full")] * 3 + [None]
    tried = threading.Semaphore(0)

    class Connection:  # a checkpoint connection whose first three checkpoints fail
        def execute(self, sql: str) -> Connection:
            if "wal_checkpoint" in sql:
                tried.release()
                if (outcome := outcomes.pop(0)) is not None:
                    raise outcome
            return self

        def fetchone(self) -> tuple[int, int, int]:
            return (0, 0, 0)

        def close(self) -> None:
            pass

    monkeypatch.setattr(sqlite_checkpoint.sqlite3, "connect", lambda *a, **k: Connection())
    caplog.set_level(logging.INFO, logger="server.store.sqlite_checkpoint")
    checkpointer = Checkpointer(str(tmp_path / "t.db"))
    checkpointer.start()
    try:
        for _ in range(4):
            checkpointer.poke()
            assert tried.acquire(timeout=5)
    finally:
        checkpointer.close()
    assert [(r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        ("WAL checkpoint failed; the writer's backstop takes over", True),
        ("WAL checkpoints succeed again", False),
    ]


async def test_a_snapshot_on_a_full_database_answers_503(service: Service) -> None:
    store = service.app[keys.STORE]
    if isinstance(store, SqliteStore):
        await store._in_writer(cap_pages, store, True)
    else:  # PostgreSQL cannot extend the snapshots table
        service.database.full_on_insert("snapshots")
    snapshot = load_fixture("snapshots/seed_restoration.json")
    snapshot["padding"] = "x" * 200_000  # stored in the raw body: new pages
    resp = await post_snapshot(service, snapshot)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "60"
    assert await resp.json() == FULL
    assert service.query("SELECT count(*) FROM snapshots") == [(0,)]
