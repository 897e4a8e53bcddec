"""Running the app: one process, or N processes sharing the port."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from server.app import RUNNER_KWARGS, create_app
from server.config import Config


def serve(config: Config) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit status."""
    count = config.worker_count
    if count == 1:
        run(create_app(config), config)
        return 0
    from server.workers import supervise

    return supervise(config, count)


def run(
    app: web.Application,
    config: Config,
    *,
    reuse_port: bool | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """web.run_app with our settings; `on_ready` is called once the port is bound."""
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        access_log=web.access_logger if config.access_log else None,
        # run_app "prints" its banner right after every site has started.
        print=on_ready,
        shutdown_timeout=30.0,
        reuse_port=reuse_port,
        **RUNNER_KWARGS,
    )
