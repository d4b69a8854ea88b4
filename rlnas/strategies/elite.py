"""The PPO controller's local moves around the elite (``strategy.ppo.elite_*``, see
:mod:`rlnas.strategies.ppo`): a share of the evaluations goes to the surrogate's pick among one-decision
mutations of the best architectures so far (:meth:`Screening.elite_pick`). This module keeps their
bookkeeping: when a pick is due, which picks wait for their results, and whether they still find better
architectures (``elite_patience``)."""

from __future__ import annotations

from typing import Any

from rlnas.space.core import Architecture
from rlnas.strategies.screening import Screening


class ElitePicks:
    def __init__(self, cfg: Any, screen: Screening) -> None:
        self.cfg = cfg  # strategy.ppo
        self.screen = screen
        self.seen: set[str] = set()  # every architecture proposed or told: no pick repeats one
        self.beside: dict[str, int] = {}  # picks beside the policy's rollout not told yet: arch key -> count
        self.through: set[str] = set()  # picks that are episodes of the rollout, not told yet
        self.asked = 0  # every proposal of the controller
        self.picked = 0
        self.misses = 0  # picks in a row that did not beat the best

    def started(self) -> bool:
        return self.cfg.elite_share > 0 and self.screen.ready

    def due(self) -> bool:
        """Whether the next proposal is a pick: the share not reached (counting this proposal), and the last
        ``elite_patience`` picks not all misses."""
        patient = self.cfg.elite_patience == 0 or self.misses < self.cfg.elite_patience
        return self.started() and patient and self.picked < self.cfg.elite_share * (self.asked + 1)

    def pick(self) -> Architecture | None:
        """The surrogate's pick among the mutations not seen yet (None: there is none)."""
        pick = self.screen.elite_pick(self.seen, self.picked)
        if pick is not None:
            self.picked += 1
        return pick

    def proposed(self, arch: Architecture) -> None:
        self.asked += 1
        self.seen.add(arch.key)

    def told(self, arch: Architecture, beat_best: bool | None) -> bool:
        """A result (``beat_best``: whether it beats the best so far; None: a cached result, nothing new);
        whether ``arch`` was a pick beside the rollout (its reward counts in the ranks only)."""
        beside = self.beside.get(arch.key, 0)
        if beat_best:
            self.misses = 0
        elif beat_best is not None and (beside or arch.key in self.through):
            self.misses += 1
        self.through.discard(arch.key)
        if beside == 1:
            del self.beside[arch.key]
        elif beside:
            self.beside[arch.key] = beside - 1
        return bool(beside)
