"""Reports of finished runs: the trials as CSV and Excel, plots, an index.html that shows them all.

One run: score over trials with best-so-far, the Pareto front of proxy accuracy vs params and vs latency,
the controller's choice probabilities per decision over time (a heatmap per decision, read from the
run's TensorBoard events). Several runs: their best-so-far curves on one plot.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.driver import TENSORBOARD_DIR, open_run, pareto_front
from rlnas.evaluation.base import COMPLETE, val_score
from rlnas.store import TrialRecord

log = logging.getLogger(__name__)
REPORT_DIR = "report"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _best_so_far(records: Sequence[TrialRecord]) -> np.ndarray:
    values = [r.reward if r.status == COMPLETE else -np.inf for r in records]
    return np.maximum.accumulate(np.asarray(values, dtype=float)) if values else np.zeros(0)


def plot_scores(records: Sequence[TrialRecord], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    done = [r for r in records if r.status == COMPLETE]
    ax.scatter([r.number for r in done], [r.reward for r in done], s=12, alpha=0.6, label="reward (proxy)")
    failed = [r.number for r in records if r.status != COMPLETE]
    if failed:
        ax.scatter(failed, [min(r.reward for r in records)] * len(failed), marker="x", color="red", label="failed")
    ax.plot([r.number for r in records], _best_so_far(records), color="black", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("reward = proxy val score - lambda * complexity")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pareto(records: Sequence[TrialRecord], metric: str, path: Path) -> Path | None:
    points = [r for r in records if r.status == COMPLETE and metric in r.metrics and val_score(r.metrics) is not None]
    if not points:
        return None
    plt = _pyplot()
    front = pareto_front(list(records), metric)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter([r.metrics[metric] for r in points], [val_score(r.metrics) for r in points], s=12, alpha=0.5)
    ax.plot(
        [r.metrics[metric] for r in front],
        [val_score(r.metrics) for r in front],
        "o-",
        color="C3",
        label="Pareto front",
    )
    ax.set_xscale("log")
    ax.set_xlabel(metric)
    ax.set_ylabel("proxy validation " + ("R²" if "val_r2" in points[0].metrics else "accuracy"))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_repeats(metrics: dict[str, Any], path: Path) -> Path | None:
    """Box plots of repeated trainings: each re-scored top configuration (validation accuracy, one point
    per seed) and the final trainings of the winner (test accuracy). None if nothing was repeated."""
    score = metrics.get("score", "accuracy")
    rescored = [row for row in metrics.get("rescored", []) if len(row.get(f"rescored_val_{score}_values", [])) > 1]
    final = [r[f"test_{score}"] for r in metrics.get(f"test_{score}_repeats", [])]
    panels = []
    if rescored:
        data = [row[f"rescored_val_{score}_values"] for row in rescored]
        labels = [f"trial {row['trial']}" for row in rescored]
        epochs = rescored[0]["rescore_epochs"]
        panels.append((data, labels, f"re-scoring: validation {score} ({epochs} epochs, {len(data[0])} seeds)"))
    if len(final) > 1:
        panels.append(([final], [f"trial {metrics['trial']}"], f"final: test {score} ({len(final)} seeds)"))
    if not panels:
        return None
    plt = _pyplot()
    widths = [max(2, len(p[0])) for p in panels]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3 + 1.2 * sum(widths), 4), squeeze=False, gridspec_kw={"width_ratios": widths}
    )
    rng = np.random.default_rng(0)  # jitter of the points only
    for ax, (data, labels, title) in zip(axes[0], panels, strict=True):
        ax.boxplot(data, tick_labels=labels)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.08, 0.08, len(values)), values, s=14, color="C1", zorder=3)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def policy_history(run: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``policy/<decision>/<choice>`` scalars of the run's TensorBoard events: decision -> choice -> points."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = run / TENSORBOARD_DIR
    if not logdir.is_dir():
        return {}
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for tag in acc.Tags()["scalars"]:
        parts = tag.split("/")
        if len(parts) == 3 and parts[0] == "policy":
            out.setdefault(parts[1], {})[parts[2]] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return out


def plot_policy(history: dict[str, dict[str, list[tuple[int, float]]]], path: Path) -> Path | None:
    if not history:
        return None
    plt = _pyplot()
    decisions = sorted(history)
    steps = sorted({s for d in decisions for c in history[d] for s, _ in history[d][c]})
    fig, axes = plt.subplots(len(decisions), 1, figsize=(8, 1.1 * len(decisions) + 1), squeeze=False)
    for ax, decision in zip(axes[:, 0], decisions, strict=True):
        choices = sorted(history[decision])
        grid = np.full((len(choices), len(steps)), np.nan)
        for i, choice in enumerate(choices):
            for step, value in history[decision][choice]:
                grid[i, steps.index(step)] = value
        ax.imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(choices)), choices, fontsize=7)
        ax.set_ylabel(decision, rotation=0, ha="right", fontsize=8)
        ax.set_xticks([])
    axes[-1, 0].set_xlabel(
        "controller updates: probability of each choice along the most probable architecture (blank: not on it)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_runs(runs: dict[str, Sequence[TrialRecord]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, records in runs.items():
        ax.plot(range(1, len(records) + 1), _best_so_far(records), label=name)
    ax.set_xlabel("trials")
    ax.set_ylabel("best reward so far (proxy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_excel(records: Sequence[TrialRecord], path: Path) -> Path:
    from openpyxl import Workbook

    rows = [r.flat() for r in records]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    book = Workbook()
    sheet = book.active
    sheet.title = "trials"
    sheet.append(columns)
    for row in rows:
        sheet.append([row.get(c) if not isinstance(row.get(c), (list, dict)) else str(row.get(c)) for c in columns])
    book.save(path)
    return path


def report(runs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the report of one run (into RUN/report) or the comparison of several (into ``out``)."""
    paths = [Path(r) for r in runs]
    loaded = {}
    for path in paths:
        config, store = open_run(path)
        with store:
            loaded[path] = (config, store.trials())
    target = Path(out) if out is not None else paths[0] / REPORT_DIR
    target.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, Path]] = []
    if len(paths) == 1:
        path = paths[0]
        config, records = loaded[path]
        with open_run(path)[1] as store:
            store.to_csv(target / "trials.csv")
        write_excel(records, target / "trials.xlsx")
        images.append(("Reward over trials", plot_scores(records, target / "scores.png")))
        for metric in ("params", "latency_ms"):
            image = plot_pareto(records, metric, target / f"pareto_{metric}.png")
            if image is not None:
                images.append((f"Proxy accuracy vs {metric}", image))
        metrics_file = path / "export" / "metrics.json"
        if metrics_file.is_file():
            boxes = plot_repeats(json.loads(metrics_file.read_text()), target / "repeats.png")
            if boxes is not None:
                images.append(("Repeated trainings of the top configurations", boxes))
        policy = plot_policy(policy_history(path), target / "policy.png")
        if policy is not None:
            images.append(("Controller choice probabilities", policy))
        title = f"rlnas report: {path.name}"
    else:
        images.append(("Best reward so far", plot_runs({p.name: loaded[p][1] for p in paths}, target / "runs.png")))
        title = "rlnas comparison: " + ", ".join(p.name for p in paths)
    _log_to_tensorboard(paths, images)
    body = "\n".join(
        f"<h2>{html.escape(name)}</h2><img src='{img.name}' style='max-width:100%'>" for name, img in images
    )
    links = (
        "" if len(paths) > 1 else "<p><a href='trials.csv'>trials.csv</a> · <a href='trials.xlsx'>trials.xlsx</a></p>"
    )
    (target / "index.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>"
        f"<p>Accuracies are proxy (search-time) accuracies unless labelled re-scoring or final.</p>{links}{body}"
        "</body></html>"
    )
    return target


def _log_to_tensorboard(paths: Sequence[Path], images: list[tuple[str, Path]]) -> None:
    """The same images, into the (first) run's TensorBoard under ``report/``."""
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    logdir = paths[0] / TENSORBOARD_DIR
    if not logdir.is_dir():
        return
    writer = SummaryWriter(log_dir=str(logdir))
    for _, image in images:
        with Image.open(image) as img:
            array = np.asarray(img.convert("RGB"))
        writer.add_image(f"report/{image.stem}", array, dataformats="HWC")
    writer.close()
