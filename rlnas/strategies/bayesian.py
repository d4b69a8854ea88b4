"""Optuna-based strategies on the rlnas space: Bayesian optimization (TPE or GP), random search followed
by Bayesian optimization, and NSGA-II multi-objective (Pareto) search.

TPE and NSGA-II are asked for conditional decisions only when they are active (define-by-run), so they never
see the parameters of unused layers. Optuna's GP sampler models a fixed set of parameters (it would sample
every conditional decision at random): it is asked for every decision of the space, and the inactive ones
are left out of the architecture. A masked choice (e.g. pooling a 1x1 map) is replaced by a valid one.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState

from rlnas.evaluation.base import COMPLETE, Evaluation, val_score
from rlnas.space.core import Architecture, Choice, SearchSpace
from rlnas.store import TrialRecord
from rlnas.strategies.base import RandomSearch, StrategyContext

COMPLEXITY_METRIC = {"params": "params", "flops": "flops", "latency": "latency_ms"}


def suggest_architecture(
    trial: optuna.trial.BaseTrial, space: SearchSpace, rng: Any, static: bool = False
) -> Architecture:
    """Walk the space's active decisions, asking the trial for each choice index (``static``: the trial is
    first asked for every decision, active or not)."""
    asked = {d.name: int(trial.suggest_categorical(d.name, _indices(d))) for d in space.decisions} if static else {}
    values: dict[str, Choice] = {}
    position = space.next_position(0, values)
    while position is not None:
        decision = space.decisions[position]
        index = asked[decision.name] if static else int(trial.suggest_categorical(decision.name, _indices(decision)))
        valid = space.valid_indices(position, values)
        if index not in valid:
            index = valid[int(rng.integers(len(valid)))]
        values[decision.name] = decision.choices[index]
        position = space.next_position(position + 1, values)
    return Architecture(space.name, tuple(values.items()))


def _indices(decision: Any) -> list[int]:
    return list(range(len(decision.choices)))


def _params_of(
    space: SearchSpace, arch: Architecture, static: bool = False
) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """An architecture as a trial's parameters (``static``: inactive decisions too, at their first choice)."""
    params: dict[str, Any] = {}
    dists: dict[str, BaseDistribution] = {}
    for decision in space.decisions:
        if decision.name in arch or static:
            params[decision.name] = decision.index(arch[decision.name]) if decision.name in arch else 0
            dists[decision.name] = CategoricalDistribution(_indices(decision))
    return params, dists


class BayesianOptimization(RandomSearch):
    """Optuna TPE (multivariate, grouped for conditional spaces) or GP sampler; maximizes the reward."""

    name = "bayesian"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.cfg = ctx.config.strategy.bayesian
        self.static = self.cfg.sampler == "gp"  # the GP sampler needs every decision in every trial
        self.study = self._create_study(self.cfg.n_startup)
        self._pending: dict[str, deque[optuna.trial.Trial]] = {}  # arch key -> asked trials, not yet told

    def _create_study(self, n_startup: int) -> optuna.Study:
        seed = int(self.rng.integers(2**31))
        sampler: optuna.samplers.BaseSampler
        if self.cfg.sampler == "gp":
            sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler = optuna.samplers.TPESampler(
                    seed=seed, n_startup_trials=n_startup, multivariate=True, group=True
                )
        return optuna.create_study(direction="maximize", sampler=sampler)

    def _value(self, evaluation: Evaluation) -> float | list[float] | None:
        """What the study is told; None for a failed trial."""
        return float(evaluation.reward)

    def warm_start(self, records: list[TrialRecord]) -> None:
        """Add the finished trials of an interrupted run to the study."""
        self.seen.update(r.key for r in records)
        for record in records:
            params, dists = _params_of(self.space, record.architecture, self.static)
            value = self._value(record.evaluation(cached=False))
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            self.study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=values))

    def ask(self) -> Architecture:
        trial = self.study.ask()
        arch = suggest_architecture(trial, self.space, self.rng, self.static)
        self._pending.setdefault(arch.key, deque()).append(trial)
        self.seen.add(arch.key)
        return arch

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        trials = self._pending.get(arch.key)
        if not trials:
            return
        trial = trials.popleft()
        if not trials:
            del self._pending[arch.key]
        value = self._value(evaluation)
        if value is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, value)


class RandomThenBayesian(BayesianOptimization):
    """Random search for ``random_fraction`` of the budget, then TPE/GP started from everything seen
    (the random trials are added to the study, so the model starts from the best configurations)."""

    name = "random-then-bayesian"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.random_trials = max(2, math.ceil(self.cfg.random_fraction * ctx.config.budget.evaluations))
        self.study = self._create_study(n_startup=1)
        self._random: set[str] = set()  # random proposals not yet told
        self.asked = 0

    def ask(self) -> Architecture:
        self.asked += 1
        if self.asked <= self.random_trials:
            arch = self.sample_new()
            self._random.add(arch.key)
            return arch
        return super().ask()

    def warm_start(self, records: list[TrialRecord]) -> None:
        super().warm_start(records)
        self.asked = len(records)

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        if arch.key in self._random:
            self._random.discard(arch.key)
            params, dists = _params_of(self.space, arch, self.static)
            trial = optuna.trial.create_trial(params=params, distributions=dists, value=float(evaluation.reward))
            self.study.add_trial(trial)
            return
        super().tell(arch, evaluation)


class ParetoSearch(BayesianOptimization):
    """NSGA-II over (validation accuracy: maximize, complexity: minimize)."""

    name = "pareto"

    def __init__(self, ctx: StrategyContext) -> None:
        RandomSearch.__init__(self, ctx)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.metric = COMPLEXITY_METRIC[ctx.config.objective.complexity]
        sampler = optuna.samplers.NSGAIISampler(
            population_size=ctx.config.strategy.pareto.population_size, seed=int(self.rng.integers(2**31))
        )
        self.study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        self.static = False
        self._pending = {}

    def _value(self, evaluation: Evaluation) -> float | list[float] | None:
        metrics = evaluation.metrics
        score = val_score(metrics)
        if evaluation.status != COMPLETE or self.metric not in metrics or score is None:
            return None
        return [score, float(metrics[self.metric])]
