"""The bookkeeping of one session of the search loop (:mod:`rlnas.driver`): the cache of finished trials, the
evaluations running, and the budget of evaluations spent and committed (:func:`cost`)."""

from __future__ import annotations

from collections.abc import Mapping

from rlnas.evaluation.base import INFEASIBLE, cache_key
from rlnas.evaluation.executors import Job
from rlnas.space.core import Architecture
from rlnas.store import TrialRecord, TrialStore

MAX_CONSECUTIVE_REPEATS = 1000  # a converged policy that proposes nothing new must not loop forever


def cost(metrics: Mapping[str, float], fidelity: float | None = None, pruned: str = "share") -> float:
    """What a trained trial cost of the budget of evaluations: its fidelity (1: full training) times the share
    of that training it did (below 1 for a PRUNED child, unless ``budget.pruned`` is ``whole``)."""
    planned = float(metrics.get("fidelity", 1.0)) if fidelity is None else fidelity
    return planned * (1.0 if pruned == "whole" else float(metrics.get("trained_fraction", 1.0)))


class LoopState:
    """The state of one session of the search loop: the cache of finished trials (from the store on resume),
    the evaluations running, the budget spent and committed, and the counters that stop a search."""

    def __init__(self, start: float, store: TrialStore, pruned: str) -> None:
        self.start = start  # the clock goes on over interrupts and resumes
        self.cache: dict[str, TrialRecord] = {cache_key(t.key, t.fidelity): t for t in store}
        trained = [t for t in self.cache.values() if t.status != INFEASIBLE]  # infeasible ones cost no budget
        self.evaluations = len(trained)
        self.spent = sum(cost(t.metrics, pruned=pruned) for t in trained)
        self.running: dict[str, tuple[Job, list[Architecture], float]] = {}  # key -> (job, re-proposals, wall time)
        self.committed = 0.0  # budget of the evaluations running
        self.repeats = self.failures = self.proposals = 0
        self.stop_reason: str | None = None

    def repeated(self) -> None:
        """A proposal that trained nothing (evaluated already, running or infeasible): a converged strategy that
        proposes nothing new must not loop forever."""
        self.repeats += 1
        if self.repeats >= MAX_CONSECUTIVE_REPEATS and self.stop_reason is None:
            self.stop_reason = f"{self.repeats} proposals in a row were evaluated already or infeasible"
