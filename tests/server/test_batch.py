"""POST /v1/batch: storage of every field, dedupe, quarantine, clock skew."""

from __future__ import annotations

import json
import time

from support import Service, load_fixture

EVENT_QUERY = (
    "SELECT euid, ea, uid, dt, sn, scn, t_ms, corrected_ms, clamped, screen, av, tvp, ur, fd, "
    "tr_vl, tr_cu, source, idx FROM events ORDER BY idx"
)


async def test_seed_batch_is_stored_exactly(service: Service, seed_batch: dict) -> None:
    before = int(time.time() * 1000)
    resp = await service.post_batch(seed_batch)
    after = int(time.time() * 1000)
    assert resp.status == 200
    assert await resp.json() == {"accepted": 11, "duplicates": 0, "rejected": []}

    (header,) = service.query(
        "SELECT batch_id, pid, uid, dt, dma, dmo, os, l, tz, now_ms, received_ms, an, st, sf, "
        "density, w, h, source, body FROM batches"
    )
    batch_id, *fields, received, an, st, sf, d, w, h, source, body = header
    assert fields == [1, "ac1529a7-59f6-49d9-b254-6f0a22f57284", 4, "Samsung", "SG", "10.0",
                      "en_US", "Europe/Paris", 1522159618000]
    assert before <= received <= after
    assert (an, st, sf, d, w, h) == ("appname", "sdk-android", "release", 1.5, 1080, 2340)
    assert source == 0
    assert json.loads(body) == seed_batch  # every field as sent, newer SDK fields included

    shift = received - seed_batch["now"]
    t0 = 1522159610000

    def row(euid, ea, scn, after_ms, idx, tvp=None, ur=None, fd=None, vl=None, cu=None):
        t = t0 + after_ms
        return (euid, ea, seed_batch["uid"], 4, 1, scn, t, t + shift, 0, "Sales", "2.3.0",
                tvp, ur, fd, vl, cu, 0, idx)  # fmt: skip

    assert service.query(EVENT_QUERY) == [
        row("e0-app-start", 0, 0, 0, 0),
        row("e1-foreground", 1, 0, 100, 1),
        row("e2-screenview", 4, 1, 200, 2),
        row("e3-tap", 6, 1, 1200, 3, tvp="[root]>UIView>UIButton#buy>", ur=1),
        row("e4-long-press", 8, 1, 2000, 4, tvp="[root]>UIView>UIImageView>"),
        row("e5-drag", 9, 1, 3000, 5, tvp="[root]>UIView>UISlider>", fd=4),
        row("e6-flick", 10, 1, 4000, 6, tvp="[root]>UIView>UITableView>", fd=1),
        row("e7-transaction", 16, 1, 5000, 7, vl=20.0, cu=978),
        row("e8-dynvar-str", 18, 1, 5100, 8),
        row("e9-dynvar-int", 19, 1, 5200, 9),
        row("e10-background", 2, 1, 6000, 10),
    ]
    assert service.query("SELECT DISTINCT pid, batch_id FROM events") == [(1, batch_id)]
    assert service.query("SELECT count(*) FROM quarantine") == [(0,)]


async def test_retry_counts_every_event_as_duplicate(service: Service, seed_batch: dict) -> None:
    assert (await (await service.post_batch(seed_batch)).json())["accepted"] == 11
    resp = await service.post_batch(seed_batch)
    assert resp.status == 200
    assert await resp.json() == {"accepted": 0, "duplicates": 11, "rejected": []}
    assert service.query("SELECT count(*) FROM events") == [(11,)]


async def test_duplicate_euid_within_one_batch(service: Service, seed_batch: dict) -> None:
    seed_batch["pl"].append(dict(seed_batch["pl"][3], t=seed_batch["pl"][3]["t"] + 1))
    resp = await service.post_batch(seed_batch)
    assert await resp.json() == {"accepted": 11, "duplicates": 1, "rejected": []}
    assert service.query("SELECT t_ms FROM events WHERE euid = 'e3-tap'") == [(1522159611200,)]


async def test_same_euid_in_two_projects_is_two_events(service: Service, seed_batch: dict) -> None:
    await service.post_batch(seed_batch)
    other = dict(seed_batch, pid=2)
    resp = await service.post_batch(other, key=service.other.ingest_key)
    assert await resp.json() == {"accepted": 11, "duplicates": 0, "rejected": []}
    by_pid = service.query("SELECT pid, count(*) FROM events GROUP BY pid ORDER BY pid")
    assert by_pid == [(1, 11), (2, 11)]


async def test_mixed_batch_quarantines_invalid_events(service: Service) -> None:
    mixed = load_fixture("batches/mixed_batch.json")
    resp = await service.post_batch(mixed)
    assert resp.status == 200
    assert await resp.json() == {
        "accepted": 3,
        "duplicates": 0,
        "rejected": [
            {"index": 1, "euid": "m1-tap-no-tvp",
             "error": "Object missing required field `tvp` - at `$.pl[1]`"},
            {"index": 3, "euid": "m3-unknown-kind", "error": "Invalid value 5 - at `$.pl[3].ea`"},
            {"index": 4, "euid": "m4-bad-currency",
             "error": "Expected `int` <= 999 - at `$.pl[4].tr.cu`"},
            {"index": 5, "euid": None, "error": "Expected `object`, got `str` - at `$.pl[5]`"},
        ],
    }  # fmt: skip
    assert service.query("SELECT euid, idx FROM events ORDER BY idx") == [
        ("m0-screenview", 0), ("m2-tap", 2), ("m6-drag", 6),
    ]  # fmt: skip
    rows = service.query("SELECT pid, idx, euid, reason, raw FROM quarantine ORDER BY idx")
    assert [(pid, idx, euid, reason) for pid, idx, euid, reason, _ in rows] == [
        (1, 1, "m1-tap-no-tvp", "Object missing required field `tvp` - at `$.pl[1]`"),
        (1, 3, "m3-unknown-kind", "Invalid value 5 - at `$.pl[3].ea`"),
        (1, 4, "m4-bad-currency", "Expected `int` <= 999 - at `$.pl[4].tr.cu`"),
        (1, 5, None, "Expected `object`, got `str` - at `$.pl[5]`"),
    ]
    assert [json.loads(raw) for *_, raw in rows] == [mixed["pl"][i] for i in (1, 3, 4, 5)]
    # A retry reports the same rejections but does not quarantine them twice.
    again = await (await service.post_batch(mixed)).json()
    assert (again["accepted"], again["duplicates"], len(again["rejected"])) == (0, 3, 4)
    assert service.query("SELECT count(*) FROM quarantine") == [(4,)]


async def test_batch_of_only_invalid_events_is_200(service: Service, seed_batch: dict) -> None:
    seed_batch["pl"] = [{"ea": 6}]
    resp = await service.post_batch(seed_batch)
    assert resp.status == 200
    body = await resp.json()
    assert (body["accepted"], body["duplicates"]) == (0, 0)
    assert body["rejected"] == [
        {"index": 0, "euid": None, "error": "Object missing required field `euid` - at `$.pl[0]`"}
    ]


async def test_clock_skew_is_corrected_and_far_future_clamped(
    service: Service, seed_batch: dict
) -> None:
    now = int(time.time() * 1000)
    # The device clock is 2 h behind: corrected times move forward by ~2 h.
    seed_batch["now"] = now - 2 * 3600_000
    seed_batch["pl"] = seed_batch["pl"][:2]
    seed_batch["pl"][0]["t"] = now - 2 * 3600_000 - 5000
    # The second event claims to happen 30 h after the batch was sent: clamped.
    seed_batch["pl"][1]["t"] = now - 2 * 3600_000 + 30 * 3600_000
    await service.post_batch(seed_batch)
    ((received,),) = service.query("SELECT received_ms FROM batches")
    assert service.query("SELECT euid, t_ms, corrected_ms, clamped FROM events ORDER BY idx") == [
        ("e0-app-start", now - 2 * 3600_000 - 5000, received - 5000, 0),
        ("e1-foreground", now + 28 * 3600_000, received, 1),
    ]


async def test_unknown_fields_are_ignored_and_kept(service: Service, seed_batch: dict) -> None:
    seed_batch["future_header_field"] = {"a": 1}
    seed_batch["pl"][3]["future_event_field"] = [1, 2, 3]
    resp = await service.post_batch(seed_batch)
    assert (await resp.json())["accepted"] == 11
    ((body,),) = service.query("SELECT body FROM batches")
    assert json.loads(body)["pl"][3]["future_event_field"] == [1, 2, 3]
