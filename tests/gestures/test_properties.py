"""Property tests: on random batches of every family of stroke, classify_strokes equals the
plain per-stroke reference (classes exactly, metrics to 1e-6)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gestures_reference import FIELDS, classify_reference
from hypothesis import given, settings
from hypothesis import strategies as st

from gestures import (
    ACTION_CANCEL,
    ACTION_DOWN,
    ACTION_MOVE,
    ACTION_UP,
    Thresholds,
    classify_strokes,
)

Stroke = dict[str, Any]  # t, x, y (lists), density, actions (list or None)

EPOCH = 1.7e12  # device clocks are epoch ms; large times must not cost precision
NICE_DENSITIES = (0.75, 1.0, 1.5, 2.0, 2.625, 2.75, 3.0, 3.5, 4.0)

densities = st.one_of(st.sampled_from(NICE_DENSITIES), st.floats(0.75, 10.0))
starts = st.one_of(st.just(0.0), st.integers(0, 10**6).map(float), st.just(EPOCH))
intervals = st.sampled_from([4.0, 8.0, 8.33, 11.0, 16.0, 16.67, 25.0, 33.0])


@st.composite
def motion(draw: st.DrawFn, n_min: int, n_max: int, speed: tuple[float, float],
           curve: bool = False, rest: bool = False) -> Stroke:
    """Samples along a line (or an arc) at a steady rate, with a little jitter."""
    n = draw(st.integers(n_min, n_max))
    step = draw(intervals)
    t0 = draw(starts)
    times = [t0 + round(i * step + draw(st.integers(-1, 1)) * (i > 0), 2) for i in range(n)]
    times = sorted(times)
    v = draw(st.floats(*speed))  # px per ms
    angle = draw(st.floats(0, 2 * math.pi))
    bend = draw(st.floats(-0.02, 0.02)) if curve else 0.0
    x0, y0 = draw(st.floats(0, 1080)), draw(st.floats(0, 2400))
    jitter = draw(st.floats(0, 1.5))
    xs, ys = [], []
    for i, ti in enumerate(times):
        a = angle + bend * (ti - t0)
        r = v * (ti - t0)
        noise = jitter * ((i * 7919) % 13 - 6) / 6
        xs.append(x0 + r * math.cos(a) + noise)
        ys.append(y0 + r * math.sin(a) - noise)
    if rest:  # the finger stays still more than 40 ms before lifting
        times.append(times[-1] + draw(st.floats(41, 300)))
        xs.append(xs[-1])
        ys.append(ys[-1])
    return {"t": times, "x": xs, "y": ys, "density": draw(densities), "actions": None}


@st.composite
def band(draw: st.DrawFn) -> Stroke:
    """A stroke whose max excursion falls in the 24-48 dp band (or just around it)."""
    d = draw(densities)
    reach = draw(st.floats(20, 52)) * d
    n = draw(st.integers(2, 12))
    times = [float(i * 10) for i in range(n)]
    xs = [reach * math.sin(math.pi * i / max(1, n - 1)) for i in range(n)]
    return {"t": times, "x": xs, "y": [0.0] * n, "density": d, "actions": None}


@st.composite
def exact_threshold(draw: st.DrawFn) -> Stroke:
    """Strokes that sit exactly on a threshold (values exact in binary)."""
    d = draw(st.sampled_from(NICE_DENSITIES))
    kind = draw(st.sampled_from(["distance24", "distance48", "duration", "velocity"]))
    if kind == "duration":
        return {"t": [0.0, 250.0, 500.0], "x": [0.0, 3.0, 0.0], "y": [0.0] * 3,
                "density": d, "actions": None}
    if kind == "velocity":  # two window samples 20 ms apart, 2 dp apart: 100 dp/s
        far = 60 * d
        return {"t": [0.0, 200.0, 220.0], "x": [0.0, far - 2 * d, far], "y": [0.0] * 3,
                "density": d, "actions": None}
    reach = (24.0 if kind == "distance24" else 48.0) * d
    return {"t": [0.0, 100.0, 200.0], "x": [0.0, reach, 0.0], "y": [0.0] * 3,
            "density": d, "actions": None}


@st.composite
def degenerate(draw: st.DrawFn) -> Stroke:
    """Tiny strokes, equal times, odd densities."""
    n = draw(st.integers(1, 4))
    t = [draw(st.sampled_from([0.0, 5.0, 10.0])) for _ in range(n)]
    x = [draw(st.sampled_from([0.0, 30.0, 100.0])) for _ in range(n)]
    d = draw(st.one_of(densities, st.sampled_from([0.0, -1.0, math.nan, math.inf])))
    return {"t": t, "x": x, "y": [0.0] * n, "density": d, "actions": None}


families = st.one_of(
    motion(1, 15, (0.0, 0.02)),  # taps
    motion(20, 80, (0.0, 0.01)),  # long presses (25-33 ms steps reach > 500 ms)
    motion(10, 60, (0.03, 0.12)),  # slow straight drags
    motion(10, 60, (0.03, 0.3), curve=True),  # curved drags
    motion(3, 25, (0.4, 6.0)),  # flicks
    motion(5, 30, (0.2, 3.0), rest=True),  # fast, then rest before lifting
    band(),
    exact_threshold(),
    degenerate(),
)


@st.composite
def altered(draw: st.DrawFn) -> Stroke:
    """A stroke of any family, maybe with duplicate times, shuffled rows, bad values, actions."""
    s = draw(families)
    t, x, y = list(s["t"]), list(s["x"]), list(s["y"])
    n = len(t)
    if n > 1 and draw(st.booleans()):  # duplicate timestamps
        for i in draw(st.lists(st.integers(1, n - 1), max_size=3)):
            t[i] = t[i - 1]
    if n and draw(st.integers(0, 20)) == 0:
        which = draw(st.sampled_from(["t", "x", "y"]))
        {"t": t, "x": x, "y": y}[which][draw(st.integers(0, n - 1))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf])
        )
    actions = None
    if draw(st.booleans()):
        ending = draw(st.sampled_from([ACTION_UP, ACTION_UP, ACTION_CANCEL, ACTION_MOVE]))
        actions = [ACTION_DOWN] + [ACTION_MOVE] * max(0, n - 2) + [ending]
        actions = actions[:n]
    if n > 1 and draw(st.booleans()):  # rows shuffled within the stroke
        order = draw(st.permutations(range(n)))
        t, x, y = [t[i] for i in order], [x[i] for i in order], [y[i] for i in order]
        actions = None if actions is None else [actions[i] for i in order]
    return {"t": t, "x": x, "y": y, "density": s["density"], "actions": actions}


def check_batch(strokes: list[Stroke], with_actions: bool, strict: bool = False) -> None:
    """classify_strokes equals the reference on the batch.

    Unless ``strict``, a stroke whose metric lies within 1e-9 (relative) of a class or
    direction threshold may fall on either side (two correct float computations of a
    least-squares fit can differ in the last bit), and ``tvd``/``tvv`` may differ by one
    where the value is within 1e-6 of a half-integer (round half to even).
    """
    t = np.array([v for s in strokes for v in s["t"]], dtype=np.float64)
    x = np.array([v for s in strokes for v in s["x"]], dtype=np.float64)
    y = np.array([v for s in strokes for v in s["y"]], dtype=np.float64)
    offsets = np.cumsum([0] + [len(s["t"]) for s in strokes])
    density = np.array([s["density"] for s in strokes], dtype=np.float64)
    actions = None
    if with_actions:
        actions = np.array(
            [a for s in strokes for a in (s["actions"] or [ACTION_MOVE] * (len(s["t"]) - 1)
                                          + [ACTION_UP] * bool(s["t"]))],
            dtype=np.int8,
        )
    res = classify_strokes(t, x, y, offsets, density, actions)
    ref = classify_reference(t, x, y, offsets, density, actions)
    exact = np.ones(len(strokes), dtype=bool) if strict else ~_on_a_threshold(ref)
    for name in FIELDS:
        got, want = getattr(res, name), ref[name]
        if got.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=name)
        elif name in ("gesture", "ea", "fd"):
            np.testing.assert_array_equal(got[exact], want[exact], err_msg=name)
        elif name in ("tvd", "tvv") and not strict:
            value = ref["distance_dp" if name == "tvd" else "velocity_dps"]
            half = np.abs(value - np.floor(value) - 0.5) < 1e-6
            assert np.all((got == want) | (half & (np.abs(got - want) == 1))), name
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


def _on_a_threshold(ref: dict[str, np.ndarray]) -> np.ndarray:
    th = Thresholds()
    with np.errstate(invalid="ignore"):
        near = np.zeros(ref["gesture"].shape, dtype=bool)
        for value, edge in (
            (ref["distance_dp"], th.tap_max_distance_dp),
            (ref["distance_dp"], th.ambiguous_max_distance_dp),
            (ref["duration_ms"], th.tap_max_duration_ms),
            (ref["velocity_dps"], th.flick_min_velocity_dps),
        ):
            near |= np.abs(value - edge) <= 1e-9 * edge
        displacement = np.hypot(ref["dx_dp"], ref["dy_dp"])
        ratio_edge = th.complex_direction_ratio * ref["path_dp"]
        near |= np.abs(displacement - ratio_edge) <= 1e-9 * ref["path_dp"]
    return near


@settings(deadline=None, max_examples=200)
@given(st.lists(altered(), min_size=1, max_size=12), st.booleans())
def test_batches_match_the_reference(strokes: list[Stroke], with_actions: bool) -> None:
    check_batch(strokes, with_actions)


@settings(deadline=None, max_examples=60)
@given(st.lists(exact_threshold(), min_size=1, max_size=6))
def test_thresholds_match_the_reference(strokes: list[Stroke]) -> None:
    check_batch(strokes, with_actions=False, strict=True)
