"""Strategy comparison on a tabular benchmark (NAS-Bench-201 format).

Each (strategy, seed, budget) is one search on the table with that budget of unique evaluations, through
the same driver as any search (nothing written to disk): strategies may plan with their budget. The
architecture a search selects is the one with the best validation accuracy it evaluated; its table test
accuracy is the result (the NAS-Bench-201 protocol). Beside it, the optimizer's own measure: the regret on
the searched metric, the table's best validation accuracy minus the best one the search found (a table whose
validation ranks poorly can make the better optimizer select a worse test accuracy). The best-so-far curves
come from the runs with the largest budget. Runs are spread over processes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.config import load_config
from rlnas.driver import Search
from rlnas.errors import ConfigError
from rlnas.evaluation.table import BenchmarkTable, TableEvaluator
from rlnas.space import build_space
from rlnas.strategies import NEEDS_SUPERNET, STRATEGIES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunCurve:
    strategy: str
    seed: int
    budget: int
    test_at: list[float]  # test accuracy (%) of the selected architecture after 1..n unique evaluations
    val_at: list[float]  # the best validation accuracy (%) found after 1..n unique evaluations
    seconds: float
    proposals: int  # architectures proposed, re-proposals answered by the cache included


@lru_cache(maxsize=2)
def _table(path: str) -> BenchmarkTable:
    return BenchmarkTable(path)


def run_on_table(
    strategy: str, seed: int, table_path: str | Path, budget: int, overrides: Sequence[str] = ()
) -> RunCurve:
    """One search of ``budget`` unique evaluations on the table; the anytime test-accuracy curve."""
    config = load_config(
        None,
        [
            "space=nb201",
            f"strategy.name={strategy}",
            f"budget.evaluations={budget}",
            f"seed={seed}",
            "export.enabled=false",
            "logging.tensorboard=false",
            "objective.lambda=0",  # the NAS-Bench-201 protocol: validation accuracy alone
            *overrides,
        ],
    )
    table = _table(str(table_path))
    space = build_space(config.space, (3, 32, 32))
    evaluator = TableEvaluator(space, table, config.objective, with_params=strategy == "pareto")
    start = time.perf_counter()
    search = Search.in_memory(config, space=space, evaluator=evaluator)
    proposals = search.run().proposals
    trials = search.store.trials()
    search.close()
    seconds = time.perf_counter() - start
    curve, vals, best_val, best_test = [], [], -math.inf, math.nan
    for trial in trials:
        val = trial.metrics.get("val_accuracy", -math.inf)
        if val > best_val:
            best_val, best_test = val, evaluator.test_accuracy(trial.architecture)
        curve.append(best_test)
        vals.append(100.0 * best_val)  # a fraction in the trial, % in the table
    return RunCurve(strategy, seed, budget, curve, vals, seconds, proposals)


def _single_threaded() -> None:
    """Runs are parallel across processes; tiny tensors run fastest on one thread per process."""
    import torch

    torch.set_num_threads(1)


def _job(args: tuple[str, int, str, int, tuple[str, ...]]) -> RunCurve:
    return run_on_table(*args)


def compare(
    table_path: str | Path,
    strategies: Sequence[str],
    budgets: Sequence[int],
    seeds: int,
    workers: int = 1,
    overrides: Sequence[str] = (),
    on_result: Callable[[RunCurve], None] | None = None,
    first_seed: int = 0,
) -> dict[str, Any]:
    """Run every strategy for seeds ``first_seed .. first_seed + seeds - 1``; summarize per strategy and
    budget."""
    usable = sorted(set(STRATEGIES) - NEEDS_SUPERNET)  # a table has no supernet
    unknown = [s for s in strategies if s not in usable]
    if unknown:
        raise ConfigError(f"unknown strategies {unknown} for a table benchmark; choose from {usable}")
    _check_overrides(overrides)
    table = _table(str(table_path))
    jobs = [
        (s, seed, str(table_path), b, tuple(overrides))
        for s in strategies
        for b in budgets
        for seed in range(first_seed, first_seed + seeds)
    ]
    runs: dict[tuple[str, int], list[RunCurve]] = {(s, b): [] for s in strategies for b in budgets}
    results: Any
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_single_threaded) if workers > 1 else None
    try:
        results = pool.map(_job, jobs, chunksize=max(1, len(jobs) // (workers * 8))) if pool else map(_job, jobs)
        for result in results:
            runs[(result.strategy, result.budget)].append(result)
            if on_result:
                on_result(result)
    finally:
        if pool is not None:
            pool.shutdown()
    optimum = table.optimum()
    final = {key: {r.seed: r.test_at[-1] for r in rs if r.test_at} for key, rs in runs.items()}
    regret = {key: {r.seed: optimum[1] - r.val_at[-1] for r in rs if r.val_at} for key, rs in runs.items()}
    summary: dict[str, Any] = {}
    for strategy in strategies:
        summary[strategy] = {}
        for b in budgets:
            key, first = (strategy, b), (strategies[0], b)
            summary[strategy][str(b)] = {**_spread(final[key]), "regret": _spread(regret[key])}
            if strategy != strategies[0]:
                summary[strategy][str(b)]["margin"] = {"of": strategies[0], **paired_margin(final[first], final[key])}
                # regret: lower is better, so the lead is the other's regret minus the first's
                lead = paired_margin(regret[key], regret[first])
                summary[strategy][str(b)]["regret"]["margin"] = {"of": strategies[0], **lead}
    curves = {s: runs[(s, max(budgets))] for s in strategies}
    return {
        "summary": summary,
        "seconds_per_run": {s: float(np.mean([r.seconds for r in rs])) for s, rs in curves.items()},
        "proposals_per_run": {s: float(np.mean([r.proposals for r in rs])) for s, rs in curves.items()},
        # the architecture with the table's best validation accuracy (what a perfect search selects)
        "optimum": {"arch": optimum[0], "valid_acc_12ep": optimum[1], "test_acc_200ep": optimum[2]},
        "best_test": table.best_test(),
        "curves": {s: [r.test_at for r in rs] for s, rs in curves.items()},
        "regret_curves": {s: [[optimum[1] - v for v in r.val_at] for r in rs] for s, rs in curves.items()},
        "budgets": list(budgets),
    }


def _spread(values_by_seed: dict[int, float]) -> dict[str, Any]:
    values = np.array(list(values_by_seed.values()), dtype=np.float64)
    return {
        "mean": float(values.mean()) if len(values) else None,
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "n": int(len(values)),
    }


# settings a table benchmark fixes itself, and where to set them instead
_FIXED = {
    "space": "the table answers for the NAS-Bench-201 cell space only (space=nb201)",
    "strategy.name": "give the strategies with --strategies",
    "budget.evaluations": "give the budgets with --budgets",
    "seed": "give the seeds with --seeds and --first-seed",
}


def _check_overrides(overrides: Sequence[str]) -> None:
    """Refuse ``--set`` overrides of what the benchmark fixes (they were silently overridden, or broke the
    table lookup deep inside a run)."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        for fixed, fix in _FIXED.items():
            if key == fixed or key.startswith(fixed + "."):
                raise ConfigError(f"--set {item!r}: a table benchmark sets {fixed} itself; {fix}")


def paired_margin(first: dict[int, float], other: dict[int, float]) -> dict[str, Any]:
    """One strategy's lead over another: mean and standard error of the difference of their results, paired
    by seed (over the seeds both have a result for; None where there are too few)."""
    d = np.array([first[seed] - other[seed] for seed in sorted(set(first) & set(other))])
    return {
        "mean": float(d.mean()) if len(d) else None,
        "se": float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else None,
        "n": int(len(d)),
    }


def accuracy_range(result: dict[str, Any]) -> tuple[float, float]:
    """The accuracy plot's y-range: from the lowest mean curve after its first 5 % of evaluations (the first
    few are near chance) to the best-validation architecture's test accuracy or the best mean, padded."""
    low, high = math.inf, float(result["optimum"]["test_acc_200ep"])
    for runs in result["curves"].values():
        n = min((len(r) for r in runs), default=0)
        if n:
            mean = np.nanmean(np.array([r[:n] for r in runs], dtype=np.float64), axis=0)
            low = min(low, float(np.nanmin(mean[n // 20 :])))
            high = max(high, float(np.nanmax(mean)))
    if not math.isfinite(low):
        low = high - 1.0
    pad = 0.08 * max(high - low, 0.1)
    return low - pad, high + pad


def plot_curves(result: dict[str, Any], path: str | Path) -> Path:
    """Left: best-so-far test accuracy of the selected architecture; right: the regret on the searched metric
    (the table's best validation accuracy minus the best found; log scale). Mean with a 95% confidence band;
    the y-range follows the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, reg) = plt.subplots(1, 2, figsize=(12, 5))
    for strategy, runs in result["curves"].items():
        for ax, data in ((acc, runs), (reg, result.get("regret_curves", {}).get(strategy))):
            if not data:
                continue
            n = min(len(r) for r in data)
            values = np.array([r[:n] for r in data], dtype=np.float64)
            mean = values.mean(axis=0)
            half = 1.96 * values.std(axis=0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else np.zeros(n)
            x = np.arange(1, n + 1)
            line = ax.plot(x, mean, label=f"{strategy} (n={len(values)})")[0]
            low = mean - half if ax is acc else np.maximum(mean - half, 0.0)  # a regret is never negative
            ax.fill_between(x, low, mean + half, alpha=0.2, color=line.get_color())
    optimum = result["optimum"]["test_acc_200ep"]
    acc.axhline(optimum, color="black", linestyle="--", linewidth=1, label="the best-validation architecture")
    acc.set_ylim(*accuracy_range(result))
    acc.set_xlabel("unique architectures evaluated")
    acc.set_ylabel("test accuracy of the selected architecture (%)")
    acc.legend(loc="lower right")
    reg.set_xlabel("unique architectures evaluated")
    reg.set_ylabel("regret: best validation of the table - best found (points)")
    reg.set_yscale("symlog", linthresh=0.01)
    reg.set_ylim(bottom=0.0)
    reg.legend(loc="upper right")
    for ax in (acc, reg):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
