"""Zoning on SQLite: rollups kept exact by folding each stored event once.

Tables (in the zoning file, server.store.sqlite_zoning_file), maintained by `update_zoning`
from a range of stored events (a duplicate (pid, euid) is never inserted into `events`, so
it is never counted twice):

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

After the fold, `update_zoning` keeps the day blocks up to date in the same transaction
(server.store.sqlite_zoning_blocks); the query reads blocks and rows
(server.store.sqlite_zoning_query). The migrations that made these tables in the events
file before they moved (and migration 2's hex format) are in
server.store.sqlite_zoning_migrations.
"""

from __future__ import annotations

import sqlite3

from server.store.sqlite_zoning_blocks import _SV, DAY_MS, update_blocks
from server.store.zoning_sql import (
    GESTURE_KINDS,
    ITS_SESSION,
    ITS_TVP,
    ZONING_KINDS,
    view_gestures,
)
from server.zoning.compute import COUNT_MAX
from server.zoning.records import (
    CONTINUATION,
    DTYPES,
    ELEMENT,
    TRANSACTION,
    TRANSACTION_TEXT,
    VIEW,
    WIDE_ELEMENT,
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
# The events being folded: a rowid range (NOT INDEXED keeps the planner on it).
_NEW = "events AS e NOT INDEXED"
_AFTER = "e.rowid > :after AND e.rowid <= :upto"

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
_ADD_GESTURES = f"""
INSERT INTO zoning_gestures (pid, session_id, scn, tvp_id, {_COUNTS})
SELECT e.pid, k.session_id, e.scn, t.tvp_id, {_GESTURE_SUMS}
FROM {_NEW} {ITS_SESSION} {ITS_TVP}
WHERE {_AFTER} AND e.ea IN {GESTURE_KINDS}
GROUP BY k.session_id, e.scn, t.tvp_id
ON CONFLICT (pid, session_id, scn, tvp_id) DO UPDATE SET {_ADD_COUNTS}
"""
_SESSIONS_WITH_NEW_TX = f"""
SELECT k.session_id FROM {_NEW} {ITS_SESSION} WHERE {_AFTER} AND e.ea = 16"""
_NEW_GESTURE_VIEWS = f"""(SELECT DISTINCT k.pid, k.session_id, e.scn FROM {_NEW} {ITS_SESSION}
      WHERE {_AFTER} AND e.ea IN {GESTURE_KINDS}) AS n"""

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
    {view_gestures(pid, session_id, scn)})"""


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
# In this order: what a screenview row is computed from comes first; the refreshes only find
# screenviews stored by earlier transactions; new screenviews are computed when inserted.
_MAINTENANCE = (
    _ADD_USERS, _ADD_SESSIONS, _ADD_TVPS, _ADD_TRANSACTIONS, _REFRESH_SESSION_TRANSACTIONS,
    _ADD_GESTURES, _REFRESH_GESTURES, _REFRESH_TRANSACTIONS, _UPSERT_SCREENVIEWS,
)  # fmt: skip

# The days of the screenview events being folded (some may not have won).
_NEW_SCREENVIEWS = f"""
SELECT DISTINCT e.pid, e.screen, e.corrected_ms / {DAY_MS} * {DAY_MS} FROM {_NEW}
WHERE {_AFTER} AND e.ea = 4 AND e.corrected_ms >= 0
"""


def update_zoning(conn: sqlite3.Connection, after: int, upto: int) -> None:
    """Fold the events whose rowid is in (after, upto] into the zoning tables, in the
    caller's transaction; each event must be folded exactly once.

    A fixed number of set-based statements over those events, whatever their order, then
    the day blocks: dropped where a new screenview joins a blocked day, and a bounded number
    built.
    """
    new = {"after": after, "upto": upto}
    for sql in _MAINTENANCE:
        conn.execute(sql, new)
    update_blocks(conn, conn.execute(_NEW_SCREENVIEWS, new).fetchall())
