"""JSONL touch logs: one stroke per line, classified in batches as the blocks are read."""

from __future__ import annotations

import msgspec
import numpy as np

from gestures import ACTION_MOVE, ACTION_UP, classify_strokes
from server.errors import CliError
from server.offline._actions import ACTION_CODES, bad_action
from server.offline._inputs import Input
from server.offline._limits import Limits
from server.offline._output import Output, format_rows
from server.offline._progress import Progress
from server.offline._rows import offsets
from server.schema import invalid_utf8


class _JsonStroke(msgspec.Struct):
    stroke: str | int
    t: list[float]
    x: list[float]
    y: list[float]
    density: float | None = None
    action: list[str] | None = None


_JSON_STROKE = msgspec.json.Decoder(_JsonStroke)
JSONL_BATCH = 20_000


def run_jsonl(
    path: str, density: float | None, limits: Limits, out: Output, progress: Progress
) -> None:
    inp = Input(path, limits.chunk_bytes)
    done = 0
    try:
        batch: list[tuple[int, _JsonStroke]] = []
        for line, block in inp.blocks():
            for i, text in enumerate(block.split(b"\n")):
                if not text.strip():
                    continue
                try:
                    batch.append((line + i, _JSON_STROKE.decode(text)))
                except msgspec.ValidationError as e:
                    raise CliError(f"line {line + i}: {e}") from None
                except msgspec.DecodeError as e:
                    raise CliError(f"line {line + i}: not a JSON stroke: {e}") from None
                except UnicodeDecodeError:
                    message = invalid_utf8(text)
                    raise CliError(f"line {line + i}: not a JSON stroke: {message}") from None
                if len(batch) >= JSONL_BATCH:
                    done += _classify_json(batch, density, out)
                    batch = []
            progress.update(inp.done_fraction, done)
        done += _classify_json(batch, density, out)
    finally:
        inp.close()


def _classify_json(
    batch: list[tuple[int, _JsonStroke]], density: float | None, out: Output
) -> int:
    if not batch:
        return 0
    with_actions = any(s.action is not None for _, s in batch)
    dens = np.empty(len(batch), dtype=np.float64)
    lengths = np.empty(len(batch), dtype=np.int64)
    acts: list[int] = []
    for k, (line, s) in enumerate(batch):
        n = len(s.t)
        if len(s.x) != n or len(s.y) != n:
            raise CliError(
                f"line {line}: t, x and y have different lengths ({n}, {len(s.x)}, {len(s.y)})"
            )
        lengths[k] = n
        d = s.density if s.density is not None else density
        if d is None:
            raise CliError(f'line {line}: no density: add a "density" key or pass --density')
        dens[k] = d
        if with_actions:
            if s.action is None:  # no actions given: a complete touch
                acts.extend([ACTION_MOVE] * (n - 1) + [ACTION_UP] * (n > 0))
                continue
            if len(s.action) != n:
                raise CliError(f"line {line}: action has {len(s.action)} items for {n} samples")
            for a in s.action:
                code = ACTION_CODES.get(a.encode())
                if code is None:
                    raise bad_action(line, a)
                acts.append(code)
    total = int(lengths.sum())
    t = np.fromiter((v for _, s in batch for v in s.t), dtype=np.float64, count=total)
    x = np.fromiter((v for _, s in batch for v in s.x), dtype=np.float64, count=total)
    y = np.fromiter((v for _, s in batch for v in s.y), dtype=np.float64, count=total)
    actions = np.array(acts, dtype=np.int8) if with_actions else None
    res = classify_strokes(t, x, y, offsets(lengths), dens, actions)
    ids = [str(s.stroke).encode() for _, s in batch]
    out.write(format_rows(ids, res, out.counts))
    return len(batch)
