"""Release velocity: the platforms' velocity-tracker window and its least-squares fit."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import Float64Array, Int64Array
from .constants import Thresholds

Matrix = np.ndarray[Any, np.dtype[Any]]


def _dot(a: Matrix, b: Matrix, out: Float64Array) -> None:
    """Column-wise dot product of two (rows, strokes) arrays, without a temporary."""
    np.einsum("ij,ij->j", a, b, out=out)


# Rows of the window sums written by window_sums and read by release_speed. The rows
# (S1, S2, S3), (X0, X1, X2), (Y0, Y1, Y2) follow each other: release_speed dots them
# with the same cofactors in one call.
N, SPAN, S1, S2, S3, X0, X1, X2, Y0, Y1, Y2, S4 = range(12)
N_SUMS = 12


def window_sums(
    t: Float64Array,
    x: Float64Array,
    y: Float64Array,
    last: Int64Array,
    dt: Float64Array,
    th: Thresholds,
    out: Matrix,
) -> None:
    """Least-squares sums over each stroke's release window.

    Parameters
    ----------
    t, x, y : ndarray of shape (n_samples,), float64
        Samples of non-empty strokes, each sorted by time.
    last : ndarray of shape (n_strokes,), int64
        Index of each stroke's last sample (stroke i is ``last[i-1]+1 … last[i]``).
    dt : ndarray of shape (n_samples,), float64
        ``t[i + 1] - t[i]``, and NaN at each stroke's last sample.
    th : Thresholds
    out : ndarray of shape (N_SUMS, n_strokes), float64
        Receives the window's sample count and span (ms) and, with ``u = age / span`` in
        [0, 1] and positions relative to the last sample, the sums of u**1…4, x·u**0…2 and
        y·u**0…2 over the window.
    """
    zero = np.flatnonzero(dt == 0.0)
    if zero.size:
        # Of samples sharing a timestamp only the last counts: drop every sample whose
        # successor has the same time. Gaps between the remaining samples are unchanged.
        keep = np.ones(t.size, dtype=bool)
        keep[zero] = False
        last = last - np.cumsum(np.bincount(np.searchsorted(last, zero), minlength=last.size))
        t, x, y, dt = t[keep], x[keep], y[keep], dt[keep]
    lo = _window_start(t, last, dt, th)
    older = last - lo  # window samples besides the last one
    np.add(older, 1, out=out[N])
    t_last = t[last]
    span = np.subtract(t_last, t[lo], out=out[SPAN])
    rows = int(older.max(initial=0))
    if rows == 0:
        out[S1:].fill(0.0)
        return
    # Row j holds the sample j steps before the last; rows past a stroke's window hold
    # its last sample again, which sits at age 0 and offset 0 and so adds nothing.
    row = np.arange(1, rows + 1, dtype=np.int64)[:, None]
    idx = last - row * (row <= older)
    # u = age / span in [0, 1]: times scaled to the window keep the normal equations well
    # conditioned. (u runs backwards in time; the speed ignores the sign.)
    u = t_last - t.take(idx)
    np.divide(u, span, out=u)
    u2 = u * u
    u.sum(axis=0, out=out[S1])
    u2.sum(axis=0, out=out[S2])
    _dot(u2, u, out[S3])
    _dot(u2, u2, out[S4])
    for coord, (r0, r1, r2) in ((x, (X0, X1, X2)), (y, (Y0, Y1, Y2))):
        rel = coord.take(idx)
        np.subtract(rel, coord[last], out=rel)
        rel.sum(axis=0, out=out[r0])
        _dot(rel, u, out[r1])
        _dot(rel, u2, out[r2])


def release_speed(sums: Matrix, th: Thresholds, out: Float64Array | None = None) -> Float64Array:
    """Release speed in px per second from the window sums.

    Parameters
    ----------
    sums : ndarray of shape (N_SUMS, n_strokes), float64
        As written by window_sums.
    th : Thresholds
    out : ndarray of shape (n_strokes,), float64, optional
        Receives the result.

    Returns
    -------
    speed_pxs : ndarray of shape (n_strokes,), float64
        ``hypot(vx, vy)`` of the fit's derivative at the last sample: a parabola for three
        or more window samples (a line if its normal matrix is degenerate), a line for
        two, 0 for fewer. Meaningless for non-finite strokes.
    """
    n, span, s1, s2, s3, s4 = sums[N], sums[SPAN], sums[S1], sums[S2], sums[S3], sums[S4]
    m = n.size
    # Slope at u = 0 by Cramer's rule: the cofactors of the normal matrix's u column
    # serve both coordinates and the determinant.
    cof = np.empty((3, m), dtype=np.float64)
    c0, c1, c2 = cof
    np.multiply(s2, s3, out=c0)
    c0 -= s1 * s4
    np.multiply(n, s4, out=c1)
    c1 -= s2 * s2
    np.multiply(s1, s2, out=c2)
    c2 -= n * s3
    # det, qx, qy = (S1, S2, S3), (X0, X1, X2), (Y0, Y1, Y2) dotted with the cofactors.
    det, qx, qy = dq = np.einsum("ckm,km->cm", sums[S1 : Y2 + 1].reshape(3, 3, m), cof)
    quad = np.einsum("cm,cm->m", dq[1:], dq[1:])
    np.sqrt(quad, out=quad)
    quad /= det
    # ... and of the least-squares line, for two samples or a degenerate parabola.
    lxy = n * sums[X1 : Y1 + 1 : Y1 - X1]
    lxy -= s1 * sums[X0 : Y0 + 1 : Y0 - X0]
    line = np.einsum("cm,cm->m", lxy, lxy)
    np.sqrt(line, out=line)
    line /= n * s2 - s1 * s1
    slope = np.where((n >= 3) & (det > th.fit_min_determinant), quad, line)
    if out is None:
        out = np.empty(m, dtype=np.float64)
    np.multiply(slope, 1000.0, out=out)
    out /= span
    out[n < 2] = 0.0
    return out


def _window_start(
    t: Float64Array, last: Int64Array, dt: Float64Array, th: Thresholds
) -> Int64Array:
    """Index of the oldest sample of each stroke's release window."""
    lengths = np.diff(last, prepend=-1)
    # At most max_samples samples ...
    lo = np.maximum(last - lengths + 1, last - (th.velocity_max_samples - 1))
    # ... after the last gap > max_gap before the last sample (the step leaving a stroke
    # is NaN, so every gap found lies inside a stroke; they are rare) ...
    gaps = np.flatnonzero(dt > th.velocity_max_gap_ms)
    if gaps.size:
        owner = np.searchsorted(last, gaps)
        final = np.flatnonzero(np.diff(owner, append=-1))  # each stroke's last gap
        owner = owner[final]
        lo[owner] = np.maximum(lo[owner], gaps[final] + 1)
    # ... none older than the horizon: the samples young enough are a suffix of the
    # sorted stroke, so counting them places its start.
    limit = t[last] - th.velocity_horizon_ms
    young = (t >= np.repeat(limit, lengths)).view(np.uint8)
    counts = np.add.reduceat(young, last - lengths + 1, dtype=np.int64)
    # A NaN time (an invalid stroke) is never young; keep the index inside the stroke.
    return np.minimum(np.maximum(lo, last + 1 - counts), last)
