"""Does each part of the image recipe help? The hand-made net trained on the training split with the whole
recipe of ``configs/small_images.yaml``'s final training, and with one part removed at a time, scored on the
validation split (never the test split), over a few seeds.

    python benchmarks/recipe_ablation.py --data-dir DIR [--dataset fashion_mnist] [--net two_conv] \
        [--epochs 10] [--seeds 2] [--first-seed 100] [--threads 1] [--jobs 2] \
        [--variants 'whole recipe,no padded random crops'] [--out docs/recipe_ablation.json] \
        [--stages plain:32:1:pool,plain:128:2:pool,plain:256:2:pool] [--reuse docs/recipe_ablation.json]

``--stages`` trains a searched convnet instead of ``--net`` (handmade.py's ``--stages``). ``--reuse`` takes the
rows of an earlier run's ``--out`` file with the same net, data, epochs, seeds and threads instead of training
them again (the trainings are deterministic: the whole recipe reproduces to the last digit).

Each row: the final validation accuracy, its mean over the seeds, and the mean paired difference from the
whole recipe with its standard error (a positive difference: the part helps).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

RECIPE = {
    "training.optimizer": "adamw",
    "training.learning_rate": "0.003",
    "training.weight_decay": "0.05",
    "training.schedule": "onecycle",
    "training.label_smoothing": "0.1",
    "training.erasing": "0.25",
    "training.batch_size": "128",
}
AUGMENT, EMA = "crop", "0.999"
# one part removed (or set to its plain value) per variant
VARIANTS: dict[str, tuple[dict[str, str], str, str]] = {
    "whole recipe": ({}, AUGMENT, EMA),
    "no label smoothing": ({"training.label_smoothing": "0.0"}, AUGMENT, EMA),
    "no random erasing": ({"training.erasing": "0.0"}, AUGMENT, EMA),
    "no weight EMA": ({}, AUGMENT, "0.0"),
    "no padded random crops": ({}, "none", EMA),
    "no weight decay": ({"training.weight_decay": "0.0"}, AUGMENT, EMA),
    "cosine instead of one-cycle": ({"training.schedule": "cosine"}, AUGMENT, EMA),
    "constant learning rate": ({"training.schedule": "constant"}, AUGMENT, EMA),
}


def run(args: argparse.Namespace, changes: dict[str, str], augment: str, ema: str, seed: int) -> float:
    recipe = {**RECIPE, **changes}
    command = [sys.executable, str(Path(__file__).with_name("handmade.py")), "--data-dir", args.data_dir]
    net = ["--stages", args.stages] if args.stages else ["--net", args.net]
    command += ["--dataset", args.dataset, *net, "--epochs", str(args.epochs), "--tune"]
    command += ["--seed", str(seed), "--augment", augment, "--ema", ema]
    for key, value in recipe.items():
        command += ["--set", f"{key}={value}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return float(json.loads(out)["val_curve"][-1])


SAME = ("data_dir", "dataset", "net", "stages", "epochs", "seeds", "first_seed", "threads")


def reused_rows(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, list[float]]:
    """The rows of an earlier run made with the same settings (anything else would not be comparable)."""
    earlier = json.loads(args.reuse.read_text())
    differ = [key for key in SAME if earlier["args"].get(key) != getattr(args, key)]
    if differ:
        parser.error(f"--reuse {args.reuse}: made with other {', '.join(differ)}; run without --reuse")
    return dict(earlier["results"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--net", default="two_conv")
    parser.add_argument("--stages", help="a convnet instead of --net: block:width:blocks:downsample,...")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=100, help="held-out seeds: 100 on")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at a time")
    parser.add_argument("--variants", help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--reuse", type=Path, help="an earlier --out file whose rows are not trained again")
    args = parser.parse_args()
    chosen = [v.strip() for v in args.variants.split(",")] if args.variants else list(VARIANTS)
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown or "whole recipe" not in chosen:
        parser.error(f"--variants: unknown {unknown} or no 'whole recipe'; choose from {', '.join(VARIANTS)}")
    reused = reused_rows(args, parser) if args.reuse else {}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with ThreadPoolExecutor(args.jobs) as pool:  # each training is its own process
        futures = {
            (name, seed): pool.submit(run, args, changes, augment, ema, seed)
            for name, (changes, augment, ema) in VARIANTS.items()
            if name in chosen and name not in reused
            for seed in seeds
        }
        for (name, seed), future in futures.items():  # each result as it comes, so a stopped run keeps them
            print(f"{name}, seed {seed}: {future.result():.4f}", flush=True)
        results = {
            name: reused[name] if name in reused else [futures[name, seed].result() for seed in seeds]
            for name in chosen
        }
    base = np.array(results["whole recipe"])
    print(
        f"\n| recipe ({args.stages or args.net}, {args.epochs} epochs, {args.dataset} validation) | accuracy per seed "
        "| mean | whole recipe minus this (paired, ± s.e.) |"
    )
    print("|---|---|---|---|")
    for name, values in results.items():
        v = np.array(values)
        diff = base - v
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        lead = "" if name == "whole recipe" else f"{100 * diff.mean():+.2f} ± {100 * se:.2f} points"
        shown = " / ".join(f"{100 * x:.2f}" for x in v)
        print(f"| {name} | {shown} | {100 * v.mean():.2f} % | {lead} |")
    if args.out is not None:
        args.out.write_text(json.dumps({"args": vars(args), "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
