"""The PPO controller's reward surrogate (see :mod:`rlnas.strategies.ppo`): every result told so far, an
ensemble MLP fitted on them (``rlnas.strategies.surrogate``), and the two uses of it:

* **screening**: among several architectures sampled from the policy, the one to evaluate is the one the
  surrogate rates best (mean + ucb x spread; ``stall_ucb`` while the best reward stalls);
* **elite picks**: among one-decision mutations of the best architectures so far, the one it rates best.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from rlnas.config.strategy import PPO_FIXED
from rlnas.space.core import Architecture, SearchSpace
from rlnas.strategies.surrogate import EnsembleSurrogate, quantiles


class Screening:
    """``proxy`` (``strategy.zero_cost_screen``): a zero-cost proxy of the untrained network, one more input
    feature of the surrogate (signed log scale, standardized over the results at each fit)."""

    def __init__(
        self, space: SearchSpace, cfg: Any, seed: int, proxy: Callable[[Architecture], float] | None = None
    ) -> None:
        self.space = space
        self.proxy = proxy
        self.cfg = cfg  # strategy.ppo
        self.seed = seed
        self.history: list[tuple[Architecture, float]] = []  # the unique evaluations so far
        self.surrogate: EnsembleSurrogate | None = None
        self.fitted_on = 0
        self.best = -math.inf  # the best reward told so far
        self.best_at = 0  # how many results were told when the best was
        self.proxy_scale = (0.0, 1.0)  # mean and std of the proxy feature over the results of the last fit

    def add(self, arch: Architecture, reward: float) -> bool:
        """A result; whether it beats the best so far."""
        self.history.append((arch, reward))
        if reward > self.best:
            self.best, self.best_at = reward, len(self.history)
            return True
        return False

    @property
    def ready(self) -> bool:
        """Whether enough results are in for the surrogate to guide the search (``screen_after``)."""
        return len(self.history) >= self.cfg.screen_after

    def stalled(self) -> bool:
        """Whether the best reward has gone unbeaten for more than ``stall_ratio`` x the results it took to
        find it, counted from the screening start at the earliest (before it the search is not guided)."""
        found = max(self.best_at, self.cfg.screen_after)
        return len(self.history) - found > self.cfg.stall_ratio * found

    def policy_ucb(self) -> float:
        """The exploration bonus for the policy's samples: ``screen_ucb``, or ``stall_ucb`` while stalled."""
        stall = self.cfg.stall_ucb
        return self.cfg.screen_ucb if stall is None or not self.stalled() else stall

    def best_of(self, candidates: list[Architecture], ucb: float) -> int:
        """The index of the candidate the surrogate rates best (mean + ucb x spread)."""
        mean, spread = self.predict(candidates)
        return int(np.argmax(mean + ucb * spread))

    def predict(self, candidates: list[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """The surrogate's mean and spread for each candidate (in rank quantiles of the rewards told), refit
        first when due: after every new result at first, then after every ~6 % more."""
        if self.surrogate is None or len(self.history) >= self.fitted_on + max(1, self.fitted_on // 16):
            self.fit()
        assert self.surrogate is not None
        return self.surrogate.predict(np.stack([self.features(a) for a in candidates]))

    def fit(self) -> None:
        cfg = self.cfg
        if self.surrogate is None:
            self.surrogate = EnsembleSurrogate(
                PPO_FIXED["surrogate_hidden"], cfg.surrogate_members, PPO_FIXED["surrogate_steps"]
            )
        if self.proxy is not None:
            logs = np.array([v for a, _ in self.history if (v := self._proxy_log(a)) is not None])
            spread = float(logs.std()) if len(logs) > 1 else 0.0
            self.proxy_scale = (float(logs.mean()) if len(logs) else 0.0, spread if spread > 1e-8 else 1.0)
        x = np.stack([self.features(a) for a, _ in self.history])
        y = quantiles(np.array([r for _, r in self.history], dtype=np.float64))  # robust to outliers (failures)
        self.surrogate.fit(x, y, seed=self.seed * 1_000_003 + len(self.history))
        self.fitted_on = len(self.history)

    def features(self, arch: Architecture) -> np.ndarray:
        """The surrogate's input: the architecture's encoding, and its zero-cost proxy if there is one."""
        code = self.space.encode(arch)
        if self.proxy is None:
            return code
        value = self._proxy_log(arch)
        mean, std = self.proxy_scale
        return np.append(code, np.float32(0.0 if value is None else (value - mean) / std))  # not finite: the mean

    def _proxy_log(self, arch: Architecture) -> float | None:
        assert self.proxy is not None
        value = self.proxy(arch)
        return float(np.sign(value) * np.log1p(abs(value))) if math.isfinite(value) else None

    def elite_pick(self, seen: set[str], index: int) -> Architecture | None:
        """The surrogate's pick (``elite_ucb``) among ``screen_samples`` one-decision mutations, none in
        ``seen``, of the best architecture so far; ``index`` seeds the mutations."""
        parent = max(self.history, key=lambda item: item[1])[0]  # the first of the best
        rng = np.random.default_rng([self.seed, 0xE117E, index])
        candidates: dict[str, Architecture] = {}
        for _ in range(4 * self.cfg.screen_samples):
            if len(candidates) == self.cfg.screen_samples:
                break
            child = self.space.mutate(parent, rng)
            if child.key not in seen:
                candidates.setdefault(child.key, child)
        if not candidates:
            return None
        pool = list(candidates.values())
        return pool[self.best_of(pool, self.cfg.elite_ucb)]
