"""The fsync that makes a SQLite commit durable, on a thread of its own, off the write lock.

The writer connection commits with `synchronous=NORMAL`: COMMIT writes the transaction's
frames to the WAL file (write(2), into the OS page cache) and returns without an fsync.
The writer thread then calls `WalSync.start()`, and a request is answered only once that
fsync of the WAL file (on this module's thread) has returned, so the frames are on disk
first: the same guarantee as `synchronous=FULL` (a commit survives a power cut), but the
writer thread starts the next group and the write lock goes to the next process while the
disk flushes. Checkpoints still
sync the WAL before copying it and the database file after (SQLite does that at NORMAL, and
the checkpoint thread runs at FULL).

After a failed fsync nothing more is acknowledged: Linux may have dropped the pages it could
not write, so later syncs could succeed without them. Every write then fails with 503 and
/healthz answers 503 until the server restarts and SQLite recovers from what is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from concurrent.futures import Future, ThreadPoolExecutor

from server.errors import ServiceError

log = logging.getLogger(__name__)


class NotDurable(ServiceError):
    status = 503


def fsync_path(path: str) -> None:
    """fsync(2) the file at `path` (the kernel flushes the file, whatever descriptor)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_commits(db_path: str, wal_path: str) -> None:
    """fsync what a commit wrote: the WAL; or, when there is none (a file system on which
    SQLite could not use WAL mode and kept its rollback journal), the database file."""
    try:
        fsync_path(wal_path)
    except FileNotFoundError:
        fsync_path(db_path)


class WalSync:
    """fsyncs of one database's WAL file, in the order asked, on one thread."""

    def __init__(self, db_path: str) -> None:
        self._db = db_path
        self._wal = f"{db_path}-wal"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tapzone-fsync")
        self._failed: OSError | None = None
        self._last: Future[None] = self._executor.submit(lambda: None)

    @property
    def failed(self) -> bool:
        return self._failed is not None

    def start(self) -> None:
        """An fsync that starts after now (the writer thread, right after a COMMIT): the one
        already waiting for the thread, which covers this commit too, or a new one. While
        an fsync runs, the commits made meanwhile share the next."""
        last = self._last
        if last.running() or last.done():
            self._last = self._executor.submit(self.sync_now)

    def last(self) -> Awaitable[None]:
        """The fsync started last (from the event loop): it covers every commit before it."""
        return asyncio.wrap_future(self._last)

    def sync_now(self) -> None:
        """fsync on the calling thread; raises NotDurable once any fsync has failed. The
        fsync thread runs it, and the writer thread itself for its rare writes (projects,
        snapshots, migrations)."""
        if self._failed is None:
            try:
                fsync_commits(self._db, self._wal)
            except OSError as exc:
                log.critical("fsync of %s failed (%s); no more acknowledgements", self._wal, exc)
                self._failed = exc
        if self._failed is not None:
            raise NotDurable(
                "The database could not be synced to disk; the server must be restarted."
            )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
