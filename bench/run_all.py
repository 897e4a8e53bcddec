"""`make bench`: every benchmark script in bench/, one after the other, with its own output.

Each script prints its figure next to its naive baseline measured in the same run. Extra
arguments are not passed through; run a script directly for its options (`--help`). Ingest
runs five times: one server process, then two sharing the port (`--workers 2`), on SQLite
and then on a throw-away PostgreSQL server (`--postgres`), and one server process on a
SQLite database that already holds 1,000,000 events (`--prefill`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (script, arguments)
RUNS: list[tuple[str, tuple[str, ...]]] = [
    ("ingest.py", ("--workers", "1")),
    ("ingest.py", ("--workers", "2")),
    ("ingest.py", ("--postgres", "--workers", "1")),
    ("ingest.py", ("--postgres", "--workers", "2")),
    ("ingest.py", ("--workers", "1", "--prefill", "1000000")),
    ("classify.py", ()),
    ("zoning.py", ()),
    ("zoning.py", ("--postgres",)),
]


def main() -> int:
    failed = []
    for script, args in RUNS:
        path = HERE / script
        if not path.exists():
            continue
        name = " ".join((script, *args))
        print(f"== {name}", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(path), *args], cwd=HERE.parent)
        print(f"== {name}: exit {code} after {time.monotonic() - start:.0f} s\n", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
