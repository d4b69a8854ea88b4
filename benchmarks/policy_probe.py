"""Does the PPO policy learn architecture choices? The synthetic-target probe of docs/benchmarks.md.

    python benchmarks/policy_probe.py [--seeds 10] [--first-seed 0] [--budgets 60,300] [--set strategy.ppo.KEY=V]

For each seed a random target architecture of the default (digits CNN) space is drawn, and the reward of an
architecture is the share of its decisions equal to the target's (``SyntheticEvaluator``). The plain policy
(``screen_samples=1``, ``elite_share=0``: every evaluation is a policy sample) is told that reward for each
of its proposals. At each budget the policy is read along the target's own episode: for every decision the
target takes, the probability the policy gives the target's choice after the target's earlier choices, and
whether that choice is the policy's most probable one. Prints, per budget, the mean probability and the
share of decisions where the most probable choice is the target's (over all decisions of all seeds), and the
best reward found so far (mean over seeds).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from rlnas.config import load_config
from rlnas.evaluation import SyntheticEvaluator
from rlnas.prepare import prepare
from rlnas.space import Architecture
from rlnas.strategies import Strategy, StrategyContext, make_strategy
from rlnas.tracking import RunLogger

PLAIN = ["strategy.ppo.screen_samples=1", "strategy.ppo.elite_share=0"]


def read_policy(controller: Strategy, target: Architecture) -> tuple[list[float], list[bool]]:
    """The probability of the target's choice and whether it is the most probable, per decision along the
    target's episode."""
    table = controller.path_probabilities(target)  # type: ignore[attr-defined]
    probabilities = [choices[str(target[name])] for name, choices in table.items()]
    top = [max(choices, key=choices.__getitem__) == str(target[name]) for name, choices in table.items()]
    return probabilities, top


def probe(seed: int, budgets: list[int], overrides: list[str]) -> dict[int, tuple[list[float], list[bool], float]]:
    config = load_config(None, [*PLAIN, *overrides, f"seed={seed}"])
    space = prepare(config).space
    evaluator = SyntheticEvaluator(space, seed=seed)
    controller = make_strategy("ppo", StrategyContext(space, config, seed, None, RunLogger(None)))
    out, best = {}, -np.inf
    for n in range(1, max(budgets) + 1):
        arch = controller.ask()
        evaluation = evaluator.evaluate(arch)
        controller.tell(arch, evaluation)
        best = max(best, evaluation.reward)
        if n in budgets:
            out[n] = (*read_policy(controller, evaluator.target), best)
    controller.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budgets", default="60,300")
    parser.add_argument("--set", action="append", default=[], help="overrides, e.g. strategy.ppo.learning_rate=0.01")
    parser.add_argument("--json", help="write the per-seed figures here")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    start = time.perf_counter()
    runs = [probe(seed, budgets, args.set) for seed in range(args.first_seed, args.first_seed + args.seeds)]
    seconds = (time.perf_counter() - start) / len(runs)
    print(f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}, overrides {args.set or 'none'}")
    print("| evaluations | P(target choice), mean | most probable = target | best reward so far | s / seed |")
    print("|---|---|---|---|---|")
    summary = {}
    for b in budgets:
        p = np.concatenate([run[b][0] for run in runs])
        top = np.concatenate([run[b][1] for run in runs])
        best = float(np.mean([run[b][2] for run in runs]))
        summary[b] = {"p_target": float(p.mean()), "top_is_target": float(top.mean()), "best": best}
        print(f"| {b} | {p.mean():.2f} | {top.mean():.0%} ({top.sum()}/{len(top)}) | {best:.2f} | {seconds:.1f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"budgets": summary, "seeds": [args.first_seed, args.seeds], "overrides": args.set}, fh, indent=1)


if __name__ == "__main__":
    main()
