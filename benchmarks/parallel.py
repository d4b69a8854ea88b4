"""Child evaluations per minute with 1 and with N workers, in one run: the table in docs/benchmarks.md.

    python benchmarks/parallel.py [--settings 1,1x1,2] [--budget 16] [--strategy ppo] [--config configs/mnist.yaml]
        [--set key=value ...]

A setting is ``W`` (W workers, the default threads: one worker trains in the search process with every
core, more workers are processes with cores / W torch threads each) or ``WxT`` (W worker processes with T
threads each). Each setting runs the same search (configs/mnist.yaml: real MNIST children, PPO by default,
seed 0, no export; ``--config configs/default.yaml`` for small digits children; ``--set`` adds overrides to
every setting) from scratch, dataset loading and worker start-up included. Reported per setting: wall
time, children per minute, speed-up over the first setting, and the share of worker time not spent
training children, ``1 - sum(child durations) / (workers * wall)``: controller, data loading, store,
worker start-up and workers idle while PPO waits for the last children of a rollout.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from rlnas.config import load_config
from rlnas.driver import Search

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="1,1x1,2", help="comma-separated W or WxT")
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--strategy", default="ppo")
    parser.add_argument("--data-dir", help="dataset.data_dir (default for configs/mnist.yaml: ../shared/datasets)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "mnist.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every setting")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="rlnas-parallel-")))
    args = parser.parse_args()
    if args.data_dir is None and args.config.name == "mnist.yaml":
        args.data_dir = str(ROOT.parent / "shared" / "datasets")
    rows = []
    for setting in args.settings.split(","):
        workers, _, threads = setting.partition("x")
        overrides = [f"execution.workers={workers}"]
        if threads:
            overrides += ["execution.executor=process", f"execution.threads_per_worker={threads}"]
        overrides += [
            *([f"dataset.data_dir={args.data_dir}"] if args.data_dir else []),
            f"budget.evaluations={args.budget}",
            f"strategy.name={args.strategy}",
            "export.enabled=false",
            *args.set,
        ]
        config = load_config(args.config, overrides)
        start = time.perf_counter()
        search = Search(config, args.out / f"setting-{setting}")
        result = search.run()
        wall = time.perf_counter() - start
        trials = search.store.trials()
        search.close()
        training = sum(t.metrics.get("duration_s", 0.0) for t in trials)
        rows.append((setting, int(workers), len(trials), wall, training))
        print(f"{setting}: {len(trials)} children in {wall:.1f} s ({result.stop_reason})", flush=True)
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.strategy}, {args.budget} children of {args.config.name} per setting {' '.join(args.set)}\n"
    )
    print("| setting | wall (s) | children / min | speed-up | child training (s, summed) | not training |")
    print("|---|---|---|---|---|---|")
    base = rows[0][2] / rows[0][3]
    for setting, workers, n, wall, training in rows:
        rate = n / wall
        idle = 1.0 - training / (workers * wall)
        print(
            f"| {setting} | {wall:.1f} | {60 * rate:.2f} | {rate / base:.2f}x | {training:.1f} | {100 * idle:.1f} % |"
        )


if __name__ == "__main__":
    main()
