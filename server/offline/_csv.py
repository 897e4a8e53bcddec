"""CSV touch logs: the header, then blocks of rows parsed into column arrays."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from server.errors import CliError
from server.offline._actions import action_codes
from server.offline._inputs import Input
from server.offline._rows import Rows

REQUIRED_COLUMNS = ("stroke", "t", "x", "y")


@dataclass(frozen=True)
class Layout:
    """Where the columns we read sit in a row of the CSV."""

    n_fields: int
    stroke: int
    t: int
    x: int
    y: int
    density: int | None
    action: int | None


def header(inp: Input) -> tuple[Layout, int]:
    """Read and check the header line, then rewind the input; returns the layout and the
    bytes the header took."""
    data = b""
    while b"\n" not in data:
        more = inp.read(1 << 16)
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
    layout = Layout(
        len(names), index["stroke"], index["t"], index["x"], index["y"],
        index.get("density"), index.get("action"),
    )
    inp.stream.seek(0)
    return layout, len(line) + 1


def csv_blocks(inp: Input, layout: Layout, header_bytes: int) -> Iterator[tuple[Rows, int]]:
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


def _parse_fast(block: bytes, line: int, layout: Layout) -> Rows | None:
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
    return Rows(
        ids.astype(f"S{max(1, int(np.char.str_len(ids).max()))}"),
        np.ascontiguousarray(data["t"]),
        np.ascontiguousarray(data["x"]),
        np.ascontiguousarray(data["y"]),
        np.ascontiguousarray(data["density"]) if layout.density is not None else None,
        action_codes(data["action"], np.arange(line, line + ends.size))
        if layout.action is not None else None,
        np.arange(line, line + ends.size, dtype=np.int64),
    )


def _parse_slow(block: bytes, line: int, layout: Layout) -> Rows:
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
    return Rows(
        np.array(ids, dtype=bytes) if ids else np.empty(0, dtype="S1"),
        np.array(t, dtype=np.float64),
        np.array(x, dtype=np.float64),
        np.array(y, dtype=np.float64),
        np.array(dens, dtype=np.float64) if layout.density is not None else None,
        action_codes(np.array(acts, dtype=bytes) if acts else np.empty(0, dtype="S1"), line_arr)
        if layout.action is not None else None,
        line_arr,
    )


def _number(text: str, name: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        shown = text.encode("latin-1").decode("utf-8", errors="replace")
        raise CliError(f"line {line}: {name} is not a number: {shown!r}") from None


def _check_rows(rows: Rows) -> None:
    empty = np.flatnonzero(rows.ids == b"")
    if empty.size:
        raise CliError(f"line {int(rows.line[empty[0]])}: the stroke id is empty")
