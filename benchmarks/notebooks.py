"""Time every lesson and solution notebook top to bottom in default mode.

    python benchmarks/notebooks.py                 # all of notebooks/ and solutions/
    python benchmarks/notebooks.py notebooks/02_*.ipynb --fast

Each notebook runs in a fresh kernel in a temporary folder (the file is not changed).
Prints one line per notebook and, last, one JSON object: {"notebook": seconds, ...}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 120  # the course's promise: each notebook in about two minutes on a 2-core CPU


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/ and solutions/)")
    parser.add_argument("--fast", action="store_true", help="fast mode (COURSEKIT_FAST=1)")
    args = parser.parse_args()
    paths = [Path(p) for p in args.paths] or sorted((ROOT / "notebooks").glob("*.ipynb")) + \
        sorted((ROOT / "solutions").glob("*.ipynb"))
    os.environ["COURSEKIT_FAST"] = "1" if args.fast else ""
    os.environ.setdefault("MPLBACKEND", "Agg")
    print(f"mode: {'fast' if args.fast else 'default'}; load average: {os.getloadavg()[0]:.2f}; "
          f"cores: {os.cpu_count()}")
    times: dict[str, float] = {}
    failed: dict[str, str] = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                NotebookClient(nb, timeout=1200, kernel_name="python3",
                               resources={"metadata": {"path": tmp}}).execute()
        except Exception as err:  # report and go on with the others
            failed[str(path.relative_to(ROOT))] = f"{type(err).__name__}: {str(err)[:200]}"
        seconds = time.perf_counter() - start
        name = str(path.resolve().relative_to(ROOT))
        times[name] = round(seconds, 1)
        flag = "FAILED" if name in failed else ("over 2 min" if seconds > LIMIT_S else "ok")
        print(f"{name:<55} {seconds:7.1f} s  {flag}", flush=True)
    print(json.dumps({"mode": "fast" if args.fast else "default", "seconds": times,
                      "failed": failed, "max_seconds": max(times.values(), default=0)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
