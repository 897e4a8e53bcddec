"""SQLite's zoning records and day blocks: the format, and exact answers whatever the blocks'
state (built, lagging, dropped by late events, made by migration 4 as hex)."""

from __future__ import annotations

import binascii
import contextlib
import json
import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from test_zoning import assert_same
from test_zoning_store import SCREENS, as_json, open_store
from zoning_data import (
    SKEW_LIMIT_MS,
    START,
    Batch,
    DataSet,
    reference_report,
    stored_events,
)

from server.ingest import prepare_batch
from server.store import sqlite_zoning, sqlite_zoning_blocks
from server.store.base import Store
from server.store.sqlite_zoning_file import zoning_file
from server.zoning import ZoningQuery
from server.zoning.compute import (
    ROW_FIELDS,
    TX_DTYPE,
    Transactions,
    screen_totals,
    zone_aggregates,
)
from server.zoning.records import (
    COLUMNS,
    TRANSACTION,
    TRANSACTION_TEXT,
    WIDE_ELEMENT,
    decode_records,
    decode_slots,
    pack_columns,
    selection,
    unpack_columns,
)

# (tvp_id, taps, unresponsive, long presses, drags, flicks, first tap) of one screenview at
# time SV_MS; all but the first need a WIDE_ELEMENT record.
SV_MS = -5_000
GESTURES = [
    (7, 2, 1, 0, 3, 0, -4_000),
    (8, 0, 0, 4, 0, 0, None),  # no tap: delay 0
    (2**32, 1, 0, 0, 0, 0, SV_MS + 2**31),  # tvp id and delay too large for ELEMENT
    (9, 1, 0, 0, 0, 0, SV_MS - 2**31 - 1),  # delay too small
    (10, 70_000, 0, 0, 0, 0, 0),  # taps do not fit 16 bits
    (11, 0, 0, 256, 0, 0, None),  # a long press count that does not fit 8 bits
    (12, 2**33, 2**33, 0, 0, 2**40, 9),  # counts saturate at 2**32 - 1
]
SESSION, USER, SCN = 2**40 + 3, 2**32 + 5, 2**31 - 1
AMOUNTS = [9.99, -20.5, 0.0, 0.1 + 0.2, 1e15, -1e15, 5e-324, 1234.5678901234567, 999_999.999999]


def records_db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE zoning_gestures (pid, session_id, scn, tvp_id, taps, unresponsive_taps, "
        "long_presses, drags, flicks, first_tap_ms)"
    )
    conn.executemany(
        "INSERT INTO zoning_gestures VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(SESSION, SCN, *g) for g in GESTURES],
    )
    conn.execute("CREATE TABLE tx (tx_id INTEGER PRIMARY KEY, tx_ms, cu, amount)")
    conn.executemany(
        "INSERT INTO tx (tx_ms, cu, amount) VALUES (?, ?, ?)",
        [(1_000 + k, 978 + k, amount) for k, amount in enumerate(AMOUNTS)],
    )
    return conn


def the_record(conn: sqlite3.Connection) -> bytes:
    """The record of one screenview (GESTURES) of a session with a transaction per AMOUNTS."""
    tx_record = sqlite_zoning.transaction_record("tx_ms", "cu", "amount")
    (tx,) = conn.execute(f"SELECT group_concat({tx_record}, '') FROM tx").fetchone()
    key = (str(SESSION), str(SCN), str(USER), str(SV_MS))
    record = sqlite_zoning.screenview_record("1", *key, "?")
    (rec,) = conn.execute(f"SELECT {record}", (tx,)).fetchone()
    return binascii.unhexlify(rec)


def test_records_round_trip_exactly() -> None:
    conn = records_db()
    data = the_record(conn)
    kinds = np.frombuffer(data, dtype=np.uint8)[::16].tolist()
    # In millionths: 9.99, -20.5, 0.0, 999999.999999; the others as text.
    assert kinds.count(TRANSACTION) == 4 and kinds.count(TRANSACTION_TEXT) == 5
    assert kinds.count(WIDE_ELEMENT) == 5
    two = decode_records(data + data)  # two screenviews of one session: transactions once
    assert two.session_id.tolist() == [SESSION, SESSION]
    assert two.user_id.tolist() == [USER, USER]
    rows = two.rows
    got = sorted(
        zip(*(rows[name].tolist() for name in ("view", "tvp_id", "taps", "unresponsive_taps",
                                               "long_presses", "drags", "flicks", "delay_ms"))),
    )  # fmt: skip
    cap = 2**32 - 1
    want = sorted(
        (view, tvp, min(t, cap), min(u, cap), min(lp, cap), min(d, cap), min(f, cap),
         0 if first is None else first - SV_MS)
        for view in (0, 1) for tvp, t, u, lp, d, f, first in GESTURES
    )  # fmt: skip
    assert got == want
    tx = two.transactions
    assert sorted(zip(tx.keys["tx_ms"].tolist(), tx.keys["cu"].tolist(), tx.amounts.tolist())) == [
        (1_000 + k, 978 + k, amount) for k, amount in enumerate(AMOUNTS)
    ]  # amounts exact, in millionths or as 17 digits
    assert set(tx.keys["session_id"].tolist()) == {SESSION}


def test_day_blocks_hold_the_same_columns() -> None:
    data = the_record(records_db())
    columns = decode_slots(data * 3)
    block = unpack_columns(pack_columns(columns))
    assert list(block) == list(COLUMNS)
    for name in COLUMNS:
        assert block[name].tolist() == columns[name].tolist(), name
    # A block and records read together: screenview numbers follow on.
    both = selection([block, decode_slots(data)])
    assert len(both.session_id) == 4
    assert np.bincount(both.rows["view"]).tolist() == [len(GESTURES)] * 4
    assert len(both.transactions) == len(AMOUNTS)


def test_the_row_and_screenview_forms_give_the_same_metrics() -> None:
    """zone_aggregates takes rows with their screenview's fields, or screenview numbers and
    per-screenview fields (what the stores send); both from random data with zones shared
    by several tvps, screenviews with several tvps of one zone, sessions of several views."""
    rng = np.random.default_rng(5)
    n_views, n = 300, 1_000
    view_session = rng.integers(1, 120, n_views)
    view_user = view_session % 37
    view_ms = rng.integers(0, 10**9, n_views)
    rows = {
        "view": rng.integers(0, n_views, n), "tvp_id": rng.integers(1, 40, n),
        "delay_ms": rng.integers(-50, 5_000, n), "taps": rng.integers(0, 3, n),
        "unresponsive_taps": rng.integers(0, 2, n), "long_presses": rng.integers(0, 2, n),
        "drags": rng.integers(0, 2, n), "flicks": rng.integers(0, 2, n),
    }  # fmt: skip
    rows["delay_ms"] = np.where(rows["taps"] > 0, rows["delay_ms"], 0)
    view = rows["view"]
    as_rows = {
        "session_id": view_session[view], "user_id": view_user[view], "scn": view,
        "first_tap_ms": np.where(rows["taps"] > 0, view_ms[view] + rows["delay_ms"], 0),
        **{name: rows[name] for name in ROW_FIELDS if name in rows},
    }  # fmt: skip
    as_views = {**rows, "view_session_id": view_session, "view_user_id": view_user,
                "view_sv_ms": view_ms}  # fmt: skip
    zone_of = {t: (f"zone {t % 9}", "path" if t % 2 else "ai") for t in range(1, 40)}
    keys = np.array(
        [(s, k, int(rng.integers(0, 10**9)), 978 + k % 3) for k, s in enumerate(view_session)],
        dtype=TX_DTYPE,
    )
    tx = Transactions(keys, rng.integers(1, 10**6, len(keys)) / 100)
    a = zone_aggregates(as_rows, zone_of, tx)
    b = zone_aggregates(as_views, zone_of, tx)
    assert a == b
    assert sum(z.tapped_views for z in a) < int(np.count_nonzero(rows["taps"]))  # merged
    assert any(z.converted_sessions for z in a)
    assert screen_totals({"session_id": view_session, "user_id": view_user})[0] == n_views


# -- the store --------------------------------------------------------------------------------


def prepared(batches: list[Batch]) -> list:
    return [
        prepare_batch(
            json.dumps(b.body).encode(), max_events=1000, received_ms=b.received_ms,
            skew_limit_ms=SKEW_LIMIT_MS,
        )
        for b in batches
    ]  # fmt: skip


async def commit(store: Store, batches: list[Batch], rng: random.Random) -> None:
    groups = prepared(batches)
    start = 0
    while start < len(groups):
        size = rng.choice((1, 2, 5))
        await store.ingest_group(groups[start : start + size])
        start += size


async def check(store: Store, data: DataSet, sent: list[Batch]) -> int:
    """Every metric of many queries against the reference over the batches sent so far."""
    events = stored_events(sent, data.screens)
    checked = 0
    for screen in SCREENS:
        for from_day, to_day in ((None, None), (2, 4), (5, None), (None, 3)):
            period = [
                None if day is None else START + timedelta(days=day - 1)
                for day in (from_day, to_day)
            ]
            query = ZoningQuery(1, screen, *period)
            want = reference_report(events, {}, pid=1, screen=screen, from_day=period[0],
                                    to_day=period[1])  # fmt: skip
            assert_same(as_json(await store.zoning(query)), want)
            checked += bool(want["zones"])
    return checked


def sqlite_rows(path: Path, sql: str) -> list[tuple]:
    """Rows of the zoning file of the database at `path`."""
    with contextlib.closing(sqlite3.connect(zoning_file(str(path)))) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("seed", range(3))
async def test_lagging_and_dropped_blocks_give_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    data = DataSet(seed=seed, users=12)
    rng = random.Random(seed)
    batches = list(data.batches)
    rng.shuffle(batches)
    early, late = batches[: len(batches) * 3 // 4], batches[len(batches) * 3 // 4 :]
    path = tmp_path / "z.db"
    store = await open_store(path)
    try:
        # Blocks built a few screenviews per commit: some days wait for theirs.
        monkeypatch.setattr(sqlite_zoning_blocks, "BLOCK_ROWS_PER_COMMIT", 3)
        await commit(store, early, rng)
        assert sqlite_rows(path, "SELECT count(*) FROM zoning_blocks")[0][0] > 0
        assert await check(store, data, early) > 5
        # Late batches, none rebuilt: their days are read from the rows meanwhile.
        monkeypatch.setattr(sqlite_zoning_blocks, "BLOCK_ROWS_PER_COMMIT", 0)
        await commit(store, late, rng)
        dirty = "SELECT count(*) FROM zoning_block_marks WHERE dirty_from IS NOT NULL"
        assert sqlite_rows(path, dirty)[0][0] > 0
        assert await check(store, data, batches) > 5
        # A retry (nothing new) lets the writer rebuild them.
        monkeypatch.undo()
        await commit(store, late[:1], rng)
        assert sqlite_rows(path, dirty) == [(0,)]
        assert await check(store, data, batches) > 5
    finally:
        await store.close()


def batch(uid: str, events: list[dict]) -> Batch:
    """One SDK batch of `events` (ea, euid, t, sn, scn and extras), received when sent."""
    vo = {"sv": "2.1", "sb": 4, "av": "2.3.0", "af": "release", "ab": 1}
    now = max(e["t"] for e in events) + 1_000
    body = {
        "pid": 1, "uid": uid, "dt": 4, "os": "17", "l": "en", "tz": "UTC", "now": now,
        "to": {"an": "a", "st": "s", "sf": "r"}, "r": {"d": 2.0},
        "pl": [{"upt": 1, "c": 1, "o": 0, "vo": vo,
                "url": f"app-ios://shop/x?title={e.pop('screen', 'Sales')}", **e}
               for e in events],
    }  # fmt: skip
    return Batch(body=body, received_ms=now)


async def test_a_change_to_a_blocked_day_drops_its_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    day_ms = 86_400_000
    t1 = 1_709_287_200_000  # 2024-03-01 10:00 UTC
    t5 = t1 + 4 * day_ms
    tap = {"tvp": "[root]>UIButton#buy>", "tvid": "buy", "ur": True}
    path = tmp_path / "z.db"
    store = await open_store(path)
    sales = ZoningQuery(1, "Sales")

    async def report(query: ZoningQuery = sales) -> tuple:
        r = await store.zoning(query)
        return r.screenviews, [(z.taps, z.sessions, z.conversion_rate, z.revenue) for z in r.zones]

    def blocks() -> list[tuple]:
        return sqlite_rows(path, "SELECT screen, day FROM zoning_blocks ORDER BY 1, 2")

    def marks() -> list[tuple]:
        return sqlite_rows(path, "SELECT screen, built_to, dirty_from FROM zoning_block_marks")

    try:
        await commit(store, [batch("u1", [
            {"ea": 4, "euid": "sv1", "t": t1, "sn": 1, "scn": 1, "st": "Sales", "sl": 1},
            {"ea": 6, "euid": "tap1", "t": t1 + 1_000, "sn": 1, "scn": 1, **tap},
            {"ea": 4, "euid": "sv5", "t": t5, "sn": 2, "scn": 1, "st": "Sales", "sl": 1},
        ])], random.Random(0))  # fmt: skip
        day1 = t1 // day_ms
        assert blocks() == [("Sales", day1)] and marks() == [("Sales", day1 + 2, None)]
        assert await report() == (2, [(1, 1, 0.0, {})])
        # A late tap and a purchase in that session, and no block rebuilt: the day is read
        # from its rows.
        monkeypatch.setattr(sqlite_zoning_blocks, "BLOCK_ROWS_PER_COMMIT", 0)
        late = batch("u1", [
            {"ea": 6, "euid": "tap2", "t": t1 + 2_000, "sn": 1, "scn": 1, **tap},
            {"ea": 16, "euid": "buy", "t": t1 + 3_000, "sn": 1, "scn": 1,
             "tr": {"vl": 0.1, "cu": 978}},
        ])  # fmt: skip
        await commit(store, [late], random.Random(0))
        assert blocks() == [] and marks() == [("Sales", day1 + 2, day1)]
        assert await report() == (2, [(2, 1, 1.0, {"978": 0.1})])
        monkeypatch.undo()
        await commit(store, [late], random.Random(0))  # a retry: the writer rebuilds it
        assert blocks() == [("Sales", day1)] and marks() == [("Sales", day1 + 2, None)]
        assert await report() == (2, [(2, 1, 1.0, {"978": 0.1})])
        # An earlier screenview event of that screenview, naming another screen: it moves.
        await commit(store, [batch("u1", [
            {"ea": 4, "euid": "sv0", "t": t1 - day_ms, "sn": 1, "scn": 1, "st": "Cart", "sl": 1,
             "screen": "Cart"},
        ])], random.Random(0))  # fmt: skip
        assert await report() == (1, [])
        assert await report(ZoningQuery(1, "Cart")) == (1, [(2, 1, 1.0, {"978": 0.1})])
        assert blocks() == []  # Sales has no screenview that day any more
        assert ("Sales", day1 + 2, None) in marks()
    finally:
        await store.close()


async def test_days_too_large_for_a_block_are_read_from_their_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = DataSet(seed=7, users=12)
    path = tmp_path / "z.db"
    monkeypatch.setattr(sqlite_zoning_blocks, "BLOCK_MAX_VIEWS", 2)
    store = await open_store(path)
    try:
        await commit(store, data.batches, random.Random(7))
        kinds = dict(sqlite_rows(
            path, "SELECT data IS NULL, count(*) FROM zoning_blocks GROUP BY 1"
        ))  # fmt: skip
        assert kinds.get(0, 0) > 0 and kinds.get(1, 0) > 0  # blocks with and without data
        assert await check(store, data, data.batches) > 5
    finally:
        await store.close()
