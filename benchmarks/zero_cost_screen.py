"""Does screening by a zero-cost proxy help random search and evolution on a space? The table in
docs/benchmarks.md ("Zero-cost proxies").

    python benchmarks/zero_cost_screen.py [--strategy random] [--proxy grad_norm] [--pool 8] [--budget 20] \\
        [--seeds 10] [--first-seed 100] [--set KEY=VALUE ...]

For each seed, one search without and one with ``strategy.zero_cost_screen`` (the default config: digits, CNN
space, 5-epoch children; nothing written to disk). Prints the mean best reward (validation accuracy minus the
complexity penalty) at the budget, the screened search's lead paired by seed, and the seconds per search.
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from rlnas.config import load_config
from rlnas.driver import Search


def best_reward(args: tuple[str, int, int, tuple[str, ...]]) -> tuple[float, float]:
    import torch

    torch.set_num_threads(1)
    strategy, seed, budget, overrides = args
    config = load_config(
        None,
        [
            f"strategy.name={strategy}",
            f"seed={seed}",
            f"budget.evaluations={budget}",
            "export.enabled=false",
            "logging.tensorboard=false",
            *overrides,
        ],
    )
    start = time.perf_counter()
    search = Search.in_memory(config)
    search.run()
    best = max(t.reward for t in search.store.trials())
    search.close()
    return best, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--proxy", default="grad_norm")
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    screen = (f"strategy.zero_cost_screen={args.proxy}", f"strategy.zero_cost_pool={args.pool}")
    jobs = [(args.strategy, s, args.budget, tuple(args.set)) for s in seeds]
    jobs += [(args.strategy, s, args.budget, (*args.set, *screen)) for s in seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(best_reward, jobs))
    plain, screened = np.array(results[: len(seeds)]), np.array(results[len(seeds) :])
    lead = screened[:, 0] - plain[:, 0]
    print(
        f"{args.strategy}, budget {args.budget}, seeds {seeds.start}-{seeds.stop - 1}, overrides {args.set or 'none'}"
    )
    print("| search | best reward | s / search |")
    print("|---|---|---|")
    for label, rows in ((args.strategy, plain), (f"{args.strategy}, {args.proxy} screen of {args.pool}", screened)):
        print(f"| {label} | {rows[:, 0].mean():.4f} ± {se(rows[:, 0]):.4f} | {rows[:, 1].mean():.1f} |")
    print(f"lead of the screened search: {lead.mean():+.4f} ± {se(lead):.4f} (paired)")


def se(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values)))


if __name__ == "__main__":
    main()
