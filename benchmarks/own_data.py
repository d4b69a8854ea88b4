"""Your own data, measured: MNIST as a folder of PNG files, and scikit-learn tables as CSV files.

    python benchmarks/own_data.py folder --out /tmp/own [--data ../shared/datasets] [--search]
    python benchmarks/own_data.py tables --out /tmp/own [--budget 40] [--seeds 0,1,2] [--split-per-seed]

``folder`` writes MNIST's 70,000 images as PNG files (DIR/train/<digit>/, DIR/test/<digit>/), times the first
(parallel decode) and the cached load of ``dataset.name: folder``, checks classes, counts and pixels against
the built-in ``mnist`` loader and, with ``--search``, runs the same reduced configs/mnist.yaml search on both.
``tables`` writes ``load_diabetes`` (regression) and ``load_breast_cancer`` (classification) as CSV files,
searches each with configs/table.yaml and compares the exported model with scikit-learn baselines trained on
the same train+validation rows and scored on the same test rows. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RLNAS = [str(Path(sys.executable).parent / "rlnas")]


def write_mnist_folder(data_dir: Path, out: Path) -> None:
    import torchvision
    from PIL import Image

    for split, train in (("train", True), ("test", False)):
        ds = torchvision.datasets.MNIST(root=str(data_dir), train=train, download=False)
        for i, (img, label) in enumerate(zip(ds.data.numpy(), ds.targets.numpy(), strict=True)):
            folder = out / split / str(int(label))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:05d}.png")


def folder(args: argparse.Namespace) -> None:
    from rlnas.data import from_folder, load_dataset

    images = args.out / "mnist_png"
    if not (images / "test").is_dir():
        start = time.perf_counter()
        write_mnist_folder(args.data, images)
        print(f"wrote 70,000 PNG files in {time.perf_counter() - start:.1f} s")
    cache = args.out / "cache"
    if cache.exists():
        import shutil

        shutil.rmtree(cache)
    start = time.perf_counter()
    first = from_folder(images, cache_dir=str(cache), val_fraction=0.1)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    cached = from_folder(images, cache_dir=str(cache), val_fraction=0.1)
    cached_s = time.perf_counter() - start
    builtin = load_dataset("mnist", data_dir=str(args.data), val_fraction=0.1)

    def content(d):  # type: ignore[no-untyped-def]
        return {
            s: (len(d.split(s)), int(d.split(s).x.long().sum()), np.bincount(d.split(s).y.numpy()).tolist())
            for s in ("train", "val", "test")
        }

    same = content(first) == content(builtin) and cached.fingerprint() == first.fingerprint()
    print(f"| load | seconds | ({os.cpu_count()} cores) |\n|---|---|---|")
    print(f"| first load: scan, parallel decode of 70,000 PNGs, cache write | {first_s:.1f} | |")
    print(f"| cached load | {cached_s:.1f} | |")
    print(
        f"classes {first.class_names}, examples {[len(first.split(s)) for s in ('train', 'val', 'test')]}, "
        f"same splits, pixel sums and class counts as the built-in mnist: {same}"
    )
    if args.search:
        common = [
            "--config",
            str(ROOT / "configs" / "mnist.yaml"),
            "--budget",
            str(args.budget),
            "--set",
            "export.rescore_top_k=1",
            "--set",
            "export.repeats=1",
            "--set",
            f"export.epochs={args.epochs}",
            "--seed",
            "0",
        ]
        rows = []
        for name, data_args in (
            ("mnist (built-in)", ["--set", f"dataset.data_dir={args.data}"]),
            (
                "folder of PNGs",
                [
                    "--set",
                    "dataset.name=folder",
                    "--set",
                    "dataset.data_dir=null",
                    "--set",
                    f"dataset.path={images}",
                    "--set",
                    f"dataset.cache_dir={cache}",
                ],
            ),
        ):
            run = args.out / name.split()[0]
            start = time.perf_counter()
            subprocess.run(
                [*RLNAS, "-q", "search", *common, *data_args, "--run-dir", str(run)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            metrics = json.loads((run / "export" / "metrics.json").read_text())
            summary = json.loads((run / "run.json").read_text())
            rows.append(
                f"| {name} | {time.perf_counter() - start:.0f} s | {summary['best_proxy_val_score']:.4f} | "
                f"{100 * metrics['test_accuracy']:.2f} % | {metrics['params']} |"
            )
        print("\n| data | wall (search + export) | best proxy val accuracy | final test accuracy | params |")
        print("|---|---|---|---|---|")
        print("\n".join(rows))


def write_csv(path: Path, names: list[str], x: np.ndarray, y: np.ndarray) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*names, "target"])
        writer.writerows([*(f"{v:.8g}" for v in row), f"{t:.8g}"] for row, t in zip(x, y, strict=True))


def baselines(dataset, seed: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """scikit-learn on the same rows: fitted on train+validation, scored on test (features standardized)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([dataset.train.x.numpy(), dataset.val.x.numpy()])
    y = np.concatenate([dataset.train.y.numpy(), dataset.val.y.numpy()])
    regression = dataset.task == "regression"
    models = {
        "MLP (defaults)": MLPRegressor(random_state=seed) if regression else MLPClassifier(random_state=seed),
        "Ridge" if regression else "LogisticRegression": Ridge() if regression else LogisticRegression(),
    }
    score = r2_score if regression else accuracy_score
    out = {}
    for name, model in models.items():
        pipe = make_pipeline(StandardScaler(), model).fit(x, y)
        out[name] = float(score(dataset.test.y.numpy(), pipe.predict(dataset.test.x.numpy())))
    return out


def tables(args: argparse.Namespace) -> None:
    import warnings

    from sklearn.datasets import load_breast_cancer, load_diabetes

    from rlnas.data import from_csv

    warnings.filterwarnings("ignore")  # MLP convergence warnings at scikit-learn's default max_iter
    head = ["data (test rows)", "metric", "seed", "split seed", "rlnas mlp (budget, wall)", "scikit-learn MLP"]
    print("| " + " | ".join([*head, "linear"]) + " |")
    print("|---|---|---|---|---|---|---|")
    for name, loader in (("diabetes", load_diabetes), ("breast_cancer", load_breast_cancer)):
        if args.only and name != args.only:
            continue
        d = loader()
        path = args.out / f"{name}.csv"
        write_csv(path, list(d.feature_names), d.data, d.target)
        metric = "r2" if from_csv(path).task == "regression" else "accuracy"
        differences = []
        for seed in args.seeds:
            split = seed if args.split_per_seed else 0
            dataset = from_csv(path, split_seed=split)
            run = args.out / f"{name}-{seed}"
            if run.exists():
                import shutil

                shutil.rmtree(run)
            start = time.perf_counter()
            subprocess.run(
                [
                    *RLNAS,
                    "-q",
                    "search",
                    "--config",
                    str(ROOT / "configs" / "table.yaml"),
                    "--data",
                    str(path),
                    "--budget",
                    str(args.budget),
                    "--seed",
                    str(seed),
                    "--run-dir",
                    str(run),
                    "--set",
                    f"dataset.split_seed={split}",
                    *[item for o in args.set for item in ("--set", o)],
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - start
            metrics = json.loads((run / "export" / "metrics.json").read_text())
            base = baselines(dataset, seed)
            mean, std = metrics[f"test_{metric}_mean"], metrics[f"test_{metric}_std"]
            # the exported model's score when it is an ensemble; else the mean of the final trainings (the
            # exported one, the best of them on test, would be optimistic)
            shown = (
                f"{metrics[f'test_{metric}']:.4f} (members {mean:.4f} ± {std:.4f})"
                if metrics.get("ensemble", 1) > 1
                else f"{mean:.4f} ± {std:.4f}"
            )
            differences.append(metrics[f"test_{metric}"] - base["MLP (defaults)"])
            print(
                f"| {name} ({len(dataset.test)}) | test {metric} | {seed} | {split} | {shown} "
                f"({args.budget}, {wall:.0f} s) | {list(base.values())[0]:.4f} | "
                f"{list(base.keys())[1]} {list(base.values())[1]:.4f} |",
                flush=True,
            )
        if len(differences) > 1:
            d = np.array(differences)
            print(
                f"\n{name}: the exported model minus scikit-learn's MLP, mean over {len(d)} seeds "
                f"{d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(len(d)):.4f} (standard error); ahead on "
                f"{int((d > 1e-6).sum())}, level on {int((abs(d) <= 1e-6).sum())}, behind on {int((d < -1e-6).sum())}\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["folder", "tables"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--search", action="store_true", help="folder: also search both ways")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3, help="folder --search: final training epochs")
    parser.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="tables: a config override for rlnas")
    parser.add_argument("--only", help="tables: diabetes or breast_cancer")
    parser.add_argument(
        "--split-per-seed",
        action="store_true",
        help="tables: draw the train/validation/test split with the seed (dataset.split_seed), so that the seeds "
        "average over test sets; default: every seed on split 0",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    folder(args) if args.what == "folder" else tables(args)


if __name__ == "__main__":
    main()
