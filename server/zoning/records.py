"""The SQLite store's zoning records and day blocks, decoded with numpy.

Each screenview row of the store (server.store.sqlite_zoning) holds its record as hex: its
session's transactions, then the screenview, then its elements. A query reads the records of
the rows of its selection (concatenated by SQLite) and the day blocks of its finished days;
`decode_slots` turns records into columns (binascii.unhexlify, then structured views: no
per-record Python), a block already is those columns (`pack_columns`, `unpack_columns`), and
`selection` puts the parts end to end as server.zoning.compute takes them.

Every slot is SLOT bytes; its first byte says what it is, so a stream of any records splits
into its parts with one comparison per slot. A record of several slots has CONTINUATION as
the first byte of the others, and no field crosses a slot boundary. Fields are big-endian:

| kind | slots | fields |
|---|---|---|
| VIEW | 2 | session_id i64, user_id (low u32; high u32 in slot 2), sv_ms i64 |
| ELEMENT | 1 | tvp_id u32, delay_ms i32, taps and unresponsive_taps u16, the others u8 |
| WIDE_ELEMENT | 3 | tvp_id i64, delay_ms i64, the five counts u32 (what ELEMENT cannot hold) |
| TRANSACTION | 2 | tx_ms i64, cu u32, the amount in millionths i64 (when that is exact) |
| TRANSACTION_TEXT | 3 | tx_ms i64, cu u32, the amount as 24 ASCII characters (17 digits) |

Transactions come before the screenview they belong to, elements after it. Every screenview
of a session carries the session's transactions, the same list, so each transaction is
counted from the first screenview of its session in the stream. `delay_ms` is the first tap
minus the screenview time (0 without a tap); counts saturate at COUNT_MAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from server.zoning.compute import COUNT_FIELDS, IntArray, Transactions, first_of

SLOT = 16
CONTINUATION, VIEW, ELEMENT, WIDE_ELEMENT, TRANSACTION, TRANSACTION_TEXT = range(6)


def _dtype(*slots: list[tuple[str, str]]) -> np.dtype:
    """A record of len(slots) slots: each its kind byte, its fields, then padding."""
    fields: list[tuple[str, str]] = []
    for k, slot in enumerate(slots):
        used = np.dtype([("kind", "u1"), *slot]).itemsize
        fields += [(f"kind{k}", "u1"), *slot]
        if used < SLOT:
            fields.append((f"pad{k}", f"V{SLOT - used}"))
    return np.dtype(fields)


VIEW_DTYPE = _dtype(
    [("session_id", ">i8"), ("user_low", ">u4")], [("sv_ms", ">i8"), ("user_high", ">u4")]
)
ELEMENT_DTYPE = _dtype(
    [("tvp_id", ">u4"), ("delay_ms", ">i4"), ("taps", ">u2"), ("unresponsive_taps", ">u2"),
     ("long_presses", "u1"), ("drags", "u1"), ("flicks", "u1")]
)  # fmt: skip
WIDE_ELEMENT_DTYPE = _dtype(
    [("tvp_id", ">i8"), ("taps", ">u4")],
    [("delay_ms", ">i8"), ("unresponsive_taps", ">u4")],
    [("long_presses", ">u4"), ("drags", ">u4"), ("flicks", ">u4")],
)
TRANSACTION_DTYPE = _dtype([("tx_ms", ">i8"), ("cu", ">u4")], [("micros", ">i8")])
TRANSACTION_TEXT_DTYPE = _dtype(
    [("tx_ms", ">i8"), ("cu", ">u4")], [("amount_head", "S15")], [("amount_tail", "S9")]
)
DTYPES = {
    VIEW: VIEW_DTYPE,
    ELEMENT: ELEMENT_DTYPE,
    WIDE_ELEMENT: WIDE_ELEMENT_DTYPE,
    TRANSACTION: TRANSACTION_DTYPE,
    TRANSACTION_TEXT: TRANSACTION_TEXT_DTYPE,
}
SLOTS = {kind: dtype.itemsize // SLOT for kind, dtype in DTYPES.items()}
assert all(dtype.itemsize % SLOT == 0 for dtype in DTYPES.values())


# The columns a part of a selection decodes to: per screenview, per element (`view` numbers
# the part's screenviews from 0) and per transaction (`tx_view`: its screenview).
VIEW_COLUMNS = ("session_id", "user_id", "sv_ms")
ELEMENT_COLUMNS = ("view", "tvp_id", "delay_ms", *COUNT_FIELDS)
TX_COLUMNS = ("tx_view", "tx_ms", "cu", "amount")
COLUMNS = (*VIEW_COLUMNS, *ELEMENT_COLUMNS, *TX_COLUMNS)
Columns = dict[str, np.ndarray]


@dataclass(slots=True)
class Selection:
    """Decoded records: per screenview its session and user, the rows of zone_aggregates
    (one per element, with `view`, the screenview's number) and the transactions."""

    session_id: IntArray
    user_id: IntArray
    rows: dict[str, IntArray]
    transactions: Transactions


def _at(data: bytes, kind: int, starts: IntArray) -> np.ndarray:
    """The records of `kind` starting at the slots `starts` (copied as raw bytes: fast)."""
    dtype = DTYPES[kind]
    n = len(data) // SLOT - SLOTS[kind] + 1
    if n <= 0 or len(starts) == 0:
        return np.zeros(0, dtype=dtype)
    every = np.ndarray((n,), dtype=f"V{dtype.itemsize}", buffer=data, strides=(SLOT,))
    return every[starts].view(dtype)


def _once(session: IntArray, tx_view: IntArray) -> IntArray:
    """The transactions to count: those of the first screenview of their session."""
    return np.flatnonzero(tx_view == first_of(session)[tx_view])


def decode_slots(data: bytes) -> Columns:
    """The columns of a stream of whole records (binary)."""
    if len(data) % SLOT:
        raise ValueError("zoning records are not whole slots")
    kind = np.frombuffer(data, dtype=np.uint8)[::SLOT].copy()
    starts = {k: np.flatnonzero(kind == k) for k in DTYPES}
    views = _at(data, VIEW, starts[VIEW])
    columns: Columns = {
        "session_id": views["session_id"].astype(np.int64),
        "user_id": views["user_high"].astype(np.int64) << 32 | views["user_low"],
        "sv_ms": views["sv_ms"].astype(np.int64),
    }
    # Screenviews up to each slot: the number of an element's (before it) + 1, and that of a
    # transaction's (after it).
    views_so_far = np.cumsum(kind == VIEW, dtype=np.int32)
    elements = [_at(data, k, starts[k]) for k in (ELEMENT, WIDE_ELEMENT)]
    columns["view"] = np.concatenate([views_so_far[starts[k]] for k in (ELEMENT, WIDE_ELEMENT)])
    columns["view"] -= 1
    for name in ELEMENT_COLUMNS[1:]:
        columns[name] = np.concatenate([e[name] for e in elements]) if elements[1].size else (
            elements[0][name]
        )
    tx = _at(data, TRANSACTION, starts[TRANSACTION])
    text = _at(data, TRANSACTION_TEXT, starts[TRANSACTION_TEXT])
    tx_view = np.concatenate([views_so_far[starts[k]] for k in (TRANSACTION, TRANSACTION_TEXT)])
    once = _once(columns["session_id"], tx_view)
    columns["tx_view"] = tx_view[once]
    columns["tx_ms"] = np.concatenate((tx["tx_ms"], text["tx_ms"]))[once]
    columns["cu"] = np.concatenate((tx["cu"], text["cu"]))[once]
    # Millionths as SQLite checked them: the float64 of the integer, divided by 1e6.
    columns["amount"] = np.concatenate((
        tx["micros"].astype(np.int64).astype(np.float64) / 1e6,
        np.char.add(text["amount_head"], text["amount_tail"]).astype(np.float64),
    ))[once]  # fmt: skip
    return columns


# -- day blocks: the columns themselves, each in the narrowest type that holds it ------------

_MAGIC = b"ZBC1"
_INTEGER_TYPES = tuple(np.dtype(t) for t in ("<u1", "<i1", "<u2", "<i2", "<u4", "<i4", "<i8"))


def _narrowest(values: np.ndarray) -> np.dtype:
    if values.dtype.kind == "f":
        return np.dtype("<f8")
    if len(values) == 0:
        return np.dtype("<u1")
    low, high = int(values.min()), int(values.max())
    for dtype in _INTEGER_TYPES:
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return dtype
    return np.dtype("<i8")


def pack_columns(columns: Columns) -> bytes:
    """A day block: a header (magic, sizes, one type per column), then each column."""
    arrays = [np.asarray(columns[name]) for name in COLUMNS]
    types = [_narrowest(a) for a in arrays]
    sizes = [len(columns["session_id"]), len(columns["view"]), len(columns["tx_view"])]
    header = _MAGIC + np.array(sizes, dtype="<i8").tobytes()
    header += "".join(t.char for t in types).encode().ljust(16, b" ")
    return header + b"".join(a.astype(t).tobytes() for a, t in zip(arrays, types, strict=True))


def unpack_columns(data: bytes) -> Columns:
    """The columns of a day block (views of its bytes)."""
    if data[:4] != _MAGIC:
        raise ValueError("not a zoning day block")
    sizes = np.frombuffer(data, dtype="<i8", count=3, offset=4).tolist()
    chars = data[28 : 28 + len(COLUMNS)].decode()
    offset = 44
    columns: Columns = {}
    counts = [sizes[0]] * len(VIEW_COLUMNS) + [sizes[1]] * len(ELEMENT_COLUMNS)
    counts += [sizes[2]] * len(TX_COLUMNS)
    for name, char, count in zip(COLUMNS, chars, counts, strict=True):
        dtype = np.dtype(char).newbyteorder("<")
        columns[name] = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += count * dtype.itemsize
    return columns


def selection(parts: list[Columns]) -> Selection:
    """The selection of several parts (blocks, records): their columns end to end. The rows
    are in the `view` form of server.zoning.compute; counts keep a narrow type."""
    parts = [p for p in parts if len(p["session_id"])] or [decode_slots(b"")]
    first_view = np.cumsum([0] + [len(p["session_id"]) for p in parts[:-1]])

    def joined(name: str, dtype: Any = None) -> np.ndarray:
        arrays = [p[name] for p in parts]
        return np.concatenate(arrays, dtype=dtype or np.result_type(*arrays))

    def numbers(name: str) -> IntArray:
        sizes = [len(p[name]) for p in parts]
        return joined(name, np.int64) + np.repeat(first_view, sizes)

    session, user = joined("session_id", np.int64), joined("user_id", np.int64)
    rows = {name: joined(name) for name in ELEMENT_COLUMNS[1:]}
    rows["view"] = numbers("view")
    rows["view_session_id"] = session
    rows["view_user_id"] = user
    rows["view_sv_ms"] = joined("sv_ms", np.int64)
    tx_view = numbers("tx_view")
    once = _once(session, tx_view)  # a session's list once, also across parts
    keys = {
        "session_id": session[tx_view[once]],
        "tx_id": np.arange(len(once), dtype=np.int64),
        "tx_ms": joined("tx_ms", np.int64)[once],
        "cu": joined("cu", np.int64)[once],
    }
    return Selection(session, user, rows, Transactions(keys, joined("amount", np.float64)[once]))


def decode_records(data: bytes) -> Selection:
    """The arrays of server.zoning.compute from a stream of whole records (binary)."""
    return selection([decode_slots(data)])
