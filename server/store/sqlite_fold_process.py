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
when it moved, folds up to it with the folder's rules: at a lower CPU priority while fewer
than FOLD_LAG_EVENTS events wait, at normal priority past that. It stops after the fold in
progress, folding what is left, on SIGTERM or SIGINT or when its parent is gone.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

from server.store.background import lower_session_priority
from server.store.file_lock import FileLock
from server.store.sqlite_folder import FOLD_DELAY_S, ZoningFolder
from server.store.sqlite_schema import last_event_id
from server.store.sqlite_zoning_file import fold_process_lock

log = logging.getLogger("server.store.sqlite_fold_process")  # also when run as __main__

# How often a parent checks that its fold process runs, and a waiting one that it may start.
CHECK_S = 1.0
# How long `stop()` waits for the fold in progress and the last one before it kills.
STOP_TIMEOUT_S = 60.0


class FoldProcess:
    """The fold process of one SQLite database, seen from the process that starts it."""

    def __init__(self, db_path: str, cache_mib: int) -> None:
        self._db = db_path
        self._cache_mib = cache_mib
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def start(self) -> None:
        # A session of its own: a terminal's Ctrl-C reaches the server, which stops it.
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, self._db, "--cache-mib", str(self._cache_mib),
             "--parent", str(os.getpid())],
            start_new_session=True,
        )  # fmt: skip
        log.info("started the zoning fold process (pid %d)", self._proc.pid)

    def check(self) -> None:
        """Start a replacement if it ended (the server processes fold their own commits
        meanwhile)."""
        if self._stopped or self._proc is None or (code := self._proc.poll()) is None:
            return
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
        log.error(
            "the zoning fold process (pid %d) %s; starting a replacement", self._proc.pid, how
        )
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
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())

    def running() -> bool:
        if os.getppid() != args.parent:
            log.warning("the parent process (pid %d) is gone; stopping", args.parent)
            stop.set()
        return not stop.is_set()

    lock = FileLock(fold_process_lock(args.db))
    lock.open()
    try:
        while not lock.try_hold():  # another fold process of this database runs
            if not running():
                return 0
            stop.wait(CHECK_S)
        if running():
            follow(args.db, args.cache_mib * 1024, running, stop)
    finally:
        lock.close()
    return 0


def follow(
    db_path: str, cache_kib: int, running: Callable[[], bool], stop: threading.Event
) -> None:
    """Fold what the server processes store, until `running()` is false; then what is left."""
    folder = ZoningFolder(db_path, cache_kib)
    folder.open()
    events = sqlite3.connect(db_path, isolation_level=None)
    try:
        newest = None
        while running():
            top = last_event_id(events)
            if top != newest:
                newest = top
                folder.follow(top)
            stop.wait(FOLD_DELAY_S)
    finally:
        events.close()
        folder.close()


if __name__ == "__main__":
    sys.exit(main())
