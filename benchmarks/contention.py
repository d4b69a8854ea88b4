"""One child's training time with every core's torch thread against one thread, on a quiet machine and while
other processes keep cores busy (what a laptop, a shared server or a second search does).

    python benchmarks/contention.py [--config configs/default.yaml] [--busy 1] [--repeats 3]

Trains the same child (the space's first sample for the run's seed) in the search process, as one worker
does, with every core's thread (torch's default), with 1 thread and with ``execution.threads_per_worker=auto`` (the
cores free when the child starts, ``rlnas.evaluation.executors.free_cores``), each with no busy process and with
``--busy`` processes spinning on the CPU. Reports the median training seconds of ``--repeats`` trainings.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from rlnas.config import load_config
from rlnas.evaluation.executors import cores, free_cores
from rlnas.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]


def spin(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    parser.add_argument("--busy", type=int, default=1, help="processes spinning on the CPU meanwhile")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = load_config(args.config, [])
    prepared = prepare(config)
    arch = prepared.space.sample(np.random.default_rng(config.seed))
    print(f"{args.config.name}, {cores()} cores, child: {arch.describe()}\n")
    print("| busy processes | torch threads | training seconds (median) | all |")
    print("|---|---|---|---|")
    context = multiprocessing.get_context("spawn")
    for busy in (0, args.busy):
        stop = context.Event()
        spinners = [context.Process(target=spin, args=(stop,), daemon=True) for _ in range(busy)]
        for p in spinners:
            p.start()
        time.sleep(1.0 if busy else 0.0)
        try:
            for how in ("every core", "1", "auto (free cores)"):
                seconds, chosen = [], []
                for r in range(args.repeats):
                    threads = {"every core": cores(), "1": 1}.get(how) or free_cores()
                    chosen.append(threads)
                    torch.set_num_threads(threads)
                    start = time.perf_counter()
                    prepared.trainer.validate(arch, seed=r)
                    seconds.append(time.perf_counter() - start)
                shown = ", ".join(f"{s:.2f}" for s in seconds)
                picked = ", ".join(str(t) for t in chosen)
                print(f"| {busy} | {how}: {picked} | {statistics.median(seconds):.2f} | {shown} |", flush=True)
        finally:
            stop.set()
            for p in spinners:
                p.join()


if __name__ == "__main__":
    main()
