"""Optuna's plots of a run's trials for its report: optimization history, importances (fANOVA), parallel
coordinates and slices, from an in-memory study of the run's completed trials."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.evaluation.base import COMPLETE
from rlnas.report_plots import Run, _pyplot, _save

log = logging.getLogger(__name__)
INACTIVE = "(inactive)"


def optuna_study(run: Run, fill_inactive: bool) -> Any:
    """The run's trials as an in-memory Optuna study: the same trials as the run's mirror
    (RUN/optuna.sqlite3); with ``fill_inactive`` every decision is a parameter of every trial, inactive
    decisions taking the value "(inactive)", so importances cover conditional decisions too."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", study_name=run.path.name)
    choices = {name: values for name, values in run.decisions if len(values) > 1}
    trials = []
    for record in run.records:
        if record.status != COMPLETE or not math.isfinite(record.reward):
            continue
        params: dict[str, Any] = {}
        dists: dict[str, Any] = {}
        for name, values in choices.items():
            if name in record.architecture:
                value = record.architecture[name]
                params[name] = str(value) if fill_inactive else value
                dists[name] = CategoricalDistribution(
                    [str(v) for v in values] + [INACTIVE] if fill_inactive else values
                )
            elif fill_inactive:
                params[name] = INACTIVE
                dists[name] = CategoricalDistribution([str(v) for v in values] + [INACTIVE])
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                value=float(record.reward),
                state=TrialState.COMPLETE,
                user_attrs={"rlnas_number": record.number},
            )
        )
    study.add_trials(trials)
    return study


def importances(run: Run) -> dict[str, float]:
    """fANOVA importance of each decision for the reward (Optuna's evaluator, seeded); {} if too few trials."""
    import optuna

    study = optuna_study(run, fill_inactive=True)
    if len(study.trials) < 4:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(
                optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
                )
            )
    except (ValueError, RuntimeError) as err:
        log.warning("parameter importances not computed: %s", err)
        return {}


def optuna_plots(run: Run, target: Path, ranked: list[str]) -> list[tuple[str, Path, str]]:
    """Optuna's optimization history, importances, parallel coordinates and slices, as PNG."""
    import optuna.visualization.matplotlib as ovm

    plt = _pyplot()
    native = optuna_study(run, fill_inactive=False)
    if len(native.trials) < 2:
        return []
    out = []
    import matplotlib

    with warnings.catch_warnings(), matplotlib.rc_context():  # Optuna switches the global style to ggplot
        warnings.simplefilter("ignore")
        ax = ovm.plot_optimization_history(native, target_name="reward")
        _figure(ax).set_size_inches(8, 4.5)
        out.append(
            (
                "Optimization history",
                _save(_figure(ax), target / "history.png"),
                "reward of every completed trial and the best so far (Optuna)",
            )
        )
        if ranked:
            filled = optuna_study(run, fill_inactive=True)
            ax = ovm.plot_param_importances(filled, evaluator=_fanova(), params=ranked[:15], target_name="reward")
            _figure(ax).set_size_inches(8, 0.35 * min(15, len(ranked)) + 1.5)
            out.append(
                (
                    "Decision importances",
                    _save(_figure(ax), target / "importances.png"),
                    'fANOVA importance for the reward; inactive decisions count as the choice "(inactive)"'
                    + _few_trials(native),
                )
            )
            top = ranked[: min(8, len(ranked))]
            ax = ovm.plot_parallel_coordinate(filled, params=top, target_name="reward")
            _figure(ax).set_size_inches(11, 5)
            out.append(
                (
                    "Parallel coordinates",
                    _save(_figure(ax), target / "parallel.png"),
                    f"the {len(top)} most important decisions; colour: reward",
                )
            )
            top = ranked[: min(6, len(ranked))]
            axes = ovm.plot_slice(filled, params=top, target_name="reward")
            figure = _figure(np.atleast_1d(np.asarray(axes, dtype=object)).ravel()[0])
            figure.set_size_inches(min(18, 3.2 * len(top)), 4)
            out.append(
                (
                    "Slices",
                    _save(figure, target / "slice.png"),
                    "reward against each of the most important decisions; colour: trial number",
                )
            )
    plt.close("all")
    return out


MIN_IMPORTANCE_TRIALS = 20


def _few_trials(study: Any) -> str:
    """A caveat for importances estimated from few completed trials."""
    done = sum(1 for t in study.trials if t.value is not None)
    if done >= MIN_IMPORTANCE_TRIALS:
        return ""
    return f". Rough: from {done} completed trials only (fANOVA needs about {MIN_IMPORTANCE_TRIALS} or more)"


def _figure(ax: Any) -> Any:
    return ax.figure


def _fanova() -> Any:
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(seed=0)
