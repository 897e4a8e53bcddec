"""sqlite_bulk.insert_rows: many rows per statement, in order, first copy kept."""

from __future__ import annotations

import sqlite3

import pytest

from server.store import sqlite_bulk
from server.store.sqlite_bulk import chunk_sizes, insert_rows, with_batch_ids


@pytest.mark.parametrize(
    ("n", "largest", "sizes"),
    [
        (0, 1000, []),
        (5, 1000, [5]),
        (63, 1000, [63]),
        (64, 1000, [64]),
        (2500, 1000, [1000, 1000, 256, 128, 64, 52]),
        (3000, 1000, [1000, 1000, 1000]),
        (1999, 1000, [1000, 512, 256, 128, 64, 39]),
        (7, 3, [3, 3, 1]),
    ],
)
def test_chunk_sizes(n: int, largest: int, sizes: list[int]) -> None:
    assert chunk_sizes(n, largest) == sizes


def test_rows_inserted_in_order_and_first_copy_kept() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, note TEXT)")
    rows = [(f"k{i % 2100}", i, None if i % 3 else f"n{i}") for i in range(2500)]
    insert_rows(conn, "INSERT INTO t (k, v, note)", "ON CONFLICT (k) DO NOTHING", rows)
    stored = conn.execute("SELECT k, v, note FROM t ORDER BY rowid").fetchall()
    assert stored == rows[:2100]  # the 400 repeats of k0…k399 came later: not stored


def test_wide_rows_stay_under_the_variable_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_bulk, "MAX_VARIABLES", 100)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(f"CREATE TABLE w ({', '.join(f'c{i}' for i in range(30))})")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    rows = [tuple(range(r, r + 30)) for r in range(10)]
    insert_rows(conn, "INSERT INTO w", "", rows)
    conn.set_trace_callback(None)
    assert conn.execute("SELECT * FROM w ORDER BY rowid").fetchall() == rows
    # 100 // 30 = 3 rows per statement at most: 3 + 3 + 3 + 1.
    assert [s.count("(") for s in statements] == [3, 3, 3, 1]


def test_no_rows_no_statement() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    insert_rows(conn, "INSERT INTO nowhere", "", [])
    assert statements == []


def test_with_batch_ids_appends_each_batch_id_to_its_rows() -> None:
    batches = [[(1, "a"), (2, "b")], [], [(3, "c")]]
    assert with_batch_ids([7, 8, 9], batches) == [(1, "a", 7), (2, "b", 7), (3, "c", 9)]


def test_none_and_bytes_have_adapters_that_give_them_back() -> None:
    """Registered by sqlite_bulk so that sqlite3 skips its slow search for one (the values
    bind as before: NULL, BLOB)."""
    body = b"{\"pl\": []}"
    for value in (None, body):
        adapter = sqlite3.adapters[(type(value), sqlite3.PrepareProtocol)]
        assert adapter(value) is value
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b)")
    insert_rows(conn, "INSERT INTO t (a, b)", "", [(None, body), (1, None)])
    assert conn.execute("SELECT typeof(a), a, typeof(b), b FROM t").fetchall() == [
        ("null", None, "blob", body), ("integer", 1, "null", None),
    ]  # fmt: skip
