"""Input checks and conversions of classify_strokes, done once at the top."""

from __future__ import annotations

from typing import Any

import numpy as np

from .constants import ACTION_CANCEL, ACTION_DOWN

Float64Array = np.ndarray[Any, np.dtype[np.float64]]
Int64Array = np.ndarray[Any, np.dtype[np.int64]]
Int8Array = np.ndarray[Any, np.dtype[np.int8]]


def _samples(name: str, values: Any) -> Float64Array:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    # asarray copies only when the dtype changes; the caller's array is never written.
    return np.ascontiguousarray(arr, dtype=np.float64)


def check_inputs(
    t: Any, x: Any, y: Any, offsets: Any, density: Any, actions: Any
) -> tuple[Float64Array, Float64Array, Float64Array, Int64Array, Float64Array, Int8Array | None]:
    """Validate and convert the arguments of classify_strokes.

    Returns float64 ``t, x, y``, int64 ``offsets``, a float64 density per stroke and int8
    actions (or None). Raises ValueError with a readable message on any shape or value
    problem that is the caller's mistake rather than a property of a stroke.
    """
    t64, x64, y64 = _samples("t", t), _samples("x", x), _samples("y", y)
    n = t64.size
    if x64.size != n or y64.size != n:
        raise ValueError(f"t, x and y must have the same length, got {n}, {x64.size}, {y64.size}")

    off = np.asarray(offsets)
    if off.ndim != 1 or off.size < 1:
        raise ValueError(
            f"offsets must be a 1-D array of n_strokes + 1 items, got shape {off.shape}"
        )
    if off.dtype.kind not in "iu":
        raise ValueError(f"offsets must be an integer array, got dtype {off.dtype}")
    off64 = np.ascontiguousarray(off, dtype=np.int64)
    if off64[0] != 0 or off64[-1] != n:
        raise ValueError(
            f"offsets must start at 0 and end at the number of samples ({n}), "
            f"got {off64[0]} … {off64[-1]}"
        )
    if off64.size > 1 and bool((off64[1:] < off64[:-1]).any()):
        first = int(np.flatnonzero(off64[1:] < off64[:-1])[0])
        raise ValueError(
            f"offsets must be non-decreasing, got offsets[{first}] = {off64[first]} "
            f"> offsets[{first + 1}] = {off64[first + 1]}"
        )
    m = off64.size - 1

    dens = np.asarray(density)
    if dens.dtype.kind not in "fiub":
        raise ValueError(f"density must be a number or an array of numbers, got dtype {dens.dtype}")
    if dens.ndim == 0:
        dens64 = np.full(m, float(dens), dtype=np.float64)
    elif dens.shape == (m,):
        dens64 = np.ascontiguousarray(dens, dtype=np.float64)
    else:
        raise ValueError(f"density must be a scalar or have shape ({m},), got shape {dens.shape}")

    act8 = None
    if actions is not None:
        act = np.asarray(actions)
        if act.shape != (n,):
            raise ValueError(f"actions must have shape ({n},) like t, got shape {act.shape}")
        if act.dtype.kind not in "iu":
            raise ValueError(f"actions must be an integer array, got dtype {act.dtype}")
        if n and (int(act.min()) < ACTION_DOWN or int(act.max()) > ACTION_CANCEL):
            raise ValueError(
                f"actions must be codes {ACTION_DOWN}…{ACTION_CANCEL} "
                f"(down, move, up, cancel), got {int(act.min())}…{int(act.max())}"
            )
        act8 = np.ascontiguousarray(act, dtype=np.int8)
    return t64, x64, y64, off64, dens64, act8
