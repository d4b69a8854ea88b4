"""How well does the supernet rank architectures? Kendall tau between supernet and standalone accuracy.

Trains the supernet of a config's space as one-shot search does (``oneshot.warmup_epochs`` epochs on
uniformly random feasible paths), draws N random feasible architectures (seeded), scores each with the
shared weights (batch-norm recalibrated) and trains each standalone at the config's proxy fidelity
(``training.*``), then prints Kendall's tau and Spearman's rho between the two validation accuracies, and
writes every pair to a JSON file.

    python benchmarks/oneshot_kendall.py --config configs/mnist.yaml --set dataset.data_dir=../shared/datasets \
        --archs 30 --json docs/oneshot_kendall_mnist.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from rlnas.config import load_config
from rlnas.evaluation.objective import Objective
from rlnas.evaluation.trainer import child_seed
from rlnas.oneshot.evaluator import OneShotEvaluator
from rlnas.prepare import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="draws the architectures")
    parser.add_argument("--supernet-seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--standalone-from", type=Path, help="reuse the standalone accuracies of an earlier JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config(args.config, ["evaluation=oneshot", "pruning.rule=none", *args.set])
    p = prepare(config)
    objective = Objective.for_space(config.objective, p.space, p.dataset.input_shape, p.dataset.num_outputs)
    evaluator = OneShotEvaluator(p.space, p.dataset, config.training, config.oneshot, objective, args.supernet_seed)
    start = time.perf_counter()
    evaluator.warm_up()
    warmup = time.perf_counter() - start
    rng = np.random.default_rng(args.seed + 1)
    archs = []
    while len(archs) < args.archs:
        arch = p.space.sample(rng)
        if arch not in archs and evaluator.feasible(arch):
            archs.append(arch)
    known = {}
    if args.standalone_from is not None:
        for row in json.loads(args.standalone_from.read_text())["pairs"]:
            known[json.dumps(row["architecture"], sort_keys=True)] = (
                row["standalone_val_accuracy"],
                row["train_seconds"],
            )
    rows = []
    for i, arch in enumerate(archs):
        t = time.perf_counter()
        supernet = evaluator.score(arch)["val_accuracy"]
        scored = time.perf_counter() - t
        t = time.perf_counter()
        standalone, seconds = known.get(json.dumps(arch.to_dict(), sort_keys=True), (None, 0.0))
        if standalone is None:
            standalone = p.trainer.validate(arch, child_seed(config.seed, arch))[1]["val_accuracy"]
            seconds = time.perf_counter() - t
        rows.append(
            {
                "architecture": arch.to_dict(),
                "supernet_val_accuracy": supernet,
                "standalone_val_accuracy": standalone,
                "score_seconds": scored,
                "train_seconds": seconds,
            }
        )
        logging.info("%d/%d supernet %.4f standalone %.4f", i + 1, len(archs), supernet, standalone)
    a = [r["supernet_val_accuracy"] for r in rows]
    b = [r["standalone_val_accuracy"] for r in rows]
    result = {
        "config": str(args.config or "defaults"),
        "overrides": args.set,
        "archs": len(rows),
        "kendall_tau": float(kendalltau(a, b).statistic),
        "spearman_rho": float(spearmanr(a, b).statistic),
        "supernet_steps": evaluator.steps,
        "warmup_seconds": warmup,
        "mean_score_seconds": float(np.mean([r["score_seconds"] for r in rows])),
        "mean_standalone_seconds": float(np.mean([r["train_seconds"] for r in rows])),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "pairs": rows,
    }
    print(
        f"Kendall tau {result['kendall_tau']:.3f}, Spearman rho {result['spearman_rho']:.3f} over {len(rows)} "
        f"architectures; supernet {evaluator.steps} steps in {warmup:.0f} s, {result['mean_score_seconds']:.2f} s per "
        f"score; standalone {result['mean_standalone_seconds']:.1f} s per child"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
