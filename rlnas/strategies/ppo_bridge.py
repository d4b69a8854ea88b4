"""The hand-offs between SB3's ``learn()`` (in the PPO thread) and the search loop (the driver's thread).

The env's evaluator is :meth:`Bridge.evaluate`: it hands each finished architecture to the driver (``ask``)
and returns a placeholder reward; at the end of a rollout :meth:`Bridge.collect` waits for the real rewards,
which the driver hands over in any order (``tell``).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from rlnas.evaluation.base import Evaluation
from rlnas.space.core import Architecture, EvaluatedPrefixes
from rlnas.strategies.base import StrategyExhausted, WaitForResults


class StopLearning(Exception):
    """Raised inside the PPO thread to end ``learn()`` when the driver closes the strategy."""


class Bridge:
    """Hand-offs between the PPO thread (``evaluate``, ``collect``) and the driver (``ask``, ``tell``).

    The PPO thread only runs while the driver waits in ``ask`` (``demand``): the two threads never
    compute at the same time, so a child trained in the search process never shares the global torch
    RNG with the controller. ``busy`` is held by the PPO thread except while it waits, so ``policy_mode``
    and ``save`` see a consistent model.
    """

    def __init__(self, exclude: EvaluatedPrefixes | None) -> None:
        self.exclude = exclude
        self.cond = threading.Condition()
        self.busy = threading.RLock()
        self.demand = 0  # proposals the driver waits for
        self.proposals: deque[Architecture] = deque()
        self.issued: dict[str, deque[int]] = {}  # arch key -> tokens handed to the driver, not yet told
        self.rewards: dict[int, Evaluation] = {}
        self.archs: dict[int, Architecture] = {}  # token -> the architecture it stands for
        self.rollout: list[int] = []  # tokens of this rollout's finished episodes, in order
        self.collecting: list[int] | None = None  # tokens the PPO thread waits for at the end of a rollout
        self.tokens = 0
        self.stopping = False
        self.ended: tuple[str, BaseException | None] | None = None

    # -- PPO thread ----------------------------------------------------------------------------------
    def _pause_until(self, ready: Any) -> None:
        """Wait (holding ``cond``, releasing ``busy``) until ``ready()``; raise when stopping."""
        self.busy.release()
        try:
            while not self.stopping and not ready():
                self.cond.wait()
        finally:
            self.busy.acquire()
        if self.stopping:
            raise StopLearning

    def evaluate(self, arch: Architecture) -> Evaluation:
        """The env's evaluator: hand the architecture to the driver; the reward follows in ``collect``."""
        if self.exclude is not None:
            self.exclude.add(arch)  # pending counts as evaluated: no duplicates within a rollout
        with self.cond:
            token = self.tokens
            self.tokens += 1
            self.rollout.append(token)
            self.archs[token] = arch
            self.issued.setdefault(arch.key, deque()).append(token)
            self.proposals.append(arch)
            self.demand = max(0, self.demand - 1)
            self.cond.notify_all()
            self._pause_until(lambda: self.demand > 0)
        return Evaluation(reward=0.0)

    def collect(self) -> list[tuple[Architecture, Evaluation]]:
        """Wait for the evaluations of this rollout's episodes; returns them in episode order."""
        with self.cond:
            tokens, self.rollout = self.rollout, []
            self.collecting = tokens
            self.cond.notify_all()
            try:
                self._pause_until(lambda: self.demand > 0 and all(t in self.rewards for t in tokens))
            finally:
                self.collecting = None
            return [(self.archs.pop(t), self.rewards.pop(t)) for t in tokens]

    def end(self, kind: str, error: BaseException | None = None) -> None:
        with self.cond:
            self.ended = (kind, error)
            self.cond.notify_all()

    # -- driver thread -------------------------------------------------------------------------------
    def ask(self) -> Architecture:
        with self.cond:
            asked = False
            while True:
                if self.proposals:
                    return self.proposals.popleft()
                if self.ended is not None:
                    kind, error = self.ended
                    if kind == "error":
                        raise RuntimeError(f"the PPO controller failed: {error!r}") from error
                    raise StrategyExhausted("the PPO controller stopped")
                if self.collecting is not None and any(t not in self.rewards for t in self.collecting):
                    self.demand = 0
                    raise WaitForResults("the PPO update needs the evaluations of its rollout")
                if not asked:
                    self.demand += 1
                    asked = True
                    self.cond.notify_all()
                self.cond.wait()

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        with self.cond:
            tokens = self.issued.get(arch.key)
            if not tokens:
                raise RuntimeError(f"the PPO controller did not propose {arch.key} (or it was told already)")
            self.rewards[tokens.popleft()] = evaluation
            if not tokens:
                del self.issued[arch.key]
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
