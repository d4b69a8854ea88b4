"""The Markdown table of docs/benchmarks.md from the run directories of benchmarks/mnist_target.sh (or
benchmarks/oneshot_mnist.sh: search times are also given relative to the multi-trial ``ppo`` run).

python benchmarks/mnist_table.py /tmp/mnistruns

Runs made with ``--set export.enabled=false`` (search only) show their search columns and dashes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mnistruns")
    walls = {}
    for line in (out / "walls.txt").read_text().splitlines():
        name, _, seconds, _ = line.split()
        walls[name] = float(seconds)
    print(
        "| strategy | wall (search + re-scoring + final + export) | search (vs ppo) | children evaluated (proposed) "
        "| best search-time val acc | exported trial | final test acc (best / mean ± std of 2 seeds) "
        "| params | MFLOPs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    reference = out / "ppo" / "run.json"
    ppo = json.loads(reference.read_text())["search_seconds"] if reference.is_file() else None
    for name, wall in walls.items():
        run = json.loads((out / name / "run.json").read_text())
        exported = out / name / "export" / "metrics.json"
        ratio = f" ({run['search_seconds'] / ppo:.2f}x)" if ppo else ""
        final = "| – | – | – | – |"
        if exported.is_file():
            metrics = json.loads(exported.read_text())
            final = (
                f"| {metrics['trial']} | {100 * metrics['test_accuracy']:.2f} % / "
                f"{100 * metrics['test_accuracy_mean']:.2f} ± {100 * metrics['test_accuracy_std']:.2f} % "
                f"| {metrics['params']} | {metrics['flops'] / 1e6:.1f} |"
            )
        print(
            f"| {name} | {wall / 60:.1f} min | {run['search_seconds']:.0f} s{ratio} "
            f"| {run['evaluations']} ({run['proposals']}) | {run.get('best_proxy_val_score', 0.0):.4f} {final}"
        )


if __name__ == "__main__":
    main()
