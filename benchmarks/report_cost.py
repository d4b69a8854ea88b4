"""What scoring a child within its epochs costs (``pruning.reports_per_epoch``): a few sampled children of a
config's space trained once per setting, with scores at the epoch ends only, and with R reports per epoch on a
subset of the validation split (``pruning.report_examples``) or on all of it.

    python benchmarks/report_cost.py [--config configs/mnist.yaml] [--set dataset.data_dir=DIR] \
        [--children 4] [--reports 2,4] [--examples 1000]

Prints the seconds of each child's training per setting and its ratio to the epoch-ends-only training.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rlnas.config import load_config
from rlnas.evaluation.train import Reports
from rlnas.prepare import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist.yaml")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--children", type=int, default=4)
    parser.add_argument("--reports", default="2,4")
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    prepared = prepare(load_config(args.config, args.set))
    rng = np.random.default_rng(args.seed)
    settings = [("epoch ends", Reports())]
    for r in (int(x) for x in args.reports.split(",")):
        settings += [(f"{r}/epoch on {args.examples}", Reports(r, args.examples)), (f"{r}/epoch on all", Reports(r))]
    print(f"validation examples: {len(prepared.dataset.val)}")
    for child in range(args.children):
        arch = prepared.space.sample(rng)
        seconds = {}
        for name, reports in settings:
            start = time.perf_counter()
            prepared.trainer.validate(arch, 0, on_epoch=lambda e: None, reports=reports)
            seconds[name] = time.perf_counter() - start
        base = seconds["epoch ends"]
        print(f"child {child}: " + ", ".join(f"{n} {s:.2f} s ({s / base:.2f})" for n, s in seconds.items()))


if __name__ == "__main__":
    main()
