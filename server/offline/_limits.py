"""The tunable budgets of a `tapzone classify` run."""

from __future__ import annotations

from dataclasses import dataclass

CHUNK_BYTES = 4 << 20
IDLE_ROWS = 100_000
MAX_OPEN_ROWS = 2_000_000
MAX_HELD_STROKES = 500_000
MAX_DONE_STROKES = 16_000_000
PARTITION_ROWS = 1_000_000


@dataclass(frozen=True)
class Limits:
    """Tunables of a run; the defaults keep peak memory well under 1 GiB."""

    chunk_bytes: int = CHUNK_BYTES  # bytes read per block
    idle_rows: int = IDLE_ROWS  # lines after which a stroke without up/cancel is complete
    max_open_rows: int = MAX_OPEN_ROWS  # buffered rows of open strokes
    max_held_strokes: int = MAX_HELD_STROKES  # results waiting for an earlier open stroke
    max_done_strokes: int = MAX_DONE_STROKES  # classified strokes remembered (8 bytes each)
    partition_rows: int = PARTITION_ROWS  # target rows per partition in partitioned mode
