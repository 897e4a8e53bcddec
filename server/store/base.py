"""The storage port: what the routes and the CLI need from a database, whatever it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from server.errors import ServiceError
from server.ingest import IngestResult, PreparedBatch
from server.schema import MAX_PID
from server.snapshots import ResolvedSnapshot
from server.zoning import ZoningQuery, ZoningReport

ROLE_INGEST = "ingest"
ROLE_READ = "read"


@dataclass(frozen=True, slots=True)
class Project:
    pid: int
    name: str
    ingest_key: str
    read_key: str
    batch_size: int
    tracking_enabled: bool = True

    def as_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "name": self.name,
            "ingest_key": self.ingest_key,
            "read_key": self.read_key,
            "batch_size": self.batch_size,
        }


# Seconds a client is asked to wait after a full disk: an operator has to make room first.
RETRY_WHEN_FULL_S = 60


class StoreFull(ServiceError):
    """The database's disk (or its size limit) is full: the write was rolled back whole.
    A 503 the client retries later, not a 500, and no traceback per request in the log."""

    status = 503

    def __init__(self) -> None:
        super().__init__(
            "The database has no space left; nothing of this request was stored. Retry later.",
            headers={"Retry-After": str(RETRY_WHEN_FULL_S)},
        )


class ProjectExists(Exception):
    """Raised by create_project when the pid or name is taken."""


def check_next_pid(pid: int) -> None:
    """The pid create_project picks (the highest + 1) must fit the wire format's, or no batch
    could ever name the project."""
    if pid > MAX_PID:
        raise ProjectExists(
            f"No project id is free after {MAX_PID}, the highest in use; choose a free one."
        )


class Store(Protocol):
    """A backend: SQLite (server.store.sqlite) or PostgreSQL (server.store.postgres)."""

    async def open(self) -> None: ...

    async def close(self) -> None:
        """Finish every write already queued, then release connections."""

    async def warm_up(self) -> None:
        """Load what the ingest path keeps in memory; the server calls it before serving."""

    async def ping(self) -> bool: ...

    async def create_project(
        self, name: str, *, pid: int | None = None, batch_size: int = 50
    ) -> Project: ...

    async def list_projects(self) -> list[Project]: ...

    async def save_snapshot(self, snapshot: ResolvedSnapshot, body: bytes) -> int:
        """Store a resolved snapshot and replace the target map of its (screen, av)."""
        ...

    async def ingest(self, batch: PreparedBatch) -> IngestResult:
        """Commit the batch durably (all or nothing) and count new vs duplicate events.

        Raises server.errors.Overloaded when the write queue is full; then nothing is stored.
        """
        ...

    async def ingest_group(self, batches: Sequence[PreparedBatch]) -> list[IngestResult]:
        """The bulk path (imports, benchmarks): the batches in one transaction, no queue.

        All or nothing: on an error none of them is stored and the error is raised.
        """
        ...

    async def zoning(self, query: ZoningQuery) -> ZoningReport:
        """SPEC §7 for one screen and period: exact, from whatever the backend keeps."""
        ...
