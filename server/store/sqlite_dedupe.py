"""The SQLite writer's dedupe on (pid, euid): an exact index of the stored events in memory.

A unique B-tree index on (pid, euid) made every stored event dirty a page of its own once the
index had more pages than a commit had events (euids are random UUIDs): 1.07 WAL pages per
event, and the writer's cost per event went from 21 µs on a 50,000-event database to 45 µs
on a 1,000,000-event one (README, "Where the time goes"). The events table is now appended
to in rowid order only, and the writer finds duplicates here instead:

- every stored event has a 64-bit key, its euid's `hash()` mixed with its pid, kept in
  sorted numpy arrays next to the event's rowid (16 bytes per event). `hash()` of a str is
  SipHash with a per-process random key, so a client cannot craft colliding euids, and the
  index lives and dies with its process: it is built from the events table;
- a key is only a candidate: a match is confirmed by reading that rowid's (pid, euid), so
  two euids with the same key are both stored and the dedupe stays exact;
- the writer calls `catch_up` inside its write transaction (after BEGIN IMMEDIATE), which
  adds the rows another process (`serve --workers N`) appended since, and `committed`
  after its own COMMIT. Rowids only grow: a new row gets max(rowid) + 1 (the zoning fold
  relies on the same rule).
- the keys sit in levels of growing size: the newest (up to NEWEST_MAX) in a dict
  (key -> rowid), where a commit adds its keys in microseconds, then two levels of sorted
  arrays that the dict is sorted into once it is full (merging each commit's keys into
  sorted arrays with np.insert cost 36-170 µs a commit, most of it numpy's per-call
  overhead).

Only the writer thread uses an index; it is not thread-safe.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

Keys = np.ndarray[Any, np.dtype[np.uint64]]
Ints = np.ndarray[Any, np.dtype[np.int64]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]

log = logging.getLogger(__name__)

# Odd 64-bit constant (2**64 / golden ratio) spreading the pid over all key bits.
_PID_MIX = np.uint64(0x9E3779B97F4A7C15)
# Rows read per fetch while catching up (bounded memory whatever the table's size).
SCAN_ROWS = 100_000
# The recent level merges into the base when it outgrows this, or an eighth of the base:
# each merge copies the base, so a key is copied about 8 times over its life, not per commit.
MIN_RECENT = 1 << 16
# The newest keys (a dict) are sorted into the recent level past this: the recent level is
# copied once per this many keys, not once per commit.
NEWEST_MAX = 1 << 14
# Rowids bound per verifying SELECT (below SQLite's 32,766 variables).
_VERIFY_CHUNK = 10_000
# Rows shaped like the writer's event rows: pid and euid first (then the rowid).
_SCAN = "SELECT pid, euid, rowid FROM events WHERE rowid > ? AND rowid <= ? ORDER BY rowid"
_pid, _euid, _rowid = (operator.itemgetter(i) for i in range(3))


def event_keys(rows: Sequence[tuple[object, ...]]) -> Keys:
    """The index key of each row's (pid, euid), its first two fields; C-level loops (no
    bytecode per event)."""
    n = len(rows)
    pids = np.fromiter(map(_pid, rows), dtype=np.int64, count=n).view(np.uint64)
    hashes = np.fromiter(map(hash, map(_euid, rows)), dtype=np.int64, count=n).view(np.uint64)
    return hashes ^ (pids * _PID_MIX)


class _Level:
    """Keys in ascending order and the rowid stored with each."""

    __slots__ = ("keys", "rows")

    def __init__(self) -> None:
        self.keys: Keys = np.empty(0, dtype=np.uint64)
        self.rows: Ints = np.empty(0, dtype=np.int64)

    def insert(self, keys: Keys, rows: Ints) -> None:
        """Merge sorted `keys` (with their `rows`) in: one copy of each array."""
        if self.keys.size == 0:
            self.keys, self.rows = keys, rows
            return
        at = np.searchsorted(self.keys, keys)
        self.keys = np.insert(self.keys, at, keys)
        self.rows = np.insert(self.rows, at, rows)

    def matches(self, keys: Keys) -> list[tuple[int, int]]:
        """(position in `keys`, stored rowid) of every stored key equal to one of `keys`
        (sorted)."""
        size = self.keys.size
        if size == 0 or keys.size == 0:
            return []
        at = np.searchsorted(self.keys, keys)
        found = np.flatnonzero(self.keys[np.minimum(at, size - 1)] == keys)
        pairs = []
        for i in found.tolist():  # duplicates only: a retried batch, rarely anything else
            j, key = int(at[i]), keys[i]
            while j < size and self.keys[j] == key:
                pairs.append((i, int(self.rows[j])))
                j += 1
        return pairs


class DedupeIndex:
    """The (pid, euid) keys of the events stored in one SQLite database."""

    def __init__(self) -> None:
        self._base, self._recent = _Level(), _Level()
        self._newest: dict[int, int] = {}  # key -> rowid
        self.covered: int | None = None  # every row with a rowid up to this is in; None: unbuilt

    def __len__(self) -> int:
        return self._base.keys.size + self._recent.keys.size + len(self._newest)

    def catch_up(self, conn: sqlite3.Connection, top: int) -> None:
        """Add the events with rowids up to `top` (the table's max(rowid)) not yet in."""
        if self.covered is None or top < self.covered:  # unbuilt, or rows were deleted
            self._base, self._recent, self._newest = _Level(), _Level(), {}
            self.covered = 0
        if top == self.covered:
            return
        chunks_k: list[Keys] = []
        chunks_r: list[Ints] = []
        cursor = conn.execute(_SCAN, (self.covered, top))
        while rows := cursor.fetchmany(SCAN_ROWS):
            chunks_k.append(event_keys(rows))
            chunks_r.append(np.fromiter(map(_rowid, rows), np.int64, len(rows)))
        if chunks_k:
            self.add(np.concatenate(chunks_k), np.concatenate(chunks_r))
        self.covered = top

    def fresh(
        self, conn: sqlite3.Connection, events: list[tuple[object, ...]]
    ) -> tuple[Mask, Keys]:
        """Which `events` (rows with pid and euid first) to store, and the key of each.

        An event is left out when its (pid, euid) is stored or comes earlier in `events`:
        the first copy wins, as ``ON CONFLICT DO NOTHING`` did.
        """
        keys = event_keys(events)
        keep = np.ones(keys.size, dtype=bool)
        # Sorted, the keys are looked up twice as fast (each search starts where the last
        # one ended); stable, so that equal keys keep their order in `events`.
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        candidates = [  # (event, stored rowid)
            (int(order[p]), row)
            for level in (self._base, self._recent)
            for p, row in level.matches(ordered)
        ]
        if self._newest:
            found = map(self._newest.get, keys.tolist())
            candidates += [(i, row) for i, row in enumerate(found) if row is not None]
        if candidates:
            stored = _stored_ids(conn, sorted({row for _, row in candidates}))
            for i, row in candidates:
                if stored.get(row) == events[i][:2]:
                    keep[i] = False
        _drop_repeats(order, ordered, events, keep)
        return keep, keys

    def add(self, keys: Keys, rows: Ints) -> None:
        """Add stored events: their keys and rowids, in any order."""
        if keys.size <= NEWEST_MAX:
            new = dict(zip(keys.tolist(), rows.tolist()))
            # A key equal to another (two euids' keys collide) goes to the sorted levels,
            # which keep every copy; the dict keeps one rowid per key.
            if len(new) == keys.size and self._newest.keys().isdisjoint(new):
                self._newest.update(new)
                if len(self._newest) > NEWEST_MAX:
                    newest = self._newest
                    self._add_sorted(
                        np.fromiter(newest.keys(), np.uint64, len(newest)),
                        np.fromiter(newest.values(), np.int64, len(newest)),
                    )
                    self._newest = {}  # only once they are in (a failure leaves two copies)
                return
        self._add_sorted(keys, rows)

    def _add_sorted(self, keys: Keys, rows: Ints) -> None:
        order = np.argsort(keys)
        keys, rows = keys[order], rows[order]
        limit = max(MIN_RECENT, self._base.keys.size >> 3)
        if keys.size > limit:  # a build or a long catch-up: straight into the base
            self._base.insert(keys, rows)
            return
        self._recent.insert(keys, rows)
        if self._recent.keys.size > limit:
            self._base.insert(self._recent.keys, self._recent.rows)
            self._recent = _Level()

    def committed(self, keys: Keys, first_rowid: int) -> None:
        """The events of `keys` were committed with consecutive rowids from `first_rowid`."""
        try:
            self.add(keys, np.arange(first_rowid, first_rowid + keys.size, dtype=np.int64))
            self.covered = first_rowid + keys.size - 1
        except Exception:  # e.g. MemoryError: the events are committed, the replies stand
            log.exception("dedupe index update failed; it is rebuilt by the next write")
            self.covered = None  # rebuilt from the table by the next catch_up


def _stored_ids(conn: sqlite3.Connection, rowids: list[int]) -> dict[int, tuple[object, ...]]:
    """(pid, euid) of each of `rowids` that is stored."""
    found: dict[int, tuple[object, ...]] = {}
    for start in range(0, len(rowids), _VERIFY_CHUNK):
        chunk = rowids[start : start + _VERIFY_CHUNK]
        marks = ", ".join("?" * len(chunk))
        for rowid, pid, euid in conn.execute(
            f"SELECT rowid, pid, euid FROM events WHERE rowid IN ({marks})", chunk
        ):
            found[rowid] = (pid, euid)
    return found


def _drop_repeats(
    order: Ints, ordered: Keys, events: list[tuple[object, ...]], keep: Mask
) -> None:
    """Clear `keep` of every event whose (pid, euid) an earlier event of the list has
    (`ordered`: the events' keys sorted by the stable `order`)."""
    repeats = np.flatnonzero(ordered[1:] == ordered[:-1])
    if repeats.size == 0:
        return
    seen: set[tuple[object, ...]] = set()
    run_key = None
    for p in repeats.tolist():  # only events whose key an earlier one has
        if ordered[p] != run_key:
            run_key = ordered[p]
            seen = {events[int(order[p])][:2]}
        ident = events[int(order[p + 1])][:2]
        if ident in seen:
            keep[order[p + 1]] = False
        else:
            seen.add(ident)
