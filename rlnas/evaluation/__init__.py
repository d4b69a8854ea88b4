"""Evaluating architectures: results, evaluators, training and the objective."""

from __future__ import annotations

from rlnas.evaluation.base import COMPLETE, FAILED, Evaluation, Evaluator, SyntheticEvaluator

__all__ = ["COMPLETE", "FAILED", "Evaluation", "Evaluator", "SyntheticEvaluator"]
