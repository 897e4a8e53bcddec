"""Zoning query speed over N stored events (SPEC §8: ≤ 100 ms at 10,000,000 events).

Generates N events — sessions of screenviews with taps, long presses, drags, flicks and
transactions over 30 days, 40 screens of 8-30 elements each, one user per 60 events, three
app versions, two device types, three currencies, device clocks off by up to an hour, 2 % of
sessions arriving hours late — as SDK batch bodies, turns them into rows with
server.ingest.prepare_batch and commits them through the SQLite store's own ingest
transaction (SqliteStore._commit, 20,000 events per commit) and folds each commit into the
zoning file, so the zoning rollups are built by the code path ingest uses (their day blocks
too: the fold builds a screen's block of a day once it has screenviews two days later, so a
month's query reads 28 blocks and two days of rows). No HTTP: this measures the query, not
the transport. Screen k gets a share of the screenviews proportional to exp(-k / 12):
Screen000 8 %, Screen008 (the typical screen: half the screenviews are on busier ones) 4 %,
Screen020 1.5 %. Event ids are sequential so that loading stays fast; half of each screen's
elements have a reliable target.

Then it times zoning queries through the Store method (median of repeated runs) next to a
plain GROUP BY over the raw `events` table that computes the same answer, checks that both
answers are equal, and prints both figures and the ratio. `--dir` keeps the database and
reuses it on the next run (only the queries are timed again).

PostgreSQL: `--postgres` starts a throw-away durable server for the run (in a temp dir, with
tests/server/pg_cluster.py; stopped and removed at the end), `--database-url URL` uses an
existing one (the store creates the schema on opening). The same events are loaded through
PostgresStore.ingest_group, the ingest transaction with its zoning rollups, in the same groups;
then VACUUM ANALYZE, since autovacuum may not have caught up with the load yet and the planner
would work from missing statistics (and index-only scans would find no visibility map). The
baseline is the same plain GROUP BY in PostgreSQL's dialect (bench/_zoning_pg.py). A database
that already holds events is reused with `--reuse` (only the queries are timed), else refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _zoning_pg import PgBench, RawRows, throwaway_server  # noqa: E402

from server.ingest import PreparedBatch, prepare_batch  # noqa: E402
from server.store.base import Store  # noqa: E402
from server.store.sqlite import SqliteStore  # noqa: E402
from server.store.sqlite_zoning_file import zoning_file  # noqa: E402
from server.zoning import ZoneAggregate, ZoningQuery, ZoningReport, build_report  # noqa: E402

START = date(2024, 1, 1)
DAYS = 30
SCREENS = 40
AVS = ("5.0.0", "5.1.0", "5.2.0")
CURRENCIES = (978, 840, 826)
EVENTS_PER_SESSION = 25  # on average, with the distributions below
EVENTS_PER_COMMIT = 20_000  # the store's default group size
SKEW_LIMIT_MS = 23 * 3600 * 1000


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


class Generator:
    """Sessions of a synthetic app as batch bodies (bytes), built from string templates."""

    def __init__(self, seed: int, users: int, n_events: int) -> None:
        self.rng = random.Random(seed)
        self.users = [f"u{seed:02d}-{i:08d}-0000-4000-8000-000000000000" for i in range(users)]
        self.euid = 0
        self.sessions = [0] * users
        self.clock = float(_ms(START))
        self.gap_ms = DAYS * 86_400_000 / (n_events / EVENTS_PER_SESSION)
        rng = self.rng
        # Each screen has its own elements; a few are popular, most are not.
        self.zones = {
            s: [f"[root]>UIView>S{s}>Cell:{z}>Button#{z}>" for z in range(rng.randint(8, 30))]
            for s in range(SCREENS)
        }
        self.zone_weights = {
            s: [1 / (z + 1) for z in range(len(zs))] for s, zs in self.zones.items()
        }

    def _event(self, ea: int, t: int, scn: int, screen: int, av: str, sn: int, extra: str) -> str:
        self.euid += 1
        return (
            f'{{"ea":{ea},"euid":"{self.euid:012x}-e","t":{t},"upt":{t % 10_000_000},'
            f'"url":"app-ios://shop/s?title=Screen{screen:03d}","scn":{scn},"c":1,"o":0,'
            f'"vo":{{"sv":"3.1","sb":7,"av":"{av}","af":"release","ab":1}},"sn":{sn}{extra}}}'
        )

    def session(self) -> tuple[bytes, int]:
        """One session as one batch body, and the server time it is received at."""
        rng = self.rng
        user = rng.randrange(len(self.users))
        uid = self.users[user]
        self.sessions[user] += 1
        sn = self.sessions[user]
        dt = 4 if user % 3 else 5
        av = AVS[min(2, int(rng.random() * 3))]
        # Device clocks are often right, sometimes off by up to an hour: events carry device
        # time, the server corrects them with the batch's `now` and its receive time.
        skew = rng.choice((0, 0, 0, rng.randint(-3_600_000, 3_600_000)))
        # Sessions start in time order (as a live app sends them), a few arrive hours late.
        self.clock += rng.expovariate(1 / self.gap_ms)
        late = rng.randint(0, 6 * 3_600_000) if rng.random() < 0.02 else 0
        t = int(self.clock) - late + skew
        pl = [self._event(0, t, 0, 0, av, sn, "")]
        for scn in range(1, rng.randint(3, 12)):
            screen = min(SCREENS - 1, int(rng.expovariate(1 / 12)))
            t += rng.randint(500, 20_000)
            pl.append(self._event(4, t, scn, screen, av, sn, f',"st":"S{screen}","sl":120'))
            zones, weights = self.zones[screen], self.zone_weights[screen]
            for _ in range(min(12, int(rng.expovariate(1 / 3)))):
                t += rng.randint(200, 8_000)
                z = rng.choices(range(len(zones)), weights)[0]
                target = f',"tvp":"{zones[z]}","tvid":"b{z}"'
                kind = rng.random()
                if kind < 0.7:
                    ur = "true" if rng.random() < 0.9 else "false"
                    pl.append(self._event(6, t, scn, screen, av, sn, f'{target},"ur":{ur}'))
                elif kind < 0.75:
                    pl.append(self._event(8, t, scn, screen, av, sn, target))
                else:
                    ea = 9 if kind < 0.85 else 10
                    move = ',"fd":3,"tvd":120,"tvv":80'
                    pl.append(self._event(ea, t, scn, screen, av, sn, target + move))
            if rng.random() < 0.04:
                t += rng.randint(1_000, 30_000)
                value, currency = rng.randint(100, 20_000) / 100, rng.choice(CURRENCIES)
                tr = f',"tr":{{"vl":{value},"cu":{currency}}}'
                pl.append(self._event(16, t, scn, screen, av, sn, tr))
        pl.append(self._event(2, t + 1_000, scn, screen, av, sn, ""))
        now = t + 2_000
        received = now - skew + rng.randint(20, 400)
        header = (
            f'{{"pid":1,"uid":"{uid}","dt":{dt},"os":"17.1","l":"en_US","tz":"UTC",'
            f'"now":{now},"to":{{"an":"shop","st":"sdk-ios","sf":"release"}},"r":{{"d":3.0}},'
        )
        return (header + '"pl":[' + ",".join(pl) + "]}").encode(), received


def target_map_rows(gen: Generator) -> list[tuple[object, ...]]:
    """Half of each screen's elements have reliable targets, stable across app versions."""
    rows = []
    for s, zones in gen.zones.items():
        for av in AVS:
            for z, tvp in enumerate(zones):
                if z % 2 == 0:
                    target = f"UIButton[ai:Screen{s:03d}ViewController.button{z}]"
                    rows.append((1, f"Screen{s:03d}", av, tvp, target, "ai"))
    return rows


def event_groups(gen: Generator, n_events: int) -> Iterator[list[PreparedBatch]]:
    """Groups of whole batches of at least EVENTS_PER_COMMIT events (the last: the rest).

    The caller commits each group before asking for the next; progress goes to stderr.
    """
    group: list[PreparedBatch] = []
    in_group = stored = 0
    started = time.perf_counter()
    while stored + in_group < n_events:
        body, received = gen.session()
        batch = prepare_batch(
            body, max_events=1000, received_ms=received, skew_limit_ms=SKEW_LIMIT_MS
        )
        group.append(batch)
        in_group += len(batch.events)
        if in_group >= EVENTS_PER_COMMIT:
            yield group
            stored += in_group
            group, in_group = [], 0
            if stored % 1_000_000 < EVENTS_PER_COMMIT:
                rate = stored / (time.perf_counter() - started)
                print(f"  {stored:,} events stored ({rate:,.0f} events/s)", file=sys.stderr)
    if group:
        yield group


# The same answer from the raw events alone: screenview events joined to gesture events, then
# the same aggregates. This is the naive baseline.
RAW_QUERY = """
WITH
sv_events AS (
    SELECT uid, sn, scn, screen, av, dt, corrected_ms AS sv_ms,
           row_number() OVER (PARTITION BY uid, sn, scn ORDER BY corrected_ms, euid) AS k
    FROM events WHERE pid = :pid AND ea = 4
),
screenviews AS MATERIALIZED (
    SELECT uid, sn, scn, av, sv_ms FROM sv_events
    WHERE k = 1 AND screen = :screen AND sv_ms >= :from_ms AND sv_ms < :to_ms
      AND (:av IS NULL OR av = :av) AND (:dt IS NULL OR dt = :dt)
),
gestures AS MATERIALIZED (
    SELECT coalesce(m.target, e.tvp) AS zone, coalesce(m.kind, 'path') AS kind,
           e.uid, e.sn, e.scn, s.sv_ms, e.ea, e.ur, e.corrected_ms
    FROM events AS e
    JOIN screenviews AS s ON s.uid = e.uid AND s.sn = e.sn AND s.scn = e.scn
    LEFT JOIN target_map AS m
      ON m.pid = :pid AND m.screen = e.screen AND m.av = e.av AND m.tvp = e.tvp
    WHERE e.pid = :pid AND e.ea IN (6, 8, 9, 10)
),
views AS MATERIALIZED (
    SELECT zone, uid, sn, min(CASE WHEN ea = 6 THEN corrected_ms END) AS first_tap_ms,
           min(CASE WHEN ea = 6 THEN corrected_ms END) - sv_ms AS delay_ms,
           sum(ea IN (9, 10)) AS swipes
    FROM gestures GROUP BY zone, uid, sn, scn
),
sessions AS MATERIALIZED (
    SELECT zone, uid, sn, min(first_tap_ms) AS first_tap_ms
    FROM views WHERE first_tap_ms IS NOT NULL GROUP BY zone, uid, sn
),
later AS MATERIALIZED (
    SELECT s.zone, s.uid, s.sn, t.tr_cu, t.tr_vl
    FROM sessions AS s JOIN events AS t
      ON t.pid = :pid AND t.ea = 16 AND t.uid = s.uid AND t.sn = s.sn
         AND t.corrected_ms > s.first_tap_ms
),
ranked AS (
    SELECT zone, delay_ms, row_number() OVER (PARTITION BY zone ORDER BY delay_ms) AS position,
           count(*) OVER (PARTITION BY zone) AS n
    FROM views WHERE first_tap_ms IS NOT NULL
)
SELECT 'totals', NULL, count(*), count(DISTINCT uid), NULL FROM screenviews
UNION ALL
SELECT 'sessions', NULL, count(*), NULL, NULL FROM (SELECT DISTINCT uid, sn FROM screenviews)
UNION ALL
SELECT 'counts', zone, min(kind),
       count(CASE WHEN ea = 6 THEN 1 END) || ',' || count(CASE WHEN ea = 6 AND ur = 0 THEN 1 END)
       || ',' || count(CASE WHEN ea = 8 THEN 1 END) || ',' || count(CASE WHEN ea = 9 THEN 1 END)
       || ',' || count(CASE WHEN ea = 10 THEN 1 END), NULL
FROM gestures GROUP BY zone
UNION ALL
SELECT 'views', zone, count(first_tap_ms), sum(swipes > 0), NULL FROM views GROUP BY zone
UNION ALL
SELECT 'people', zone, count(*), count(DISTINCT uid), NULL FROM sessions GROUP BY zone
UNION ALL
SELECT 'converted', zone, count(*), NULL, NULL
FROM (SELECT DISTINCT zone, uid, sn FROM later) GROUP BY zone
UNION ALL
SELECT 'median', zone, avg(delay_ms), NULL, NULL FROM ranked
WHERE position IN ((n + 1) / 2, (n + 2) / 2) GROUP BY zone
UNION ALL
SELECT 'revenue', zone, tr_cu, sum(tr_vl), NULL FROM later GROUP BY zone, tr_cu
"""


def raw_report(rows: Iterable[Sequence[Any]], screen: str) -> ZoningReport:
    """The report from the rows of RAW_QUERY, on either backend (PostgreSQL's values are text,
    SQLite's numbers: both go through int() and float())."""
    zones: dict[str, ZoneAggregate] = {}
    screenviews = users = sessions = 0
    for what, zone, a, b, _ in rows:
        if what == "totals":
            screenviews, users = int(a), int(b)
        elif what == "sessions":
            sessions = int(a)
        elif what == "counts":
            taps, unresponsive, long_presses, drags, flicks = map(int, b.split(","))
            zones[zone] = ZoneAggregate(zone, a, taps, unresponsive, long_presses, drags, flicks)
        elif what == "views":
            zones[zone].tapped_views, zones[zone].swiped_views = int(a), int(b)
        elif what == "people":
            zones[zone].sessions, zones[zone].users = int(a), int(b)
        elif what == "converted":
            zones[zone].converted_sessions = int(a)
        elif what == "median":
            zones[zone].median_delay_ms = float(a)
        elif what == "revenue":
            zones[zone].revenue[int(a)] = float(b)
    return build_report(screen, screenviews, sessions, users, zones.values())


def same(a: ZoningReport, b: ZoningReport) -> bool:
    def close(x: object, y: object) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
        return x == y

    totals = ("screen", "screenviews", "sessions", "users")
    if any(getattr(a, f) != getattr(b, f) for f in totals):
        return False
    if len(a.zones) != len(b.zones):
        return False
    for za, zb in zip(a.zones, b.zones, strict=True):
        for f in za.__struct_fields__:
            if not close(getattr(za, f), getattr(zb, f)):
                return False
    return True


async def time_store(store: Store, query: ZoningQuery, runs: int) -> tuple[float, ZoningReport]:
    report = await store.zoning(query)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        report = await store.zoning(query)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, report


async def time_raw(rows: RawRows, query: ZoningQuery, runs: int) -> tuple[float, ZoningReport]:
    times = []
    report = None
    for _ in range(runs):
        start = time.perf_counter()
        report = raw_report(await rows(query), query.screen)
        times.append(time.perf_counter() - start)
    assert report is not None
    return statistics.median(times) * 1000, report


def queries() -> list[tuple[str, ZoningQuery]]:
    end = START + timedelta(days=DAYS - 1)
    week = (date(2024, 1, 8), date(2024, 1, 14))
    return [
        ("typical screen (Screen008), whole month", ZoningQuery(1, "Screen008", START, end)),
        ("typical screen, one week", ZoningQuery(1, "Screen008", *week)),
        ("typical screen, one week, av 5.1.0, dt 4",
         ZoningQuery(1, "Screen008", *week, "5.1.0", 4)),
        ("median screen (Screen020), whole month", ZoningQuery(1, "Screen020", START, end)),
        ("busiest screen (Screen000), one week", ZoningQuery(1, "Screen000", *week)),
        ("busiest screen, whole month", ZoningQuery(1, "Screen000", START, end)),
    ]


async def time_queries(bench: SqliteBench | PgBench, args: argparse.Namespace) -> None:
    """Each case through the store, then (unless --baseline-runs 0) through the raw query."""
    for label, query in queries():
        # What the query reads: screenview rows of the range, element records among them.
        views, elements = await bench.reads(query)
        fast_ms, fast = await time_store(bench.store, query, args.runs)
        print(f"{label}: zoning query {fast_ms:.1f} ms (median of {args.runs}; "
              f"reads {views:,} screenviews with {elements:,} element records; "
              f"{len(fast.zones)} zones)", flush=True)
        if args.baseline_runs:
            async with bench.raw_rows() as rows:
                raw_ms, raw = await time_raw(rows, query, args.baseline_runs)
            print(f"    plain GROUP BY over the raw events: {raw_ms:,.0f} ms "
                  f"(median of {args.baseline_runs}); ratio {raw_ms / fast_ms:,.0f}x; "
                  f"answers {'identical' if same(fast, raw) else 'DIFFERENT'}", flush=True)


async def run(bench: SqliteBench | PgBench, args: argparse.Namespace) -> None:
    """Load the events unless the database holds them, then time the queries."""
    try:
        if await bench.open():
            gen = Generator(args.seed, users=max(100, args.events // 60), n_events=args.events)
            started = time.perf_counter()
            stored = 0
            for group in event_groups(gen, args.events):
                await bench.commit(group)
                stored += sum(len(batch.events) for batch in group)
            await bench.add_target_map(target_map_rows(gen))
            elapsed = time.perf_counter() - started
            print(f"loaded {stored:,} events in {elapsed:.0f} s "
                  f"({stored / elapsed:,.0f} events/s through {bench.through})", flush=True)
            await bench.after_load()
        print(await bench.describe(), flush=True)
        await time_queries(bench, args)
    finally:
        await bench.close()


class SqliteBench:
    """The SQLite database in --dir (reused if present) or in a temp dir. The benchmark's
    backends (bench/_zoning_pg.py's PgBench for PostgreSQL) have the same methods."""

    through = "the ingest transaction and its fold"

    def __init__(self, args: argparse.Namespace) -> None:
        self.temporary = not args.dir
        self.keep = args.keep
        self.directory = args.dir or tempfile.mkdtemp(prefix="tapzone-zoning-")
        self.path = os.path.join(self.directory, "zoning.db")
        self.store = SqliteStore(self.path)

    async def open(self) -> bool:
        fresh = not os.path.exists(self.path)
        await self.store.open()
        await self.store.warm_up()  # a database from before the zoning file is folded here
        if fresh:
            await self.store.create_project("bench", pid=1)
        return fresh

    def _reader(self) -> sqlite3.Connection:
        """A connection to the events file with the zoning file attached, as the store's."""
        conn = sqlite3.connect(self.path)
        conn.execute("ATTACH DATABASE ? AS zoning", (zoning_file(self.path),))
        conn.execute("PRAGMA cache_size = -262144")
        conn.execute("PRAGMA zoning.cache_size = -262144")
        return conn

    async def commit(self, group: Sequence[PreparedBatch]) -> None:
        # Synchronously: the ingest transaction, without the queue, then its fold.
        self.store._commit(group)
        await self.store._folder.catch_up()

    async def add_target_map(self, rows: Sequence[tuple[object, ...]]) -> None:
        conn = self.store._conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR REPLACE INTO target_map VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")

    async def after_load(self) -> None:
        pass

    async def describe(self) -> str:
        with contextlib.closing(self._reader()) as conn:
            (n_events,) = conn.execute("SELECT count(*) FROM events").fetchone()
            (n_views,) = conn.execute("SELECT count(*) FROM zoning_screenviews").fetchone()
            (n_blocks,) = conn.execute("SELECT count(*) FROM zoning_blocks").fetchone()
        size = os.path.getsize(self.path) + os.path.getsize(zoning_file(self.path))
        return (f"database {self.path}: {n_events:,} events, {n_views:,} screenviews "
                f"({n_blocks:,} day blocks), {size / 2**30:.1f} GiB with its zoning file")

    async def reads(self, query: ZoningQuery) -> tuple[int, int]:
        from server.store import sqlite_zoning_query

        sql = sqlite_zoning_query.zoning_sql(query)
        with contextlib.closing(self._reader()) as conn:
            rows = conn.execute(sql, sqlite_zoning_query.query_params(query)).fetchall()
        selection = sqlite_zoning_query._Parts(rows).selection
        return len(selection.session_id), len(selection.rows["tvp_id"])

    @contextlib.asynccontextmanager
    async def raw_rows(self) -> AsyncIterator[RawRows]:
        from server.store.sqlite_zoning_query import query_params

        conn = sqlite3.connect(self.path)
        conn.execute("PRAGMA cache_size = -262144")

        async def rows(query: ZoningQuery) -> Iterable[Sequence[Any]]:
            return conn.execute(RAW_QUERY, query_params(query))

        try:
            yield rows
        finally:
            conn.close()

    async def close(self) -> None:
        await self.store.close()
        if self.temporary and not self.keep:
            for name in os.listdir(self.directory):
                os.remove(os.path.join(self.directory, name))
            os.rmdir(self.directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000, help="events to store")
    parser.add_argument("--runs", type=int, default=21, help="timed zoning queries per case")
    parser.add_argument(
        "--baseline-runs", type=int, default=1, help="timed raw GROUP BYs per case (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=5)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dir", help="keep the database in this directory (reused if present)")
    where.add_argument(
        "--postgres", action="store_true", help="on a throw-away PostgreSQL server (temp dir)"
    )
    where.add_argument("--database-url", help="on this PostgreSQL database (postgresql://…)")
    parser.add_argument(
        "--reuse", action="store_true",
        help="with --database-url: time the queries on the events it holds, load nothing",
    )
    parser.add_argument(
        "--keep", action="store_true", help="do not delete the temporary SQLite database"
    )
    args = parser.parse_args()
    if args.reuse and not args.database_url:
        parser.error("--reuse needs --database-url")
    if args.keep and (args.postgres or args.database_url):
        parser.error("--keep is for the temporary SQLite database")
    if args.postgres:
        with throwaway_server() as url:
            asyncio.run(run(PgBench(url, reuse=False), args))
    elif args.database_url:
        asyncio.run(run(PgBench(args.database_url, reuse=args.reuse), args))
    else:
        asyncio.run(run(SqliteBench(args), args))


if __name__ == "__main__":
    main()
