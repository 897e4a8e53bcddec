"""The two layouts of a block of strokes give the reference's answer: the padded one (times
strictly increasing within every stroke, lengths alike) and the flat one (the rest)."""

from __future__ import annotations

import contextlib
import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from gestures_reference import classify_reference
from hypothesis import given, settings
from hypothesis import strategies as st

import gestures._measure as measure_module
from gestures import GESTURE_INVALID, classify_strokes


def _sibling(name: str) -> ModuleType:
    """A test module next to this one (test modules are not importable by name)."""
    spec = importlib.util.spec_from_file_location(
        f"gestures_layouts_{name}", Path(__file__).with_name(f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_properties = _sibling("test_properties")
Stroke = _properties.Stroke
altered, check_batch, motion = _properties.altered, _properties.check_batch, _properties.motion
assert_same = _sibling("test_classify").assert_same


@contextlib.contextmanager
def layout_limits(max_padding: float, block_samples: int | None = None) -> Iterator[None]:
    """Temporarily change when blocks take the padded layout, and their size."""
    saved = measure_module.MAX_PADDING, measure_module.BLOCK_SAMPLES
    measure_module.MAX_PADDING = max_padding
    if block_samples is not None:
        measure_module.BLOCK_SAMPLES = block_samples
    try:
        yield
    finally:
        measure_module.MAX_PADDING, measure_module.BLOCK_SAMPLES = saved


@pytest.fixture
def padded_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the blocks measured in the padded layout."""
    calls: list[int] = []
    original = measure_module.measure_padded

    def spy(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        original(*args, **kwargs)

    monkeypatch.setattr(measure_module, "measure_padded", spy)
    return calls


def arrays(strokes: list[Stroke]) -> tuple[np.ndarray, ...]:
    t = np.array([v for s in strokes for v in s["t"]], dtype=np.float64)
    x = np.array([v for s in strokes for v in s["x"]], dtype=np.float64)
    y = np.array([v for s in strokes for v in s["y"]], dtype=np.float64)
    offsets = np.cumsum([0] + [len(s["t"]) for s in strokes])
    density = np.array([s["density"] for s in strokes], dtype=np.float64)
    return t, x, y, offsets, density


@settings(deadline=None, max_examples=150)
@given(
    st.lists(altered(), min_size=1, max_size=12),
    st.booleans(),
    st.sampled_from([0.0, math.inf]),
)
def test_either_layout_matches_the_reference(
    strokes: list[Stroke], with_actions: bool, max_padding: float
) -> None:
    # inf: every block whose times strictly increase is padded, however ragged; 0: none.
    with layout_limits(max_padding):
        check_batch(strokes, with_actions)


# Strictly increasing times (no duplicates, no shuffle): the padded layout's input.
ordered = st.one_of(
    motion(1, 15, (0.0, 0.02)),
    motion(10, 60, (0.03, 0.3), curve=True),
    motion(3, 25, (0.4, 6.0)),
    motion(5, 30, (0.2, 3.0), rest=True),
).filter(lambda s: bool(np.all(np.diff(s["t"]) > 0)))


@settings(deadline=None, max_examples=100)
@given(st.lists(ordered, min_size=1, max_size=12), st.booleans())
def test_padded_layout_matches_the_reference(strokes: list[Stroke], with_actions: bool) -> None:
    with layout_limits(math.inf):
        check_batch(strokes, with_actions)


def test_time_ordered_strokes_of_like_lengths_take_the_padded_layout(
    padded_blocks: list[int],
) -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(16, 25, 500)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    t = np.cumsum(rng.integers(6, 14, n)).astype(np.float64)
    x = np.cumsum(rng.normal(0, 4, n))
    y = np.cumsum(rng.normal(0, 4, n))
    res = classify_strokes(t, x, y, offsets, 2.0)
    assert padded_blocks
    assert_same(res, classify_reference(t, x, y, offsets, 2.0))


def test_blocks_of_both_layouts_in_one_call(padded_blocks: list[int]) -> None:
    rng = np.random.default_rng(11)
    lengths = rng.integers(1, 30, 3000)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    t = np.cumsum(rng.integers(1, 30, n)).astype(np.float64)
    # A few runs of strokes get shuffled or duplicate times: their blocks go flat.
    for start in rng.integers(0, 2900, 8):
        lo, hi = offsets[start], offsets[start + 5]
        t[lo:hi] = rng.permutation(t[lo:hi])
        t[lo + 1] = t[lo]
    x = np.cumsum(rng.normal(0, 5, n))
    y = np.cumsum(rng.normal(0, 5, n))
    density = rng.choice([1.5, 2.0, 3.0], lengths.size)
    with layout_limits(measure_module.MAX_PADDING, block_samples=512):
        res = classify_strokes(t, x, y, offsets, density)
        assert 0 < len(padded_blocks) < len(measure_module._blocks(offsets))
    assert_same(res, classify_reference(t, x, y, offsets, density))


def test_non_finite_values_in_padded_blocks(padded_blocks: list[int]) -> None:
    strokes = [
        {"t": [0.0, 10.0, 20.0], "x": [0.0, math.nan, 2.0], "y": [0.0, 0.0, 0.0]},
        {"t": [-math.inf, 10.0, 20.0], "x": [0.0, 1.0, 2.0], "y": [0.0, 0.0, 0.0]},
        {"t": [0.0, 10.0, math.inf], "x": [0.0, 1.0, 2.0], "y": [0.0, 0.0, 0.0]},
        {"t": [0.0, 10.0, 20.0], "x": [0.0, 1.0, 2.0], "y": [math.inf, 0.0, 0.0]},
        {"t": [0.0, 10.0, 20.0], "x": [0.0, 1.0, 2.0], "y": [0.0, 0.0, -math.inf]},
        {"t": [math.nan], "x": [0.0], "y": [0.0]},
        {"t": [0.0, 10.0, 20.0], "x": [0.0, 100.0, 200.0], "y": [0.0, 0.0, 0.0]},
    ]
    t, x, y, offsets, _ = arrays([{**s, "density": 1.0} for s in strokes])
    res = classify_strokes(t, x, y, offsets, 1.0)
    assert padded_blocks
    assert res.gesture.tolist() == [GESTURE_INVALID] * 6 + [3]
    assert_same(res, classify_reference(t, x, y, offsets, 1.0))


def test_a_coordinate_whose_square_overflows_is_still_finite(padded_blocks: list[int]) -> None:
    t = np.array([0.0, 10.0, 20.0])
    x = np.array([0.0, 1e200, 2e200])
    res = classify_strokes(t, x, np.zeros(3), np.array([0, 3]), 1.0)
    assert padded_blocks
    assert res.gesture[0] != GESTURE_INVALID


def test_long_strokes_whose_window_barely_moves(padded_blocks: list[int]) -> None:
    # Up to 5000 px of travel, then a crawl down to 0.1 px/s through the release window:
    # the padded layout takes positions relative to the first sample, the reference fits
    # raw positions; both lose digits here, neither more than the other.
    rng = np.random.default_rng(5)
    m, n = 200, 40
    frac = np.arange(n) / (n - 1)
    travel = rng.uniform(500, 5000, m)[:, None]
    crawl = 10.0 ** rng.uniform(-4, 0, m)[:, None]  # px per ms
    x = (np.where(frac < 0.6, travel * frac / 0.6, travel + crawl * (frac - 0.6) * 8 * n)
         + 1000).ravel()
    y = (300 + crawl * np.sin(np.arange(n)) * 0.01).ravel()
    t = np.tile(np.arange(n) * 8.0, m) + 1.7e12
    offsets = np.arange(m + 1) * n
    res = classify_strokes(t, x, y, offsets, 1.0)
    ref = classify_reference(t, x, y, offsets, 1.0)
    assert padded_blocks
    np.testing.assert_allclose(res.velocity_dps, ref["velocity_dps"], rtol=1e-6)
    np.testing.assert_array_equal(res.gesture, ref["gesture"])
