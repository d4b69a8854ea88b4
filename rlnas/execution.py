"""Where child evaluations run: in the search process, in worker processes, or as Ray actors.

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
import multiprocessing
import os
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rlnas.config import RunConfig
from rlnas.errors import ConfigError, WorkerError
from rlnas.evaluation.base import FAILED, Evaluation, Evaluator
from rlnas.evaluation.train import EpochEnd, OnEpoch
from rlnas.space.core import Architecture
from rlnas.threads import torch_threads

if TYPE_CHECKING:
    from rlnas.data.core import Dataset
    from rlnas.evaluation.trainer import ChildTrainer

log = logging.getLogger(__name__)

EvaluatorFactory = Callable[[], Evaluator]


def evaluate(evaluator: Evaluator, arch: Architecture, fidelity: float, progress: OnEpoch | None = None) -> Evaluation:
    """One evaluation, at a fidelity if the evaluator supports it; ``progress`` hears of its epochs if the
    evaluator reports them (real training does)."""
    if hasattr(evaluator, "on_epoch"):
        evaluator.on_epoch = progress
    if getattr(evaluator, "supports_fidelity", False):
        return evaluator.evaluate(arch, fidelity)  # type: ignore[call-arg]
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
        from rlnas.driver import prepare

        return self.build(prepare(self.config, self.dataset).trainer)

    def build(self, trainer: ChildTrainer) -> Evaluator:
        from rlnas.evaluation.trainer import Objective, TrainingEvaluator
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
            return [(job, evaluate(self.evaluator, job.arch, job.fidelity, lambda f: self._progress(job, f)))]


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
    evaluator: Evaluator, arch: Architecture, fidelity: float, failure_reward: float, progress: OnEpoch | None = None
) -> Evaluation:
    """In a worker: any exception of a child becomes a FAILED evaluation with its traceback's last line."""
    start = time.perf_counter()
    try:
        return evaluate(evaluator, arch, fidelity, progress)
    except Exception as err:  # noqa: BLE001 - a failing child is a failed trial, never a dead worker
        log.warning("child %s raised:\n%s", arch.key, traceback.format_exc())
        return failed(f"{type(err).__name__}: {err}", time.perf_counter() - start, failure_reward)


def worker_gpu(slot: int, device: str) -> int | None:
    """The GPU of worker ``slot`` for ``training.device`` auto or cuda: the workers take the machine's GPUs in
    turn, so every GPU is used and more workers than GPUs train several children per GPU at once. None on a
    machine without a GPU and for cpu or an explicit cuda:N."""
    if device not in ("auto", "cuda"):
        return None
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return slot % count if count else None


def _worker_main(
    conn: Connection, factory: EvaluatorFactory, threads: Threads, failure_reward: float, gpu: int | None = None
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the search process's to handle
    try:
        if gpu is not None:
            import torch

            torch.cuda.set_device(gpu)  # "cuda" is this GPU in this worker
        _set_threads(1 if threads == "auto" else threads)
        evaluator = factory()
    except BaseException as err:  # noqa: BLE001 - tell the search process why, then stop
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(err).__name__}: {err}"))
        return

    def progress(event: EpochEnd) -> None:
        conn.send(("progress", event))

    try:
        conn.send("ready")
        while True:
            message = conn.recv()
            if message is None:
                return
            arch, fidelity = message
            if threads == "auto":
                _set_threads(free_cores())
            evaluation = _evaluate_isolated(evaluator, arch, fidelity, failure_reward, progress)
            conn.send(("done", evaluation))
    except (EOFError, OSError):  # the search process is gone (killed): nothing to report to, end quietly
        return


@dataclass
class _Worker:
    process: Any
    conn: Connection
    slot: int = 0
    job: Job | None = None
    ready: bool = False


START_ATTEMPTS = 3  # a worker that dies while starting is started again, this many times in all


class ProcessPool(Executor):
    """``workers`` spawned processes, each evaluating one child at a time with ``threads`` torch threads and,
    for ``device`` auto or cuda on a machine with GPUs, the GPUs in turn (:func:`worker_gpu`)."""

    def __init__(
        self,
        factory: EvaluatorFactory,
        workers: int,
        threads: Threads,
        time_limit: float | None,
        failure_reward: float,
        device: str = "cpu",
    ) -> None:
        self.factory = factory
        self.failure_reward = failure_reward
        self.threads = threads
        self.time_limit = time_limit
        self.capacity = workers
        self.context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.device = device
        self.workers = [self._start(slot) for slot in range(workers)]
        for worker in self.workers:
            self._ready(worker)

    def _start(self, slot: int) -> _Worker:
        parent, child = self.context.Pipe()
        gpu = worker_gpu(slot, self.device)
        process = self.context.Process(
            target=_worker_main,
            args=(child, self.factory, self.threads, self.failure_reward, gpu),
            name="rlnas-worker",
            daemon=True,
        )
        process.start()
        child.close()
        if gpu is not None:
            log.info("worker %d (pid %s) trains on GPU %d", slot, process.pid, gpu)
        return _Worker(process, parent, slot)

    def _ready(self, worker: _Worker) -> None:
        """Wait until ``worker`` has started; one killed while starting is started again (``START_ATTEMPTS``
        in all); one that cannot build its evaluator raises WorkerError with the reason."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                worker.process.join()
                code = worker.process.exitcode
                if attempt == START_ATTEMPTS:
                    raise WorkerError(
                        f"a worker process died while starting, {START_ATTEMPTS} times (last exit code {code}); "
                        "finished trials are saved: resume the run, or run with --workers 1 to see the error in "
                        "the search process"
                    ) from None
                log.warning("a worker process died while starting (exit code %s); starting another", code)
                worker.conn.close()
                fresh = self._start(worker.slot)
                worker.process, worker.conn = fresh.process, fresh.conn
                continue
            if isinstance(message, tuple) and message[0] == "error":
                worker.process.join()
                raise WorkerError(f"a worker process could not start: {message[1]}")
            worker.ready = True
            return

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker``'s process and start another in its place, waited for at its next job: the results
        in hand are returned (and stored) first."""
        old = worker.process.pid
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.conn.close()
        fresh = self._start(worker.slot)
        worker.process, worker.conn, worker.ready = fresh.process, fresh.conn, False
        log.warning("worker process replaced (pid %s -> %s)", old, fresh.process.pid)

    def submit(self, job: Job) -> None:
        """Send ``job`` to a free worker; one that died while idle (the OOM killer) is replaced first."""
        worker = next(w for w in self.workers if w.job is None)
        for attempt in (1, 2):
            if not worker.ready:
                self._ready(worker)
            try:
                worker.conn.send((job.arch, job.fidelity))
                break
            except OSError as err:  # BrokenPipeError, ConnectionResetError: the worker is gone
                if attempt == 2:
                    raise WorkerError(
                        f"cannot send a child to a fresh worker process ({err}); finished trials are saved: "
                        "resume the run, or run with --workers 1 to see the error in the search process"
                    ) from None
                self._replace(worker)  # it died while idle
        worker.job = job
        job.started = time.monotonic()

    def wait(self) -> list[tuple[Job, Evaluation]]:
        busy = [w for w in self.workers if w.job is not None]
        assert busy, "wait() without a submitted job"
        while True:
            timeout = None
            if self.time_limit is not None:
                oldest = min(w.job.started for w in busy if w.job is not None)
                timeout = max(0.0, oldest + self.time_limit - time.monotonic())
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
            done: list[tuple[Job, Evaluation]] = []
            for worker in busy:
                job = worker.job
                assert job is not None
                seconds = time.monotonic() - job.started
                finished = None
                try:
                    while worker.conn.poll():  # also what arrived while another worker was replaced
                        kind, payload = worker.conn.recv()
                        if kind == "progress":
                            self._progress(job, payload)
                        else:
                            finished = payload
                            break
                except (EOFError, OSError):
                    pass  # died while answering: handled as a dead worker below
                if finished is not None:
                    done.append((job, finished))
                    worker.job = None
                    continue
                if worker.process.sentinel in ready or not worker.process.is_alive():
                    worker.process.join(timeout=5)
                    code = worker.process.exitcode
                    error = f"worker process died (exit code {code}) while training the child"
                    done.append((job, failed(error, seconds, self.failure_reward)))
                elif self.time_limit is not None and seconds >= self.time_limit:
                    error = f"killed after {seconds:.0f} s (hard time limit {self.time_limit:.0f} s)"
                    done.append((job, failed(error, seconds, self.failure_reward)))
                else:
                    continue
                worker.job = None
                self._replace(worker)
            if done:
                return done

    def close(self) -> None:
        for worker in self.workers:
            try:
                if worker.job is None and worker.process.is_alive():
                    worker.conn.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(timeout=5 if worker.job is None else 0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers = []


class _RayWorker:
    """A Ray actor holding one evaluator. It runs two calls at once, so that the epochs a child reports while it
    trains can be collected (``drain``) during its ``evaluate``."""

    def __init__(self, factory: EvaluatorFactory, threads: int, failure_reward: float) -> None:
        _set_threads(threads)
        self.evaluator = factory()
        self.failure_reward = failure_reward
        self.events: list[EpochEnd] = []

    def evaluate(self, arch: Architecture, fidelity: float) -> Evaluation:
        return _evaluate_isolated(self.evaluator, arch, fidelity, self.failure_reward, self.events.append)

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
        self.running[actor.evaluate.remote(job.arch, job.fidelity)] = (actor, job)

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
        return ProcessPool(factory, config.workers, threads, limit, reward, run.training.device)
    fixed = share if threads == "auto" else threads  # Ray reserves the CPUs of each actor
    return RayExecutor(factory, config.workers, fixed, limit, config.ray_address, config.ray_temp_dir, reward)
