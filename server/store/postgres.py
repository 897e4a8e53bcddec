"""PostgreSQL backend (asyncpg): the semantics of the SQLite store, for several processes."""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import asyncpg

from server.ingest import IngestResult, PreparedBatch
from server.snapshots import ResolvedSnapshot
from server.store.base import Project, ProjectExists, StoreFull, check_next_pid
from server.store.group_commit import GroupCommitWriter, commit_or_split
from server.store.keys import new_keys
from server.store.postgres_schema import (
    BATCH_INSERT_COLUMNS,
    INCOMING_COLUMNS,
    INSERT_NEW_EVENTS,
    INSERT_QUARANTINE,
    NEW_PER_BATCH,
    TEMP_TABLES,
    migrate,
)
from server.store.postgres_zoning import update_zoning
from server.store.postgres_zoning import zoning as query_zoning
from server.zoning import ZoningQuery, ZoningReport

log = logging.getLogger(__name__)

_PROJECT_COLUMNS = "pid, name, ingest_key, read_key, batch_size, tracking_enabled"
_SNAPSHOT_LOCK_CLASS = 737_403  # advisory lock (this, pid): one target-map swap at a time
# Two transactions that lock the same rows in another order: PostgreSQL aborts one of them;
# the group is then simply committed again.
_RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_ATTEMPTS = 5


@contextlib.contextmanager
def _room_needed() -> Iterator[None]:
    """A write: asyncpg's DiskFullError (SQLSTATE 53100) as StoreFull, the 503 a client
    retries later."""
    try:
        yield
    except asyncpg.DiskFullError as exc:
        raise StoreFull() from exc


def _project(row: asyncpg.Record) -> Project:
    pid, name, ingest_key, read_key, batch_size, enabled = row
    return Project(int(pid), name, ingest_key, read_key, int(batch_size), bool(enabled))


def describe_url(url: str) -> str:
    """host:port/database of a URL, never its password (for messages)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


class PostgresStore:
    """The store for teams that outgrow one machine.

    Writes: per process, one connection owned by a GroupCommitWriter commits the batches of
    all waiting requests in one transaction, as on SQLite; the reply waits for the commit
    (synchronous_commit as the server sets it: on by default). Several processes write at
    once; PostgreSQL's row locks decide duplicates, and the zoning fold is serialised per
    project (server.store.postgres_zoning). Reads use a small pool.
    """

    def __init__(
        self,
        url: str,
        *,
        write_queue_events: int = 100_000,
        group_commit_events: int = 20_000,
        retry_after_s: int = 1,
        read_connections: int = 4,
    ) -> None:
        self.url = url
        self._read_connections = read_connections
        self._wpool: asyncpg.Pool | None = None
        self._rpool: asyncpg.Pool | None = None
        self._writer: GroupCommitWriter[PreparedBatch, IngestResult] = GroupCommitWriter(
            self._write_group,
            max_queued=write_queue_events,
            max_group=group_commit_events,
            retry_after_s=retry_after_s,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            conn = await asyncpg.connect(self.url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ValueError(
                f"cannot connect to PostgreSQL at {describe_url(self.url)}: {exc}"
            ) from None
        try:
            await migrate(conn)
        finally:
            await conn.close()
        # The writer's one connection lives in a pool of one, so that a connection lost
        # (server restart) is replaced instead of failing every later write.
        self._wpool = await asyncpg.create_pool(self.url, min_size=1, max_size=1, init=_init_writer)
        self._rpool = await asyncpg.create_pool(
            self.url, min_size=1, max_size=self._read_connections
        )
        self._writer.start()

    async def warm_up(self) -> None:
        """Nothing to load: the unique index on events (pid, euid) dedupes here."""

    async def close(self) -> None:
        await self._writer.close()
        for pool in (self._rpool, self._wpool):
            if pool is not None:
                await pool.close()
        self._rpool = self._wpool = None

    @property
    def _read(self) -> asyncpg.Pool:
        if self._rpool is None:
            raise RuntimeError("store is not open")
        return self._rpool

    @property
    def _write(self) -> asyncpg.Pool:
        if self._wpool is None:
            raise RuntimeError("store is not open")
        return self._wpool

    # -- health and projects -------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            return await self._read.fetchval("SELECT count(*) FROM schema_migrations") > 0
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False

    async def list_projects(self) -> list[Project]:
        rows = await self._read.fetch(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY pid")
        return [_project(row) for row in rows]

    async def create_project(
        self, name: str, *, pid: int | None = None, batch_size: int = 50
    ) -> Project:
        ingest_key, read_key = new_keys()
        with _room_needed():
            async with self._write.acquire() as conn, conn.transaction():
                # Readers go on; other creators wait, so "the next free pid" is really free.
                await conn.execute("LOCK TABLE projects IN SHARE ROW EXCLUSIVE MODE")
                if pid is not None and await conn.fetchval(
                    "SELECT 1 FROM projects WHERE pid = $1", pid
                ):
                    raise ProjectExists(f"Project {pid} already exists.")
                if await conn.fetchval("SELECT 1 FROM projects WHERE name = $1", name):
                    raise ProjectExists(f"A project named {name!r} already exists.")
                if pid is None:
                    pid = await conn.fetchval("SELECT coalesce(max(pid), 0) + 1 FROM projects")
                    check_next_pid(pid)
                await conn.execute(
                    "INSERT INTO projects (pid, name, ingest_key, read_key, batch_size, "
                    "created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                    pid, name, ingest_key, read_key, batch_size, int(time.time() * 1000),
                )  # fmt: skip
        return Project(int(pid), name, ingest_key, read_key, batch_size)

    # -- zoning --------------------------------------------------------------------------------

    async def zoning(self, query: ZoningQuery) -> ZoningReport:
        return await query_zoning(self._read, query)

    # -- snapshots -----------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: ResolvedSnapshot, body: bytes) -> int:
        """Store the snapshot; its target map replaces the one of its (screen, version)."""
        key = (snapshot.pid, snapshot.screen, snapshot.av)
        with _room_needed():
            async with self._write.acquire() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)", _SNAPSHOT_LOCK_CLASS, snapshot.pid
                )
                snapshot_id = await conn.fetchval(
                    "INSERT INTO snapshots (pid, screen, av, platform, received_ms, body) "
                    "VALUES ($1, $2, $3, $4, $5, $6) RETURNING snapshot_id",
                    *key, snapshot.platform, int(time.time() * 1000), body,
                )  # fmt: skip
                await conn.execute(
                    "DELETE FROM target_map WHERE pid = $1 AND screen = $2 AND av = $3", *key
                )
                await conn.executemany(
                    "INSERT INTO target_map (pid, screen, av, tvp, target, kind) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    [(*key, *entry) for entry in snapshot.target_map()],
                )
        return int(snapshot_id)

    # -- ingest --------------------------------------------------------------------------------

    async def ingest(self, batch: PreparedBatch) -> IngestResult:
        return await self._writer.submit(batch, batch.size)

    async def ingest_group(self, batches: Sequence[PreparedBatch]) -> list[IngestResult]:
        return await self._commit_retrying(batches)

    async def _write_group(
        self, batches: Sequence[PreparedBatch]
    ) -> Sequence[IngestResult | BaseException]:
        return await commit_or_split(self._commit_retrying, batches, (asyncpg.PostgresError,))

    async def _commit_retrying(self, batches: Sequence[PreparedBatch]) -> list[IngestResult]:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with _room_needed():  # not an item's fault: StoreFull is not split, a 503
                    return await self._commit(batches)
            except _RETRIED:
                if attempt == _ATTEMPTS:
                    raise
                log.info("group of %d batches aborted by a lock conflict; again", len(batches))
        raise AssertionError("unreachable")

    async def _commit(self, batches: Sequence[PreparedBatch]) -> list[IngestResult]:
        """One transaction for all the batches; on any error nothing of them is stored."""
        async with self._write.acquire() as conn, conn.transaction():
            batch_ids = [
                row[0]
                for row in await conn.fetch(
                    "SELECT nextval('batch_ids') FROM generate_series(1, $1)", len(batches)
                )
            ]
            numbered = list(zip(batch_ids, batches, strict=True))
            await conn.copy_records_to_table(
                "batches",
                records=[(bid, *batch.header) for bid, batch in numbered],
                columns=BATCH_INSERT_COLUMNS,
            )
            ordinal = itertools.count()
            incoming = [
                (next(ordinal), *row, bid) for bid, batch in numbered for row in batch.events
            ]
            if incoming:
                await conn.copy_records_to_table(
                    "incoming", records=incoming, columns=INCOMING_COLUMNS
                )
                # Then statistics of this group's rows: without them the planner guesses a
                # handful of rows and joins the rollup dictionaries by nested loops over a
                # whole project's sessions (measured: 35 % of the transaction, growing).
                await conn.execute(f"{INSERT_NEW_EVENTS};\nANALYZE new_events")
            quarantine = [(*row, bid) for bid, batch in numbered for row in batch.quarantine]
            if quarantine:
                await conn.executemany(INSERT_QUARANTINE, quarantine)
            new_per_batch: dict[int, int] = (
                {bid: n for bid, n in await conn.fetch(NEW_PER_BATCH)} if incoming else {}
            )
            if new_per_batch:
                await update_zoning(conn, [b.pid for b in batches])
        results = []
        for bid, batch in numbered:
            new = new_per_batch.get(bid, 0)
            results.append(IngestResult(accepted=new, duplicates=len(batch.events) - new))
        return results


async def _init_writer(conn: asyncpg.Connection) -> None:
    await conn.execute(TEMP_TABLES)
