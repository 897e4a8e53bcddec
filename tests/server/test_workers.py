"""`tapzone serve --workers 2`: two processes on one port and one database, supervised."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from serving import (
    FOLD_PROCESS,
    WORKER,
    Load,
    children,
    free_port,
    healthz,
    ingest_key,
    post_batch,
    run_load_then_signal,
    serving,
    stored_batches,
    zoning_screenviews,
)

from server.config import Config
from server.workers import worker_cpus


def thread_cpus(pid: int) -> list[int]:
    """The CPUs the threads of process `pid` may run on (all of them alike)."""
    each: set[frozenset[int]] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            each.add(frozenset(os.sched_getaffinity(int(tid))))
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    assert len(each) == 1, f"threads of {pid} differ: {each}"
    return sorted(each.pop())


def test_workers_are_pinned_one_per_cpu_when_there_are_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 2, 7, 3})
    assert worker_cpus(Config(), 2) == [2, 3]
    assert worker_cpus(Config(), 4) == [2, 3, 5, 7]
    assert worker_cpus(Config(), 5) is None  # more workers than CPUs: the kernel places them
    assert worker_cpus(Config(), 1) is None  # one worker keeps every core for its threads
    assert worker_cpus(Config(pin_workers=False), 2) is None
    assert Config.from_env({"TAPZONE_PIN_WORKERS": "off"}).pin_workers is False


def test_zero_workers_means_one_per_core() -> None:
    assert Config().workers == 0
    assert Config().worker_count == (os.cpu_count() or 1)
    assert Config.from_env({"TAPZONE_WORKERS": "3"}).worker_count == 3
    with pytest.raises(ValueError) as exc:
        Config.from_env({"TAPZONE_WORKERS": "-1"})
    assert str(exc.value) == "TAPZONE_WORKERS must be 0 (one per CPU core) or more, got -1."


@pytest.mark.slow
def test_two_workers_store_every_acknowledged_event_exactly_once(
    new_database: Callable, tmp_path: Path
) -> None:
    db, port = new_database(), free_port()
    with serving(db, port, tmp_path / "server.log", workers=2) as proc:
        assert len(children(proc.pid, WORKER)) == 2
        # SQLite: and the zoning fold process, on any CPU (server.store.sqlite_fold_process)
        folders = children(proc.pid, FOLD_PROCESS)
        assert len(folders) == (1 if db.backend == "sqlite" else 0)
        key = ingest_key(db)
        with Load(port, key, clients=8) as load:
            load.wait_for(200)
        # Every thread of a worker (started by now: writer, fsync, fold, checkpoints) on
        # its CPU; both unpinned where the machine has one CPU.
        cpus = worker_cpus(Config(), 2)
        everywhere = sorted(os.sched_getaffinity(0))
        assert sorted(thread_cpus(pid) for pid in children(proc.pid, WORKER)) == (
            [everywhere, everywhere] if cpus is None else [[cpu] for cpu in cpus]
        )
        assert [thread_cpus(pid) for pid in folders] == [everywhere] * len(folders)
        assert len(load.acked) == len(load.sent)  # every request answered 200
        assert stored_batches(db) == {batch: 50 for batch in load.acked}
        n = len(load.acked)
        assert db.query("SELECT count(*), count(DISTINCT euid) FROM events") == [(50 * n, 50 * n)]
        assert db.query("SELECT count(*), count(DISTINCT batch_id) FROM batches") == [(n, n)]
        # The rollups too: a zoning query (on either worker) first folds every stored
        # event, each exactly once, whichever worker stored it.
        assert zoning_screenviews(port, db) == 0  # the taps have no screenview
        assert db.query("SELECT sum(taps) FROM zoning_gestures") == [(50 * n,)]
        for client, seq in sorted(load.acked)[:20]:  # a new connection each: both workers
            assert post_batch(port, key, client, seq) == {
                "accepted": 0, "duplicates": 50, "rejected": []
            }  # fmt: skip
        assert stored_batches(db) == {batch: 50 for batch in load.acked}


@pytest.mark.slow
def test_sigterm_stops_every_worker_after_committing(
    new_database: Callable, tmp_path: Path
) -> None:
    log, db = tmp_path / "server.log", new_database()
    outcome = run_load_then_signal(db, log, signal.SIGTERM, workers=2)
    assert outcome.code == 0
    assert len(outcome.workers) == 2
    # and on SQLite the zoning fold process: all stopped
    assert len(outcome.children) == 2 + (db.backend == "sqlite")
    assert not [pid for pid in outcome.children if Path(f"/proc/{pid}").exists()]
    assert all(count == 50 for count in outcome.stored.values()), "a batch was half stored"
    assert outcome.acked <= set(outcome.stored), "an acknowledged batch was lost"
    assert set(outcome.stored) <= outcome.sent


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_nothing_acknowledged_is_lost(
    new_database: Callable, tmp_path: Path
) -> None:
    db, port, log = new_database(), free_port(), tmp_path / "server.log"
    with serving(db, port, log, workers=2) as proc:
        with Load(port, ingest_key(db), keep_going=True) as load:
            load.wait_for(60)
            before = children(proc.pid, WORKER)
            killed_cpus = thread_cpus(before[0])
            os.kill(before[0], signal.SIGKILL)
            deadline = time.monotonic() + 10
            while len(now := children(proc.pid, WORKER)) != 2 or before[0] in now:
                assert time.monotonic() < deadline, f"no replacement: {now}"
                time.sleep(0.05)
            assert before[1] in now
            assert thread_cpus(next(p for p in now if p != before[1])) == killed_cpus
            load.wait_for(len(load.acked) + 60)
            assert healthz(port) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    stored = stored_batches(db)
    assert all(count == 50 for count in stored.values()), "a batch was half stored"
    assert set(load.acked) <= set(stored), "an acknowledged batch was lost"
    assert "was killed by SIGKILL; starting a replacement" in log.read_text()
