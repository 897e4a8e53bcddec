"""Zoning on SQLite: the zoning tables live in a file of their own, `<db>.zoning`.

SQLite has one write lock per file. Kept in the events file, the fold (half of the ingest
writer's SQL time) held the events' lock; in a file of its own it runs beside the next
group's inserts, and with `serve --workers N` one process folds while another inserts.

The file holds derived data only: every zoning row is a fold of stored events
(server.store.sqlite_zoning), and `zoning_folded` says up to which event (rowid, and that
event's euid). `fold` takes the events after it, in rowid order, whoever stored them, so
each event is folded exactly once, also after a crash between an ingest commit and its fold.
The file is written with `synchronous=NORMAL` and never fsynced for a reply: after a power
cut it may have lost its last folds (they are folded again) or, if the events file lost its
last commits while this file kept folds of them, be ahead of the events; `fold` notices that
(the event named by `zoning_folded` is gone or another) and folds all events again.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from server.store.sqlite_schema import last_event_id, migrate, transaction
from server.store.sqlite_zoning import update_zoning
from server.store.sqlite_zoning_blocks import DAY_MS, update_blocks

log = logging.getLogger(__name__)

# Events folded by one transaction at most: a large backlog (a database from before this
# file, or one folded again) becomes a series of commits, not one huge transaction.
FOLD_CHUNK_EVENTS = 100_000

# The tables as migrations 2, 4 and 5 of the events file left them (their definitions there
# are frozen), but for migration 4's index of its hex blocks: this file's blocks are all
# binary. And the fold's mark.
ZONING_FILE_MIGRATIONS: list[tuple[int, str | tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE zoning_users (
                user_id INTEGER PRIMARY KEY,
                pid INTEGER NOT NULL,
                uid TEXT NOT NULL,
                UNIQUE (pid, uid)
            )""",
            """CREATE TABLE zoning_sessions (
                session_id INTEGER PRIMARY KEY,
                pid INTEGER NOT NULL,
                uid TEXT NOT NULL,
                sn INTEGER NOT NULL,
                user_id INTEGER NOT NULL,
                tx_rec TEXT,
                UNIQUE (pid, uid, sn)
            )""",
            """CREATE TABLE zoning_tvps (
                tvp_id INTEGER PRIMARY KEY,
                pid INTEGER NOT NULL,
                screen TEXT NOT NULL,
                av TEXT NOT NULL,
                tvp TEXT NOT NULL,
                UNIQUE (pid, screen, av, tvp)
            )""",
            """CREATE TABLE zoning_gestures (
                pid INTEGER NOT NULL,
                session_id INTEGER NOT NULL,
                scn INTEGER NOT NULL,
                tvp_id INTEGER NOT NULL,
                taps INTEGER NOT NULL,
                unresponsive_taps INTEGER NOT NULL,
                long_presses INTEGER NOT NULL,
                drags INTEGER NOT NULL,
                flicks INTEGER NOT NULL,
                first_tap_ms INTEGER,
                PRIMARY KEY (pid, session_id, scn, tvp_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE zoning_transactions (
                tx_id INTEGER PRIMARY KEY,
                pid INTEGER NOT NULL,
                session_id INTEGER NOT NULL,
                tx_ms INTEGER NOT NULL,
                cu INTEGER NOT NULL,
                amount REAL NOT NULL,
                rec TEXT
            )""",
            """CREATE INDEX zoning_transactions_by_session
                ON zoning_transactions (pid, session_id, tx_id, rec)""",
            """CREATE TABLE zoning_screenviews (
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
            ) WITHOUT ROWID""",
            """CREATE UNIQUE INDEX zoning_screenviews_by_session
                ON zoning_screenviews (pid, session_id, scn)""",
            """CREATE TABLE zoning_blocks (
                block_id INTEGER PRIMARY KEY,
                pid INTEGER NOT NULL,
                screen TEXT NOT NULL,
                day INTEGER NOT NULL,
                data BLOB,
                UNIQUE (pid, screen, day)
            )""",
            """CREATE TABLE zoning_block_marks (
                pid INTEGER NOT NULL,
                screen TEXT NOT NULL,
                built_to INTEGER NOT NULL,
                dirty_from INTEGER,
                PRIMARY KEY (pid, screen)
            ) WITHOUT ROWID""",
            """CREATE INDEX zoning_block_marks_dirty ON zoning_block_marks (pid, screen)
                WHERE dirty_from IS NOT NULL""",
            # A change to a screenview of a blocked day drops that day's block.
            f"""CREATE TRIGGER zoning_blocks_stale AFTER UPDATE ON zoning_screenviews
            WHEN OLD.sv_ms >= 0 AND OLD.sv_ms / {DAY_MS} < (
                SELECT built_to FROM zoning_block_marks
                WHERE pid = OLD.pid AND screen = OLD.screen)
            BEGIN
                DELETE FROM zoning_blocks
                WHERE pid = OLD.pid AND screen = OLD.screen AND day = OLD.sv_ms / {DAY_MS};
                UPDATE zoning_block_marks
                SET dirty_from = min(coalesce(dirty_from, OLD.sv_ms / {DAY_MS}),
                                     OLD.sv_ms / {DAY_MS})
                WHERE pid = OLD.pid AND screen = OLD.screen;
            END""",
            # The last event folded: its rowid in the events file (0: none) and its euid.
            """CREATE TABLE zoning_folded (
                one INTEGER PRIMARY KEY CHECK (one = 1),
                event_id INTEGER NOT NULL,
                euid TEXT
            )""",
            "INSERT INTO zoning_folded (one, event_id, euid) VALUES (1, 0, NULL)",
        ),
    ),
]

# What `fold` clears when the file is ahead of the events, children first.
_DERIVED_TABLES = (
    "zoning_blocks", "zoning_block_marks", "zoning_screenviews", "zoning_gestures",
    "zoning_transactions", "zoning_tvps", "zoning_sessions", "zoning_users",
)  # fmt: skip
_EVENT_AT_OR_BEFORE = (
    "SELECT rowid, euid FROM ev.events WHERE rowid <= ? ORDER BY rowid DESC LIMIT 1"
)
_COPY = "INSERT INTO temp.events SELECT * FROM ev.events WHERE rowid > ? AND rowid <= ?"


def zoning_file(db_path: str) -> str:
    """The zoning file of the events file at `db_path`."""
    return f"{db_path}.zoning"


def fold_process_lock(db_path: str) -> str:
    """The lock file the fold process of `db_path` holds (server.store.sqlite_fold_process)."""
    return f"{db_path}.fold-process-lock"


def connect(db_path: str, cache_kib: int) -> sqlite3.Connection:
    """The folding connection: the zoning file, migrated, with the events file attached as
    `ev` (the fold reads `events` there; every other table it names is the zoning file's),
    and `temp.events`, the fold's copy of the events it folds (`fold`).

    Its transactions are DEFERRED: BEGIN IMMEDIATE would take the events file's write lock
    too. A fold only writes the zoning file, whose writers hold `<db>.zoning-lock`.
    """
    conn = sqlite3.connect(zoning_file(db_path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{cache_kib}")
        conn.execute("PRAGMA temp_store = MEMORY")
        migrate(conn, ZONING_FILE_MIGRATIONS)
        conn.execute("ATTACH DATABASE ? AS ev", (db_path,))
        conn.execute(f"PRAGMA ev.cache_size = -{cache_kib}")
        # The columns of the events table, its rowid alias (event_id) first.
        columns = [row[1] for row in conn.execute("PRAGMA ev.table_info(events)")]
        conn.execute(
            f"CREATE TEMP TABLE events ({columns[0]} INTEGER PRIMARY KEY, "
            f"{', '.join(columns[1:])})"
        )
    except BaseException:
        conn.close()
        raise
    return conn


def fold(conn: sqlite3.Connection) -> int:
    """Fold up to FOLD_CHUNK_EVENTS stored events past the mark (the caller holds the zoning
    file's lock); returns how many (0: the file is up to date).

    Two transactions. The first reads the events file: it copies the events to fold into
    `temp.events` (in memory), which the fold's statements then name (unqualified, a temp
    table comes first), and ends. Held through the fold, its snapshot of the events file
    kept the WAL checkpoints from copying any frame committed after it, for as long as the
    fold ran (seconds, for a niced fold under load): the WAL grew past the writers'
    backstop, and then a writer's COMMIT checkpointed tens of MB inside the write lock. The
    second transaction folds the copy and moves the mark.
    """
    try:
        with transaction(conn, "BEGIN"):
            done, euid = conn.execute("SELECT event_id, euid FROM zoning_folded").fetchone()
            if done and conn.execute(_EVENT_AT_OR_BEFORE, (done,)).fetchone() != (done, euid):
                log.warning(
                    "the zoning file has folded event %d, which the events file does not "
                    "hold (a power cut lost its last commits): folding every event again", done,
                )  # fmt: skip
                for table in _DERIVED_TABLES:
                    conn.execute(f"DELETE FROM {table}")
                conn.execute("UPDATE zoning_folded SET event_id = 0, euid = NULL")
                done = 0
            upto = min(last_event_id(conn, "ev"), done + FOLD_CHUNK_EVENTS)
            mark = conn.execute(_EVENT_AT_OR_BEFORE, (upto,)).fetchone()
            conn.execute(_COPY, (done, upto))
        # (committed, with a reset above: the next fold starts from nothing)
        with transaction(conn, "BEGIN"):
            if upto > done:
                update_zoning(conn, done, upto)
                conn.execute("UPDATE zoning_folded SET event_id = ?, euid = ?", mark)
            else:  # nothing new: the blocks that earlier folds' budgets left out
                update_blocks(conn, ())
    finally:
        conn.execute("DELETE FROM temp.events")  # empty between folds, whatever happened
    return upto - done


def fold_all(conn: sqlite3.Connection) -> int:
    """Fold every stored event past the mark, FOLD_CHUNK_EVENTS per transaction; returns
    how many."""
    total = 0
    started = time.perf_counter()
    while folded := fold(conn):
        total += folded
        if folded == FOLD_CHUNK_EVENTS:
            log.info("zoning: %d events folded (%.1f s)", total, time.perf_counter() - started)
    return total
