"""Zoning on PostgreSQL: the same rollups as on SQLite (server.store.sqlite_zoning), in bytea.

The tables and their meaning are those of the SQLite backend; only the encoding differs: a
screenview's header, elements and transactions are big-endian binary records
(int8send/float8send) instead of hex, so the query hands numpy the bytes as they come. The
rollups are folded from the `new_events` scratch table, which holds exactly the events the
current transaction inserted (duplicates never reach it).

Several processes can ingest at once. Folding the same screenview from two transactions at
once would let each recompute it without the other's gestures, so `update_zoning` first takes
a transaction-scoped advisory lock per project: folds of one project are serialised, while
the event inserts before them (the dedupe) still run in parallel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np

from server.store.zoning_sql import (
    GESTURE_KINDS,
    ITS_SESSION,
    ITS_TVP,
    ZONING_KINDS,
    view_gestures,
)
from server.zoning import ZoningQuery, ZoningReport, build_report
from server.zoning.compute import (
    COUNT_MAX,
    ELEMENT_DTYPE,
    HEADER_DTYPE,
    TX_DTYPE,
    Transactions,
    expand_views,
    present_ids,
    screen_totals,
    tune_allocator,
    zone_aggregates,
)
from server.zoning.report import KIND_PATH

_FOLD_LOCK_CLASS = 737_402  # advisory lock (this, pid): pids are 32-bit (server.schema.Pid)
_COUNT_COLUMNS = ("taps", "unresponsive_taps", "long_presses", "drags", "flicks")


def _i8(sql: str) -> str:
    return f"int8send(({sql})::bigint)"


def _u4(sql: str) -> str:
    """The low four bytes of a non-negative value below 2**32, big-endian."""
    return f"substring(int8send(({sql})::bigint) from 5)"


def elements_sql(pid: str, session_id: str, scn: str, sv_ms: str) -> str:
    """A screenview's elements as ELEMENT_DTYPE records (NULL without gestures)."""
    counts = " || ".join(_u4(f"least(g.{c}, {COUNT_MAX})") for c in _COUNT_COLUMNS)
    record = f"{_u4('g.tvp_id')} || {_i8(f'coalesce(g.first_tap_ms - {sv_ms}, 0)')} || {counts}"
    return f"""(SELECT string_agg({record}, ''::bytea ORDER BY g.tvp_id)
    {view_gestures(pid, session_id, scn)})"""


def header_sql(pid: str, session_id: str, scn: str, user_id: str, sv_ms: str) -> str:
    """A screenview's HEADER_DTYPE record: session, user, scn, time, element count."""
    count = f"(SELECT count(*) {view_gestures(pid, session_id, scn)})"
    return f"{_i8(session_id)} || {_u4(user_id)} || {_u4(scn)} || {_i8(sv_ms)} || {_u4(count)}"


_NEW = "new_events AS e"

# Dictionaries first. NOT EXISTS keeps identity values from being spent on rows that exist
# (ids stay dense, which the numpy side likes); ON CONFLICT stays as the backstop.
_ADD_USERS = f"""
INSERT INTO zoning_users (pid, uid)
SELECT DISTINCT e.pid, e.uid FROM {_NEW}
WHERE e.ea IN {ZONING_KINDS}
  AND NOT EXISTS (SELECT 1 FROM zoning_users AS u WHERE u.pid = e.pid AND u.uid = e.uid)
ORDER BY 1, 2
ON CONFLICT (pid, uid) DO NOTHING
"""
_ADD_SESSIONS = f"""
INSERT INTO zoning_sessions (pid, uid, sn, user_id)
SELECT n.pid, n.uid, n.sn, u.user_id
FROM (SELECT DISTINCT e.pid, e.uid, e.sn FROM {_NEW} WHERE e.ea IN {ZONING_KINDS}) AS n
JOIN zoning_users AS u ON u.pid = n.pid AND u.uid = n.uid
WHERE NOT EXISTS (SELECT 1 FROM zoning_sessions AS k
                  WHERE k.pid = n.pid AND k.uid = n.uid AND k.sn = n.sn)
ORDER BY 1, 2, 3
ON CONFLICT (pid, uid, sn) DO NOTHING
"""
_ADD_TVPS = f"""
INSERT INTO zoning_tvps (pid, screen, av, tvp)
SELECT DISTINCT e.pid, e.screen, e.av, e.tvp FROM {_NEW}
WHERE e.ea IN {GESTURE_KINDS}
  AND NOT EXISTS (SELECT 1 FROM zoning_tvps AS t WHERE t.pid = e.pid AND t.screen = e.screen
                  AND t.av = e.av AND t.tvp = e.tvp)
ORDER BY 1, 2, 3, 4
ON CONFLICT (pid, screen, av, tvp) DO NOTHING
"""
_ADD_TRANSACTIONS = f"""
INSERT INTO zoning_transactions (pid, session_id, tx_ms, cu, amount)
SELECT e.pid, k.session_id, e.corrected_ms, e.tr_cu, e.tr_vl
FROM {_NEW} {ITS_SESSION}
WHERE e.ea = 16
ORDER BY e.batch_id, e.idx
"""
_SESSIONS_WITH_NEW_TX = f"""
SELECT DISTINCT k.pid, k.session_id FROM {_NEW} {ITS_SESSION} WHERE e.ea = 16"""
_TX_RECORD = f"{_i8('x.session_id')} || {_i8('x.tx_id')} || {_i8('x.tx_ms')} || {_u4('x.cu')}"
# A session's transactions are encoded once, on its zoning_sessions row, and copied to each
# of its screenviews.
_REFRESH_SESSION_TRANSACTIONS = f"""
UPDATE zoning_sessions AS k SET tx = s.tx, tx_amounts = s.amounts
FROM (SELECT x.pid, x.session_id,
             string_agg({_TX_RECORD}, ''::bytea ORDER BY x.tx_id) AS tx,
             string_agg(float8send(x.amount), ''::bytea ORDER BY x.tx_id) AS amounts
      FROM zoning_transactions AS x
      WHERE (x.pid, x.session_id) IN ({_SESSIONS_WITH_NEW_TX})
      GROUP BY x.pid, x.session_id) AS s
WHERE k.pid = s.pid AND k.session_id = s.session_id
"""
_ADD_GESTURES = f"""
INSERT INTO zoning_gestures (pid, session_id, scn, tvp_id, {", ".join(_COUNT_COLUMNS)},
                             first_tap_ms)
SELECT e.pid, k.session_id, e.scn, t.tvp_id,
       count(*) FILTER (WHERE e.ea = 6), count(*) FILTER (WHERE e.ea = 6 AND e.ur = 0),
       count(*) FILTER (WHERE e.ea = 8), count(*) FILTER (WHERE e.ea = 9),
       count(*) FILTER (WHERE e.ea = 10), min(e.corrected_ms) FILTER (WHERE e.ea = 6)
FROM {_NEW} {ITS_SESSION} {ITS_TVP}
WHERE e.ea IN {GESTURE_KINDS}
GROUP BY e.pid, k.session_id, e.scn, t.tvp_id
ORDER BY 1, 2, 3, 4
ON CONFLICT (pid, session_id, scn, tvp_id) DO UPDATE SET
    {", ".join(f"{c} = zoning_gestures.{c} + excluded.{c}" for c in _COUNT_COLUMNS)},
    first_tap_ms = least(zoning_gestures.first_tap_ms, excluded.first_tap_ms)
"""
_SV_COLUMNS = ("sv.pid", "sv.session_id", "sv.scn")
# Screenviews stored before this transaction whose elements changed in it.
_REFRESH_GESTURES = f"""
UPDATE zoning_screenviews AS sv SET
    header = {header_sql(*_SV_COLUMNS, "sv.user_id", "sv.sv_ms")},
    elements = {elements_sql(*_SV_COLUMNS, "sv.sv_ms")}
FROM (SELECT DISTINCT k.pid, k.session_id, e.scn FROM {_NEW} {ITS_SESSION}
      WHERE e.ea IN {GESTURE_KINDS}) AS n
WHERE sv.pid = n.pid AND sv.session_id = n.session_id AND sv.scn = n.scn
"""
_REFRESH_TRANSACTIONS = f"""
UPDATE zoning_screenviews AS sv SET tx = k.tx, tx_amounts = k.tx_amounts
FROM zoning_sessions AS k
WHERE (k.pid, k.session_id) IN ({_SESSIONS_WITH_NEW_TX})
  AND sv.pid = k.pid AND sv.session_id = k.session_id
"""
# New screenview events: per screenview the earliest by (corrected time, euid) — euids
# compared bytewise (COLLATE "C"), as SQLite does — replaces a stored one only if earlier.
_EARLIEST_SCREENVIEWS = f"""
SELECT DISTINCT ON (e.pid, e.uid, e.sn, e.scn) e.*
FROM {_NEW} WHERE e.ea = 4
ORDER BY e.pid, e.uid, e.sn, e.scn, e.corrected_ms, e.euid COLLATE "C"
"""
_UPSERT_SCREENVIEWS = f"""
INSERT INTO zoning_screenviews (pid, session_id, scn, screen, sv_ms, header, elements, tx,
                                tx_amounts, av, dt, euid, user_id)
SELECT e.pid, k.session_id, e.scn, e.screen, e.corrected_ms,
       {header_sql("e.pid", "k.session_id", "e.scn", "k.user_id", "e.corrected_ms")},
       {elements_sql("e.pid", "k.session_id", "e.scn", "e.corrected_ms")},
       k.tx, k.tx_amounts, e.av, e.dt, e.euid, k.user_id
FROM ({_EARLIEST_SCREENVIEWS}) AS e {ITS_SESSION}
ORDER BY 1, 2, 3
ON CONFLICT (pid, session_id, scn) DO UPDATE SET
    screen = excluded.screen, sv_ms = excluded.sv_ms, av = excluded.av, dt = excluded.dt,
    euid = excluded.euid, header = excluded.header, elements = excluded.elements
WHERE excluded.sv_ms < zoning_screenviews.sv_ms
   OR (excluded.sv_ms = zoning_screenviews.sv_ms
       AND excluded.euid COLLATE "C" < zoning_screenviews.euid COLLATE "C")
"""

# The order of the SQLite backend, for the same reasons (see server.store.sqlite_zoning).
# They take no parameters, so they go as one simple-protocol message: one round trip, and one
# wait on the event loop (shared with the HTTP handlers) instead of nine.
_MAINTENANCE = ";\n".join((
    _ADD_USERS, _ADD_SESSIONS, _ADD_TVPS, _ADD_TRANSACTIONS, _REFRESH_SESSION_TRANSACTIONS,
    _ADD_GESTURES, _REFRESH_GESTURES, _REFRESH_TRANSACTIONS, _UPSERT_SCREENVIEWS,
))  # fmt: skip


async def update_zoning(conn: asyncpg.Connection, pids: Sequence[int]) -> None:
    """Fold `new_events` into the zoning tables, inside the ingest transaction."""
    for pid in sorted(set(pids)):  # one order everywhere: no deadlock between two folds
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _FOLD_LOCK_CLASS, pid)
    await conn.execute(_MAINTENANCE)


# -- the query --------------------------------------------------------------------------------

_SELECTION = """
FROM zoning_screenviews
WHERE pid = $1 AND screen = $2 AND sv_ms >= $3 AND sv_ms < $4
  AND ($5::text IS NULL OR av = $5) AND ($6::integer IS NULL OR dt = $6)"""
_SCREENVIEWS = f"""
SELECT string_agg(header, ''::bytea), string_agg(elements, ''::bytea),
       string_agg(tx, ''::bytea), string_agg(tx_amounts, ''::bytea)
{_SELECTION}
"""
_ZONES = f"""
SELECT t.tvp_id, coalesce(m.target, t.tvp), coalesce(m.kind, '{KIND_PATH}')
FROM zoning_tvps AS t LEFT JOIN target_map AS m
  ON m.pid = t.pid AND m.screen = t.screen AND m.av = t.av AND m.tvp = t.tvp
WHERE t.pid = $1 AND (t.screen = $2 OR t.tvp_id = ANY($3::bigint[]))
"""


def _frombuffer(data: bytes | None, dtype: np.dtype | str) -> np.ndarray:
    return np.frombuffer(data or b"", dtype=dtype)


@dataclass(slots=True)
class _Selection:
    """The screenviews of _SCREENVIEWS, decoded (numpy work: run it off the event loop)."""

    screenviews: np.ndarray
    rows: dict[str, np.ndarray]
    transactions: Transactions

    @classmethod
    def decode(cls, parts: Sequence[bytes | None]) -> _Selection:
        tune_allocator()
        headers, elements, tx, amounts = parts
        screenviews = _frombuffer(headers, HEADER_DTYPE)
        rows = expand_views(screenviews, _frombuffer(elements, ELEMENT_DTYPE))
        return cls(
            screenviews, rows, Transactions(_frombuffer(tx, TX_DTYPE), _frombuffer(amounts, ">f8"))
        )

    def report(self, screen: str, zone_of: dict[int, tuple[str, str]]) -> ZoningReport:
        aggregates = zone_aggregates(self.rows, zone_of, lambda: self.transactions)
        return build_report(screen, *screen_totals(self.screenviews), aggregates)


async def zoning(pool: asyncpg.Pool, query: ZoningQuery) -> ZoningReport:
    """The report for one screen and period, from the rollups alone."""
    params = (query.pid, query.screen, query.from_ms, query.to_ms, query.av, query.dt)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # A month of a busy screen is a bitmap scan over most of the table: with the default
        # 4 MB work_mem it goes lossy (490 -> 408 ms measured at 10M events at 64 MB), and
        # JIT compilation only adds its start-up to a query this short.
        await conn.execute("SET LOCAL work_mem = '64MB'; SET LOCAL jit = off")
        # One snapshot for both statements, as SQLite's single statement gives.
        parts = tuple(await conn.fetchrow(_SCREENVIEWS, *params))
        selection = await asyncio.to_thread(_Selection.decode, parts)
        # Elements are attributed by the gesture's own screen and app version; the rare
        # gesture whose url names another screen than its screenview's is looked up by id.
        ids = present_ids(selection.rows)
        zone_of = {
            int(tvp_id): (str(zone), str(kind))
            for tvp_id, zone, kind in await conn.fetch(_ZONES, query.pid, query.screen, ids)
        }
    return await asyncio.to_thread(selection.report, query.screen, zone_of)
