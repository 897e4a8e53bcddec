"""`make bench`: every benchmark script in bench/, one after the other, with its own output.

Each script prints its figure next to its naive baseline measured in the same run. Extra
arguments are not passed through; run a script directly for its options (`--help`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["ingest.py", "classify.py", "zoning.py"]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        path = HERE / name
        if not path.exists():
            continue
        print(f"== {name}", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
        print(f"== {name}: exit {code} after {time.monotonic() - start:.0f} s\n", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
