"""Touch rows as column arrays, and the array helpers that group them by stroke."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

Array = np.ndarray[Any, Any]


class Rows(NamedTuple):
    """Parsed rows of a block (or of a partition), in file order."""

    ids: Array  # bytes_ (S) per row
    t: Array
    x: Array
    y: Array
    density: Array | None
    action: Array | None  # int8 codes
    line: Array  # int64 line number of each row

    @property
    def size(self) -> int:
        return int(self.t.size)

    def take(self, idx: Any) -> Rows:
        return Rows(*[None if a is None else a[idx] for a in self])  # type: ignore[arg-type]


def concat_rows(parts: list[Rows]) -> Rows:
    if len(parts) == 1:
        return parts[0]
    width = max(p.ids.dtype.itemsize for p in parts)
    columns: list[Any] = []
    for i, column in enumerate(zip(*parts)):
        if column[0] is None:
            columns.append(None)
        elif i == 0:
            columns.append(np.concatenate([c.astype(f"S{width}") for c in column]))
        else:
            columns.append(np.concatenate(column))
    return Rows(*columns)


def runs(ids: Array) -> tuple[Array, Array]:
    """Start and length of each run of equal consecutive ids."""
    if ids.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    return starts, np.diff(starts, append=ids.size)


def offsets(lengths: Array) -> Array:
    """Where each of consecutive groups of ``lengths`` starts, then the total (int64)."""
    result = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=result[1:])
    return result


def hashes(ids: list[bytes], salt: int = 0) -> Array:
    """64-bit hashes (uint64) of stroke ids; another salt gives another hash."""
    values = [hash((salt, i)) if salt else hash(i) for i in ids]
    return np.array(values, dtype=np.int64).view(np.uint64)
