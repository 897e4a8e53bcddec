"""Zoning on SQLite: the day blocks, kept up by each fold after its events.

- zoning_blocks: per (screen, UTC day) the records of all its screenviews, concatenated and
  binary, built once a day is two days older than the screen's newest screenview.
  zoning_block_marks says per screen up to which day blocks were built (`built_to`) and
  from which day some may be missing (`dirty_from`): a change to a screenview of a blocked
  day deletes that block (the zoning_blocks_stale trigger of the zoning file, or
  `update_blocks` for new screenviews) and a later fold rebuilds it (a fold with no new
  events too).

A query then reads a finished day as one block rather than its rows
(server.store.sqlite_zoning_query). The day and block constants, and the SQL naming a
screen's rows and its mark, are defined here and taken by the fold, the query and migration
4: the fold calls `update_blocks`, so this module imports none of theirs.
"""

from __future__ import annotations

import binascii
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from server.zoning.records import decode_slots, pack_columns

DAY_MS = 86_400_000
BLOCK_LAG_DAYS = 2  # a day gets its block once the screen has a screenview this many days later
BLOCK_ROWS_PER_COMMIT = 20_000  # block building done by one fold transaction, at most
# A day of more screenviews gets an empty block (data NULL): its rows are read instead. It
# bounds the time one block takes to build (~0.1 s) and keeps far below SQLite's 1 GB value.
BLOCK_MAX_VIEWS = 100_000

# The screenview rows (the fold's), which blocks are built from.
_SV = "zoning_screenviews"
_DIRTY_SCREENS = "SELECT pid, screen FROM zoning_block_marks WHERE dirty_from IS NOT NULL"
_SCREEN = f"FROM {_SV} WHERE pid = :pid AND screen = :screen"
_DAY_ROWS = f"{_SCREEN} AND sv_ms >= :day * {DAY_MS} AND sv_ms < (:day + 1) * {DAY_MS}"
_MARK = "FROM zoning_block_marks WHERE pid = :pid AND screen = :screen"


def update_blocks(
    conn: sqlite3.Connection, screenviews: Iterable[Sequence[Any]], budget: int | None = None
) -> int:
    """After the fold: drop the blocks of the days that got the new screenviews (pid, screen,
    sv_ms), then build missing blocks of their screens and of screens with dropped blocks, up
    to `budget` screenview rows (BLOCK_ROWS_PER_COMMIT); returns the budget left."""
    budget = BLOCK_ROWS_PER_COMMIT if budget is None else budget
    new_days: dict[tuple[int, str], set[int]] = {}
    for pid, screen, sv_ms in screenviews:
        if sv_ms >= 0:
            new_days.setdefault((pid, screen), set()).add(sv_ms // DAY_MS)
    screens = set(new_days).union(conn.execute(_DIRTY_SCREENS).fetchall())
    for pid, screen in sorted(screens):
        days = sorted(new_days.get((pid, screen), ()))
        budget = _update_screen(conn, {"pid": pid, "screen": screen}, days, budget)
    return budget


def _first_day_from(conn: sqlite3.Connection, key: dict[str, Any], day: int) -> int | None:
    (ms,) = conn.execute(
        f"SELECT min(sv_ms) {_SCREEN} AND sv_ms >= :from_ms", {**key, "from_ms": day * DAY_MS}
    ).fetchone()
    return None if ms is None else int(ms) // DAY_MS


def _build_day(conn: sqlite3.Connection, key: dict[str, Any], day: int) -> int:
    """(Re)build the block of one day; returns its number of screenviews (at most
    BLOCK_MAX_VIEWS + 1: a larger day gets a block without data)."""
    at_day = {**key, "day": day}
    (count,) = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 {_DAY_ROWS} LIMIT {BLOCK_MAX_VIEWS + 1})", at_day
    ).fetchone()
    if not count:
        return 0
    data = None
    if count <= BLOCK_MAX_VIEWS:
        (records,) = conn.execute(f"SELECT group_concat(rec, '') {_DAY_ROWS}", at_day).fetchone()
        data = pack_columns(decode_slots(binascii.unhexlify(records)))
    conn.execute(
        "INSERT OR REPLACE INTO zoning_blocks (pid, screen, day, data) "
        "VALUES (:pid, :screen, :day, :data)",
        {**at_day, "data": data},
    )
    return int(count)


def _update_screen(
    conn: sqlite3.Connection, key: dict[str, Any], new_days: list[int], budget: int
) -> int:
    mark = conn.execute(f"SELECT built_to, dirty_from {_MARK}", key).fetchone()
    if mark is None:
        if budget <= 0:
            return budget
        first = _first_day_from(conn, key, 0)
        if first is None:
            return budget
        built_to, dirty_from = first, None
        conn.execute(
            "INSERT INTO zoning_block_marks (pid, screen, built_to) VALUES (:pid, :screen, :day)",
            {**key, "day": built_to},
        )
    else:
        built_to, dirty_from = int(mark[0]), mark[1]
    before = (built_to, dirty_from)
    # New screenviews in days before built_to: their blocks are out of date (or, for a day
    # that had none, it now has screenviews without a block).
    stale = [day for day in new_days if day < built_to]
    if stale:
        conn.executemany(
            "DELETE FROM zoning_blocks WHERE pid = :pid AND screen = :screen AND day = :day",
            [{**key, "day": day} for day in stale],
        )
        dirty_from = min(stale) if dirty_from is None else min(int(dirty_from), *stale)
    # Days whose block was dropped (or that have none: days without screenviews then).
    if dirty_from is not None and budget > 0:
        built = {
            int(d)
            for (d,) in conn.execute(
                "SELECT day FROM zoning_blocks WHERE pid = :pid AND screen = :screen "
                "AND day >= :day AND day < :built_to",
                {**key, "day": dirty_from, "built_to": built_to},
            )
        }
        day: int | None = int(dirty_from)
        while day is not None and day < built_to and budget > 0:
            if day not in built:
                budget -= _build_day(conn, key, day)
            day = _first_day_from(conn, key, day + 1)
        dirty_from = day if day is not None and day < built_to else None
    # Days that became old enough: those before the newest new screenview's minus the lag
    # (a screen that gets no new screenviews has no newly finished days).
    if new_days and budget > 0:
        horizon = max(new_days) - BLOCK_LAG_DAYS
        day = built_to
        while day is not None and day < horizon and budget > 0:
            day = _first_day_from(conn, key, day)
            if day is not None and day < horizon:
                budget -= _build_day(conn, key, day)
                day += 1
        built_to = horizon if day is None else max(built_to, min(day, horizon))
    if (built_to, dirty_from) != before:
        conn.execute(
            "UPDATE zoning_block_marks SET built_to = :built_to, dirty_from = :dirty_from "
            "WHERE pid = :pid AND screen = :screen",
            {**key, "built_to": built_to, "dirty_from": dirty_from},
        )
    return budget
