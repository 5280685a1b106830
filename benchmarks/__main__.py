"""`make bench`: run every benchmarks/bench_*.py in turn (each in its own process), then print their tables.

``python -m benchmarks [--quick] [names...]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.common import RESULTS_DIR, print_table

HERE = Path(__file__).resolve().parent
#: Run only when named (long): bench_scale (a DESED-sized run, tens of minutes).
NOT_DEFAULT = {"scale"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("--quick", action="store_true", help="small sizes (a sanity run, not figures to report)")
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all but scale), e.g. features nmf")
    a = p.parse_args(argv)
    names = a.names or sorted(
        n for f in HERE.glob("bench_*.py") if (n := f.stem[len("bench_"):]) not in NOT_DEFAULT
    )
    failed = []
    for name in names:
        print(f"\n### bench_{name}", flush=True)
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}"] + (["--quick"] if a.quick else [])
        if subprocess.run(cmd, cwd=HERE.parent).returncode != 0:
            failed.append(name)
    print("\n================ summary ================")
    for name in names:
        f = RESULTS_DIR / (f"{name}.quick.json" if a.quick else f"{name}.json")
        if f.is_file():
            print_table(name, json.loads(f.read_text())["figures"])
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
