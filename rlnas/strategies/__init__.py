"""Search strategies: one ask/tell interface, one registry of factories. Only the selected one is built."""

from __future__ import annotations

from collections.abc import Callable

from rlnas.errors import ConfigError
from rlnas.strategies.base import (
    Proposal,
    RandomSearch,
    Strategy,
    StrategyContext,
    StrategyExhausted,
    WaitForResults,
)


def _lazy(module: str, cls: str) -> Callable[[StrategyContext], Strategy]:
    """A factory importing its module only when the strategy is selected."""

    def factory(ctx: StrategyContext) -> Strategy:
        import importlib

        return getattr(importlib.import_module(f"rlnas.strategies.{module}"), cls)(ctx)  # type: ignore[no-any-return]

    return factory


STRATEGIES: dict[str, Callable[[StrategyContext], Strategy]] = {
    "ppo": _lazy("ppo", "PPOStrategy"),
    "random": RandomSearch,
    "evolution": _lazy("evolution", "RegularizedEvolution"),
    "genetic": _lazy("evolution", "GeneticAlgorithm"),
    "bayesian": _lazy("bayesian", "BayesianOptimization"),
    "random-then-bayesian": _lazy("bayesian", "RandomThenBayesian"),
    "pareto": _lazy("bayesian", "ParetoSearch"),
    "hyperband": _lazy("hyperband", "Hyperband"),
    "predictor": _lazy("predictor", "PredictorSearch"),
    "darts": _lazy("darts", "Darts"),
}
# strategies that search a supernet themselves: they need evaluation=oneshot, not just any evaluator
NEEDS_SUPERNET = frozenset({"darts"})


def make_strategy(name: str, ctx: StrategyContext) -> Strategy:
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}") from None
    return factory(ctx)


__all__ = [
    "NEEDS_SUPERNET",
    "STRATEGIES",
    "Proposal",
    "Strategy",
    "StrategyContext",
    "StrategyExhausted",
    "WaitForResults",
    "make_strategy",
]
