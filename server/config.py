"""Every setting of the service, once, with its default, its help and its TAPZONE_* variable."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MIB = 1024 * 1024


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class Config:
    host: str = _setting("127.0.0.1", "Address the HTTP server listens on.")
    port: int = _setting(8080, "TCP port the HTTP server listens on.")
    db: str = _setting("./data/tapzone.db", "Path of the SQLite database file.")
    database_url: str | None = _setting(
        None, "postgresql://… URL; when set, PostgreSQL is used instead of SQLite."
    )
    workers: int = _setting(
        0,
        "Server processes sharing the port (SO_REUSEPORT); 0 means one per CPU core "
        "(os.cpu_count()).",
    )
    pin_workers: bool = _setting(
        True,
        "With 2 or more workers and no more workers than usable CPUs, run worker i on CPU i "
        "only (its threads then hand work to each other on one core).",
    )
    fold_process: bool = _setting(
        True,
        "With SQLite, `serve` folds stored events into the zoning tables in a process of its "
        "own; off: on a thread of each server process.",
    )
    max_body_bytes: int = _setting(1 * MIB, "Largest request body as sent (compressed).")
    max_inflated_bytes: int = _setting(8 * MIB, "Largest request body after gzip inflation.")
    max_batch_events: int = _setting(1000, "Most events in one batch (`pl`).")
    max_strokes: int = _setting(1000, "Most strokes in one POST /v1/touches.")
    write_queue_events: int = _setting(
        100_000, "Events waiting for the writer before new batches get 503."
    )
    group_commit_events: int = _setting(20_000, "Most events committed in one transaction.")
    retry_after_s: int = _setting(1, "Retry-After seconds sent with a 503.")
    clock_skew_limit_ms: int = _setting(
        23 * 3600 * 1000, "Corrected times further in the future than this are clamped."
    )
    max_snapshot_depth: int = _setting(256, "Deepest view hierarchy accepted.")
    max_snapshot_nodes: int = _setting(50_000, "Most nodes in one view hierarchy.")
    sqlite_cache_mib: int = _setting(256, "SQLite page cache per connection, MiB.")
    access_log: bool = _setting(False, "Log every request (costs throughput).")
    log_level: str = _setting("INFO", "Logging level.")

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(
                f"TAPZONE_WORKERS must be 0 (one per CPU core) or more, got {self.workers}."
            )

    @property
    def worker_count(self) -> int:
        """How many server processes to run: `workers`, or one per CPU core when it is 0."""
        return self.workers or os.cpu_count() or 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Defaults, then TAPZONE_<NAME> variables, then explicit overrides (None is ignored)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f"TAPZONE_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str]]:
        """(variable, default, help) for every setting — the README table comes from this."""
        return [
            (f"TAPZONE_{f.name.upper()}", f.default, f.metadata["help"])
            for f in dataclasses.fields(cls)
        ]


def _parse(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    name = f"TAPZONE_{f.name.upper()}"
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {raw!r}.") from None
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name} must be true or false, got {raw!r}.")
    return raw or None if "None" in kind else raw
