"""Running the app: one process, or N processes sharing the port."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from server.app import RUNNER_KWARGS, create_app
from server.config import Config
from server.errors import CliError, ServiceError
from server.store.sqlite_fold_process import CHECK_S, FoldProcess

log = logging.getLogger(__name__)


# What keeps a server from starting, shown as one line: a store it cannot open (ValueError,
# server.store) or write (the default project of an empty database), an address it cannot
# listen on (OSError).
START_ERRORS = (ValueError, OSError, sqlite3.Error, ServiceError)


def serve(config: Config) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit status."""
    count = config.worker_count
    try:
        if count == 1:
            app = create_app(config)
            if folds_in_a_process(config):
                app.cleanup_ctx.append(fold_process_ctx(config))
            run(app, config)
            return 0
        from server.workers import supervise

        return supervise(config, count)
    except START_ERRORS as exc:
        log.debug("the server could not start", exc_info=True)
        raise CliError(f"the server could not start: {exc}") from None


def folds_in_a_process(config: Config) -> bool:
    """Whether `serve` runs the zoning fold in a process of its own (SQLite only)."""
    return config.fold_process and config.database_url is None


def fold_process_ctx(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx for a one-process server: its fold process, checked every CHECK_S.
    Append it after the store's, which creates and migrates the database first."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        process = FoldProcess(config.db, config.sqlite_cache_mib)
        process.start()

        async def watch() -> None:
            while True:
                await asyncio.sleep(CHECK_S)
                process.check()

        try:
            async with beside(watch()):
                yield
        finally:
            await asyncio.to_thread(process.stop)

    return ctx


@contextlib.asynccontextmanager
async def beside(watch: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """`watch` runs as a task for the block (cancelled at its end): a cleanup_ctx's watcher."""
    task = asyncio.create_task(watch)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run(
    app: web.Application,
    config: Config,
    *,
    reuse_port: bool | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """web.run_app with our settings; `on_ready` is called once the port is bound."""
    tune_gc()
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


# Young-generation threshold of the cyclic GC while serving (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Fewer, cheaper cyclic-GC passes while serving.

    With CPython's default threshold of 700 the ingest path (per request: decoded events, row
    tuples; per group: the writer's row lists) triggered about 30 young collections a second,
    measured at 20,000 events/s: 1.3 ms each on average, up to 14 ms, and gen-2 passes up to
    35 ms, pauses that every request in flight waits for. The wire Structs are not tracked at
    all (`gc=False` in server.schema, they cannot form cycles); what is left is mostly
    short-lived and freed by reference counting, so a young generation of 50,000 objects is
    rarely filled: one collection of 2 ms in the same run. `gc.freeze()` moves everything
    loaded at start-up (modules, app) out of the collector's sight for good.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
