"""SQLite schema as numbered migrations, applied once each and recorded in schema_migrations."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence

from server.ingest import BATCH_COLUMNS, EVENT_COLUMNS, QUARANTINE_COLUMNS
from server.store.sqlite_zoning_migrations import (
    ZONING_BACKFILL,
    ZONING_RECORDS_MIGRATION,
    ZONING_STALE_TRIGGER,
)

# Frozen: the columns migration 6 copies (the events table of migration 1).
_V6_COLUMNS = (
    "pid, euid, ea, uid, dt, sn, scn, t_ms, corrected_ms, clamped, screen, av, tvp, ur, fd, "
    "tr_vl, tr_cu, source, idx, batch_id"
)

# A migration is a script (split at semicolons) or a tuple of statements run as they are.
MIGRATIONS: list[tuple[int, str | tuple[str, ...]]] = [
    (
        1,
        """
        CREATE TABLE projects (
            pid INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            ingest_key TEXT NOT NULL UNIQUE,
            read_key TEXT NOT NULL UNIQUE,
            batch_size INTEGER NOT NULL,
            tracking_enabled INTEGER NOT NULL DEFAULT 1,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE batches (
            batch_id INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            uid TEXT NOT NULL,
            dt INTEGER, dma TEXT, dmo TEXT, os TEXT, l TEXT, tz TEXT,
            now_ms INTEGER, received_ms INTEGER NOT NULL,
            an TEXT, st TEXT, sf TEXT, density REAL, w INTEGER, h INTEGER,
            source INTEGER NOT NULL,
            body BLOB NOT NULL
        );
        CREATE TABLE events (
            pid INTEGER NOT NULL,
            euid TEXT NOT NULL,
            ea INTEGER NOT NULL,
            uid TEXT NOT NULL,
            dt INTEGER NOT NULL,
            sn INTEGER NOT NULL,
            scn INTEGER NOT NULL,
            t_ms INTEGER NOT NULL,
            corrected_ms INTEGER NOT NULL,
            clamped INTEGER NOT NULL,
            screen TEXT NOT NULL,
            av TEXT NOT NULL,
            tvp TEXT,
            ur INTEGER,
            fd INTEGER,
            tr_vl REAL,
            tr_cu INTEGER,
            source INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            batch_id INTEGER NOT NULL,
            PRIMARY KEY (pid, euid)
        );
        CREATE TABLE quarantine (
            qid INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            received_ms INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            euid TEXT,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            raw_sha TEXT NOT NULL,
            batch_id INTEGER NOT NULL,
            UNIQUE (pid, raw_sha)
        );
        """,
    ),
    (
        2,
        # Zoning (server.store.sqlite_zoning keeps these up to date in the ingest transaction).
        # target_map belongs to the snapshots route; it is created here too (IF NOT EXISTS,
        # same definition) because zoning reads it.
        """
        CREATE TABLE IF NOT EXISTS target_map (
            pid INTEGER NOT NULL,
            screen TEXT NOT NULL,
            av TEXT NOT NULL,
            tvp TEXT NOT NULL,
            target TEXT NOT NULL,
            kind TEXT NOT NULL,
            PRIMARY KEY (pid, screen, av, tvp)
        );
        CREATE TABLE zoning_users (
            user_id INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            uid TEXT NOT NULL,
            UNIQUE (pid, uid)
        );
        CREATE TABLE zoning_sessions (
            session_id INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            uid TEXT NOT NULL,
            sn INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            tx_hex TEXT,
            tx_amounts TEXT,
            UNIQUE (pid, uid, sn)
        );
        CREATE TABLE zoning_tvps (
            tvp_id INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            screen TEXT NOT NULL,
            av TEXT NOT NULL,
            tvp TEXT NOT NULL,
            UNIQUE (pid, screen, av, tvp)
        );
        CREATE TABLE zoning_gestures (
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
        ) WITHOUT ROWID;
        CREATE TABLE zoning_screenviews (
            pid INTEGER NOT NULL,
            screen TEXT NOT NULL,
            sv_ms INTEGER NOT NULL,
            session_id INTEGER NOT NULL,
            scn INTEGER NOT NULL,
            header_hex TEXT NOT NULL,
            elements_hex TEXT,
            tx_hex TEXT,
            tx_amounts TEXT,
            av TEXT NOT NULL,
            dt INTEGER NOT NULL,
            euid TEXT NOT NULL,
            user_id INTEGER NOT NULL,
            PRIMARY KEY (pid, screen, sv_ms, session_id, scn)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX zoning_screenviews_by_session
            ON zoning_screenviews (pid, session_id, scn);
        CREATE TABLE zoning_transactions (
            tx_id INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            session_id INTEGER NOT NULL,
            tx_ms INTEGER NOT NULL,
            cu INTEGER NOT NULL,
            amount REAL NOT NULL
        );
        CREATE INDEX zoning_transactions_by_session
            ON zoning_transactions (pid, session_id, tx_id, tx_ms, cu, amount);
        """
        + ZONING_BACKFILL,  # events stored before this migration
    ),
    (
        3,
        # Snapshots (POST /v1/snapshots); the target_map they replace is created by migration 2.
        """
        CREATE TABLE snapshots (
            snapshot_id INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            screen TEXT NOT NULL,
            av TEXT NOT NULL,
            platform TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            body BLOB NOT NULL
        );
        CREATE INDEX snapshots_by_screen ON snapshots (pid, screen, av, snapshot_id);
        """,
    ),
    (
        4,
        # Zoning records and day blocks (server.store.sqlite_zoning_migrations): migration 2's hex
        # columns become one record per screenview, and finished days get their block.
        ZONING_RECORDS_MIGRATION,
    ),
    # The zoning_blocks_stale trigger (server.store.sqlite_zoning_migrations).
    (5, (ZONING_STALE_TRIGGER,)),
    (
        6,
        # Events without the unique (pid, euid) index, whose random keys cost a WAL page per
        # event; the writer dedupes with server.store.sqlite_dedupe instead. event_id names
        # the rowid, so that no VACUUM renumbers the rows (the zoning marks and the dedupe
        # index hold rowids). The rows keep their rowids, in their order.
        f"""
        CREATE TABLE events_v6 (
            event_id INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            euid TEXT NOT NULL,
            ea INTEGER NOT NULL,
            uid TEXT NOT NULL,
            dt INTEGER NOT NULL,
            sn INTEGER NOT NULL,
            scn INTEGER NOT NULL,
            t_ms INTEGER NOT NULL,
            corrected_ms INTEGER NOT NULL,
            clamped INTEGER NOT NULL,
            screen TEXT NOT NULL,
            av TEXT NOT NULL,
            tvp TEXT,
            ur INTEGER,
            fd INTEGER,
            tr_vl REAL,
            tr_cu INTEGER,
            source INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            batch_id INTEGER NOT NULL
        );
        INSERT INTO events_v6 (event_id, {_V6_COLUMNS})
            SELECT rowid, {_V6_COLUMNS} FROM events ORDER BY rowid;
        DROP TABLE events;
        ALTER TABLE events_v6 RENAME TO events;
        """,
    ),
    (
        7,
        # The zoning tables move to a file of their own (server.store.sqlite_zoning_file), so
        # that folding events into them takes that file's write lock, not the events file's.
        # They are derived from the events: the new file folds the stored events again, and
        # nothing is copied. target_map stays (snapshots write it).
        """
        DROP TRIGGER IF EXISTS zoning_blocks_stale;
        DROP TABLE zoning_block_marks;
        DROP TABLE zoning_blocks;
        DROP TABLE zoning_screenviews;
        DROP TABLE zoning_gestures;
        DROP TABLE zoning_transactions;
        DROP TABLE zoning_tvps;
        DROP TABLE zoning_sessions;
        DROP TABLE zoning_users;
        """,
    ),
]


# (head, tail) of each ingest INSERT; sqlite_bulk.insert_rows puts the VALUES rows between.
INSERT_BATCH = (f"INSERT INTO batches (batch_id, {', '.join(BATCH_COLUMNS)})", "")
# No ON CONFLICT: the writer leaves duplicates out before (server.store.sqlite_dedupe).
INSERT_EVENT = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}, batch_id)", "")
INSERT_QUARANTINE = (
    f"INSERT INTO quarantine ({', '.join(QUARANTINE_COLUMNS)}, batch_id)",
    "ON CONFLICT (pid, raw_sha) DO NOTHING",
)


def last_event_id_query(schema: str = "main") -> str:
    """The rowid of the newest stored event (0 for none), as a query of its own or a
    subquery, from the events table of `schema` (`ev` where the events file is attached)."""
    return f"SELECT coalesce(max(rowid), 0) FROM {schema}.events"


LAST_EVENT_ID = last_event_id_query()


def last_event_id(conn: sqlite3.Connection, schema: str = "main") -> int:
    """The rowid of the newest stored event (0 for none). A new row gets max(rowid) + 1
    while that is below 2**63 - 1, so the events of a transaction are the rowids after the
    value read at its start."""
    query = LAST_EVENT_ID if schema == "main" else last_event_id_query(schema)
    (top,) = conn.execute(query).fetchone()
    return int(top)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """`begin`, and COMMIT at the end of the block; on any error ROLLBACK, unless SQLite has
    rolled back already: it does so itself on SQLITE_FULL, and a second ROLLBACK would fail
    ("cannot rollback - no transaction is active") and hide the cause."""
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def migrate(
    conn: sqlite3.Connection, migrations: Sequence[tuple[int, str | tuple[str, ...]]] | None = None
) -> int:
    """Apply the missing migrations, each in its own transaction; returns the version.

    `migrations` defaults to the events file's (MIGRATIONS); the zoning file has its own.
    """
    if migrations is None:
        migrations = MIGRATIONS
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for version, script in migrations:
        if version in done:
            continue
        with transaction(conn):
            if conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone():
                continue  # another process applied it meanwhile
            statements = script.split(";") if isinstance(script, str) else script
            for statement in statements:
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)",
                (version, int(time.time() * 1000)),
            )
    return max(v for v, _ in migrations)
