"""Memory of worker processes: is the dataset held once (shared memory) or once per worker?

    python benchmarks/worker_memory.py [--config configs/mnist.yaml] [--workers 1,2,4] [--data-dir DIR]

For each number of workers, starts the run's process pool exactly as a search does (the real worker factory,
the dataset sent along), trains one child in each worker (so that each has read the data), and reads each
worker's ``/proc/PID/smaps_rollup`` (Linux): resident set, proportional set (PSS, shared pages divided among
the processes that map them), the shared-memory part of PSS and the private pages. With the dataset in
shared memory, the workers' private memory does not grow with the dataset, and the shared-memory PSS of all
workers together stays about one dataset however many workers there are. ``--copy`` sends each worker its
own copy of the dataset instead (plain pickle), for comparison.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

from rlnas.config import load_config
from rlnas.evaluation.base import Evaluator
from rlnas.evaluation.executors import Job, TrainingEvaluatorFactory
from rlnas.evaluation.processes import ProcessPool
from rlnas.prepare import prepare
from rlnas.space.core import Architecture

ROOT = Path(__file__).resolve().parents[1]


def rollup(pid: int) -> dict[str, float]:
    """The fields of smaps_rollup, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        out[name.rstrip(":")] = int(value) / 1024
    return out


class Copying:
    """The worker factory with the dataset as plain pickle bytes: every worker unpickles its own copy (and
    drops the bytes)."""

    def __init__(self, factory: TrainingEvaluatorFactory, data: bytes) -> None:
        self.factory, self.data = factory, data

    def __call__(self) -> Evaluator:
        from dataclasses import replace

        dataset, self.data = pickle.loads(self.data), b""
        return replace(self.factory, dataset=dataset)()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "mnist.yaml")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--copy", action="store_true", help="one copy of the dataset per worker (comparison)")
    args = parser.parse_args()
    overrides = [f"dataset.data_dir={args.data_dir}"] if args.config.name == "mnist.yaml" else []
    config = load_config(args.config, overrides)
    prepared = prepare(config)
    dataset = prepared.dataset
    splits = (dataset.train, dataset.val, dataset.test)
    data_mb = sum(t.element_size() * t.nelement() for s in splits for t in (s.x, s.y)) / 2**20
    small: list[Architecture] = []
    rng = np.random.default_rng(0)  # children that the run's max_params lets train
    while len(small) < max(int(w) for w in args.workers.split(",")):
        arch = prepared.space.sample(rng)
        if sum(p.numel() for p in prepared.trainer.build(arch).parameters()) <= (config.objective.max_params or 1e12):
            small.append(arch)
    how = "a copy per worker (--copy)" if args.copy else "shared memory"
    print(f"{args.config.name}: dataset tensors {data_mb:.1f} MB ({dataset.train.x.dtype}), sent as {how}\n")
    print("| workers | per worker: RSS | PSS | of it shared memory | private | all workers: PSS | shared memory |")
    print("|---|---|---|---|---|---|---|")
    for workers in (int(w) for w in args.workers.split(",")):
        real = TrainingEvaluatorFactory(config, 1.0, None, dataset)
        factory = Copying(real, pickle.dumps(dataset)) if args.copy else real
        pool = ProcessPool(factory, workers, 1, None, -1.0)
        try:
            for i in range(workers):
                pool.submit(Job(str(i), small[i], 1.0))
            done: list = []
            while len(done) < workers:
                done += pool.wait()
            stats = [rollup(w.process.pid) for w in pool.workers]
        finally:
            pool.close()
        n = len(stats)
        failed = [e.error for _, e in done if e.status != "COMPLETE"]
        assert not failed, failed

        def mean(key: str, stats: list[dict[str, float]] = stats, n: int = n) -> float:
            return sum(s[key] for s in stats) / n

        private = mean("Private_Clean") + mean("Private_Dirty")
        print(
            f"| {workers} | {mean('Rss'):.0f} MB | {mean('Pss'):.0f} MB | {mean('Pss_Shmem'):.0f} MB | "
            f"{private:.0f} MB | {n * mean('Pss'):.0f} MB | {n * mean('Pss_Shmem'):.0f} MB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
