"""An export's trainings that fail: a candidate or an architecture is left out (and listed), the search's next
best replaces it, and a recipe that keeps failing stops the export with a clear error that keeps every trial
and the previous export. The children's time limit does not bind the export's trainings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlnas.driver import Search
from rlnas.errors import ChildFailure
from rlnas.evaluation.base import SyntheticEvaluator
from rlnas.evaluation.trainer import ChildTrainer
from rlnas.exporter import export_run
from rlnas.prepare import prepare
from rlnas.retrain import MAX_FAILURES, ExportFailure
from rlnas.rundir import open_run
from rlnas.space.core import Architecture
from tests.conftest import cli, tiny_config


def _searched(tmp_path: Path, *overrides: str) -> list[int]:
    """A run of the tiny space whose children are scored by a synthetic evaluator (nothing trained); the
    search's ranking of trial numbers, best first."""
    config = tiny_config(
        "strategy.name=random", "budget.evaluations=6", "logging.tensorboard=false", "export.formats=[]", *overrides
    )
    space = prepare(config).space
    search = Search(config, tmp_path / "run", evaluator=SyntheticEvaluator(space), space=space)
    search.run()
    ranked = [t.number for t in search.store.top_k(6)]
    search.close()
    return ranked


def _failing(monkeypatch: pytest.MonkeyPatch, run: Path, trials: set[int] | None, method: str = "train") -> list[int]:
    """Make ``ChildTrainer.<method>`` fail for the architectures of ``trials`` (None: all); returns the list
    the attempts are recorded in (trial numbers)."""
    with open_run(run)[1] as store:
        keys = {t.architecture.key: t.number for t in store.trials()}
    attempts: list[int] = []
    original = getattr(ChildTrainer, method)

    def flaky(self: ChildTrainer, arch: Architecture, *args, **kwargs):  # type: ignore[no-untyped-def]
        attempts.append(keys[arch.key])
        if trials is None or keys[arch.key] in trials:
            raise ChildFailure("non-finite training loss (nan) in epoch 1")
        return original(self, arch, *args, **kwargs)

    monkeypatch.setattr(ChildTrainer, method, flaky)
    return attempts


def test_the_childrens_time_limit_does_not_bind_the_exports_trainings(tmp_path: Path) -> None:
    # 0.6 ms per child: any real training, the export's included, would exceed it
    ranked = _searched(tmp_path, "training.max_minutes_per_child=0.00001", "export.rescore_top_k=2")
    metrics = export_run(tmp_path / "run")
    assert metrics["failed_trainings"] == []
    assert metrics["trial"] in ranked[:2] and 0.1 < metrics["test_accuracy"] <= 1.0


def test_a_final_training_that_fails_is_replaced_by_the_search_s_next_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranked = _searched(tmp_path, "export.repeats=2")
    attempts = _failing(monkeypatch, tmp_path / "run", {ranked[0]})
    metrics = export_run(tmp_path / "run")
    assert attempts == [ranked[0], ranked[0], ranked[1], ranked[1]]  # both repeats of the winner failed
    assert metrics["trial"] == ranked[1] and metrics["ensemble_trials"] == [ranked[1]]
    assert [(f["trial"], f["stage"]) for f in metrics["failed_trainings"]] == [(ranked[0], "final training")] * 2
    assert "non-finite" in metrics["failed_trainings"][0]["error"]
    on_disk = json.loads((tmp_path / "run" / "export" / "metrics.json").read_text())
    assert on_disk["failed_trainings"] == metrics["failed_trainings"]
    card = (tmp_path / "run" / "export" / "README.md").read_text()
    assert f"Left out after a failed training: trial {ranked[0]} (final training: non-finite" in card


def test_an_ensemble_member_that_fails_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ranked = _searched(tmp_path, "export.ensemble_top=3")
    _failing(monkeypatch, tmp_path / "run", {ranked[1]})
    metrics = export_run(tmp_path / "run")
    assert metrics["ensemble_trials"] == [ranked[0], ranked[2], ranked[3]] and metrics["ensemble"] == 3


def test_a_candidate_that_fails_its_re_scoring_is_not_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ranked = _searched(tmp_path, "export.rescore_top_k=3", "export.rescore_repeats=2", "export.rescore_epochs=1")
    attempts = _failing(monkeypatch, tmp_path / "run", {ranked[0]}, method="validate")
    metrics = export_run(tmp_path / "run")
    assert attempts == [ranked[0], ranked[1], ranked[1], ranked[2], ranked[2]]  # its second seed is not tried
    assert [row["trial"] for row in metrics["rescored"]] == ranked[1:3]
    assert metrics["trial"] in ranked[1:3]
    assert [(f["trial"], f["stage"]) for f in metrics["failed_trainings"]] == [(ranked[0], "re-scoring")]
    best = max(metrics["rescored"], key=lambda row: row["rescored_val_accuracy"])
    assert metrics["trial"] == best["trial"]
    assert np.isfinite(metrics["test_accuracy"])


def test_an_export_that_keeps_failing_stops_with_the_fix_and_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _searched(tmp_path)
    run = tmp_path / "run"
    first = export_run(run)
    attempts = _failing(monkeypatch, run, None)
    with pytest.raises(ExportFailure, match=r"3 of its trainings failed \(trial \d+, final training: non-finite"):
        export_run(run)
    assert len(attempts) == MAX_FAILURES  # three architectures tried, then it gives up
    code, _, err = cli(capsys, "export", str(run))
    assert code == 1 and "the export stopped" in err and "training.learning_rate" in err and "Traceback" not in err
    assert json.loads((run / "export" / "metrics.json").read_text())["test_accuracy"] == first["test_accuracy"]
    with open_run(run)[1] as store:
        assert len(store.trials()) == 6


def test_an_interrupted_export_keeps_its_finished_final_trainings_and_the_next_one_reuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ensemble export killed (here: Ctrl-C) during its second member's training keeps the first one's
    training in RUN/export-trainings; the next export loads it instead of training it again, exports the same
    model as an uninterrupted export, and clears the folder once the export is written."""
    import torch

    from rlnas.rundir import FINALS_DIR

    ranked = _searched(tmp_path, "export.ensemble_top=2")
    run = tmp_path / "run"
    attempts: list[int] = []
    original = ChildTrainer.train
    with open_run(run)[1] as store:
        keys = {t.architecture.key: t.number for t in store.trials()}

    def interrupted(self: ChildTrainer, arch: Architecture, *args, **kwargs):  # type: ignore[no-untyped-def]
        attempts.append(keys[arch.key])
        if len(attempts) == 2:
            raise KeyboardInterrupt
        return original(self, arch, *args, **kwargs)

    monkeypatch.setattr(ChildTrainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_run(run)
    assert attempts == ranked[:2] and len(list((run / FINALS_DIR).glob("*.pt"))) == 1
    assert not (run / "export").exists()

    attempts.clear()
    metrics = export_run(run)
    assert attempts == [ranked[1]]  # only the second member trains now
    assert metrics["kept_trainings"] == 1 and metrics["ensemble_trials"] == ranked[:2]
    assert not (run / FINALS_DIR).exists()  # cleared once the export is written
    resumed = torch.load(run / "export" / "model.pt", weights_only=True)["state_dict"]

    monkeypatch.setattr(ChildTrainer, "train", original)
    again = export_run(run)  # nothing kept now: both members trained afresh
    assert again["kept_trainings"] == 0 and again["test_accuracy"] == metrics["test_accuracy"]
    fresh = torch.load(run / "export" / "model.pt", weights_only=True)["state_dict"]
    assert fresh.keys() == resumed.keys() and all(torch.equal(fresh[k], resumed[k]) for k in fresh)


def test_a_kept_training_of_other_settings_or_a_damaged_one_is_trained_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rlnas.retrain import KeptTrainings
    from rlnas.rundir import FINALS_DIR

    _searched(tmp_path)
    run = tmp_path / "run"
    save = KeptTrainings.save

    def interrupt_after_saving(self: KeptTrainings, *args, **kwargs):  # type: ignore[no-untyped-def]
        save(self, *args, **kwargs)
        raise KeyboardInterrupt

    def kept_for_3_epochs() -> Path:
        with monkeypatch.context() as patch:
            patch.setattr(KeptTrainings, "save", interrupt_after_saving)
            with pytest.raises(KeyboardInterrupt):
                export_run(run, epochs=3)
        (kept,) = (run / FINALS_DIR).glob("*.pt")
        return kept

    kept_for_3_epochs()
    attempts = _failing(monkeypatch, run, set())  # records the trainings, fails none
    assert export_run(run, epochs=2)["kept_trainings"] == 0 and len(attempts) == 1  # 3 epochs are not 2
    assert not (run / FINALS_DIR).exists()
    monkeypatch.undo()
    kept_for_3_epochs().write_bytes(b"damaged")
    attempts = _failing(monkeypatch, run, set())
    assert export_run(run, epochs=3)["kept_trainings"] == 0 and len(attempts) == 1
    assert "could not read the kept final training" in caplog.text


def test_ctrl_c_during_an_export_says_what_is_kept_and_how_to_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlnas.retrain import KeptTrainings

    _searched(tmp_path, "export.ensemble_top=2")
    run = tmp_path / "run"
    save = KeptTrainings.save

    def interrupt_after_saving(self: KeptTrainings, *args, **kwargs):  # type: ignore[no-untyped-def]
        save(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(KeptTrainings, "save", interrupt_after_saving)
    code, _, err = cli(capsys, "export", str(run), "--epochs", "2")
    assert code == 130
    assert "export interrupted: every trial is saved, and 1 finished final training(s)" in err
    assert f"continue with: rlnas export {run} --epochs 2" in err
    monkeypatch.undo()
    code, out, _ = cli(capsys, "export", str(run), "--epochs", "2")
    assert code == 0 and json.loads((run / "export" / "metrics.json").read_text())["kept_trainings"] == 1


def test_an_export_of_zero_epochs_is_refused_before_it_announces_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _searched(tmp_path)
    code, _, err = cli(capsys, "export", str(tmp_path / "run"), "--epochs", "0")
    assert code == 2
    assert "epochs=0: the final training needs at least 1 epoch; pass --epochs 1 or more" in err
    assert "final training(s) of" not in err  # no plan announced for a training that cannot run
    assert not (tmp_path / "run" / "export").exists()
