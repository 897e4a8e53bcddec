"""POST /v1/touches: strokes classified by the gestures kernel and stored as gesture events."""

from __future__ import annotations

import json
import time

from support import Service

from server.auth import DENIED

VO = {"sv": "2.1", "sb": 4, "av": "3.0.0", "af": "release", "ab": 7}
T0 = 1_700_000_000_000  # touch times are epoch ms


def stroke(sid: str, t: list, x: list, y: list, **extra) -> dict:
    return {"id": sid, "tvp": f"[root]>UIView>{sid}>", "tvid": sid,
            "t": [T0 + v for v in t], "x": x, "y": y, **extra}  # fmt: skip


STROKES = [
    stroke("tap", [0, 50, 100], [100, 102, 104], [200, 200, 201], ur=False),
    stroke("press", [1000, 1300, 1700], [100, 101, 100], [200, 200, 201]),
    # 200 dp to the right over 3 s, one sample per 100 ms: no release speed (gaps > 40 ms).
    stroke("drag", list(range(2000, 5001, 100)), [100 + 400 * i / 30 for i in range(31)],
           [300] * 31),
    # 300 dp up in 100 ms, one sample per 10 ms: a fast release.
    stroke("flick", list(range(6000, 6101, 10)), [200] * 11, [900 - 60 * i for i in range(11)]),
    stroke("ambiguous", [7000, 7100, 7200], [100, 130, 160], [100, 100, 100]),
    stroke("cancelled", [8000, 8010, 8020], [1, 1, 1], [1, 1, 1],
           actions=["down", "move", "cancel"]),
    stroke("ragged", [9000, 9010], [1], [1, 1]),
    {"id": "no-tvp", "tvid": "x", "t": [T0], "x": [1], "y": [1]},
]  # fmt: skip


def body(strokes: list, **change) -> dict:
    return {"pid": 1, "uid": "user-1", "sn": 3, "scn": 2, "dt": 5,
            "url": "app-ios://shop/cart?title=Cart", "density": 2.0, "vo": VO,
            "strokes": strokes, **change}  # fmt: skip


async def post_touches(service: Service, payload: dict, key: str | None = None):
    return await service.client.post(
        "/v1/touches",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {key or service.default.ingest_key}"},
    )  # fmt: skip


async def test_every_class_and_what_is_stored(service: Service) -> None:
    resp = await post_touches(service, body(STROKES))
    assert resp.status == 200
    reply = await resp.json()
    assert (reply["accepted"], reply["duplicates"]) == (4, 0)
    assert reply["counts"] == {"tap": 1, "long_press": 1, "drag": 1, "flick": 1,
                               "ambiguous": 1, "cancelled": 1, "invalid": 1}  # fmt: skip
    by_id = {g["id"]: g for g in reply["gestures"]}
    assert [g["id"] for g in reply["gestures"]] == [s["id"] for s in STROKES[:7]]
    assert by_id["tap"] == {
        "id": "tap", "gesture": "tap", "ea": 6, "duration_ms": 100.0, "distance_dp": 2.062,
        "velocity_dps": 0.0, "direction": None, "fd": None, "tvd": 2, "tvv": 0, "samples": 3,
    }  # fmt: skip
    assert (by_id["press"]["gesture"], by_id["press"]["ea"]) == ("long_press", 8)
    fields = ("gesture", "direction", "fd", "tvd", "tvv")
    assert [by_id["drag"][f] for f in fields] == ["drag", "right", 4, 200, 0]
    assert [by_id["flick"][f] for f in fields] == ["flick", "up", 1, 300, 3000]
    assert by_id["ambiguous"]["ea"] is None and by_id["ambiguous"]["tvd"] == 30
    assert by_id["cancelled"]["gesture"] == "cancelled"
    assert by_id["ragged"] == {
        "id": "ragged", "gesture": "invalid", "ea": None, "duration_ms": None,
        "distance_dp": None, "velocity_dps": None, "direction": None, "fd": None,
        "tvd": None, "tvv": None, "samples": 0,
    }  # fmt: skip
    assert reply["rejected"] == [
        {
            "index": 7,
            "id": "no-tvp",
            "error": "Object missing required field `tvp` - at `$.strokes[7]`",
        }
    ]

    rows = service.query(
        "SELECT euid, ea, uid, dt, sn, scn, t_ms, clamped, screen, av, tvp, ur, fd, source, idx "
        "FROM events ORDER BY idx"
    )
    def row(euid: str, ea: int, after_ms: int, ur: int | None, fd: int | None, idx: int):
        tvp = f"[root]>UIView>{euid}>"
        return (euid, ea, "user-1", 5, 3, 2, T0 + after_ms, 0, "Cart", "3.0.0", tvp, ur, fd, 1,
                idx)  # fmt: skip

    assert rows == [
        row("tap", 6, 0, 0, None, 0),
        row("press", 8, 1000, None, None, 1),
        row("drag", 9, 2000, None, 4, 2),
        row("flick", 10, 6000, None, 1, 3),
    ]
    assert service.query("SELECT idx, euid FROM quarantine") == [(7, "no-tvp")]
    ((source, density, stored_body),) = service.query("SELECT source, density, body FROM batches")
    assert (source, density) == (1, 2.0)
    assert json.loads(stored_body) == body(STROKES)  # the raw strokes are kept


async def test_retry_is_all_duplicates(service: Service) -> None:
    await post_touches(service, body(STROKES[:4]))
    reply = await (await post_touches(service, body(STROKES[:4]))).json()
    assert (reply["accepted"], reply["duplicates"]) == (0, 4)
    assert service.query("SELECT count(*) FROM events") == [(4,)]


async def test_clock_skew_uses_now(service: Service) -> None:
    now = int(time.time() * 1000)
    tap = stroke("tap", [0, 50], [1, 1], [1, 1])
    tap["t"] = [now - 3_600_000 - 500, now - 3_600_000 - 450]
    await post_touches(service, body([tap], now=now - 3_600_000))  # device clock 1 h behind
    ((t_ms, corrected, received),) = service.query(
        "SELECT t_ms, corrected_ms, received_ms FROM events JOIN batches USING (batch_id)"
    )
    assert (t_ms, corrected) == (now - 3_600_000 - 500, received - 500)


async def test_refusals(service: Service) -> None:
    cases = [
        (body(STROKES), service.default.read_key, 401, DENIED),
        (body(STROKES, pid=2), None, 401, DENIED),
        (body([]), None, 400, "Invalid touches: Expected `array` of length >= 1 - at `$.strokes`."),
        (body(STROKES, density=0), None, 400,
         "Invalid touches: Expected `float` >= 0.75 - at `$.density`."),
        (body([STROKES[0]] * 1001), None, 413,
         "The request has 1001 strokes; at most 1000 are accepted - at `$.strokes`."),
    ]  # fmt: skip
    for payload, key, status, error in cases:
        resp = await post_touches(service, payload, key)
        assert (resp.status, await resp.json()) == (status, {"status": status, "error": error})
    assert service.query("SELECT count(*) FROM events") == [(0,)]
