"""PPO controller settings on NAS-Bench-201: the sweep tables in docs/benchmarks.md.

    python benchmarks/ppo_sweep.py --seeds 60 --first-seed 100 [--budgets 100,300] [--workers 2] \\
        --variants defaults,rank_exponent=3,net_arch=[64]+clip_range=0.3

A variant is ``defaults`` or ``+``-joined ``strategy.ppo`` overrides (``key=value``; a key that starts with
``strategy.`` is taken whole, e.g. ``strategy.zero_cost_screen=params``). Each variant runs
once per seed with the largest budget; the smaller budgets are read from the same run's anytime curve
(PPO's proposals depend only on the seed and the rewards so far, never on the budget, so this equals a
separate run per budget). Prints mean ± standard error of the table test accuracy of the selected
architecture, each later variant's lead over the first (mean difference ± standard error, paired by
seed), and how many runs end (at the largest budget) on another architecture than the table's
optimum (the one with the best validation accuracy): stuck in another basin. ``--json F`` keeps every
variant's curves; ``--against F`` compares with the first variant of such a file (same seeds) instead of
running it again. Tune on held-out seeds (e.g.
from 100) and confirm on others (0-99, the reported ones).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np

from rlnas.benchmark import compare, paired_margin
from rlnas.evaluation.table import BenchmarkTable

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "benchmarks" / "nb201_cifar10.csv"


def overrides(variant: str) -> list[str]:
    if variant == "defaults":
        return []
    return [item if item.startswith("strategy.") else f"strategy.ppo.{item}" for item in variant.split("+")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=60)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budgets", default="100,300")
    parser.add_argument("--variants", default="defaults")
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--json", type=Path, help="write each variant's curves (seeds x budget) here")
    parser.add_argument("--against", type=Path, help="a --json file whose first variant the others are compared with")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}"
    optimum = BenchmarkTable(args.table).optimum()[2]
    print(f"| settings ({seeds}) | {' | '.join(str(b) for b in budgets)} | runs off the optimum | s / run |")
    print("|---|" + "---|" * (len(budgets) + 2))
    first = None
    kept: dict[str, object] = {"first_seed": args.first_seed, "seeds": args.seeds, "curves": {}}
    if args.against is not None:
        earlier = json.loads(args.against.read_text())
        if (earlier["first_seed"], earlier["seeds"]) != (args.first_seed, args.seeds):
            parser.error(f"--against {args.against} holds seeds from {earlier['first_seed']} ({earlier['seeds']})")
        name, values = next(iter(earlier["curves"].items()))
        first = np.array(values)
        if first.shape[1] < max(budgets):
            parser.error(f"--against {args.against}: its curves end at {first.shape[1]} evaluations")
        print(f"| {name} (from {args.against}) | {' | '.join(f'{first[:, b - 1].mean():.3f}' for b in budgets)} | | |")
    for variant in re.split(r",(?![^\[]*\])", args.variants):  # commas inside [...] belong to a value
        result = compare(
            args.table, ["ppo"], [max(budgets)], args.seeds, args.workers, overrides(variant), None, args.first_seed
        )
        curves = np.array(result["curves"]["ppo"])
        kept["curves"][variant] = curves.tolist()  # type: ignore[index]
        if args.json is not None:
            args.json.write_text(json.dumps(kept))
        first = curves if first is None else first
        cells = []
        for b in budgets:
            values = curves[:, b - 1]
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1) / np.sqrt(len(values)):.3f}")
        off = int(np.sum(curves[:, -1] < optimum - 1e-9))
        label = variant.replace("+", ", ")
        print(f"| {label} | {' | '.join(cells)} | {off} | {result['seconds_per_run']['ppo']:.2f} |", flush=True)
        if curves is not first:  # the lead over the first variant, paired by seed
            leads = [
                paired_margin(dict(enumerate(curves[:, b - 1])), dict(enumerate(first[:, b - 1]))) for b in budgets
            ]
            cells = [f"{lead['mean']:+.3f} ± {lead['se']:.3f}" for lead in leads]
            print(f"| (against the first) | {' | '.join(cells)} | | |", flush=True)


if __name__ == "__main__":
    main()
