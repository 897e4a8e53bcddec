"""Helpers for benchmarks: start `tapzone serve` on a free port and wait for it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAPZONE = [sys.executable, "-m", "server.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_args(db: str, database_url: str | None = None) -> list[str]:
    """The store options of every tapzone command: a SQLite file, or a PostgreSQL URL."""
    return ["--db", db] + (["--database-url", database_url] if database_url else [])


def add_project(
    db: str,
    name: str = "bench",
    env: dict[str, str] | None = None,
    *,
    database_url: str | None = None,
) -> dict:
    out = subprocess.run(
        [*TAPZONE, "project", "add", name, *store_args(db, database_url)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    ).stdout
    return json.loads(out)


@contextlib.contextmanager
def running_server(
    db: str,
    *,
    env: dict[str, str] | None = None,
    workers: int = 1,
    database_url: str | None = None,
) -> Iterator[str]:
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [*TAPZONE, "serve", *store_args(db, database_url), "--port", str(port),
         "--workers", str(workers)],  # fmt: skip
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)
