"""NUL characters in strings: refused or quarantined the same way on both backends."""

from __future__ import annotations

import json

from support import Service, load_fixture
from test_snapshots import post_snapshot
from test_touches import STROKES, body, post_touches

NUL = "\u0000"


async def test_nul_in_the_header_is_400_and_nothing_is_stored(
    service: Service, seed_batch: dict
) -> None:
    seed_batch["dma"] = f"Sam{NUL}sung"
    resp = await service.post_batch(seed_batch)
    assert resp.status == 400
    assert await resp.json() == {
        "status": 400,
        "error": "Invalid batch: NUL characters (\\u0000) are not accepted in strings "
        "- at `$.dma`.",
    }
    assert service.query("SELECT count(*) FROM batches") == [(0,)]


async def test_an_event_with_nul_is_quarantined_and_the_rest_stored(
    service: Service, seed_batch: dict
) -> None:
    seed_batch["pl"][3]["tvp"] = f"[root]>UIView>{NUL}>"
    seed_batch["pl"][4]["euid"] = f"e4{NUL}"
    resp = await service.post_batch(seed_batch)
    reason_tvp = "NUL characters (\\u0000) are not accepted in strings - at `$.pl[3].tvp`"
    reason_euid = "NUL characters (\\u0000) are not accepted in strings - at `$.pl[4].euid`"
    assert await resp.json() == {
        "accepted": 9,
        "duplicates": 0,
        "rejected": [
            {"index": 3, "euid": "e3-tap", "error": reason_tvp},
            {"index": 4, "euid": "e4\ufffd", "error": reason_euid},
        ],
    }
    rows = service.query("SELECT idx, euid, reason, raw FROM quarantine ORDER BY idx")
    assert [row[:3] for row in rows] == [(3, "e3-tap", reason_tvp), (4, "e4\ufffd", reason_euid)]
    assert json.loads(rows[0][3]) == seed_batch["pl"][3]
    assert service.query("SELECT count(*) FROM events WHERE euid IN ('e3-tap', 'e4')") == [(0,)]
    assert service.query("SELECT count(*) FROM events") == [(9,)]


async def test_an_escaped_backslash_before_u0000_is_no_nul(
    service: Service, seed_batch: dict
) -> None:
    seed_batch["pl"][3]["tvp"] = "[root]>UIView>\\u0000>"  # a backslash, then "u0000"
    resp = await service.post_batch(seed_batch)
    assert await resp.json() == {"accepted": 11, "duplicates": 0, "rejected": []}
    assert service.query("SELECT tvp FROM events WHERE euid = 'e3-tap'") == [
        ("[root]>UIView>\\u0000>",)
    ]


async def test_a_stroke_with_nul_is_quarantined(service: Service) -> None:
    strokes = [STROKES[0], dict(STROKES[1], tvp=f"x{NUL}")]
    resp = await post_touches(service, body(strokes))
    assert resp.status == 200
    reply = await resp.json()
    reason = "NUL characters (\\u0000) are not accepted in strings - at `$.strokes[1].tvp`"
    assert reply["rejected"] == [{"index": 1, "id": "press", "error": reason}]
    assert service.query("SELECT euid FROM events") == [("tap",)]
    assert service.query("SELECT idx, euid, reason FROM quarantine") == [(1, "press", reason)]


async def test_a_snapshot_with_nul_is_400(service: Service) -> None:
    snapshot = load_fixture("snapshots/seed_restoration.json")
    snapshot["av"] = f"1.0{NUL}"
    resp = await post_snapshot(service, snapshot)
    assert resp.status == 400
    assert await resp.json() == {
        "status": 400,
        "error": "Invalid snapshot: NUL characters (\\u0000) are not accepted in strings "
        "- at `$.av`.",
    }
    assert service.query("SELECT count(*) FROM snapshots") == [(0,)]
