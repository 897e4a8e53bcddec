"""prepare_batch: the one-call fast path gives exactly the rows of the event-by-event path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server import ingest
from server.errors import PayloadTooLarge
from server.ingest import prepare_batch

BATCHES = Path(__file__).resolve().parents[2] / "fixtures" / "batches"
RECEIVED_MS = 1_700_000_100_000


def prepare(body: bytes, max_events: int = 1000) -> ingest.PreparedBatch:
    return prepare_batch(
        body, max_events=max_events, received_ms=RECEIVED_MS, skew_limit_ms=23 * 3_600_000
    )


def test_fast_and_slow_paths_store_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    body = (BATCHES / "seed_batch.json").read_bytes()
    assert ingest._decode_valid(body, 1000) is not None  # the seed batch takes the fast path
    fast = prepare(body)
    monkeypatch.setattr(ingest, "_decode_valid", lambda body, max_events: None)
    slow = prepare(body)
    assert len(fast.events) == 11
    assert fast == slow


def test_one_bad_event_sends_the_batch_down_the_slow_path() -> None:
    batch = json.loads((BATCHES / "seed_batch.json").read_bytes())
    batch["pl"][2]["scn"] = "three"
    body = json.dumps(batch).encode()
    assert ingest._decode_valid(body, 1000) is None
    prepared = prepare(body)
    assert len(prepared.events) == 10
    assert [r["index"] for r in prepared.rejected] == [2]
    assert prepared.rejected[0]["error"] == "Expected `int`, got `str` - at `$.pl[2].scn`"


def test_too_many_events_is_refused_whichever_path() -> None:
    body = (BATCHES / "seed_batch.json").read_bytes()
    assert ingest._decode_valid(body, 10) is None
    with pytest.raises(PayloadTooLarge, match=r"The batch has 11 events; at most 10"):
        prepare(body, max_events=10)
