"""Strings that are not UTF-8: msgspec raises UnicodeDecodeError for them, not a DecodeError.
A header with one is a 400 (JSON text must be UTF-8), an event or a stroke with one is
quarantined like any invalid event, on both backends; it used to be a 500."""

from __future__ import annotations

import json

from support import Service, load_fixture
from test_snapshots import post_snapshot
from test_touches import STROKES, body

BAD = b"\xff\xfe"  # never valid in UTF-8


def with_bad_bytes(document: dict, marker: str) -> bytes:
    """`document` as JSON, with BAD where the string `marker` was."""
    encoded = json.dumps(document).encode()
    assert encoded.count(marker.encode()) == 1
    return encoded.replace(marker.encode(), BAD)


async def test_a_header_string_that_is_not_utf8_is_400_and_nothing_is_stored(
    service: Service, seed_batch: dict
) -> None:
    seed_batch["dma"] = "BAD-MAKER"
    data = with_bad_bytes(seed_batch, "BAD-MAKER")
    resp = await service.post_batch(data)
    assert resp.status == 400
    at = data.index(BAD)
    assert await resp.json() == {
        "status": 400,
        "error": f"The body is not valid JSON: JSON is malformed: invalid UTF-8 (byte {at}).",
    }
    assert service.query("SELECT count(*) FROM batches") == [(0,)]
    assert service.query("SELECT count(*) FROM events") == [(0,)]


async def test_an_event_that_is_not_utf8_is_quarantined_and_the_rest_stored(
    service: Service, seed_batch: dict
) -> None:
    seed_batch["pl"][3]["tvp"] = "BAD-PATH"
    data = with_bad_bytes(seed_batch, "BAD-PATH")
    raw = json.dumps(seed_batch["pl"][3]).encode().replace(b"BAD-PATH", BAD)
    resp = await service.post_batch(data)
    assert resp.status == 200
    reason = f"JSON is malformed: invalid UTF-8 (byte {raw.index(BAD)}) - at `$.pl[3]`"
    assert await resp.json() == {
        "accepted": 10,
        "duplicates": 0,
        "rejected": [{"index": 3, "euid": "e3-tap", "error": reason}],
    }
    [(idx, euid, stored_reason, text)] = service.query(
        "SELECT idx, euid, reason, raw FROM quarantine"
    )
    assert (idx, euid, stored_reason) == (3, "e3-tap", reason)
    assert json.loads(text) == dict(seed_batch["pl"][3], tvp="\ufffd\ufffd")  # kept, replaced
    assert service.query("SELECT count(*) FROM events WHERE euid = 'e3-tap'") == [(0,)]
    assert service.query("SELECT count(*) FROM events") == [(10,)]
    # A retry: the 10 are duplicates, the bad event is quarantined once.
    resp = await service.post_batch(data)
    assert (await resp.json())["duplicates"] == 10
    assert service.query("SELECT count(*) FROM quarantine") == [(1,)]


async def test_an_euid_that_is_not_utf8_is_quarantined_without_one(
    service: Service, seed_batch: dict
) -> None:
    seed_batch["pl"][0]["euid"] = "BAD-EUID"
    resp = await service.post_batch(with_bad_bytes(seed_batch, "BAD-EUID"))
    reply = await resp.json()
    assert reply["accepted"] == 10
    assert [(r["index"], r["euid"]) for r in reply["rejected"]] == [(0, None)]
    assert service.query("SELECT idx, euid FROM quarantine") == [(0, None)]


async def test_a_stroke_that_is_not_utf8_is_quarantined(service: Service) -> None:
    strokes = [STROKES[0], dict(STROKES[1], tvp="BAD-PATH")]
    data = with_bad_bytes(body(strokes), "BAD-PATH")
    resp = await service.client.post(
        "/v1/touches",
        data=data,
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {service.default.ingest_key}"},
    )  # fmt: skip
    assert resp.status == 200
    raw = json.dumps(strokes[1]).encode().replace(b"BAD-PATH", BAD)
    reason = f"JSON is malformed: invalid UTF-8 (byte {raw.index(BAD)}) - at `$.strokes[1]`"
    assert (await resp.json())["rejected"] == [{"index": 1, "id": "press", "error": reason}]
    assert service.query("SELECT euid FROM events") == [("tap",)]
    assert service.query("SELECT idx, euid, reason FROM quarantine") == [(1, "press", reason)]


async def test_a_snapshot_that_is_not_utf8_is_400(service: Service) -> None:
    snapshot = load_fixture("snapshots/seed_restoration.json")
    snapshot["av"] = "BAD-VERSION"
    data = with_bad_bytes(snapshot, "BAD-VERSION")
    resp = await post_snapshot(service, data)
    assert resp.status == 400
    assert await resp.json() == {
        "status": 400,
        "error": "The body is not valid JSON: JSON is malformed: invalid UTF-8 "
        f"(byte {data.index(BAD)}).",
    }
    assert service.query("SELECT count(*) FROM snapshots") == [(0,)]


async def test_bytes_that_are_not_utf8_in_fields_tapzone_ignores_are_stored_as_sent(
    service: Service, seed_batch: dict
) -> None:
    seed_batch["custom"] = "BAD-HEADER-FIELD"
    seed_batch["pl"][2]["custom"] = "BAD-EVENT-FIELD"
    data = with_bad_bytes(seed_batch, "BAD-HEADER-FIELD")
    data = data.replace(b"BAD-EVENT-FIELD", BAD)
    resp = await service.post_batch(data)
    assert await resp.json() == {"accepted": 11, "duplicates": 0, "rejected": []}
    assert service.query("SELECT count(*) FROM events") == [(11,)]
    [(body,)] = service.query("SELECT body FROM batches")
    assert bytes(body) == data
