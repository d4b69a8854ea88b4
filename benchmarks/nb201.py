"""Strategy comparison on NAS-Bench-201 (CIFAR-10 table): the numbers in docs/benchmarks.md.

    python benchmarks/nb201.py --seeds 100 [--strategies ppo,random,evolution,...] [--workers 2]

Writes docs/nb201_results.json ({strategy: {budget: {mean, std, n}}}), docs/nb201_curves.png and prints a
Markdown table (mean ± std of the table test accuracy of the architecture each search selected by
validation accuracy) with the mean wall time of one run and the controller overhead per evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from rlnas.benchmark import compare, plot_curves
from rlnas.strategies import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "benchmarks" / "nb201_cifar10.csv"
BUDGETS = [25, 50, 100, 200, 300]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    start = time.perf_counter()
    result = compare(args.table, strategies, BUDGETS, args.seeds, workers=args.workers)
    wall = time.perf_counter() - start
    args.out.mkdir(exist_ok=True)
    (args.out / "nb201_results.json").write_text(json.dumps(result["summary"], indent=1))
    plot_curves(result, args.out / "nb201_curves.png")
    print(f"| strategy | {' | '.join(str(b) for b in BUDGETS)} | s / run (300) | proposals / run | ms / evaluation |")
    print("|---|" + "---|" * (len(BUDGETS) + 3))
    for s in strategies:
        row = result["summary"][s]
        cells = " | ".join(f"{row[str(b)]['mean']:.2f} ± {row[str(b)]['std']:.2f}" for b in BUDGETS)
        seconds = result["seconds_per_run"][s]
        print(f"| {s} | {cells} | {seconds:.2f} | {result['proposals_per_run'][s]:.0f} | {1000 * seconds / 300:.1f} |")
    optimum = result["optimum"]
    print(
        f"\noptimum {optimum['test_acc_200ep']:.2f}; n = {args.seeds} seeds per strategy; {wall:.0f} s wall on "
        f"{os.cpu_count()} cores ({platform.machine()}), {args.workers} worker processes"
    )


if __name__ == "__main__":
    main()
