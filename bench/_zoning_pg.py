"""The PostgreSQL side of bench/zoning.py: a throw-away server, the raw baseline, statistics."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg

from server.config import Config
from server.ingest import PreparedBatch
from server.store import make_store
from server.store.postgres import describe_url
from server.zoning import ZoningQuery
from server.zoning.compute import ELEMENT_DTYPE

# The raw baseline of one query: its rows, for bench/zoning.py's raw_report.
RawRows = Callable[[ZoningQuery], Awaitable[Iterable[Sequence[Any]]]]

_TESTS = Path(__file__).resolve().parent.parent / "tests" / "server"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """A durable PostgreSQL server for the run (tests/server/pg_cluster.py) and the URL of an
    empty database on it; the server is stopped and its files removed on the way out, also on
    an error, Ctrl-C or SIGTERM."""
    sys.path.insert(0, str(_TESTS))
    from pg_cluster import PgCluster

    root = Path(tempfile.mkdtemp(prefix="tapzone-zoning-pg-"))
    cluster = PgCluster(root, durable=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        cluster.start()
        yield cluster.create_database("zoning")
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
            signal.signal(signal.SIGTERM, previous)


# bench/zoning.py's RAW_QUERY in PostgreSQL's dialect: positional parameters ($1 pid, $2
# screen, $3 from_ms, $4 to_ms, $5 av, $6 dt), booleans counted with FILTER, euids compared
# bytewise as SQLite does (COLLATE "C"), `views` grouped by sv_ms too (one per screenview;
# SQLite takes it as a bare column). A UNION has one type per column, so the values are
# text (floats print exactly: extra_float_digits) and bench/zoning.py's raw_report parses
# them as it does SQLite's numbers.
RAW_QUERY = """
WITH
sv_events AS (
    SELECT uid, sn, scn, screen, av, dt, corrected_ms AS sv_ms,
           row_number() OVER (PARTITION BY uid, sn, scn
                              ORDER BY corrected_ms, euid COLLATE "C") AS k
    FROM events WHERE pid = $1 AND ea = 4
),
screenviews AS MATERIALIZED (
    SELECT uid, sn, scn, av, sv_ms FROM sv_events
    WHERE k = 1 AND screen = $2 AND sv_ms >= $3 AND sv_ms < $4
      AND ($5::text IS NULL OR av = $5::text) AND ($6::integer IS NULL OR dt = $6::integer)
),
gestures AS MATERIALIZED (
    SELECT coalesce(m.target, e.tvp) AS zone, coalesce(m.kind, 'path') AS kind,
           e.uid, e.sn, e.scn, s.sv_ms, e.ea, e.ur, e.corrected_ms
    FROM events AS e
    JOIN screenviews AS s ON s.uid = e.uid AND s.sn = e.sn AND s.scn = e.scn
    LEFT JOIN target_map AS m
      ON m.pid = $1 AND m.screen = e.screen AND m.av = e.av AND m.tvp = e.tvp
    WHERE e.pid = $1 AND e.ea IN (6, 8, 9, 10)
),
views AS MATERIALIZED (
    SELECT zone, uid, sn, min(CASE WHEN ea = 6 THEN corrected_ms END) AS first_tap_ms,
           min(CASE WHEN ea = 6 THEN corrected_ms END) - sv_ms AS delay_ms,
           count(*) FILTER (WHERE ea IN (9, 10)) AS swipes
    FROM gestures GROUP BY zone, uid, sn, scn, sv_ms
),
sessions AS MATERIALIZED (
    SELECT zone, uid, sn, min(first_tap_ms) AS first_tap_ms
    FROM views WHERE first_tap_ms IS NOT NULL GROUP BY zone, uid, sn
),
later AS MATERIALIZED (
    SELECT s.zone, s.uid, s.sn, t.tr_cu, t.tr_vl
    FROM sessions AS s JOIN events AS t
      ON t.pid = $1 AND t.ea = 16 AND t.uid = s.uid AND t.sn = s.sn
         AND t.corrected_ms > s.first_tap_ms
),
ranked AS (
    SELECT zone, delay_ms, row_number() OVER (PARTITION BY zone ORDER BY delay_ms) AS position,
           count(*) OVER (PARTITION BY zone) AS n
    FROM views WHERE first_tap_ms IS NOT NULL
)
SELECT 'totals', NULL, count(*)::text, count(DISTINCT uid)::text, NULL FROM screenviews
UNION ALL
SELECT 'sessions', NULL, count(*)::text, NULL, NULL
FROM (SELECT DISTINCT uid, sn FROM screenviews) AS d
UNION ALL
SELECT 'counts', zone, min(kind),
       count(*) FILTER (WHERE ea = 6)::text || ','
       || count(*) FILTER (WHERE ea = 6 AND ur = 0)::text || ','
       || count(*) FILTER (WHERE ea = 8)::text || ',' || count(*) FILTER (WHERE ea = 9)::text
       || ',' || count(*) FILTER (WHERE ea = 10)::text, NULL
FROM gestures GROUP BY zone
UNION ALL
SELECT 'views', zone, count(first_tap_ms)::text, count(*) FILTER (WHERE swipes > 0)::text, NULL
FROM views GROUP BY zone
UNION ALL
SELECT 'people', zone, count(*)::text, count(DISTINCT uid)::text, NULL
FROM sessions GROUP BY zone
UNION ALL
SELECT 'converted', zone, count(*)::text, NULL, NULL
FROM (SELECT DISTINCT zone, uid, sn FROM later) AS c GROUP BY zone
UNION ALL
SELECT 'median', zone, avg(delay_ms)::float8::text, NULL, NULL FROM ranked
WHERE position IN ((n + 1) / 2, (n + 2) / 2) GROUP BY zone
UNION ALL
SELECT 'revenue', zone, tr_cu::text, sum(tr_vl)::text, NULL FROM later GROUP BY zone, tr_cu
"""

_READS = """
SELECT count(*), coalesce(sum(length(elements)), 0) / $5::bigint FROM zoning_screenviews
WHERE pid = $1 AND screen = $2 AND sv_ms >= $3 AND sv_ms < $4
"""
_ADD_TARGETS = """
INSERT INTO target_map (pid, screen, av, tvp, target, kind) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (pid, screen, av, tvp) DO UPDATE SET target = excluded.target, kind = excluded.kind
"""


class PgBench:
    """The store on a PostgreSQL database, and a connection of the benchmark's own next to it
    (statistics, target map, VACUUM, the raw baseline). The methods of bench/zoning.py's
    SqliteBench; the load's grouping, timing and printing are bench/zoning.py's."""

    through = "PostgresStore.ingest_group"

    def __init__(self, url: str, *, reuse: bool) -> None:
        self.url = url
        self.reuse = reuse
        self.store = make_store(Config(database_url=url))
        self._conn: asyncpg.Connection | None = None

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("not open")
        return self._conn

    async def open(self) -> bool:
        await self.store.open()  # creates the schema
        # extra_float_digits > 0: floats as text are the shortest exact form (PG >= 12).
        self._conn = await asyncpg.connect(self.url, server_settings={"extra_float_digits": "3"})
        n_events = await self.count("events")
        if n_events and not self.reuse:
            raise SystemExit(
                f"{describe_url(self.url)} already holds {n_events:,} events: pass --reuse to "
                "time the queries on them, or give an empty database"
            )
        if 1 not in {project.pid for project in await self.store.list_projects()}:
            await self.store.create_project("bench", pid=1)
        return not n_events

    async def commit(self, group: Sequence[PreparedBatch]) -> None:
        await self.store.ingest_group(group)

    async def add_target_map(self, rows: Sequence[tuple[object, ...]]) -> None:
        async with self.conn.transaction():
            await self.conn.executemany(_ADD_TARGETS, rows)

    async def after_load(self) -> None:
        """Statistics and visibility map now, rather than when autovacuum gets round to it."""
        started = time.perf_counter()
        await self.conn.execute("VACUUM ANALYZE")
        print(f"VACUUM ANALYZE in {time.perf_counter() - started:.0f} s", flush=True)

    async def count(self, table: str) -> int:
        return int(await self.conn.fetchval(f"SELECT count(*) FROM {table}"))

    async def describe(self) -> str:
        n_events, n_views = await self.count("events"), await self.count("zoning_screenviews")
        size = await self.conn.fetchval("SELECT pg_database_size(current_database())")
        return (f"database {describe_url(self.url)}: {n_events:,} events, {n_views:,} "
                f"screenviews, {size / 2**30:.1f} GiB (pg_database_size)")

    async def reads(self, query: ZoningQuery) -> tuple[int, int]:
        views, elements = await self.conn.fetchrow(
            _READS, query.pid, query.screen, query.from_ms, query.to_ms, ELEMENT_DTYPE.itemsize
        )
        return int(views), int(elements)

    async def _raw_rows(self, query: ZoningQuery) -> list[Sequence[Any]]:
        params = (query.pid, query.screen, query.from_ms, query.to_ms, query.av, query.dt)
        return list(await self.conn.fetch(RAW_QUERY, *params))

    @contextlib.asynccontextmanager
    async def raw_rows(self) -> AsyncIterator[RawRows]:
        yield self._raw_rows

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        await self.store.close()
