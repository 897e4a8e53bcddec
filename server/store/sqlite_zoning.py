"""Zoning on SQLite: rollups kept exact in the ingest transaction, and the zoning query.

Tables (migrations 2 and 4), maintained by `update_zoning` from exactly the events the
current transaction inserted (a duplicate (pid, euid) is never inserted into `events`, so it
is never counted twice):

- zoning_users, zoning_sessions, zoning_tvps: dictionaries giving users, sessions (pid, uid,
  sn) and elements (pid, screen, av, tvp of a gesture) integer ids. Session ids grow with
  time, so rows keyed by them are appended rather than scattered (fewer pages per commit).
  A session row also keeps its transactions as records (`tx_rec`).
- zoning_transactions: every transaction, by session.
- zoning_gestures: per (session, scn, tvp) the gesture counts and the first tap's time —
  whether or not the screenview has arrived.
- zoning_screenviews: one row per screenview (session, scn) — its screenview event, the
  earliest by (corrected time, euid) if an SDK sent several — clustered by (screen, time).
  `rec` is what a query needs of it, as hex records (server.zoning.records): its session's
  transactions, the screenview (session, user, time) and its elements (counts and first
  tap per tvp). It is recomputed whenever one of its inputs changes.
- zoning_blocks: per (screen, UTC day) the records of all its screenviews, concatenated and
  binary, built once a day is two days older than the screen's newest screenview.
  zoning_block_marks says per screen up to which day blocks were built (`built_to`) and
  from which day some may be missing (`dirty_from`): a change to a screenview of a blocked
  day deletes that block (the zoning_blocks_stale trigger, or `_DROP_NEW_DAY_BLOCKS` for
  new screenviews) and the writer rebuilds it on a later commit.

A query is then one statement: the blocks of its days, plus one range scan of the rows not
in a block (the last days, and days whose block is being rebuilt). Attribution of a tvp to
a reliable target (target_map) happens at query time, so a snapshot stored after the events
still applies to them.
"""

from __future__ import annotations

import asyncio
import binascii
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

from server.errors import BadRequest
from server.store.zoning_sql import GESTURE_KINDS, ITS_SESSION, ITS_TVP, ZONING_KINDS
from server.zoning import ZoningQuery, ZoningReport, build_report
from server.zoning.compute import (
    COUNT_MAX,
    present_ids,
    screen_totals,
    tune_allocator,
    zone_aggregates,
)
from server.zoning.records import (
    CONTINUATION,
    DTYPES,
    ELEMENT,
    TRANSACTION,
    TRANSACTION_TEXT,
    VIEW,
    WIDE_ELEMENT,
    Columns,
    decode_slots,
    pack_columns,
    selection,
    unpack_columns,
)
from server.zoning.report import KIND_PATH

DAY_MS = 86_400_000
BLOCK_LAG_DAYS = 2  # a day gets its block once the screen has a screenview this many days later
BLOCK_ROWS_PER_COMMIT = 20_000  # block building done by one ingest transaction, at most
# A day of more screenviews gets an empty block (data NULL): its rows are read instead. It
# bounds the time one block takes to build (~0.1 s) and keeps far below SQLite's 1 GB value.
BLOCK_MAX_VIEWS = 100_000

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
    FROM zoning_gestures AS g
    WHERE g.pid = {pid} AND g.session_id = {session_id} AND g.scn = {scn})"""


def header_hex(pid: str, session_id: str, scn: str, user_id: str, sv_ms: str) -> str:
    """SQL for a screenview's compute.HEADER_DTYPE hex: session, user, scn, time, elements."""
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


# -- the fold ---------------------------------------------------------------------------------

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
# Migration 2's transactions (migration 4 adds their records).
_V2_ADD_TRANSACTIONS = f"""
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
_SESSIONS_WITH_NEW_TX = f"""
SELECT k.session_id FROM {_NEW} {ITS_SESSION} WHERE {_AFTER} AND e.ea = 16"""
_NEW_GESTURE_VIEWS = f"""(SELECT DISTINCT k.pid, k.session_id, e.scn FROM {_NEW} {ITS_SESSION}
      WHERE {_AFTER} AND e.ea IN {GESTURE_KINDS}) AS n"""

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
    sql.replace(":after", "0")
    for sql in (
        _ADD_USERS, _ADD_SESSIONS, _ADD_TVPS, _V2_ADD_TRANSACTIONS,
        _V2_REFRESH_SESSION_TRANSACTIONS, _ADD_GESTURES, _V2_REFRESH_GESTURES,
        _V2_REFRESH_TRANSACTIONS, _V2_UPSERT_SCREENVIEWS,
    )
)  # fmt: skip

# -- records (server.zoning.records), as hex ---------------------------------------------------

_U32 = 2**32 - 1


def record_sql(kind: int, values: dict[str, str], text: str = "") -> str:
    """SQL for a record of `kind` (server.zoning.records): printf of each field of its
    dtype, `values` giving each field's SQL (in range for the field's width, as unsigned
    hex of its two's complement: narrower signed fields must be masked); a field of
    characters takes the next ones of `text`, the hex of an ASCII string."""
    dtype = DTYPES[kind]
    parts: list[str] = []
    formats: list[str] = []
    args: list[str] = []
    used = 0
    for name in dtype.names or ():
        field = dtype.fields[name][0]  # type: ignore[index]
        if name.startswith("kind"):
            formats.append(f"{kind if name == 'kind0' else CONTINUATION:02x}")
        elif name.startswith("pad"):
            formats.append("00" * field.itemsize)
        elif field.kind == "S":
            if formats:
                parts.append(f"printf('{''.join(formats)}', {', '.join(args)})" if args
                             else f"'{''.join(formats)}'")  # fmt: skip
                formats, args = [], []
            parts.append(f"substr({text}, {used + 1}, {2 * field.itemsize})")
            used += 2 * field.itemsize
        else:
            formats.append(f"%0{2 * field.itemsize}x")
            args.append(values[name])
    if formats:
        parts.append(
            f"printf('{''.join(formats)}', {', '.join(args)})" if args else f"'{''.join(formats)}'"
        )
    return " || ".join(parts)


def view_record(session_id: str, user_id: str, sv_ms: str) -> str:
    """SQL for a VIEW record; the arguments are SQL expressions."""
    return record_sql(VIEW, {
        "session_id": session_id, "user_low": f"{user_id} & {_U32}",
        "user_high": f"{user_id} >> 32", "sv_ms": sv_ms,
    })  # fmt: skip


def _element_record(delay: str) -> str:
    """SQL for the record of gesture row `g` (ELEMENT, or WIDE_ELEMENT when it must be)."""
    fits = (
        f"g.tvp_id BETWEEN 0 AND {_U32} AND {delay} BETWEEN {-(2**31)} AND {2**31 - 1} "
        "AND g.taps < 65536 AND g.unresponsive_taps < 65536 AND g.long_presses < 256 "
        "AND g.drags < 256 AND g.flicks < 256"
    )
    counts = ("taps", "unresponsive_taps", "long_presses", "drags", "flicks")
    element = record_sql(
        ELEMENT, {"tvp_id": "g.tvp_id", "delay_ms": f"{delay} & {_U32}"}
        | {name: f"g.{name}" for name in counts}
    )  # fmt: skip
    wide = record_sql(
        WIDE_ELEMENT, {"tvp_id": "g.tvp_id", "delay_ms": delay}
        | {name: f"min(g.{name}, {COUNT_MAX})" for name in counts}
    )  # fmt: skip
    return f"CASE WHEN {fits} THEN {element} ELSE {wide} END"


def elements_records(pid: str, session_id: str, scn: str, sv_ms: str) -> str:
    """SQL for a screenview's element records (NULL without gestures)."""
    delay = f"coalesce(g.first_tap_ms - {sv_ms}, 0)"
    return f"""(SELECT group_concat({_element_record(delay)}, '')
    FROM zoning_gestures AS g
    WHERE g.pid = {pid} AND g.session_id = {session_id} AND g.scn = {scn})"""


def transaction_record(tx_ms: str, cu: str, amount: str) -> str:
    """SQL for a transaction's record: TRANSACTION (the amount in millionths) when that is
    exact, else TRANSACTION_TEXT (the amount as 24 characters: 17 significant digits, as
    printf('%!.17g') gives). The arguments are SQL expressions."""
    micros = f"CAST(round({amount} * 1000000) AS INTEGER)"
    exact = f"abs({amount}) < 1e12 AND {micros} / 1000000.0 = {amount}"
    keys = {"tx_ms": tx_ms, "cu": f"{cu} & {_U32}"}
    in_micros = record_sql(TRANSACTION, keys | {"micros": micros})
    in_text = record_sql(TRANSACTION_TEXT, keys, text=f"hex(printf('%!24.16e', {amount}))")
    return f"CASE WHEN {exact} THEN {in_micros} ELSE {in_text} END"


# A transaction's record is made once, when it is stored; a session's are concatenated in
# tx_id order.
_ADD_TRANSACTIONS = f"""
INSERT INTO zoning_transactions (pid, session_id, tx_ms, cu, amount, rec)
SELECT e.pid, k.session_id, e.corrected_ms, e.tr_cu, e.tr_vl,
       {transaction_record("e.corrected_ms", "e.tr_cu", "e.tr_vl")}
FROM {_NEW} {ITS_SESSION}
WHERE {_AFTER} AND e.ea = 16
"""


def session_transactions(pid: str, session_id: str) -> str:
    """SQL for a session's TRANSACTION records (NULL without any), in tx_id order."""
    return f"""(SELECT group_concat(x.rec, '')
    FROM zoning_transactions AS x INDEXED BY zoning_transactions_by_session
    WHERE x.pid = {pid} AND x.session_id = {session_id})"""


def screenview_record(
    pid: str, session_id: str, scn: str, user_id: str, sv_ms: str, tx_rec: str
) -> str:
    """SQL for a screenview row's `rec`: its session's transactions, itself, its elements."""
    return (
        f"coalesce({tx_rec}, '') || {view_record(session_id, user_id, sv_ms)}"
        f" || coalesce({elements_records(pid, session_id, scn, sv_ms)}, '')"
    )


def _rec_of_row(session: str) -> str:
    """`rec` of the zoning_screenviews row being updated, its session row being `session`."""
    return screenview_record(
        f"{_SV}.pid", f"{_SV}.session_id", f"{_SV}.scn", f"{session}.user_id", f"{_SV}.sv_ms",
        f"{session}.tx_rec",
    )  # fmt: skip


# A session's transactions are formatted once, on its zoning_sessions row, and copied to
# each of its screenviews.
_REFRESH_SESSION_TRANSACTIONS = f"""
UPDATE zoning_sessions
SET tx_rec = {session_transactions("zoning_sessions.pid", "zoning_sessions.session_id")}
WHERE session_id IN ({_SESSIONS_WITH_NEW_TX})
"""
# Screenviews stored before this transaction whose elements or transactions changed in it.
_REFRESH_GESTURES = f"""
UPDATE {_SV} SET rec = {_rec_of_row("k")}
FROM {_NEW_GESTURE_VIEWS} JOIN zoning_sessions AS k ON k.session_id = n.session_id
WHERE {_SV}.pid = n.pid AND {_SV}.session_id = n.session_id AND {_SV}.scn = n.scn
"""
_REFRESH_TRANSACTIONS = f"""
UPDATE {_SV} SET rec = {_rec_of_row("k")}
FROM zoning_sessions AS k
WHERE k.session_id IN ({_SESSIONS_WITH_NEW_TX})
  AND {_SV}.pid = k.pid AND {_SV}.session_id = k.session_id
"""
# New screenview events. Another event of a stored screenview replaces it only if earlier
# (ties: the smaller euid), and then the elements are recomputed for its time.
_UPSERT_SCREENVIEWS = f"""
INSERT INTO {_SV} (pid, screen, sv_ms, session_id, scn, av, dt, rec, euid)
SELECT e.pid, e.screen, e.corrected_ms, k.session_id, e.scn, e.av, e.dt,
       {screenview_record("e.pid", "k.session_id", "e.scn", "k.user_id", "e.corrected_ms",
                          "k.tx_rec")},
       e.euid
FROM {_NEW} {ITS_SESSION}
WHERE {_AFTER} AND e.ea = 4
ON CONFLICT (pid, session_id, scn) DO UPDATE SET
    screen = excluded.screen, sv_ms = excluded.sv_ms, av = excluded.av, dt = excluded.dt,
    euid = excluded.euid, rec = excluded.rec
WHERE excluded.sv_ms < sv_ms OR (excluded.sv_ms = sv_ms AND excluded.euid < euid)
"""  # fmt: skip
# Created by the writer before it builds any block (migrations run their scripts statement
# by statement, split at semicolons, which a trigger's body needs).
_STALE_TRIGGER = f"""
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

# In this order: what a screenview row is computed from comes first; the refreshes only find
# screenviews stored by earlier transactions; new screenviews are computed when inserted.
_MAINTENANCE = (
    _ADD_USERS, _ADD_SESSIONS, _ADD_TVPS, _ADD_TRANSACTIONS, _REFRESH_SESSION_TRANSACTIONS,
    _ADD_GESTURES, _REFRESH_GESTURES, _REFRESH_TRANSACTIONS, _UPSERT_SCREENVIEWS,
)  # fmt: skip

# Migration 4: from migration 2's hex columns to records, and the day blocks.
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


def zoning_mark(conn: sqlite3.Connection) -> int:
    """Call at the start of an ingest transaction; pass the result to `update_zoning`.

    The events inserted later in the transaction have larger rowids: SQLite gives a new row
    max(rowid) + 1 while that is below 2**63 - 1.
    """
    (mark,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
    return int(mark)


def update_zoning(conn: sqlite3.Connection, after: int) -> None:
    """Fold the events inserted since `zoning_mark` into the zoning tables (same transaction).

    A fixed number of set-based statements over the new events, whatever their order, then
    the day blocks: dropped where a new screenview joins a blocked day, and a bounded number
    built.
    """
    conn.execute(_STALE_TRIGGER)
    new = {"after": after}
    for sql in _MAINTENANCE:
        conn.execute(sql, new)
    update_blocks(conn, conn.execute(_NEW_SCREENVIEWS, new).fetchall())


# -- day blocks -------------------------------------------------------------------------------

# The days of the screenview events this transaction stored (some may not have won).
_NEW_SCREENVIEWS = f"""
SELECT DISTINCT e.pid, e.screen, e.corrected_ms / {DAY_MS} * {DAY_MS} FROM {_NEW}
WHERE {_AFTER} AND e.ea = 4 AND e.corrected_ms >= 0
"""
_HEX_BLOCKS = "SELECT pid, screen, day FROM zoning_blocks WHERE typeof(data) = 'text' LIMIT 8"
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
    # Blocks migration 4 made as hex records are made again as columns.
    if budget > 0:
        for pid, screen, day in conn.execute(_HEX_BLOCKS).fetchall():
            budget -= _build_day(conn, {"pid": pid, "screen": screen}, day)
            if budget <= 0:
                break
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


# -- the query --------------------------------------------------------------------------------

# Parts of the one statement below: 0 a block (binary, or hex when migration 4 built it),
# 1 screenview records (hex), 2 a tvp's zone.
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
            elif isinstance(a, str):  # a block migration 4 made: hex records
                hexes.append(a.encode())
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
