"""The serving process keeps the cyclic GC and GIL hand-overs out of the ingest path."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from server.schema import BATCH_DECODER, RAW_BATCH_DECODER
from server.serve import GC_YOUNG_THRESHOLD, SWITCH_INTERVAL_S, tune_interpreter

SEED = Path(__file__).resolve().parents[2] / "fixtures" / "batches" / "seed_batch.json"


def test_decoded_wire_structs_are_not_tracked_by_the_gc() -> None:
    batch = BATCH_DECODER.decode(SEED.read_bytes())
    raw = RAW_BATCH_DECODER.decode(SEED.read_bytes())
    untracked = [batch, raw, batch.to, batch.r, *batch.pl, *(e.vo for e in batch.pl)]
    assert [gc.is_tracked(s) for s in untracked] == [False] * len(untracked)


def test_tune_interpreter_sets_the_switch_interval_and_the_gc() -> None:
    before = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_interpreter()
        assert SWITCH_INTERVAL_S == 0.0002
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 20, 20)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before[0])
        sys.setswitchinterval(before[1])
