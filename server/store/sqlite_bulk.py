"""Many-row INSERTs for the SQLite writer thread, a bounded number of statements per group.

Python's sqlite3 releases the GIL around every sqlite3_step and must take it back after.
`executemany` steps once per row, so a group of 20,000 events took the GIL back 20,000 times;
each time the event loop thread held it, the writer waited for the loop to hand it over (up
to the 5 ms switch interval). Measured beside a busy thread: 1,300 µs per event instead of 4.
One statement with many VALUES rows steps once for all of them, so the writer works in C
without the GIL while the loop keeps serving requests.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence


def _fast_adapters() -> None:
    """Adapters for None and bytes that give the value back, from C.

    sqlite3 binds an exact int, float, str or bytearray as it is; any other value goes
    through its adapter registry first, and when that has none (None, bytes), it looks for
    `PrepareProtocol.__adapt__` and `__conform__`, raising and clearing an AttributeError
    with a formatted message on the way, before it binds the value unchanged. An event row
    binds 3-5 Nones (the columns of other kinds). With these two entries the lookup is one
    dict hit and a C call: the writer's CPU per event fell from 7.5-8.2 to 6.2-7.1 µs
    (groups of 8 batches). Process-wide, and no value binds differently.
    """
    nothing: dict[None, None] = {}
    sqlite3.register_adapter(type(None), nothing.get)  # nothing.get(None) is None
    sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b


_fast_adapters()

# SQLite's default SQLITE_MAX_VARIABLE_NUMBER since 3.32 is 32,766; a statement binds at most
# this many values (fewer rows per statement for wide rows).
MAX_VARIABLES = 32_000
# Rows per statement for narrow rows: more would only make the cached statements larger.
MAX_ROWS = 1_000


@functools.lru_cache(maxsize=512)
def _statement(head: str, tail: str, width: int, rows: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join(itertools.repeat(row, rows))} {tail}"


def with_batch_ids(
    ids: Iterable[int], batches: Sequence[Sequence[tuple[object, ...]]]
) -> list[tuple[object, ...]]:
    """Every row of every batch with its batch's id appended (a C-level loop, no bytecode per
    row: this runs on the writer thread, holding the GIL)."""
    return list(with_batch_ids_of(itertools.chain.from_iterable(batches), ids, batches))


def with_batch_ids_of(
    rows: Iterable[tuple[object, ...]],
    ids: Iterable[int],
    batches: Iterable[Sequence[tuple[object, ...]]],
) -> Iterator[tuple[object, ...]]:
    """`rows`, the rows of `batches` one after the other, each with its batch's id appended,
    as they are asked for (the writer keeps only the events it stores)."""
    column = itertools.chain.from_iterable(
        itertools.repeat((i,), len(batch)) for i, batch in zip(ids, batches)
    )
    return map(tuple.__add__, rows, column)


def insert_rows(
    conn: sqlite3.Connection, head: str, tail: str, rows: Sequence[Sequence[object]]
) -> None:
    """Run ``{head} VALUES (…), (…), … {tail}`` over `rows`, in as few statements as fit.

    Rows keep their order (an ``ON CONFLICT DO NOTHING`` tail keeps the first copy). `head`
    and `tail` are trusted SQL; every value is bound.
    """
    if not rows:
        return
    width = len(rows[0])
    start = 0
    for size in chunk_sizes(len(rows), max(1, min(MAX_ROWS, MAX_VARIABLES // width))):
        params = list(itertools.chain.from_iterable(rows[start : start + size]))
        conn.execute(_statement(head, tail, width, size), params)
        start += size


# Below this many rows a chunk has its exact size.
EXACT_BELOW = 64


def chunk_sizes(n: int, largest: int) -> list[int]:
    """`n` split into chunks of `largest`, then powers of two down to EXACT_BELOW, then the
    rest: few statements per call, and few distinct statement sizes, so the compiled
    statements sqlite3 caches (128 at most) stay few and small whatever the group sizes."""
    sizes = [largest] * (n // largest)
    rest = n % largest
    while rest >= EXACT_BELOW:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    if rest:
        sizes.append(rest)
    return sizes
