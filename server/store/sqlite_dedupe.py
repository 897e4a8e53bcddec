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
- the writer calls `catch_up` and `fresh` before it takes the write lock (a read sees the
  last commit), then `catch_up` with a check inside its write transaction (after BEGIN
  IMMEDIATE), which adds the rows another process (`serve --workers N`) appended since and
  finds its events among them; and `committed` after its own COMMIT. Rowids only grow: a
  new row gets max(rowid) + 1 (the zoning fold relies on the same rule).
- the keys sit in levels of growing size: the newest (up to NEWEST_MAX) in a dict
  (key -> rowid), where a commit adds its keys in microseconds; a full dict is sealed, and
  a merge on a thread of its own (`_MERGES`) sorts the sealed dicts into two levels of
  sorted arrays, a middle one and the base it merges into at an eighth of the base's size.
  The writer only swaps in a finished merge: merging 65,536 keys into a base of 300,000
  on the writer thread took 12-28 ms, inside the write lock, and all the requests of both
  workers waited for it (a merge into a base of 10,000,000 copies 160 MB). Until a merge is
  swapped in, lookups search the sealed dicts as well.

Only the writer thread uses an index; it is not thread-safe. A merge reads only what the
writer no longer changes (sealed dicts, arrays it replaces rather than modifies).
"""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeAlias

import numpy as np

from server.store.background import lower_priority

Keys = np.ndarray[Any, np.dtype[np.uint64]]
Ints = np.ndarray[Any, np.dtype[np.int64]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]

log = logging.getLogger(__name__)

# Odd 64-bit constant (2**64 / golden ratio) spreading the pid over all key bits.
_PID_MIX = np.uint64(0x9E3779B97F4A7C15)
# Rows read per fetch while catching up (bounded memory whatever the table's size).
SCAN_ROWS = 100_000
# The middle level merges into the base when it outgrows this, or an eighth of the base:
# each merge copies the base, so a key is copied about 8 times over its life, not per commit.
MIN_MIDDLE = 1 << 16
# The newest keys (a dict) are sealed for a merge past this: the middle level is copied
# once per this many keys, not once per commit.
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
    """Keys in ascending order and the rowid stored with each; never modified (a merge makes
    a new level), so a merge thread may read it while the writer searches it."""

    __slots__ = ("keys", "rows")

    def __init__(self, keys: Keys | None = None, rows: Ints | None = None) -> None:
        self.keys: Keys = np.empty(0, dtype=np.uint64) if keys is None else keys
        self.rows: Ints = np.empty(0, dtype=np.int64) if rows is None else rows

    @classmethod
    def of(cls, keys: Keys, rows: Ints) -> _Level:
        """The keys (with their rows) in any order, sorted."""
        order = np.argsort(keys)
        return cls(keys[order], rows[order])

    def merged(self, other: _Level) -> _Level:
        """A level with the keys of both: one copy of each array."""
        if self.keys.size == 0:
            return other
        at = np.searchsorted(self.keys, other.keys)
        return _Level(np.insert(self.keys, at, other.keys), np.insert(self.rows, at, other.rows))

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


# A level waiting for a merge: a sealed dict, or sorted arrays (keys that could not go into a
# dict: equal to another, or too many at once).
Sealed: TypeAlias = "dict[int, int] | _Level"

# The merges of every index of this process, one at a time.
_MERGES = ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="tapzone-dedupe-merge", initializer=lower_priority
)


def _merge(base: _Level, middle: _Level, sealed: Sequence[Sealed]) -> tuple[_Level, _Level]:
    """(base, middle) holding the keys of all three (on the merge thread)."""
    dicts = [level for level in sealed if isinstance(level, dict)]
    levels = [level for level in sealed if isinstance(level, _Level)]
    new = _Level.of(
        np.concatenate(
            [np.fromiter(d.keys(), np.uint64, len(d)) for d in dicts]
            + [level.keys for level in levels]
        ),
        np.concatenate(
            [np.fromiter(d.values(), np.int64, len(d)) for d in dicts]
            + [level.rows for level in levels]
        ),
    )
    limit = max(MIN_MIDDLE, base.keys.size >> 3)
    if new.keys.size > limit:  # a build or a long catch-up: straight into the base
        return base.merged(new), middle
    middle = middle.merged(new)
    if middle.keys.size > limit:
        return base.merged(middle), _Level()
    return base, middle


class DedupeIndex:
    """The (pid, euid) keys of the events stored in one SQLite database."""

    def __init__(self, merges: Executor = _MERGES) -> None:
        self._merges = merges
        self._base, self._middle = _Level(), _Level()
        self._sealed: list[Sealed] = []  # oldest first
        self._newest: dict[int, int] = {}  # key -> rowid
        # The running merge, and how many of the sealed levels it takes.
        self._merging: tuple[Future[tuple[_Level, _Level]], int] | None = None
        self.covered: int | None = None  # every row with a rowid up to this is in; None: unbuilt

    def __len__(self) -> int:
        return (
            self._base.keys.size + self._middle.keys.size + len(self._newest)
            + sum(len(s) if isinstance(s, dict) else s.keys.size for s in self._sealed)
        )  # fmt: skip

    def _clear(self) -> None:
        """Empty (a merge still running is dropped when it ends)."""
        self._base, self._middle, self._sealed, self._newest = _Level(), _Level(), [], {}
        self._merging = None

    def catch_up(
        self,
        conn: sqlite3.Connection,
        top: int,
        *,
        check: tuple[list[tuple[object, ...]], Keys, Mask] | None = None,
    ) -> None:
        """Add the events with rowids up to `top` (the table's max(rowid)) not yet in.

        With `check`, the (events, keys, keep) of a `fresh` made before, also clear `keep`
        of the events these rows store: the writer looks its events up before it takes the
        write lock, and inside it checks them against what other processes stored since.
        """
        if self.covered is None or top < self.covered:  # unbuilt, or rows were deleted
            self._clear()
            self.covered = 0
        if top == self.covered:
            return
        chunks_k: list[Keys] = []
        chunks_r: list[Ints] = []
        cursor = conn.execute(_SCAN, (self.covered, top))
        while rows := cursor.fetchmany(SCAN_ROWS):
            chunks_k.append(event_keys(rows))
            chunks_r.append(np.fromiter(map(_rowid, rows), np.int64, len(rows)))
            if check is not None:
                _drop_stored(rows, chunks_k[-1], *check)
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
        levels = [self._base, self._middle, *self._sealed, self._newest]
        candidates = [  # (event, stored rowid)
            (int(order[p]), row)
            for level in levels
            if isinstance(level, _Level)
            for p, row in level.matches(ordered)
        ]
        listed = keys.tolist()
        for level in levels:
            if isinstance(level, dict) and level:
                found = map(level.get, listed)
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
        self._swap_in()
        if keys.size <= NEWEST_MAX:
            new = dict(zip(keys.tolist(), rows.tolist()))
            # A key equal to another (two euids' keys collide) goes to a sorted level,
            # which keeps every copy; the dict keeps one rowid per key.
            if len(new) == keys.size and self._newest.keys().isdisjoint(new):
                self._newest.update(new)
                if len(self._newest) > NEWEST_MAX:
                    self._seal(self._newest)
                    self._newest = {}
                return
        self._seal(_Level.of(keys, rows))

    def _seal(self, level: Sealed) -> None:
        self._sealed.append(level)
        self._start_merge()

    def _start_merge(self) -> None:
        if self._merging is None and self._sealed:
            sealed = tuple(self._sealed)
            future = self._merges.submit(_merge, self._base, self._middle, sealed)
            self._merging = (future, len(sealed))

    def _swap_in(self) -> None:
        """Take the levels of a finished merge (the writer thread, before it adds keys)."""
        if self._merging is None or not self._merging[0].done():
            return
        future, taken = self._merging
        self._merging = None
        try:
            self._base, self._middle = future.result()
        except Exception:  # e.g. MemoryError: the sealed levels stay searched as they are
            log.exception("dedupe index merge failed; it is tried again at the next seal")
            return
        del self._sealed[:taken]
        self._start_merge()

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


def _drop_stored(
    rows: list[tuple[object, ...]],
    row_keys: Keys,
    events: list[tuple[object, ...]],
    keys: Keys,
    keep: Mask,
) -> None:
    """Clear `keep` of every event whose (pid, euid) one of the stored `rows` holds."""
    hits = np.flatnonzero(keep & np.isin(keys, row_keys))
    if hits.size == 0:
        return
    stored = {row[:2] for row in rows}
    for i in hits.tolist():
        if events[i][:2] in stored:
            keep[i] = False


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
