"""The zoning fold in a process of its own: `tapzone serve` starts one per SQLite database.

On a thread of a server process the fold shared that process's GIL with its event loop and
its writer: a fold of 20,000 events (about 100 ms of CPU, nearly all in SQLite) still takes
the GIL back after every statement and between them, and, niced on the worker's pinned core,
held it while other threads ran; the commits beside it stretched from 1-2 ms to 30 ms. In a
process of its own it shares only the CPUs, where the scheduler's priorities apply.

The process holds `<db>.fold-process-lock` (an exclusive flock) while it runs, and a server
process's folder that finds the lock taken leaves its commits to it
(server.store.sqlite_folder); a second fold process of the same database waits for the lock
and takes over if the first dies. Every FOLD_DELAY_S it reads the newest event's rowid and,
when it moved, folds up to it (ZoningFolder.follow). Its session runs at a lower CPU priority
(server.store.background: threads' nice values do not weigh across sessions), and at normal
priority while it is more than CATCH_UP_EVENTS behind (CatchUp). It stops after the fold in
progress, folding what is left, on SIGTERM or SIGINT or when its parent is gone.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

from server.store.background import BACKGROUND_NICE, lower_session_priority, set_session_nice
from server.store.file_lock import FileLock
from server.store.sqlite_folder import FOLD_DELAY_S, FOLD_LAG_EVENTS, ZoningFolder
from server.store.sqlite_schema import last_event_id
from server.store.sqlite_zoning_file import fold_process_lock

log = logging.getLogger("server.store.sqlite_fold_process")  # also when run as __main__

# How often a parent checks that its fold process runs, and a waiting one that it may start.
CHECK_S = 1.0
# Events behind past which the process folds at normal priority, until it is back within
# FOLD_LAG_EVENTS: a load the CPUs cannot carry with the fold (ingest above ~50,000 events/s
# sustained on 2 cores) would otherwise leave the rollups behind without bound, and every
# query to fold the backlog first. A short burst (the bench's 2-second closed loop stores
# ~300,000) stays below it and is folded once the load drops.
CATCH_UP_EVENTS = 500_000
# How long `stop()` waits for the fold in progress and the last one before it kills.
STOP_TIMEOUT_S = 60.0
# A fold process that ends sooner than this after its start failed at it (a zoning file it
# cannot open, a full disk): its replacement waits CHECK_S, twice that after a second such
# end, and so on up to RESTART_DELAY_MAX_S, instead of a new interpreter every second.
QUICK_END_S = 10.0
RESTART_DELAY_MAX_S = 60.0


class FoldProcess:
    """The fold process of one SQLite database, seen from the process that starts it."""

    def __init__(
        self, db_path: str, cache_mib: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db_path
        self._cache_mib = cache_mib
        self._clock = clock
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._quick_ends = 0  # in a row
        self._restart_at: float | None = None  # it ended: when the replacement starts
        self._stopped = False

    def start(self) -> None:
        # A session of its own: a terminal's Ctrl-C reaches the server, which stops it.
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, self._db, "--cache-mib", str(self._cache_mib),
             "--parent", str(os.getpid())],
            start_new_session=True,
        )  # fmt: skip
        self._started_at = self._clock()
        log.info("started the zoning fold process (pid %d)", self._proc.pid)

    @property
    def returncode(self) -> int | None:
        """The exit code of the process started last (-N: killed by signal N), None while
        it runs or before the first start."""
        return None if self._proc is None else self._proc.poll()

    def check(self) -> None:
        """Start a replacement if it ended: at once, or after a delay when it keeps ending
        soon after its start (the server processes fold their own commits meanwhile)."""
        if self._stopped or self._proc is None or (code := self._proc.poll()) is None:
            return
        now = self._clock()
        if self._restart_at is None:  # it ended since the last check
            quick = now - self._started_at < QUICK_END_S
            self._quick_ends = self._quick_ends + 1 if quick else 0
            delay = restart_delay(self._quick_ends)
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
            log.error(
                "the zoning fold process (pid %d) %s; starting a replacement%s",
                self._proc.pid, how, f" in {delay:.0f} s" if delay else "",
            )  # fmt: skip
            self._restart_at = now + delay
        if now >= self._restart_at:
            self._restart_at = None
            self.start()

    def stop(self) -> None:
        """SIGTERM, then wait for it (it folds what is left first)."""
        self._stopped = True
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("the zoning fold process (pid %d) did not stop; killing it", self._proc.pid)
            self._proc.kill()
            self._proc.wait()


def restart_delay(quick_ends: int) -> float:
    """Seconds before a replacement, after `quick_ends` fold processes in a row ended
    within QUICK_END_S of their start: none after a process that ran for a while."""
    if quick_ends == 0:
        return 0.0
    return min(RESTART_DELAY_MAX_S, CHECK_S * 2 ** (quick_ends - 1))


# -- the process ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("db", help="the SQLite events file")
    parser.add_argument("--cache-mib", type=int, default=256)
    parser.add_argument("--parent", type=int, required=True, help="stop when it is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [fold %(process)d] %(name)s: %(message)s",
    )
    lower_session_priority()
    stop = _Stop(args.parent)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop.request)
    lock = FileLock(fold_process_lock(args.db))
    lock.open()
    try:
        while not lock.try_hold():  # another fold process of this database runs
            if not stop.running():
                return 0
            time.sleep(CHECK_S)
        if stop.running():
            follow(args.db, args.cache_mib * 1024, stop.running)
    finally:
        lock.close()
    return 0


class _Stop:
    """Asked by SIGTERM or SIGINT, or when the parent is gone. The handler only sets a flag:
    a handler that takes a lock (threading.Event.set does) deadlocks when it interrupts the
    main thread while that holds the lock (Event.wait does, around its wait)."""

    def __init__(self, parent: int) -> None:
        self._parent = parent
        self._requested = False

    def request(self, signum: int, frame: FrameType | None) -> None:
        self._requested = True

    def running(self) -> bool:
        if not self._requested and os.getppid() != self._parent:
            log.warning("the parent process (pid %d) is gone; stopping", self._parent)
            self._requested = True
        return not self._requested


def follow(db_path: str, cache_kib: int, running: Callable[[], bool]) -> None:
    """Fold what the server processes store, until `running()` is false; then what is left."""
    folder = ZoningFolder(db_path, cache_kib)
    folder.open()
    events = sqlite3.connect(db_path, isolation_level=None)
    priority = CatchUp()
    try:
        newest = last_event_id(events)
        # What the folder counts as behind starts from there (the server processes fold
        # what was stored before they start).
        concurrent.futures.wait([folder.follow(newest)])
        while running():
            top = last_event_id(events)
            if top != newest:
                newest = top
                folder.follow(top)
            priority.update(folder.lag)
            time.sleep(FOLD_DELAY_S)
    finally:
        events.close()
        folder.close()


class CatchUp:
    """The fold process's session priority: lowered, and normal while the fold is more than
    CATCH_UP_EVENTS behind, until it is back within FOLD_LAG_EVENTS."""

    def __init__(self, renice: Callable[[int], bool] = set_session_nice) -> None:
        self._renice = renice
        self.behind = False

    def update(self, lag: int) -> None:
        if not self.behind and lag > CATCH_UP_EVENTS:
            self.behind = True
            if self._renice(0):
                log.warning("the zoning fold is %d events behind: normal priority for now", lag)
            else:
                log.warning(
                    "the zoning fold is %d events behind, and its priority cannot be raised "
                    "(no CAP_SYS_NICE): it catches up as the load allows", lag,
                )  # fmt: skip
        elif self.behind and lag <= FOLD_LAG_EVENTS:
            self.behind = False
            self._renice(BACKGROUND_NICE)
            log.info("the zoning fold caught up: lower priority again")


if __name__ == "__main__":
    sys.exit(main())
