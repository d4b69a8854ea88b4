"""Time the README's default search end to end and check its exported model.

Runs `rlnas search` (configs/default.yaml: digits, CNN space, PPO, 60 children, export) in a fresh run
directory, then `rlnas evaluate` on the export, and prints a Markdown block for docs/benchmarks.md.

    python benchmarks/default_search.py [--seed 0] [--out /tmp/rlnas-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="rlnas-bench-")))
    args = parser.parse_args()
    rlnas = [str(Path(sys.executable).parent / "rlnas")]
    run = args.out / f"default-seed{args.seed}"
    start = time.perf_counter()
    subprocess.run([*rlnas, "-q", "search", "--seed", str(args.seed), "--run-dir", str(run)], check=True)
    wall = time.perf_counter() - start
    metrics = json.loads((run / "export" / "metrics.json").read_text())
    summary = json.loads((run / "run.json").read_text())
    evaluated = subprocess.run(
        [*rlnas, "evaluate", str(run / "export"), "--dataset", "digits", "--split", "test", "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    accuracy = json.loads(evaluated.stdout)["accuracy"]
    print(
        f"| {args.seed} | {wall:.0f} s | {summary['search_seconds']:.0f} s | {summary['evaluations']} | "
        f"{metrics['val_accuracy']:.4f} | {metrics['test_accuracy']:.4f} | {accuracy:.4f} | {metrics['params']} |"
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}", file=sys.stderr)


if __name__ == "__main__":
    main()
