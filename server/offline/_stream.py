"""CSV in streaming mode: buffer the rows of open strokes, classify strokes once complete."""

from __future__ import annotations

import numpy as np

from gestures import ACTION_CANCEL, ACTION_UP
from server.errors import CliError
from server.offline._csv import csv_blocks, header
from server.offline._grouped import NO_DENSITY, classify_grouped
from server.offline._inputs import Input
from server.offline._limits import Limits
from server.offline._output import Output
from server.offline._progress import Progress
from server.offline._rows import Array, Rows, concat_rows, hashes, offsets, runs


class Restart(Exception):
    """Streaming cannot finish correctly within its budget: switch to partitioned mode."""


class _HashSet:
    """A set of 64-bit hashes as a few sorted arrays (sizes doubling, merged like a
    binary counter): 8 bytes per member, vectorised membership tests."""

    def __init__(self) -> None:
        self.runs: list[Array] = []
        self.size = 0

    def add(self, values: Array) -> None:
        run = np.sort(values)
        self.size += run.size
        while self.runs and self.runs[-1].size <= run.size:
            run = np.sort(np.concatenate([self.runs.pop(), run]), kind="stable")
        self.runs.append(run)

    def contains(self, values: Array) -> Array:
        found = np.zeros(values.size, dtype=bool)
        for run in self.runs:
            pos = np.minimum(np.searchsorted(run, values), run.size - 1)
            found |= run[pos] == values
        return found


class _Streamer:
    """Groups CSV rows into strokes as they stream by; see the server.offline docstring."""

    def __init__(self, density: float | None, limits: Limits, out: Output):
        self.density = density
        self.limits = limits
        self.out = out
        self.open: dict[bytes, int] = {}  # stroke id -> sequence number (first appearance)
        self.ids: dict[int, bytes] = {}  # and back
        self.next_seq = 0
        self.pending: Rows | None = None  # rows of open strokes
        self.pending_seq = np.empty(0, dtype=np.int64)
        self.held: dict[int, bytes] = {}  # results waiting for an earlier stroke
        self.next_out = 0
        self.done = _HashSet()

    def feed(self, rows: Rows, line_after: int, final: bool) -> None:
        seq = self._sequence(rows)
        if self.pending is not None and self.pending.size:
            rows = concat_rows([self.pending, rows])
            seq = np.concatenate([self.pending_seq, seq])
        if seq.size == 0:
            return
        order = np.argsort(seq, kind="stable")
        rows, seq = rows.take(order), seq[order]
        starts, lengths = runs(seq)
        if final:
            complete = np.ones(starts.size, dtype=bool)
        else:
            last_line = rows.line[starts + lengths - 1]
            complete = last_line < line_after - self.limits.idle_rows
            if rows.action is not None:
                closing = (rows.action == ACTION_UP) | (rows.action == ACTION_CANCEL)
                complete |= np.logical_or.reduceat(closing, starts)
        keep = np.repeat(complete, lengths)
        self.pending = rows.take(~keep)
        self.pending_seq = seq[~keep]
        if self.pending.size > self.limits.max_open_rows:
            raise Restart(
                f"more than {self.limits.max_open_rows:,} rows belong to strokes still open "
                f"at line {line_after - 1}"
            )
        if complete.any():
            self._finish(rows.take(keep), seq[starts[complete]], lengths[complete])

    def _sequence(self, rows: Rows) -> Array:
        """Sequence number of each row's stroke, new strokes numbered in order."""
        heads, lengths = runs(rows.ids)
        seqs = np.empty(heads.size, dtype=np.int64)
        new_ids: list[bytes] = []
        new_at: list[int] = []
        for k, sid in enumerate(rows.ids[heads].tolist()):
            s = self.open.get(sid)
            if s is None:
                s = self.open[sid] = self.next_seq
                self.ids[s] = sid
                self.next_seq += 1
                new_ids.append(sid)
                new_at.append(k)
            seqs[k] = s
        if new_ids and self.done.size:
            late = np.flatnonzero(self.done.contains(hashes(new_ids)))
            if late.size:
                k = new_at[int(late[0])]
                sid = new_ids[int(late[0])].decode("utf-8", errors="replace")
                raise Restart(
                    f"stroke {sid!r} reappears on line {int(rows.line[heads[k]])} "
                    "after it was classified"
                )
        return np.repeat(seqs, lengths)

    def _finish(self, rows: Rows, seqs: Array, lengths: Array) -> None:
        starts = offsets(lengths)[:-1]
        ids = [self.ids.pop(s) for s in seqs.tolist()]
        lines = classify_grouped(rows, starts, lengths, ids, self.density, self.out.counts)
        for sid in ids:
            del self.open[sid]
        if self.done.size + len(ids) > self.limits.max_done_strokes:
            raise Restart(f"more than {self.limits.max_done_strokes:,} strokes to remember")
        self.done.add(hashes(ids))
        self.held.update(zip(seqs.tolist(), lines))
        ready = []
        while self.next_out in self.held:
            ready.append(self.held.pop(self.next_out))
            self.next_out += 1
        self.out.write(ready)
        if len(self.held) > self.limits.max_held_strokes:
            raise Restart(
                f"more than {self.limits.max_held_strokes:,} classified strokes wait for an "
                "earlier stroke that is still open"
            )


def run_csv_streaming(
    path: str, density: float | None, limits: Limits, out: Output, progress: Progress
) -> None:
    """Classify a CSV in one pass; raises Restart when that cannot finish within limits."""
    inp = Input(path, limits.chunk_bytes)
    try:
        layout, header_bytes = header(inp)
        if layout.density is None and density is None:
            raise CliError(NO_DENSITY)
        streamer = _Streamer(density, limits, out)
        blocks = csv_blocks(inp, layout, header_bytes)
        rows, after = next(blocks, (None, 2))
        while rows is not None:
            upcoming = next(blocks, None)
            streamer.feed(rows, after, final=upcoming is None)
            progress.update(inp.done_fraction, int(out.counts.sum()))
            rows, after = upcoming if upcoming is not None else (None, after)
    finally:
        inp.close()
