"""`serve --workers N`: a supervisor process and N worker processes sharing the port.

The supervisor migrates the database and creates the default project once, then starts each
worker as `python -m server.workers SUPERVISOR_PID` with its Config as JSON on stdin. Workers
are plain subprocesses rather than multiprocessing children: exactly N processes (no resource
tracker), nothing pickled or re-imported from __main__, and each in its own session, so a
terminal's Ctrl-C reaches only the supervisor, which sends each worker one SIGTERM (a second
signal would cut short aiohttp's graceful shutdown and the store's final commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType

import msgspec
from aiohttp import web

from server.app import bootstrap_default_project, create_app
from server.config import Config
from server.serve import START_ERRORS, beside, folds_in_a_process, run
from server.store import make_store
from server.store.sqlite_fold_process import FoldProcess

log = logging.getLogger("server.workers")  # also when run as __main__

# A worker that could not start (port taken, database unreadable): a replacement would fail
# the same way, so the supervisor stops instead of restarting it in a loop.
BOOT_FAILED = 3
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def supervise(config: Config, count: int) -> int:
    """Run `count` workers until SIGINT or SIGTERM; 0 when every worker stopped cleanly."""
    asyncio.run(_prepare(config))
    folder = FoldProcess(config.db, config.sqlite_cache_mib) if folds_in_a_process(config) else None
    return _Supervisor(config, count, worker_cpus(config, count), folder).run()


def worker_cpus(config: Config, count: int) -> list[int] | None:
    """The CPU of each of `count` workers, or None when they are not pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if not config.pin_workers or not 2 <= count <= len(cpus):
        return None
    return cpus[:count]


async def _prepare(config: Config) -> None:
    """Migrations and the default project, once, before any worker opens the store."""
    store = make_store(config)
    await store.open()
    try:
        await bootstrap_default_project(store)
    finally:
        await store.close()


class _Supervisor:
    def __init__(
        self, config: Config, count: int, cpus: list[int] | None, folder: FoldProcess | None
    ) -> None:
        self._config = config
        self._count = count
        self._cpus = cpus
        self._folder = folder  # the zoning fold process, on any CPU; stopped after the workers
        self._workers: dict[int, subprocess.Popen[bytes]] = {}  # slot -> process
        self._stop_requested = False
        self._stopping = False
        self._status = 0

    def run(self) -> int:
        # Signals only set a flag; the wake-up fd makes the select below return at once.
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (*_STOP_SIGNALS, signal.SIGCHLD)
        }
        wakeup_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        try:
            if self._folder is not None:
                self._folder.start()
            for slot in range(self._count):
                self._start(slot)
            while self._workers:
                if self._stop_requested and not self._stopping:
                    self._stop()
                select.select([wake_r], [], [], 1.0)
                with contextlib.suppress(BlockingIOError):
                    while wake_r.recv(4096):
                        pass
                self._reap()
                if self._folder is not None and not self._stopping:
                    self._folder.check()
        finally:
            if self._folder is not None:
                self._folder.stop()
            signal.set_wakeup_fd(wakeup_fd)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            wake_r.close()
            wake_w.close()
        return self._status

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum in _STOP_SIGNALS:
            self._stop_requested = True

    def _start(self, slot: int) -> None:
        cpu = None if self._cpus is None else self._cpus[slot]
        with _running_on(cpu):  # a child process starts with its parent's affinity
            proc = subprocess.Popen(
                [sys.executable, "-m", "server.workers", str(os.getpid())],
                stdin=subprocess.PIPE,
                start_new_session=True,
            )
        assert proc.stdin is not None
        # On stdin, not argv or the environment: a database URL may hold a password. (A
        # worker dead before reading it is reaped like any other.)
        with contextlib.suppress(BrokenPipeError), proc.stdin:
            proc.stdin.write(msgspec.json.encode(self._config))
        self._workers[slot] = proc
        where = "" if cpu is None else f" on CPU {cpu}"
        log.info("started worker %d (pid %d)%s", slot + 1, proc.pid, where)

    def _stop(self) -> None:
        self._stopping = True
        log.info("stopping: each worker finishes its requests and commits what is queued")
        for proc in self._workers.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    def _reap(self) -> None:
        for slot, proc in list(self._workers.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._workers[slot]
            what = f"worker {slot + 1} (pid {proc.pid}) {_describe(code)}"
            if self._stopping:
                # Killed by our SIGTERM before it installed its handlers: it served nothing.
                if code not in (0, -signal.SIGTERM):
                    log.error("%s while stopping", what)
                    self._status = 1
            elif code == BOOT_FAILED:
                log.error("%s: it could not start; stopping the others", what)
                self._status = 1
                self._stop()
            else:
                log.error("%s; starting a replacement", what)
                self._start(slot)


@contextlib.contextmanager
def _running_on(cpu: int | None) -> Iterator[None]:
    """The calling thread runs on `cpu` only for the block (nothing when None)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _describe(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


# -- a worker -----------------------------------------------------------------------------------


def _worker_main(supervisor_pid: int) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [worker %(process)d] %(name)s: %(message)s",
    )
    ready = False

    def on_ready(_banner: str) -> None:
        nonlocal ready
        ready = True

    try:
        config = msgspec.json.decode(sys.stdin.buffer.read(), type=Config)
        logging.getLogger().setLevel(config.log_level)
        app = create_app(config)
        app.cleanup_ctx.append(_stop_without(supervisor_pid))
        run(app, config, reuse_port=True, on_ready=on_ready)
    except Exception as exc:
        if not ready and isinstance(exc, START_ERRORS):  # the port, the database: one line
            log.error("the worker could not start: %s", exc)
        else:
            log.exception("the worker %s", "failed" if ready else "could not start")
        return 1 if ready else BOOT_FAILED
    return 0


def _stop_without(
    supervisor_pid: int,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx: stop gracefully if the supervisor is gone (say, killed with -9)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def watch() -> None:
            while os.getppid() == supervisor_pid:
                await asyncio.sleep(1.0)
            log.warning("the supervisor (pid %d) is gone; stopping", supervisor_pid)
            signal.raise_signal(signal.SIGTERM)

        async with beside(watch()):
            yield

    return ctx


if __name__ == "__main__":
    sys.exit(_worker_main(int(sys.argv[1])))
