"""CSV in partitioned mode: hash-partition rows by stroke to disk, classify, merge in order."""

from __future__ import annotations

import heapq
import math
import os
import tempfile
from collections.abc import Iterator

import numpy as np

from server.offline._csv import Layout, csv_blocks, header
from server.offline._grouped import classify_grouped
from server.offline._inputs import Input
from server.offline._limits import Limits
from server.offline._output import Output
from server.offline._progress import Progress
from server.offline._rows import Rows, concat_rows, hashes, offsets, runs

_CHUNK_HEADER = np.dtype([("rows", "<i8"), ("width", "<i8")])


class _Partitions:
    """Rows hash-partitioned by stroke id into temporary files."""

    def __init__(self, folder: str, name: str, count: int, salt: int, layout: Layout):
        self.count = count
        self.salt = salt
        self.layout = layout
        self.paths = [os.path.join(folder, f"{name}-{i}") for i in range(count)]
        self.files = [open(p, "wb") for p in self.paths]  # noqa: SIM115 - closed in close()
        self.rows = np.zeros(count, dtype=np.int64)

    def write(self, rows: Rows) -> None:
        heads, lengths = runs(rows.ids)
        stroke_hashes = hashes(rows.ids[heads].tolist(), self.salt)
        part = np.repeat(stroke_hashes % np.uint64(self.count), lengths)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.count + 1))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            chunk = rows.take(order[bounds[p] : bounds[p + 1]])
            f = self.files[p]
            head = np.array([(chunk.size, chunk.ids.dtype.itemsize)], dtype=_CHUNK_HEADER)
            f.write(head.tobytes())
            for column in chunk:
                if column is not None:
                    f.write(np.ascontiguousarray(column).tobytes())
            self.rows[p] += chunk.size

    def close(self) -> None:
        for f in self.files:
            f.close()

    def read(self, p: int) -> Iterator[Rows]:
        """The chunks of partition p, in the order they were written."""
        has_d = self.layout.density is not None
        has_a = self.layout.action is not None
        with open(self.paths[p], "rb") as f:
            while True:
                head = np.fromfile(f, dtype=_CHUNK_HEADER, count=1)
                if head.size == 0:
                    return
                n, width = int(head["rows"][0]), int(head["width"][0])
                ids = np.fromfile(f, dtype=f"S{width}", count=n)
                t, x, y = (np.fromfile(f, dtype=np.float64, count=n) for _ in range(3))
                dens = np.fromfile(f, dtype=np.float64, count=n) if has_d else None
                act = np.fromfile(f, dtype=np.int8, count=n) if has_a else None
                line = np.fromfile(f, dtype=np.int64, count=n)
                yield Rows(ids, t, x, y, dens, act, line)


def run_csv_partitioned(
    path: str, density: float | None, limits: Limits, out: Output, progress: Progress
) -> None:
    """Classify a CSV in two passes, whatever the order of its rows."""
    with tempfile.TemporaryDirectory(prefix="tapzone-classify-") as folder:
        inp = Input(path, limits.chunk_bytes)
        try:
            layout, header_bytes = header(inp)
            parts: _Partitions | None = None
            for rows, _ in csv_blocks(inp, layout, header_bytes):
                if parts is None:
                    count = _partition_count(inp, rows, limits)
                    parts = _Partitions(folder, "part", count, 1, layout)
                parts.write(rows)
                progress.update(inp.done_fraction, 0, "partitioning: ")
        finally:
            inp.close()
        if parts is None:
            return
        parts.close()
        results: list[str] = []
        _classify_partitions(parts, folder, density, limits, out, progress, results)
        # Each result file is sorted by the line of its strokes' first row (a fixed-width
        # prefix), so a merge restores the order of first appearance.
        files = [open(r, "rb") for r in results]  # noqa: SIM115 - closed below
        try:
            batch: list[bytes] = []
            for row in heapq.merge(*files):
                batch.append(row[20:])
                if len(batch) >= 65536:
                    out.write(batch)
                    batch = []
            out.write(batch)
        finally:
            for f in files:
                f.close()


def _partition_count(inp: Input, first: Rows, limits: Limits) -> int:
    """Partitions so that each holds about ``partition_rows`` rows of the whole input."""
    read = max(inp.raw.tell(), 1)
    rows_estimate = first.size * max(inp.size, read) / read
    return int(min(256, max(1, math.ceil(rows_estimate / limits.partition_rows))))


def _classify_partitions(
    parts: _Partitions, folder: str, density: float | None, limits: Limits, out: Output,
    progress: Progress, results: list[str],
) -> None:
    for p in range(parts.count):
        if parts.rows[p] == 0:
            continue
        if parts.rows[p] > 2 * limits.partition_rows and parts.salt < 4:
            # Bigger than planned (a misjudged gzip ratio, skewed ids): split it again
            # with another hash. (A single huge stroke ends up in one piece regardless.)
            sub = _Partitions(folder, os.path.basename(parts.paths[p]), 8, parts.salt + 1,
                              parts.layout)
            for chunk in parts.read(p):
                sub.write(chunk)
            sub.close()
            os.unlink(parts.paths[p])
            _classify_partitions(sub, folder, density, limits, out, progress, results)
            continue
        rows = concat_rows(list(parts.read(p)))
        os.unlink(parts.paths[p])
        results.append(_classify_partition(rows, density, out, f"{parts.paths[p]}.out"))
        progress.update(1.0, int(out.counts.sum()), "classifying: ")


def _classify_partition(rows: Rows, density: float | None, out: Output, path: str) -> str:
    """Group one partition's rows by stroke, classify, write ``%020d first-line`` + row."""
    heads, run_lengths = runs(rows.ids)
    group_of: dict[bytes, int] = {}
    groups = np.empty(heads.size, dtype=np.int64)
    for k, sid in enumerate(rows.ids[heads].tolist()):
        groups[k] = group_of.setdefault(sid, len(group_of))
    group = np.repeat(groups, run_lengths)
    order = np.argsort(group, kind="stable")
    rows = rows.take(order)
    lengths = np.bincount(group, minlength=len(group_of))
    starts = offsets(lengths)[:-1]
    ids = list(group_of)  # in order of first appearance within the partition
    lines = classify_grouped(rows, starts, lengths, ids, density, out.counts)
    first_lines = rows.line[starts].tolist()
    with open(path, "wb") as f:
        f.write(b"".join(b"%020d" % n + row for n, row in zip(first_lines, lines)))
    return path
