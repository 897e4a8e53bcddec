"""Fixtures: a fresh database on each backend, and an app on it served for real with two
projects and their keys."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from databases import BACKENDS, TestDatabase, new_database_name
from pg_fixtures import pg_cluster  # noqa: F401 (the session's PostgreSQL server)
from support import Service, load_fixture, start_service

from server import keys


@pytest.fixture(params=BACKENDS)
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable]:
    """make() -> TestDatabase, empty; every test using it runs once per backend.

    The PostgreSQL server is only started when a PostgreSQL case runs; without one the
    PostgreSQL cases are skipped with the reason.
    """
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgres" else None
    names: list[str] = []

    def make() -> TestDatabase:
        if cluster is None:
            directory = tmp_path / f"db{len(names)}"
            directory.mkdir()
            names.append(directory.name)
            return TestDatabase("sqlite", path=directory / "tapzone.db")
        name = new_database_name()
        names.append(name)
        return TestDatabase("postgres", url=cluster.create_database(name))

    yield make
    if cluster is not None:
        for name in names:
            cluster.drop_database(name)


@pytest.fixture
async def service_factory(new_database: Callable) -> AsyncIterator[Callable]:
    """make(**config_settings) -> Service; each call is its own server on its own database."""
    clients: list[TestClient] = []

    async def make(**settings: object) -> Service:
        database = new_database()
        client, app = await start_service(database, **settings)
        clients.append(client)
        store = app[keys.STORE]
        default = (await store.list_projects())[0]
        other = await store.create_project("other", pid=2)
        await app[keys.KEYRING].load()
        return Service(client, app, database, default, other)

    try:
        yield make
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
async def service(service_factory: Callable) -> Service:
    return await service_factory()


@pytest.fixture
def seed_batch() -> dict:
    return copy.deepcopy(load_fixture("batches/seed_batch.json"))
