"""Fixtures: an app on a fresh SQLite file, served for real, with two projects and their keys."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from support import Service, load_fixture, start_service

from server import keys


@pytest.fixture
async def service_factory(tmp_path: Path) -> AsyncIterator[Callable]:
    """make(**config_settings) -> Service; each call is its own server on its own database."""
    clients: list[TestClient] = []

    async def make(**settings: object) -> Service:
        directory = tmp_path / f"service{len(clients)}"
        directory.mkdir()
        client, app = await start_service(directory, **settings)
        clients.append(client)
        store = app[keys.STORE]
        default = (await store.list_projects())[0]
        other = await store.create_project("other", pid=2)
        await app[keys.KEYRING].load()
        return Service(client, app, directory / "tapzone.db", default, other)

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
