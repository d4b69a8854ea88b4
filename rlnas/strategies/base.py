"""The strategy interface: ask for an architecture, tell its evaluation. One loop (the driver) serves all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlnas.config import RunConfig
from rlnas.errors import ConfigError
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


def zero_cost_scorer(ctx: StrategyContext) -> Callable[[Architecture], float] | None:
    """``strategy.zero_cost_screen``'s proxy of an architecture, computed by the run's evaluator on its untrained
    network (remembered per architecture; -inf where it cannot be computed), or None when screening is off."""
    name = ctx.config.strategy.zero_cost_screen
    if name is None:
        return None
    evaluator = ctx.evaluator
    if not hasattr(evaluator, "zero_cost"):
        raise ConfigError(
            f"strategy.zero_cost_screen={name} needs the networks of the children, which this evaluation "
            f"({type(evaluator).__name__}) does not build; leave strategy.zero_cost_screen at null"
        )
    supported = getattr(evaluator, "zero_cost_names", None)
    if supported is not None and name not in supported:
        raise ConfigError(
            f"strategy.zero_cost_screen={name}: this evaluation ({type(evaluator).__name__}) has no data for it; "
            f"use one of {', '.join(supported)} or null"
        )
    known: dict[str, float] = {}

    def score(arch: Architecture) -> float:
        if arch.key not in known:
            values = evaluator.zero_cost(arch, names=(name,))  # type: ignore[union-attr]
            known[arch.key] = float(values.get(f"zero_cost_{name}", float("-inf")))
        return known[arch.key]

    return score


class RandomSearch(Strategy):
    """Uniform random sampling from the space, never proposing the same architecture twice."""

    name = "random"
    max_tries = 1000

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.seen: set[str] = set()
        self.pool = ctx.config.strategy.zero_cost_pool
        self.proxy = zero_cost_scorer(ctx)

    def warm_start(self, records: list[TrialRecord]) -> None:
        self.seen.update(r.key for r in records)
        for record in records:
            self.tell(record.architecture, record.evaluation(cached=False))

    def ask(self) -> Architecture | Proposal:
        return self.sample_new()

    def sample_new(self) -> Architecture:
        """A new architecture sampled uniformly (with ``strategy.zero_cost_screen``: the best of a pool of
        them by that proxy)."""
        return self.new_from(lambda: self.space.sample(self.rng), StrategyExhausted)

    def new_from(
        self, draw: Callable[[], Architecture], exhausted: type[Exception], tries: int | None = None
    ) -> Architecture:
        """A new architecture from ``draw()``, marked as seen; with ``strategy.zero_cost_screen``, the one
        that proxy rates best among ``zero_cost_pool`` distinct new ones. ``exhausted`` is raised when
        ``tries`` (default ``max_tries``) draws bring nothing new."""
        want = 1 if self.proxy is None else self.pool
        pool: dict[str, Architecture] = {}
        for _ in range(tries or self.max_tries):
            arch = draw()
            if arch.key not in self.seen:
                pool.setdefault(arch.key, arch)
                if len(pool) == want:
                    break
        if not pool:
            raise exhausted(f"no new architecture in {self.max_tries} draws: the space is exhausted")
        candidates = list(pool.values())
        pick = candidates[0] if self.proxy is None else max(candidates, key=self.proxy)
        self.seen.add(pick.key)
        return pick
