"""PPO controller settings on a rugged synthetic landscape over the default (digits CNN) space: a second check,
beside NAS-Bench-201, for settings that act on spaces of several kinds of decision (NAS-Bench-201's cell has
one kind, an operation per edge, so there such settings can change nothing).

    python benchmarks/rugged_search.py --seeds 100 --first-seed 0 --budgets 25,50,75,100 \\
        --variants decision_heads=shared,decision_heads=kind [--json F]

Per seed, a landscape: a Gaussian weight for each choice of each decision, a Gaussian table for each of 20
random pairs of decisions (interactions), and Gaussian noise (sd 0.5) on each evaluation, fixed per
architecture; inactive decisions contribute nothing. The full search (the defaults plus the variant's
``strategy.ppo`` overrides, ``+``-joined) is told the noisy score; the best-so-far noiseless score of the
unique architectures it evaluated is its curve. Prints the mean ± standard error at each budget and each
later variant's lead over the first, paired by seed. Nothing is trained: about 5 s per run of 100.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rlnas.benchmark import paired_margin
from rlnas.config import load_config
from rlnas.evaluation import Evaluation
from rlnas.prepare import prepare
from rlnas.space import Architecture, SearchSpace
from rlnas.strategies import StrategyContext, make_strategy
from rlnas.tracking import RunLogger

PAIRS = 20
NOISE = 0.5


class Rugged:
    """Additive weights, pairwise interactions and per-architecture noise (see the module's docstring)."""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        rng = np.random.default_rng([seed, 0x5EED])
        decisions = space.decisions
        self.weights = {d.name: rng.normal(0.0, 1.0, len(d.choices)) for d in decisions}
        self.pairs = []
        for _ in range(PAIRS):
            i, j = rng.choice(len(decisions), 2, replace=False)
            a, b = decisions[i], decisions[j]
            self.pairs.append((a.name, b.name, rng.normal(0.0, 1.0, (len(a.choices), len(b.choices)))))
        self.space = space
        self.noise = np.random.default_rng([seed, 0x0015E])
        self.told: dict[str, float] = {}

    def score(self, arch: Architecture) -> float:
        index = {d.name: d.index(arch[d.name]) for d in self.space.decisions if d.name in arch}
        total = sum(self.weights[name][i] for name, i in index.items())
        total += sum(table[index[a], index[b]] for a, b, table in self.pairs if a in index and b in index)
        return float(total)

    def evaluate(self, arch: Architecture) -> Evaluation:
        if arch.key not in self.told:
            self.told[arch.key] = self.score(arch) + float(self.noise.normal(0.0, NOISE))
        return Evaluation(reward=self.told[arch.key])


def curve(space: SearchSpace, seed: int, budget: int, overrides: list[str]) -> list[float]:
    """The best-so-far noiseless score over the first ``budget`` unique architectures of one search."""
    config = load_config(None, overrides)
    controller = make_strategy("ppo", StrategyContext(space, config, seed, None, RunLogger(None)))
    landscape = Rugged(space, 1000 + seed)
    best, seen, result = -np.inf, set(), []
    for _ in range(30 * budget):  # re-proposals are answered from the cache, as in a search
        if len(result) == budget:
            break
        arch = controller.ask()
        evaluation = landscape.evaluate(arch)
        if arch.key in seen:
            evaluation = Evaluation(reward=evaluation.reward, cached=True)
        controller.tell(arch, evaluation)
        if arch.key not in seen:
            seen.add(arch.key)
            best = max(best, landscape.score(arch))
            result.append(best)
    controller.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budgets", default="25,50,75,100")
    parser.add_argument("--variants", default="decision_heads=shared,decision_heads=kind")
    parser.add_argument("--json", type=Path, help="write each variant's curves (seeds x budget) here")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    space = prepare(load_config(None, [])).space
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"| settings (seeds {seeds[0]}-{seeds[-1]}) | {' | '.join(str(b) for b in budgets)} |")
    print("|---|" + "---|" * len(budgets))
    kept: dict[str, object] = {"first_seed": args.first_seed, "seeds": args.seeds, "curves": {}}
    first = None
    for variant in args.variants.split(","):
        overrides = [f"strategy.ppo.{item}" for item in variant.split("+")]
        curves = np.array([curve(space, seed, max(budgets), overrides) for seed in seeds])
        kept["curves"][variant] = curves.tolist()  # type: ignore[index]
        if args.json is not None:
            args.json.write_text(json.dumps(kept))
        cells = [f"{mean:.3f} ± {se:.3f}" for mean, se in (_mean_se(curves[:, b - 1]) for b in budgets)]
        print(f"| {variant.replace('+', ', ')} | {' | '.join(cells)} |", flush=True)
        if first is None:
            first = curves
            continue
        leads = [paired_margin(dict(enumerate(curves[:, b - 1])), dict(enumerate(first[:, b - 1]))) for b in budgets]
        cells = [f"{lead['mean']:+.3f} ± {lead['se']:.3f}" for lead in leads]
        print(f"| (against the first) | {' | '.join(cells)} |", flush=True)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


if __name__ == "__main__":
    main()
