"""PPO controller settings on NAS-Bench-201: the sweep table in docs/benchmarks.md.

    python benchmarks/ppo_sweep.py --seeds 20 [--workers 2] [--budgets 100,300] [--variants defaults,epochs10]

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
VARIANTS = {
    "defaults": [],
    "gentle": ["strategy.ppo.learning_rate=0.003", "strategy.ppo.ent_coef=0.01", "strategy.ppo.rank_exponent=1"],
    "standardize": ["strategy.ppo.reward_normalization=standardize"],
    "no-mask": ["strategy.ppo.mask_evaluated=false"],
    "epu4": ["strategy.ppo.episodes_per_update=4"],
    "lr01": ["strategy.ppo.learning_rate=0.01"],
    "epochs10": ["strategy.ppo.n_epochs=10"],
    "minibatch2": ["strategy.ppo.minibatches=2"],
    "ent01": ["strategy.ppo.ent_coef=0.01"],
    "ent0": ["strategy.ppo.ent_coef=0.0"],
    "rank3": ["strategy.ppo.rank_exponent=3"],
    "epu12": ["strategy.ppo.episodes_per_update=12"],
    "net128": ["strategy.ppo.net_arch=[128,128]"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"some of {','.join(VARIANTS)}")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"| settings (besides the defaults) | {' | '.join(str(b) for b in budgets)} | proposals / run |")
    print("|---|" + "---|" * (len(budgets) + 1))
    for name in args.variants.split(","):
        overrides = VARIANTS[name]
        result = compare(TABLE, ["ppo"], budgets, args.seeds, workers=args.workers, overrides=overrides)
        row = result["summary"]["ppo"]
        cells = " | ".join(f"{row[str(b)]['mean']:.2f} ± {row[str(b)]['std']:.2f}" for b in budgets)
        label = ", ".join(o.removeprefix("strategy.ppo.") for o in overrides) or "defaults"
        print(f"| {label} | {cells} | {result['proposals_per_run']['ppo']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
