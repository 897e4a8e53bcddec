"""Zoning on SQLite: rollups kept exact in the ingest transaction, and the zoning query.

Tables (migration 2), maintained by `update_zoning` from exactly the events the current
transaction inserted (a duplicate (pid, euid) is never inserted into `events`, so it is
never counted twice):

- zoning_users, zoning_sessions, zoning_tvps: dictionaries giving users, sessions (pid, uid,
  sn) and elements (pid, screen, av, tvp of a gesture) integer ids. Session ids grow with
  time, so rows keyed by them are appended rather than scattered (fewer pages per commit).
- zoning_transactions: every transaction, by session.
- zoning_gestures: per (session, scn, tvp) the gesture counts and the first tap's time —
  whether or not the screenview has arrived.
- zoning_screenviews: one row per screenview (session, scn) — its screenview event, the
  earliest by (corrected time, euid) if an SDK sent several — clustered by (screen, time).
  The row carries, as fixed-width hex, what a query needs: a header (session, user, time,
  number of elements), its elements (counts and first tap per tvp) and its session's
  transactions (server.zoning.compute dtypes). They are recomputed whenever one of their
  inputs changes.

A query is then one range scan of zoning_screenviews. Attribution of a tvp to a reliable
target (target_map) happens at query time, so a snapshot stored after the events still
applies to them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from server.errors import BadRequest
from server.store.zoning_sql import GESTURE_KINDS, ITS_SESSION, ITS_TVP, ZONING_KINDS
from server.zoning import ZoningQuery, ZoningReport, build_report
from server.zoning.compute import (
    COUNT_MAX,
    decode_elements,
    decode_headers,
    decode_transactions,
    expand,
    present_ids,
    screen_totals,
    zone_aggregates,
)
from server.zoning.report import KIND_PATH

_COUNT_HEX = ", ".join(
    f"min(g.{c}, {COUNT_MAX})"
    for c in ("taps", "unresponsive_taps", "long_presses", "drags", "flicks")
)


def elements_hex(pid: str, session_id: str, scn: str, sv_ms: str) -> str:
    """SQL for a screenview's elements as ELEMENT_DTYPE hex (NULL without gestures).

    Per element: tvp_id (4 bytes), first tap minus screenview time (8), five counts (4
    each). The arguments are SQL expressions.
    """
    return f"""(SELECT group_concat(printf('%08x%016x%08x%08x%08x%08x%08x', g.tvp_id,
        coalesce(g.first_tap_ms - {sv_ms}, 0), {_COUNT_HEX}), '')
    FROM zoning_gestures AS g
    WHERE g.pid = {pid} AND g.session_id = {session_id} AND g.scn = {scn})"""


def header_hex(pid: str, session_id: str, scn: str, user_id: str, sv_ms: str) -> str:
    """SQL for a screenview's HEADER_DTYPE hex: session, user, scn, time, element count."""
    count = f"""(SELECT count(*) FROM zoning_gestures AS g
        WHERE g.pid = {pid} AND g.session_id = {session_id} AND g.scn = {scn})"""
    return f"printf('%016x%08x%08x%016x%08x', {session_id}, {user_id}, {scn}, {sv_ms}, {count})"


def _session_transactions(pid: str, session_id: str) -> tuple[str, str]:
    """SQL for a session's transactions as (TX_DTYPE hex, exact decimals), NULL without any."""
    # Both read the same index range (ordered by tx_id), so their items pair up in order.
    rows = f"""FROM zoning_transactions AS x INDEXED BY zoning_transactions_by_session
          WHERE x.pid = {pid} AND x.session_id = {session_id}"""
    return (
        f"(SELECT group_concat(printf('%016x%016x%016x%08x', session_id, tx_id, tx_ms, cu), '')"
        f" {rows})",
        f"(SELECT group_concat(printf('%!.17g', amount), ',') {rows})",
    )


# count(CASE …) and not sum(…): a tap from /v1/touches may have no `ur` (NULL), which is not
# unresponsive, and sum() over NULLs would be NULL.
_GESTURE_SUMS = """
    count(CASE WHEN e.ea = 6 THEN 1 END), count(CASE WHEN e.ea = 6 AND e.ur = 0 THEN 1 END),
    count(CASE WHEN e.ea = 8 THEN 1 END), count(CASE WHEN e.ea = 9 THEN 1 END),
    count(CASE WHEN e.ea = 10 THEN 1 END), min(CASE WHEN e.ea = 6 THEN e.corrected_ms END)"""
_COUNTS = "taps, unresponsive_taps, long_presses, drags, flicks, first_tap_ms"
_ADD_COUNTS = """
    taps = taps + excluded.taps,
    unresponsive_taps = unresponsive_taps + excluded.unresponsive_taps,
    long_presses = long_presses + excluded.long_presses,
    drags = drags + excluded.drags,
    flicks = flicks + excluded.flicks,
    first_tap_ms = CASE WHEN first_tap_ms IS NULL OR excluded.first_tap_ms < first_tap_ms
                        THEN excluded.first_tap_ms ELSE first_tap_ms END"""
# The events this transaction inserted: a rowid range (NOT INDEXED keeps the planner on it).
_NEW = "events AS e NOT INDEXED"
_AFTER = "e.rowid > :after"

_ADD_USERS = f"""
INSERT INTO zoning_users (pid, uid)
SELECT DISTINCT e.pid, e.uid FROM {_NEW} WHERE {_AFTER} AND e.ea IN {ZONING_KINDS}
ON CONFLICT (pid, uid) DO NOTHING
"""
_ADD_SESSIONS = f"""
INSERT INTO zoning_sessions (pid, uid, sn, user_id)
SELECT n.pid, n.uid, n.sn, u.user_id
FROM (SELECT DISTINCT e.pid, e.uid, e.sn FROM {_NEW}
      WHERE {_AFTER} AND e.ea IN {ZONING_KINDS}) AS n
JOIN zoning_users AS u ON u.pid = n.pid AND u.uid = n.uid
WHERE true
ON CONFLICT (pid, uid, sn) DO NOTHING
"""
_ADD_TVPS = f"""
INSERT INTO zoning_tvps (pid, screen, av, tvp)
SELECT DISTINCT e.pid, e.screen, e.av, e.tvp FROM {_NEW}
WHERE {_AFTER} AND e.ea IN {GESTURE_KINDS}
ON CONFLICT (pid, screen, av, tvp) DO NOTHING
"""
_ADD_TRANSACTIONS = f"""
INSERT INTO zoning_transactions (pid, session_id, tx_ms, cu, amount)
SELECT e.pid, k.session_id, e.corrected_ms, e.tr_cu, e.tr_vl
FROM {_NEW} {ITS_SESSION}
WHERE {_AFTER} AND e.ea = 16
"""
_ADD_GESTURES = f"""
INSERT INTO zoning_gestures (pid, session_id, scn, tvp_id, {_COUNTS})
SELECT e.pid, k.session_id, e.scn, t.tvp_id, {_GESTURE_SUMS}
FROM {_NEW} {ITS_SESSION} {ITS_TVP}
WHERE {_AFTER} AND e.ea IN {GESTURE_KINDS}
GROUP BY k.session_id, e.scn, t.tvp_id
ON CONFLICT (pid, session_id, scn, tvp_id) DO UPDATE SET {_ADD_COUNTS}
"""
_SV = "zoning_screenviews"
# Screenviews stored before this transaction whose elements or transactions changed in it.
_SV_COLUMNS = (f"{_SV}.pid", f"{_SV}.session_id", f"{_SV}.scn")
_REFRESH_GESTURES = f"""
UPDATE {_SV} SET
    header_hex = {header_hex(*_SV_COLUMNS, f"{_SV}.user_id", f"{_SV}.sv_ms")},
    elements_hex = {elements_hex(*_SV_COLUMNS, f"{_SV}.sv_ms")}
FROM (SELECT DISTINCT k.pid, k.session_id, e.scn FROM {_NEW} {ITS_SESSION}
      WHERE {_AFTER} AND e.ea IN {GESTURE_KINDS}) AS n
WHERE {_SV}.pid = n.pid AND {_SV}.session_id = n.session_id AND {_SV}.scn = n.scn
"""
_SESSIONS_WITH_NEW_TX = f"""
SELECT k.session_id FROM {_NEW} {ITS_SESSION} WHERE {_AFTER} AND e.ea = 16"""
_TX_HEX, _TX_AMOUNTS = _session_transactions("zoning_sessions.pid", "zoning_sessions.session_id")
# A session's transactions are formatted once, on its zoning_sessions row, and copied to
# each of its screenviews.
_REFRESH_SESSION_TRANSACTIONS = f"""
UPDATE zoning_sessions SET tx_hex = {_TX_HEX}, tx_amounts = {_TX_AMOUNTS}
WHERE session_id IN ({_SESSIONS_WITH_NEW_TX})
"""
_REFRESH_TRANSACTIONS = f"""
UPDATE {_SV} SET tx_hex = k.tx_hex, tx_amounts = k.tx_amounts
FROM zoning_sessions AS k
WHERE k.session_id IN ({_SESSIONS_WITH_NEW_TX})
  AND {_SV}.pid = k.pid AND {_SV}.session_id = k.session_id
"""
# New screenview events. Another event of a stored screenview replaces it only if earlier
# (ties: the smaller euid), and then the elements are recomputed for its time.
_UPSERT_SCREENVIEWS = f"""
INSERT INTO {_SV} (pid, screen, sv_ms, session_id, scn, header_hex, elements_hex, tx_hex,
                   tx_amounts, av, dt, euid, user_id)
SELECT e.pid, e.screen, e.corrected_ms, k.session_id, e.scn,
       {header_hex("e.pid", "k.session_id", "e.scn", "k.user_id", "e.corrected_ms")},
       {elements_hex("e.pid", "k.session_id", "e.scn", "e.corrected_ms")},
       k.tx_hex, k.tx_amounts, e.av, e.dt, e.euid, k.user_id
FROM {_NEW} {ITS_SESSION}
WHERE {_AFTER} AND e.ea = 4
ON CONFLICT (pid, session_id, scn) DO UPDATE SET
    screen = excluded.screen, sv_ms = excluded.sv_ms, av = excluded.av, dt = excluded.dt,
    euid = excluded.euid, header_hex = excluded.header_hex, elements_hex = excluded.elements_hex
WHERE excluded.sv_ms < sv_ms OR (excluded.sv_ms = sv_ms AND excluded.euid < euid)
"""

# In this order: what a screenview row is computed from comes first; the refreshes only find
# screenviews stored by earlier transactions; new screenviews are computed when inserted.
_MAINTENANCE = (
    _ADD_USERS, _ADD_SESSIONS, _ADD_TVPS, _ADD_TRANSACTIONS, _REFRESH_SESSION_TRANSACTIONS,
    _ADD_GESTURES, _REFRESH_GESTURES, _REFRESH_TRANSACTIONS, _UPSERT_SCREENVIEWS,
)  # fmt: skip

# Migration 2 folds the events stored before it with the same statements.
ZONING_BACKFILL = ";\n".join(sql.replace(":after", "0") for sql in _MAINTENANCE)


def zoning_mark(conn: sqlite3.Connection) -> int:
    """Call at the start of an ingest transaction; pass the result to `update_zoning`.

    The events inserted later in the transaction have larger rowids: SQLite gives a new row
    max(rowid) + 1 while that is below 2**63 - 1.
    """
    (mark,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
    return int(mark)


def update_zoning(conn: sqlite3.Connection, after: int) -> None:
    """Fold the events inserted since `zoning_mark` into the zoning tables (same transaction).

    A fixed number of set-based statements over the new events, whatever their order.
    """
    new = {"after": after}
    for sql in _MAINTENANCE:
        conn.execute(sql, new)


# -- the query --------------------------------------------------------------------------------


def _selection() -> str:
    """The rows of one screen and period (and app version, device type when given)."""
    return """
    pid = :pid AND screen = :screen AND sv_ms >= :from_ms AND sv_ms < :to_ms
    AND (:av IS NULL OR av = :av) AND (:dt IS NULL OR dt = :dt)"""


# One statement, so that every part comes from the same snapshot of the database. The hex
# comes back as bytes (CAST AS BLOB): no UTF-8 decoding into a str on the way. Elements are
# attributed by the gesture's own screen and app version; the rare gesture whose url names
# another screen than its screenview's is mapped by _ZONES_OF afterwards.
_QUERY = f"""
SELECT 0, CAST(group_concat(header_hex, '') AS BLOB),
       CAST(group_concat(elements_hex, '') AS BLOB), CAST(group_concat(tx_hex, '') AS BLOB),
       group_concat(tx_amounts, ',')
FROM zoning_screenviews WHERE {_selection()}
UNION ALL
SELECT 1, t.tvp_id, coalesce(m.target, t.tvp), coalesce(m.kind, '{KIND_PATH}'), NULL
FROM zoning_tvps AS t LEFT JOIN target_map AS m
  ON m.pid = t.pid AND m.screen = t.screen AND m.av = t.av AND m.tvp = t.tvp
WHERE t.pid = :pid AND t.screen = :screen
"""
_ZONES_OF = f"""
SELECT t.tvp_id, coalesce(m.target, t.tvp), coalesce(m.kind, '{KIND_PATH}')
FROM json_each(:ids) AS j JOIN zoning_tvps AS t ON t.tvp_id = j.value
LEFT JOIN target_map AS m
  ON m.pid = t.pid AND m.screen = t.screen AND m.av = t.av AND m.tvp = t.tvp
"""


def query_params(query: ZoningQuery) -> dict[str, object]:
    return {
        "pid": query.pid,
        "screen": query.screen,
        "from_ms": query.from_ms,
        "to_ms": query.to_ms,
        "av": query.av,
        "dt": query.dt,
    }


class _Parts:
    """The rows of _QUERY, decoded (numpy work: run it off the event loop)."""

    def __init__(self, parts: Sequence[Sequence[Any]]) -> None:
        self.zone_of: dict[int, tuple[str, str]] = {}
        for part, a, b, c, d in parts:
            if part == 1:
                self.zone_of[int(a)] = (str(b), str(c))
            else:
                self.screenviews = decode_headers(a)
                self.rows = expand(self.screenviews, decode_elements(b))
                self.transactions_hex: tuple[Any, Any] = (c, d)
        self.unmapped = [i for i in present_ids(self.rows) if i not in self.zone_of]

    def report(self, screen: str) -> ZoningReport:
        aggregates = zone_aggregates(
            self.rows, self.zone_of, lambda: decode_transactions(*self.transactions_hex)
        )
        return build_report(screen, *screen_totals(self.screenviews), aggregates)


async def zoning(conn: aiosqlite.Connection, query: ZoningQuery) -> ZoningReport:
    """The report for one screen and period, from the rollups alone."""
    try:
        async with conn.execute(_QUERY, query_params(query)) as cursor:
            rows = await cursor.fetchall()
    except sqlite3.DataError:
        # SQLITE_TOOBIG: the hex of the selection exceeds one SQLite string (1 GB, some
        # 4 million screenviews).
        raise BadRequest(
            "The selection is too large for one zoning query; choose a shorter period."
        ) from None
    parts = await asyncio.to_thread(_Parts, list(rows))
    if parts.unmapped:
        # tvp ids never change; only their target could, by a snapshot stored in between.
        async with conn.execute(_ZONES_OF, {"ids": str(parts.unmapped)}) as cursor:
            for tvp_id, zone, kind in await cursor.fetchall():
                parts.zone_of[int(tvp_id)] = (str(zone), str(kind))
    return await asyncio.to_thread(parts.report, query.screen)
