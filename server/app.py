"""create_app(config) -> web.Application: routes, middleware and the store's lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server import keys
from server.auth import KeyRing
from server.config import Config
from server.middleware import error_middleware
from server.routes import config as config_routes
from server.routes import health, ingest, snapshots, touches, zoning
from server.store import make_store
from server.store.base import ProjectExists, Store

log = logging.getLogger(__name__)

# Bodies are inflated by server.body under our limits, never by aiohttp itself.
RUNNER_KWARGS: dict[str, Any] = {"auto_decompress": False}


def create_app(config: Config) -> web.Application:
    # aiohttp's own size check is a backstop above ours; ours gives the JSON 413.
    app = web.Application(
        middlewares=[error_middleware], client_max_size=config.max_body_bytes + 1
    )
    app[keys.CONFIG] = config
    app.cleanup_ctx.append(_store_ctx)
    for routes in (ingest, touches, snapshots, config_routes, health, zoning):
        routes.setup(app)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG]
    store = make_store(config)
    await store.open()
    try:
        app[keys.STORE] = store
        await bootstrap_default_project(store)
        await store.warm_up()
        keyring = KeyRing(store)
        await keyring.load()
        app[keys.KEYRING] = keyring
        yield
    finally:
        # In-flight requests have finished (aiohttp shuts handlers down first); queued
        # writes are committed before the store closes. Also when a SIGTERM cancels the
        # start-up (a worker that got it while it read its dedupe index): a store left
        # open kept aiosqlite's thread waiting, and the process never exited.
        await store.close()


async def bootstrap_default_project(store: Store) -> None:
    """On an empty database, create project 1 `default` and log its keys once.

    With several workers the supervisor calls it before starting them, so in a worker it
    finds the project and does nothing.
    """
    if await store.list_projects():
        return
    try:
        project = await store.create_project("default", pid=1)
    except ProjectExists:  # another worker process created it first
        return
    log.warning(
        "created project 1 'default': ingest key %s, read key %s "
        "(shown once; `tapzone project list` shows them again)",
        project.ingest_key,
        project.read_key,
    )
