"""Regularized (aging) evolution with tournament selection; with crossover, a genetic algorithm."""

from __future__ import annotations

from collections import deque

from rlnas.evaluation.base import Evaluation
from rlnas.space.core import Architecture
from rlnas.strategies.base import RandomSearch, StrategyContext


class _NoNewChild(Exception):
    """No new child in the tournament's neighbourhood."""


class RegularizedEvolution(RandomSearch):
    """Real et al. 2019: keep the ``population_size`` youngest; the child of the best of ``sample_size``
    random members replaces the oldest. Fitness = reward (validation accuracy - lambda * complexity)."""

    name = "evolution"
    crossover = False

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.config.strategy.evolution
        self.crossover = self.cfg.crossover or type(self).crossover
        self.population: deque[tuple[Architecture, float]] = deque()

    def _tournament(self) -> Architecture:
        size = min(self.cfg.sample_size, len(self.population))
        picks = self.rng.choice(len(self.population), size=size, replace=False)
        return max((self.population[int(i)] for i in picks), key=lambda member: member[1])[0]

    def ask(self) -> Architecture:
        if len(self.population) < self.cfg.population_size:
            return self.sample_new()
        try:
            return self.new_from(self._child, _NoNewChild, tries=100)
        except _NoNewChild:
            return self.sample_new()  # the neighbourhood is exhausted: explore

    def _child(self) -> Architecture:
        parent = self._tournament()
        if self.crossover:
            parent = self.space.crossover(parent, self._tournament(), self.rng)
        return self.space.mutate(parent, self.rng)

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        if evaluation.cached:
            return
        self.population.append((arch, float(evaluation.reward)))
        if len(self.population) > self.cfg.population_size:
            self.population.popleft()  # aging: the oldest dies, whatever its fitness


class GeneticAlgorithm(RegularizedEvolution):
    """Regularized evolution with uniform crossover of two tournament winners before mutation."""

    name = "genetic"
    crossover = True
