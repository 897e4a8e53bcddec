"""The zoning fold on a thread of its own, beside the ingest writer.

After each commit the writer calls `ZoningFolder.start_soon(stored)` and goes on with the
next group: the fold and the inserts take different files' write locks
(server.store.sqlite_zoning_file) and sqlite3 releases the GIL while SQLite works, so they
overlap, in one process or across workers. The fold starts FOLD_DELAY_S after the commit,
with every commit made meanwhile: a fold of many events costs less per event. An ingest
reply waits for its commit's fsync, not for the fold; a zoning query waits for it instead:
`fresh()` folds every event committed before the query began (in any process) before the
query reads, so a query made after a reply sees its events.

A fold covers every event stored before it starts, whoever stored it; `start()` while a fold
is queued and not yet running adds nothing. The folds after commits run on a thread of lower
CPU priority (server.store.background) while fewer than FOLD_LAG_EVENTS events wait for
them: they then take the time the request path leaves. Past that (a load the fold cannot
follow at that priority), and for a query, a fold runs on a thread of normal priority, so
the rollups never fall behind without bound. A fold that fails is logged and rolled back, and
the next one takes its events again; a query whose fold failed gets ZoningBehind (503).

`tapzone serve` runs those folds in a process of its own instead
(server.store.sqlite_fold_process), which holds `<db>.fold-process-lock` while it runs: a
folder that finds that lock taken leaves its commits to it. Queries, start-up and close
still fold here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from server.errors import ServiceError
from server.store import sqlite_zoning_file as zoning_file_module
from server.store.background import lower_priority
from server.store.file_lock import FileLock
from server.store.sqlite_checkpoint import BACKSTOP_PAGES, Checkpointer
from server.store.sqlite_zoning_file import (
    connect,
    fold,
    fold_all,
    fold_process_lock,
    zoning_file,
)

log = logging.getLogger(__name__)

# A commit's fold starts this long after it, with every commit made meanwhile: under load a
# fold of many events costs less per event than one per commit, and it bounds what a query
# may have to fold before it reads.
FOLD_DELAY_S = 0.05
# Events stored and not folded past which a fold after a commit runs at normal priority.
FOLD_LAG_EVENTS = 20_000


class ZoningBehind(ServiceError):
    status = 503


class ZoningFolder:
    """Folds of one events file into its zoning file, in order, one at a time, on a thread
    of normal priority (`_urgent`) or of lower priority (`_background`)."""

    def __init__(self, db_path: str, cache_kib: int) -> None:
        self._db = db_path
        self._cache_kib = cache_kib
        self._urgent = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tapzone-fold")
        self._background = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tapzone-fold-bg", initializer=lower_priority
        )
        self._folding = threading.Lock()  # one fold at a time in this process
        self._stored = 0  # the newest rowid a commit of this process reported
        self._folded = 0  # every event up to this rowid is folded
        self._conn: sqlite3.Connection | None = None
        self._lock = FileLock(f"{db_path}.zoning-lock")  # around every zoning write
        self._fold_process = FileLock(fold_process_lock(db_path))  # taken: it folds commits
        self._checkpointer = Checkpointer(zoning_file(db_path))
        self._starting = threading.Lock()  # start() comes from the writer and the event loop
        self._due = threading.Event()  # commits wait for a fold
        self._closing = threading.Event()
        self._scheduler = threading.Thread(
            target=self._schedule, name="tapzone-fold-schedule", daemon=True
        )
        self._closed = False
        self._last: Future[int] = Future()  # the last fold started: none yet
        self._last.set_result(0)

    def open(self) -> None:
        """Create or migrate the zoning file (any thread, before the first `start`)."""
        self._lock.open()
        self._fold_process.open()
        with self._lock.held():
            conn = connect(self._db, self._cache_kib)
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        self._conn = conn
        self._checkpointer.start()
        self._scheduler.start()

    def start_soon(self, stored: int) -> None:
        """Fold in FOLD_DELAY_S unless a fold is already due then (the writer thread, after a
        COMMIT that left `stored` the newest rowid): the commits of that time make one fold."""
        with self._starting:
            self._stored = max(self._stored, stored)
        self._due.set()

    def _schedule(self) -> None:
        """The thread that starts the folds after commits, FOLD_DELAY_S after the first one
        waiting; none while a fold process follows the commits instead. One thread for the
        folder's life: a threading.Timer per fold was a new thread each time, and the writer
        that started it waited in Thread.start() until that thread had run, which needs the
        GIL (up to the 5 ms switch interval when the event loop holds it)."""
        while not self._closing.is_set():
            self._due.wait()
            if self._closing.wait(FOLD_DELAY_S):
                return
            self._due.clear()  # a commit from now on is in the next fold
            if not self._fold_process.taken():
                self.start(urgent=False)

    def follow(self, stored: int) -> Future[int]:
        """`stored` is the newest rowid now (the fold process, which polls for it): fold up
        to it as after a commit."""
        with self._starting:
            self._stored = max(self._stored, stored)
        return self.start(urgent=False)

    @property
    def lag(self) -> int:
        """Events stored (as far as this process's commits tell) and not folded yet."""
        return self._stored - self._folded

    def start(self, *, urgent: bool = True) -> Future[int]:
        """A fold of what is stored now: the one queued and not started yet, else a new one
        (after commits, not `urgent`; or for a query)."""
        with self._starting:
            last = self._last
            if (last.running() or last.done()) and not self._closed:
                if urgent or self.lag > FOLD_LAG_EVENTS:
                    last = self._fold_all_now()
                else:  # one transaction, then the priority is chosen again
                    last = self._background.submit(self._fold, fold)
                self._last = last
            return last

    async def fresh(self) -> None:
        """Fold every event committed before this call (from the event loop)."""
        try:
            await asyncio.wrap_future(self.start())
        except Exception as exc:
            raise ZoningBehind(
                "The zoning tables could not be brought up to date with the stored events; "
                "the server log says why."
            ) from exc

    async def fold_quietly(self) -> None:
        """`fresh()`, but a failure is only logged (the events are stored, and the next fold
        takes them)."""
        with contextlib.suppress(ZoningBehind):
            await self.fresh()

    async def catch_up(self) -> int:
        """Fold every stored event not folded yet (start-up, before serving); returns how
        many, or raises what the fold raised."""
        return await asyncio.wrap_future(self._fold_all_now())

    def _fold_all_now(self) -> Future[int]:
        """A fold of every stored event on the thread of normal priority."""
        return self._urgent.submit(self._fold, fold_all)

    def _fold(self, how: Callable[[sqlite3.Connection], int]) -> int:
        """A fold thread only. `_folding` keeps the two threads apart (they share the
        connection), the flock other processes (it does not exclude threads)."""
        if self._conn is None:
            raise RuntimeError("zoning folder is not open")
        with self._folding:
            stored = self._stored  # a fold takes every event stored before it starts
            try:
                with self._lock.held():
                    folded = how(self._conn)
            except Exception:
                log.exception("zoning fold failed; the next fold takes its events again")
                raise
            # One transaction folds FOLD_CHUNK_EVENTS at most: fewer, and it reached the end.
            if how is fold_all or folded < zoning_file_module.FOLD_CHUNK_EVENTS:
                self._folded = max(self._folded, stored)
        self._checkpointer.poke()
        return folded

    def close(self) -> None:
        """Fold what is left, then close (before the events' writer connection)."""
        with self._starting:
            self._closed = True
        self._closing.set()
        self._due.set()
        if self._scheduler.ident is not None:
            self._scheduler.join()
        if self._conn is not None:
            with contextlib.suppress(Exception):  # logged by _fold
                self._fold_all_now().result()
        self._background.shutdown(wait=True)
        self._urgent.shutdown(wait=True)
        self._checkpointer.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._lock.close()
        self._fold_process.close()
