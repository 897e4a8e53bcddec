"""A slow, obvious, per-stroke implementation of SPEC §5, to check the vectorised one against.

Written straight from the SPEC text with plain Python and numpy.polyfit; it shares nothing
with gestures/ but the constants.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gestures.constants import (
    ACTION_CANCEL,
    ACTION_UP,
    DEFAULT_THRESHOLDS,
    DIRECTION_COMPLEX,
    DIRECTION_DOWN,
    DIRECTION_LEFT,
    DIRECTION_RIGHT,
    DIRECTION_UP,
    GESTURE_AMBIGUOUS,
    GESTURE_CANCELLED,
    GESTURE_DRAG,
    GESTURE_EA,
    GESTURE_FLICK,
    GESTURE_INVALID,
    GESTURE_LONG_PRESS,
    GESTURE_TAP,
    Thresholds,
)

FIELDS = (
    "gesture", "ea", "duration_ms", "distance_dp", "path_dp", "dx_dp", "dy_dp",
    "velocity_dps", "fd", "tvd", "tvv", "samples", "first_index",
)


def classify_stroke(
    t: list[float],
    x: list[float],
    y: list[float],
    density: float,
    actions: list[int] | None = None,
    th: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, Any]:
    """Classify one stroke; ``first_index`` is relative to the stroke's first sample."""
    n = len(t)
    invalid = {
        "gesture": GESTURE_INVALID, "ea": -1, "duration_ms": math.nan,
        "distance_dp": math.nan, "path_dp": math.nan, "dx_dp": math.nan,
        "dy_dp": math.nan, "velocity_dps": math.nan, "fd": 0, "tvd": -1, "tvv": -1,
        "samples": n, "first_index": -1,
    }
    if n == 0:
        return invalid
    if not all(math.isfinite(v) for v in (*t, *x, *y)):
        return invalid
    if not (math.isfinite(density) and density > 0):
        return invalid

    # Stable sort by time (Python's sort is stable).
    order = sorted(range(n), key=lambda i: t[i])
    ts = [t[i] for i in order]
    xs = [x[i] for i in order]
    ys = [y[i] for i in order]

    duration = ts[-1] - ts[0]
    distance = max(math.hypot(xs[i] - xs[0], ys[i] - ys[0]) for i in range(n)) / density
    path = sum(math.hypot(xs[i + 1] - xs[i], ys[i + 1] - ys[i]) for i in range(n - 1)) / density
    dx = (xs[-1] - xs[0]) / density
    dy = (ys[-1] - ys[0]) / density
    velocity = release_velocity(ts, xs, ys, th) / density

    if actions is not None and (
        actions[order[-1]] == ACTION_CANCEL or ACTION_UP not in actions
    ):
        gesture = GESTURE_CANCELLED
    elif distance < th.tap_max_distance_dp:
        gesture = GESTURE_TAP if duration <= th.tap_max_duration_ms else GESTURE_LONG_PRESS
    elif distance <= th.ambiguous_max_distance_dp:
        gesture = GESTURE_AMBIGUOUS
    elif velocity > th.flick_min_velocity_dps:
        gesture = GESTURE_FLICK
    else:
        gesture = GESTURE_DRAG

    fd = 0
    if gesture in (GESTURE_DRAG, GESTURE_FLICK):
        if math.hypot(dx, dy) < th.complex_direction_ratio * path:
            fd = DIRECTION_COMPLEX
        elif abs(dx) >= abs(dy):
            fd = DIRECTION_LEFT if dx < 0 else DIRECTION_RIGHT
        else:
            fd = DIRECTION_UP if dy < 0 else DIRECTION_DOWN

    return {
        "gesture": gesture, "ea": GESTURE_EA[gesture], "duration_ms": duration,
        "distance_dp": distance, "path_dp": path, "dx_dp": dx, "dy_dp": dy,
        "velocity_dps": velocity, "fd": fd, "tvd": round(distance), "tvv": round(velocity),
        "samples": n, "first_index": order[0],
    }


def release_velocity(ts: list[float], xs: list[float], ys: list[float], th: Thresholds) -> float:
    """Release speed in px/s of time-sorted samples, like the platforms' velocity trackers."""
    # Of samples sharing a timestamp only the last counts.
    kept = [i for i in range(len(ts)) if i == len(ts) - 1 or ts[i + 1] != ts[i]]
    last = kept[-1]
    window = [last]
    for i in reversed(kept[:-1]):
        if len(window) == th.velocity_max_samples:
            break
        if ts[i] < ts[last] - th.velocity_horizon_ms:  # older than the horizon
            break
        if ts[window[-1]] - ts[i] > th.velocity_max_gap_ms:  # the finger stopped
            break
        window.append(i)
    if len(window) < 2:
        return 0.0
    tau = np.array([ts[i] - ts[last] for i in window])
    wx = np.array([xs[i] for i in window])
    wy = np.array([ys[i] for i in window])
    if len(window) == 2:  # a line through two points: distance over time
        return math.hypot(wx[0] - wx[1], wy[0] - wy[1]) * 1000.0 / (tau[0] - tau[1])
    if _quadratic_fit_ok(tau, th):
        vx = np.polyfit(tau, wx, 2)[1]  # derivative at tau = 0 of c0·tau² + c1·tau + c2
        vy = np.polyfit(tau, wy, 2)[1]
    else:
        vx = np.polyfit(tau, wx, 1)[0]
        vy = np.polyfit(tau, wy, 1)[0]
    return math.hypot(vx, vy) * 1000.0


def _quadratic_fit_ok(tau: np.ndarray[Any, Any], th: Thresholds) -> bool:
    """The documented degeneracy rule: Gram determinant of times scaled to [-1, 0]."""
    scaled = tau / (tau.max() - tau.min())
    vander = np.vander(scaled, 3)
    return bool(np.linalg.det(vander.T @ vander) > th.fit_min_determinant)


def classify_reference(
    t: Any,
    x: Any,
    y: Any,
    offsets: Any,
    density: Any,
    actions: Any = None,
    th: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, np.ndarray[Any, Any]]:
    """classify_strokes' contract, one stroke at a time; returns field -> array."""
    offsets = [int(o) for o in offsets]
    n_strokes = len(offsets) - 1
    densities = np.broadcast_to(np.asarray(density, dtype=np.float64), (n_strokes,))
    rows = []
    for i in range(n_strokes):
        a, b = offsets[i], offsets[i + 1]
        acts = None if actions is None else [int(v) for v in actions[a:b]]
        row = classify_stroke(
            [float(v) for v in t[a:b]], [float(v) for v in x[a:b]],
            [float(v) for v in y[a:b]], float(densities[i]), acts, th,
        )
        if row["first_index"] >= 0:
            row["first_index"] += a
        rows.append(row)
    return {name: np.array([row[name] for row in rows]) for name in FIELDS}
