"""`tapzone classify`: stream a touch log (CSV or JSONL, maybe gzipped) through the classifier.

The work is I/O: read the input in blocks, group the rows of each stroke, hand complete
strokes to gestures.classify_strokes, write one CSV row per stroke in order of first
appearance. Memory stays bounded at any input size:

- JSONL holds one stroke per line, so each block is classified as it is read.
- CSV rows of different strokes may interleave. A stroke is *complete* once its ``up`` or
  ``cancel`` row has been read, or once ``idle_rows`` lines have gone by without a row of
  it (and at the end of the input). Complete strokes are classified; only open strokes
  stay buffered, and results wait only for earlier strokes that are still open.
- If a row turns up for a stroke that was already classified, or the buffers outgrow
  their budget, the run restarts in *partitioned* mode: rows are hash-partitioned by
  stroke into temporary files, each partition is grouped in memory, and the per-partition
  results are merged back into order of first appearance. Strokes are never split.

Output goes to a temporary file first (next to ``--output``, else in the temp directory)
and reaches its destination only when the run succeeds, so a restart or an error never
leaves half an output behind.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import math
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, NamedTuple

import msgspec
import numpy as np

from gestures import (
    ACTION_CANCEL,
    ACTION_MOVE,
    ACTION_NAMES,
    ACTION_UP,
    DIRECTION_NAMES,
    GESTURE_NAMES,
    classify_strokes,
)
from server.errors import CliError

OUTPUT_COLUMNS = "stroke,gesture,ea,duration_ms,distance_dp,velocity_dps,direction,fd,samples"
REQUIRED_COLUMNS = ("stroke", "t", "x", "y")
ACTION_CODES = {name.encode(): code for code, name in enumerate(ACTION_NAMES)}

CHUNK_BYTES = 4 << 20
IDLE_ROWS = 100_000
MAX_OPEN_ROWS = 2_000_000
MAX_HELD_STROKES = 500_000
MAX_DONE_STROKES = 16_000_000
PARTITION_ROWS = 1_000_000

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Limits:
    """Tunables of a run; the defaults keep peak memory well under 1 GiB."""

    chunk_bytes: int = CHUNK_BYTES  # bytes read per block
    idle_rows: int = IDLE_ROWS  # lines after which a stroke without up/cancel is complete
    max_open_rows: int = MAX_OPEN_ROWS  # buffered rows of open strokes
    max_held_strokes: int = MAX_HELD_STROKES  # results waiting for an earlier open stroke
    max_done_strokes: int = MAX_DONE_STROKES  # classified strokes remembered (8 bytes each)
    partition_rows: int = PARTITION_ROWS  # target rows per partition in partitioned mode


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
    fmt = _detect_format(input_path, fmt)
    if density is not None and not (math.isfinite(density) and density > 0):
        raise CliError(f"--density must be a positive number of px per dp, got {density}")
    with _Output(output_path, stdout) as out:
        progress = _Progress(stderr)
        if fmt == "jsonl":
            _run_jsonl(input_path, density, limits, out, progress)
        else:
            try:
                _run_csv_streaming(input_path, density, limits, out, progress)
            except _Restart as restart:
                progress.note(f"{restart}; classifying again in partitioned mode")
                out.restart()
                progress.restart()
                _run_csv_partitioned(input_path, density, limits, out, progress)
        out.commit()
        progress.summary()
    return 0


# --- input ------------------------------------------------------------------------------


def _detect_format(path: str, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise CliError(f"unknown format {fmt!r}: use csv or jsonl")
        return fmt
    name = path.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise CliError(
        f"cannot tell the format of {path!r}: name it .csv or .jsonl (optionally .gz) "
        "or pass --format csv|jsonl"
    )


class _Input:
    """The input file as blocks of whole lines; gzip is recognised by its magic bytes."""

    def __init__(self, path: str, chunk_bytes: int):
        self.path = path
        self.chunk_bytes = chunk_bytes
        try:
            self.raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise CliError(f"input file {path!r} does not exist") from None
        except IsADirectoryError:
            raise CliError(f"input {path!r} is a directory, not a file") from None
        except OSError as e:
            raise CliError(f"cannot read {path!r}: {e.strerror}") from None
        self.size = os.fstat(self.raw.fileno()).st_size
        self.stream: IO[bytes] = self.raw
        if self.raw.read(2) == b"\x1f\x8b":
            self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb")  # type: ignore[assignment]
        self.raw.seek(0)

    def close(self) -> None:
        self.stream.close()
        self.raw.close()

    @property
    def done_fraction(self) -> float:
        return self.raw.tell() / self.size if self.size else 1.0

    def _read(self, n: int) -> bytes:
        try:
            return self.stream.read(n)
        except (OSError, EOFError, zlib.error) as e:
            raise CliError(f"cannot read {self.path!r}: {e}") from None

    def blocks(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(first_line_number, block)``; a block ends with a newline (but maybe
        the last one) and holds at least one line."""
        line = 1
        rest = b""
        while True:
            data = self._read(self.chunk_bytes)
            if not data:
                if rest:
                    yield line, rest
                return
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
            yield line, block
            line += block.count(b"\n")


# --- CSV parsing ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where the columns we read sit in a row of the CSV."""

    n_fields: int
    stroke: int
    t: int
    x: int
    y: int
    density: int | None
    action: int | None


class _Rows(NamedTuple):
    """Parsed rows of a block (or of a partition), in file order."""

    ids: Array  # bytes_ (S) per row
    t: Array
    x: Array
    y: Array
    density: Array | None
    action: Array | None  # int8 codes
    line: Array  # int64 line number of each row

    @property
    def size(self) -> int:
        return int(self.t.size)

    def take(self, idx: Any) -> _Rows:
        return _Rows(*[None if a is None else a[idx] for a in self])  # type: ignore[arg-type]


def _concat_rows(parts: list[_Rows]) -> _Rows:
    if len(parts) == 1:
        return parts[0]
    width = max(p.ids.dtype.itemsize for p in parts)
    columns: list[Any] = []
    for i, column in enumerate(zip(*parts)):
        if column[0] is None:
            columns.append(None)
        elif i == 0:
            columns.append(np.concatenate([c.astype(f"S{width}") for c in column]))
        else:
            columns.append(np.concatenate(column))
    return _Rows(*columns)


def _header(inp: _Input) -> tuple[_Layout, int]:
    """Read and check the header line; returns the layout and the bytes it took."""
    data = b""
    while b"\n" not in data:
        more = inp._read(1 << 16)
        if not more:
            break
        data += more
    line = data.split(b"\n", 1)[0]
    if not line.strip():
        raise CliError(f"{inp.path!r} has no header: expected a CSV header with stroke,t,x,y")
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r")
    names = [n.strip() for n in next(csv.reader([text]))]
    missing = [n for n in REQUIRED_COLUMNS if n not in names]
    if missing:
        raise CliError(
            f"the CSV header lacks column {', '.join(missing)} "
            f"(it needs stroke,t,x,y; found {','.join(names)})"
        )
    known = (*REQUIRED_COLUMNS, "density", "action")
    dupes = sorted({n for n in names if n in known and names.count(n) > 1})
    if dupes:
        raise CliError(f"the CSV header has column {dupes[0]!r} more than once")
    index = {n: i for i, n in enumerate(names)}
    layout = _Layout(
        len(names), index["stroke"], index["t"], index["x"], index["y"],
        index.get("density"), index.get("action"),
    )
    return layout, len(line) + 1


def _csv_blocks(inp: _Input, layout: _Layout, header_bytes: int) -> Iterator[tuple[_Rows, int]]:
    """Parsed blocks of data rows and the line number after each block."""
    first = True
    for line, block in inp.blocks():
        if first:  # the header is the start of the first block
            block = block[header_bytes:]
            line += 1
            first = False
            if not block:
                continue
        rows = _parse_fast(block, line, layout)
        if rows is None:
            rows = _parse_slow(block, line, layout)
        _check_rows(rows)
        yield rows, line + block.count(b"\n")


def _parse_fast(block: bytes, line: int, layout: _Layout) -> _Rows | None:
    """numpy's C parser on a block without quotes or blank lines; None: use _parse_slow."""
    if b'"' in block:
        return None
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
    if not block.endswith(b"\n"):
        block += b"\n"
    raw = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    lengths = np.diff(ends, prepend=-1) - 1
    if (lengths == 0).any():
        return None
    commas = np.searchsorted(np.flatnonzero(raw == ord(",")), ends)
    if (np.diff(commas, prepend=0) != layout.n_fields - 1).any():
        return None  # _parse_slow skips blank lines and names a malformed one
    width = max(1, int(lengths.max()))
    names = ["stroke", "t", "x", "y"]
    dtype: list[tuple[str, str]] = [("stroke", f"S{width}"), ("t", "f8"), ("x", "f8"), ("y", "f8")]
    cols = [layout.stroke, layout.t, layout.x, layout.y]
    if layout.density is not None:
        names.append("density")
        dtype.append(("density", "f8"))
        cols.append(layout.density)
    if layout.action is not None:
        names.append("action")
        dtype.append(("action", f"S{width}"))
        cols.append(layout.action)
    try:
        data = np.loadtxt(
            io.BytesIO(block), delimiter=",", dtype=dtype, usecols=cols, comments=None,
            quotechar=None, ndmin=1,
        )
    except ValueError:
        return None  # _parse_slow names the line and the value
    if data.size != ends.size:
        return None
    ids = data["stroke"]
    return _Rows(
        ids.astype(f"S{max(1, int(np.char.str_len(ids).max()))}"),
        np.ascontiguousarray(data["t"]),
        np.ascontiguousarray(data["x"]),
        np.ascontiguousarray(data["y"]),
        np.ascontiguousarray(data["density"]) if layout.density is not None else None,
        _action_codes(data["action"], np.arange(line, line + ends.size))
        if layout.action is not None else None,
        np.arange(line, line + ends.size, dtype=np.int64),
    )


def _parse_slow(block: bytes, line: int, layout: _Layout) -> _Rows:
    """The csv module, row by row: quotes, blank lines and precise error messages."""
    lines = block.decode("latin-1").split("\n")  # latin-1 round-trips every byte
    if lines and lines[-1] == "":
        lines.pop()
    lines = [text[:-1] if text.endswith("\r") else text for text in lines]
    for i, text in enumerate(lines):
        if text.count('"') % 2:
            raise CliError(
                f"line {line + i}: unbalanced quotes (a quoted field may not span lines)"
            )
    reader = csv.reader(lines, strict=True)
    ids: list[bytes] = []
    t: list[float] = []
    x: list[float] = []
    y: list[float] = []
    dens: list[float] = []
    acts: list[bytes] = []
    numbers: list[int] = []
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise CliError(f"line {line + reader.line_num - 1}: {e}") from None
        number = line + reader.line_num - 1
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            continue  # a blank line
        if len(rec) != layout.n_fields:
            raise CliError(f"line {number}: expected {layout.n_fields} fields, found {len(rec)}")
        ids.append(rec[layout.stroke].encode("latin-1"))
        for name, col, out in (("t", layout.t, t), ("x", layout.x, x), ("y", layout.y, y),
                               ("density", layout.density, dens)):
            if col is not None:
                out.append(_number(rec[col], name, number))
        if layout.action is not None:
            acts.append(rec[layout.action].encode("latin-1"))
        numbers.append(number)
    line_arr = np.array(numbers, dtype=np.int64)
    return _Rows(
        np.array(ids, dtype=bytes) if ids else np.empty(0, dtype="S1"),
        np.array(t, dtype=np.float64),
        np.array(x, dtype=np.float64),
        np.array(y, dtype=np.float64),
        np.array(dens, dtype=np.float64) if layout.density is not None else None,
        _action_codes(np.array(acts, dtype=bytes) if acts else np.empty(0, dtype="S1"), line_arr)
        if layout.action is not None else None,
        line_arr,
    )


def _number(text: str, name: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        shown = text.encode("latin-1").decode("utf-8", errors="replace")
        raise CliError(f"line {line}: {name} is not a number: {shown!r}") from None


def _action_codes(names: Array, lines: Array) -> Array:
    codes = np.full(names.size, -1, dtype=np.int8)
    for name, code in ACTION_CODES.items():
        codes[names == name] = code
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        i = int(bad[0])
        shown = bytes(names[i]).decode("utf-8", errors="replace")
        raise CliError(
            f"line {int(lines[i])}: action must be down, move, up or cancel, got {shown!r}"
        )
    return codes


def _check_rows(rows: _Rows) -> None:
    empty = np.flatnonzero(rows.ids == b"")
    if empty.size:
        raise CliError(f"line {int(rows.line[empty[0]])}: the stroke id is empty")


# --- output -----------------------------------------------------------------------------


class _Output:
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

    def __enter__(self) -> _Output:
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


def _format(ids: list[bytes], res: Any, counts: Array) -> list[bytes]:
    """Output rows (with newline) of classified strokes."""
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


# --- progress ---------------------------------------------------------------------------


@dataclass
class _Progress:
    """Progress lines on stderr once a run takes over a second; a summary at the end."""

    stream: IO[Any]
    start: float = field(default_factory=time.monotonic)
    last: float = 0.0
    shown: bool = False
    strokes: int = 0
    counts: Array | None = None

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
        assert self.counts is not None
        total = int(self.counts.sum())
        per_class = ", ".join(f"{n} {int(c):,}" for n, c in zip(GESTURE_NAMES, self.counts))
        self.stream.write(
            f"tapzone classify: {total:,} strokes in {elapsed:.2f} s "
            f"({total / elapsed:,.0f} strokes/s): {per_class}\n"
        )
        self.stream.flush()


# --- JSONL ------------------------------------------------------------------------------


class _JsonStroke(msgspec.Struct):
    stroke: str | int
    t: list[float]
    x: list[float]
    y: list[float]
    density: float | None = None
    action: list[str] | None = None


_JSON_STROKE = msgspec.json.Decoder(_JsonStroke)
JSONL_BATCH = 20_000


def _run_jsonl(
    path: str, density: float | None, limits: Limits, out: _Output, progress: _Progress
) -> None:
    progress.counts = out.counts
    inp = _Input(path, limits.chunk_bytes)
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
                if len(batch) >= JSONL_BATCH:
                    done += _classify_json(batch, density, out)
                    batch = []
            progress.update(inp.done_fraction, done)
        done += _classify_json(batch, density, out)
    finally:
        inp.close()


def _classify_json(
    batch: list[tuple[int, _JsonStroke]], density: float | None, out: _Output
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
                    raise CliError(
                        f"line {line}: action must be down, move, up or cancel, got {a!r}"
                    )
                acts.append(code)
    total = int(lengths.sum())
    offsets = np.zeros(len(batch) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    t = np.fromiter((v for _, s in batch for v in s.t), dtype=np.float64, count=total)
    x = np.fromiter((v for _, s in batch for v in s.x), dtype=np.float64, count=total)
    y = np.fromiter((v for _, s in batch for v in s.y), dtype=np.float64, count=total)
    actions = np.array(acts, dtype=np.int8) if with_actions else None
    res = classify_strokes(t, x, y, offsets, dens, actions)
    ids = [str(s.stroke).encode() for _, s in batch]
    out.write(_format(ids, res, out.counts))
    return len(batch)


# --- CSV, streaming ---------------------------------------------------------------------


class _Restart(Exception):
    """Streaming cannot finish correctly within its budget: switch to partitioned mode."""


class _HashSet:
    """A set of 64-bit hashes as a few sorted arrays (sizes doubling, merged like a
    binary counter): 8 bytes per member, vectorised membership tests."""

    def __init__(self) -> None:
        self.runs: list[Array] = []
        self.size = 0

    def add(self, hashes: Array) -> None:
        run = np.sort(hashes)
        self.size += run.size
        while self.runs and self.runs[-1].size <= run.size:
            run = np.sort(np.concatenate([self.runs.pop(), run]), kind="stable")
        self.runs.append(run)

    def contains(self, hashes: Array) -> Array:
        found = np.zeros(hashes.size, dtype=bool)
        for run in self.runs:
            pos = np.minimum(np.searchsorted(run, hashes), run.size - 1)
            found |= run[pos] == hashes
        return found


def _hashes(ids: list[bytes], salt: int = 0) -> Array:
    values = [hash((salt, i)) if salt else hash(i) for i in ids]
    return np.array(values, dtype=np.int64).view(np.uint64)


def _runs(ids: Array) -> tuple[Array, Array]:
    """Start and length of each run of equal consecutive ids."""
    if ids.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    return starts, np.diff(starts, append=ids.size)


def _density_per_stroke(
    rows: _Rows, starts: Array, lengths: Array, density: float | None, ids: list[bytes]
) -> Array:
    """Density of each stroke: its first row's value (rows must agree), else --density."""
    if rows.density is None:
        if density is None:
            raise CliError("no density: add a density column or pass --density")
        return np.full(starts.size, density, dtype=np.float64)
    first = rows.density[starts]
    expected = np.repeat(first, lengths)
    differs = (rows.density != expected) & ~(np.isnan(rows.density) & np.isnan(expected))
    bad = np.flatnonzero(differs)
    if bad.size:
        i = int(bad[0])
        k = int(np.searchsorted(starts, i, side="right")) - 1
        sid = ids[k].decode("utf-8", errors="replace")
        raise CliError(
            f"line {int(rows.line[i])}: stroke {sid!r} has density {rows.density[i]:g} "
            f"but its first row has {first[k]:g}"
        )
    return first


def _classify_grouped(
    rows: _Rows, starts: Array, lengths: Array, ids: list[bytes], density: float | None,
    out_counts: Array,
) -> list[bytes]:
    """Classify strokes whose rows are grouped (stroke k is rows starts[k]:+lengths[k])."""
    offsets = np.zeros(starts.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    dens = _density_per_stroke(rows, starts, lengths, density, ids)
    res = classify_strokes(rows.t, rows.x, rows.y, offsets, dens, rows.action)
    return _format(ids, res, out_counts)


class _Streamer:
    """Groups CSV rows into strokes as they stream by; see the module docstring."""

    def __init__(self, density: float | None, limits: Limits, out: _Output):
        self.density = density
        self.limits = limits
        self.out = out
        self.open: dict[bytes, int] = {}  # stroke id -> sequence number (first appearance)
        self.ids: dict[int, bytes] = {}  # and back
        self.next_seq = 0
        self.pending: _Rows | None = None  # rows of open strokes
        self.pending_seq = np.empty(0, dtype=np.int64)
        self.held: dict[int, bytes] = {}  # results waiting for an earlier stroke
        self.next_out = 0
        self.done = _HashSet()

    def feed(self, rows: _Rows, line_after: int, final: bool) -> None:
        seq = self._sequence(rows)
        if self.pending is not None and self.pending.size:
            rows = _concat_rows([self.pending, rows])
            seq = np.concatenate([self.pending_seq, seq])
        if seq.size == 0:
            return
        order = np.argsort(seq, kind="stable")
        rows, seq = rows.take(order), seq[order]
        starts = np.flatnonzero(np.concatenate([[True], seq[1:] != seq[:-1]]))
        lengths = np.diff(starts, append=seq.size)
        if final:
            complete = np.ones(starts.size, dtype=bool)
        else:
            last_line = rows.line[starts + lengths - 1]
            complete = last_line < line_after - self.limits.idle_rows
            if rows.action is not None:
                closing = (rows.action == ACTION_UP) | (rows.action == ACTION_CANCEL)
                complete |= np.logical_or.reduceat(closing, starts)
        keep = np.repeat(complete, lengths)
        self.pending = rows.take(~keep)
        self.pending_seq = seq[~keep]
        if self.pending.size > self.limits.max_open_rows:
            raise _Restart(
                f"more than {self.limits.max_open_rows:,} rows belong to strokes still open "
                f"at line {line_after - 1}"
            )
        if complete.any():
            self._finish(rows.take(keep), seq[starts[complete]], lengths[complete])

    def _sequence(self, rows: _Rows) -> Array:
        """Sequence number of each row's stroke, new strokes numbered in order."""
        heads, lengths = _runs(rows.ids)
        seqs = np.empty(heads.size, dtype=np.int64)
        new_ids: list[bytes] = []
        new_at: list[int] = []
        for k, sid in enumerate(rows.ids[heads].tolist()):
            s = self.open.get(sid)
            if s is None:
                s = self.open[sid] = self.next_seq
                self.ids[s] = sid
                self.next_seq += 1
                new_ids.append(sid)
                new_at.append(k)
            seqs[k] = s
        if new_ids and self.done.size:
            late = np.flatnonzero(self.done.contains(_hashes(new_ids)))
            if late.size:
                k = new_at[int(late[0])]
                sid = new_ids[int(late[0])].decode("utf-8", errors="replace")
                raise _Restart(
                    f"stroke {sid!r} reappears on line {int(rows.line[heads[k]])} "
                    "after it was classified"
                )
        return np.repeat(seqs, lengths)

    def _finish(self, rows: _Rows, seqs: Array, lengths: Array) -> None:
        starts = np.zeros(lengths.size, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        ids = [self.ids.pop(s) for s in seqs.tolist()]
        lines = _classify_grouped(rows, starts, lengths, ids, self.density, self.out.counts)
        for sid in ids:
            del self.open[sid]
        if self.done.size + len(ids) > self.limits.max_done_strokes:
            raise _Restart(f"more than {self.limits.max_done_strokes:,} strokes to remember")
        self.done.add(_hashes(ids))
        self.held.update(zip(seqs.tolist(), lines))
        ready = []
        while self.next_out in self.held:
            ready.append(self.held.pop(self.next_out))
            self.next_out += 1
        self.out.write(ready)
        if len(self.held) > self.limits.max_held_strokes:
            raise _Restart(
                f"more than {self.limits.max_held_strokes:,} classified strokes wait for an "
                "earlier stroke that is still open"
            )


def _run_csv_streaming(
    path: str, density: float | None, limits: Limits, out: _Output, progress: _Progress
) -> None:
    progress.counts = out.counts
    inp = _Input(path, limits.chunk_bytes)
    try:
        layout, header_bytes = _header(inp)
        if layout.density is None and density is None:
            raise CliError("no density: add a density column or pass --density")
        inp.stream.seek(0)
        streamer = _Streamer(density, limits, out)
        blocks = _csv_blocks(inp, layout, header_bytes)
        rows, after = next(blocks, (None, 2))
        while rows is not None:
            upcoming = next(blocks, None)
            streamer.feed(rows, after, final=upcoming is None)
            progress.update(inp.done_fraction, int(out.counts.sum()))
            rows, after = upcoming if upcoming is not None else (None, after)
    finally:
        inp.close()


# --- CSV, partitioned -------------------------------------------------------------------


_CHUNK_HEADER = np.dtype([("rows", "<i8"), ("width", "<i8")])


class _Partitions:
    """Rows hash-partitioned by stroke id into temporary files."""

    def __init__(self, folder: str, name: str, count: int, salt: int, layout: _Layout):
        self.count = count
        self.salt = salt
        self.layout = layout
        self.paths = [os.path.join(folder, f"{name}-{i}") for i in range(count)]
        self.files = [open(p, "wb") for p in self.paths]  # noqa: SIM115 - closed in close()
        self.rows = np.zeros(count, dtype=np.int64)

    def write(self, rows: _Rows) -> None:
        heads, lengths = _runs(rows.ids)
        hashes = _hashes(rows.ids[heads].tolist(), self.salt)
        part = np.repeat(hashes % np.uint64(self.count), lengths)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.count + 1))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            chunk = rows.take(order[bounds[p] : bounds[p + 1]])
            f = self.files[p]
            head = np.array([(chunk.size, chunk.ids.dtype.itemsize)], dtype=_CHUNK_HEADER)
            f.write(head.tobytes())
            for column in chunk:
                if column is not None:
                    f.write(np.ascontiguousarray(column).tobytes())
            self.rows[p] += chunk.size

    def close(self) -> None:
        for f in self.files:
            f.close()

    def read(self, p: int) -> Iterator[_Rows]:
        """The chunks of partition p, in the order they were written."""
        has_d = self.layout.density is not None
        has_a = self.layout.action is not None
        with open(self.paths[p], "rb") as f:
            while True:
                head = np.fromfile(f, dtype=_CHUNK_HEADER, count=1)
                if head.size == 0:
                    return
                n, width = int(head["rows"][0]), int(head["width"][0])
                ids = np.fromfile(f, dtype=f"S{width}", count=n)
                t, x, y = (np.fromfile(f, dtype=np.float64, count=n) for _ in range(3))
                dens = np.fromfile(f, dtype=np.float64, count=n) if has_d else None
                act = np.fromfile(f, dtype=np.int8, count=n) if has_a else None
                line = np.fromfile(f, dtype=np.int64, count=n)
                yield _Rows(ids, t, x, y, dens, act, line)


def _run_csv_partitioned(
    path: str, density: float | None, limits: Limits, out: _Output, progress: _Progress
) -> None:
    progress.counts = out.counts
    with tempfile.TemporaryDirectory(prefix="tapzone-classify-") as folder:
        inp = _Input(path, limits.chunk_bytes)
        try:
            layout, header_bytes = _header(inp)
            inp.stream.seek(0)
            parts: _Partitions | None = None
            for rows, _ in _csv_blocks(inp, layout, header_bytes):
                if parts is None:
                    count = _partition_count(inp, rows, limits)
                    parts = _Partitions(folder, "part", count, 1, layout)
                parts.write(rows)
                progress.update(inp.done_fraction, 0, "partitioning: ")
        finally:
            inp.close()
        if parts is None:
            return
        parts.close()
        results: list[str] = []
        _classify_partitions(parts, folder, density, limits, out, progress, results)
        # Each result file is sorted by the line of its strokes' first row (a fixed-width
        # prefix), so a merge restores the order of first appearance.
        files = [open(r, "rb") for r in results]  # noqa: SIM115 - closed below
        try:
            batch: list[bytes] = []
            for row in heapq.merge(*files):
                batch.append(row[20:])
                if len(batch) >= 65536:
                    out.write(batch)
                    batch = []
            out.write(batch)
        finally:
            for f in files:
                f.close()


def _partition_count(inp: _Input, first: _Rows, limits: Limits) -> int:
    """Partitions so that each holds about ``partition_rows`` rows of the whole input."""
    read = max(inp.raw.tell(), 1)
    rows_estimate = first.size * max(inp.size, read) / read
    return int(min(256, max(1, math.ceil(rows_estimate / limits.partition_rows))))


def _classify_partitions(
    parts: _Partitions, folder: str, density: float | None, limits: Limits, out: _Output,
    progress: _Progress, results: list[str],
) -> None:
    for p in range(parts.count):
        if parts.rows[p] == 0:
            continue
        if parts.rows[p] > 2 * limits.partition_rows and parts.salt < 4:
            # Bigger than planned (a misjudged gzip ratio, skewed ids): split it again
            # with another hash. (A single huge stroke ends up in one piece regardless.)
            sub = _Partitions(folder, os.path.basename(parts.paths[p]), 8, parts.salt + 1,
                              parts.layout)
            for chunk in parts.read(p):
                sub.write(chunk)
            sub.close()
            os.unlink(parts.paths[p])
            _classify_partitions(sub, folder, density, limits, out, progress, results)
            continue
        rows = _concat_rows(list(parts.read(p)))
        os.unlink(parts.paths[p])
        results.append(_classify_partition(rows, density, out, f"{parts.paths[p]}.out"))
        progress.update(1.0, int(out.counts.sum()), "classifying: ")


def _classify_partition(rows: _Rows, density: float | None, out: _Output, path: str) -> str:
    """Group one partition's rows by stroke, classify, write ``%020d first-line`` + row."""
    heads, run_lengths = _runs(rows.ids)
    group_of: dict[bytes, int] = {}
    groups = np.empty(heads.size, dtype=np.int64)
    for k, sid in enumerate(rows.ids[heads].tolist()):
        groups[k] = group_of.setdefault(sid, len(group_of))
    group = np.repeat(groups, run_lengths)
    order = np.argsort(group, kind="stable")
    rows = rows.take(order)
    lengths = np.bincount(group, minlength=len(group_of))
    starts = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    ids = list(group_of)  # in order of first appearance within the partition
    lines = _classify_grouped(rows, starts, lengths, ids, density, out.counts)
    first_lines = rows.line[starts].tolist()
    with open(path, "wb") as f:
        f.write(b"".join(b"%020d" % n + row for n, row in zip(first_lines, lines)))
    return path
