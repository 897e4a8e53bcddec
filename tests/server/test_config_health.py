"""GET /v1/config/{pid} and GET /healthz; the app's start-up cut short."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from pathlib import Path

import pytest
from aiohttp import web
from support import Service

from server import keys
from server.app import create_app
from server.auth import DENIED
from server.config import Config
from server.store.sqlite import SqliteStore


async def test_config_returns_the_run_configuration(service: Service) -> None:
    before = int(time.time() * 1000)
    resp = await service.client.get(
        "/v1/config/1", headers={"Authorization": f"Bearer {service.default.ingest_key}"}
    )
    assert resp.status == 200
    body = await resp.json()
    assert before <= body.pop("server_time") <= int(time.time() * 1000)
    assert body == {"pid": 1, "batch_size": 50, "tracking_enabled": True, "max_batch_events": 1000}


async def test_config_uses_the_project_batch_size(service: Service) -> None:
    project = await service.app[keys.STORE].create_project("big", pid=7, batch_size=200)
    await service.app[keys.KEYRING].load()
    resp = await service.client.get(
        "/v1/config/7", headers={"Authorization": f"Bearer {project.ingest_key}"}
    )
    assert (await resp.json())["batch_size"] == 200


async def test_config_refusals(service: Service) -> None:
    def auth(key: str) -> dict:
        return {"Authorization": f"Bearer {key}"}

    for path, headers in [
        ("/v1/config/1", {}),
        ("/v1/config/1", auth(service.default.read_key)),
        ("/v1/config/1", auth(service.other.ingest_key)),
        ("/v1/config/2", auth(service.default.ingest_key)),
        ("/v1/config/999", auth(service.default.ingest_key)),
    ]:
        resp = await service.client.get(path, headers=headers)
        assert resp.status == 401, path
        assert await resp.json() == {"status": 401, "error": DENIED}
    # Not ASCII digits, or out of range: "²" was a 500, "１" and "١" (int() reads 1) project 1.
    for raw in ("abc", "0", "-1", "2147483648", "00000000001", "²", "１", "١"):
        resp = await service.client.get(
            f"/v1/config/{urllib.parse.quote(raw)}", headers=auth(service.default.ingest_key)
        )
        assert await resp.json() == {
            "status": 400,
            "error": f"The project id in the path must be an integer from 1 to 2147483647, "
            f"got {raw!r}.",
        }, raw
    resp = await service.client.get("/v1/config/0001", headers=auth(service.default.ingest_key))
    assert (await resp.json())["pid"] == 1


async def test_a_key_added_while_running_is_found(service: Service) -> None:
    # A project created by `tapzone project add` while the server runs: the key ring reloads.
    project = await service.app[keys.STORE].create_project("late", pid=5)
    service.app[keys.KEYRING]._loaded_at = float("-inf")
    resp = await service.client.get(
        "/v1/config/5", headers={"Authorization": f"Bearer {project.ingest_key}"}
    )
    assert resp.status == 200


async def test_healthz(service: Service) -> None:
    resp = await service.client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_healthz_is_503_when_the_store_does_not_answer(service: Service) -> None:
    store = service.app[keys.STORE]

    async def broken() -> bool:
        return False

    store.ping = broken  # type: ignore[method-assign]
    resp = await service.client.get("/healthz")
    assert resp.status == 503
    assert await resp.json() == {"status": 503, "error": "The store does not answer."}


async def test_a_start_up_cut_short_still_closes_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM while a worker starts cancels its start-up: the store it opened is closed
    (left open, aiosqlite's thread kept the process from exiting)."""
    reading = asyncio.Event()
    closed: list[SqliteStore] = []
    real_close = SqliteStore.close

    async def slow_warm_up(store: SqliteStore) -> None:
        reading.set()
        await asyncio.sleep(3600)

    async def close(store: SqliteStore) -> None:
        closed.append(store)
        await real_close(store)

    monkeypatch.setattr(SqliteStore, "warm_up", slow_warm_up)
    monkeypatch.setattr(SqliteStore, "close", close)
    app = create_app(Config(db=str(tmp_path / "t.db")))
    starting = asyncio.create_task(web.AppRunner(app).setup())
    await asyncio.wait_for(reading.wait(), 30)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert closed == [app[keys.STORE]] and closed[0]._rconn is None
