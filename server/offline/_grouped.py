"""Classify strokes whose rows are already grouped: one density per stroke, then output rows."""

from __future__ import annotations

import numpy as np

from gestures import classify_strokes
from server.errors import CliError
from server.offline._output import format_rows
from server.offline._rows import Array, Rows, offsets

NO_DENSITY = "no density: add a density column or pass --density"


def density_per_stroke(
    rows: Rows, starts: Array, lengths: Array, density: float | None, ids: list[bytes]
) -> Array:
    """Density of each stroke: its first row's value (rows must agree), else --density."""
    if rows.density is None:
        if density is None:
            raise CliError(NO_DENSITY)
        return np.full(starts.size, density, dtype=np.float64)
    first = rows.density[starts]
    expected = np.repeat(first, lengths)
    differs = (rows.density != expected) & ~(np.isnan(rows.density) & np.isnan(expected))
    bad = np.flatnonzero(differs)
    if bad.size:
        i = int(bad[0])
        k = int(np.searchsorted(starts, i, side="right")) - 1
        sid = ids[k].decode("utf-8", errors="replace")
        raise CliError(
            f"line {int(rows.line[i])}: stroke {sid!r} has density {rows.density[i]:g} "
            f"but its first row has {first[k]:g}"
        )
    return first


def classify_grouped(
    rows: Rows, starts: Array, lengths: Array, ids: list[bytes], density: float | None,
    out_counts: Array,
) -> list[bytes]:
    """Classify strokes whose rows are grouped (stroke k is rows starts[k]:+lengths[k])."""
    dens = density_per_stroke(rows, starts, lengths, density, ids)
    res = classify_strokes(rows.t, rows.x, rows.y, offsets(lengths), dens, rows.action)
    return format_rows(ids, res, out_counts)
