"""The serving process keeps the cyclic GC out of the ingest path."""

from __future__ import annotations

import gc
from pathlib import Path

from server.schema import BATCH_DECODER, RAW_BATCH_DECODER
from server.serve import GC_YOUNG_THRESHOLD, tune_gc

SEED = Path(__file__).resolve().parents[2] / "fixtures" / "batches" / "seed_batch.json"


def test_decoded_wire_structs_are_not_tracked_by_the_gc() -> None:
    batch = BATCH_DECODER.decode(SEED.read_bytes())
    raw = RAW_BATCH_DECODER.decode(SEED.read_bytes())
    untracked = [batch, raw, batch.to, batch.r, *batch.pl, *(e.vo for e in batch.pl)]
    assert [gc.is_tracked(s) for s in untracked] == [False] * len(untracked)


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 20, 20)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
