"""The output CSV: one row per classified stroke, spooled until the run succeeds."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import IO, Any

import numpy as np

from gestures import DIRECTION_NAMES, GESTURE_NAMES
from server.errors import CliError
from server.offline._rows import Array

OUTPUT_COLUMNS = "stroke,gesture,ea,duration_ms,distance_dp,velocity_dps,direction,fd,samples"


class Output:
    """The output CSV, spooled to a temporary file until the run succeeds."""

    def __init__(self, path: str | None, stdout: IO[Any]):
        self.path = path
        self.stdout = stdout
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        try:
            fd, self.spool_path = tempfile.mkstemp(
                prefix=".tapzone-classify-", suffix=".csv", dir=folder
            )
        except OSError as e:
            raise CliError(f"cannot write {path!r}: {e.strerror}") from None
        self.file = os.fdopen(fd, "wb")
        self.counts = np.zeros(len(GESTURE_NAMES), dtype=np.int64)
        self.restart()

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        if os.path.exists(self.spool_path):
            os.unlink(self.spool_path)

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.file.write(OUTPUT_COLUMNS.encode() + b"\n")
        self.counts[:] = 0

    def write(self, lines: list[bytes]) -> None:
        self.file.write(b"".join(lines))

    def commit(self) -> None:
        self.file.close()
        if self.path is not None:
            try:
                os.replace(self.spool_path, self.path)
            except OSError as e:
                raise CliError(f"cannot write {self.path!r}: {e.strerror}") from None
            return
        try:
            self.stdout.flush()
            with open(self.spool_path, "rb") as spool:
                target = getattr(self.stdout, "buffer", None)
                if target is not None:
                    shutil.copyfileobj(spool, target)
                    target.flush()
                else:  # a text stream (tests)
                    for chunk in iter(lambda: spool.read(1 << 20), b""):
                        self.stdout.write(chunk.decode("utf-8", errors="replace"))
            self.stdout.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): not an error. Point the descriptor at
            # /dev/null so the interpreter's final flush stays quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stdout.fileno())


def _csv_field(value: bytes) -> bytes:
    if b"," in value or b'"' in value or b"\n" in value or b"\r" in value:
        return b'"' + value.replace(b'"', b'""') + b'"'
    return value


_NAMES = [n.encode() for n in GESTURE_NAMES]
_DIRECTIONS = [n.encode() for n in DIRECTION_NAMES]


def _number_text(value: float) -> bytes:
    return b"" if value != value else b"%.3f" % value


def format_rows(ids: list[bytes], res: Any, counts: Array) -> list[bytes]:
    """Output rows (with newline) of classified strokes; adds their gestures to counts."""
    counts += np.bincount(res.gesture, minlength=counts.size)
    rows = []
    for sid, g, ea, dur, dist, vel, fd, n in zip(
        ids, res.gesture.tolist(), res.ea.tolist(), res.duration_ms.tolist(),
        res.distance_dp.tolist(), res.velocity_dps.tolist(), res.fd.tolist(),
        res.samples.tolist(),
    ):
        rows.append(b",".join((
            _csv_field(sid), _NAMES[g], b"%d" % ea if ea >= 0 else b"",
            _number_text(dur), _number_text(dist), _number_text(vel),
            _DIRECTIONS[fd], b"%d" % fd if fd else b"", b"%d\n" % n,
        )))
    return rows
