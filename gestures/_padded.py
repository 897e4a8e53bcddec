"""Measurements of a block of strictly time-ordered strokes of like lengths, padded.

Each stroke becomes a column of a (width, n_strokes) array: its samples right-aligned in
the rows, the rows above them (padding) repeating its first sample. Per-stroke reductions
are then reductions over the rows and row-wise elementwise operations, without any
``repeat`` or ``reduceat``; the first and last samples are the first and last rows, and
the release window is a run of rows ending at the last one. A padding row adds nothing
to the excursion or the path (it sits at the first sample) and is kept out of the window.

Strictly increasing times spare the sort and the dropping of duplicate times, so the
window's samples are consecutive rows. Blocks that are not like that, or whose lengths
differ too much for padding to pay, take the flat layout of _geometry and _release.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._release import S1, S2, S3, S4, SPAN, X0, X1, X2, Y0, Matrix, N
from ._validate import Float64Array, Int64Array
from .constants import Thresholds


def strictly_increasing(t: Float64Array, last: Int64Array) -> bool:
    """Whether the times of every stroke of two or more samples strictly increase (and so
    are sorted, distinct and not NaN)."""
    rising = np.greater(t[1:], t[:-1])  # False where either time is NaN
    rising[last[:-1]] = True  # the step from a stroke to the next one
    return bool(rising.all())


def measure_padded(
    t: Float64Array,
    x: Float64Array,
    y: Float64Array,
    starts: Int64Array,
    last: Int64Array,
    width: int,
    th: Thresholds,
    distance_sq: Float64Array,
    path: Float64Array,
    dx: Float64Array,
    dy: Float64Array,
    sums: Matrix,
) -> None:
    """Squared excursion, path, displacement (px) and release-window sums of each stroke.

    Parameters
    ----------
    t, x, y : ndarray of shape (n_samples,), float64
        Samples of non-empty strokes whose times strictly increase within each stroke.
    starts, last : ndarray of shape (n_strokes,), int64
        Index of each stroke's first and last sample.
    width : int
        The longest stroke's sample count: the rows of the padded layout.
    th : Thresholds
    distance_sq, path, dx, dy : ndarray of shape (n_strokes,), float64
        Receive the squared max excursion, the path length and the displacement.
    sums : ndarray of shape (N_SUMS, n_strokes), float64
        Receives the release-window sums, as window_sums writes them.

    A non-finite x or y makes the stroke's excursion, path or displacement non-finite.
    """
    m = last.size
    back = np.arange(width - 1, -1, -1, dtype=np.int64)[:, None]
    idx = np.subtract(last, back)
    np.maximum(idx, starts, out=idx)  # the padding repeats the first sample
    # The times first, while the caller's pass over them left them in the cache.
    win = _window_times(t, idx, last - starts + 1, th, sums)
    xy = np.empty((2, width, m), dtype=np.float64)
    # mode="clip" skips the bounds check (every index is inside the block).
    x.take(idx, out=xy[0], mode="clip")
    y.take(idx, out=xy[1], mode="clip")
    np.subtract(xy[0, -1], xy[0, 0], out=dx)
    np.subtract(xy[1, -1], xy[1, 0], out=dy)
    if width == 1:
        distance_sq.fill(0.0)
        path.fill(0.0)
        return
    # Positions relative to the first sample (row 0 itself left out).
    ex = np.subtract(xy[:, 1:], xy[:, :1])
    if win is not None:
        _window_positions(ex, win, sums)
    # Excursion, compared squared.
    np.square(ex, out=ex)
    d2 = np.add(ex[0], ex[1])
    d2.max(axis=0, out=distance_sq)
    # Segment lengths between consecutive rows, summed in time order like the reference.
    seg = np.subtract(xy[:, 1:], xy[:, :-1], out=ex)
    np.square(seg, out=seg)
    length = np.add(seg[0], seg[1], out=d2)
    np.sqrt(length, out=length)
    length.sum(axis=0, out=path)


class _Window(NamedTuple):
    """The release windows of a block over its last ``rows`` rows before the last one."""

    rows: int
    weight: Matrix  # 1 inside the window, 0 outside
    u: Matrix  # age / span in [0, 1], 0 outside the window
    u2: Matrix  # u squared


def _window_times(
    t: Float64Array, idx: Int64Array, lengths: Int64Array, th: Thresholds, out: Matrix
) -> _Window | None:
    """Find each stroke's release window and write its time sums N, SPAN and S1…S4.

    Returns None when no window has a second sample (the other sums are then 0).
    """
    k = min(idx.shape[0], th.velocity_max_samples)  # at most max_samples samples
    if k < 2:
        out[N].fill(1.0)
        out[SPAN:].fill(0.0)
        return None
    tw = t.take(idx[-k:], mode="clip")
    t_last = tw[-1]
    older = tw[:-1]  # row i is k - 1 - i samples before the last
    # Walking back from the last sample, the window stops at the first row that is older
    # than the horizon or whose step to the next row is a gap > max_gap, and at the
    # padding. The largest (row number + 1) of a row that stops it is its first row.
    stop = np.greater(np.subtract(tw[1:], older), th.velocity_max_gap_ms)
    stop |= older < t_last - th.velocity_horizon_ms
    # Row numbers 1, 2, ...; one byte each keeps the row arithmetic cheap.
    number = np.arange(1, k, dtype=np.uint8 if k < 256 else np.int64)[:, None]
    first = (stop.view(np.uint8) * number).max(axis=0)
    padding = (k - np.minimum(lengths, k)).astype(first.dtype)
    np.maximum(first, padding, out=first)
    np.subtract(k, first, out=out[N])
    rows = k - 1 - int(first.min())  # the longest window's older samples
    if rows == 0:
        out[SPAN:].fill(0.0)
        return None
    first -= k - 1 - rows  # counted in the last `rows` rows from here on
    weight = (number[:rows] > first).astype(np.float64)
    # u = age / span in [0, 1] keeps the normal equations well conditioned; the oldest
    # window row gives the span.
    u = np.subtract(t_last, older[-rows:])
    u *= weight
    span = u.max(axis=0, out=out[SPAN])
    u *= 1.0 / span
    u2 = np.square(u)
    u.sum(axis=0, out=out[S1])
    u2.sum(axis=0, out=out[S2])
    np.einsum("ij,ij->j", u2, u, out=out[S3])
    np.einsum("ij,ij->j", u2, u2, out=out[S4])
    return _Window(rows, weight, u, u2)


def _window_positions(ex: Matrix, win: _Window, out: Matrix) -> None:
    """Write the position sums X0…X2 and Y0…Y2 of the release windows.

    ``ex`` holds the positions relative to the first sample, rows 1… of the padded
    layout. The sums want them relative to the last sample: sum(w·(p - p_last)) is
    sum(w·p) - p_last·sum(w), which saves a pass over the rows. The subtraction cancels
    digits where a long stroke's window barely moves: about log10(|p_last - p_first| /
    window movement), as many as the reference's own fit on raw positions loses
    (log10(|p| / window movement)). A stroke that travels 5000 px and then crawls
    0.1 px/s keeps its speed within 1e-7 of the reference's.
    """
    # A window reaching back to the first sample (row 0, not in ex) gets nothing from it.
    rows = min(win.rows, ex.shape[1] - 1)
    window = ex[:, -rows - 1 : -1]
    last = ex[:, -1]
    # Rows X0, Y0 (and X1, Y1; X2, Y2) of the sums are 3 apart: one view writes both.
    for r, basis, total in (
        (X0, win.weight, out[N] - 1.0), (X1, win.u, out[S1]), (X2, win.u2, out[S2])
    ):
        sums = out[r : r + Y0 - X0 + 1 : Y0 - X0]
        np.einsum("cij,ij->cj", window, basis[basis.shape[0] - rows :], out=sums)
        sums -= last * total
