"""DARTS' known failure, measured: does the derived cell collapse onto parameter-free operations?

Runs `rlnas search --evaluation oneshot --strategy darts` on the NAS-Bench-201 cell space (digits, 8x8, so
that it runs on a CPU) and reads back, from the run's TensorBoard events, the share of the cell's edges whose
most probable operation is parameter-free (none, skip_connect, avg_pool_3x3) after every proposal
(`darts/parameter_free_share`), and the same share among the architectures uniform random search would
draw (3/5 of the choices are parameter-free). Prints a Markdown table for docs/benchmarks.md.

    python benchmarks/darts_collapse.py [--budget 40] [--steps-per-ask 10] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def shares(run: Path) -> list[float]:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [e.value for e in events.Scalars("darts/parameter_free_share")]


def derived(run: Path) -> str:
    """The most probable operation of every edge, from the saved architecture logits (RUN/darts.pt)."""
    choices = {d["name"]: d["choices"] for d in json.loads((run / "space.json").read_text())["decisions"]}
    alphas = torch.load(run / "darts.pt", weights_only=True)["alphas"]
    return ", ".join(f"{name}={choices[name][int(alpha.argmax())]}" for name, alpha in alphas.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--steps-per-ask", type=int, default=10)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="rlnas-darts-")))
    args = parser.parse_args()
    rlnas = str(Path(sys.executable).parent / "rlnas")
    print("| seed | share after 25 % of the budget | 50 % | 75 % | 100 % | derived cell |")
    print("|---|---|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",")):
        run = args.out / f"seed{seed}"
        subprocess.run(
            [
                rlnas,
                "-q",
                "search",
                "--evaluation",
                "oneshot",
                "--strategy",
                "darts",
                "--seed",
                str(seed),
                "--budget",
                str(args.budget),
                "--no-export",
                "--run-dir",
                str(run),
                "--set",
                "space=nb201",
                "--set",
                "oneshot.steps_per_evaluation=0",
                "--set",
                "oneshot.warmup_epochs=5",
                "--set",
                f"strategy.darts.steps_per_ask={args.steps_per_ask}",
                "--set",
                "logging.graph=false",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        values = shares(run)
        marks = [values[max(0, round(f * len(values)) - 1)] for f in (0.25, 0.5, 0.75, 1.0)]
        print(f"| {seed} | " + " | ".join(f"{v:.2f}" for v in marks) + f" | {derived(run)} |")


if __name__ == "__main__":
    main()
