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
        fd = self._fileno()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def try_hold(self) -> bool:
        """Take the lock now if no other process holds it, and keep it until `close()`."""
        try:
            fcntl.flock(self._fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def taken(self) -> bool:
        """Whether another process (or FileLock) holds the lock now; not for a FileLock
        that holds it (its lock would be dropped). A probe: it takes the lock shared for an
        instant, so one who asks for it then waits that instant."""
        fd = self._fileno()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False

    def _fileno(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"{self.path} is not open")
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
