"""Zone metrics from per-(screenview, element) rollup rows, vectorised with numpy.

A store hands over, for one screen and period:

- `Rows`: one row per element of a selected screenview (a tvp with gestures: its counts and
  its first tap minus the screenview time, `delay_ms`), and what the metrics need of its
  screenview, in either of two forms: per row `session_id`, `user_id`, `scn` and
  `first_tap_ms` (ROW_FIELDS); or `view`, the number of the row's screenview, and per
  screenview `view_session_id`, `view_user_id` and `view_sv_ms` (VIEW_FIELDS). Counts may be
  of any integer type;
- `zone_of`: tvp_id -> (zone, kind) for every tvp_id the rows may hold;
- the transactions of the sessions of those screenviews, possibly several times over (once
  per screenview of its session).

PostgreSQL sends binary records (HEADER_DTYPE, ELEMENT_DTYPE, TX_DTYPE; `expand` makes the
rows), SQLite records and day blocks (server.zoning.records). Sessions and users are integer
ids. Every grouping below is one sort of one packed int64 key (or a table indexed by a small
id); nothing loops over zones or rows in Python.
"""

from __future__ import annotations

import binascii
import ctypes
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from server.zoning.report import ZoneAggregate

# Binary records: PostgreSQL's bytea (server.store.postgres_zoning) and the hex of SQLite's
# first rollup format (migration 2, converted by a later migration); big-endian.
HEADER_DTYPE = np.dtype(
    [("session_id", ">i8"), ("user_id", ">u4"), ("scn", ">u4"), ("sv_ms", ">i8"),
     ("elements", ">u4")]
)  # fmt: skip
ELEMENT_DTYPE = np.dtype(
    [
        ("tvp_id", ">u4"),
        ("delay_ms", ">i8"),  # first tap minus screenview time; 0 when no tap
        ("taps", ">u4"),
        ("unresponsive_taps", ">u4"),
        ("long_presses", ">u4"),
        ("drags", ">u4"),
        ("flicks", ">u4"),
    ]
)
TX_DTYPE = np.dtype([("session_id", ">i8"), ("tx_id", ">i8"), ("tx_ms", ">i8"), ("cu", ">u4")])
COUNT_MAX = 2**32 - 1  # per (screenview, element); the records saturate there
COUNT_FIELDS = ("taps", "unresponsive_taps", "long_presses", "drags", "flicks")
# Rows with their screenview's fields alongside (one form of Rows; VIEW_FIELDS the other).
VIEW_FIELDS = ("view_session_id", "view_user_id", "view_sv_ms")
ROW_FIELDS = (
    "session_id", "user_id", "scn", "tvp_id", "first_tap_ms", "delay_ms", "taps",
    "unresponsive_taps", "long_presses", "drags", "flicks",
)  # fmt: skip

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_allocator_tuned = False


def tune_allocator() -> None:
    """Let the process keep the memory of a large query's numpy temporaries for the next.

    A query over 400k elements makes some 30 MB of temporaries. By default glibc maps big
    blocks afresh and gives freed memory back above a small threshold, so every query would
    page-fault them all in again (a quarter of its time, measured). With blocks below 32 MB
    taken from the heap and up to 128 MB of it kept, they are reused. Called on the first
    query (a process that answers none is not affected); skipped without glibc's mallopt or
    when MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ say otherwise.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return
    _allocator_tuned = True
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 128 << 20)


IntArray = npt.NDArray[np.int64]
Rows = Mapping[str, IntArray]
_NO_TAP = np.iinfo(np.int64).max


@dataclass(slots=True)
class Transactions:
    """Transactions as parallel arrays: `keys` (fields session_id, tx_id, tx_ms, cu: a
    TX_DTYPE array or a mapping of arrays) and their amounts — float64, or fixed-width ASCII
    decimals (bytes dtype) that are parsed only for the transactions an answer needs."""

    keys: Any = field(default_factory=lambda: np.zeros(0, dtype=TX_DTYPE))
    amounts: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.keys["tx_id"])

    def amounts_of(self, index: IntArray) -> npt.NDArray[np.float64]:
        chosen = self.amounts[index]
        return chosen if chosen.dtype == np.float64 else chosen.astype(np.float64)


def _from_hex(text: bytes | str | None, dtype: np.dtype | str) -> np.ndarray:
    return np.frombuffer(binascii.unhexlify(text or b""), dtype=dtype)


def decode_headers(headers_hex: bytes | str | None) -> np.ndarray:
    """HEADER_DTYPE records from concatenated hex."""
    return _from_hex(headers_hex, HEADER_DTYPE)


def decode_elements(elements_hex: bytes | str | None) -> np.ndarray:
    """ELEMENT_DTYPE records from concatenated hex."""
    return _from_hex(elements_hex, ELEMENT_DTYPE)


def expand(headers: np.ndarray, elements: np.ndarray) -> dict[str, IntArray]:
    """Rows (`view` and VIEW_FIELDS) from HEADER_DTYPE and ELEMENT_DTYPE records, with
    ROW_FIELDS too."""
    rows = expand_views(headers, elements)
    view = rows["view"]
    for name in ("session_id", "user_id"):
        rows[name] = rows[f"view_{name}"][view]
    rows["scn"] = headers["scn"].astype(np.int64)[view]
    rows["first_tap_ms"] = np.where(
        rows["taps"] > 0, rows["view_sv_ms"][view] + rows["delay_ms"], 0
    )
    return rows


def expand_views(headers: np.ndarray, elements: np.ndarray) -> dict[str, IntArray]:
    """Rows (`view` and VIEW_FIELDS) from HEADER_DTYPE and ELEMENT_DTYPE records."""
    counts = headers["elements"].astype(np.int64)
    if int(counts.sum()) != len(elements):
        raise ValueError("screenview headers and elements do not match")
    rows = {name: elements[name].astype(np.int64) for name in ELEMENT_DTYPE.names or ()}
    rows["view"] = np.repeat(np.arange(len(headers), dtype=np.int64), counts)
    for name in ("session_id", "user_id", "sv_ms"):
        rows[f"view_{name}"] = headers[name].astype(np.int64)
    return rows


def decode_transactions(keys_hex: bytes | str | None, amounts: str | None) -> Transactions:
    """Transactions from concatenated TX_DTYPE hex and comma-separated exact decimals."""
    keys = _from_hex(keys_hex, TX_DTYPE)
    values = np.array(amounts.split(","), dtype=np.float64) if amounts else np.zeros(0)
    if len(values) != len(keys):
        raise ValueError("transaction keys and amounts differ in length")
    return Transactions(keys, values)


# -- grouping primitives ---------------------------------------------------------------------


def _bits(values: IntArray) -> int:
    """Bits of the largest value (values >= 0)."""
    return int(values.max()).bit_length() if len(values) else 0


def _starts(ordered: IntArray) -> npt.NDArray[np.bool_]:
    """Where a new value begins in a sorted array."""
    first = np.empty(len(ordered), dtype=bool)
    if len(ordered):
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return first


def distinct(values: IntArray) -> IntArray:
    """Sorted distinct values (np.unique without its hash path, slower here)."""
    ordered = np.sort(values)
    return np.compress(_starts(ordered), ordered)


def _dense(ids: IntArray) -> bool:
    """Whether a table indexed by id beats a sort (ids are small non-negative integers)."""
    return len(ids) > 0 and int(ids.min()) >= 0 and int(ids.max()) <= 16 * len(ids) + 1_000_000


def count_distinct(ids: IntArray) -> int:
    if len(ids) == 0:
        return 0
    if _dense(ids):
        return int(np.count_nonzero(np.bincount(ids)))
    return int(np.count_nonzero(_starts(np.sort(ids))))


def first_of(values: IntArray) -> IntArray:
    """For each position, the first position holding the same value."""
    n = len(values)
    if _dense(values):
        first = np.full(int(values.max()) + 1, n, dtype=np.int64)
        np.minimum.at(first, values.astype(np.int64, copy=False), np.arange(n, dtype=np.int64))
        return first[values]
    order = np.argsort(values, kind="stable")
    starts = _starts(values[order])
    result = np.empty(n, dtype=np.int64)
    result[order] = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]
    return result


def _rank(values: IntArray) -> tuple[IntArray, IntArray]:
    """(dense rank of each value among the distinct values, the distinct values)."""
    if _dense(values):
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        ranks = np.cumsum(present, dtype=np.int64) - 1
        return ranks[values], np.flatnonzero(present)
    uniques = distinct(values)
    return np.searchsorted(uniques, values).astype(np.int64, copy=False), uniques


def _pair(high: IntArray, low: IntArray) -> IntArray:
    """One non-negative int64 per (high, low), equal exactly when the pairs are equal."""
    if _bits(high) + _bits(low) > 62:
        high = _rank(high)[0]
        if _bits(high) + _bits(low) > 62:
            low = _rank(low)[0]
    return high << _bits(low) | low


def _count_by(group: IntArray, n_groups: int) -> IntArray:
    return np.bincount(group, minlength=n_groups).astype(np.int64, copy=False)


def _sum_by(group: IntArray, values: np.ndarray, n_groups: int) -> IntArray:
    # float64 sums of integers are exact below 2**53 — more events than a database holds.
    return np.bincount(group, weights=values, minlength=n_groups).astype(np.int64)


def _distinct_by_zone(zone: IntArray, member: IntArray, n_zones: int) -> IntArray:
    """Per zone, the number of distinct `member` values (member >= 0)."""
    if len(member) == 0:
        return np.zeros(n_zones, dtype=np.int64)
    if _bits(member) + _bits(zone) > 62:
        member = _rank(member)[0]
    keys = np.sort(zone << _bits(member) | member)
    return _count_by(np.compress(_starts(keys), keys) >> _bits(member), n_zones)


def _medians(zone: IntArray, delay: IntArray, n_zones: int) -> list[float | None]:
    """Median delay per zone; for an even count the mean of the two middle values."""
    counts = _count_by(zone, n_zones)
    if len(delay) == 0:
        return [None] * n_zones
    low = int(delay.min())
    shifted = delay - low
    bits = _bits(shifted)
    if _bits(zone) + bits <= 62:  # one int64 key sorts several times faster than a lexsort
        ordered = (np.sort(zone << bits | shifted) & ((1 << bits) - 1)) + low
    else:
        ordered = delay[np.lexsort((delay, zone))]
    starts = np.cumsum(counts) - counts
    some = counts > 0
    lower = ordered[(starts + (counts - 1) // 2)[some]]
    upper = ordered[(starts + counts // 2)[some]]
    # Exact: |delay| < 2**52, so the sum is an exact float64 and halving it is exact too.
    values = iter(((lower + upper) / 2).tolist())
    return [next(values) if present else None for present in some.tolist()]


def _first_taps(zone: IntArray, session: IntArray, first_tap: IntArray) -> tuple[IntArray, ...]:
    """Per distinct (zone, session): zone, session and the smallest first tap."""
    if len(zone) == 0:
        return zone, session, first_tap
    low = int(first_tap.min())
    shifted = first_tap - low
    time_bits, zone_bits = _bits(shifted), _bits(zone)
    sessions = None
    if zone_bits + _bits(session) + time_bits > 63:
        session, sessions = _rank(session)
    session_bits = _bits(session)
    if zone_bits + session_bits + time_bits <= 63:
        # One sort by (zone, session, time): each group's first element has its smallest time.
        packed = np.sort(zone << (session_bits + time_bits) | session << time_bits | shifted)
        keys = packed >> time_bits
        chosen = np.compress(_starts(keys), packed)
        group_zone = chosen >> (session_bits + time_bits)
        group_session = (chosen >> time_bits) & ((1 << session_bits) - 1)
        group_first = (chosen & ((1 << time_bits) - 1)) + low
    else:
        order = np.lexsort((first_tap, session, zone))
        pairs = _pair(zone, session)[order]
        chosen = np.compress(_starts(pairs), order)
        group_zone, group_session, group_first = zone[chosen], session[chosen], first_tap[chosen]
    if sessions is not None:
        group_session = sessions[group_session]
    return group_zone, group_session, group_first


def present_ids(rows: Rows) -> list[int]:
    """The distinct tvp_ids of the rows, sorted."""
    ids = rows["tvp_id"]
    present = np.flatnonzero(np.bincount(ids)) if _dense(ids) else distinct(ids)
    return present.tolist()


def _zones(
    tvp_id: IntArray, zone_of: Mapping[int, tuple[str, str]]
) -> tuple[IntArray, list[str], dict[str, str]]:
    """Zone number of each row, zone names (sorted), and each zone's kind.

    A zone's kind is the smallest of its tvps' among the rows (they can only disagree
    through a hand-made map).
    """
    dense = _dense(tvp_id)
    present = np.flatnonzero(np.bincount(tvp_id)) if dense else distinct(tvp_id)
    attributed = [zone_of[i] for i in present.tolist()]
    names = sorted({name for name, _ in attributed})
    number = {name: k for k, name in enumerate(names)}
    kinds: dict[str, str] = {}
    for name, kind in attributed:
        kinds[name] = min(kind, kinds.get(name, kind))
    zone_of_present = np.array([number[name] for name, _ in attributed], dtype=np.int64)
    if dense:
        table = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        table[present] = zone_of_present
        return table[tvp_id], names, kinds
    return zone_of_present[np.searchsorted(present, tvp_id)], names, kinds


def screen_totals(screenviews: Any) -> tuple[int, int, int]:
    """(screenviews, distinct sessions, distinct users) of records with those two fields."""
    sessions = screenviews["session_id"].astype(np.int64, copy=False)
    return (
        len(sessions),
        count_distinct(sessions),
        count_distinct(screenviews["user_id"].astype(np.int64, copy=False)),
    )


TransactionSource = Transactions | Callable[[], Transactions]


def _sessions_of(rows: Rows, at: IntArray) -> tuple[IntArray, IntArray]:
    """Session and first tap (absolute) of the rows `at`."""
    if "view_session_id" in rows:
        view = rows["view"][at]
        first_tap = rows["view_sv_ms"][view] + rows["delay_ms"][at]
        return rows["view_session_id"][view], first_tap
    return rows["session_id"][at], rows["first_tap_ms"][at]


def _users_of(rows: Rows, at: IntArray) -> IntArray:
    if "view_user_id" in rows:
        return rows["view_user_id"][rows["view"][at]]
    return rows["user_id"][at]


def zone_aggregates(
    rows: Rows, zone_of: Mapping[int, tuple[str, str]], transactions: TransactionSource
) -> list[ZoneAggregate]:
    """Every metric of SPEC §7 per zone (rates are derived later by `build_report`).

    `transactions` may be a function that decodes them when needed.
    """
    if len(rows["tvp_id"]) == 0:
        return []
    zone, names, kinds = _zones(rows["tvp_id"], zone_of)
    n_zones = len(names)
    tapped = np.flatnonzero(rows["taps"] > 0)
    # Two halves of about equal work, in parallel (numpy releases the GIL in its loops).
    with ThreadPoolExecutor(max_workers=1) as pool:
        per_session = pool.submit(_per_session, rows, zone, tapped, n_zones, transactions)
        medians, view_counts = _per_view(rows, zone, tapped, n_zones)
        counts = [_sum_by(zone, rows[name], n_zones).tolist() for name in COUNT_FIELDS]
        users = _distinct_by_zone(zone[tapped], _users_of(rows, tapped), n_zones).tolist()
        session_counts, revenue_by_zone = per_session.result()
    taps, unresponsive, long_presses, drags, flicks = counts
    tapped_views, swiped_views = (view_counts[name].tolist() for name in ("tapped", "swiped"))
    sessions, converted = (session_counts[name].tolist() for name in ("sessions", "converted"))
    return [
        ZoneAggregate(
            zone=name,
            kind=kinds[name],
            taps=taps[k],
            unresponsive_taps=unresponsive[k],
            long_presses=long_presses[k],
            drags=drags[k],
            flicks=flicks[k],
            tapped_views=tapped_views[k],
            swiped_views=swiped_views[k],
            sessions=sessions[k],
            users=users[k],
            converted_sessions=converted[k],
            median_delay_ms=medians[k],
            revenue=revenue_by_zone[k],
        )
        for k, name in enumerate(names)
    ]


def _per_view(
    rows: Rows, zone: IntArray, tapped: IntArray, n_zones: int
) -> tuple[list[float | None], dict[str, IntArray]]:
    """Medians, and screenviews with taps / swipes, per zone.

    Rows are per (screenview, tvp); only when two tvps of one screenview share a zone do
    they need merging into one (zone, screenview).
    """
    swiped = (rows["drags"] > 0) | (rows["flicks"] > 0)
    view = rows["view"] if "view" in rows else _pair(rows["session_id"], rows["scn"])
    zone_view = _pair(view, zone)
    ordered = np.sort(zone_view)
    if len(ordered) > 1 and bool(np.any(ordered[1:] == ordered[:-1])):
        order = np.argsort(zone_view, kind="stable")
        first = np.flatnonzero(_starts(zone_view[order]))
        view_zone = zone[order][first]
        tap_counts = np.add.reduceat(rows["taps"][order].astype(np.int64), first)
        view_swiped = np.logical_or.reduceat(swiped[order], first)
        delay = np.where(rows["taps"] > 0, rows["delay_ms"].astype(np.int64), _NO_TAP)
        view_delay = np.minimum.reduceat(delay[order], first)
        view_tapped = np.flatnonzero(tap_counts > 0)
        tapped_zone, tapped_delay = view_zone[view_tapped], view_delay[view_tapped]
    else:
        view_zone, view_swiped = zone, swiped
        tapped_zone = zone[tapped]
        tapped_delay = rows["delay_ms"][tapped].astype(np.int64, copy=False)
    return _medians(tapped_zone, tapped_delay, n_zones), {
        "tapped": _count_by(tapped_zone, n_zones),
        "swiped": _count_by(np.compress(view_swiped, view_zone), n_zones),
    }


def _per_session(
    rows: Rows, zone: IntArray, tapped: IntArray, n_zones: int, transactions: TransactionSource
) -> tuple[dict[str, IntArray], list[dict[int, float]]]:
    """Tapping sessions, conversions and revenue, per zone."""
    # Per tapping (zone, session): the session's first tap on the zone.
    group_zone, group_session, group_first = _first_taps(zone[tapped], *_sessions_of(rows, tapped))
    if callable(transactions):
        transactions = transactions()
    revenue_by_zone, converted = _revenue(
        group_zone, group_session, group_first, transactions, n_zones
    )
    counts = {"sessions": _count_by(group_zone, n_zones), "converted": converted}
    return counts, revenue_by_zone


def _once(tx_id: IntArray) -> IntArray:
    """Index of one occurrence of each distinct transaction id."""
    if _dense(tx_id):
        n = len(tx_id)
        first = np.full(int(tx_id.max()) + 1, n, dtype=np.int64)
        np.minimum.at(first, tx_id, np.arange(n, dtype=np.int64))
        return np.compress(first < n, first)
    by_id = np.argsort(tx_id)
    return np.compress(_starts(tx_id[by_id]), by_id)


def _revenue(
    zone: IntArray,
    session: IntArray,
    first_tap: IntArray,
    transactions: Transactions,
    n_zones: int,
) -> tuple[list[dict[int, float]], IntArray]:
    """Revenue per zone and currency, and converted sessions per zone.

    One (zone, session, first tap) per tapping session of a zone; its revenue is the sum of
    the session's transactions strictly after that first tap.
    """
    by_zone: list[dict[int, float]] = [{} for _ in range(n_zones)]
    converted = np.zeros(n_zones, dtype=np.int64)
    keys = transactions.keys
    if len(transactions) == 0 or len(zone) == 0:
        return by_zone, converted
    # Each transaction once (it came with every screenview of its session).
    once = _once(keys["tx_id"].astype(np.int64, copy=False))
    tx_session = keys["session_id"].astype(np.int64, copy=False)[once]
    # Sessions as small numbers: their id when ids are dense, else their rank.
    both = np.concatenate((tx_session, session))
    if _dense(both):
        tx_rank, rank, n_sessions = tx_session, session, int(both.max()) + 1
    else:
        ranks, _ = _rank(both)
        tx_rank, rank, n_sessions = ranks[: len(once)], ranks[len(once) :], int(ranks.max()) + 1
    # Transactions by session: session r owns positions start[r]:start[r] + per_session[r].
    by_session = np.argsort(tx_rank, kind="stable")
    once, tx_rank = once[by_session], tx_rank[by_session]
    per_session = np.bincount(tx_rank, minlength=n_sessions)
    start = np.cumsum(per_session) - per_session
    # Every (tapping session of a zone, transaction of that session) pair; those strictly
    # after the session's first tap on the zone count.
    count = per_session[rank]
    with_tx = np.flatnonzero(count)
    count = count[with_tx]
    total = int(count.sum())
    if total == 0:
        return by_zone, converted
    pair_group = np.repeat(with_tx, count)
    pair_tx = np.arange(total) + np.repeat(start[rank[with_tx]] - (np.cumsum(count) - count), count)
    later = keys["tx_ms"].astype(np.int64, copy=False)[once[pair_tx]] > first_tap[pair_group]
    pair_group, pair_tx = np.compress(later, pair_group), np.compress(later, pair_tx)
    if len(pair_group) == 0:
        return by_zone, converted
    groups = np.compress(_starts(pair_group), pair_group)  # pairs are in group order
    converted = _count_by(zone[groups], n_zones)
    needed = np.zeros(len(once), dtype=bool)
    needed[pair_tx] = True
    needed_at = np.flatnonzero(needed)  # each amount parsed once
    amount = np.zeros(len(once))
    amount[needed_at] = transactions.amounts_of(once[needed_at])
    currency_rank, currencies = _rank(keys["cu"].astype(np.int64, copy=False)[once[pair_tx]])
    group = zone[pair_group] * len(currencies) + currency_rank
    sums = np.bincount(group, weights=amount[pair_tx], minlength=n_zones * len(currencies))
    codes = currencies.tolist()
    for key in np.flatnonzero(np.bincount(group, minlength=len(sums))).tolist():
        by_zone[key // len(codes)][codes[key % len(codes)]] = float(sums[key])
    return by_zone, converted
