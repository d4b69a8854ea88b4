"""Strategy comparison on a tabular benchmark (NAS-Bench-201 format).

Each (strategy, seed, budget) is one search on the table with that budget of unique evaluations, through
the same driver as any search (nothing written to disk): strategies may plan with their budget. The
architecture a search selects is the one with the best validation accuracy it evaluated; its table test
accuracy is the result (the NAS-Bench-201 protocol). The best-so-far curves come from the runs with the
largest budget. Runs are spread over processes.
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
    evaluator = TableEvaluator(space, table, lam=config.objective.lambda_, with_params=strategy == "pareto")
    start = time.perf_counter()
    search = Search(config, space=space, evaluator=evaluator, persist=False)
    proposals = search.run().proposals
    trials = search.store.trials()
    search.close()
    seconds = time.perf_counter() - start
    curve, best_val, best_test = [], -math.inf, math.nan
    for trial in trials:
        val = trial.metrics.get("val_accuracy", -math.inf)
        if val > best_val:
            best_val, best_test = val, evaluator.test_accuracy(trial.architecture)
        curve.append(best_test)
    return RunCurve(strategy, seed, budget, curve, seconds, proposals)


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
    summary: dict[str, Any] = {}
    final = {key: {r.seed: r.test_at[-1] for r in rs if r.test_at} for key, rs in runs.items()}
    for strategy in strategies:
        summary[strategy] = {}
        for b in budgets:
            values = np.array(list(final[(strategy, b)].values()))
            summary[strategy][str(b)] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "n": int(len(values)),
            }
            if strategy != strategies[0]:
                lead = paired_margin(final[(strategies[0], b)], final[(strategy, b)])
                summary[strategy][str(b)]["margin"] = {"of": strategies[0], **lead}
    curves = {s: runs[(s, max(budgets))] for s in strategies}
    optimum = table.optimum()
    return {
        "summary": summary,
        "seconds_per_run": {s: float(np.mean([r.seconds for r in rs])) for s, rs in curves.items()},
        "proposals_per_run": {s: float(np.mean([r.proposals for r in rs])) for s, rs in curves.items()},
        "optimum": {"arch": optimum[0], "valid_acc_12ep": optimum[1], "test_acc_200ep": optimum[2]},
        "best_test": table.best_test(),
        "curves": {s: [r.test_at for r in rs] for s, rs in curves.items()},
        "budgets": list(budgets),
    }


def paired_margin(first: dict[int, float], other: dict[int, float]) -> dict[str, Any]:
    """One strategy's lead over another: mean and standard error of the difference of their results, paired
    by seed (over the seeds both have a result for; None where there are too few)."""
    d = np.array([first[seed] - other[seed] for seed in sorted(set(first) & set(other))])
    return {
        "mean": float(d.mean()) if len(d) else None,
        "se": float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else None,
        "n": int(len(d)),
    }


def plot_curves(result: dict[str, Any], path: str | Path) -> Path:
    """Best-so-far test accuracy of the selected architecture, mean with a 95% confidence band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for strategy, runs in result["curves"].items():
        n = min(len(r) for r in runs)
        data = np.array([r[:n] for r in runs])
        mean = data.mean(axis=0)
        half = 1.96 * data.std(axis=0, ddof=1) / math.sqrt(len(data)) if len(data) > 1 else np.zeros(n)
        x = np.arange(1, n + 1)
        ax.plot(x, mean, label=f"{strategy} (n={len(data)})")
        ax.fill_between(x, mean - half, mean + half, alpha=0.2)
    ax.axhline(result["optimum"]["test_acc_200ep"], color="black", linestyle="--", linewidth=1, label="optimum")
    ax.set_xlabel("unique architectures evaluated")
    ax.set_ylabel("test accuracy of the selected architecture (%)")
    ax.set_ylim(91.0, 94.6)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
