"""`tapzone classify` (server.offline.run_classify): exact outputs and messages."""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gestures import DIRECTION_NAMES, GESTURE_NAMES, classify_strokes
from server.errors import CliError
from server.offline import Limits, run_classify

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "touches"
HEADER = "stroke,gesture,ea,duration_ms,distance_dp,velocity_dps,direction,fd,samples\n"
EXPECTED = HEADER + (
    "tap-1,tap,6,48.000,1.118,23.437,,,4\n"
    "press-1,long_press,8,700.000,0.500,0.000,,,15\n"
    "drag-1,drag,9,460.000,100.000,0.000,up,1,22\n"
    "flick-1,flick,10,70.000,105.000,1500.000,left,3,8\n"
    "ambiguous-1,ambiguous,,100.000,35.000,350.000,,,6\n"
    "cancel-1,cancelled,,64.000,2.000,31.250,,,5\n"
    "invalid-1,invalid,,,,,,,3\n"
)


def classify(path: Path | str, density: float | None = None, fmt: str | None = None,
             **limits: int) -> tuple[str, str]:
    """Run the command on ``path``; returns (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    status = run_classify(str(path), None, density, fmt, stdout=out, stderr=err,
                          limits=Limits(**limits))
    assert status == 0
    return out.getvalue(), err.getvalue()


def error(path: Path | str, density: float | None = None, fmt: str | None = None,
          **limits: int) -> str:
    with pytest.raises(CliError) as err:
        classify(path, density, fmt, **limits)
    return str(err.value)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the fixtures ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sample.csv", "sample.jsonl"])
def test_fixture(name: str) -> None:
    out, err = classify(FIXTURES / name)
    assert out == EXPECTED
    assert re.fullmatch(
        r"tapzone classify: 7 strokes in \d+\.\d\d s \([\d,]+ strokes/s\): tap 1, "
        r"long_press 1, drag 1, flick 1, ambiguous 1, cancelled 1, invalid 1\n",
        err,
    )


def test_output_file_and_gzip_input(tmp_path: Path) -> None:
    source = tmp_path / "log.csv.gz"
    source.write_bytes(gzip.compress((FIXTURES / "sample.csv").read_bytes()))
    target = tmp_path / "out.csv"
    status = run_classify(str(source), str(target), None, None, stdout=io.StringIO(),
                          stderr=io.StringIO())
    assert status == 0 and target.read_text() == EXPECTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv.gz", "out.csv"]


def test_gzip_jsonl_and_format_flag(tmp_path: Path) -> None:
    source = tmp_path / "log.data"
    source.write_bytes(gzip.compress((FIXTURES / "sample.jsonl").read_bytes()))
    assert classify(source, fmt="jsonl")[0] == EXPECTED


def test_tiny_chunks_split_strokes_across_blocks() -> None:
    # 64-byte blocks: every stroke spans several blocks, tap-1/press-1 interleave.
    assert classify(FIXTURES / "sample.csv", chunk_bytes=64)[0] == EXPECTED
    assert classify(FIXTURES / "sample.jsonl", chunk_bytes=64)[0] == EXPECTED


def test_command_line_entry_via_python(tmp_path: Path) -> None:
    code = (
        "import sys; from server.offline import run_classify; "
        f"sys.exit(run_classify({str(FIXTURES / 'sample.csv')!r}, None, None, None))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.decode() == EXPECTED


# --- grouping and order ----------------------------------------------------------------


def test_interleaved_strokes_in_order_of_first_appearance(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", (
        "stroke,t,x,y\n"
        "b,0,0,0\n"
        "a,5,0,0\n"
        "b,10,100,0\n"
        "c,12,0,0\n"
        "a,15,1,0\n"
        "b,20,200,0\n"
    ))
    out, _ = classify(path, density=2.0)
    assert [row.split(",")[:2] for row in out.splitlines()[1:]] == [
        ["b", "flick"], ["a", "tap"], ["c", "tap"],
    ]


def test_no_action_column_completes_idle_strokes(tmp_path: Path) -> None:
    lines = ["stroke,t,x,y,density"]
    for s in range(30):
        lines += [f"s{s},{s * 100 + k * 10},{k},0,1" for k in range(3)]
    path = write(tmp_path, "log.csv", "\n".join(lines) + "\n")
    out, err = classify(path, chunk_bytes=40, idle_rows=5)
    assert [row.split(",")[0] for row in out.splitlines()[1:]] == [f"s{s}" for s in range(30)]
    assert "partitioned" not in err


def test_a_stroke_that_comes_back_restarts_in_partitioned_mode(tmp_path: Path) -> None:
    # "a" is closed by its up row, then a row of it turns up again much later.
    lines = ["stroke,t,x,y,density,action", "a,0,0,0,1,down", "a,20,1,0,1,up"]
    lines += [f"f{k},{k},0,0,1,up" for k in range(50)]
    lines += ["a,10,0.5,0,1,move"]
    path = write(tmp_path, "log.csv", "\n".join(lines) + "\n")
    out, err = classify(path, chunk_bytes=64)
    rows = out.splitlines()
    assert rows[1] == "a,tap,6,20.000,1.000,50.000,,,3"
    assert [r.split(",")[0] for r in rows[2:]] == [f"f{k}" for k in range(50)]
    assert (
        "tapzone classify: stroke 'a' reappears on line 54 after it was classified; "
        "classifying again in partitioned mode\n"
    ) in err


def random_log(seed: int, strokes: int, shuffle_within: bool) -> tuple[str, list[str]]:
    """A CSV of random interleaved strokes and its expected output rows."""
    rng = np.random.default_rng(seed)
    per_stroke = []
    for s in range(strokes):
        n = int(rng.integers(1, 30))
        t = np.sort(rng.integers(0, 800, n)).astype(float)
        x = np.cumsum(rng.normal(0, rng.choice([0.5, 15.0]), n))
        acts = ["down"] + ["move"] * (n - 2) + [str(rng.choice(["up", "up", "cancel"]))]
        rows = [(f"id{s:04d}", t[k], x[k], 2.0 * k, acts[-n:][k]) for k in range(n)]
        if shuffle_within:
            rows = [rows[k] for k in rng.permutation(n)]
        per_stroke.append(rows)
    # Interleave: repeatedly take the next row of a random stroke that has rows left.
    cursor = [0] * strokes
    order = np.repeat(np.arange(strokes), [len(r) for r in per_stroke])
    rng.shuffle(order)
    file_rows = []
    for s in order:
        file_rows.append(per_stroke[s][cursor[s]])
        cursor[s] += 1
    text = "stroke,t,x,y,density,action\n" + "".join(
        f"{sid},{t:g},{float(x)!r},{y:g},1.5,{a}\n" for sid, t, x, y, a in file_rows
    )
    # Expected: group by id in order of first appearance, classify, format.
    groups: dict[str, list[tuple[float, float, float, str]]] = {}
    for sid, t, x, y, a in file_rows:
        groups.setdefault(sid, []).append((t, x, y, a))
    flat = [r for g in groups.values() for r in g]
    offsets = np.cumsum([0] + [len(g) for g in groups.values()])
    codes = {"down": 0, "move": 1, "up": 2, "cancel": 3}
    res = classify_strokes(
        np.array([r[0] for r in flat]), np.array([r[1] for r in flat]),
        np.array([r[2] for r in flat]), offsets, 1.5,
        np.array([codes[r[3]] for r in flat], dtype=np.int8),
    )

    def num(v: float) -> str:
        return "" if np.isnan(v) else f"{v:.3f}"

    expected = [
        f"{sid},{GESTURE_NAMES[g]},{ea if ea >= 0 else ''},{num(d)},{num(dist)},{num(v)},"
        f"{DIRECTION_NAMES[fd]},{fd or ''},{n}"
        for sid, g, ea, d, dist, v, fd, n in zip(
            groups, res.gesture, res.ea, res.duration_ms, res.distance_dp,
            res.velocity_dps, res.fd, res.samples,
        )
    ]
    return text, expected


@pytest.mark.parametrize("shuffle_within", [False, True])
def test_random_interleaving_streaming_and_partitioned_agree(
    tmp_path: Path, shuffle_within: bool
) -> None:
    text, expected = random_log(3, 300, shuffle_within)
    path = write(tmp_path, "log.csv", text)
    streamed, err = classify(path, chunk_bytes=512)
    assert streamed.splitlines() == ["stroke" + HEADER[6:-1], *expected]
    assert ("partitioned" in err) == shuffle_within  # an up row before other rows
    # Forced at once (no open rows allowed), with partitions of ~50 rows split again.
    parted, err = classify(path, chunk_bytes=512, max_open_rows=0, partition_rows=50)
    assert parted == streamed and "partitioned mode" in err


def test_budgets_force_partitioned_mode(tmp_path: Path) -> None:
    text, expected = random_log(5, 120, False)
    path = write(tmp_path, "log.csv", text)
    for limits in ({"max_held_strokes": 0}, {"max_done_strokes": 10}):
        out, err = classify(path, chunk_bytes=256, **limits)
        assert out.splitlines()[1:] == expected and "partitioned mode" in err


# --- formats and values ----------------------------------------------------------------


def test_quotes_crlf_blank_lines_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(
        b'\xef\xbb\xbfnote, stroke ,t,x,y\r\n'
        b'"hi, there","a,""b""",0,0,0\r\n'
        b"\r\n"
        b'x,"a,""b""",10,100,0\r\n'
        b"  \n"
        b"y,\xc3\xa9t\xc3\xa9,0,5,5\r\n"
    )
    out, _ = classify(path, density=1.0)
    assert out.splitlines()[1:] == [
        '"a,""b""",flick,10,10.000,100.000,10000.000,right,4,2',
        "été,tap,6,0.000,0.000,0.000,,,1",
    ]


def test_density_flag_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "stroke,t,x,y\na,0,0,0\na,10,50,0\n")
    assert classify(path, density=2.0)[0].splitlines()[1].startswith("a,ambiguous,,10.000,25.000")
    path = write(tmp_path, "log2.csv", "stroke,t,x,y,density\na,0,0,0,1\na,10,50,0,1\n")
    # The column wins over the flag.
    assert classify(path, density=2.0)[0].splitlines()[1].startswith("a,flick,10,10.000,50.000")


def test_jsonl_values(tmp_path: Path) -> None:
    path = write(tmp_path, "log.jsonl", "\n".join([
        json.dumps({"stroke": 17, "t": [0, 10], "x": [0, 100], "y": [0, 0]}),
        "",
        json.dumps({"stroke": "b", "t": [], "x": [], "y": [], "density": 1, "extra": True}),
        json.dumps({"stroke": "c", "t": [0], "x": [0], "y": [0], "action": ["down"]}),
    ]) + "\n")
    out, _ = classify(path, density=2.0)
    assert out.splitlines()[1:] == [
        "17,flick,10,10.000,50.000,5000.000,right,4,2",
        "b,invalid,,,,,,,0",
        "c,cancelled,,0.000,0.000,0.000,,,1",
    ]


def test_empty_inputs(tmp_path: Path) -> None:
    assert classify(write(tmp_path, "header.csv", "stroke,t,x,y\n"), density=1.0)[0] == HEADER
    assert classify(write(tmp_path, "header2.csv", "stroke,t,x,y"), density=1.0)[0] == HEADER
    assert classify(write(tmp_path, "none.jsonl", ""))[0] == HEADER
    assert error(write(tmp_path, "none.csv", "")) == (
        f"{str(tmp_path / 'none.csv')!r} has no header: expected a CSV header with stroke,t,x,y"
    )


# --- user errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stroke,t,x,y\na,0,0,0\na,abc,1,1\n", "line 3: t is not a number: 'abc'"),
        ("stroke,t,x,y\na,0,0,0\n\na,1,1\n", "line 4: expected 4 fields, found 3"),
        ("stroke,t,x,y\na,0,0,0,9\n", "line 2: expected 4 fields, found 5"),
        ("stroke,t,x,y\na,0,0,\n", "line 2: y is not a number: ''"),
        ("stroke,t,x,y\n,0,0,0\n", "line 2: the stroke id is empty"),
        ('stroke,t,x,y\n"a\n",0,0,0\n',
         "line 2: unbalanced quotes (a quoted field may not span lines)"),
        ("stroke,t,x,y,action\na,0,0,0,down\na,1,0,0,lift\n",
         "line 3: action must be down, move, up or cancel, got 'lift'"),
        ("stroke,t,x,y,density\na,0,0,0,2\nb,0,0,0,3\na,1,0,0,2.5\n",
         "line 4: stroke 'a' has density 2.5 but its first row has 2"),
        ("stroke,t,x\na,0,0\n",
         "the CSV header lacks column y (it needs stroke,t,x,y; found stroke,t,x)"),
        ("stroke,t,x,y,t\na,0,0,0,0\n", "the CSV header has column 't' more than once"),
    ],
)
def test_malformed_csv(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "log.csv", text)
    assert error(path, density=1.0) == message
    assert error(path, density=1.0, chunk_bytes=16) == message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"stroke": "a", "t": [0], "x": [0]}', "line 2: Object missing required field `y`"),
        ('{"stroke": "a", "t": [0], "x": ["1"], "y": [0]}',
         "line 2: Expected `float`, got `str` - at `$.x[0]`"),
        ('{"stroke": "a", "t": [0, 1], "x": [0], "y": [0]}',
         "line 2: t, x and y have different lengths (2, 1, 1)"),
        ('{"stroke": "a", "t": [0], "x": [0], "y": [0], "action": ["up", "up"]}',
         "line 2: action has 2 items for 1 samples"),
        ("[1, 2]", "line 2: Expected `object`, got `array`"),
        ('{"stroke": ', "line 2: not a JSON stroke: Input data was truncated"),
    ],
)
def test_malformed_jsonl(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, "log.jsonl", '{"stroke": "ok", "t": [0], "x": [0], "y": [0]}\n' + line)
    assert error(path, density=1.0) == message


def test_jsonl_with_a_string_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"stroke": "ok", "t": [0], "x": [0], "y": [0]}\n{"stroke": "\xff"}\n')
    assert error(path, density=1.0) == (
        "line 2: not a JSON stroke: JSON is malformed: invalid UTF-8 (byte 12)"
    )


def test_missing_density(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "stroke,t,x,y\na,0,0,0\n")
    assert error(path) == "no density: add a density column or pass --density"
    path = write(tmp_path, "log.jsonl", '{"stroke": "a", "t": [0], "x": [0], "y": [0]}\n')
    assert error(path) == 'line 1: no density: add a "density" key or pass --density'
    assert error(path, density=0.0) == "--density must be a positive number of px per dp, got 0.0"


def test_bad_files_and_formats(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    assert error(missing) == f"input file {missing!r} does not exist"
    path = write(tmp_path, "log.txt", "stroke,t,x,y\n")
    assert error(path) == (
        f"cannot tell the format of {str(path)!r}: name it .csv or .jsonl (optionally .gz) "
        "or pass --format csv|jsonl"
    )
    assert error(path, fmt="xml") == "unknown format 'xml': use csv or jsonl"
    assert classify(path, density=1.0, fmt="csv")[0] == HEADER
    broken = tmp_path / "log.csv.gz"
    broken.write_bytes(gzip.compress(b"stroke,t,x,y\n" * 1000)[:-20])
    assert error(broken, density=1.0).startswith(f"cannot read {str(broken)!r}: ")
    with pytest.raises(CliError, match=r"^cannot write "):
        run_classify(str(FIXTURES / "sample.csv"), str(tmp_path / "no" / "out.csv"), None, None,
                     stdout=io.StringIO(), stderr=io.StringIO())
