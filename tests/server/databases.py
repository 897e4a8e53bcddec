"""A fresh test database on either backend, and plain SQL on it from the test's side."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from pg_cluster import run_sync

from server.config import Config
from server.store import make_store
from server.store.base import Store
from server.store.sqlite_zoning_file import zoning_file

BACKENDS = ("sqlite", "postgres")
_names = itertools.count()
_PLACEHOLDER = re.compile(r"\?")


@dataclass
class TestDatabase:
    """One empty database: a SQLite file, or a database of the session's PostgreSQL server.

    `query` and `execute_many` take SQLite-style `?` placeholders on both backends, and go
    through a connection of their own, not the store's.
    """

    __test__ = False  # not a test class, whatever its name

    backend: str
    path: Path | None = None
    url: str | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """Config settings that point a store at this database."""
        if self.url is not None:
            return {"database_url": self.url}
        return {"db": str(self.path)}

    @property
    def cli_options(self) -> list[str]:
        if self.url is not None:
            return ["--database-url", self.url]
        return ["--db", str(self.path)]

    def store(self, **settings: Any) -> Store:
        """A store on this database (not opened yet)."""
        return make_store(Config(**self.settings, **settings))

    def query(self, sql: str, *params: object) -> list[tuple]:
        """On SQLite, the zoning file is attached (when there is one), as for the store."""
        if self.url is None:
            with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:  # type: ignore[arg-type]
                zoning = zoning_file(str(self.path))
                if os.path.exists(zoning):
                    conn.execute("ATTACH DATABASE ? AS zoning", (zoning,))
                return conn.execute(sql, params).fetchall()
        records = run_sync(self._pg("fetch", _numbered(sql), params))
        return [tuple(record) for record in records]

    def full_on_insert(self, table: str) -> None:
        """PostgreSQL only: every INSERT into `table` fails as on a full disk (SQLSTATE
        53100, asyncpg's DiskFullError)."""
        assert self.url is not None, "a trigger of PostgreSQL"
        self.query(
            "CREATE OR REPLACE FUNCTION no_room() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$"
        )
        self.query(
            f"CREATE TRIGGER no_room BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION no_room()"
        )

    def execute_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        if self.url is None:
            with sqlite3.connect(self.path) as conn:  # type: ignore[arg-type]
                conn.executemany(sql, rows)
            return
        run_sync(self._pg("executemany", _numbered(sql), list(rows)))

    async def _pg(self, method: str, sql: str, args: Any) -> Any:
        conn = await asyncpg.connect(self.url)
        try:
            if method == "fetch":
                return await conn.fetch(sql, *args)
            return await conn.executemany(sql, args)
        finally:
            await conn.close()


def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2, …"""
    counter = itertools.count(1)
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def new_database_name() -> str:
    return f"tapzone_test_{os.getpid()}_{next(_names)}"
