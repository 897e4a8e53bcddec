"""Raw per-stroke measurements (px, ms) of consecutive non-empty strokes, block by block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._geometry import excursion_and_path, finite_strokes, sort_permutation, time_steps
from ._padded import measure_padded, strictly_increasing
from ._release import N_SUMS, Matrix, window_sums
from ._validate import Float64Array, Int8Array, Int64Array
from .constants import ACTION_CANCEL, ACTION_UP, Thresholds

Bool1D = np.ndarray[Any, np.dtype[np.bool_]]

# Samples per block: a block's temporaries stay in the CPU cache, which more than pays for
# the per-block Python overhead.
BLOCK_SAMPLES = 1 << 15
# A block whose strokes all strictly increase in time is measured in the padded layout
# (see _padded) unless padding would grow it more than this many times (measured: the
# padded layout stays the faster one up to about 1.8 times the samples).
MAX_PADDING = 1.75


@dataclass(frozen=True)
class Measures:
    """Raw measurements of a group of strokes, one entry (column) per stroke."""

    duration_ms: Float64Array
    distance_px: Float64Array
    path_px: Float64Array
    dx_px: Float64Array
    dy_px: Float64Array
    first_index: Int64Array
    finite: Bool1D
    cancelled: Bool1D
    sums: Matrix  # release-window sums, see window_sums

    @classmethod
    def empty(cls, n_strokes: int) -> Measures:
        def floats() -> Float64Array:
            return np.empty(n_strokes, dtype=np.float64)

        return cls(
            floats(), floats(), floats(), floats(), floats(),
            np.empty(n_strokes, dtype=np.int64),
            np.empty(n_strokes, dtype=bool),
            np.zeros(n_strokes, dtype=bool),
            np.empty((N_SUMS, n_strokes), dtype=np.float64),
        )


def measure(
    t: Float64Array,
    x: Float64Array,
    y: Float64Array,
    actions: Int8Array | None,
    offsets: Int64Array,
    th: Thresholds,
) -> Measures:
    """Measure consecutive non-empty strokes.

    Parameters
    ----------
    t, x, y : ndarray of shape (n_samples,), float64
        All samples of the input, in input order (read only).
    actions : ndarray of shape (n_samples,), int8, or None
    offsets : ndarray of shape (n_strokes + 1,), int64
        Sample offsets (into ``t``) of the strokes to measure, each stroke non-empty.
    th : Thresholds
    """
    meas = Measures.empty(offsets.size - 1)
    # A padded block leaves to this function what is cheaper over the whole group: the
    # first sample's index (a padded block keeps the input order), the finiteness
    # check and the square root of the excursion.
    np.copyto(meas.first_index, offsets[:-1])
    runs: list[list[int]] = []  # stroke ranges measured in the padded layout
    for lo, hi in _blocks(offsets):
        block = offsets[lo : hi + 1]
        if _measure_block(t, x, y, actions, block, th, meas, slice(lo, hi)):
            if runs and runs[-1][1] == lo:
                runs[-1][1] = hi
            else:
                runs.append([lo, hi])
    for lo, hi in runs:
        _check_finite(t, x, y, offsets[lo : hi + 1], meas, slice(lo, hi))
    np.sqrt(meas.distance_px, out=meas.distance_px)
    return meas


def _blocks(offsets: Int64Array) -> list[tuple[int, int]]:
    """Consecutive stroke ranges ``(lo, hi)`` of about BLOCK_SAMPLES samples each."""
    n = offsets.size - 1
    marks = np.arange(int(offsets[0]) + BLOCK_SAMPLES, int(offsets[-1]), BLOCK_SAMPLES)
    cuts = np.searchsorted(offsets, marks)
    edges = [0, *np.unique(np.clip(cuts, 1, n)).tolist(), n]
    return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:]) if lo < hi]


def _measure_block(
    t: Float64Array,
    x: Float64Array,
    y: Float64Array,
    actions: Int8Array | None,
    offsets: Int64Array,
    th: Thresholds,
    out: Measures,
    cols: slice,
) -> bool:
    """Measure a block of strokes into columns ``cols`` of ``out`` (``distance_px`` squared).

    Returns whether the block took the padded layout, which leaves ``finite`` to the caller.
    """
    s0, s1 = int(offsets[0]), int(offsets[-1])
    t, x, y = t[s0:s1], x[s0:s1], y[s0:s1]
    starts = offsets[:-1] - s0
    last = offsets[1:] - (s0 + 1)
    width = int((last - starts).max()) + 1
    if width * last.size <= MAX_PADDING * t.size and strictly_increasing(t, last):
        _measure_padded_block(t, x, y, actions, s0, starts, last, width, th, out, cols)
        return True
    dt = time_steps(t, last)
    perm = sort_permutation(t, starts, last, dt)
    if perm is None:
        first, final = starts, last
    else:
        t, x, y = t[perm], x[perm], y[perm]
        dt = time_steps(t, last)
        first, final = perm[starts], perm[last]
    np.add(first, s0, out=out.first_index[cols])
    out.finite[cols] = finite_strokes(t, x, y, last)
    if actions is not None:
        out.cancelled[cols] = _cancelled(actions[s0:s1], last, final)

    np.subtract(t[last], t[starts], out=out.duration_ms[cols])
    x0, y0 = x[starts], y[starts]
    np.subtract(x[last], x0, out=out.dx_px[cols])
    np.subtract(y[last], y0, out=out.dy_px[cols])
    excursion_and_path(x, y, starts, last, out.distance_px[cols], out.path_px[cols])
    window_sums(t, x, y, last, dt, th, out.sums[:, cols])
    return False


def _measure_padded_block(
    t: Float64Array,
    x: Float64Array,
    y: Float64Array,
    actions: Int8Array | None,
    s0: int,
    starts: Int64Array,
    last: Int64Array,
    width: int,
    th: Thresholds,
    out: Measures,
    cols: slice,
) -> None:
    """_measure_block for strictly time-ordered strokes: no sort, no duplicate times."""
    if actions is not None:
        out.cancelled[cols] = _cancelled(actions[s0 : s0 + t.size], last, last)
    np.subtract(t[last], t[starts], out=out.duration_ms[cols])
    measure_padded(
        t, x, y, starts, last, width, th, out.distance_px[cols], out.path_px[cols],
        out.dx_px[cols], out.dy_px[cols], out.sums[:, cols],
    )


def _check_finite(
    t: Float64Array,
    x: Float64Array,
    y: Float64Array,
    offsets: Int64Array,
    out: Measures,
    cols: slice,
) -> None:
    """Set ``finite`` of strokes measured in the padded layout (times strictly increasing).

    There, a non-finite t, x or y makes the stroke's duration, squared excursion, path or
    displacement non-finite: one sum clears all the strokes at once.
    """
    total = (out.duration_ms[cols].sum() + out.distance_px[cols].sum()
             + out.path_px[cols].sum() + out.dx_px[cols].sum() + out.dy_px[cols].sum())
    if np.isfinite(total):
        out.finite[cols] = True
    else:  # or a huge coordinate overflowed a square: check sample by sample
        s0, s1 = int(offsets[0]), int(offsets[-1])
        out.finite[cols] = finite_strokes(
            t[s0:s1], x[s0:s1], y[s0:s1], offsets[1:] - (s0 + 1)
        )


def _cancelled(acts: Int8Array, last: Int64Array, final: Int64Array) -> Bool1D:
    """Whether each stroke's last action (at ``final``, after the sort) is cancel or it
    has no up; ``last`` ends each stroke in ``acts``."""
    has_up = np.zeros(last.size, dtype=bool)
    has_up[np.searchsorted(last, np.flatnonzero(acts == ACTION_UP))] = True
    return (acts[final] == ACTION_CANCEL) | ~has_up
