"""Zone metrics from per-(screenview, element) rollup rows, vectorised with numpy.

A store hands over, for one screen and period:

- the selected screenviews as HEADER_DTYPE records (session, user, scn, screenview time,
  number of elements), and their elements, in the same order, as ELEMENT_DTYPE records (one
  per tvp with gestures: counts and first tap); `expand` joins them into rows;
- `zone_of`: tvp_id -> (zone, kind) for every tvp_id the rows may hold;
- the transactions of the sessions of those screenviews (TX_DTYPE, amounts), possibly
  several times over (once per screenview of its session).

Sessions and users are integer ids (a screenview is (session_id, scn)). Every grouping
below (per zone and screenview, per zone and session, per zone and user) is a sort of one
int64 key.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from server.zoning.report import ZoneAggregate

# Field order and widths are those of the store's hex (server.store.sqlite_zoning
# header_hex / elements_hex); big-endian because hex digits are.
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
COUNT_MAX = 2**32 - 1  # per (screenview, element); the hex record saturates there
# The rows zone_aggregates works on: one per element, its screenview's fields alongside.
ROW_FIELDS = (
    "session_id", "user_id", "scn", "tvp_id", "first_tap_ms", "delay_ms", "taps",
    "unresponsive_taps", "long_presses", "drags", "flicks",
)  # fmt: skip

IntArray = npt.NDArray[np.int64]
Rows = Mapping[str, IntArray]


@dataclass(slots=True)
class Transactions:
    """Transactions as parallel arrays: TX_DTYPE records and their amounts."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=TX_DTYPE))
    amounts: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


def _from_hex(text: bytes | str | None, dtype: np.dtype | str) -> np.ndarray:
    return np.frombuffer(binascii.unhexlify(text or b""), dtype=dtype)


def decode_headers(headers_hex: bytes | str | None) -> np.ndarray:
    """HEADER_DTYPE records from concatenated hex."""
    return _from_hex(headers_hex, HEADER_DTYPE)


def decode_elements(elements_hex: bytes | str | None) -> np.ndarray:
    """ELEMENT_DTYPE records from concatenated hex."""
    return _from_hex(elements_hex, ELEMENT_DTYPE)


def expand(headers: np.ndarray, elements: np.ndarray) -> dict[str, IntArray]:
    """ROW_FIELDS arrays: each element with its screenview's fields and absolute first tap."""
    counts = headers["elements"].astype(np.int64)
    if int(counts.sum()) != len(elements):
        raise ValueError("screenview headers and elements do not match")
    rows = {name: np.repeat(headers[name].astype(np.int64), counts)
            for name in ("session_id", "user_id", "scn")}  # fmt: skip
    for name in ELEMENT_DTYPE.names or ():
        rows[name] = elements[name].astype(np.int64)
    screenview_ms = np.repeat(headers["sv_ms"].astype(np.int64), counts)
    rows["first_tap_ms"] = np.where(rows["taps"] > 0, screenview_ms + rows["delay_ms"], 0)
    return rows


def decode_transactions(keys_hex: bytes | str | None, amounts: str | None) -> Transactions:
    """Transactions from concatenated TX_DTYPE hex and comma-separated exact decimals."""
    keys = _from_hex(keys_hex, TX_DTYPE)
    values = np.array(amounts.split(","), dtype=np.float64) if amounts else np.zeros(0)
    if len(values) != len(keys):
        raise ValueError("transaction keys and amounts differ in length")
    return Transactions(keys, values)


def distinct(values: IntArray) -> IntArray:
    """Sorted distinct values (np.unique without its hash path, slower here)."""
    ordered = np.sort(values)
    if len(ordered) == 0:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def screen_totals(screenviews: np.ndarray) -> tuple[int, int, int]:
    """(screenviews, distinct sessions, distinct users)."""
    sessions = distinct(screenviews["session_id"].astype(np.int64))
    users = distinct(screenviews["user_id"].astype(np.int64))
    return len(screenviews), len(sessions), len(users)


def _bits(values: IntArray) -> int:
    return int(values.max()).bit_length() if len(values) else 0


def _rank(values: IntArray) -> IntArray:
    """Dense rank of each value among the distinct values (0, 1, …)."""
    return np.unique(values, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _pair(high: IntArray, low: IntArray) -> IntArray:
    """One non-negative int64 per (high, low), equal exactly when the pairs are equal."""
    if _bits(high) + _bits(low) > 62:
        high = _rank(high)
        if _bits(high) + _bits(low) > 62:
            low = _rank(low)
    return high << _bits(low) | low


def _count_by(group: IntArray, n_groups: int) -> IntArray:
    return np.bincount(group, minlength=n_groups).astype(np.int64)


def _sum_by(group: IntArray, values: np.ndarray, n_groups: int) -> IntArray:
    # float64 sums of integers are exact below 2**53 — more events than a database holds.
    return np.bincount(group, weights=values, minlength=n_groups).astype(np.int64)


def _distinct_by_zone(zone: IntArray, member: IntArray, n_zones: int) -> IntArray:
    """Per zone, the number of distinct `member` values (member >= 0)."""
    keys = distinct(_pair(member, zone))
    return _count_by(keys & ((1 << _bits(zone)) - 1), n_zones)


def _medians(zone: IntArray, delay: IntArray, n_zones: int) -> list[float | None]:
    """Median delay per zone; for an even count the mean of the two middle values."""
    counts = _count_by(zone, n_zones)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    low = int(delay.min()) if len(delay) else 0
    shifted = delay - low
    bits = _bits(shifted)
    if _bits(zone) + bits <= 62:  # one int64 key sorts several times faster than a lexsort
        ordered = (np.sort(zone << bits | shifted) & ((1 << bits) - 1)) + low
    else:
        ordered = delay[np.lexsort((delay, zone))]
    medians: list[float | None] = []
    for start, count in zip(starts.tolist(), counts.tolist(), strict=True):
        if count == 0:
            medians.append(None)
            continue
        lower = int(ordered[start + (count - 1) // 2])
        upper = int(ordered[start + count // 2])
        medians.append((lower + upper) / 2)
    return medians


def _dense(ids: IntArray) -> bool:
    """Whether a table indexed by id beats a sort (ids are small positive integers)."""
    return len(ids) > 0 and int(ids.max()) <= 16 * len(ids) + 1_000_000


def _present(ids: IntArray) -> IntArray:
    if _dense(ids):
        return np.flatnonzero(np.bincount(ids))
    return distinct(ids)


def present_ids(rows: Rows) -> list[int]:
    """The distinct tvp_ids of the rows, sorted."""
    return [int(i) for i in _present(rows["tvp_id"])]


def _zones(
    tvp_id: IntArray, zone_of: Mapping[int, tuple[str, str]]
) -> tuple[IntArray, list[str], dict[str, str]]:
    """Zone number of each row, zone names (sorted), and each zone's kind.

    A zone's kind is the smallest of its tvps' among the rows (they can only disagree
    through a hand-made map).
    """
    dense = _dense(tvp_id)
    present = _present(tvp_id)
    attributed = [zone_of[int(i)] for i in present]
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


def _first_of_groups(keys: IntArray, values: IntArray) -> IntArray:
    """Per distinct key, the index of one element with the smallest value."""
    if len(keys) == 0:
        return keys
    shifted = values - int(values.min())
    bits = _bits(shifted)
    if _bits(keys) + bits <= 62:
        # One sort by (key, value): each group's first element has its smallest value.
        order = np.argsort(keys << bits | shifted)
        ordered_keys = keys[order]
        return order[np.concatenate(([True], ordered_keys[1:] != ordered_keys[:-1]))]
    order = np.argsort(keys)
    ordered_keys, ordered_values = keys[order], values[order]
    is_start = np.concatenate(([True], ordered_keys[1:] != ordered_keys[:-1]))
    group = np.cumsum(is_start) - 1
    smallest = np.minimum.reduceat(ordered_values, np.flatnonzero(is_start))
    candidates = np.flatnonzero(ordered_values == smallest[group])
    first = np.concatenate(([True], group[candidates][1:] != group[candidates][:-1]))
    return order[candidates[first]]


TransactionSource = Transactions | Callable[[], Transactions]


def zone_aggregates(
    rows: Rows, zone_of: Mapping[int, tuple[str, str]], transactions: TransactionSource
) -> list[ZoneAggregate]:
    """Every metric of SPEC §7 per zone (rates are derived later by `build_report`).

    `transactions` may be a function that decodes them: it then runs in parallel with the
    per-screenview half of the work (numpy releases the GIL in its loops).
    """
    field = rows
    if len(field["tvp_id"]) == 0:
        return []
    zone, names, kinds = _zones(field["tvp_id"], zone_of)
    n_zones = len(names)
    with ThreadPoolExecutor(max_workers=1) as pool:
        per_session = pool.submit(_per_session, field, zone, n_zones, transactions)
        medians, view_counts = _per_view(field, zone, n_zones)
        session_counts, revenue_by_zone = per_session.result()
    counts = {
        name: _sum_by(zone, field[name], n_zones)
        for name in ("taps", "unresponsive_taps", "long_presses", "drags", "flicks")
    }
    return [
        ZoneAggregate(
            zone=name,
            kind=kinds[name],
            taps=int(counts["taps"][k]),
            unresponsive_taps=int(counts["unresponsive_taps"][k]),
            long_presses=int(counts["long_presses"][k]),
            drags=int(counts["drags"][k]),
            flicks=int(counts["flicks"][k]),
            tapped_views=int(view_counts["tapped"][k]),
            swiped_views=int(view_counts["swiped"][k]),
            sessions=int(session_counts["sessions"][k]),
            users=int(session_counts["users"][k]),
            converted_sessions=int(session_counts["converted"][k]),
            median_delay_ms=medians[k],
            revenue=revenue_by_zone[k],
        )
        for k, name in enumerate(names)
    ]


def _per_view(
    field: Rows, zone: IntArray, n_zones: int
) -> tuple[list[float | None], dict[str, IntArray]]:
    """Medians, and screenviews with taps / swipes, per zone.

    Rows are per (screenview, tvp); only when two tvps of one screenview share a zone do
    they need merging into one (zone, screenview).
    """
    taps = field["taps"]
    swipes = field["drags"] + field["flicks"]
    delay = np.where(taps > 0, field["delay_ms"], np.iinfo(np.int64).max)
    zone_view = _pair(_pair(field["session_id"], field["scn"]), zone)
    ordered = np.sort(zone_view)
    if len(ordered) > 1 and np.any(ordered[1:] == ordered[:-1]):
        _, group = np.unique(zone_view, return_inverse=True)
        group = group.astype(np.int64).reshape(-1)
        n_views = int(group.max()) + 1
        view_zone = np.zeros(n_views, dtype=np.int64)
        view_zone[group] = zone
        view_taps = _sum_by(group, taps, n_views)
        view_swipes = _sum_by(group, swipes, n_views)
        view_delay = np.full(n_views, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(view_delay, group, delay)
    else:
        view_zone, view_taps, view_swipes, view_delay = zone, taps, swipes, delay
    tapped = view_taps > 0
    medians = _medians(view_zone[tapped], view_delay[tapped], n_zones)
    return medians, {
        "tapped": _count_by(view_zone[tapped], n_zones),
        "swiped": _count_by(view_zone[view_swipes > 0], n_zones),
    }


def _per_session(
    field: Rows, zone: IntArray, n_zones: int, transactions: TransactionSource
) -> tuple[dict[str, IntArray], list[dict[int, float]]]:
    """Tapping sessions and users, conversions and revenue, per zone."""
    session, first_tap = field["session_id"], field["first_tap_ms"]
    tapped_rows = np.flatnonzero(field["taps"] > 0)
    # Per tapping (zone, session): its row with the session's first tap on the zone.
    chosen = tapped_rows[
        _first_of_groups(_pair(session[tapped_rows], zone[tapped_rows]), first_tap[tapped_rows])
    ]
    if callable(transactions):
        transactions = transactions()
    revenue_by_zone, converted = _revenue(
        zone[chosen], session[chosen], first_tap[chosen], transactions, n_zones
    )
    users = _distinct_by_zone(zone[tapped_rows], field["user_id"][tapped_rows], n_zones)
    counts = {"sessions": _count_by(zone[chosen], n_zones), "users": users, "converted": converted}
    return counts, revenue_by_zone


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
    keys = transactions.keys
    if len(keys) == 0 or len(zone) == 0:
        return by_zone, np.zeros(n_zones, dtype=np.int64)
    # Each transaction once (it came with every screenview of its session), by session, time.
    _, once = np.unique(keys["tx_id"].astype(np.int64), return_index=True)
    tx_session = keys["session_id"].astype(np.int64)[once]
    tx_ms = keys["tx_ms"].astype(np.int64)[once]
    currency = keys["cu"].astype(np.int64)[once]
    amounts = transactions.amounts[once]
    sessions = distinct(tx_session)
    low = int(tx_ms.min())
    time_bits = _bits(tx_ms - low + 1)
    if time_bits + max(1, _bits(np.array([len(sessions)]))) > 62:
        raise ValueError("transaction times span too wide a range")
    tx_key = np.searchsorted(sessions, tx_session) << time_bits | (tx_ms - low + 1)
    order = np.argsort(tx_key)
    tx_key, currency, amounts = tx_key[order], currency[order], amounts[order]
    # For each tapping session with transactions: those after its first tap are a slice of
    # tx_key.
    with_tx = np.isin(session, sessions)
    zone, session, first_tap = zone[with_tx], session[with_tx], first_tap[with_tx]
    rank = np.searchsorted(sessions, session)
    threshold = np.clip(first_tap - low + 1, 0, (1 << time_bits) - 1)
    start = np.searchsorted(tx_key, rank << time_bits | threshold, side="right")
    end = np.searchsorted(tx_key, (rank + 1) << time_bits, side="left")
    count = np.maximum(end - start, 0)
    converted = _count_by(zone[count > 0], n_zones)
    total = int(count.sum())
    if total == 0:
        return by_zone, converted
    offsets = np.repeat(start - (np.cumsum(count) - count), count)
    pair_tx = np.arange(total) + offsets
    pair_zone, pair_currency = np.repeat(zone, count), currency[pair_tx]
    groups, group = np.unique(_pair(pair_zone, pair_currency), return_inverse=True)
    sums = np.bincount(group.reshape(-1), weights=amounts[pair_tx], minlength=len(groups))
    currency_bits = _bits(pair_currency)  # as _pair shifted
    for key, value in zip(groups.tolist(), sums.tolist(), strict=True):
        by_zone[key >> currency_bits][key & ((1 << currency_bits) - 1)] = value
    return by_zone, converted
