"""The strategy interface: ask for an architecture, tell its evaluation. One loop (the driver) serves all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlnas.config import RunConfig
from rlnas.evaluation.base import Evaluation, Evaluator
from rlnas.space.core import Architecture, SearchSpace
from rlnas.store import TrialRecord
from rlnas.tracking import RunLogger


class StrategyExhausted(Exception):
    """The strategy has nothing more to propose."""


class WaitForResults(Exception):
    """The strategy cannot propose until evaluations in flight are told (e.g. the end of a PPO rollout
    or of a successive-halving rung). Only raised while some of its proposals are still unanswered."""


@dataclass(frozen=True)
class Proposal:
    """An architecture to evaluate at a fidelity (fraction of the full training budget, in (0, 1])."""

    arch: Architecture
    fidelity: float = 1.0


@dataclass
class StrategyContext:
    space: SearchSpace
    config: RunConfig
    seed: int
    run_dir: Path | None
    logger: RunLogger
    evaluator: Evaluator | None = None  # what scores the proposals (a one-shot search's supernet, for darts)


class Strategy:
    """Base class: ``ask`` proposes, ``tell`` receives the evaluation of a proposal.

    With parallel workers the driver asks again before earlier proposals are told, and tells them in the
    order they finish; a strategy that must see results first raises ``WaitForResults``.
    """

    name = "base"

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.space = ctx.space
        self.rng = np.random.default_rng(ctx.seed)

    def ask(self) -> Architecture | Proposal:
        raise NotImplementedError

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        """Default: nothing to learn."""

    def warm_start(self, records: list[TrialRecord]) -> None:
        """Take in the trials of an interrupted run (when resuming); default: nothing to restore."""

    def save(self) -> None:
        """Checkpoint the strategy's state into the run directory (if it has any)."""

    def close(self) -> None:
        """Release threads and files."""


class RandomSearch(Strategy):
    """Uniform random sampling from the space, never proposing the same architecture twice."""

    name = "random"
    max_tries = 1000

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.seen: set[str] = set()

    def warm_start(self, records: list[TrialRecord]) -> None:
        self.seen.update(r.key for r in records)
        for record in records:
            self.tell(record.architecture, record.evaluation(cached=False))

    def ask(self) -> Architecture | Proposal:
        return self.sample_new()

    def sample_new(self) -> Architecture:
        for _ in range(self.max_tries):
            arch = self.space.sample(self.rng)
            if arch.key not in self.seen:
                self.seen.add(arch.key)
                return arch
        raise StrategyExhausted(f"no new architecture in {self.max_tries} samples: the space is exhausted")
