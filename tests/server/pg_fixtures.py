"""The session-wide throw-away PostgreSQL server, as a pytest fixture."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pg_cluster import PgCluster, PgUnavailable


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    """One server for the whole session; the tests that use it skip when none can start."""
    if os.environ.get("TAPZONE_TEST_PG_SKIP") == "1":
        pytest.skip("TAPZONE_TEST_PG_SKIP=1")
    cluster = PgCluster(tmp_path_factory.mktemp("pg"))
    try:
        cluster.start()
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
