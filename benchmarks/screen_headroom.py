"""How much could the PPO screen gain at 25 and 50 evaluations on NAS-Bench-201, and what limits it? The
paragraph "Where the early budgets are lost" in docs/benchmarks.md.

    python benchmarks/screen_headroom.py [--seeds 100] [--first-seed 0] [--fits 200] [--json F]

Two measurements on the table, no search run:

* **Searches with an oracle.** 8 random architectures, then each evaluation the best by the table's validation
  accuracy among 16 (or 64) new random ones (a perfect screen of ``screen_samples`` candidates), or the best
  one-decision mutation of the best so far (a perfect local move); beside them random search and a local
  search that takes a random unevaluated mutation of the best. Mean ± standard error over the seeds of the
  test accuracy of the architecture with the best validation accuracy after 25 and 50 evaluations.
* **Surrogates at 8, 16 and 24 results.** Each surrogate is fitted on the rank quantiles of n random
  architectures' validation accuracies (as the screen fits them) and picks the best of 16 new random ones by
  mean + ucb x spread; the mean validation percentile of its picks over ``--fits`` fits of 3 picks each
  (0.5: no better than a random pick; about 0.94: the oracle's). The PPO screen's ensemble (``rlnas``'s
  ``EnsembleSurrogate`` as the screen builds it), with the parameter count as one more feature (the
  ``zero_cost_screen=params`` prior), and scikit-learn's Gaussian process, ridge regression and random forest.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from rlnas.config import load_config
from rlnas.config.strategy import PPO_FIXED
from rlnas.evaluation.table import BenchmarkTable, TableEvaluator
from rlnas.models.nb201 import parse_arch_string
from rlnas.space import build_space
from rlnas.strategies.surrogate import EnsembleSurrogate, quantiles

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "benchmarks" / "nb201_cifar10.csv"
BUDGETS = (25, 50)


class Table:
    """The table's architectures as arrays: encodings, validation and test accuracy, log parameter count,
    and each architecture's one-decision mutations (indices)."""

    def __init__(self, path: Path) -> None:
        table = BenchmarkTable(path)
        space = build_space(load_config(None, ["space=nb201"]).space, (3, 32, 32))
        evaluator = TableEvaluator(space, table)
        archs = [space.make(parse_arch_string(key)) for key in table.rows]
        self.x = np.stack([space.encode(a) for a in archs]).astype(np.float32)
        self.val = np.array([table.rows[k][0] for k in table.rows])
        self.test = np.array([table.rows[k][1] for k in table.rows])
        self.log_params = np.log([evaluator.zero_cost(a, names=("params",))["zero_cost_params"] for a in archs])
        self.percentile = np.argsort(np.argsort(self.val)) / len(self.val)
        index = {a.key: i for i, a in enumerate(archs)}
        self.neighbours = [
            [
                index[space.make({**a.to_dict(), d.name: c}).key]
                for d in space.decisions
                for c in d.choices
                if c != a[d.name]
            ]
            for a in archs
        ]


def search(t: Table, seed: int, rule: str) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    seen = list(rng.choice(len(t.val), 8, replace=False))
    while len(seen) < max(BUDGETS):
        taken = set(seen)
        best = max(seen, key=lambda i: t.val[i])
        mutations = [i for i in t.neighbours[best] if i not in taken]
        if rule in ("oracle local", "local") and mutations:
            pick = max(mutations, key=lambda i: t.val[i]) if rule == "oracle local" else rng.choice(mutations)
        else:
            pool = {"random": 1, "oracle of 16": 16, "oracle of 64": 64}.get(rule, 16)
            candidates: list[int] = []
            while not candidates:
                candidates = [i for i in rng.choice(len(t.val), pool) if i not in taken]
            pick = max(candidates, key=lambda i: t.val[i])
        seen.append(int(pick))
    return {b: float(t.test[max(seen[:b], key=lambda i: t.val[i])]) for b in BUDGETS}


def surrogate(name: str, x: np.ndarray, y: np.ndarray, seed: int):  # type: ignore[no-untyped-def]
    """A fitted surrogate: candidates' features -> (mean, spread)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.linear_model import Ridge

    if name.startswith("ensemble"):
        model = EnsembleSurrogate(PPO_FIXED["surrogate_hidden"], 5, PPO_FIXED["surrogate_steps"])
        model.fit(x, y, seed)
        return model.predict
    if name == "gaussian process":
        gp = GaussianProcessRegressor(ConstantKernel() * RBF(2.0) + WhiteKernel(0.1), normalize_y=True)
        gp.fit(x, y)
        return lambda z: gp.predict(z, return_std=True)
    if name == "ridge":
        ridge = Ridge(1.0).fit(x, y)
        return lambda z: (ridge.predict(z), np.zeros(len(z)))
    forest = RandomForestRegressor(100, random_state=seed).fit(x, y)
    return lambda z: (lambda p: (p.mean(0), p.std(0)))(np.array([tree.predict(z) for tree in forest.estimators_]))


def pick_quality(t: Table, name: str, n: int, ucb: float, fits: int) -> float:
    features = np.c_[t.x, (t.log_params - t.log_params.mean()) / t.log_params.std()] if "params" in name else t.x
    picks = []
    for fit in range(fits):
        rng = np.random.default_rng([n, fit])
        known = rng.choice(len(t.val), n, replace=False)
        predict = surrogate(name, features[known], quantiles(t.val[known]), fit)
        for _ in range(3):
            candidates = rng.choice(len(t.val), 16, replace=False)
            mean, spread = predict(features[candidates])
            picks.append(t.percentile[candidates[int(np.argmax(mean + ucb * spread))]])
    return float(np.mean(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--fits", type=int, default=200)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="sklearn")  # the GP's length-scale bounds at tiny n
    t = Table(args.table)
    kept: dict[str, dict[str, object]] = {"searches": {}, "pick_percentile": {}}
    print(f"| search (seeds {args.first_seed}-{args.first_seed + args.seeds - 1}) | 25 | 50 |\n|---|---|---|")
    for rule in ("random", "local", "oracle of 16", "oracle of 64", "oracle local"):
        results = [search(t, seed, rule) for seed in range(args.first_seed, args.first_seed + args.seeds)]
        cells = []
        for b in BUDGETS:
            values = np.array([r[b] for r in results])
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1) / np.sqrt(len(values)):.3f}")
        kept["searches"][rule] = [[r[b] for b in BUDGETS] for r in results]
        print(f"| {rule} | {' | '.join(cells)} |", flush=True)
    print("\n| surrogate, ucb | n = 8 | 16 | 24 |\n|---|---|---|---|")
    for name in ("ensemble", "ensemble + params", "gaussian process", "ridge", "random forest"):
        for ucb in (0.0, 2.0):
            row = [pick_quality(t, name, n, ucb, args.fits) for n in (8, 16, 24)]
            kept["pick_percentile"][f"{name}, ucb {ucb:g}"] = row
            print(f"| {name}, {ucb:g} | {' | '.join(f'{v:.3f}' for v in row)} |", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(kept))


if __name__ == "__main__":
    main()
