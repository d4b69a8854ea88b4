"""Early stopping of children (``pruning``): Optuna's rules, the stopped child, PRUNED trials end to end."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from conftest import cli, tiny_config

from rlnas.config import PruningConfig, load_config
from rlnas.driver import Search
from rlnas.errors import ConfigError
from rlnas.evaluation.base import COMPLETE, PRUNED
from rlnas.evaluation.objective import Objective
from rlnas.evaluation.pruning import Pruner, StopRule
from rlnas.evaluation.train import Reports
from rlnas.evaluation.trainer import TrainingEvaluator
from rlnas.loop_state import cost
from rlnas.prepare import prepare
from rlnas.space.core import Architecture
from rlnas.store import TrialStore
from rlnas.strategies import NEEDS_SUPERNET, STRATEGIES

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _optuna_pruner(config: PruningConfig) -> optuna.pruners.BasePruner:
    if config.rule == "median":
        # Optuna numbers our epochs from 1 as steps: a child trains warmup_epochs, then step warmup + 1 may stop
        return optuna.pruners.PercentilePruner(
            config.percentile,
            n_startup_trials=config.startup_trials,
            n_warmup_steps=round(config.warmup_epochs * config.reports_per_epoch) + 1,
            n_min_trials=config.min_trials,
        )
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=round(config.min_epochs * config.reports_per_epoch),
        reduction_factor=config.reduction_factor,
        min_early_stopping_rate=0,
    )


@pytest.mark.parametrize("rule", ["median", "halving"])
def test_the_rules_stop_the_children_optunas_pruners_stop(rule: str) -> None:
    """Children run one after the other, each through Optuna's pruner and through rlnas's thresholds computed
    from the earlier children: both stop the same children after the same epochs (rlnas never stops a child
    at its last epoch, so the last epoch is not asked). With ``reports_per_epoch`` = R, Optuna's steps are the
    reports: warm-up and first rung in epochs times R."""
    rng = np.random.default_rng(0)
    stopped = 0
    for case in range(60):
        per_epoch = int(rng.choice([1, 1, 2, 4]))
        epochs = int(rng.integers(1, 8)) if per_epoch > 1 else int(rng.integers(2, 8))
        config = PruningConfig(
            rule=rule,  # type: ignore[arg-type]
            warmup_epochs=int(rng.integers(0, 3)) / per_epoch,
            startup_trials=int(rng.integers(1, 5)),
            percentile=float(rng.choice([25.0, 50.0, 75.0])),
            min_trials=int(rng.integers(1, 4)),
            min_epochs=int(rng.integers(1, 3)) / per_epoch,
            reduction_factor=int(rng.integers(2, 4)),
            reports_per_epoch=per_epoch,
        )
        reports = epochs * per_epoch
        pruner = Pruner(config)
        study = optuna.create_study(direction="maximize", pruner=_optuna_pruner(config))
        records: list[SimpleNamespace] = []
        for _ in range(12):
            curve = [float(v) for v in np.cumsum(rng.normal(0.1, 0.1, reports)).round(3)]
            rule_now = pruner.rule(records, epochs)  # type: ignore[arg-type]
            assert rule_now.reports.per_epoch == per_epoch
            ours = next((e for e in range(1, reports) if rule_now.check(curve[:e]) is not None), None)
            trial = study.ask()
            theirs = None
            for e in range(1, reports + 1):
                trial.report(float(curve[e - 1]), e)
                if e < reports and trial.should_prune():
                    theirs = e
                    break
            study.tell(trial, state=optuna.trial.TrialState.PRUNED if theirs else None, values=None if theirs else 1.0)
            assert ours == theirs, (case, config, [r.curve for r in records], curve)
            stopped += ours is not None
            end = ours or reports
            status = PRUNED if ours else COMPLETE
            metrics = {"fidelity": 1.0, "epochs": end / per_epoch}
            records.append(SimpleNamespace(curve=tuple(curve[:end]), status=status, metrics=metrics, fidelity=1.0))
    assert stopped > 20  # the comparison covers stops, not only children that finish


def _child(digits, epochs: int) -> tuple[TrainingEvaluator, Objective, Architecture]:  # type: ignore[no-untyped-def]
    """A training evaluator of the tiny digits search, its objective and one sampled child."""
    config = tiny_config(f"training.epochs={epochs}")
    prepared = prepare(config, digits)
    objective = Objective.for_space(config.objective, prepared.space, digits.input_shape, digits.num_outputs)
    evaluator = TrainingEvaluator(prepared.trainer, objective, seed=0)
    return evaluator, objective, prepared.space.sample(np.random.default_rng(1))


def test_a_child_below_the_threshold_stops_there_and_one_above_finishes(digits) -> None:  # type: ignore[no-untyped-def]
    evaluator, objective, arch = _child(digits, 3)
    evaluator.stop = StopRule((None, 1.01))  # after epoch 2, no child reaches an accuracy of 1.01
    pruned = evaluator.evaluate(arch)
    assert pruned.status == PRUNED
    assert len(pruned.curve) == 2 and pruned.metrics["epochs"] == 2
    assert pruned.metrics["trained_fraction"] == pytest.approx(2 / 3)
    assert pruned.metrics["val_accuracy"] == pruned.curve[-1]
    assert pruned.reward == pytest.approx(objective(dict(pruned.metrics)))
    assert "pruned after epoch 2 of 3" in (pruned.error or "")
    assert cost(pruned.metrics) == pytest.approx(2 / 3)
    evaluator.stop = StopRule((None, 0.0))
    finished = evaluator.evaluate(arch)
    assert finished.status == COMPLETE and len(finished.curve) == 3
    assert finished.curve[:2] == pruned.curve  # the same seeded training up to the stop


def test_a_child_scored_within_its_epoch_stops_there(digits) -> None:  # type: ignore[no-untyped-def]
    """With 4 reports per epoch a child of one epoch is scored after each quarter and can stop at half."""
    evaluator, _, arch = _child(digits, 1)
    evaluator.stop = StopRule((None, 1.01, None), reports=Reports(4))
    pruned = evaluator.evaluate(arch)
    assert pruned.status == PRUNED and len(pruned.curve) == 2
    assert pruned.metrics["epochs"] == 0.5 and pruned.metrics["trained_fraction"] == 0.5
    assert "pruned after epoch 0.5 of 1" in (pruned.error or "")
    evaluator.stop = StopRule((None, 0.0, 0.0), reports=Reports(4))
    finished = evaluator.evaluate(arch)
    assert finished.status == COMPLETE and len(finished.curve) == 4
    assert finished.curve[:2] == pruned.curve
    assert finished.curve[-1] == finished.metrics["val_accuracy"]
    evaluator.stop = StopRule()
    assert evaluator.evaluate(arch).metrics["val_accuracy"] == finished.metrics["val_accuracy"]  # same training


def test_every_child_reports_as_often_even_with_fewer_steps_than_reports(digits) -> None:  # type: ignore[no-untyped-def]
    config = tiny_config("training.epochs=2", "training.batch_size=64", "training.data_fraction=0.01")
    prepared = prepare(config, digits)
    arch = prepared.space.sample(np.random.default_rng(1))
    heard: list[float] = []
    prepared.trainer.validate(arch, 0, on_epoch=lambda e: heard.append(e.epoch), reports=Reports(3))
    assert heard == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])  # one step per epoch, three reports


def test_scores_within_an_epoch_are_taken_on_a_fixed_subset_of_validation(digits) -> None:  # type: ignore[no-untyped-def]
    config = tiny_config("training.epochs=1")
    prepared = prepare(config, digits)
    arch = prepared.space.sample(np.random.default_rng(1))
    scores: list[float] = []
    _, val = prepared.trainer.validate(arch, 0, on_epoch=lambda e: scores.append(e.score or 0.0), reports=Reports(2, 8))
    assert len(digits.val) > 100
    assert (scores[0] * 8) == pytest.approx(round(scores[0] * 8))  # a share of the 8 examples
    assert scores[1] == val["val_accuracy"]  # the epoch's end: on all of them
    again: list[float] = []
    prepared.trainer.validate(arch, 0, on_epoch=lambda e: again.append(e.score or 0.0), reports=Reports(2, 8))
    assert again == scores


def test_one_epoch_children_are_pruned_with_reports_within_the_epoch(tmp_path: Path) -> None:
    from rlnas.mirror import load_study
    from rlnas.report import report

    overrides = ["training.epochs=1", "pruning.rule=halving", "pruning.reduction_factor=2", "budget.evaluations=5"]
    overrides += ["pruning.reports_per_epoch=4", "pruning.min_epochs=0.25", "strategy.name=random"]
    run = tmp_path / "run"
    search = Search(tiny_config(*overrides, "export.enabled=false"), run)
    search.run()
    trials = search.store.trials()
    search.close()
    pruned = [t for t in trials if t.status == PRUNED]
    assert pruned, [t.status for t in trials]
    assert all(len(t.curve) == 4 * t.metrics["epochs"] for t in trials if t.status in (PRUNED, COMPLETE))
    assert all(t.metrics["trained_fraction"] in (0.25, 0.5) for t in pruned)
    study = load_study(run)
    assert study is not None
    assert all(len(t.intermediate_values) == len(trials[t.number].curve) for t in study.trials)
    assert (report([run], tmp_path / "report") / "curves.png").is_file()


def test_pruning_epochs_must_fall_on_reports() -> None:
    with pytest.raises(ConfigError, match="warmup_epochs=0.3 is not a multiple of 1 / reports_per_epoch"):
        load_config(None, ["pruning.rule=median", "pruning.reports_per_epoch=4", "pruning.warmup_epochs=0.3"])


@pytest.mark.parametrize("workers", [1, 2])
def test_pruned_trials_reach_the_store_mirror_report_and_resume(tmp_path: Path, workers: int) -> None:
    from rlnas.mirror import load_study
    from rlnas.report import report

    overrides = [
        "training.epochs=3",
        "pruning.rule=halving",
        "pruning.reduction_factor=2",
        "budget.evaluations=5",
        "strategy.name=random",
        f"execution.workers={workers}",
        "export.enabled=false",
    ]
    run = tmp_path / "run"
    search = Search(tiny_config(*overrides), run)
    search.run()
    search.close()
    store = TrialStore(run / "trials.sqlite", read_only=True)
    trials = store.trials()
    store.close()
    pruned = [t for t in trials if t.status == PRUNED]
    assert pruned, [t.status for t in trials]
    assert all(0 < t.metrics["trained_fraction"] < 1 and len(t.curve) == t.metrics["epochs"] for t in pruned)
    spent = sum(cost(t.metrics) for t in trials)
    # a pruned child costs its share of the budget; children start while some is left, and finish
    assert len(trials) > 5 and 5 - 1e-9 <= spent < 5 + workers
    study = load_study(run)
    assert study is not None
    states = {t.number: t for t in study.trials}
    for t in pruned:
        assert states[t.number].state == optuna.trial.TrialState.PRUNED
        assert list(states[t.number].intermediate_values.values()) == pytest.approx(list(t.curve))
    html = (report([run], tmp_path / "report") / "index.html").read_text()
    assert f"{len(pruned)} stopped early by the pruner" in html

    resumed = Search.resume(run, ["budget.evaluations=7"])
    result = resumed.run()
    resumed.close()
    assert result.best is not None and result.best.status == COMPLETE
    store = TrialStore(run / "trials.sqlite", read_only=True)
    after = store.trials()
    store.close()
    assert after[: len(trials)] == trials  # nothing retrained
    assert 7 - 1e-9 <= sum(cost(t.metrics) for t in after) < 7 + workers


def test_whole_pruned_children_buy_the_same_children_as_without_pruning(tmp_path: Path) -> None:
    overrides = ["training.epochs=3", "pruning.rule=halving", "pruning.reduction_factor=2", "budget.evaluations=5"]
    overrides += ["strategy.name=random", "export.enabled=false", "budget.pruned=whole"]
    search = Search(tiny_config(*overrides), tmp_path / "run")
    search.run()
    trials = search.store.trials()
    search.close()
    assert len(trials) == 5 and any(t.status == PRUNED for t in trials), [t.status for t in trials]
    assert sum(cost(t.metrics, pruned="whole") for t in trials) == 5
    assert sum(cost(t.metrics) for t in trials) < 5


@pytest.mark.parametrize(
    "overrides",
    [["evaluation=oneshot"], ["training.cv_folds=3"]],
)
def test_pruning_is_refused_where_children_report_no_validation_curve(overrides: list[str]) -> None:
    with pytest.raises(ConfigError, match="pruning.rule=median stops children"):
        load_config(None, ["pruning.rule=median", *overrides])


def test_a_rule_that_can_never_stop_a_child_is_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    config = tiny_config("training.epochs=1", "pruning.rule=median", "pruning.warmup_epochs=0")
    with caplog.at_level("WARNING", logger="rlnas.evaluation.pruning"):
        Search.in_memory(config).close()
    assert "never stops a child of training.epochs=1" in caplog.text
    assert "pruning.reports_per_epoch, now 1" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rlnas.evaluation.pruning"):
        Search.in_memory(
            tiny_config(
                "training.epochs=1", "pruning.rule=median", "pruning.warmup_epochs=0", "pruning.reports_per_epoch=2"
            ),
        ).close()
    assert "never stops" not in caplog.text


def test_pruning_is_refused_for_an_evaluator_without_epochs(toy_space) -> None:  # type: ignore[no-untyped-def]
    from rlnas.evaluation.base import SyntheticEvaluator

    config = tiny_config("pruning.rule=median")
    with pytest.raises(ConfigError, match="does not train them epoch by epoch"):
        Search.in_memory(config, space=toy_space, evaluator=SyntheticEvaluator(toy_space))


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - NEEDS_SUPERNET))
def test_every_strategy_searches_on_with_pruned_children(name: str) -> None:
    """Children stopped by an eager pruner are told to every strategy, which goes on proposing; the best
    trial is a complete one."""
    config = tiny_config(
        f"strategy.name={name}",
        f"training.epochs={4 if name == 'hyperband' else 2}",  # its first rungs train 1 epoch of 4, then 2
        "pruning.rule=halving",
        "pruning.reduction_factor=2",
        "budget.evaluations=5",
        "export.enabled=false",
    )
    search = Search.in_memory(config)
    result = search.run()
    trials = search.store.trials()
    search.close()
    assert sum(cost(t.metrics) for t in trials if t.status != "INFEASIBLE") >= 5 - 1e-9
    assert any(t.status == PRUNED for t in trials), [t.status for t in trials]
    assert result.best is not None and result.best.status == COMPLETE


def test_a_pruner_that_can_never_stop_a_child_is_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="rlnas.driver"):
        Search.in_memory(tiny_config("pruning.rule=median", "training.epochs=2")).close()
    assert "never stops a child of training.epochs=2" in caplog.text and "pruning.warmup_epochs" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rlnas.driver"):
        Search.in_memory(tiny_config("pruning.rule=halving", "training.epochs=2")).close()
    assert not caplog.text


def test_the_cli_says_how_many_children_the_pruner_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = ["space.depth=[1,2]", "space.per_layer.filters=[8,16]", "space.head.hidden_units=[16,32]"]
    settings += ["training.epochs=3", "pruning.rule=halving", "pruning.reduction_factor=2", "strategy.name=random"]
    settings += ["export.enabled=false", "logging.tensorboard=false"]
    argv = [arg for setting in settings for arg in ("--set", setting)]
    code, out, _ = cli(capsys, "-q", "search", *argv, "--budget", "5", "--run-dir", "r")
    store = TrialStore(tmp_path / "r" / "trials.sqlite", read_only=True)
    pruned = sum(t.status == PRUNED for t in store.trials())
    store.close()
    assert code == 0 and pruned > 0 and f"children evaluated ({pruned} stopped early by the pruner) in" in out
