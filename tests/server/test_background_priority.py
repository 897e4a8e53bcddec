"""The store's background work (folds after commits, checkpoints, dedupe merges) runs at a
lower CPU priority; a fold that lags, and a query's fold, at normal priority."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from test_sqlite_dedupe import prepared

import server.store.sqlite_folder as folder_module
import server.store.sqlite_zoning_file as zoning_file_module
from server.store.background import BACKGROUND_NICE, lower_priority
from server.store.sqlite import SqliteStore
from server.store.sqlite_dedupe import _MERGES
from server.store.sqlite_zoning_file import zoning_file
from server.zoning import ZoningQuery

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="nice is per thread on Linux only"
)


def nice() -> int:
    """The calling thread's nice value."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_lower_priority_lowers_the_calling_thread_only() -> None:
    seen: list[tuple[int, int]] = []

    def run() -> None:
        before = nice()
        lower_priority()
        seen.append((before, nice()))

    main = nice()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [(main, min(19, main + BACKGROUND_NICE))]
    assert nice() == main


def test_dedupe_merges_run_at_lower_priority() -> None:
    assert _MERGES.submit(nice).result() == min(19, nice() + BACKGROUND_NICE)


async def test_folds_after_commits_are_niced_until_they_lag_and_queries_never_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_module, "FOLD_DELAY_S", 3600.0)  # no timer fold in the test
    store = SqliteStore(str(tmp_path / "p.db"))
    await store.open()
    try:
        await store.ingest_group([prepared("-1")])  # stored and folded: 11 events
        folder = store._folder
        assert folder.lag == 0
        seen: list[tuple[str, int]] = []

        def spy(real: Callable[[sqlite3.Connection], int]) -> Callable[..., int]:
            def fold(conn: sqlite3.Connection) -> int:
                seen.append((real.__name__, nice()))
                return real(conn)

            return fold

        monkeypatch.setattr(folder_module, "fold", spy(zoning_file_module.fold))
        monkeypatch.setattr(folder_module, "fold_all", spy(zoning_file_module.fold_all))
        monkeypatch.setattr(folder_module, "FOLD_LAG_EVENTS", 15)
        main = nice()

        await store._commit_group([prepared("-2")])  # 11 waiting: under the lag limit
        assert folder.lag == 11
        assert folder.start(urgent=False).result() == 11
        assert seen == [("fold", min(19, main + BACKGROUND_NICE))] and folder.lag == 0

        await store._commit_group([prepared("-3"), prepared("-4")])  # 22 waiting: past it
        assert folder.lag == 22
        assert folder.start(urgent=False).result() == 22
        assert seen[1:] == [("fold_all", main)] and folder.lag == 0

        await store._commit_group([prepared("-5")])
        await store.zoning(ZoningQuery(1, "Sales"))  # a query's fold
        assert seen[2:] == [("fold_all", main)] and folder.lag == 0
        with contextlib.closing(sqlite3.connect(zoning_file(str(tmp_path / "p.db")))) as conn:
            assert conn.execute("SELECT event_id FROM zoning_folded").fetchall() == [(55,)]
    finally:
        await store.close()


async def test_checkpoints_run_at_lower_priority(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "c.db"))
    await store.open()
    try:
        await store.ingest_group([prepared("-1")])  # both checkpoint threads have run since
        niced = min(19, nice() + BACKGROUND_NICE)
        for checkpointer in (store._checkpointer, store._folder._checkpointer):
            tid = checkpointer._thread.native_id
            assert tid is not None and os.getpriority(os.PRIO_PROCESS, tid) == niced
    finally:
        await store.close()
