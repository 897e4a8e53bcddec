"""classify_strokes on hand-made strokes: every class, every edge case, exact outcomes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from gestures_reference import FIELDS, classify_reference

from gestures import (
    ACTION_CANCEL,
    ACTION_DOWN,
    ACTION_MOVE,
    ACTION_UP,
    DIRECTION_NAMES,
    GESTURE_NAMES,
    StrokeResult,
    Thresholds,
    classify_strokes,
)


def one(t: list[float], x: list[float], y: list[float] | None = None, density: float = 1.0,
        actions: list[int] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Classify a single stroke; plain Python values plus names for readability."""
    y = [0.0] * len(t) if y is None else y
    res = classify_strokes(
        np.asarray(t, dtype=float), np.asarray(x, dtype=float), np.asarray(y, dtype=float),
        np.array([0, len(t)]), density,
        None if actions is None else np.asarray(actions, dtype=np.int8), **kwargs,
    )
    row = {name: getattr(res, name)[0].item() for name in FIELDS}
    row["name"] = GESTURE_NAMES[row["gesture"]]
    row["direction"] = DIRECTION_NAMES[row["fd"]]
    th = kwargs.get("thresholds", Thresholds())
    assert_same(res, classify_reference(t, x, y, [0, len(t)], density, actions, th))
    return row


def assert_same(res: StrokeResult, ref: dict[str, np.ndarray]) -> None:
    """The vectorised result equals the reference: codes exactly, metrics to 1e-9."""
    for name in FIELDS:
        got, want = getattr(res, name), ref[name]
        if got.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


def ms(start: float, stop: float, step: float) -> list[float]:
    return [float(v) for v in np.arange(start, stop + step / 2, step)]


# --- each class ------------------------------------------------------------------------


def test_tap() -> None:
    r = one([0, 10, 20, 30], [100, 101, 102, 102], [200, 200, 201, 201], density=2.0)
    assert r["name"] == "tap" and r["ea"] == 6 and r["fd"] == 0 and r["direction"] == ""
    assert r["duration_ms"] == 30.0
    assert r["distance_dp"] == pytest.approx(math.hypot(2, 1) / 2)
    assert r["samples"] == 4 and r["first_index"] == 0 and r["tvd"] == 1


def test_long_press() -> None:
    t = ms(0, 600, 20)
    r = one(t, [50.0] * len(t))
    assert r["name"] == "long_press" and r["ea"] == 8
    assert (r["duration_ms"], r["distance_dp"], r["velocity_dps"]) == (600.0, 0.0, 0.0)


def test_flick_straight_right() -> None:
    t = ms(0, 100, 10)
    r = one(t, [2.0 * v for v in t], [300.0] * len(t), density=2.0)  # 2 px/ms, 1 dp/ms
    assert r["name"] == "flick" and r["ea"] == 10 and r["direction"] == "right" and r["fd"] == 4
    assert r["distance_dp"] == 100.0 and r["path_dp"] == 100.0 and r["dx_dp"] == 100.0
    assert r["velocity_dps"] == pytest.approx(1000.0, rel=1e-12)
    assert (r["tvd"], r["tvv"]) == (100, 1000)


def test_drag_slow_down() -> None:
    t = ms(0, 1200, 20)
    r = one(t, [10.0] * len(t), [0.05 * v for v in t])  # 0.05 px/ms = 50 dp/s
    assert r["name"] == "drag" and r["ea"] == 9 and r["direction"] == "down"
    assert r["distance_dp"] == pytest.approx(60.0)
    assert r["velocity_dps"] == pytest.approx(50.0, rel=1e-9)


def test_ambiguous() -> None:
    r = one([0, 10, 20], [0, 15, 30])
    assert r["name"] == "ambiguous" and r["ea"] == -1 and r["fd"] == 0


# --- thresholds exactly ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("excursion_px", "density", "name"),
    [(47.0, 2.0, "tap"), (48.0, 2.0, "ambiguous"), (96.0, 2.0, "ambiguous"),
     (97.0, 2.0, "drag"), (23.999, 1.0, "tap"), (24.0, 1.0, "ambiguous"),
     (36.0, 0.75, "ambiguous"), (36.75, 0.75, "drag")],
)
def test_distance_thresholds(excursion_px: float, density: float, name: str) -> None:
    # Out and back: the max excursion is mid-stroke; the finger rests before lifting.
    r = one([0, 100, 200], [0, excursion_px, 0], density=density)
    assert r["distance_dp"] == excursion_px / density
    assert r["name"] == name


@pytest.mark.parametrize(("duration", "name"), [(500.0, "tap"), (500.5, "long_press")])
def test_duration_threshold(duration: float, name: str) -> None:
    assert one([0, duration], [0, 1])["name"] == name


@pytest.mark.parametrize(("dx_px", "name"), [(2.0, "drag"), (2.1, "flick")])
def test_velocity_threshold(dx_px: float, name: str) -> None:
    # Two window samples (the step before is a 200 ms gap): a line, dx_px over 20 ms.
    r = one([0, 200, 220], [0, 100 - dx_px, 100])
    assert r["velocity_dps"] == pytest.approx(dx_px * 50)
    assert r["velocity_dps"] == 100.0 if dx_px == 2.0 else r["velocity_dps"] > 100.0
    assert r["name"] == name


def test_custom_thresholds() -> None:
    r = one([0, 200], [0, 1], thresholds=Thresholds(tap_max_duration_ms=100.0))
    assert r["name"] == "long_press"


# --- release velocity ------------------------------------------------------------------


def test_rest_before_lift_has_no_velocity() -> None:
    t = [*ms(0, 100, 10), 150.0]  # 50 ms still before lifting: gap > 40 ms
    x = [3.0 * v for v in t[:-1]] + [300.0]
    r = one(t, x)
    assert r["velocity_dps"] == 0.0 and r["name"] == "drag" and r["tvv"] == 0


def test_gap_of_exactly_40_ms_stays_in_the_window() -> None:
    r = one([0, 40, 80], [0, 80, 160])  # 2 px/ms, gaps of exactly 40 ms
    assert r["velocity_dps"] == pytest.approx(2000.0, rel=1e-12)


def test_horizon_includes_a_sample_exactly_100_ms_old() -> None:
    t = [0.0, 30.0, 60.0, 90.0, 100.0]
    x = [50.0, 30.0, 60.0, 90.0, 100.0]  # the oldest sample is off the line x = t
    expected = np.polyfit(np.array(t) - 100, x, 2)[1] * 1000
    assert one(t, x)["velocity_dps"] == pytest.approx(expected, rel=1e-9)
    # One ms older and it drops out: the rest lie on x = t.
    t[0] = -1.0
    assert one(t, x)["velocity_dps"] == pytest.approx(1000.0, rel=1e-9)


def test_window_keeps_at_most_20_samples() -> None:
    t = ms(0, 58, 2)  # 30 samples within 58 ms
    x = [5.0 * v if i < 10 else 1.0 * v for i, v in enumerate(t)]  # last 20 on x = t
    assert one(t, x)["velocity_dps"] == pytest.approx(1000.0, rel=1e-9)


def test_quadratic_fit_derivative_at_the_last_sample() -> None:
    # x = 0.15 t² - 0.5 t through three samples: x'(20) = 5.5 px/ms.
    r = one([0, 10, 20], [0, 10, 50])
    assert r["velocity_dps"] == pytest.approx(5500.0, rel=1e-12)


def test_duplicate_timestamps_only_the_last_counts() -> None:
    # The first sample at t=20 (x=999) is dropped; the others lie on x = 2t.
    r = one([0, 10, 20, 20, 30], [0, 20, 999, 40, 60])
    assert r["velocity_dps"] == pytest.approx(2000.0, rel=1e-9)
    assert r["distance_dp"] == 999.0  # distance still sees every sample
    # A duplicate at the end: the later one (x=50) is the last sample.
    r = one([0, 10, 20, 20], [0, 10, 30, 50])
    assert r["velocity_dps"] == pytest.approx(5500.0, rel=1e-12)


def test_zero_duration() -> None:
    r = one([7, 7, 7], [0, 30, 60])
    assert r["duration_ms"] == 0.0 and r["velocity_dps"] == 0.0
    assert r["name"] == "drag" and r["direction"] == "right"


def test_single_sample() -> None:
    r = one([5], [1], [1])
    assert r["name"] == "tap" and r["samples"] == 1
    assert (r["duration_ms"], r["distance_dp"], r["path_dp"], r["velocity_dps"]) == (0, 0, 0, 0)


def test_shuffled_samples_are_sorted_stably() -> None:
    t = ms(0, 100, 10)
    x = [2.0 * v for v in t]
    order = [3, 0, 10, 7, 1, 9, 2, 5, 4, 8, 6]
    r = one([t[i] for i in order], [x[i] for i in order], density=2.0)
    assert r["name"] == "flick" and r["velocity_dps"] == pytest.approx(1000.0)
    assert r["first_index"] == 1  # where t = 0 sits in the input
    # Equal times keep input order: the last input sample at t=10 is the last sample.
    r = one([10, 0, 10], [40, 0, 7])
    assert r["dx_dp"] == 7.0 and r["first_index"] == 1


# --- invalid and cancelled -------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "x", "density"),
    [([0, 10, math.nan], [0, 1, 2], 1.0), ([0, 10, 20], [0, math.inf, 2], 1.0),
     ([-math.inf, 10, 20], [0, 1, 2], 1.0), ([0, 10, 20], [0, 1, 2], 0.0),
     ([0, 10, 20], [0, 1, 2], -2.0), ([0, 10, 20], [0, 1, 2], math.nan),
     ([0, 10, 20], [0, 1, 2], math.inf)],
)
def test_invalid(t: list[float], x: list[float], density: float) -> None:
    r = one(t, x, density=density)
    assert r["name"] == "invalid" and r["ea"] == -1 and r["fd"] == 0
    assert (r["tvd"], r["tvv"], r["first_index"], r["samples"]) == (-1, -1, -1, 3)
    assert all(math.isnan(r[k]) for k in ("duration_ms", "distance_dp", "velocity_dps"))


def test_empty_strokes_are_invalid() -> None:
    t = np.array([0.0, 10.0, 20.0])
    res = classify_strokes(t, t * 0, t * 0, np.array([0, 0, 3, 3]), 1.0)
    assert [GESTURE_NAMES[g] for g in res.gesture] == ["invalid", "tap", "invalid"]
    assert res.samples.tolist() == [0, 3, 0]
    assert res.first_index.tolist() == [-1, 0, -1]
    empty = classify_strokes(np.empty(0), np.empty(0), np.empty(0), np.array([0, 0]), 1.0)
    assert empty.gesture.tolist() == [6] and empty.ea.tolist() == [-1]
    none = classify_strokes(np.empty(0), np.empty(0), np.empty(0), np.array([0]), 1.0)
    assert none.gesture.shape == (0,) and none.velocity_dps.dtype == np.float64


D, M, U, C = ACTION_DOWN, ACTION_MOVE, ACTION_UP, ACTION_CANCEL


@pytest.mark.parametrize(
    ("actions", "name"),
    [([D, M, U], "tap"), ([D, M, C], "cancelled"), ([D, M, M], "cancelled"),
     ([D, U, M], "tap"), ([D, C, U], "tap")],
)
def test_cancelled(actions: list[int], name: str) -> None:
    assert one([0, 10, 20], [0, 1, 2], actions=actions)["name"] == name


def test_cancel_is_judged_after_the_sort() -> None:
    # The cancel row comes first in the input but is last in time.
    assert one([30, 0, 10], [0, 1, 2], actions=[C, D, U])["name"] == "cancelled"


def test_invalid_wins_over_cancelled() -> None:
    assert one([0, math.nan], [0, 1], actions=[D, C])["name"] == "invalid"


# --- direction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dx", "dy", "direction"),
    [(60, -60, "right"), (-60, 60, "left"), (10, -60, "up"), (-10, 60, "down"),
     (-60, -59, "left"), (0, 70, "down")],
)
def test_direction(dx: float, dy: float, direction: str) -> None:
    r = one([0, 10, 20], [0, dx / 2, dx], [0, dy / 2, dy])
    assert r["name"] == "flick" and r["direction"] == direction


def test_complex_direction() -> None:
    # Right 100 then back left 80: displacement 20 < 0.7 x path 180.
    r = one([0, 10, 20], [0, 100, 20])
    assert r["path_dp"] == 180.0 and r["direction"] == "complex" and r["fd"] == 5


# --- the batch API ---------------------------------------------------------------------


def test_batch_equals_strokes_one_by_one_and_inputs_are_untouched() -> None:
    strokes = [([0, 10, 20], [0, 1, 2]), ([], []), ([0, 100, 200], [0, 97, 0]),
               ([5], [9]), ([0, 10, 20], [0, 90, 180])]
    t = np.array([v for s in strokes for v in s[0]], dtype=np.int32)
    x = np.array([v for s in strokes for v in s[1]], dtype=np.float32)
    y = np.zeros(t.size)
    offsets = np.cumsum([0] + [len(s[0]) for s in strokes])
    density = np.array([1.0, 1.0, 2.0, 1.0, 3.0])
    before = (t.copy(), x.copy(), offsets.copy(), density.copy())
    res = classify_strokes(t, x, y, offsets, density)
    assert [GESTURE_NAMES[g] for g in res.gesture] == ["tap", "invalid", "drag", "tap", "flick"]
    assert res.first_index.tolist() == [0, -1, 3, 6, 7]
    assert_same(res, classify_reference(t, x, y, offsets, density))
    for a, b in zip(before, (t, x, offsets, density)):
        np.testing.assert_array_equal(a, b)
    dtypes = {name: getattr(res, name).dtype.name for name in FIELDS}
    assert dtypes == {
        "gesture": "int8", "ea": "int16", "duration_ms": "float64", "distance_dp": "float64",
        "path_dp": "float64", "dx_dp": "float64", "dy_dp": "float64",
        "velocity_dps": "float64", "fd": "int8", "tvd": "int64", "tvv": "int64",
        "samples": "int64", "first_index": "int64",
    }


def test_many_blocks_with_duplicates_and_shuffles_match_the_reference() -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 40, 4000)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    # Many duplicate and out-of-order times; some strokes slow, some still.
    t = np.round(rng.random(n) * np.repeat(rng.choice([100, 300, 1500], lengths.size), lengths))
    step = np.repeat(rng.choice([0.3, 20.0], lengths.size), lengths)
    x = np.cumsum(rng.normal(0, step))
    y = np.cumsum(rng.normal(0, step))
    density = rng.choice([0.75, 1.5, 2.0, 3.0], lengths.size)
    actions = rng.choice(np.array([D, M, U, C], dtype=np.int8), n, p=[0.1, 0.7, 0.15, 0.05])
    res = classify_strokes(t, x, y, offsets, density, actions)
    assert_same(res, classify_reference(t, x, y, offsets, density, actions))
    assert len(set(res.gesture.tolist())) == 7


# --- argument checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offsets", "message"),
    [([0, 2, 1, 3], "offsets must be non-decreasing, got offsets[1] = 2 > offsets[2] = 1"),
     ([0, 2], "offsets must start at 0 and end at the number of samples (3), got 0 … 2"),
     ([1, 3], "offsets must start at 0 and end at the number of samples (3), got 1 … 3"),
     ([], "offsets must be a 1-D array of n_strokes + 1 items, got shape (0,)"),
     ([0.0, 3.0], "offsets must be an integer array, got dtype float64")],
)
def test_bad_offsets(offsets: list[Any], message: str) -> None:
    t = np.zeros(3)
    with pytest.raises(ValueError) as err:
        classify_strokes(t, t, t, np.array(offsets), 1.0)
    assert str(err.value) == message


def test_bad_arrays() -> None:
    t = np.zeros(3)
    off = np.array([0, 3])
    with pytest.raises(ValueError, match="t, x and y must have the same length, got 3, 2, 3"):
        classify_strokes(t, t[:2], t, off, 1.0)
    with pytest.raises(ValueError, match=r"density must be a scalar or have shape \(1,\)"):
        classify_strokes(t, t, t, off, np.ones(2))
    with pytest.raises(ValueError, match=r"actions must be codes 0…3"):
        classify_strokes(t, t, t, off, 1.0, np.array([0, 1, 4], dtype=np.int8))
    with pytest.raises(ValueError, match="x must be a 1-D array"):
        classify_strokes(t, t.reshape(3, 1), t, off, 1.0)
    with pytest.raises(ValueError, match="y must hold numbers"):
        classify_strokes(t, t, np.array(["a", "b", "c"]), off, 1.0)
