"""Evaluating architectures: results, evaluators, training and the objective."""

from __future__ import annotations

from rlnas.evaluation.base import COMPLETE, FAILED, INFEASIBLE, Evaluation, Evaluator, SyntheticEvaluator

__all__ = ["COMPLETE", "FAILED", "INFEASIBLE", "Evaluation", "Evaluator", "SyntheticEvaluator"]
