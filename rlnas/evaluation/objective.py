"""The search's objective: a child's validation score minus a complexity penalty."""

from __future__ import annotations

import logging

from rlnas.config import ObjectiveConfig
from rlnas.evaluation.base import val_score
from rlnas.models.complexity import cpu_latency_ms, largest_architecture
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
