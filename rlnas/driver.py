"""The one search loop, shared by every strategy: budget, cache, trial store, logging, failures.

``prepare`` turns a config into the pieces a run needs (dataset, space, trainer, objective); ``Search``
runs the loop ``ask -> evaluate (or answer from the cache) -> store -> log -> tell`` until the budget of
unique child evaluations (or minutes) is spent, then hands the best architecture to the export.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rlnas.config import RunConfig, load_config
from rlnas.data import Dataset, load_dataset
from rlnas.errors import RunDirError
from rlnas.evaluation.base import COMPLETE, Evaluator
from rlnas.evaluation.trainer import ChildTrainer, Objective, TrainingEvaluator
from rlnas.space import SearchSpace, build_space
from rlnas.store import TrialRecord, TrialStore
from rlnas.strategies import StrategyContext, StrategyExhausted, make_strategy
from rlnas.tracking import RunLogger

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
STORE_FILE = "trials.sqlite"
SUMMARY_FILE = "run.json"
TENSORBOARD_DIR = "tensorboard"
MAX_CONSECUTIVE_REPEATS = 1000  # a converged policy that proposes nothing new must not loop forever

Progress = Callable[[int, int, "TrialRecord | None"], None]


@dataclass
class Prepared:
    config: RunConfig
    dataset: Dataset
    space: SearchSpace
    trainer: ChildTrainer


def prepare(config: RunConfig) -> Prepared:
    """Load the dataset and build the space (raising user errors before anything is written)."""
    d = config.dataset
    dataset = load_dataset(d.name, d.data_dir, d.download, d.val_fraction, d.test_fraction, d.split_seed)
    space = build_space(config.space, dataset.input_shape)
    return Prepared(config, dataset, space, ChildTrainer(space, dataset, config.training))


def default_run_dir(config: RunConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(config.runs_root) / f"{config.space.name}__{config.strategy.name}__{config.seed}__{stamp}"


def open_run(run_dir: str | Path) -> tuple[RunConfig, TrialStore]:
    """The config and trial store of an existing run directory."""
    path = Path(run_dir)
    if not (path / CONFIG_FILE).is_file() or not (path / STORE_FILE).is_file():
        raise RunDirError(
            f"{path} is not an rlnas run directory (it needs {CONFIG_FILE} and {STORE_FILE}); "
            "pass the directory a search created, e.g. runs/<space>__<strategy>__<seed>__<time>"
        )
    return load_config(path / CONFIG_FILE), TrialStore(path / STORE_FILE)


def _create_run_dir(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        raise RunDirError(f"run directory {path} already exists and is not empty; choose another --run-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"cannot write to run directory {path} ({err}); choose a writable --run-dir") from None


@dataclass
class SearchResult:
    run_dir: Path
    evaluations: int
    best: TrialRecord | None
    stop_reason: str
    seconds: float
    export: dict[str, Any] | None = None


class Search:
    """One search run in one run directory."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path | None = None,
        evaluator: Evaluator | None = None,
        prepared: Prepared | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.prepared = prepared if prepared is not None else prepare(config)
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
        self.progress = progress
        _create_run_dir(self.run_dir)
        (self.run_dir / CONFIG_FILE).write_text(config.to_yaml())
        (self.run_dir / "space.json").write_text(json.dumps(self.prepared.space.to_dict(), indent=1))
        self.store = TrialStore(self.run_dir / STORE_FILE)
        tb = self.run_dir / TENSORBOARD_DIR if config.logging.tensorboard else None
        self.logger = RunLogger(tb)
        if evaluator is None:
            p = self.prepared
            objective = Objective.for_space(config.objective, p.space, p.dataset.input_shape, p.dataset.num_classes)
            self.store.set_meta("max_complexity", str(objective.max_complexity))
            evaluator = TrainingEvaluator(p.trainer, objective, config.seed)
        self.evaluator = evaluator
        ctx = StrategyContext(self.prepared.space, config, config.seed, self.run_dir, self.logger)
        self.strategy = make_strategy(config.strategy.name, ctx)

    def run(self) -> SearchResult:
        budget = self.config.budget
        start = time.monotonic()
        cache: dict[str, TrialRecord] = {t.key: t for t in self.store}
        evaluations = len(cache)
        repeats = failures = 0
        stop_reason = "budget of evaluations spent"
        try:
            while evaluations < budget.evaluations:
                if budget.minutes is not None and time.monotonic() - start > budget.minutes * 60:
                    stop_reason = f"time budget of {budget.minutes} minutes spent"
                    break
                try:
                    arch = self.strategy.ask()
                except StrategyExhausted as err:
                    stop_reason = f"strategy exhausted: {err}"
                    break
                if arch.key in cache:
                    repeats += 1
                    self.strategy.tell(arch, cache[arch.key].evaluation(cached=True))
                    if repeats >= MAX_CONSECUTIVE_REPEATS:
                        stop_reason = f"{repeats} proposals in a row were already evaluated (converged)"
                        break
                    continue
                repeats = 0
                started = time.time()
                evaluation = self.evaluator.evaluate(arch)
                record = self.store.append(arch, evaluation, self.strategy.name, started)
                cache[arch.key] = record
                evaluations += 1
                self.logger.trial(record)
                self.strategy.tell(arch, evaluation)
                failures = 0 if record.status == COMPLETE else failures + 1
                log.info("trial %d %s reward %.4f %s", record.number, record.status, record.reward, arch.describe())
                if self.progress is not None:
                    self.progress(evaluations, budget.evaluations, record)
                if failures >= budget.max_consecutive_failures:
                    stop_reason = f"{failures} children failed in a row (last: {record.error})"
                    log.error("stopping the search: %s", stop_reason)
                    break
        finally:
            self.strategy.close()
            self.logger.flush()
        best = self.store.top_k(1)
        seconds = time.monotonic() - start
        result = SearchResult(self.run_dir, evaluations, best[0] if best else None, stop_reason, seconds)
        self._finish(result)
        return result

    def _finish(self, result: SearchResult) -> None:
        best = result.best
        if best is not None and isinstance(self.evaluator, TrainingEvaluator):
            model = self.prepared.trainer.build(best.architecture)
            self.logger.best_child(best, model, self.prepared.dataset.input_shape, self.config.logging.graph)
        summary = {
            "evaluations": result.evaluations,
            "stop_reason": result.stop_reason,
            "search_seconds": result.seconds,
            "best_trial": None if best is None else best.number,
            "best_reward": None if best is None else best.reward,
            "best_proxy_val_accuracy": None if best is None else best.metrics.get("val_accuracy"),
            "pid": os.getpid(),
        }
        (self.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
        c = self.config
        hparams = {
            "strategy": c.strategy.name,
            "space": c.space.name,
            "dataset": c.dataset.name,
            "seed": c.seed,
            "budget": c.budget.evaluations,
            "epochs": c.training.epochs,
            "data_fraction": c.training.data_fraction,
            "complexity": c.objective.complexity,
            "lambda": c.objective.lambda_,
        }
        if best is not None:
            self.logger.hparams(
                hparams, {"best_reward": best.reward, "best_proxy_val_accuracy": best.metrics.get("val_accuracy", 0.0)}
            )
        self.logger.flush()

    def close(self) -> None:
        self.logger.close()
        self.store.close()
