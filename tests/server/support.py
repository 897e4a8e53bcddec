"""Test support for the server: a real app on a fresh database, and helpers to talk to it."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from databases import TestDatabase

from server.app import RUNNER_KWARGS, create_app
from server.config import Config
from server.store.base import Project

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def load_fixture(relative: str) -> dict:
    return json.loads((FIXTURES / relative).read_text())


@dataclass
class Service:
    client: TestClient
    app: web.Application
    database: TestDatabase
    default: Project  # pid 1, created by the server on an empty database
    other: Project  # pid 2

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Rows straight from the database, through a separate connection (`?` placeholders)."""
        return self.database.query(sql, *params)

    async def post_batch(self, body: object, key: str | None = None, **headers: str):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"}
        if key is not False:
            hdrs["Authorization"] = f"Bearer {key or self.default.ingest_key}"
        hdrs.update(headers)
        # aiohttp's client warns on large raw bytes bodies; a BytesIO keeps Content-Length.
        payload = io.BytesIO(data) if len(data) > 1024 * 1024 else data
        return await self.client.post("/v1/batch", data=payload, headers=hdrs)


async def start_service(
    database: TestDatabase, **settings: object
) -> tuple[TestClient, web.Application]:
    config = Config(**database.settings, **settings)
    app = create_app(config)
    server = TestServer(app)
    await server.start_server(**RUNNER_KWARGS)
    client = TestClient(server)
    await client.start_server()
    return client, app
