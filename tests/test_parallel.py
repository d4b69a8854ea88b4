"""Parallel child evaluation: worker processes and Ray actors, failure isolation in workers."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

import rlnas
from rlnas.driver import Search
from rlnas.evaluation import COMPLETE, FAILED, SyntheticEvaluator
from rlnas.evaluation.base import Evaluation
from rlnas.evaluation.executors import Job, TrainingEvaluatorFactory, given
from rlnas.evaluation.processes import ProcessPool
from rlnas.evaluation.pruning import NEVER
from rlnas.evaluation.train import accuracy
from rlnas.prepare import prepare
from rlnas.space.core import Architecture, SearchSpace
from rlnas.strategies import NEEDS_SUPERNET, STRATEGIES
from tests.conftest import tiny_config


def _search(tmp_path: Path, name: str, *overrides: str, evaluator: object | None = None) -> tuple[Search, object]:
    config = tiny_config("logging.tensorboard=false", *overrides)
    prepared = prepare(config)
    evaluator = evaluator if evaluator is not None else SyntheticEvaluator(prepared.space)
    return Search(config, tmp_path / name, evaluator=evaluator, space=prepared.space), evaluator  # type: ignore[arg-type]


def _run(tmp_path: Path, name: str, *overrides: str, evaluator: object | None = None) -> list:
    search, _ = _search(tmp_path, name, *overrides, evaluator=evaluator)
    result = search.run()
    trials = search.store.trials()
    search.close()
    assert result.evaluations == len(trials)
    return trials


@pytest.mark.parametrize("strategy", sorted(set(STRATEGIES) - NEEDS_SUPERNET))
def test_every_strategy_runs_with_two_worker_processes(tmp_path: Path, strategy: str) -> None:
    trials = _run(tmp_path, "run", f"strategy.name={strategy}", "budget.evaluations=12", "execution.workers=2")
    assert sum(t.metrics.get("fidelity", 1.0) for t in trials) == pytest.approx(12)
    assert len({(t.key, t.metrics.get("fidelity", 1.0)) for t in trials}) == len(trials)
    assert all(t.status == COMPLETE for t in trials)


@pytest.mark.parametrize("strategy", ["ppo", "random"])
def test_parallel_runs_propose_the_same_architectures_as_sequential_ones(tmp_path: Path, strategy: str) -> None:
    """Without screening and elite mutations, PPO's proposals depend on the seed and on whole rollouts only,
    never on which child finishes first: with 2 workers the evaluated set is the one of the sequential run (the
    order may differ). Screening and elite mutations (the defaults) use each result as it arrives, so with
    several workers their picks depend on the finishing order, as TPE's do; that is the trade they make for
    the early gain."""
    budget = ["budget.evaluations=16", "strategy.ppo.episodes_per_update=4", f"strategy.name={strategy}"]
    budget += ["strategy.ppo.screen_samples=1", "strategy.ppo.elite_share=0"]
    one = _run(tmp_path, "one", *budget)
    two = _run(tmp_path, "two", *budget, "execution.workers=2")
    assert {t.key for t in one} == {t.key for t in two}
    assert len(one) == len(two) == 16


def heard_epochs(trials: list, heard: list) -> None:
    """``on_epoch`` heard every epoch of every child, scored as its stored curve says, in order."""
    for trial in trials:
        events = [e for arch, e in heard if arch.key == trial.key]
        assert [(e.epoch, e.epochs) for e in events] == [(i, 2) for i in (1, 2)]
        assert tuple(e.score for e in events) == trial.curve and len(trial.curve) == 2
        assert trial.curve[-1] == trial.metrics["val_accuracy"]


def test_real_children_train_in_two_worker_processes(tmp_path: Path) -> None:
    config = tiny_config(
        "execution.workers=2",
        "budget.evaluations=4",
        "strategy.name=random",
        "logging.keep_children=true",
        "training.epochs=2",
    )
    heard: list = []
    search = Search(config, tmp_path / "run", on_epoch=lambda arch, epoch: heard.append((arch, epoch)))
    search.run()
    trials = search.store.trials()
    search.close()
    assert len(trials) == 4 and all(t.status == COMPLETE for t in trials)
    heard_epochs(trials, heard)
    assert all(0.0 < t.metrics["val_accuracy"] <= 1.0 and t.metrics["params"] > 0 for t in trials)
    val = prepare(config).dataset.val
    for trial in trials:  # trained in a worker, saved there, reloaded here
        model = rlnas.load_trial(tmp_path / "run", trial.number)
        assert accuracy(model, val) == pytest.approx(trial.metrics["val_accuracy"])


class _Probe:
    """A worker's real evaluator that also says whether the worker's dataset lies in shared memory."""

    def __init__(self, inner: object, dataset: object) -> None:
        self.inner, self.dataset = inner, dataset

    def effective_fidelity(self, fidelity: float) -> float:
        return self.inner.effective_fidelity(fidelity)  # type: ignore[attr-defined,no-any-return]

    def evaluate(self, arch: Architecture, fidelity: float = 1.0) -> Evaluation:
        result = self.inner.evaluate(arch, fidelity)  # type: ignore[attr-defined]
        splits = (self.dataset.train, self.dataset.val, self.dataset.test)  # type: ignore[attr-defined]
        shared = all(t.is_shared() for s in splits for t in (s.x, s.y))
        return replace(result, metrics={**result.metrics, "data_shared": float(shared), "pid": float(os.getpid())})


@dataclass(frozen=True)
class _ProbeFactory(TrainingEvaluatorFactory):
    def build(self, trainer):  # type: ignore[no-untyped-def]
        return _Probe(super().build(trainer), trainer.dataset)


def test_worker_processes_train_on_the_search_processs_dataset_in_shared_memory() -> None:
    """The dataset goes to the workers once, as shared memory: N workers do not hold N copies of it."""
    config = tiny_config()
    prepared = prepare(config)
    pool = ProcessPool(_ProbeFactory(config, 1.0, None, prepared.dataset), 2, 1, None, -1.0)
    try:
        for i in range(2):
            pool.submit(Job(str(i), prepared.space.sample(np.random.default_rng(i)), 1.0))
        done: list = []
        while len(done) < 2:
            done += pool.wait()
    finally:
        pool.close()
    assert all(evaluation.status == COMPLETE for _, evaluation in done), [e.error for _, e in done]
    assert len({evaluation.metrics["pid"] for _, evaluation in done}) == 2  # one child in each worker
    assert all(evaluation.metrics["data_shared"] == 1.0 for _, evaluation in done)


class _Threads(SyntheticEvaluator):
    def evaluate(self, arch: Architecture) -> Evaluation:
        import torch

        result = super().evaluate(arch)
        return replace(result, metrics={**result.metrics, "threads": float(torch.get_num_threads())})


def test_workers_with_threads_auto_set_the_threads_of_each_child() -> None:
    from rlnas.evaluation.executors import cores, given

    space = prepare(tiny_config()).space
    pool = ProcessPool(given(_Threads(space)), 1, "auto", None, -1.0)
    try:
        pool.submit(Job("0", space.sample(np.random.default_rng(0)), 1.0))
        ((_, evaluation),) = pool.wait()
    finally:
        pool.close()
    assert 1 <= evaluation.metrics["threads"] <= cores()


def test_workers_take_the_gpus_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from rlnas.errors import WorkerError
    from rlnas.evaluation import processes as execution

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [execution.worker_gpu(slot, "auto") for slot in range(5)] == [0, 1, 0, 1, 0]  # 2-3 children per GPU
    assert execution.worker_gpu(1, "cuda") == 1
    assert execution.worker_gpu(1, "cpu") is None and execution.worker_gpu(1, "cuda:1") is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert execution.worker_gpu(0, "auto") is None
    monkeypatch.undo()
    # each worker is started on its slot's GPU: GPU 99, which no machine here has, stops it with the reason
    space = prepare(tiny_config()).space
    monkeypatch.setattr(execution, "worker_gpu", lambda slot, device: 99 if device == "auto" else None)
    with pytest.raises(WorkerError, match="could not start: .*(CUDA|cuda|GPU|device)"):
        execution.ProcessPool(given(SyntheticEvaluator(space)), 1, 1, None, -1.0, "auto")


class KillerEvaluator(SyntheticEvaluator):
    """Kills its own worker process (like the OOM killer would) on every ``nth`` call, or hangs."""

    def __init__(self, space: SearchSpace, how: str, nth: int = 3) -> None:
        super().__init__(space)
        self.how = how
        self.nth = nth

    def evaluate(self, arch: Architecture) -> Evaluation:
        self.calls += 1
        if self.calls % self.nth == 0:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif self.how == "hang":
                time.sleep(3600)
            else:
                raise TypeError("a bug in the child's code")
        return super().evaluate(arch)


@pytest.mark.parametrize("how", ["kill", "hang", "raise"])
def test_dead_hung_or_raising_workers_are_failed_trials_and_replaced(tmp_path: Path, how: str) -> None:
    space = prepare(tiny_config()).space
    overrides = [
        "strategy.name=random",
        "budget.evaluations=8",
        "execution.workers=2",
        "training.max_minutes_per_child=0.001",  # with the grace below: killed after 1.06 s
        "execution.kill_grace_seconds=1",
        "objective.failure_reward=-1",
    ]
    start = time.monotonic()
    trials = _run(tmp_path, "run", *overrides, evaluator=KillerEvaluator(space, how))
    assert time.monotonic() - start < 120
    failed = [t for t in trials if t.status == FAILED]
    assert len(trials) == 8 and 1 <= len(failed) < 8
    expected = {"kill": "worker process died (exit code -9)", "hang": "hard time limit", "raise": "TypeError"}[how]
    assert all(expected in (t.error or "") and t.reward == -1 for t in failed), [(t.error, t.reward) for t in failed]
    assert all(t.status == COMPLETE for t in trials if t not in failed)


def test_a_worker_that_died_between_children_is_replaced_when_the_next_child_is_sent() -> None:
    """The OOM killer may take an idle worker: sending it the next child must not raise BrokenPipeError (which
    the command line once took for a closed terminal, ending the search with exit 0 in silence)."""
    space = prepare(tiny_config()).space
    pool = ProcessPool(given(SyntheticEvaluator(space)), 1, 1, None, -1.0)
    try:
        pool.submit(Job("0", space.sample(np.random.default_rng(0)), 1.0))
        ((_, first),) = pool.wait()
        dead = pool.workers[0].process
        os.kill(dead.pid, signal.SIGKILL)
        dead.join()
        for i in (1, 2):  # the first send finds the dead worker; the second goes to its replacement
            pool.submit(Job(str(i), space.sample(np.random.default_rng(i)), 1.0))
            ((_, evaluation),) = pool.wait()
            assert evaluation.status == COMPLETE, evaluation.error
        assert pool.workers[0].process.pid != dead.pid
    finally:
        pool.close()
    assert first.status == COMPLETE


class StartKiller(KillerEvaluator):
    """Kills its worker on its 3rd child, and the next ``deaths`` workers while they start (unpickling it)."""

    def __init__(self, space: SearchSpace, marker: Path, deaths: int) -> None:
        super().__init__(space, "kill")
        self.marker, self.deaths = marker, deaths

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        left = int(self.marker.read_text()) if self.marker.exists() else 0
        if left > 0:
            self.marker.write_text(str(left - 1))
            os._exit(7)

    def evaluate(self, arch: Architecture) -> Evaluation:
        if self.calls + 1 == self.nth:
            self.marker.write_text(str(self.deaths))  # the replacement(s) will die while starting
        return super().evaluate(arch)


def test_a_replacement_worker_dying_while_it_starts_is_started_again(tmp_path: Path, caplog) -> None:
    space = prepare(tiny_config()).space
    overrides = ["strategy.name=random", "budget.evaluations=8", "execution.workers=2"]
    trials = _run(tmp_path, "run", *overrides, evaluator=StartKiller(space, tmp_path / "deaths", deaths=1))
    failed = [t for t in trials if t.status == FAILED]
    assert len(trials) == 8 and len(failed) >= 1  # the child whose worker died is stored, the search went on
    assert all("worker process died" in (t.error or "") for t in failed)
    assert "died while starting (exit code 7); starting another" in caplog.text


def test_a_worker_that_cannot_start_says_why_and_keeps_the_finished_trials(tmp_path: Path) -> None:
    from rlnas.errors import WorkerError

    space = prepare(tiny_config()).space
    overrides = ["strategy.name=random", "budget.evaluations=8", "execution.workers=2"]
    search, _ = _search(tmp_path, "run", *overrides, evaluator=StartKiller(space, tmp_path / "deaths", deaths=99))
    with pytest.raises(WorkerError, match="died while starting, 3 times"):
        search.run()
    stored = search.store.trials()
    search.close()
    assert len(stored) >= 2 and any(t.status == FAILED for t in stored)  # nothing finished was lost


def test_inprocess_executor_refuses_several_workers(tmp_path: Path) -> None:
    from rlnas.errors import ConfigError

    search, _ = _search(tmp_path, "run", "execution.workers=2", "execution.executor=inprocess")
    with pytest.raises(ConfigError, match="execution.workers=2"):
        search.run()
    search.close()


def test_ray_executor_on_a_local_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real children as Ray actors on a local 2-CPU instance whose files stay under tmp_path."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]' (CI installs it)")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray_dir = tmp_path / "ray"
    config = tiny_config(
        "execution.executor=ray",
        "execution.workers=2",
        "execution.threads_per_worker=1",
        f"execution.ray_temp_dir={ray_dir}",
        "budget.evaluations=4",
        "strategy.name=ppo",
        "training.epochs=2",
    )
    heard: list = []
    search = Search(config, tmp_path / "run", on_epoch=lambda arch, epoch: heard.append((arch, epoch)))
    search.run()
    trials = search.store.trials()
    search.close()
    assert len(trials) == 4 and all(t.status == COMPLETE for t in trials), [t.error for t in trials]
    assert any(ray_dir.iterdir()), "Ray kept its files elsewhere"
    heard_epochs(trials, heard)  # collected from the actors while they train


class _Slow(SyntheticEvaluator):
    def evaluate(self, arch: Architecture) -> Evaluation:
        time.sleep(0.5)  # the search process dies meanwhile
        return super().evaluate(arch)


def test_a_worker_whose_search_process_died_ends_quietly(toy_space: SearchSpace) -> None:
    """The search process killed while its worker trains a child: the worker's answer meets a closed pipe, and it
    ends with exit code 0 (a killed search's workers printed BrokenPipe tracebacks into the terminal)."""
    import multiprocessing

    from rlnas.evaluation.processes import _worker_main

    context = multiprocessing.get_context("spawn")  # as the process pool starts its workers
    parent, child = context.Pipe()
    worker = context.Process(target=_worker_main, args=(child, given(_Slow(toy_space)), 1, -1.0))
    worker.start()
    child.close()
    assert parent.recv() == "ready"
    parent.send((toy_space.sample(np.random.default_rng(0)), 1.0, NEVER))
    parent.close()  # the search process is gone
    worker.join(30)
    assert worker.exitcode == 0
