"""The SQLite writer's in-memory dedupe: exact under key collisions, across processes
(two stores on one file), and over the events of a database from before migration 6."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from support import load_fixture

import server.store.sqlite_dedupe as dedupe
import server.store.sqlite_schema as schema
from server.ingest import PreparedBatch, prepare_batch
from server.store.sqlite import SqliteStore
from server.store.sqlite_dedupe import DedupeIndex

T = TypeVar("T")

SKEW_LIMIT_MS = 10**15  # the seed batch's times are years old: no clamping here


def table(rows: list[tuple[int, str]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE events (event_id INTEGER PRIMARY KEY, pid INTEGER, euid TEXT)")
    conn.executemany("INSERT INTO events (pid, euid) VALUES (?, ?)", rows)
    return conn


def fresh(index: DedupeIndex, conn: sqlite3.Connection, ids: list[tuple[int, str]]) -> list:
    (top,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
    index.catch_up(conn, top)
    keep, _ = index.fresh(conn, [(*ident, "more columns") for ident in ids])
    return keep.tolist()


def test_stored_ids_and_earlier_copies_are_left_out() -> None:
    conn = table([(1, "a"), (1, "b"), (2, "c")])
    ids = [(1, "a"), (1, "new"), (2, "a"), (1, "new"), (2, "c"), (2, "a"), (1, "b")]
    assert fresh(DedupeIndex(), conn, ids) == [False, True, True, False, False, False, False]


def test_every_key_colliding_still_dedupes_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedupe, "hash", lambda euid: 7, raising=False)
    conn = table([(1, "a"), (1, "b")])
    ids = [(1, "c"), (1, "b"), (1, "c"), (1, "d"), (1, "a")]
    assert fresh(DedupeIndex(), conn, ids) == [True, False, False, True, False]


def test_a_commit_colliding_with_the_newest_keys_keeps_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The newest keys are a dict (one rowid per key): a committed key equal to one of them
    goes to the sorted levels instead, and both rowids stay candidates."""
    monkeypatch.setattr(dedupe, "hash", lambda euid: 7, raising=False)
    conn = table([])
    index = DedupeIndex()
    index.catch_up(conn, 0)
    for rowid, euid in enumerate(["a", "b", "c"], start=1):
        conn.execute("INSERT INTO events (pid, euid) VALUES (1, ?)", (euid,))
        index.committed(dedupe.event_keys([(1, euid)]), rowid)
    assert len(index) == 3 and index.covered == 3
    ids = [(1, "a"), (1, "b"), (1, "c"), (1, "d")]
    assert fresh(index, conn, ids) == [False, False, False, True]


def test_catch_up_adds_rows_appended_by_another_writer() -> None:
    conn = table([(1, "a")])
    index = DedupeIndex()
    assert fresh(index, conn, [(1, "a"), (1, "b")]) == [False, True]
    conn.execute("INSERT INTO events (pid, euid) VALUES (1, 'b')")
    assert fresh(index, conn, [(1, "a"), (1, "b")]) == [False, False]
    assert index.covered == 2 and len(index) == 2
    conn.execute("DELETE FROM events")  # max(rowid) falls below what it covers: rebuilt
    assert fresh(index, conn, [(1, "a"), (1, "b")]) == [True, True]
    assert index.covered == 0 and len(index) == 0


def test_a_check_while_catching_up_finds_what_was_stored_after_the_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer looks its events up before it takes the write lock, then checks them
    against the rows stored meanwhile: a key match alone (a collision) is not enough."""
    conn = table([(1, "a")])
    index = DedupeIndex()
    index.catch_up(conn, 1)
    events = [(1, "a", "x"), (1, "b", "x"), (2, "b", "x"), (1, "c", "x"), (1, "d", "x")]
    keep, keys = index.fresh(conn, events)
    assert keep.tolist() == [False, True, True, True, True]
    conn.executemany("INSERT INTO events (pid, euid) VALUES (?, ?)", [(1, "b"), (1, "e")])
    colliding = dedupe.event_keys([(1, "e")])[0]
    keys[3] = colliding  # (1, "c") now has the key of the stored (1, "e")
    index.catch_up(conn, 3, check=(events, keys, keep))
    assert keep.tolist() == [False, False, True, True, True]
    assert index.covered == 3 and len(index) == 3


def test_a_failed_update_after_a_commit_rebuilds_the_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = table([(1, "a")])
    index = DedupeIndex()
    assert fresh(index, conn, [(1, "b")]) == [True]
    conn.execute("INSERT INTO events (pid, euid) VALUES (1, 'b')")
    with monkeypatch.context() as patch:
        patch.setattr(index, "add", lambda keys, rows: (_ for _ in ()).throw(MemoryError()))
        index.committed(np.zeros(1, dtype=np.uint64), 2)  # logged, not raised
    assert index.covered is None
    assert fresh(index, conn, [(1, "a"), (1, "b"), (1, "c")]) == [False, False, True]
    assert index.covered == 2 and len(index) == 2


class Inline(Executor):
    """Runs each merge at once, in the caller; the first `fail` merges raise MemoryError."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.merges = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        self.merges += 1
        if self.merges <= self.fail:
            future.set_exception(MemoryError())
        else:
            future.set_result(fn(*args, **kwargs))
        return future


class Gated(Executor):
    """Runs each merge on a thread of its own once `gate` is set."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()

        def run() -> None:
            self.gate.wait()
            future.set_result(fn(*args, **kwargs))

        threading.Thread(target=run, daemon=True).start()
        return future


def commit_more(
    index: DedupeIndex, conn: sqlite3.Connection, stored: list[tuple[int, str]], commits: int
) -> None:
    """`commits` commits of 7 new events each, each checked against all events stored
    before (`stored`, which they join)."""
    for _ in range(commits):
        ids = [(1 + i % 3, f"e{len(stored) + i}") for i in range(7)]
        assert fresh(index, conn, ids + stored) == [True] * 7 + [False] * len(stored)
        first = conn.execute("SELECT coalesce(max(rowid), 0) + 1 FROM events").fetchone()[0]
        conn.executemany("INSERT INTO events (pid, euid) VALUES (?, ?)", ids)
        index.committed(dedupe.event_keys(ids), first)
        stored += ids


def new_index(merges: Executor | None = None) -> tuple[DedupeIndex, sqlite3.Connection]:
    conn = table([])
    index = DedupeIndex() if merges is None else DedupeIndex(merges)
    index.catch_up(conn, 0)
    return index, conn


@pytest.fixture
def small_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dicts sealed past 10 keys (two commits of 7), the middle level merged past 20."""
    monkeypatch.setattr(dedupe, "MIN_MIDDLE", 20)
    monkeypatch.setattr(dedupe, "NEWEST_MAX", 10)


@pytest.mark.usefixtures("small_levels")
def test_keys_stay_found_across_merges_of_the_levels() -> None:
    merges = Inline()
    index, conn = new_index(merges)
    stored: list[tuple[int, str]] = []
    commit_more(index, conn, stored, 12)
    assert index.covered == 84 and len(index) == 84
    # Every second commit seals the dict; each merge is swapped in by the next commit, and
    # every second one merges the middle level into the base. The last waits for a commit.
    assert merges.merges == 6 and not index._newest and len(index._sealed) == 1
    assert (index._base.keys.size, index._middle.keys.size) == (56, 14)
    assert fresh(DedupeIndex(merges), conn, stored) == [False] * 84  # rebuilt from the table


@pytest.mark.usefixtures("small_levels")
def test_keys_stay_found_across_merges_on_the_merge_thread() -> None:
    index, conn = new_index()  # the process's merge thread
    stored: list[tuple[int, str]] = []
    commit_more(index, conn, stored, 30)
    assert index.covered == 210 and len(index) == 210
    assert fresh(index, conn, stored + [(1, "new")]) == [False] * 210 + [True]


@pytest.mark.usefixtures("small_levels")
def test_commits_go_on_while_a_merge_runs() -> None:
    merges = Gated()
    index, conn = new_index(merges)
    stored: list[tuple[int, str]] = []
    commit_more(index, conn, stored, 6)  # the first merge waits at the gate
    merging = index._merging
    assert merging is not None and len(index._sealed) == 3 and len(index) == 42
    merges.gate.set()
    merging[0].result(timeout=10)
    commit_more(index, conn, stored, 1)  # swaps the first merge in, starts the next
    assert len(index._sealed) == 2 and index._middle.keys.size == 14 and len(index) == 49
    assert fresh(index, conn, stored + [(1, "new")]) == [False] * 49 + [True]


@pytest.mark.usefixtures("small_levels")
def test_a_failed_merge_keeps_the_sealed_keys_and_is_tried_again() -> None:
    merges = Inline(fail=1)
    index, conn = new_index(merges)
    stored: list[tuple[int, str]] = []
    commit_more(index, conn, stored, 3)  # 14 keys sealed; their merge failed
    assert merges.merges == 1 and len(index._sealed) == 1 and index._merging is None
    assert index._base.keys.size == index._middle.keys.size == 0
    assert fresh(index, conn, stored) == [False] * 21
    commit_more(index, conn, stored, 2)  # the next seal merges both sealed dicts
    assert merges.merges == 2 and not index._sealed and index._base.keys.size == 28
    assert len(index) == 35 and fresh(index, conn, stored) == [False] * 35


def seed_body(suffix: str) -> bytes:
    batch = load_fixture("batches/seed_batch.json")
    for event in batch["pl"]:
        event["euid"] += suffix
    return json.dumps(batch).encode()


def prepared(suffix: str) -> PreparedBatch:
    return prepare_batch(
        seed_body(suffix), max_events=1000, received_ms=1522159618000,
        skew_limit_ms=SKEW_LIMIT_MS,
    )  # fmt: skip


def counts(results: list) -> list[tuple[int, int]]:
    return [(r.accepted, r.duplicates) for r in results]


@contextlib.asynccontextmanager
async def two_writers(path: str) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    """Two stores on one file, as two worker processes have."""
    first, second = SqliteStore(path), SqliteStore(path)
    await first.open()
    await second.open()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def copies_per_euid(path: str) -> tuple[int, set[int]]:
    """How many distinct euids are stored, and the set of their copy counts."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT euid, count(*) FROM events GROUP BY euid").fetchall()
    return len(rows), {n for _, n in rows}


async def test_two_writers_on_one_file_see_each_others_events(tmp_path: Path) -> None:
    path = str(tmp_path / "two.db")
    async with two_writers(path) as (first, second):
        assert counts(await first.ingest_group([prepared("-1")])) == [(11, 0)]
        assert counts(await second.ingest_group([prepared("-1"), prepared("-2")])) == [
            (0, 11), (11, 0),
        ]  # fmt: skip
        assert counts(await first.ingest_group([prepared("-2"), prepared("-3")])) == [
            (0, 11), (11, 0),
        ]  # fmt: skip
    assert copies_per_euid(path) == (33, {1})


async def test_a_batch_another_writer_stores_while_this_one_waits_for_the_lock_is_a_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer looks its events up before it takes the write lock; the other process may
    commit the same batch (a client's retry) before it gets the lock."""
    path = str(tmp_path / "race.db")
    async with two_writers(path) as (first, second):
        waits = first._writer_lock.held

        @contextlib.contextmanager
        def held_once_the_other_committed() -> Iterator[None]:
            assert counts(second._commit([prepared("-1")])) == [(11, 0)]
            with waits():
                yield

        monkeypatch.setattr(first._writer_lock, "held", held_once_the_other_committed)
        assert counts(await first._commit_group([prepared("-1"), prepared("-2")])) == [
            (0, 11), (11, 0),
        ]  # fmt: skip
    assert copies_per_euid(path) == (22, {1})


async def test_a_group_holding_a_batch_twice_stores_it_once(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "twice.db"))
    await store.open()
    try:
        group = [prepared("-x"), prepared("-y"), prepared("-x")]
        assert counts(await store.ingest_group(group)) == [(11, 0), (11, 0), (0, 11)]
        assert counts(await store.ingest_group([prepared("-y")])) == [(0, 11)]
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "twice.db")
    assert conn.execute("SELECT count(*), count(DISTINCT euid) FROM events").fetchone() == (22, 22)
    assert conn.execute("SELECT DISTINCT batch_id FROM events ORDER BY 1").fetchall() == [
        (1,), (2,),
    ]  # fmt: skip


async def test_migration_6_keeps_the_rows_and_their_rowids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "v5.db")
    with monkeypatch.context() as patch:  # a database of before migration 6
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:5])
        patch.setattr(
            schema, "INSERT_EVENT", (schema.INSERT_EVENT[0], "ON CONFLICT (pid, euid) DO NOTHING")
        )
        conn = sqlite3.connect(path, isolation_level=None)
        assert schema.migrate(conn) == 5
        conn.close()
        old = SqliteStore(path)
        await old.open()
        await old.ingest_group([prepared("-old")])
        await old.close()
    conn = sqlite3.connect(path)
    before = conn.execute("SELECT rowid, * FROM events ORDER BY rowid").fetchall()
    assert [name for _, name, *_ in conn.execute("PRAGMA index_list(events)")] == [
        "sqlite_autoindex_events_1"
    ]
    conn.close()
    assert len(before) == 11

    store = SqliteStore(path)
    await store.open()
    try:
        await store.warm_up()  # what the server does before serving
        assert len(store._dedupe) == 11 and store._dedupe.covered == before[-1][0]
        assert counts(await store.ingest_group([prepared("-old"), prepared("-new")])) == [
            (0, 11), (11, 0),
        ]  # fmt: skip
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT * FROM events WHERE batch_id = 1 ORDER BY rowid").fetchall() == (
        before
    )
    assert conn.execute("PRAGMA index_list(events)").fetchall() == []
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (7,)
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (22,)
