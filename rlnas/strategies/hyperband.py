"""Hyperband (Li et al. 2017): brackets of successive halving over the training fidelity.

Fidelity is expressed through the proposal (``Proposal(arch, fidelity)``): the driver trains the child for
``fidelity * training.epochs`` epochs and charges ``fidelity`` of an evaluation to the budget. Brackets
repeat with fresh architectures until the budget is spent.
"""

from __future__ import annotations

import math
from collections import deque

from rlnas.evaluation.base import Evaluation
from rlnas.space.core import Architecture
from rlnas.store import TrialRecord
from rlnas.strategies.base import Proposal, RandomSearch, StrategyContext, WaitForResults


class Hyperband(RandomSearch):
    name = "hyperband"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.strategy.hyperband
        self.eta = cfg.eta
        self.s_max = max(0, int(math.floor(math.log(1.0 / cfg.min_fidelity, self.eta) + 1e-9)))
        self.bracket = self.s_max
        self.queue: deque[Proposal] = deque()
        self.results: list[tuple[Architecture, float]] = []
        self.rung_size = 0
        self.fidelity = 1.0
        self._start_bracket()

    def _start_bracket(self) -> None:
        s = self.bracket
        n = int(math.ceil((self.s_max + 1) / (s + 1) * self.eta**s))
        self.fidelity = float(self.eta**-s)
        self.queue = deque(Proposal(self.sample_new(), self.fidelity) for _ in range(n))
        self.rung_size = n
        self.results = []

    def _next_rung(self) -> None:
        keep = self.rung_size // self.eta
        if keep < 1 or self.fidelity >= 1.0:
            self.bracket = self.bracket - 1 if self.bracket > 0 else self.s_max
            self._start_bracket()
            return
        best = sorted(self.results, key=lambda item: -item[1])[:keep]
        self.fidelity = min(1.0, self.fidelity * self.eta)
        self.queue = deque(Proposal(arch, self.fidelity) for arch, _ in best)
        self.rung_size = keep
        self.results = []

    def warm_start(self, records: list[TrialRecord]) -> None:
        """Brackets start afresh after a resume; evaluated architectures are not proposed again."""
        self.seen.update(r.key for r in records)

    def ask(self) -> Proposal:
        if not self.queue and len(self.results) < self.rung_size:
            raise WaitForResults("successive halving needs the whole rung before promoting")
        while not self.queue:
            self._next_rung()
        return self.queue.popleft()

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        self.results.append((arch, float(evaluation.reward)))
