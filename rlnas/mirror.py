"""A mirror of a run's trials in an Optuna storage (``RUN/optuna.sqlite3``), so Optuna's tools work on rlnas
runs: ``optuna-dashboard sqlite:///RUN/optuna.sqlite3`` (``pip install 'rlnas[dashboard]'``) and
``optuna.visualization`` (history, parameter importances, parallel coordinates, slices).

Each rlnas trial becomes one Optuna trial with the same number, started and completed when the child was:
its active decisions as categorical parameters with the decision's choices (conditional decisions that are
inactive in a child are absent, as in any Optuna define-by-run search space), the reward as its value (FAIL
without a value when the child failed; the objective is named after what it measures), and the measured
metrics (counts as integers), the architecture key and the status as user attributes, and the validation
score after each epoch as its intermediate values (optuna-dashboard's "Intermediate Values" chart). The trial
store stays the record of the run; the mirror is rebuilt from it on resume (``sync``) and never stops a search.
"""

from __future__ import annotations

import datetime
import logging
import math
import urllib.parse
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlnas.evaluation.base import COMPLETE, PRUNED
from rlnas.space.core import SearchSpace
from rlnas.store import TrialRecord, integer_metric

log = logging.getLogger(__name__)

OPTUNA_FILE = "optuna.sqlite3"


def storage_url(run_dir: str | Path) -> str:
    """The mirror's SQLAlchemy URL; the path is percent-encoded, so that a run directory named with ``?``, ``#``
    or ``%`` stays one path (unquoted, ``?`` would start the URL's query and the file land elsewhere)."""
    return "sqlite:///" + urllib.parse.quote(str(Path(run_dir).resolve() / OPTUNA_FILE))


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class OptunaMirror:
    """Appends every finished trial of a run to an Optuna study of the same name."""

    def __init__(
        self, run_dir: str | Path, space: SearchSpace, attrs: dict[str, Any] | None = None, objective: str = "reward"
    ) -> None:
        """``objective`` names the value in Optuna's charts (e.g. ``reward = val accuracy - 0.02 x params``)."""
        optuna = _quiet_optuna()
        self.space = space
        self.study = optuna.create_study(
            storage=storage_url(run_dir),
            study_name=Path(run_dir).resolve().name,
            direction="maximize",
            load_if_exists=True,
        )
        for key, value in (attrs or {}).items():
            self.study.set_user_attr(key, value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names([objective])
        self.count = len(self.study.get_trials(deepcopy=False))
        self.broken = False

    def sync(self, records: Iterable[TrialRecord]) -> None:
        """Add the records the study does not hold yet (after a resume, or a mirror written before a kill)."""
        for record in records:
            if record.number >= self.count:
                self.add(record)

    def add(self, record: TrialRecord) -> None:
        """Mirror one record; a failure is logged once and turns the mirror off (the store has the trial)."""
        if self.broken:
            return
        try:
            self.study.add_trial(self.frozen(record))
            self.count += 1
        except Exception as err:  # noqa: BLE001 - the mirror is a view; it never costs a trial
            self.broken = True
            log.warning(
                "the Optuna mirror of the trials stopped (%s: %s); the trial store is complete", type(err).__name__, err
            )

    def frozen(self, record: TrialRecord) -> Any:
        from optuna.distributions import CategoricalDistribution
        from optuna.trial import FrozenTrial, TrialState

        params: dict[str, Any] = {}
        distributions: dict[str, Any] = {}
        for decision in self.space.decisions:
            if decision.name in record.architecture and len(decision.choices) > 1:
                params[decision.name] = decision.choices[decision.index(record.architecture[decision.name])]
                distributions[decision.name] = CategoricalDistribution(list(decision.choices))
        # a pruned trial keeps the reward of the epoch it stopped after, as Optuna keeps its last intermediate value
        scored = record.status in (COMPLETE, PRUNED) and math.isfinite(record.reward)
        state = TrialState.FAIL if not scored else TrialState.PRUNED if record.status == PRUNED else TrialState.COMPLETE
        attrs: dict[str, Any] = {
            "rlnas_number": record.number,
            "key": record.key,
            "status": record.status,
            **{
                k: integer_metric(k, v)
                for k, v in record.metrics.items()
                if isinstance(v, (int, float)) and math.isfinite(v)
            },
        }
        if record.error:
            attrs["error"] = record.error[:1000]
        start = datetime.datetime.fromtimestamp(record.started_at)
        return FrozenTrial(
            number=record.number,
            state=state,
            value=float(record.reward) if scored else None,
            datetime_start=start,
            datetime_complete=start + datetime.timedelta(seconds=max(record.duration_s, 0.0)),
            params=params,
            distributions=distributions,
            user_attrs=attrs,
            system_attrs={},
            intermediate_values={epoch: float(v) for epoch, v in enumerate(record.curve, start=1)},
            trial_id=0,  # the storage numbers it
        )


def load_study(run_dir: str | Path) -> Any | None:
    """The run's mirrored Optuna study, or None if the run has none."""
    if not (Path(run_dir) / OPTUNA_FILE).is_file():
        return None
    optuna = _quiet_optuna()
    return optuna.load_study(study_name=None, storage=storage_url(run_dir))  # one study per run: its name may differ


def open_mirror(
    run_dir: Path, space: SearchSpace, attrs: dict[str, Any], objective: str, records: Iterable[TrialRecord]
) -> OptunaMirror | None:
    """The run's mirror, with ``records`` (a resumed run's trials) added; None when it cannot be opened: an
    optional view, a damaged mirror never stops the search."""
    try:
        mirror = OptunaMirror(run_dir, space, attrs, objective)
        mirror.sync(records)
        return mirror
    except Exception as err:  # noqa: BLE001
        log.warning(
            "the Optuna mirror %s cannot be opened (%s: %s); searching without it (the trial store is "
            "complete; delete the file to have it rebuilt on the next resume)",
            run_dir / OPTUNA_FILE,
            type(err).__name__,
            err,
        )
        return None
