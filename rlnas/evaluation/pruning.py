"""Early stopping of children (``pruning``): a child whose validation curve falls below the other children's at
the same epoch stops there and becomes a PRUNED trial.

The rules are Optuna's, applied to the curves of the finished children (the trial store): ``median`` is
``optuna.pruners.PercentilePruner`` (``MedianPruner`` at the 50th percentile): after ``startup_trials``
complete children, a child whose best score so far is below the ``percentile``-th best of the complete
children's scores at the same epoch stops (from epoch ``warmup_epochs + 1`` on, where at least
``min_trials`` of them have a score). ``halving`` is ``optuna.pruners.SuccessiveHalvingPruner`` (asynchronous
successive halving): at the rung epochs ``min_epochs x reduction_factor**k``, a child goes on only if its
score is in the top ``1 / reduction_factor`` of the children (complete or pruned) that reached that rung.

The search process turns the finished curves into one threshold per epoch before a child starts
(:meth:`Pruner.rule`) and sends them with the child, so the child decides at each epoch end, in
whichever process or Ray actor trains it, without a round trip. Only children trained for the same number of
epochs are compared (a Hyperband rung of 2 epochs has another learning-rate schedule than one of 6).

With ``reports_per_epoch`` = R > 1 a child is scored R times per epoch, evenly over its steps, and the rules
work on those scores as Optuna's work on the steps of a trial: ``warmup_epochs`` and ``min_epochs`` (multiples of
1 / R) become ``warmup_epochs x R`` and ``min_epochs x R`` reports. So children of one epoch can be stopped too.
The scores within an epoch are taken on a fixed subset of ``report_examples`` validation examples (a pass over
all of them can cost a third of a small child's training), the epoch ends on all of them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rlnas.config import PruningConfig
from rlnas.errors import ConfigError
from rlnas.evaluation.base import COMPLETE, PRUNED
from rlnas.evaluation.train import EPOCH_ENDS, EpochEnd, Reports

if TYPE_CHECKING:
    from rlnas.store import TrialRecord

log = logging.getLogger(__name__)


class Pruned(Exception):
    """Raised from a child's epoch report to stop its training: ``event`` is the epoch it stopped after."""

    def __init__(self, event: EpochEnd, threshold: float) -> None:
        super().__init__(f"pruned after epoch {event.epoch:g} of {event.epochs}: {event.score} < {threshold:.4f}")
        self.event = event
        self.threshold = threshold


@dataclass(frozen=True)
class StopRule:
    """What a child needs to decide, at each report of its score (``reports``: how often), whether it stops: a
    threshold per report (index report - 1; None: no check there) for its best score so far (median rule) or its
    last one (halving)."""

    thresholds: tuple[float | None, ...] = ()
    best_so_far: bool = True
    reports: Reports = EPOCH_ENDS

    def check(self, curve: Sequence[float]) -> float | None:
        """The threshold that stops a child whose validation scores so far are ``curve``, or None."""
        report = len(curve)
        if report == 0 or report > len(self.thresholds) or (threshold := self.thresholds[report - 1]) is None:
            return None
        value = max(curve) if self.best_so_far else curve[-1]
        return threshold if value < threshold else None


NEVER = StopRule()


class Pruner:
    """Per-epoch thresholds from the finished trials, by the configured rule."""

    def __init__(self, config: PruningConfig) -> None:
        self.config = config

    @property
    def enabled(self) -> bool:
        return self.config.rule != "none"

    def check(self, evaluator: object, epochs: int) -> None:
        """Refuse an evaluator that cannot stop a child (no ``stop`` rule per child); warn where children of
        ``epochs`` epochs can never be stopped."""
        c = self.config
        if not self.enabled:
            return
        if not hasattr(evaluator, "stop"):
            raise ConfigError(
                f"pruning.rule={c.rule} stops children during their training, but this search's evaluator "
                f"({type(evaluator).__name__}) does not train them epoch by epoch; set pruning.rule=none"
            )
        if not self.can_stop(epochs):
            log.warning(
                "pruning.rule=%s never stops a child of training.epochs=%d: it compares children after epochs %s "
                "and never at the last one; train children longer, lower the pruning.* setting named, or score "
                "them within an epoch (pruning.reports_per_epoch, now %d)",
                c.rule,
                epochs,
                "warmup_epochs + 1 / reports_per_epoch on (pruning.warmup_epochs)"
                if c.rule == "median"
                else "min_epochs x reduction_factor**k (pruning.min_epochs)",
                c.reports_per_epoch,
            )

    def _reports(self, epochs: float) -> int:
        return round(epochs * self.config.reports_per_epoch)

    def can_stop(self, epochs: int) -> bool:
        """Whether a child of ``epochs`` epochs can be stopped at all (never at its last report)."""
        c = self.config
        first = self._reports(c.warmup_epochs) + 1 if c.rule == "median" else self._reports(c.min_epochs)
        return self.enabled and first < self._reports(epochs)

    def rule(self, records: Iterable[TrialRecord], epochs: int, fidelity: float = 1.0) -> StopRule:
        """The stop rule of a child trained for ``epochs`` at ``fidelity``, from ``records`` of the same."""
        reports = self._reports(epochs)
        if not self.enabled or reports <= 1:
            return NEVER
        c = self.config
        how = Reports(c.reports_per_epoch, c.report_examples)
        same = [r for r in records if r.curve and _same_training(r, fidelity, c.reports_per_epoch)]
        if c.rule == "median":
            return StopRule(self._percentile([r.curve for r in same if r.status == COMPLETE], reports), True, how)
        return StopRule(self._halving([r.curve for r in same if r.status in (COMPLETE, PRUNED)], reports), False, how)

    def _percentile(self, curves: list[tuple[float, ...]], reports: int) -> tuple[float | None, ...]:
        c = self.config
        if len(curves) < max(c.startup_trials, 1):
            return ()
        out: list[float | None] = [None] * (reports - 1)  # the last report finishes anyway: never stop there
        for report in range(self._reports(c.warmup_epochs) + 1, reports):
            values = [curve[report - 1] for curve in curves if len(curve) >= report]
            if len(values) >= c.min_trials:
                # maximizing: Optuna takes the (100 - percentile)-th percentile of the others' scores
                out[report - 1] = float(np.percentile(values, 100.0 - c.percentile))
        return tuple(out)

    def _halving(self, curves: list[tuple[float, ...]], reports: int) -> tuple[float | None, ...]:
        c = self.config
        out: list[float | None] = [None] * (reports - 1)
        rung = self._reports(c.min_epochs)
        while rung < reports:
            values = sorted((curve[rung - 1] for curve in curves if len(curve) >= rung), reverse=True)
            # Optuna ranks the child among the others and itself: it goes on if at most `keep - 1` are better
            keep = max(1, (len(values) + 1) // c.reduction_factor)
            if len(values) >= keep:
                out[rung - 1] = values[keep - 1]
            rung *= c.reduction_factor
        return tuple(out)


def _same_training(record: TrialRecord, fidelity: float, per_epoch: int) -> bool:
    """Whether ``record`` trained at ``fidelity`` and was scored ``per_epoch`` times per epoch (a run resumed with
    another ``reports_per_epoch`` has curves of other lengths: they are not compared)."""
    reports = round(record.metrics.get("epochs", 0.0) * per_epoch)
    return math.isclose(record.fidelity, fidelity, rel_tol=1e-9) and len(record.curve) == reports
