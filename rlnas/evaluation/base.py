"""What evaluating an architecture returns, and the evaluator interface the env and driver use."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np

from rlnas.space.core import Architecture, SearchSpace


class Status(StrEnum):
    """How a trial ended (stored as its name; equal to it as a string)."""

    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    INFEASIBLE = "INFEASIBLE"  # violates a hard constraint (objective.max_params); rejected without training
    PRUNED = "PRUNED"  # stopped early by the pruner (``pruning``): scored at the epoch it stopped after


COMPLETE, FAILED, INFEASIBLE, PRUNED = Status.COMPLETE, Status.FAILED, Status.INFEASIBLE, Status.PRUNED


# what the search maximizes: classification, regression; trained children, or sub-networks of a supernet
SCORE_METRICS = ("val_accuracy", "val_r2", "supernet_val_accuracy", "supernet_val_r2")


def score_metric(metrics: Mapping[str, float]) -> str | None:
    """The name of a trial's validation score among its metrics (one of SCORE_METRICS), None if none."""
    return next((name for name in SCORE_METRICS if name in metrics), None)


def val_score(metrics: Mapping[str, float]) -> float | None:
    """A trial's validation score: accuracy (classification) or R² (regression), of a trained child or of a
    supernet's sub-network; None if it has none."""
    name = score_metric(metrics)
    return None if name is None else float(metrics[name])


def cache_key(arch_key: str, fidelity: float) -> str:
    """The identity of one evaluation: the architecture, and the fidelity when below full training."""
    return arch_key if fidelity >= 1.0 else f"{arch_key}@{fidelity:.4g}"


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one architecture: its reward and every measured metric."""

    reward: float
    status: str = COMPLETE
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    cached: bool = False
    curve: tuple[float, ...] = ()  # the validation score after each epoch of its training (where it was trained)


def finite(evaluation: Evaluation, failure_reward: float) -> Evaluation:
    """The evaluation, or a FAILED one if its reward or a metric is not a finite number (NaN, inf): the
    search goes on and the trial store only ever holds finite numbers (a curve keeps its finite start)."""
    curve = evaluation.curve
    if not all(math.isfinite(float(v)) for v in curve):
        end = next(i for i, v in enumerate(curve) if not math.isfinite(float(v)))
        evaluation = replace(evaluation, curve=tuple(float(v) for v in curve[:end]))
    bad = [name for name, value in evaluation.metrics.items() if not math.isfinite(float(value))]
    if math.isfinite(float(evaluation.reward)) and not bad:
        return evaluation
    what = f"reward {evaluation.reward}" if not math.isfinite(float(evaluation.reward)) else ""
    what += ("; " if what and bad else "") + ", ".join(f"{n} {evaluation.metrics[n]}" for n in bad)
    metrics = {k: float(v) for k, v in evaluation.metrics.items() if k not in bad}
    error = f"non-finite {what}" + (f" ({evaluation.error})" if evaluation.error else "")
    return Evaluation(failure_reward, FAILED, metrics, error, evaluation.cached, evaluation.curve)


class Evaluator(Protocol):
    """Anything that scores an architecture: real training, a cache, a lookup table, a fake."""

    def evaluate(self, arch: Architecture) -> Evaluation: ...


@runtime_checkable
class MultiFidelityEvaluator(Protocol):
    """An evaluator that can train at a share of its full training (Hyperband's rungs)."""

    def evaluate(self, arch: Architecture, fidelity: float = 1.0) -> Evaluation: ...

    def effective_fidelity(self, fidelity: float) -> float:
        """The share actually trained for a requested one (e.g. a whole number of epochs)."""
        ...


class SyntheticEvaluator:
    """A fake evaluator whose score comes from the architecture: the fraction of decisions that match
    ``target`` (inactive decisions count as mismatches). Instant; for tests and controller benchmarks."""

    def __init__(self, space: SearchSpace, target: Architecture | None = None, seed: int = 0) -> None:
        self.space = space
        self.target = target if target is not None else space.sample(np.random.default_rng(seed))
        self.calls = 0

    def evaluate(self, arch: Architecture) -> Evaluation:
        self.calls += 1
        names = set(self.target) | set(arch)
        hits = sum(1 for n in names if n in arch and n in self.target and arch[n] == self.target[n])
        score = hits / len(names)
        return Evaluation(reward=score, metrics={"val_accuracy": score, "params": 0.0})
