"""Where child evaluations run: in the search process, in worker processes (:mod:`rlnas.evaluation.processes`),
or as Ray actors (:mod:`rlnas.evaluation.ray_actors`).

Every executor has the same small interface the search loop drives: ``submit`` a job while fewer than
``capacity`` are running, ``wait`` for at least one to finish. Workers build their evaluator once from a
picklable factory (for real training: load the dataset, build the trainer) and keep it for every child.

Failure isolation: in ``process`` and ``ray`` executors, a child that raises, a worker that dies (e.g. the
kernel's OOM killer) and a child still running ``training.max_minutes_per_child`` plus
``execution.kill_grace_seconds`` after it started all become FAILED evaluations; the worker is killed
if needed and replaced, and the search goes on. (The in-process executor checks the time limit between
batches only; it cannot kill a child stuck inside one step.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rlnas.config import RunConfig
from rlnas.errors import ConfigError
from rlnas.evaluation.base import FAILED, Evaluation, Evaluator, MultiFidelityEvaluator
from rlnas.evaluation.pruning import NEVER, StopRule
from rlnas.evaluation.train import EpochEnd, OnEpoch
from rlnas.space.core import Architecture
from rlnas.threads import torch_threads

if TYPE_CHECKING:
    from rlnas.data.core import Dataset
    from rlnas.evaluation.trainer import ChildTrainer

log = logging.getLogger(__name__)

EvaluatorFactory = Callable[[], Evaluator]


def evaluate(
    evaluator: Evaluator,
    arch: Architecture,
    fidelity: float,
    progress: OnEpoch | None = None,
    stop: StopRule = NEVER,
) -> Evaluation:
    """One evaluation, at a fidelity if the evaluator supports it; ``progress`` hears of its epochs and
    ``stop`` ends its training early (pruning) if the evaluator reports epochs (real training does)."""
    if hasattr(evaluator, "on_epoch"):
        evaluator.on_epoch = progress
    if hasattr(evaluator, "stop"):
        evaluator.stop = stop
    if isinstance(evaluator, MultiFidelityEvaluator):
        return evaluator.evaluate(arch, fidelity)
    return evaluator.evaluate(arch)


def failed(error: str, seconds: float, reward: float) -> Evaluation:
    return Evaluation(reward=reward, status=FAILED, metrics={"duration_s": seconds}, error=error)


def _given(evaluator: Evaluator) -> Evaluator:
    return evaluator


def given(evaluator: Evaluator) -> EvaluatorFactory:
    """A picklable factory for an evaluator object that is itself picklable (tables, fakes)."""
    return functools.partial(_given, evaluator)


@dataclass(frozen=True)
class TrainingEvaluatorFactory:
    """Builds the real-training evaluator of a run in a worker, once, from the run's dataset (sent along,
    so workers train on exactly the data of the search, whatever its source)."""

    config: RunConfig
    max_complexity: float
    run_dir: Path | None
    dataset: Dataset

    def __call__(self) -> Evaluator:
        from rlnas.prepare import prepare

        return self.build(prepare(self.config, self.dataset).trainer)

    def build(self, trainer: ChildTrainer) -> Evaluator:
        from rlnas.evaluation.objective import Objective
        from rlnas.evaluation.trainer import TrainingEvaluator
        from rlnas.rundir import CHILDREN_DIR

        config = self.config
        objective = Objective(config.objective, self.max_complexity)
        keep = self.run_dir / CHILDREN_DIR if self.run_dir is not None and config.logging.keep_children else None
        return TrainingEvaluator(trainer, objective, config.seed, keep)


@dataclass
class Job:
    key: str
    arch: Architecture
    fidelity: float
    started: float = field(default_factory=time.monotonic)
    progress: float = 0.0  # the fraction of its training done, as far as the executor heard
    stop: StopRule = NEVER  # when the child stops early (the pruner's thresholds per epoch)


class Executor:
    """Runs up to ``capacity`` jobs at a time. ``on_progress(job, epoch)``, if set, is called when a running
    job reports an epoch, in the thread that called ``wait``, the same way for every executor."""

    capacity = 1
    on_progress: Callable[[Job, EpochEnd], None] | None = None

    def _progress(self, job: Job, event: EpochEnd) -> None:
        job.progress = event.fraction
        if self.on_progress is not None:
            self.on_progress(job, event)

    def submit(self, job: Job) -> None:
        raise NotImplementedError

    def wait(self) -> list[tuple[Job, Evaluation]]:
        """Block until at least one submitted job has finished; return the finished ones."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers (jobs still running are abandoned)."""


def cores() -> int:
    """The CPU cores this process may run on (its affinity, which containers and ``taskset`` restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_cores(loadavg: Path = Path("/proc/loadavg"), reads: int = 3) -> int:
    """``cores()`` less the other threads running now (Linux's count of runnable threads, of which the caller
    is one; the least of ``reads`` counts 5 ms apart, so that threads just finishing do not count), at least
    1: torch threads beyond the free cores wait on each other at every parallel step (a small child trained
    with 2 threads on 2 cores took 3.1x as long as with 1 beside one busy process, 6.8x beside two;
    benchmarks/contention.py). Where the count cannot be read: ``cores()``."""
    counts = []
    for i in range(reads):
        try:
            counts.append(int(loadavg.read_text().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return cores()
        if i + 1 < reads:
            time.sleep(0.005)
    return max(1, min(cores(), cores() - (min(counts) - 1)))


Threads = int | Literal["auto"]  # torch threads per child; auto: the cores free when it starts (free_cores)


def child_threads(threads: Threads) -> int:
    return free_cores() if threads == "auto" else threads


class InProcess(Executor):
    """Evaluates in the search process, one child at a time (deterministic, no start-up cost), with
    ``threads`` torch threads while a child trains (None: torch's default)."""

    def __init__(self, evaluator: Evaluator, threads: Threads | None = None) -> None:
        self.evaluator = evaluator
        self.threads = threads
        self.job: Job | None = None

    def submit(self, job: Job) -> None:
        assert self.job is None, "the in-process executor runs one job at a time"
        self.job = job

    def wait(self) -> list[tuple[Job, Evaluation]]:
        job, self.job = self.job, None
        assert job is not None, "wait() without a submitted job"
        with thread_policy(self.threads):
            return [(job, evaluate(self.evaluator, job.arch, job.fidelity, lambda f: self._progress(job, f), job.stop))]


@contextlib.contextmanager
def thread_policy(threads: Threads | None) -> Iterator[None]:
    """Torch threads for one training in this process: ``threads`` (``auto``: the cores free now; None:
    torch's default), restored afterwards. The search's in-process children and the export's trainings."""
    with torch_threads(None if threads is None else child_threads(threads)):
        yield


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _evaluate_isolated(
    evaluator: Evaluator,
    arch: Architecture,
    fidelity: float,
    failure_reward: float,
    progress: OnEpoch | None = None,
    stop: StopRule = NEVER,
) -> Evaluation:
    """In a worker: any exception of a child becomes a FAILED evaluation with its traceback's last line."""
    start = time.perf_counter()
    try:
        return evaluate(evaluator, arch, fidelity, progress, stop)
    except Exception as err:  # noqa: BLE001 - a failing child is a failed trial, never a dead worker
        log.warning("child %s raised:\n%s", arch.key, traceback.format_exc())
        return failed(f"{type(err).__name__}: {err}", time.perf_counter() - start, failure_reward)


def make_executor(run: RunConfig, evaluator: Evaluator, factory: EvaluatorFactory) -> Executor:
    """The executor the run's config asks for; ``factory`` rebuilds ``evaluator`` in a worker."""
    config = run.execution
    kind = config.executor
    if kind == "auto":
        kind = "inprocess" if config.workers == 1 else "process"
    if kind == "inprocess":
        if config.workers > 1:
            raise ConfigError(
                f"execution.executor=inprocess runs one child at a time, but execution.workers={config.workers}; "
                "use executor process or ray for parallel workers"
            )
        from rlnas.evaluation.trainer import TrainingEvaluator

        trains = isinstance(evaluator, TrainingEvaluator)  # a table or a fake evaluator has no torch threads
        if trains and config.threads_per_worker is None and (free := free_cores()) < _torch_threads():
            log.warning(
                "%d of the %d cores are busy with other processes: children train with torch's %d threads, which "
                "wait on each other on a busy machine (several times slower); execution.threads_per_worker=auto "
                "gives each child the cores free when it starts",
                cores() - free,
                cores(),
                _torch_threads(),
            )
        return InProcess(evaluator, config.threads_per_worker)
    share = max(1, cores() // config.workers)
    threads = config.threads_per_worker or share
    minutes = run.training.max_minutes_per_child
    limit = None if minutes is None else minutes * 60.0 + config.kill_grace_seconds
    reward = run.objective.failure_reward
    if kind == "process":
        from rlnas.evaluation.processes import ProcessPool

        return ProcessPool(factory, config.workers, threads, limit, reward, run.training.device)
    from rlnas.evaluation.ray_actors import RayExecutor

    fixed = share if threads == "auto" else threads  # Ray reserves the CPUs of each actor
    return RayExecutor(factory, config.workers, fixed, limit, config.ray_address, config.ray_temp_dir, reward)
