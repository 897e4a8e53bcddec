"""Raw per-stroke measurements (px, ms) of consecutive non-empty strokes, block by block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._geometry import excursion_and_path, finite_strokes, sort_permutation, time_steps
from ._release import N_SUMS, Matrix, window_sums
from ._validate import Float64Array, Int8Array, Int64Array
from .constants import ACTION_CANCEL, ACTION_UP, Thresholds

Bool1D = np.ndarray[Any, np.dtype[np.bool_]]

# Samples per block: a block's temporaries stay in the CPU cache, which more than pays for
# the per-block Python overhead.
BLOCK_SAMPLES = 1 << 15


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
    for lo, hi in _blocks(offsets):
        _measure_block(t, x, y, actions, offsets[lo : hi + 1], th, meas, slice(lo, hi))
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
) -> None:
    s0, s1 = int(offsets[0]), int(offsets[-1])
    t, x, y = t[s0:s1], x[s0:s1], y[s0:s1]
    starts = offsets[:-1] - s0
    last = offsets[1:] - (s0 + 1)
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
        acts = actions[s0:s1]
        has_up = np.zeros(last.size, dtype=bool)
        has_up[np.searchsorted(last, np.flatnonzero(acts == ACTION_UP))] = True
        out.cancelled[cols] = (acts[final] == ACTION_CANCEL) | ~has_up

    np.subtract(t[last], t[starts], out=out.duration_ms[cols])
    x0, y0 = x[starts], y[starts]
    np.subtract(x[last], x0, out=out.dx_px[cols])
    np.subtract(y[last], y0, out=out.dy_px[cols])
    excursion_and_path(x, y, starts, last, out.distance_px[cols], out.path_px[cols])
    window_sums(t, x, y, last, dt, th, out.sums[:, cols])
