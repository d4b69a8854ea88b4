"""What a report shows of its runs as figures: the loaded run (``Run``), the best-so-far and Pareto plots, the
children's validation curves and the repeats of the export (the controller's policy: rlnas/policy_view.py;
Optuna's plots of the trials: rlnas/report_optuna.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.config import RunConfig
from rlnas.evaluation.base import COMPLETE, PRUNED, val_score
from rlnas.rundir import SUMMARY_FILE, open_run
from rlnas.store import TrialRecord, pareto_front

log = logging.getLogger(__name__)
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Run:
    """What a report needs of one run directory."""

    path: Path
    config: RunConfig
    records: list[TrialRecord]
    summary: dict[str, Any]
    export: dict[str, Any] | None
    decisions: list[tuple[str, list[Any]]] = field(default_factory=list)  # space order, natural choice order

    @classmethod
    def load(cls, path: Path) -> Run:
        config, store = open_run(path, read_only=True)
        with store:
            records = store.trials()
        summary = _json(path / SUMMARY_FILE) or {}
        export = _json(path / "export" / "metrics.json")
        space = _json(path / "space.json") or {}
        decisions = [(d["name"], list(d["choices"])) for d in space.get("decisions", [])]
        return cls(path, config, records, summary, export, decisions)

    @property
    def score(self) -> str:
        regression = any("val_r2" in r.metrics or "supernet_val_r2" in r.metrics for r in self.records)
        return "r2" if regression else "accuracy"

    @property
    def score_key(self) -> str:
        """The metric a trial's search-time score is stored under: a trained proxy's or a supernet's."""
        prefix = "supernet_" if self.config.evaluation == "oneshot" else ""
        return f"{prefix}val_{self.score}"

    @property
    def score_label(self) -> str:
        return "supernet-estimated validation" if self.config.evaluation == "oneshot" else "proxy validation"

    @property
    def label(self) -> str:
        return f"{self.config.strategy.name}, seed {self.config.seed}"

    def best(self) -> TrialRecord | None:
        done = [r for r in self.records if r.status == COMPLETE and r.fidelity >= 1.0]
        done = done or [r for r in self.records if r.status == COMPLETE]
        return max(done, key=lambda r: (r.reward, -r.number)) if done else None

    def top(self, k: int) -> list[TrialRecord]:
        done = [r for r in self.records if r.status == COMPLETE]
        return sorted(done, key=lambda r: (-r.reward, r.number))[:k]


def run_labels(runs: Sequence[Run]) -> list[str]:
    """Strategy and seed of each run, with the run's folder (and its place in the list) where a label would
    repeat."""
    plain = [run.label for run in runs]
    named = [
        label if plain.count(label) == 1 else f"{label} ({run.path.resolve().name})"
        for run, label in zip(runs, plain, strict=True)
    ]
    return [label if named.count(label) == 1 else f"{label[:-1]}, #{i + 1})" for i, label in enumerate(named)]


def _json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        log.warning("cannot read %s; the report leaves it out", path)
        return None


# -- plots -------------------------------------------------------------------------------------------
def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def _best_so_far(records: Sequence[TrialRecord]) -> np.ndarray:
    values = [r.reward if r.status == COMPLETE else -np.inf for r in records]
    return np.maximum.accumulate(np.asarray(values, dtype=float)) if values else np.zeros(0)


def _counts(ax: Any, axis: str) -> None:
    """Plain tick labels (1k, 10k, 100k) on a log axis, without overlapping minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
    target.set_minor_formatter(NullFormatter())


def _short(v: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def plot_pareto(run: Run, metric: str, path: Path) -> Path | None:
    points = [
        r for r in run.records if r.status == COMPLETE and metric in r.metrics and val_score(r.metrics) is not None
    ]
    if not points:
        return None
    plt = _pyplot()
    front = pareto_front(list(run.records), metric)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(
        [r.metrics[metric] for r in points], [val_score(r.metrics) for r in points], s=14, alpha=0.45, label="children"
    )
    xs, ys = [r.metrics[metric] for r in front], [val_score(r.metrics) for r in front]
    ax.plot(xs, ys, "o-", color="C3", label="Pareto front")
    for r, x, y in zip(front, xs, ys, strict=True):
        ax.annotate(f"#{r.number}", (x, y), textcoords="offset points", xytext=(4, -11), fontsize=8, color="C3")
    ax.set_xscale("log")
    _counts(ax, "x")
    unit = {"params": "parameters", "flops": "FLOPs", "latency_ms": "latency (ms)"}.get(metric, metric)
    ax.set_xlabel(f"{unit} (log scale)")
    ax.set_ylabel(f"{run.score_label} {'R²' if run.score == 'r2' else 'accuracy'}")
    low = np.percentile([val_score(r.metrics) for r in points], 10)
    top = max(val_score(r.metrics) or 0.0 for r in points)
    ax.set_ylim(low - 0.05 * (top - low + 1e-9), top + 0.05 * (top - low + 1e-9))
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    ax.set_title("labels: trial numbers on the front; children below the 10th percentile are cut off", fontsize=8)
    return _save(fig, path)


def plot_curves(run: Run, path: Path, labelled: int = 5) -> Path | None:
    """Each child's validation score after each of its epochs (or parts of one), the best ``labelled`` children
    by reward drawn in colour with their trial numbers; None where no child has a curve of two scores or more."""
    curved = [r for r in run.records if len(r.curve) >= 2]
    if not curved:
        return None
    plt = _pyplot()
    best = {r.number for r in sorted(curved, key=lambda r: (-r.reward, r.number))[:labelled] if r.status == COMPLETE}
    fig, ax = plt.subplots(figsize=(8, 4.5))

    def epochs(r: TrialRecord) -> np.ndarray:  # several scores per epoch where pruning.reports_per_epoch > 1
        return np.arange(1, len(r.curve) + 1) * (r.metrics.get("epochs", len(r.curve)) / len(r.curve))

    for r in curved:
        if r.number in best:
            ax.plot(epochs(r), r.curve, "o-", lw=1.6, ms=3, label=f"#{r.number}", zorder=3)
        else:
            ax.plot(epochs(r), r.curve, "-", lw=0.8, color="0.6", alpha=0.5)
    stopped = [r for r in curved if r.status == PRUNED]
    if stopped:
        ends = ([epochs(r)[-1] for r in stopped], [r.curve[-1] for r in stopped])
        ax.plot(*ends, "x", color="tab:red", ms=5, alpha=0.7, label="stopped by the pruner", zorder=2)
    values = np.concatenate([np.asarray(r.curve, dtype=float) for r in curved])
    low = np.percentile(values, 10)
    top = float(values.max())
    ax.set_ylim(low - 0.05 * (top - low + 1e-9), top + 0.05 * (top - low + 1e-9))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{run.score_label} {'R²' if run.score == 'r2' else 'accuracy'}")
    if all(float(epochs(r)[0]).is_integer() for r in curved):
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", title="best by reward", title_fontsize=8)  # and the pruned ends
    ax.set_title("grey: the other children; scores below the 10th percentile are cut off", fontsize=8)
    return _save(fig, path)


def plot_repeats(metrics: dict[str, Any], path: Path) -> Path | None:
    """Box plots of repeated trainings: each re-scored top configuration (validation score, one point per
    seed) and the final trainings of the winner (test score). None if nothing was repeated."""
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
    return _save(fig, path)


def plot_runs(runs: Sequence[Run], path: Path) -> Path:
    """Best reward so far of several runs, labelled by strategy and seed, on a y-range that shows them."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    tails = []
    for i, (run, label) in enumerate(zip(runs, run_labels(runs), strict=True)):
        curve = _best_so_far(run.records)
        finite = np.where(np.isfinite(curve), curve, np.nan)
        ax.plot(range(1, len(curve) + 1), finite, label=label, color=f"C{i % 10}", linewidth=1.6)
        if np.isfinite(finite).any():
            tails.append(finite[np.isfinite(finite)][len(finite[np.isfinite(finite)]) // 5 :])
    if tails:
        values = np.concatenate(tails)
        low, high = float(values.min()), float(values.max())
        pad = 0.08 * (high - low) if high > low else 0.01
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("trials")
    ax.set_ylabel("best reward so far (proxy)")
    ax.set_title("y-axis from the curves after their first fifth", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
