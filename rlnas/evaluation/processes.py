"""Children trained in worker processes: ``execution.executor=process`` (the default for several workers).

A child that raises, a worker that dies (e.g. the kernel's OOM killer) and a child still running
``training.max_minutes_per_child`` plus ``execution.kill_grace_seconds`` after it started all become FAILED
evaluations; the worker is killed if needed and replaced, and the search goes on.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from rlnas.errors import WorkerError
from rlnas.evaluation.base import Evaluation
from rlnas.evaluation.executors import (
    EvaluatorFactory,
    Executor,
    Job,
    Threads,
    _evaluate_isolated,
    _set_threads,
    failed,
    free_cores,
)
from rlnas.evaluation.train import EpochEnd

log = logging.getLogger(__name__)


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
            arch, fidelity, stop = message
            if threads == "auto":
                _set_threads(free_cores())
            evaluation = _evaluate_isolated(evaluator, arch, fidelity, failure_reward, progress, stop)
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
                worker.conn.send((job.arch, job.fidelity, job.stop))
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
