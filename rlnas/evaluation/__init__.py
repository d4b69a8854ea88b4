"""Evaluating architectures: results, evaluators, training and the objective."""

from __future__ import annotations

from rlnas.evaluation.base import (
    COMPLETE,
    FAILED,
    INFEASIBLE,
    PRUNED,
    Evaluation,
    Evaluator,
    Status,
    SyntheticEvaluator,
)

__all__ = ["COMPLETE", "FAILED", "INFEASIBLE", "PRUNED", "Status", "Evaluation", "Evaluator", "SyntheticEvaluator"]
