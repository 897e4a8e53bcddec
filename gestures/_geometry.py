"""Time order, finiteness and pixel geometry of a block of strokes in flat layout."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import Float64Array, Int64Array

Bool1D = np.ndarray[Any, np.dtype[np.bool_]]


def time_steps(t: Float64Array, last: Int64Array) -> Float64Array:
    """``t[i+1] - t[i]``, with NaN at each stroke's last sample (no step leaves a stroke)."""
    dt = np.empty(t.size, dtype=np.float64)
    np.subtract(t[1:], t[:-1], out=dt[:-1])
    dt[last] = np.nan
    return dt


def sort_permutation(
    t: Float64Array, starts: Int64Array, last: Int64Array, dt: Float64Array
) -> Int64Array | None:
    """Permutation that stably sorts every stroke by t, or None if all are sorted.

    Only the strokes with a decreasing step are sorted (a lexsort on (t, stroke)).
    """
    down = np.flatnonzero(dt < 0)
    if down.size == 0:
        return None
    strokes = np.unique(np.searchsorted(last, down))
    size = last[strokes] - starts[strokes] + 1
    seg = np.cumsum(size) - size
    idx = np.arange(int(size.sum()), dtype=np.int64) + np.repeat(starts[strokes] - seg, size)
    owner = np.repeat(np.arange(strokes.size), size)
    perm = np.arange(t.size, dtype=np.int64)
    perm[idx] = idx[np.lexsort((t[idx], owner))]
    return perm


def finite_strokes(
    t: Float64Array, x: Float64Array, y: Float64Array, last: Int64Array
) -> Bool1D:
    """Whether every t, x, y of each stroke is finite."""
    finite = np.ones(last.size, dtype=bool)
    # A sum is finite only if every term is: one cheap test clears the whole block.
    if not np.isfinite(t.sum() + x.sum() + y.sum()):
        bad = np.flatnonzero(~(np.isfinite(t) & np.isfinite(x) & np.isfinite(y)))
        finite[np.searchsorted(last, bad)] = False
    return finite


def excursion_and_path(
    x: Float64Array,
    y: Float64Array,
    starts: Int64Array,
    last: Int64Array,
    distance: Float64Array,
    path: Float64Array,
) -> None:
    """Squared max distance from the first sample and path length of each stroke, in px.

    Parameters
    ----------
    x, y : ndarray of shape (n_samples,), float64
        Samples of non-empty strokes, each sorted by time.
    starts, last : ndarray of shape (n_strokes,), int64
        Index of each stroke's first and last sample.
    distance, path : ndarray of shape (n_strokes,), float64
        Receive the results (``distance`` squared: one square root serves a whole group).
    """
    lengths = last - starts + 1
    ex = x - np.repeat(x[starts], lengths)
    ey = y - np.repeat(y[starts], lengths)
    np.multiply(ex, ex, out=ex)
    np.multiply(ey, ey, out=ey)
    np.add(ex, ey, out=ex)
    np.maximum.reduceat(ex, starts, out=distance)

    # Segment i joins samples i and i+1; the one leaving a stroke's last sample is zeroed.
    sx, sy = ex[:-1], ey[:-1]
    np.subtract(x[1:], x[:-1], out=sx)
    np.subtract(y[1:], y[:-1], out=sy)
    np.multiply(sx, sx, out=sx)
    np.multiply(sy, sy, out=sy)
    np.add(sx, sy, out=sx)
    np.sqrt(sx, out=sx)
    ex[last] = 0.0
    np.add.reduceat(ex, starts, out=path)
