"""PPO controller settings on NAS-Bench-201: the sweep table in docs/benchmarks.md.

    python benchmarks/ppo_sweep.py --seeds 20 [--workers 2]

Each row is `rlnas benchmark --strategies ppo --set strategy.ppo.<key>=<value> ...` with that many seeds:
mean ± std of the table test accuracy of the selected architecture per budget.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rlnas.benchmark import compare

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "benchmarks" / "nb201_cifar10.csv"
BUDGETS = [25, 50, 100, 200, 300]
VARIANTS = [
    [],  # the defaults
    ["strategy.ppo.learning_rate=0.003", "strategy.ppo.ent_coef=0.01", "strategy.ppo.rank_exponent=1"],
    ["strategy.ppo.reward_normalization=standardize"],
    ["strategy.ppo.mask_evaluated=false"],
    ["strategy.ppo.episodes_per_update=4"],
    ["strategy.ppo.learning_rate=0.01"],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"| settings (besides the defaults) | {' | '.join(str(b) for b in BUDGETS)} | proposals / run (300) |")
    print("|---|" + "---|" * (len(BUDGETS) + 1))
    for overrides in VARIANTS:
        result = compare(TABLE, ["ppo"], BUDGETS, args.seeds, workers=args.workers, overrides=overrides)
        row = result["summary"]["ppo"]
        cells = " | ".join(f"{row[str(b)]['mean']:.2f} ± {row[str(b)]['std']:.2f}" for b in BUDGETS)
        name = ", ".join(o.removeprefix("strategy.ppo.") for o in overrides) or "defaults"
        print(f"| {name} | {cells} | {result['proposals_per_run']['ppo']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
