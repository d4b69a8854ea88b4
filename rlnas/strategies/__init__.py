"""Search strategies: one ask/tell interface, one registry of factories. Only the selected one is built."""

from __future__ import annotations

from collections.abc import Callable

from rlnas.errors import ConfigError
from rlnas.strategies.base import RandomSearch, Strategy, StrategyContext, StrategyExhausted


def _ppo(ctx: StrategyContext) -> Strategy:
    from rlnas.strategies.ppo import PPOStrategy

    return PPOStrategy(ctx)


STRATEGIES: dict[str, Callable[[StrategyContext], Strategy]] = {
    "ppo": _ppo,
    "random": RandomSearch,
}


def make_strategy(name: str, ctx: StrategyContext) -> Strategy:
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}") from None
    return factory(ctx)


__all__ = ["STRATEGIES", "Strategy", "StrategyContext", "StrategyExhausted", "make_strategy"]
