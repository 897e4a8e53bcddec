"""server.zoning without a server: parameters, the packed row format, metric edge cases."""

from __future__ import annotations

import json
import sqlite3
from datetime import date

import numpy as np
import pytest
from support import Service

from server.errors import BadRequest
from server.store.sqlite_zoning_migrations import elements_hex, header_hex
from server.zoning import CLI_NAMING, ZoneAggregate, build_report, parse_query, render
from server.zoning.compute import (
    ROW_FIELDS,
    TX_DTYPE,
    Transactions,
    decode_elements,
    decode_headers,
    expand,
    screen_totals,
    zone_aggregates,
)
from server.zoning.query import OPEN_FROM_MS, OPEN_TO_MS


def test_period_bounds_are_utc_days_with_to_inclusive() -> None:
    query = parse_query(3, {"screen": "S", "from": "2024-03-01", "to": "2024-03-01"})
    assert (query.from_ms, query.to_ms) == (1709251200000, 1709337600000)
    query = parse_query(3, {"screen": "S", "dt": "+5", "av": ""})
    assert (query.from_ms, query.to_ms, query.dt, query.av) == (OPEN_FROM_MS, OPEN_TO_MS, 5, "")
    assert parse_query(3, {"screen": "S", "dt": "-1"}).dt == -1


def test_cli_messages_name_the_option() -> None:
    with pytest.raises(BadRequest, match=r"^--to must be a date YYYY-MM-DD, got ' 2024-03-01'\.$"):
        parse_query(1, {"screen": "S", "to": " 2024-03-01"}, CLI_NAMING)
    with pytest.raises(BadRequest, match=r"^--screen is required\.$"):
        parse_query(1, {"screen": None}, CLI_NAMING)


def test_screenview_hex_round_trips_through_numpy() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE zoning_gestures (pid, session_id, scn, tvp_id, taps, unresponsive_taps, "
        "long_presses, drags, flicks, first_tap_ms)"
    )
    session, scn = 2**40 + 3, 2**31 - 1
    conn.executemany(
        "INSERT INTO zoning_gestures VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(session, scn, 7, 2**33, 1, 0, 2, 3, 4_000), (session, scn, 8, 0, 0, 4, 0, 0, None)],
    )
    key = ("1", str(session), str(scn))
    (header, elements) = conn.execute(
        f"SELECT {header_hex(*key, str(2**32 - 1), '5000')}, {elements_hex(*key, '5000')}"
    ).fetchone()
    rows = expand(decode_headers(header), decode_elements(elements))
    assert [[int(v) for v in rows[name]] for name in ROW_FIELDS] == [
        [session, session], [2**32 - 1, 2**32 - 1], [scn, scn], [7, 8], [4_000, 0], [-1_000, 0],
        [2**32 - 1, 0], [1, 0], [0, 4], [2, 0], [3, 0],
    ]  # fmt: skip  (counts saturate at 2**32 - 1; no tap: first tap and delay 0)


def rows(*records: tuple[int, ...]) -> dict[str, np.ndarray]:
    """(session, user, scn, tvp, first_tap, delay, taps, unresponsive, long, drags, flicks)"""
    return {
        name: np.array([r[i] for r in records], dtype=np.int64)
        for i, name in enumerate(ROW_FIELDS)
    }


def transactions(*records: tuple[int, int, int, int, float]) -> Transactions:
    keys = np.array([tuple(r[:4]) for r in records], dtype=TX_DTYPE)
    return Transactions(keys, np.array([r[4] for r in records], dtype=np.float64))


def test_medians_sessions_and_later_transactions() -> None:
    zone_of = {1: ("A", "ai"), 2: ("A", "path"), 3: ("B", "path")}
    data = rows(
        (10, 1, 1, 1, 1_000, 100, 2, 1, 0, 0, 0),
        (10, 1, 1, 2, 1_050, 150, 1, 0, 0, 1, 0),  # same screenview, same zone A
        (10, 1, 2, 1, 900, 300, 1, 0, 0, 0, 0),  # same session, earlier first tap
        (11, 1, 1, 1, 5_000, 400, 1, 0, 0, 0, 0),
        (12, 2, 1, 1, 7_000, 1_000, 3, 0, 0, 0, 0),
        (12, 2, 1, 3, 0, 0, 0, 0, 1, 0, 2),  # B: no tap
    )
    tx = transactions(
        (10, 1, 900, 978, 5.0),  # at the first tap's millisecond: not after it
        (10, 2, 901, 978, 7.5),
        (10, 2, 901, 978, 7.5),  # the same transaction again (another screenview)
        (10, 3, 1_001, 840, 1.25),
        (10, 5, 1_002, 36, 2.0),  # a currency code of fewer bits
        (12, 4, 6_999, 978, 100.0),  # before the tap
    )
    a, b = zone_aggregates(data, zone_of, tx)
    assert (a.zone, a.kind, a.taps, a.unresponsive_taps, a.drags) == ("A", "ai", 8, 1, 1)
    assert (a.tapped_views, a.swiped_views, a.sessions, a.users) == (4, 1, 3, 2)
    assert a.median_delay_ms == 350.0  # delays 100 (min of 100, 150), 300, 400, 1000
    assert (a.converted_sessions, a.revenue) == (1, {978: 7.5, 840: 1.25, 36: 2.0})
    assert (b.zone, b.taps, b.long_presses, b.flicks, b.tapped_views, b.swiped_views) == (
        "B", 0, 1, 2, 0, 1
    )  # fmt: skip
    assert (b.sessions, b.users, b.median_delay_ms, b.revenue) == (0, 0, None, {})


def test_revenue_keys_whatever_the_currency_codes() -> None:
    data = rows((20, 1, 1, 1, 100, 10, 1, 0, 0, 0, 0), (21, 1, 1, 2, 100, 10, 1, 0, 0, 0, 0))
    tx = transactions((20, 1, 50, 978, 1.0), (21, 2, 150, 36, 2.0))  # only AUD is after a tap
    c, d = zone_aggregates(data, {1: ("C", "path"), 2: ("D", "path")}, tx)
    assert (c.revenue, c.converted_sessions, d.revenue, d.converted_sessions) == (
        {}, 0, {36: 2.0}, 1
    )  # fmt: skip


def test_huge_ids_and_times_still_group_exactly() -> None:
    data = rows(
        (2**62, 2**32 - 1, 2**31 - 1, 2**31, 2**50, -(2**50), 1, 0, 0, 0, 0),
        (2**62 - 1, 1, 0, 2**31, -(2**50), 2**50, 1, 0, 0, 0, 0),
    )
    (zone,) = zone_aggregates(data, {2**31: ("Z", "path")}, transactions())
    assert (zone.tapped_views, zone.sessions, zone.users) == (2, 2, 2)
    assert zone.median_delay_ms == 0.0


def test_screen_totals() -> None:
    views = np.array([(1, 7), (1, 7), (2, 7), (3, 8)], dtype=[("session_id", ">i8"),
                                                             ("user_id", ">u4")])  # fmt: skip
    assert screen_totals(views) == (4, 3, 2)


def test_undefined_ratios_are_null_and_zones_sort_by_taps_then_name() -> None:
    report = build_report(
        "S", 0, 0, 0, [ZoneAggregate("b", "path", taps=1), ZoneAggregate("a", "path", taps=1)]
    )
    assert [z.zone for z in report.zones] == ["a", "b"]
    zone = json.loads(render(report, "json"))["zones"][0]
    assert [zone[k] for k in ("tap_rate", "tap_recurrence", "swipe_rate", "conversion_rate")] == [
        None, None, None, None
    ]  # fmt: skip


async def test_gestures_classified_from_touches_count(service: Service) -> None:
    vo = {"sv": "2.1", "sb": 4, "av": "3.0", "af": "release", "ab": 7}
    t0 = 1_700_000_000_000
    screenview = {
        "pid": 1, "uid": "user-1", "dt": 5, "os": "17", "l": "en", "tz": "UTC", "now": t0,
        "to": {"an": "a", "st": "s", "sf": "r"}, "r": {"d": 2.0},
        "pl": [{"ea": 4, "euid": "sv", "t": t0 - 5_000, "upt": 1, "scn": 2, "c": 1, "o": 0,
                "url": "app-ios://shop/cart?title=Cart", "vo": vo, "sn": 3, "st": "Cart",
                "sl": 1}],
    }  # fmt: skip
    assert (await service.post_batch(screenview)).status == 200
    touches = {
        "pid": 1, "uid": "user-1", "sn": 3, "scn": 2, "url": "app-ios://shop/cart?title=Cart",
        "density": 2.0, "vo": vo,
        "strokes": [{"id": "s1", "tvp": "[root]>UIButton#pay>", "tvid": "pay",
                     "t": [t0, t0 + 50, t0 + 100], "x": [10, 11, 12], "y": [20, 20, 21]}],
    }  # fmt: skip
    resp = await service.client.post(
        "/v1/touches",
        json=touches,
        headers={"Authorization": f"Bearer {service.default.ingest_key}"},
    )
    assert resp.status == 200, await resp.text()
    resp = await service.client.get(
        "/v1/projects/1/zoning",
        params={"screen": "Cart", "from": str(date(2023, 11, 14))},
        headers={"Authorization": f"Bearer {service.default.read_key}"},
    )
    report = await resp.json()
    assert [(z["zone"], z["taps"], z["tap_rate"]) for z in report["zones"]] == [
        ("[root]>UIButton#pay>", 1, 1.0)
    ]
