"""classify_strokes: many ragged touch strokes in flat arrays -> gesture class and metrics."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._measure import Measures, measure
from ._release import release_speed
from ._rules import direction_codes, gesture_codes
from ._validate import Float64Array, Int64Array, check_inputs
from .constants import (
    DEFAULT_THRESHOLDS,
    DIRECTION_NONE,
    GESTURE_EA,
    GESTURE_INVALID,
    Thresholds,
)

Array = np.ndarray[Any, Any]

EA_TABLE = np.asarray(GESTURE_EA, dtype=np.int16)

# Strokes per group: the per-stroke arithmetic runs on vectors long enough to amortise
# numpy's per-call overhead and short enough to stay in the CPU cache.
GROUP_STROKES = 1 << 14


class StrokeResult(NamedTuple):
    """Per-stroke output of classify_strokes; every field has shape (n_strokes,).

    Attributes
    ----------
    gesture : int8
        Gesture code (``GESTURE_TAP`` …); ``GESTURE_NAMES[code]`` is its name.
    ea : int16
        Event action: 6 tap, 8 long press, 9 drag, 10 flick; -1 for the other classes.
    duration_ms, distance_dp, path_dp, dx_dp, dy_dp, velocity_dps : float64
        Stroke metrics (SPEC §5); NaN for invalid strokes.
    fd : int8
        Direction code 1 up, 2 down, 3 left, 4 right, 5 complex for drags and flicks;
        0 for the other classes.
    tvd, tvv : int64
        ``distance_dp`` and ``velocity_dps`` rounded half to even; -1 for invalid strokes.
    samples : int64
        Number of samples of the stroke.
    first_index : int64
        Index into the input arrays of the touch-down sample (first after the stable sort
        by t); -1 for invalid strokes.
    """

    gesture: Array
    ea: Array
    duration_ms: Array
    distance_dp: Array
    path_dp: Array
    dx_dp: Array
    dy_dp: Array
    velocity_dps: Array
    fd: Array
    tvd: Array
    tvv: Array
    samples: Array
    first_index: Array


def classify_strokes(
    t: Any,
    x: Any,
    y: Any,
    offsets: Any,
    density: Any,
    actions: Any = None,
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> StrokeResult:
    """Classify touch strokes into gestures (SPEC §5), all strokes at once.

    Parameters
    ----------
    t : ndarray of shape (n_samples,), float64 (any real dtype is converted)
        Sample times in ms of all strokes, concatenated. Need not be sorted within a
        stroke: each stroke is stably sorted by t first.
    x, y : ndarray of shape (n_samples,), float64
        Sample positions in px; y grows downward.
    offsets : ndarray of shape (n_strokes + 1,), int64
        Stroke i is samples ``offsets[i]:offsets[i + 1]``; ``offsets[0] == 0``,
        ``offsets[-1] == n_samples``, non-decreasing. An empty stroke is ``invalid``.
    density : float or ndarray of shape (n_strokes,), float64
        Screen density in px per dp.
    actions : ndarray of shape (n_samples,), int8, optional
        ``ACTION_DOWN`` 0, ``ACTION_MOVE`` 1, ``ACTION_UP`` 2, ``ACTION_CANCEL`` 3. When
        given, a stroke whose last action (after the sort) is cancel, or that has no up,
        is ``cancelled``.
    thresholds : Thresholds, optional
        The SPEC defaults unless given.

    Returns
    -------
    StrokeResult
        One entry per stroke. The inputs are not modified.

    Raises
    ------
    ValueError
        If the arrays have the wrong shapes or dtypes, if the offsets do not cover the
        samples monotonically, or if an action code is not 0…3.
    """
    t64, x64, y64, off, dens, act = check_inputs(t, x, y, offsets, density, actions)
    n_strokes = off.size - 1
    samples = np.diff(off)
    nonempty = np.flatnonzero(samples)
    all_nonempty = nonempty.size == n_strokes
    # Empty strokes own no samples, so the others' offsets stay contiguous without them.
    off_ne = off if all_nonempty else np.append(off[:-1][nonempty], t64.size)

    out = _allocate(n_strokes, filled=not all_nonempty)
    with np.errstate(all="ignore"):  # non-finite strokes compute garbage, masked below
        for g0 in range(0, nonempty.size, GROUP_STROKES):
            g1 = min(g0 + GROUP_STROKES, nonempty.size)
            meas = measure(t64, x64, y64, act, off_ne[g0 : g1 + 1], thresholds)
            if all_nonempty:  # write the results in place
                _classify(meas, dens[g0:g1], thresholds, {k: v[g0:g1] for k, v in out.items()})
            else:
                rows = nonempty[g0:g1]
                part = {k: np.empty(rows.size, dtype=v.dtype) for k, v in out.items()}
                _classify(meas, dens[rows], thresholds, part)
                for k, v in part.items():
                    out[k][rows] = v
    return StrokeResult(**out, samples=samples)


def _allocate(n_strokes: int, filled: bool) -> dict[str, Array]:
    """Result arrays; if ``filled``, pre-filled with what an empty stroke gets."""
    out = {}
    for name, dtype, fill in (
        ("gesture", np.int8, GESTURE_INVALID), ("ea", np.int16, -1),
        ("duration_ms", np.float64, np.nan), ("distance_dp", np.float64, np.nan),
        ("path_dp", np.float64, np.nan), ("dx_dp", np.float64, np.nan),
        ("dy_dp", np.float64, np.nan), ("velocity_dps", np.float64, np.nan),
        ("fd", np.int8, DIRECTION_NONE), ("tvd", np.int64, -1), ("tvv", np.int64, -1),
        ("first_index", np.int64, -1),
    ):
        out[name] = np.full(n_strokes, fill, dtype=dtype) if filled else np.empty(
            n_strokes, dtype=dtype
        )
    return out


def _classify(
    meas: Measures, density: Float64Array, th: Thresholds, out: dict[str, Array]
) -> None:
    """Classify a group of measured strokes into ``out`` (arrays of the group's length)."""
    valid = np.isfinite(density)
    valid &= density > 0
    valid &= meas.finite
    all_valid = bool(valid.all())
    # Dividing by NaN where the stroke is invalid makes every metric NaN there.
    per_dp = density if all_valid else np.where(valid, density, np.nan)
    duration = out["duration_ms"]
    if all_valid:
        np.copyto(duration, meas.duration_ms)
    else:
        np.add(meas.duration_ms, per_dp * 0.0, out=duration)
    distance = np.divide(meas.distance_px, per_dp, out=out["distance_dp"])
    path = np.divide(meas.path_px, per_dp, out=out["path_dp"])
    dx = np.divide(meas.dx_px, per_dp, out=out["dx_dp"])
    dy = np.divide(meas.dy_px, per_dp, out=out["dy_dp"])
    velocity = release_speed(meas.sums, th, out=out["velocity_dps"])
    np.divide(velocity, per_dp, out=velocity)
    gesture = gesture_codes(distance, duration, velocity, meas.cancelled, valid, th)

    out["gesture"][...] = gesture
    EA_TABLE.take(gesture, out=out["ea"])
    out["fd"][...] = direction_codes(dx, dy, path, gesture, th)
    invalid = None if all_valid else ~valid
    _rounded(distance, invalid, out["tvd"])
    _rounded(velocity, invalid, out["tvv"])
    np.copyto(out["first_index"], meas.first_index)
    if invalid is not None:
        out["first_index"][invalid] = -1


def _rounded(values: Float64Array, invalid: Any, out: Int64Array) -> None:
    """Round half to even (numpy.rint), -1 where invalid; clipped to stay in int64."""
    rounded = np.rint(values)
    np.minimum(rounded, 2.0**62, out=rounded)
    np.copyto(out, rounded, casting="unsafe")
    if invalid is not None:
        out[invalid] = -1
