"""Progress lines on stderr during a run, and the summary line at its end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import IO, Any

from gestures import GESTURE_NAMES
from server.offline._rows import Array


@dataclass
class Progress:
    """Progress lines on stderr once a run takes over a second; a summary at the end.

    ``counts`` is the run's per-gesture tally (Output.counts), read by the summary.
    """

    stream: IO[Any]
    counts: Array
    start: float = field(default_factory=time.monotonic)
    last: float = 0.0
    shown: bool = False
    strokes: int = 0

    def restart(self) -> None:
        self.strokes = 0

    def note(self, message: str) -> None:
        self._end_line()
        self.stream.write(f"tapzone classify: {message}\n")
        self.stream.flush()

    def update(self, fraction: float, strokes: int, stage: str = "") -> None:
        self.strokes = strokes
        now = time.monotonic()
        if now - self.start < 1.0 or now - self.last < 0.5:
            return
        self.last = now
        tty = getattr(self.stream, "isatty", lambda: False)()
        text = f"tapzone classify: {stage}{100 * fraction:.0f}% of the input, {strokes:,} strokes"
        self.stream.write(f"\r{text}" if tty else f"{text}\n")
        self.stream.flush()
        self.shown = tty

    def _end_line(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.shown = False

    def summary(self) -> None:
        self._end_line()
        elapsed = max(time.monotonic() - self.start, 1e-9)
        total = int(self.counts.sum())
        per_class = ", ".join(f"{n} {int(c):,}" for n, c in zip(GESTURE_NAMES, self.counts))
        self.stream.write(
            f"tapzone classify: {total:,} strokes in {elapsed:.2f} s "
            f"({total / elapsed:,.0f} strokes/s): {per_class}\n"
        )
        self.stream.flush()
