"""SQLite backend: one writer thread doing group commits, aiosqlite connections for reads."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

import aiosqlite

from server.ingest import IngestResult, PreparedBatch
from server.snapshots import ResolvedSnapshot
from server.store.base import Project, ProjectExists, StoreFull, check_next_pid
from server.store.file_lock import FileLock
from server.store.group_commit import GroupCommitWriter, commit_or_split
from server.store.keys import new_keys
from server.store.sqlite_bulk import insert_rows, with_batch_ids, with_batch_ids_of
from server.store.sqlite_checkpoint import BACKSTOP_PAGES, Checkpointer
from server.store.sqlite_dedupe import DedupeIndex
from server.store.sqlite_folder import ZoningFolder
from server.store.sqlite_schema import (
    INSERT_BATCH,
    INSERT_EVENT,
    INSERT_QUARANTINE,
    LAST_EVENT_ID,
    last_event_id,
    migrate,
    transaction,
)
from server.store.sqlite_sync import WalSync
from server.store.sqlite_zoning_file import zoning_file
from server.store.sqlite_zoning_query import zoning as query_zoning
from server.zoning import ZoningQuery, ZoningReport

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

# The first batch_id of a write transaction and its events' last_event_id(), in one statement.
_NEXT_IDS = (
    f"SELECT (SELECT coalesce(max(batch_id), 0) + 1 FROM batches), ({LAST_EVENT_ID})"
)
_PROJECT_COLUMNS = "pid, name, ingest_key, read_key, batch_size, tracking_enabled"


def _project(row: Sequence[object]) -> Project:
    pid, name, ingest_key, read_key, batch_size, enabled = row
    return Project(
        pid=int(pid),  # type: ignore[call-overload]
        name=str(name),
        ingest_key=str(ingest_key),
        read_key=str(read_key),
        batch_size=int(batch_size),  # type: ignore[call-overload]
        tracking_enabled=bool(enabled),
    )


def _holding_write_lock(
    method: Callable[Concatenate[SqliteStore, P], T],
) -> Callable[Concatenate[SqliteStore, P], T]:
    """The write transaction of `method` runs holding the cross-process writer lock."""

    @functools.wraps(method)
    def locked(self: SqliteStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._writer_lock.held():
            return method(self, *args, **kwargs)

    return locked


class SqliteStore:
    """The embedded default store.

    Writes: a single thread owns the only write connection; the GroupCommitWriter hands it the
    batches of all waiting requests, which it commits in one transaction (WAL); its requests
    are answered once server.store.sqlite_sync has fsynced the WAL after that commit, while
    the thread commits the next group; server.store.sqlite_folder folds the committed events
    into the zoning file beside it, and a zoning query first waits for that fold. A whole
    group is one hop to that thread, not one per statement. Reads use a separate aiosqlite
    connection with the zoning file attached, so they never wait for the writer (WAL readers
    see the last commit).

    Several processes (`serve --workers N`, a `tapzone project add` beside a server) each
    have their own writer; SQLite's lock keeps their transactions apart. Each writer also
    holds an exclusive flock on `<db>.writer-lock` around every write transaction, so a
    waiting process wakes the moment the other commits instead of polling in SQLite's busy
    handler, whose sleeps of up to 100 ms made two workers' p99 1.5-4x worse (README).
    """

    def __init__(
        self,
        path: str,
        *,
        write_queue_events: int = 100_000,
        group_commit_events: int = 20_000,
        retry_after_s: int = 1,
        cache_mib: int = 256,
    ) -> None:
        self.path = path
        self._cache_kib = cache_mib * 1024
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tapzone-sqlite")
        self._wconn: sqlite3.Connection | None = None
        # Held from before BEGIN IMMEDIATE until after COMMIT or ROLLBACK (writer thread).
        self._writer_lock = FileLock(f"{path}.writer-lock")
        self._rconn: aiosqlite.Connection | None = None
        self._checkpointer = Checkpointer(path)
        self._dedupe = DedupeIndex()  # the writer thread's; built by warm_up or the first write
        self._wal = WalSync(path)
        self._folder = ZoningFolder(path, self._cache_kib)
        self._writer: GroupCommitWriter[PreparedBatch, IngestResult] = GroupCommitWriter(
            self._write_group,
            max_queued=write_queue_events,
            max_group=group_commit_events,
            retry_after_s=retry_after_s,
            durable=self._wal.last,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        try:
            await self._in_writer(self._open_writer)
            await self._in_writer(self._folder.open)
        except sqlite3.DatabaseError as exc:  # a directory, not a database, unreadable…
            # ValueError, as PostgresStore.open's: what `tapzone` shows as one line.
            raise ValueError(f"SQLite database {self.path}: {exc}") from None
        self._rconn = await aiosqlite.connect(self.path)
        await self._rconn.execute("PRAGMA busy_timeout = 5000")
        await self._rconn.execute(f"PRAGMA cache_size = -{self._cache_kib}")
        # The zoning tables are the attached file's (the events file has none since
        # migration 7), so the query names them without a schema.
        await self._rconn.execute("ATTACH DATABASE ? AS zoning", (zoning_file(self.path),))
        await self._rconn.execute(f"PRAGMA zoning.cache_size = -{self._cache_kib}")
        self._checkpointer.start()
        self._writer.start()

    async def warm_up(self) -> None:
        """Build the dedupe index and fold the events the zoning file lacks now, rather than
        in the first ingest's transaction and fold."""
        started = time.perf_counter()
        await self._in_writer(self._catch_up)
        log.info(
            "dedupe index: %d stored events read in %.1f s",
            len(self._dedupe), time.perf_counter() - started,
        )  # fmt: skip
        started = time.perf_counter()
        folded = await self._folder.catch_up()
        if folded:
            log.info(
                "zoning: %d stored events folded in %.1f s", folded, time.perf_counter() - started
            )

    def _catch_up(self) -> None:
        conn = self._conn()
        self._dedupe.catch_up(conn, last_event_id(conn))

    async def close(self) -> None:
        await self._writer.close()
        self._folder.close()
        self._checkpointer.close()
        if self._rconn is not None:
            await self._rconn.close()
            self._rconn = None
        if self._wconn is not None:
            await self._in_writer(self._wconn.close)
            self._wconn = None
        self._writer_lock.close()
        self._executor.shutdown(wait=True)
        self._wal.close()

    def _open_writer(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        # COMMIT writes the WAL without an fsync; WalSync fsyncs it before any reply.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{self._cache_kib}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        self._writer_lock.open()
        with self._writer_lock.held():
            migrate(conn)
            self._wal.sync_now()
        self._wconn = conn

    async def _in_writer(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as exc:
            # SQLITE_FULL ("database or disk is full"): rolled back; the whole group fails
            # at once (commit_or_split splits only on item errors), and recovers with space.
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise StoreFull() from exc
            raise

    @property
    def _read(self) -> aiosqlite.Connection:
        if self._rconn is None:
            raise RuntimeError("store is not open")
        return self._rconn

    # -- health and projects -------------------------------------------------------------------

    async def ping(self) -> bool:
        if self._wal.failed:
            return False
        try:
            async with self._read.execute("SELECT count(*) FROM schema_migrations") as cur:
                return (await cur.fetchone()) is not None
        except (sqlite3.Error, ValueError):
            return False

    async def list_projects(self) -> list[Project]:
        async with self._read.execute(
            f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY pid"
        ) as cur:
            return [_project(row) for row in await cur.fetchall()]

    async def create_project(
        self, name: str, *, pid: int | None = None, batch_size: int = 50
    ) -> Project:
        return await self._in_writer(self._create_project, name, pid, batch_size)

    @_holding_write_lock
    def _create_project(self, name: str, pid: int | None, batch_size: int) -> Project:
        conn = self._conn()
        ingest_key, read_key = new_keys()
        with transaction(conn):
            if (
                pid is not None
                and conn.execute("SELECT 1 FROM projects WHERE pid = ?", (pid,)).fetchone()
            ):
                raise ProjectExists(f"Project {pid} already exists.")
            if conn.execute("SELECT 1 FROM projects WHERE name = ?", (name,)).fetchone():
                raise ProjectExists(f"A project named {name!r} already exists.")
            if pid is None:
                (pid,) = conn.execute("SELECT coalesce(max(pid), 0) + 1 FROM projects").fetchone()
                check_next_pid(pid)
            conn.execute(
                "INSERT INTO projects (pid, name, ingest_key, read_key, batch_size, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (pid, name, ingest_key, read_key, batch_size, int(time.time() * 1000)),
            )
        self._wal.sync_now()
        return Project(pid, name, ingest_key, read_key, batch_size)

    # -- zoning --------------------------------------------------------------------------------

    async def zoning(self, query: ZoningQuery) -> ZoningReport:
        await self._folder.fresh()  # every event stored before the query is counted
        return await query_zoning(self._read, query)

    # -- snapshots -----------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: ResolvedSnapshot, body: bytes) -> int:
        return await self._in_writer(self._save_snapshot, snapshot, body)

    @_holding_write_lock
    def _save_snapshot(self, snapshot: ResolvedSnapshot, body: bytes) -> int:
        """Store the snapshot; its target map replaces the one of its (screen, version)."""
        conn = self._conn()
        key = (snapshot.pid, snapshot.screen, snapshot.av)
        with transaction(conn):
            cur = conn.execute(
                "INSERT INTO snapshots (pid, screen, av, platform, received_ms, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (*key, snapshot.platform, int(time.time() * 1000), body),
            )
            conn.execute("DELETE FROM target_map WHERE pid = ? AND screen = ? AND av = ?", key)
            conn.executemany(
                "INSERT INTO target_map (pid, screen, av, tvp, target, kind) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(*key, *entry) for entry in snapshot.target_map()],
            )
        self._wal.sync_now()
        return int(cur.lastrowid or 0)

    # -- ingest --------------------------------------------------------------------------------

    async def ingest(self, batch: PreparedBatch) -> IngestResult:
        return await self._writer.submit(batch, batch.size)

    async def ingest_group(self, batches: Sequence[PreparedBatch]) -> list[IngestResult]:
        """Committed, durable and folded (the bulk path: what it stores is in the zoning
        tables when it returns)."""
        results = await self._commit_group(batches)
        await self._wal.last()
        await self._folder.fold_quietly()
        return results

    async def _commit_group(self, batches: Sequence[PreparedBatch]) -> list[IngestResult]:
        return await self._in_writer(self._commit, batches)

    async def _write_group(
        self, batches: Sequence[PreparedBatch]
    ) -> Sequence[IngestResult | BaseException]:
        """The GroupCommitWriter's step; it answers after `self._wal.last()`."""
        return await commit_or_split(self._commit_group, batches, (sqlite3.Error,))

    def _conn(self) -> sqlite3.Connection:
        if self._wconn is None:
            raise RuntimeError("store is not open")
        return self._wconn

    def _commit(self, batches: Sequence[PreparedBatch]) -> list[IngestResult]:
        """One transaction for all the batches; on any error nothing of them is stored.

        A fixed handful of statements whatever the group's size (sqlite_bulk says why). The
        events are looked up in the dedupe index before the write lock is taken, so that
        the other processes' writers do not wait for it; inside, only against the rows
        committed since.
        """
        conn = self._conn()
        self._dedupe.catch_up(conn, last_event_id(conn))
        rows = list(itertools.chain.from_iterable(b.events for b in batches))
        keep, keys = self._dedupe.fresh(conn, rows)
        with self._writer_lock.held(), transaction(conn):
            first_id, top = conn.execute(_NEXT_IDS).fetchone()
            self._dedupe.catch_up(conn, top, check=(rows, keys, keep))
            ids = range(first_id, first_id + len(batches))
            insert_rows(conn, *INSERT_BATCH, [(i, *b.header) for i, b in zip(ids, batches)])
            kept = keep.tolist()
            events = with_batch_ids_of(rows, ids, [b.events for b in batches])
            new = list(itertools.compress(events, kept))
            insert_rows(conn, *INSERT_EVENT, new)
            if last_event_id(conn) != top + len(new):  # what committed() relies on
                raise sqlite3.IntegrityError("The new events did not get consecutive rowids.")
            quarantine = with_batch_ids(ids, [b.quarantine for b in batches])
            insert_rows(conn, *INSERT_QUARANTINE, quarantine)
        self._wal.start()
        self._folder.start_soon(top + len(new))
        self._dedupe.committed(keys[keep], top + 1)
        self._checkpointer.poke()
        results = []
        start = 0
        for batch in batches:
            end = start + len(batch.events)
            accepted = sum(kept[start:end])
            results.append(IngestResult(accepted=accepted, duplicates=end - start - accepted))
            start = end
        return results
