"""`tapzone serve` as a real subprocess: start it, load it from threads, read what it stored."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from databases import TestDatabase

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
        return int(resp.status)


def start_server(
    database: TestDatabase, port: int, log: Path, *, workers: int = 1
) -> subprocess.Popen:
    """`tapzone serve` on `database`, answering /healthz; its stderr is appended to `log`."""
    with log.open("a") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", *database.cli_options,
             "--port", str(port), "--workers", str(workers)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            healthz(port)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not start: " + log.read_text())


@contextlib.contextmanager
def serving(
    database: TestDatabase, port: int, log: Path, *, workers: int = 1
) -> Iterator[subprocess.Popen]:
    """`start_server`, and SIGTERM to it on the way out if it still runs. A server that
    has not stopped 60 s later is killed with its children (workers, fold process), so a
    failed or hung test leaves no process behind."""
    proc = start_server(database, port, log, workers=workers)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for pid in [*children(proc.pid), proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.wait()
                raise


# What the command line of a server's child process names: a worker, the zoning fold process.
WORKER = "server.workers"
FOLD_PROCESS = "server.store.sqlite_fold_process"


def children(pid: int, running: str | None = None) -> list[int]:
    """The pids of the live child processes of `pid` (from /proc); with `running`, those
    whose command line has that argument (WORKER, FOLD_PROCESS)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            listed = (task / "children").read_text()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        for child in map(int, listed.split()):
            try:
                args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):  # it ended meanwhile
                continue
            if running is None or running.encode() in args:
                found.append(child)
    return sorted(found)


def ingest_key(database: TestDatabase, pid: int = 1) -> str:
    ((key,),) = database.query("SELECT ingest_key FROM projects WHERE pid = ?", pid)
    return str(key)


def zoning_screenviews(port: int, database: TestDatabase, screen: str = "S") -> int:
    """GET /v1/projects/1/zoning for `screen` with project 1's read key: its screenviews."""
    ((key,),) = database.query("SELECT read_key FROM projects WHERE pid = 1")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/projects/1/zoning?screen={screen}",
        headers={"Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(json.loads(resp.read())["screenviews"])


def batch(client: int, seq: int, now: int) -> dict:
    """50 taps whose euids name the batch: `c{client}-b{seq}-e{i}`."""
    vo = {"sv": "1", "sb": 1, "av": "1.0", "af": "release", "ab": 1}
    events = [
        {"ea": 6, "euid": f"c{client}-b{seq}-e{i}", "t": now, "upt": 1, "scn": 1, "c": 1,
         "o": 0, "vo": vo, "sn": 1, "url": "app-and://x?title=S", "tvp": "[root]>b>",
         "tvid": "b", "ur": True}
        for i in range(50)
    ]  # fmt: skip
    return {"pid": 1, "uid": f"user{client}", "dt": 4, "os": "14", "l": "en", "tz": "UTC",
            "now": now, "to": {"an": "a", "st": "s", "sf": "f"}, "r": {"d": 2.0}, "pl": events}


def post_batch(port: int, key: str, client: int, seq: int) -> dict:
    body = json.dumps(batch(client, seq, int(time.time() * 1000))).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/batch", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as resp:
        return dict(json.loads(resp.read()))


class Load:
    """Client threads posting distinct batches, one connection per request, until stopped.

    A client stops at its first failed request, or with `keep_going` skips to its next batch.
    """

    def __init__(self, port: int, key: str, clients: int = 6, *, keep_going: bool = False):
        self.acked: list[tuple[int, int]] = []
        self.sent: list[tuple[int, int]] = []
        self._port, self._key, self._keep_going = port, key, keep_going
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(clients)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, acked: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.acked) < acked:
            assert time.monotonic() < deadline, f"only {len(self.acked)} batches acknowledged"
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _client(self, n: int) -> None:
        seq = 0
        while not self._stop.is_set():
            with self._lock:
                self.sent.append((n, seq))
            try:
                reply = post_batch(self._port, self._key, n, seq)
                assert reply["accepted"] == 50, reply
                with self._lock:
                    self.acked.append((n, seq))
            except (OSError, http.client.HTTPException):
                if not self._keep_going:
                    return  # the server is gone or going
                time.sleep(0.01)
            seq += 1


def stored_batches(database: TestDatabase) -> dict[tuple[int, int], int]:
    """Per stored batch `(client, seq)`, its number of stored events."""
    rows = database.query("SELECT euid FROM events")
    per_batch: dict[tuple[int, int], int] = {}
    for (euid,) in rows:
        c, b, _ = euid.split("-")
        key = (int(c[1:]), int(b[1:]))
        per_batch[key] = per_batch.get(key, 0) + 1
    return per_batch


@dataclass
class Outcome:
    code: int | None  # the server's exit status; None when it was killed
    acked: set[tuple[int, int]]
    sent: set[tuple[int, int]]
    stored: dict[tuple[int, int], int]  # read after a restart
    workers: list[int]  # the server's workers just before the signal
    children: list[int]  # all its child processes then (the workers, the fold process)


def run_load_then_signal(
    database: TestDatabase, log: Path, sig: int, *, workers: int = 1
) -> Outcome:
    """Six clients post 50-event batches until `sig` stops the server after 60 replies."""
    port = free_port()
    with (
        serving(database, port, log, workers=workers) as proc,
        Load(port, ingest_key(database)) as load,
    ):
        load.wait_for(60)
        workers_before = children(proc.pid, WORKER)
        children_before = children(proc.pid)
        os.kill(proc.pid, sig)
        code = proc.wait(timeout=60)
    with serving(database, port, log):  # recovery (SQLite: from the WAL) on restart
        stored = stored_batches(database)
    return Outcome(
        None if sig == signal.SIGKILL else code, set(load.acked), set(load.sent), stored,
        workers_before, children_before,
    )  # fmt: skip
