"""The one search loop, shared by every strategy: budget, cache, trial store, logging, failures.

``Search`` (with the pieces :func:`rlnas.prepare.prepare` makes of a config) runs the loop ``ask -> evaluate
(or answer from the cache) -> store -> log -> tell`` until the budget of unique child evaluations (or minutes)
is spent, then hands the best architecture to the export.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rlnas.config import RunConfig, load_config
from rlnas.data import Dataset
from rlnas.errors import CallbackError, ConfigError, full_disk_stops
from rlnas.evaluation.base import (
    FAILED,
    INFEASIBLE,
    PRUNED,
    Evaluation,
    Evaluator,
    MultiFidelityEvaluator,
    cache_key,
    finite,
    val_score,
)
from rlnas.evaluation.executors import EvaluatorFactory, Executor, Job, TrainingEvaluatorFactory, given, make_executor
from rlnas.evaluation.objective import METRIC_OF, Objective, objective_name
from rlnas.evaluation.pruning import NEVER, Pruner, StopRule
from rlnas.evaluation.train import EpochEnd
from rlnas.loop_state import LoopState, cost
from rlnas.mirror import open_mirror
from rlnas.prepare import Prepared, prepare
from rlnas.rundir import (
    CONFIG_FILE,
    HPARAMS_DIR,
    RESUMABLE,
    SECONDS_META,
    STORE_FILE,
    TENSORBOARD_DIR,
    RunLock,
    check_unchanged,
    create_run_dir,
    default_run_dir,
    open_run,
    save_seconds,
    seconds_before,
    write_run_files,
    write_summary,
)
from rlnas.space import SearchSpace
from rlnas.space.core import Architecture
from rlnas.store import TrialRecord, TrialStore, trial_line
from rlnas.strategies import Proposal, StrategyContext, StrategyExhausted, WaitForResults, make_strategy
from rlnas.tracking import RunLogger

log = logging.getLogger(__name__)

# after every finished child: the budget spent (children fully trained; a pruned or lower-fidelity one counts its
# share), the budget, the child's record
Progress = Callable[[float, int, "TrialRecord | None"], None]
# hears of every epoch of every child as it trains: the child's architecture and what the epoch reported
EpochCallback = Callable[[Architecture, EpochEnd], None]
# the budget spent so far, counting the trained fraction of the children still running (progress bars)
Activity = Callable[[float], None]


@dataclass
class SearchResult:
    run_dir: Path | None
    evaluations: int
    best: TrialRecord | None
    stop_reason: str
    seconds: float
    proposals: int = 0  # asks answered, cached re-proposals included
    pruned: int = 0  # children stopped early by the pruner, over all the run's sessions


class Search:
    """One search run in one run directory."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path | None = None,
        *,
        data: Dataset | None = None,
        progress: Progress | None = None,
        on_epoch: EpochCallback | None = None,
        space: SearchSpace | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        """A new run in ``run_dir`` (default: a new folder under ``runs/``). ``data`` replaces the config's
        dataset (data handed over from Python); ``evaluator`` (with its ``space``) replaces real training, e.g. a
        table or a fake. ``progress`` hears of every finished trial, ``on_epoch`` of every epoch of a child in
        training (whatever executor trains it); an exception in either stops the search (finished trials stay
        stored). :meth:`resume` continues a run, :meth:`in_memory` searches without writing anything."""
        self.progress, self.on_epoch = progress, on_epoch
        self._open(
            config, Path(run_dir) if run_dir is not None else default_run_dir(config), False, data, space, evaluator
        )

    @classmethod
    def in_memory(
        cls,
        config: RunConfig,
        *,
        data: Dataset | None = None,
        progress: Progress | None = None,
        space: SearchSpace | None = None,
        evaluator: Evaluator | None = None,
    ) -> Search:
        """A search that writes nothing (an in-memory store, no TensorBoard, no export): for benchmarks."""
        search = cls.__new__(cls)
        search.progress, search.on_epoch = progress, None
        search._open(config, None, False, data, space, evaluator)
        return search

    def _open(
        self,
        config: RunConfig,
        run_dir: Path | None,
        resume: bool,
        data: Dataset | None,
        space: SearchSpace | None,
        evaluator: Evaluator | None,
    ) -> None:
        """Every constructor's assembly: the prepared data and space, then the run directory (created, or
        locked to resume; none in memory), then the run's parts."""
        self.config = config
        self.prepared: Prepared | None = None
        if evaluator is None:
            self.prepared = prepare(config, data, run_dir if resume else None)
            space = self.prepared.space
        elif space is None:
            raise ValueError("an evaluator needs the space it evaluates")
        self.space: SearchSpace = space
        self.activity: Activity | None = None
        self.run_dir = run_dir
        self._lock: RunLock | None = None
        if run_dir is not None:
            self._lock = RunLock(run_dir) if resume else create_run_dir(run_dir)
        again = f"`rlnas resume {run_dir}`" if resume else "the same command again (it starts the run afresh)"
        try:
            with full_disk_stops(run_dir, f"the run's set-up stopped: free some space, then run {again}"):
                self._assemble(config, space, evaluator, resume)
        except BaseException:
            self._abandon()  # a run that cannot be opened must not stay locked until garbage collection
            raise

    def _assemble(self, config: RunConfig, space: SearchSpace, evaluator: Evaluator | None, resume: bool) -> None:
        """The run's files, store, logger, evaluator, strategy and mirror (the run directory exists, locked)."""
        if self.run_dir is not None:
            dataset = None if self.prepared is None else self.prepared.dataset.summary()
            write_run_files(self.run_dir, config, space.to_dict(), dataset, resume)
        self.store = TrialStore(":memory:" if self.run_dir is None else self.run_dir / STORE_FILE)
        if self.run_dir is not None and not resume:
            self.store.set_meta("config", config.to_yaml())  # what resume compares config.yaml with
        tensorboard = self.run_dir is not None and config.logging.tensorboard
        self.logger = RunLogger(
            self.run_dir / TENSORBOARD_DIR if tensorboard and self.run_dir else None,
            space,
            self.run_dir / HPARAMS_DIR if self.run_dir else None,
        )
        self.logger.graph = config.logging.graph
        self.logger.policy_images = config.logging.policy_images
        if self.prepared is not None:
            prepared = self.prepared
            self.logger.model_builder = lambda arch: (prepared.trainer.build(arch), prepared.dataset.input_shape)
        score = "r2" if self.prepared is not None and self.prepared.dataset.task == "regression" else "accuracy"
        self.logger.start(score)
        if evaluator is None:
            assert self.prepared is not None
            evaluator, self.evaluator_factory = self._training_evaluator(self.prepared)
        else:
            self.evaluator_factory = given(evaluator)
        self.evaluator = evaluator
        self.pruner = Pruner(config.pruning)
        self.pruner.check(evaluator, config.training.epochs)
        ctx = StrategyContext(space, config, config.seed, self.run_dir, self.logger, evaluator)
        self.strategy = make_strategy(config.strategy.name, ctx)
        self.resumed = resume
        self.mirror = None
        if config.logging.optuna and self.run_dir is not None:
            attrs = {"strategy": config.strategy.name, "space": space.name, "seed": config.seed}
            objective = objective_name(config.objective, score)
            self.mirror = open_mirror(self.run_dir, space, attrs, objective, self.store.trials() if resume else [])
        if resume:
            done = self.store.trials()
            self.strategy.warm_start(done)
            for record in done:
                self.logger.trial(record, write=False)  # best-so-far curves continue where they were
            log.info("resuming %s with %d finished trials", self.run_dir, len(done))

    def _training_evaluator(self, p: Prepared) -> tuple[Evaluator, EvaluatorFactory]:
        """The evaluator that trains children (or scores them in a supernet) and the factory that makes one in
        each worker process or Ray actor (which load the dataset themselves)."""
        config = self.config
        objective = Objective.for_space(config.objective, p.space, p.dataset.input_shape, p.dataset.num_outputs)
        self.store.set_meta("max_complexity", str(objective.max_complexity))
        factory = TrainingEvaluatorFactory(config, objective.max_complexity, self.run_dir, p.dataset)
        if config.evaluation != "oneshot":
            return factory.build(p.trainer), factory
        from rlnas.oneshot.evaluator import SUPERNET_FILE, OneShotEvaluator

        checkpoint = None if self.run_dir is None else self.run_dir / SUPERNET_FILE
        budget = config.budget.evaluations
        evaluator = OneShotEvaluator(
            p.space, p.dataset, config.training, config.oneshot, objective, config.seed, checkpoint, budget
        )
        return evaluator, factory

    def _abandon(self) -> None:
        for part in ("logger", "store"):
            if hasattr(self, part):
                try:
                    getattr(self, part).close()
                except Exception:  # noqa: BLE001 - already failing; the first error is the one to report
                    log.debug("closing the %s of an abandoned search failed", part, exc_info=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        overrides: list[str] | None = None,
        progress: Progress | None = None,
        data: Dataset | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> Search:
        """Continue a killed or interrupted search: finished trials are kept and never retrained, the
        controller restarts from its checkpoint. Only ``budget.*``, ``export.*``, ``logging.*`` and
        ``execution.*`` may change (e.g. a larger budget, more workers)."""
        path = Path(run_dir)
        config, store = open_run(path)
        recorded = store.get_meta("config")
        store.close()
        check_unchanged(path, config, recorded)
        changed = [o for o in overrides or [] if not o.startswith(RESUMABLE)]
        if changed:
            raise ConfigError(
                f"cannot change {', '.join(changed)} when resuming {path}: only budget.*, export.*, "
                "logging.* and execution.* may change; start a new run for a different search"
            )
        if overrides:
            config = load_config(path / CONFIG_FILE, overrides)
        search = cls.__new__(cls)
        search.progress, search.on_epoch = progress, on_epoch
        search._open(config, path, True, data, None, None)
        return search

    def run(self) -> SearchResult:
        """``ask`` while workers are free, evaluate (or answer from the cache), ``tell`` as children finish.
        A full disk stops the search with DiskFullError; every trial committed before stays."""
        fix = (
            "the search stopped and every finished trial is stored: free some space, then "
            f"`rlnas resume {self.run_dir}`"
        )
        with full_disk_stops(self.run_dir, fix):
            return self._run()

    def _run(self) -> SearchResult:
        before = seconds_before(self.store, self.run_dir) if self.resumed else 0.0
        loop = LoopState(time.monotonic() - before, self.store, self.config.budget.pruned)
        executor = make_executor(self.config, self.evaluator, self.evaluator_factory)
        executor.on_progress = functools.partial(self._heard, loop)
        try:
            while True:
                while loop.stop_reason is None and len(loop.running) < executor.capacity:
                    if not self._submit_next(loop, executor):
                        break
                if not loop.running:
                    break
                for job, outcome in executor.wait():
                    self._record(loop, job, outcome)
        finally:
            save_seconds(self.store, time.monotonic() - loop.start)
            executor.close()
            if hasattr(self.evaluator, "close"):
                self.evaluator.close()  # a one-shot evaluator saves its supernet
            self.strategy.close()
            self.logger.flush()
        best = self.store.top_k(1)
        reason = loop.stop_reason or "budget of evaluations spent"
        seconds = time.monotonic() - loop.start
        pruned = sum(t.status == PRUNED for t in self.store.trials()) if self.config.pruning.rule != "none" else 0
        result = SearchResult(
            self.run_dir, loop.evaluations, best[0] if best else None, reason, seconds, loop.proposals, pruned
        )
        self._finish(result)
        return result

    def _heard(self, loop: LoopState, job: Job, event: EpochEnd) -> None:
        """An epoch of a running child: the progress bar, then the user's ``on_epoch``."""
        if self.activity is not None:
            self.activity(loop.spent + sum(j.progress * j.fidelity for j, _, _ in loop.running.values()))
        if self.on_epoch is not None:
            try:
                self.on_epoch(job.arch, event)
            except Exception as err:
                # not a failure of the child: an error the in-process trainer must not take for one
                raise CallbackError(f"the on_epoch callback raised {type(err).__name__}: {err}") from err

    def _submit_next(self, loop: LoopState, executor: Executor) -> bool:
        """Ask the strategy for one proposal and start its evaluation (or answer it from the cache); False when
        no more should start now (budget or time spent, the strategy waits for results or is exhausted)."""
        budget = self.config.budget
        if loop.spent + loop.committed >= budget.evaluations - 1e-9:
            return False
        if budget.minutes is not None and time.monotonic() - loop.start > budget.minutes * 60:
            loop.stop_reason = f"time budget of {budget.minutes} minutes spent"
            return False
        try:
            proposal = self.strategy.ask()
        except WaitForResults as err:
            if not loop.running:
                raise RuntimeError(f"strategy {self.strategy.name} waits, but nothing is running") from err
            return False
        except StrategyExhausted as err:
            loop.stop_reason = f"strategy exhausted: {err}"
            return False
        loop.proposals += 1
        arch, fidelity = (proposal.arch, proposal.fidelity) if isinstance(proposal, Proposal) else (proposal, 1.0)
        evaluator = self.evaluator
        fidelity = evaluator.effective_fidelity(fidelity) if isinstance(evaluator, MultiFidelityEvaluator) else 1.0
        key = cache_key(arch.key, fidelity)
        if key in loop.cache or key in loop.running:
            if key in loop.cache:
                self.strategy.tell(arch, loop.cache[key].evaluation(cached=True))
            else:
                loop.running[key][1].append(arch)  # told when the running evaluation finishes
            loop.repeated()
            return True
        job = Job(key, arch, fidelity, stop=self._stop_rule(loop.cache.values(), fidelity))
        loop.running[key] = (job, [], time.time())
        executor.submit(job)
        loop.committed += fidelity
        return True

    def _record(self, loop: LoopState, job: Job, outcome: Evaluation) -> None:
        """A finished evaluation: stored, logged, mirrored and told to the strategy (and its re-proposals)."""
        budget = self.config.budget
        evaluation = finite(outcome, self.config.objective.failure_reward)
        _, waiting, started = loop.running.pop(job.key)
        loop.committed -= job.fidelity
        record = self.store.append(job.arch, evaluation, self.strategy.name, started)
        loop.cache[job.key] = record
        if record.status == INFEASIBLE:
            loop.repeated()  # nothing trained: guarded like a re-proposal
        else:
            loop.repeats = 0
            loop.evaluations += 1
            loop.spent += cost(record.metrics, job.fidelity, budget.pruned)
        self.store.set_meta(SECONDS_META, repr(time.monotonic() - loop.start))
        self.logger.trial(record)
        if self.mirror is not None:
            self.mirror.add(record)
        self.strategy.tell(job.arch, evaluation)
        for arch in waiting:
            self.strategy.tell(arch, record.evaluation(cached=True))
        loop.failures = loop.failures + 1 if record.status == FAILED else 0
        log.info("%s", trial_line(record))
        if self.progress is not None:
            self.progress(loop.spent, budget.evaluations, record)
        if loop.failures >= budget.max_consecutive_failures and loop.stop_reason is None:
            loop.stop_reason = f"{loop.failures} children failed in a row (last: {record.error})"
            log.error("stopping the search: %s", loop.stop_reason)

    def _stop_rule(self, records: Iterable[TrialRecord], fidelity: float) -> StopRule:
        """When the next child stops early (``pruning``), from the curves of the children finished so far."""
        if not self.pruner.enabled:
            return NEVER
        epochs = max(1, round(fidelity * self.config.training.epochs))
        return self.pruner.rule(records, epochs, fidelity)

    def _finish(self, result: SearchResult) -> None:
        if self.run_dir is None:
            return
        best = result.best
        summary = {
            "evaluations": result.evaluations,
            "stop_reason": result.stop_reason,
            "search_seconds": result.seconds,
            "proposals": result.proposals,
            "best_trial": None if best is None else best.number,
            "best_reward": None if best is None else best.reward,
            "best_proxy_val_score": None if best is None else val_score(best.metrics),
            "pid": os.getpid(),
        }
        write_summary(self.run_dir, summary, self.store.trials(), METRIC_OF[self.config.objective.complexity])
        self.logger.flush()

    def close(self) -> None:
        self.logger.close()
        self.store.close()
        if self._lock is not None:
            self._lock.release()
