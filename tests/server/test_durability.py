"""kill -9 during ingest: every acknowledged event survives, no batch is half stored."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path, port: int) -> subprocess.Popen:
    log = db.with_suffix(".log")
    with log.open("a") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--db", str(db), "--port", str(port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not start: " + log.read_text())


def batch(client: int, seq: int, now: int) -> dict:
    vo = {"sv": "1", "sb": 1, "av": "1.0", "af": "release", "ab": 1}
    events = [
        {"ea": 6, "euid": f"c{client}-b{seq}-e{i}", "t": now, "upt": 1, "scn": 1, "c": 1,
         "o": 0, "vo": vo, "sn": 1, "url": "app-and://x?title=S", "tvp": "[root]>b>",
         "tvid": "b", "ur": True}
        for i in range(50)
    ]  # fmt: skip
    return {"pid": 1, "uid": f"user{client}", "dt": 4, "os": "14", "l": "en", "tz": "UTC",
            "now": now, "to": {"an": "a", "st": "s", "sf": "f"}, "r": {"d": 2.0}, "pl": events}


def run_load_then_signal(db: Path, sig: int) -> tuple[int | None, set, set, dict]:
    """Six clients post 50-event batches until `sig` stops the server after 60 replies.

    Returns the server's exit code (None when killed), the acknowledged and the sent batch
    keys, and per stored batch key its number of stored events (after a restart).
    """
    port = free_port()
    proc = start_server(db, port)
    with sqlite3.connect(db) as conn:
        (key,) = conn.execute("SELECT ingest_key FROM projects WHERE pid = 1").fetchone()
    acked: list[tuple[int, int]] = []
    sent: list[tuple[int, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        seq = 0
        while not stop.is_set():
            body = json.dumps(batch(n, seq, int(time.time() * 1000))).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/batch", data=body, method="POST",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
            )  # fmt: skip
            with lock:
                sent.append((n, seq))
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    reply = json.loads(resp.read())
                assert reply["accepted"] == 50
                with lock:
                    acked.append((n, seq))
            except (OSError, urllib.error.URLError):
                return  # the server is gone or going
            seq += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    while len(acked) < 60:
        time.sleep(0.01)
    os.kill(proc.pid, sig)
    code = proc.wait(timeout=60)
    stop.set()
    for t in threads:
        t.join()

    proc = start_server(db, port)  # recovery from the WAL on restart
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT euid FROM events").fetchall()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    per_batch: dict[tuple[int, int], int] = {}
    for (euid,) in rows:
        c, b, _ = euid.split("-")
        key_ = (int(c[1:]), int(b[1:]))
        per_batch[key_] = per_batch.get(key_, 0) + 1
    return (None if sig == signal.SIGKILL else code), set(acked), set(sent), per_batch


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    _, acked, sent, per_batch = run_load_then_signal(tmp_path / "tapzone.db", signal.SIGKILL)
    assert all(count == 50 for count in per_batch.values()), "a batch was half stored"
    assert acked <= set(per_batch), "an acknowledged batch was lost"
    assert set(per_batch) <= sent
    assert len(acked) >= 60


@pytest.mark.slow
def test_sigterm_shuts_down_cleanly_after_committing(tmp_path: Path) -> None:
    code, acked, sent, per_batch = run_load_then_signal(tmp_path / "tapzone.db", signal.SIGTERM)
    assert code == 0
    assert all(count == 50 for count in per_batch.values()), "a batch was half stored"
    assert acked <= set(per_batch), "an acknowledged batch was lost"
    assert set(per_batch) <= sent
