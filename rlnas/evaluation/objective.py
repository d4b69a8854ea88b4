"""The search's objective: a child's validation score minus a complexity penalty."""

from __future__ import annotations

import logging
import math

import numpy as np

from rlnas.config import ObjectiveConfig
from rlnas.data.core import Dataset
from rlnas.errors import ConfigError
from rlnas.evaluation.base import val_score
from rlnas.models.complexity import cpu_latency_ms, largest_architecture, meta_count
from rlnas.models.families import build_model
from rlnas.space.core import SearchSpace

log = logging.getLogger(__name__)

METRIC_OF = {"params": "params", "flops": "flops", "latency": "latency_ms"}  # the metric of each complexity


class Objective:
    """``reward = validation score - lambda * complexity / max complexity of the space``; the score is the
    accuracy (classification) or R² (regression)."""

    def __init__(self, config: ObjectiveConfig, max_complexity: float) -> None:
        self.config = config
        self.metric = METRIC_OF[config.complexity]
        self.max_complexity = max(float(max_complexity), 1e-12)

    def __call__(self, metrics: dict[str, float]) -> float:
        penalty = self.config.lambda_ * float(metrics[self.metric]) / self.max_complexity
        score = val_score(metrics)
        if score is None:
            raise KeyError(f"no validation score in {sorted(metrics)}")
        return score - penalty

    @classmethod
    def for_space(
        cls, config: ObjectiveConfig, space: SearchSpace, input_shape: tuple[int, ...], num_outputs: int
    ) -> Objective:
        measure = "params" if config.complexity == "params" else "flops"
        arch, count = largest_architecture(space, input_shape, num_outputs, measure)
        if config.complexity == "latency":
            model = build_model(arch, space.family, input_shape, num_outputs)
            count = cpu_latency_ms(model, input_shape)  # type: ignore[assignment]
        log.info("largest architecture of the space: %s = %s", config.complexity, count)
        return cls(config, count)


def objective_name(config: ObjectiveConfig, score: str) -> str:
    """What the reward measures, for charts: ``reward = val accuracy - 0.02 x params / max``."""
    lam, what = config.lambda_, config.complexity
    penalty = f" - {lam:g} x {what} / max" if lam else ""
    return f"reward = val {'R²' if score == 'r2' else score}{penalty}"


LIMIT_SAMPLES = 64  # random architectures that must not all break the hard limits


def check_limits(space: SearchSpace, dataset: Dataset, objective: ObjectiveConfig, seed: int) -> None:
    """Refuse hard limits (``objective.max_params`` / ``max_flops``) that none of ``LIMIT_SAMPLES`` random
    architectures of the space meets: the search would propose nothing it may train."""
    limits = {m: v for m, v in (("params", objective.max_params), ("flops", objective.max_flops)) if v is not None}
    if not limits:
        return
    rng = np.random.default_rng(seed)
    smallest = dict.fromkeys(limits, math.inf)
    for _ in range(LIMIT_SAMPLES):
        arch = space.sample(rng)
        counts = {m: meta_count(space, arch, dataset.input_shape, dataset.num_outputs, m) for m in limits}
        if all(counts[m] <= limit for m, limit in limits.items()):
            return
        smallest = {m: min(smallest[m], counts[m]) for m in limits}
    found = " and ".join(f"objective.max_{m}={v} (the smallest has {smallest[m]:.0f})" for m, v in limits.items())
    raise ConfigError(
        f"none of {LIMIT_SAMPLES} random architectures of space {space.name!r} on inputs of shape "
        f"{dataset.input_shape} meets {found}: the search would find nothing it may train; raise the limit or "
        "offer smaller choices in the space"
    )
