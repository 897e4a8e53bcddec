"""`run_classify`: check the arguments, pick the reader, and fall back to partitioned mode."""

from __future__ import annotations

import math
import os
import sys
from typing import IO, Any

from server.errors import CliError
from server.offline._inputs import detect_format
from server.offline._jsonl import run_jsonl
from server.offline._limits import Limits
from server.offline._output import Output
from server.offline._partition import run_csv_partitioned
from server.offline._progress import Progress
from server.offline._stream import Restart, run_csv_streaming


def run_classify(
    input_path: str,
    output_path: str | None,
    density: float | None,
    fmt: str | None,
    *,
    stdout: IO[Any] | None = None,
    stderr: IO[Any] | None = None,
    limits: Limits | None = None,
) -> int:
    """Classify every stroke of a touch log; returns the exit status (0).

    Raises CliError with one readable sentence for a user error: missing or unreadable
    input, unknown format, no density, a malformed header or row (naming its line).
    """
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    limits = limits or Limits()
    if not os.path.exists(input_path):
        raise CliError(f"input file {input_path!r} does not exist")
    fmt = detect_format(input_path, fmt)
    if density is not None and not (math.isfinite(density) and density > 0):
        raise CliError(f"--density must be a positive number of px per dp, got {density}")
    with Output(output_path, stdout) as out:
        progress = Progress(stderr, out.counts)
        if fmt == "jsonl":
            run_jsonl(input_path, density, limits, out, progress)
        else:
            try:
                run_csv_streaming(input_path, density, limits, out, progress)
            except Restart as restart:
                progress.note(f"{restart}; classifying again in partitioned mode")
                out.restart()
                progress.restart()
                run_csv_partitioned(input_path, density, limits, out, progress)
        out.commit()
        progress.summary()
    return 0
