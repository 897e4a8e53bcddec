"""Zoning on SQLite: the zoning SQL of migrations 2 and 4 (server.store.sqlite_schema).

- Migration 2 creates the zoning tables and, with `ZONING_BACKFILL`, folds the events stored
  before it into them in its own format: hex columns (`header_hex`, `elements_hex`,
  `tx_hex`, `tx_amounts`). It shares the dictionary and gesture statements of the fold
  (server.store.sqlite_zoning).
- Migration 4 (`ZONING_RECORDS_MIGRATION`) converts that result to records, with the fold's
  record SQL, and builds the blocks of the days stored so far as hex
  (server.store.sqlite_zoning_blocks).
- Migration 5 (`ZONING_STALE_TRIGGER`) creates the trigger that drops a day's block when one
  of its screenviews changes.

Migration 7 drops all these tables from the events file: they live in the zoning file since
(server.store.sqlite_zoning_file), which folds the stored events again. Kept apart from the
fold: they run once, when a database is migrated, and the fold uses none of what is defined
here.
"""

from __future__ import annotations

from server.store.sqlite_zoning import (
    _ADD_GESTURES,
    _ADD_SESSIONS,
    _ADD_TVPS,
    _ADD_USERS,
    _AFTER,
    _NEW,
    _NEW_GESTURE_VIEWS,
    _SESSIONS_WITH_NEW_TX,
    screenview_record,
    session_transactions,
    transaction_record,
)
from server.store.sqlite_zoning_blocks import _SV, BLOCK_LAG_DAYS, BLOCK_MAX_VIEWS, DAY_MS
from server.store.zoning_sql import ITS_SESSION, view_gestures
from server.zoning.compute import COUNT_MAX

# -- migration 2's format: hex columns header_hex, elements_hex, tx_hex, tx_amounts ----------
# Frozen: migration 2 folds the events stored before it with these statements, and migration
# 4 converts their result to records.

_COUNT_HEX = ", ".join(
    f"min(g.{c}, {COUNT_MAX})"
    for c in ("taps", "unresponsive_taps", "long_presses", "drags", "flicks")
)


def elements_hex(pid: str, session_id: str, scn: str, sv_ms: str) -> str:
    """SQL for a screenview's elements as compute.ELEMENT_DTYPE hex (NULL without gestures).

    Per element: tvp_id (4 bytes), first tap minus screenview time (8), five counts (4
    each). The arguments are SQL expressions.
    """
    return f"""(SELECT group_concat(printf('%08x%016x%08x%08x%08x%08x%08x', g.tvp_id,
        coalesce(g.first_tap_ms - {sv_ms}, 0), {_COUNT_HEX}), '')
    {view_gestures(pid, session_id, scn)})"""


def header_hex(pid: str, session_id: str, scn: str, user_id: str, sv_ms: str) -> str:
    """SQL for a screenview's compute.HEADER_DTYPE hex: session, user, scn, time, elements."""
    count = f"(SELECT count(*) {view_gestures(pid, session_id, scn)})"
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


# Migration 2's transactions (migration 4 adds their records).
_V2_ADD_TRANSACTIONS = f"""
INSERT INTO zoning_transactions (pid, session_id, tx_ms, cu, amount)
SELECT e.pid, k.session_id, e.corrected_ms, e.tr_cu, e.tr_vl
FROM {_NEW} {ITS_SESSION}
WHERE {_AFTER} AND e.ea = 16
"""
# Migration 2's statements (its hex columns).
_V2_SV_COLUMNS = (f"{_SV}.pid", f"{_SV}.session_id", f"{_SV}.scn")
_V2_REFRESH_GESTURES = f"""
UPDATE {_SV} SET
    header_hex = {header_hex(*_V2_SV_COLUMNS, f"{_SV}.user_id", f"{_SV}.sv_ms")},
    elements_hex = {elements_hex(*_V2_SV_COLUMNS, f"{_SV}.sv_ms")}
FROM {_NEW_GESTURE_VIEWS}
WHERE {_SV}.pid = n.pid AND {_SV}.session_id = n.session_id AND {_SV}.scn = n.scn
"""
_V2_TX_HEX, _V2_TX_AMOUNTS = _session_transactions(
    "zoning_sessions.pid", "zoning_sessions.session_id"
)
_V2_REFRESH_SESSION_TRANSACTIONS = f"""
UPDATE zoning_sessions SET tx_hex = {_V2_TX_HEX}, tx_amounts = {_V2_TX_AMOUNTS}
WHERE session_id IN ({_SESSIONS_WITH_NEW_TX})
"""
_V2_REFRESH_TRANSACTIONS = f"""
UPDATE {_SV} SET tx_hex = k.tx_hex, tx_amounts = k.tx_amounts
FROM zoning_sessions AS k
WHERE k.session_id IN ({_SESSIONS_WITH_NEW_TX})
  AND {_SV}.pid = k.pid AND {_SV}.session_id = k.session_id
"""
_V2_UPSERT_SCREENVIEWS = f"""
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
ZONING_BACKFILL = ";\n".join(
    sql.replace(":after", "0").replace(":upto", str(2**63 - 1))
    for sql in (
        _ADD_USERS, _ADD_SESSIONS, _ADD_TVPS, _V2_ADD_TRANSACTIONS,
        _V2_REFRESH_SESSION_TRANSACTIONS, _ADD_GESTURES, _V2_REFRESH_GESTURES,
        _V2_REFRESH_TRANSACTIONS, _V2_UPSERT_SCREENVIEWS,
    )
)  # fmt: skip

# -- migration 4: from migration 2's hex columns to records, and the day blocks ---------------

_V4_TABLES = f"""
CREATE TABLE {_SV} (
    pid INTEGER NOT NULL,
    screen TEXT NOT NULL,
    sv_ms INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    scn INTEGER NOT NULL,
    av TEXT NOT NULL,
    dt INTEGER NOT NULL,
    rec TEXT NOT NULL,
    euid TEXT NOT NULL,
    PRIMARY KEY (pid, screen, sv_ms, session_id, scn)
) WITHOUT ROWID;
CREATE TABLE zoning_blocks (
    block_id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,
    screen TEXT NOT NULL,
    day INTEGER NOT NULL,
    data BLOB,
    UNIQUE (pid, screen, day)
);
CREATE TABLE zoning_block_marks (
    pid INTEGER NOT NULL,
    screen TEXT NOT NULL,
    built_to INTEGER NOT NULL,
    dirty_from INTEGER,
    PRIMARY KEY (pid, screen)
) WITHOUT ROWID;
CREATE INDEX zoning_block_marks_dirty ON zoning_block_marks (pid, screen)
WHERE dirty_from IS NOT NULL;
CREATE INDEX zoning_blocks_hex ON zoning_blocks (pid, screen, day) WHERE typeof(data) = 'text'"""
ZONING_RECORDS_MIGRATION = ";\n".join((
    "ALTER TABLE zoning_transactions ADD COLUMN rec TEXT",
    f"""UPDATE zoning_transactions
    SET rec = {transaction_record("tx_ms", "cu", "amount")}""",
    "DROP INDEX zoning_transactions_by_session",
    """CREATE INDEX zoning_transactions_by_session
    ON zoning_transactions (pid, session_id, tx_id, rec)""",
    "ALTER TABLE zoning_sessions ADD COLUMN tx_rec TEXT",
    f"""UPDATE zoning_sessions
    SET tx_rec = {session_transactions("zoning_sessions.pid", "zoning_sessions.session_id")}
    WHERE tx_hex IS NOT NULL""",
    "DROP INDEX zoning_screenviews_by_session",
    f"ALTER TABLE {_SV} RENAME TO zoning_screenviews_v2",
    _V4_TABLES,
    f"""INSERT INTO {_SV} (pid, screen, sv_ms, session_id, scn, av, dt, rec, euid)
    SELECT v.pid, v.screen, v.sv_ms, v.session_id, v.scn, v.av, v.dt,
           {screenview_record("v.pid", "v.session_id", "v.scn", "k.user_id", "v.sv_ms",
                              "k.tx_rec")},
           v.euid
    FROM zoning_screenviews_v2 AS v JOIN zoning_sessions AS k ON k.session_id = v.session_id
    ORDER BY v.pid, v.screen, v.sv_ms, v.session_id, v.scn""",
    "DROP TABLE zoning_screenviews_v2",
    f"CREATE UNIQUE INDEX zoning_screenviews_by_session ON {_SV} (pid, session_id, scn)",
    "ALTER TABLE zoning_sessions DROP COLUMN tx_hex",
    "ALTER TABLE zoning_sessions DROP COLUMN tx_amounts",
    # Blocks of the days stored so far, as hex (the writer's are binary; queries take both).
    f"""INSERT INTO zoning_block_marks (pid, screen, built_to)
    SELECT pid, screen, max(0, max(sv_ms) / {DAY_MS} - {BLOCK_LAG_DAYS}) FROM {_SV}
    WHERE sv_ms >= 0 GROUP BY pid, screen""",
    f"""INSERT INTO zoning_blocks (pid, screen, day)
    SELECT v.pid, v.screen, v.sv_ms / {DAY_MS}
    FROM {_SV} AS v JOIN zoning_block_marks AS m ON m.pid = v.pid AND m.screen = v.screen
    WHERE v.sv_ms >= 0 AND v.sv_ms / {DAY_MS} < m.built_to
    GROUP BY v.pid, v.screen, v.sv_ms / {DAY_MS}""",
    f"""UPDATE zoning_blocks SET data = (
        SELECT group_concat(v.rec, '') FROM {_SV} AS v
        WHERE v.pid = zoning_blocks.pid AND v.screen = zoning_blocks.screen
          AND v.sv_ms >= zoning_blocks.day * {DAY_MS}
          AND v.sv_ms < (zoning_blocks.day + 1) * {DAY_MS})
    WHERE (SELECT count(*) FROM (
        SELECT 1 FROM {_SV} AS v
        WHERE v.pid = zoning_blocks.pid AND v.screen = zoning_blocks.screen
          AND v.sv_ms >= zoning_blocks.day * {DAY_MS}
          AND v.sv_ms < (zoning_blocks.day + 1) * {DAY_MS}
        LIMIT {BLOCK_MAX_VIEWS + 1})) <= {BLOCK_MAX_VIEWS}""",
))  # fmt: skip


# Migration 5: one statement (its body holds semicolons, so the migration is a tuple of
# statements, not a script to split). IF NOT EXISTS: databases of before this migration got
# the trigger from their writer.
ZONING_STALE_TRIGGER = f"""
CREATE TRIGGER IF NOT EXISTS zoning_blocks_stale AFTER UPDATE ON {_SV}
WHEN OLD.sv_ms >= 0 AND OLD.sv_ms / {DAY_MS} < (
    SELECT built_to FROM zoning_block_marks WHERE pid = OLD.pid AND screen = OLD.screen)
BEGIN
    DELETE FROM zoning_blocks
    WHERE pid = OLD.pid AND screen = OLD.screen AND day = OLD.sv_ms / {DAY_MS};
    UPDATE zoning_block_marks
    SET dirty_from = min(coalesce(dirty_from, OLD.sv_ms / {DAY_MS}), OLD.sv_ms / {DAY_MS})
    WHERE pid = OLD.pid AND screen = OLD.screen;
END
"""
