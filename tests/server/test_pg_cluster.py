"""The throw-away PostgreSQL server: its URL, template copies and database names."""

from __future__ import annotations

import asyncpg
import pytest
from pg_cluster import PgCluster


async def test_url_connects_as_tapzone(pg_cluster: PgCluster) -> None:
    connection = await asyncpg.connect(pg_cluster.url())
    try:
        user, version = await connection.fetchrow("SELECT current_user, version()")
    finally:
        await connection.close()
    assert pg_cluster.url() == f"postgresql://tapzone@127.0.0.1:{pg_cluster.port}/postgres"
    assert user == "tapzone"
    assert version.startswith("PostgreSQL ")


async def test_create_database_from_template_copies_its_tables(
    pg_cluster: PgCluster,
) -> None:
    template_url = pg_cluster.create_database("tpl_copy")
    try:
        connection = await asyncpg.connect(template_url)
        try:
            await connection.execute("CREATE TABLE screen (id int PRIMARY KEY, name text)")
            await connection.execute("INSERT INTO screen VALUES (1, 'checkout')")
        finally:
            await connection.close()

        copy_url = pg_cluster.create_database("copy_of_tpl", template="tpl_copy")
        assert copy_url == pg_cluster.url("copy_of_tpl")
        connection = await asyncpg.connect(copy_url)
        try:
            rows = await connection.fetch("SELECT id, name FROM screen")
        finally:
            await connection.close()
        assert [tuple(row) for row in rows] == [(1, "checkout")]

        pg_cluster.drop_database("copy_of_tpl")
        with pytest.raises(asyncpg.InvalidCatalogNameError):
            await asyncpg.connect(copy_url)
    finally:
        pg_cluster.drop_database("copy_of_tpl")
        pg_cluster.drop_database("tpl_copy")


@pytest.mark.parametrize("name", ["Upper", "9lives", "drop table", "a" * 64, ""])
def test_invalid_database_name_is_refused(pg_cluster: PgCluster, name: str) -> None:
    with pytest.raises(ValueError) as refused:
        pg_cluster.create_database("fine", template=name)
    assert str(refused.value) == (
        f"invalid database name {name!r}: expected 1-63 characters matching [a-z_][a-z0-9_]*"
    )
