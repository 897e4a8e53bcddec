"""The zoning fold in a process of its own (server.store.sqlite_fold_process): it folds what
the server processes commit, they leave their commits to it while it holds its lock, a second
one waits and takes over, and it stops with its parent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from databases import TestDatabase
from serving import FOLD_PROCESS, ROOT, Load, children, free_port, ingest_key, serving
from test_sqlite_dedupe import prepared

from server.config import Config
from server.serve import folds_in_a_process
from server.store.background import BACKGROUND_NICE
from server.store.file_lock import FileLock
from server.store.sqlite import SqliteStore
from server.store.sqlite_fold_process import (
    CATCH_UP_EVENTS,
    CHECK_S,
    QUICK_END_S,
    RESTART_DELAY_MAX_S,
    CatchUp,
    FoldProcess,
    restart_delay,
)
from server.store.sqlite_folder import FOLD_DELAY_S, FOLD_LAG_EVENTS
from server.store.sqlite_zoning_file import fold_process_lock, zoning_file
from server.zoning import ZoningQuery

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="flock and /proc as on Linux"
)


def folded(db_path: str) -> int:
    """The rowid up to which the zoning file has folded the events."""
    with contextlib.closing(sqlite3.connect(zoning_file(db_path))) as conn:
        ((event_id,),) = conn.execute("SELECT event_id FROM zoning_folded").fetchall()
        return int(event_id)


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_probe_sees_the_lock_another_holds(tmp_path: Path) -> None:
    path = str(tmp_path / "lock")
    holder, prober = FileLock(path), FileLock(path)
    holder.open()
    prober.open()
    try:
        assert not prober.taken()
        assert holder.try_hold()
        assert prober.taken()
        assert not prober.try_hold()
        holder.close()
        assert not prober.taken()
        assert prober.try_hold()
    finally:
        holder.close()
        prober.close()


def test_only_serve_on_sqlite_folds_in_a_process() -> None:
    assert folds_in_a_process(Config())
    assert not folds_in_a_process(Config(fold_process=False))
    assert not folds_in_a_process(Config(database_url="postgresql://h/db"))
    assert Config.from_env({"TAPZONE_FOLD_PROCESS": "0"}).fold_process is False


async def test_a_folder_leaves_its_commits_to_a_fold_process_but_folds_for_queries(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "f.db")
    store = SqliteStore(path)
    await store.open()
    fold_process = FileLock(fold_process_lock(path))  # as a fold process holds it
    fold_process.open()
    try:
        assert fold_process.try_hold()
        await store._commit_group([prepared("-1")])  # 11 events, rowids 1-11
        await asyncio.sleep(10 * FOLD_DELAY_S)
        assert folded(path) == 0  # left to the fold process
        report = await store.zoning(ZoningQuery(1, "Sales"))
        assert (report.screenviews, folded(path)) == (1, 11)  # a query folds what it needs

        fold_process.close()  # gone: the folder folds its commits again
        await store._commit_group([prepared("-2")])
        await until(lambda: folded(path) == 22)
    finally:
        fold_process.close()
        await store.close()


@contextlib.asynccontextmanager
async def store_and_probe(path: str) -> AsyncIterator[tuple[SqliteStore, FileLock]]:
    """An open store, and a FileLock to see whether a fold process holds its lock."""
    store = SqliteStore(path)
    await store.open()
    probe = FileLock(fold_process_lock(path))
    probe.open()
    try:
        yield store, probe
    finally:
        probe.close()
        await store.close()


async def test_the_fold_process_folds_the_commits_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = str(tmp_path / "p.db")
    process = FoldProcess(path, cache_mib=16)
    async with store_and_probe(path) as (store, probe):
        try:
            process.start()
            await until(probe.taken)
            await store._commit_group([prepared("-1")])
            await store._commit_group([prepared("-2"), prepared("-3")])
            await until(lambda: folded(path) == 33)  # with no query: the fold process did
        finally:
            process.stop()
    assert process._proc is not None and process._proc.returncode == 0


async def test_a_second_fold_process_waits_and_takes_over(tmp_path: Path) -> None:
    path = str(tmp_path / "two.db")
    first, second = FoldProcess(path, cache_mib=16), FoldProcess(path, cache_mib=16)
    async with store_and_probe(path) as (store, probe):
        try:
            first.start()
            await until(probe.taken)
            second.start()
            await asyncio.sleep(2 * CHECK_S)
            assert second._proc is not None and second._proc.poll() is None  # waiting
            first.stop()
            await until(probe.taken)  # the second one holds the lock now
            await store._commit_group([prepared("-1")])
            await until(lambda: folded(path) == 11)
        finally:
            first.stop()
            second.stop()
    assert second._proc.returncode == 0


def test_the_fold_process_stops_when_its_parent_is_gone(tmp_path: Path) -> None:
    path = str(tmp_path / "orphan.db")
    done = subprocess.run(
        [sys.executable, "-m", FOLD_PROCESS, path, "--parent", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    assert "the parent process (pid 0) is gone; stopping" in done.stderr


def _session_nice() -> str:
    """The nice value of this process's autogroup, or "-" in the root group, which the
    kernel shows as an empty file (processes that never left init's session)."""
    shown = Path("/proc/self/autogroup").read_text().split()
    return shown[-1] if shown else "-"


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="no autogroups")
def test_the_fold_process_lowers_the_priority_of_its_own_session_only() -> None:
    show = (
        "from pathlib import Path\n"
        "from server.store.background import lower_session_priority, set_session_nice\n"
        "def nice():\n"
        "    shown = Path('/proc/self/autogroup').read_text().split()\n"
        "    return shown[-1] if shown else '-'\n"
        "lower_session_priority()\n"
        "print(nice())\n"
        "raised = set_session_nice(0)\n"
        "print(raised, nice())\n"
    )
    own = subprocess.run(
        [sys.executable, "-c", show], cwd=ROOT, capture_output=True, text=True,
        start_new_session=True, check=True,
    )  # fmt: skip
    lowered, raised, after = own.stdout.split()
    assert lowered == str(BACKGROUND_NICE)
    # Raised again where allowed (root, CAP_SYS_NICE), else left as it was.
    assert (raised, after) in (("True", "0"), ("False", str(BACKGROUND_NICE)))
    # pytest's session (its own autogroup, or the root group in CI): left alone.
    ours = _session_nice()
    shared = subprocess.run(
        [sys.executable, "-c", show], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert shared.stdout.split() == [ours, "False", ours]
    assert _session_nice() == ours


def test_a_fold_process_far_behind_folds_at_normal_priority_until_it_caught_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server.store.sqlite_fold_process")
    niced: list[int] = []
    priority = CatchUp(lambda nice: niced.append(nice) or True)
    for lag in (0, CATCH_UP_EVENTS, CATCH_UP_EVENTS + 1, 2 * CATCH_UP_EVENTS, FOLD_LAG_EVENTS + 1):
        priority.update(lag)
    assert niced == [0] and priority.behind
    priority.update(FOLD_LAG_EVENTS)
    priority.update(CATCH_UP_EVENTS)
    assert niced == [0, BACKGROUND_NICE] and not priority.behind
    assert [r.getMessage() for r in caplog.records] == [
        f"the zoning fold is {CATCH_UP_EVENTS + 1} events behind: normal priority for now",
        "the zoning fold caught up: lower priority again",
    ]
    refused = CatchUp(lambda nice: False)  # without CAP_SYS_NICE
    refused.update(CATCH_UP_EVENTS + 1)
    assert caplog.records[-1].getMessage() == (
        f"the zoning fold is {CATCH_UP_EVENTS + 1} events behind, and its priority cannot be "
        "raised (no CAP_SYS_NICE): it catches up as the load allows"
    )


def test_the_restart_delay_doubles_with_each_quick_end_up_to_a_minute() -> None:
    assert [restart_delay(n) for n in range(9)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert (CHECK_S, RESTART_DELAY_MAX_S) == (1.0, 60.0)


async def test_a_fold_process_that_fails_at_its_start_is_restarted_less_and_less_often(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.store.sqlite_fold_process")
    now = [0.0]
    # No such directory: each process fails at opening its lock, at once.
    process = FoldProcess(str(tmp_path / "missing" / "tapzone.db"), 16, clock=lambda: now[0])
    process.start()
    starts = []
    try:
        for second in range(10):  # a check a second, as serve makes
            now[0] = float(second)
            await until(lambda: process.returncode is not None)
            before = len(caplog.records)
            process.check()
            if any(r.getMessage().startswith("started") for r in caplog.records[before:]):
                starts.append(second)
        # Seen ended at 0 → replaced at 1 (+1 s); seen at 2 → at 4 (+2); seen at 5 → at 9 (+4).
        assert starts == [1, 4, 9]
        ended = [r.getMessage() for r in caplog.records if "exited (1)" in r.getMessage()]
        assert [m.rsplit("replacement", 1)[1] for m in ended] == [" in 1 s", " in 2 s", " in 4 s"]
        # One that ran for QUICK_END_S or longer is replaced at once, and the delays start over.
        now[0] = 9 + QUICK_END_S
        await until(lambda: process.returncode is not None)
        process.check()
        assert caplog.records[-2].getMessage().endswith("exited (1); starting a replacement")
        assert caplog.records[-1].getMessage().startswith("started the zoning fold process")
    finally:
        process.stop()


@pytest.mark.slow
async def test_serve_folds_in_its_fold_process_and_replaces_it_when_killed(
    tmp_path: Path,
) -> None:
    db = TestDatabase("sqlite", path=tmp_path / "tapzone.db")
    port, log = free_port(), tmp_path / "server.log"
    with serving(db, port, log) as proc:
        [folder] = children(proc.pid, FOLD_PROCESS)
        if os.path.exists("/proc/self/autogroup"):  # its session weighs less than a worker's
            group = Path(f"/proc/{folder}/autogroup")
            await until(lambda: group.read_text().split()[-1] == str(BACKGROUND_NICE))
        with Load(port, ingest_key(db), clients=2) as load:
            load.wait_for(20)
        ((top,),) = db.query("SELECT max(rowid) FROM events")
        await until(lambda: folded(str(db.path)) == top)  # no query was made
        os.kill(folder, signal.SIGKILL)
        await until(lambda: children(proc.pid, FOLD_PROCESS) not in ([], [folder]))
        [replacement] = children(proc.pid, FOLD_PROCESS)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert "was killed by SIGKILL; starting a replacement" in log.read_text()
    assert not Path(f"/proc/{replacement}").exists()  # stopped with the server
