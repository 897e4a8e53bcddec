"""Running the app: one process, or N processes sharing the port."""

from __future__ import annotations

from aiohttp import web

from server.app import RUNNER_KWARGS, create_app
from server.config import Config


def serve(config: Config) -> None:
    app = create_app(config)
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        access_log=web.access_logger if config.access_log else None,
        print=None,
        shutdown_timeout=30.0,
        **RUNNER_KWARGS,
    )
