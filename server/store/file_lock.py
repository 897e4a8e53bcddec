"""An exclusive flock on a sidecar file: the writers of one SQLite file, across processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


class FileLock:
    """`held()` blocks until no other process holds the lock, and holds it for the block.

    The kernel releases it when its process dies, even by kill -9. It excludes processes
    and separate FileLocks, not threads sharing one FileLock (a flock belongs to the open
    file): each user calls it from one thread.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._fd is None:
            raise RuntimeError(f"{self.path} is not open")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
