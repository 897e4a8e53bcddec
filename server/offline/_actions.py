"""Action names (down, move, up, cancel) as int8 codes, and the error naming a bad one."""

from __future__ import annotations

import numpy as np

from gestures import ACTION_NAMES
from server.errors import CliError
from server.offline._rows import Array

ACTION_CODES = {name.encode(): code for code, name in enumerate(ACTION_NAMES)}


def bad_action(line: int, name: str) -> CliError:
    return CliError(f"line {line}: action must be down, move, up or cancel, got {name!r}")


def action_codes(names: Array, lines: Array) -> Array:
    """The code of each name (bytes_), or a CliError naming the first unknown one."""
    codes = np.full(names.size, -1, dtype=np.int8)
    for name, code in ACTION_CODES.items():
        codes[names == name] = code
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        i = int(bad[0])
        raise bad_action(int(lines[i]), bytes(names[i]).decode("utf-8", errors="replace"))
    return codes
