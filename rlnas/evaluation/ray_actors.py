"""Children trained on Ray actors: ``execution.executor=ray``, on a local instance or an existing cluster."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

from rlnas.errors import ConfigError
from rlnas.evaluation.base import Evaluation
from rlnas.evaluation.executors import EvaluatorFactory, Executor, Job, _evaluate_isolated, _set_threads, failed
from rlnas.evaluation.pruning import StopRule
from rlnas.evaluation.train import EpochEnd
from rlnas.space.core import Architecture

log = logging.getLogger(__name__)


class _RayWorker:
    """A Ray actor holding one evaluator. It runs two calls at once, so that the epochs a child reports while it
    trains can be collected (``drain``) during its ``evaluate``."""

    def __init__(self, factory: EvaluatorFactory, threads: int, failure_reward: float) -> None:
        _set_threads(threads)
        self.evaluator = factory()
        self.failure_reward = failure_reward
        self.events: list[EpochEnd] = []

    def evaluate(self, arch: Architecture, fidelity: float, stop: StopRule) -> Evaluation:
        return _evaluate_isolated(self.evaluator, arch, fidelity, self.failure_reward, self.events.append, stop)

    def drain(self) -> list[EpochEnd]:
        events = self.events[:]  # the list itself stays: the running evaluation appends to it
        del self.events[: len(events)]
        return events


RAY_POLL_SECONDS = 1.0  # how often the Ray executor collects the epochs its running children reported


class RayExecutor(Executor):
    """``workers`` Ray actors on an existing cluster (``address``) or a local instance; each actor asks for
    ``threads`` CPUs and, where the cluster has GPUs, one GPU."""

    def __init__(
        self,
        factory: EvaluatorFactory,
        workers: int,
        threads: int,
        time_limit: float | None,
        address: str | None,
        temp_dir: str | None,
        failure_reward: float,
    ) -> None:
        self.failure_reward = failure_reward
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "execution.executor=ray needs Ray: pip install -e '.[ray]' (or pip install 'rlnas[ray]')"
            ) from None
        self.ray = ray
        self.capacity = workers
        self.time_limit = time_limit
        self.started_ray = not ray.is_initialized()
        self.link: str | None = None
        if self.started_ray:
            if address is None:
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
                ray.init(
                    num_cpus=workers * threads,
                    include_dashboard=False,
                    _temp_dir=None if temp_dir is None else self._short_path(temp_dir),
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self.actor_class = ray.remote(num_cpus=threads, num_gpus=gpus)(_RayWorker)
        self.factory = factory
        self.threads = threads
        self.actors = [self._start() for _ in range(workers)]
        self.running: dict[Any, tuple[Any, Job]] = {}  # object ref -> (actor, job)
        log.info("Ray: %d actors, %d CPUs and %d GPU each, cluster %s", workers, threads, gpus, ray.cluster_resources())

    def _short_path(self, temp_dir: str) -> str:
        """Ray's sockets live in ``temp_dir/session_<time>_<pid>/sockets/``, and a Unix socket path may
        not exceed 107 bytes: a longer ``temp_dir`` is reached through a short symlink (removed at close)."""
        path = os.path.abspath(temp_dir)
        os.makedirs(path, exist_ok=True)
        if len(path) + len("/session_2026-01-01_00-00-00_000000_0000000/sockets/plasma_store") <= 107:
            return path
        self.link = os.path.join(tempfile.gettempdir(), f"rlnas-ray-{os.getpid()}-{id(self):x}")
        os.symlink(path, self.link)
        return self.link

    def _start(self) -> Any:
        actor = self.actor_class.options(max_concurrency=2)  # evaluate, and drain while it runs
        return actor.remote(self.factory, self.threads, self.failure_reward)

    def submit(self, job: Job) -> None:
        busy = {id(actor) for actor, _ in self.running.values()}
        actor = next(a for a in self.actors if id(a) not in busy)
        job.started = time.monotonic()
        self.running[actor.evaluate.remote(job.arch, job.fidelity, job.stop)] = (actor, job)

    def _replace(self, actor: Any) -> None:
        self.ray.kill(actor)
        self.actors[self.actors.index(actor)] = self._start()
        log.warning("Ray actor replaced")

    def _drain(self) -> None:
        """Pass on the epochs the running children reported since the last call."""
        asked = [(actor.drain.remote(), job) for actor, job in self.running.values()]
        for ref, job in asked:
            try:
                events = self.ray.get(ref)
            except self.ray.exceptions.RayError:
                continue  # a dead actor: its job is handled as failed when its evaluation is waited for
            for event in events:
                self._progress(job, event)

    def wait(self) -> list[tuple[Job, Evaluation]]:
        assert self.running, "wait() without a submitted job"
        while True:
            timeout = RAY_POLL_SECONDS
            if self.time_limit is not None:
                oldest = min(job.started for _, job in self.running.values())
                timeout = min(timeout, max(0.0, oldest + self.time_limit - time.monotonic()))
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=timeout)
            self._drain()
            done: list[tuple[Job, Evaluation]] = []
            for ref in ready:
                actor, job = self.running.pop(ref)
                try:
                    done.append((job, self.ray.get(ref)))
                except self.ray.exceptions.RayError as err:
                    seconds = time.monotonic() - job.started
                    error = f"Ray worker failed: {type(err).__name__}: {err}"
                    done.append((job, failed(error, seconds, self.failure_reward)))
                    self._replace(actor)
            if self.time_limit is not None:
                for ref, (actor, job) in list(self.running.items()):
                    seconds = time.monotonic() - job.started
                    if seconds >= self.time_limit:
                        del self.running[ref]
                        error = f"killed after {seconds:.0f} s (hard time limit {self.time_limit:.0f} s)"
                        done.append((job, failed(error, seconds, self.failure_reward)))
                        self._replace(actor)
            if done:
                return done

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        self.running = {}
        if self.started_ray:
            self.ray.shutdown()
        if self.link is not None:
            os.unlink(self.link)
            self.link = None
