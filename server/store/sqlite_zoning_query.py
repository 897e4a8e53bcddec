"""Zoning on SQLite: the zoning query, from the rollups alone (server.store.sqlite_zoning).

A query is one statement: the blocks of its days (server.store.sqlite_zoning_blocks), plus
one range scan of the rows not in a block (the last days, and days whose block is being
rebuilt). Attribution of a tvp to a reliable target (target_map) happens at query time, so a
snapshot stored after the events still applies to them.
"""

from __future__ import annotations

import asyncio
import binascii
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from server.errors import BadRequest
from server.store.sqlite_zoning_blocks import _MARK, _SCREEN, _SV, DAY_MS
from server.zoning import ZoningQuery, ZoningReport, build_report
from server.zoning.compute import present_ids, screen_totals, tune_allocator, zone_aggregates
from server.zoning.records import Columns, decode_slots, selection, unpack_columns
from server.zoning.report import KIND_PATH

# Parts of the one statement below: 0 a block (binary), 1 screenview records (hex), 2 a
# tvp's zone.
_BLOCKED_DAYS = "b.day >= :from_day AND b.day < min(:to_day, {built_to})"
_BUILT_TO = f"coalesce((SELECT built_to {_MARK}), 0)"
_DIRTY_FROM = f"coalesce((SELECT dirty_from {_MARK}), {_BUILT_TO})"
_ZONES = f"""
SELECT 2, t.tvp_id, coalesce(m.target, t.tvp), coalesce(m.kind, '{KIND_PATH}')
FROM zoning_tvps AS t LEFT JOIN target_map AS m
  ON m.pid = t.pid AND m.screen = t.screen AND m.av = t.av AND m.tvp = t.tvp
WHERE t.pid = :pid AND t.screen = :screen
"""
_RECORDS = f"SELECT 1, CAST(group_concat(rec, '') AS BLOB), NULL, NULL {_SCREEN}"
# One statement, so that every part comes from the same snapshot of the database. Days
# before built_to have their block, but for the days from dirty_from whose block is missing;
# those, days too large for a block, days after built_to and negative times are read from
# the rows. Elements are attributed by the gesture's own screen and app version; the rare
# gesture whose url names another screen than its screenview's is mapped by _ZONES_OF
# afterwards.
_QUERY = f"""
WITH RECURSIVE
span(low, high) AS (
    SELECT max(:from_day, {_DIRTY_FROM}), min(:to_day, {_BUILT_TO})),
missing(day) AS (
    SELECT low FROM span WHERE low < high
    UNION ALL
    SELECT day + 1 FROM missing, span WHERE day + 1 < high)
SELECT 0, b.data, NULL, NULL FROM zoning_blocks AS b
WHERE b.pid = :pid AND b.screen = :screen AND {_BLOCKED_DAYS.format(built_to=_BUILT_TO)}
  AND b.data IS NOT NULL
UNION ALL
SELECT 1, CAST(group_concat(v.rec, '') AS BLOB), NULL, NULL
FROM zoning_blocks AS b JOIN {_SV} AS v
  ON v.pid = :pid AND v.screen = :screen
     AND v.sv_ms >= b.day * {DAY_MS} AND v.sv_ms < (b.day + 1) * {DAY_MS}
WHERE b.pid = :pid AND b.screen = :screen AND {_BLOCKED_DAYS.format(built_to=_BUILT_TO)}
  AND b.data IS NULL
UNION ALL
{_RECORDS} AND sv_ms >= max(:from_ms, {_BUILT_TO} * {DAY_MS}) AND sv_ms < :to_ms
UNION ALL
{_RECORDS} AND sv_ms >= :from_ms AND sv_ms < min(:to_ms, 0)
UNION ALL
SELECT 1, CAST(group_concat(v.rec, '') AS BLOB), NULL, NULL
FROM missing JOIN {_SV} AS v
  ON v.pid = :pid AND v.screen = :screen
     AND v.sv_ms >= missing.day * {DAY_MS} AND v.sv_ms < (missing.day + 1) * {DAY_MS}
WHERE NOT EXISTS (SELECT 1 FROM zoning_blocks AS b
                  WHERE b.pid = :pid AND b.screen = :screen AND b.day = missing.day)
UNION ALL
{_ZONES}
"""
# With an app version or device type: the rows (blocks hold every screenview of a day).
_FILTERED_QUERY = f"""
{_RECORDS} AND sv_ms >= :from_ms AND sv_ms < :to_ms
    AND (:av IS NULL OR av = :av) AND (:dt IS NULL OR dt = :dt)
UNION ALL
{_ZONES}
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
        # The whole days of the period (blocks are for days from 0, the epoch).
        "from_day": max(0, -(-query.from_ms // DAY_MS)),
        "to_day": max(0, query.to_ms // DAY_MS),
    }


class _Parts:
    """The rows of _QUERY, decoded (numpy work: run it off the event loop)."""

    def __init__(self, parts: Sequence[Sequence[Any]]) -> None:
        tune_allocator()
        self.zone_of: dict[int, tuple[str, str]] = {}
        columns: list[Columns] = []
        hexes: list[bytes] = []
        for part, a, b, c in parts:
            if part == 2:
                self.zone_of[int(a)] = (str(b), str(c))
            elif part == 0:
                columns.append(unpack_columns(a))
            elif a is not None:
                hexes.append(a)
        columns.append(decode_slots(binascii.unhexlify(b"".join(hexes))))
        self.selection = selection(columns)
        self.unmapped = [i for i in present_ids(self.selection.rows) if i not in self.zone_of]

    def report(self, screen: str) -> ZoningReport:
        selection = self.selection
        aggregates = zone_aggregates(selection.rows, self.zone_of, selection.transactions)
        totals = screen_totals({"session_id": selection.session_id, "user_id": selection.user_id})
        return build_report(screen, *totals, aggregates)


def zoning_sql(query: ZoningQuery) -> str:
    """The statement of a query: blocks and rows, or rows only with filters."""
    return _QUERY if query.av is None and query.dt is None else _FILTERED_QUERY


async def zoning(conn: aiosqlite.Connection, query: ZoningQuery) -> ZoningReport:
    """The report for one screen and period, from the rollups alone."""
    try:
        async with conn.execute(zoning_sql(query), query_params(query)) as cursor:
            rows = await cursor.fetchall()
    except sqlite3.DataError:
        # SQLITE_TOOBIG: the records read from rows exceed one SQLite string (1 GB, some
        # 8 million screenviews).
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
