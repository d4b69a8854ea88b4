"""Resumable trainings: a training stopped after an epoch continues from its saved state and ends with the
weights of the uninterrupted training; a stopped export continues its unfinished final training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlnas.evaluation.resume import Checkpoint
from rlnas.evaluation.train import EpochEnd, TrainSettings, train_model
from rlnas.prepare import prepare
from tests.conftest import tiny_config

# every piece of state a training carries between epochs: the shuffling and augmentation generator, dropout's
# RNG, AdamW's moments, the one-cycle schedule's position, the weight average and BatchNorm's statistics
SETTINGS = TrainSettings(
    epochs=4,
    batch_size=64,
    optimizer="adamw",
    learning_rate=0.003,
    weight_decay=0.05,
    schedule="onecycle",
    augment="shift",
    erasing=0.5,
    data_fraction=0.5,
    ema=0.9,
)


def _train(checkpoint: Checkpoint | None, stop_after: int | None = None) -> tuple[torch.nn.Module, dict[str, float]]:
    """The same child, initialized alike, trained with ``SETTINGS``; stopped (as by Ctrl-C) when epoch
    ``stop_after`` ends."""
    prepared = prepare(tiny_config())
    arch = prepared.space.make(
        {**{d.name: d.choices[0] for d in prepared.space.decisions}, "dropout": 0.5, "num_blocks": 2}
    )

    def stop(event: EpochEnd) -> None:
        if event.epoch == stop_after:
            raise KeyboardInterrupt

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = prepared.trainer.build(arch)
        stats = train_model(model, prepared.dataset.train, SETTINGS, 7, on_epoch=stop, checkpoint=checkpoint)
    return model, stats


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_stopped_training_resumes_from_its_last_saved_epoch_to_the_same_weights(tmp_path: Path) -> None:
    uninterrupted, _ = _train(None)
    path = tmp_path / "state.unfinished"
    with pytest.raises(KeyboardInterrupt):
        _train(Checkpoint(path, every_seconds=0), stop_after=3)  # epoch 3's state is not saved: it stopped first
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 2
    saved["seconds"] = 1000.0  # as if the first two epochs had taken that long
    torch.save(saved, path)
    resumed, stats = _train(Checkpoint(path, every_seconds=0))
    assert _same(resumed, uninterrupted)
    assert 1000.0 <= stats["train_seconds"] < 1100.0  # the earlier epochs' time counts, and only epochs 3-4 ran
    assert not path.exists()  # removed once the training ended
    _train(Checkpoint(path, every_seconds=3600))  # saves at most once an hour: nothing in a few seconds
    assert not path.exists()


def test_a_checkpoint_of_another_training_or_a_damaged_one_starts_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uninterrupted, _ = _train(None)
    path = tmp_path / "state.unfinished"
    with pytest.raises(KeyboardInterrupt):
        _train(Checkpoint(path, key="4 epochs", every_seconds=0), stop_after=2)
    assert path.exists()
    other, _ = _train(Checkpoint(path, key="8 epochs", every_seconds=0))
    assert _same(other, uninterrupted) and "belongs to another training" in caplog.text
    path.write_bytes(b"damaged")
    damaged, _ = _train(Checkpoint(path, every_seconds=0))
    assert _same(damaged, uninterrupted) and "could not resume from" in caplog.text
    assert not path.exists()


def test_a_full_disk_does_not_stop_the_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno

    from rlnas import atomic

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    uninterrupted, _ = _train(None)
    monkeypatch.setattr(atomic, "write_bytes", full)
    trained, _ = _train(Checkpoint(tmp_path / "state.unfinished", every_seconds=0))
    assert _same(trained, uninterrupted) and "No space left on device" in caplog.text


def test_a_stopped_export_continues_its_unfinished_final_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the third of a final training's four epochs: the export keeps the state after the second in
    RUN/export-trainings, the next ``rlnas export`` trains the last two only and exports the weights of an
    uninterrupted export; the folder is cleared once the export is written."""
    from rlnas.driver import Search
    from rlnas.evaluation import resume
    from rlnas.evaluation.base import SyntheticEvaluator
    from rlnas.exporter import export_run
    from rlnas.rundir import FINALS_DIR

    config = tiny_config(
        "strategy.name=random", "budget.evaluations=3", "logging.tensorboard=false", "export.formats=[]"
    )
    space = prepare(config).space
    search = Search(config, tmp_path / "run", evaluator=SyntheticEvaluator(space), space=space)
    search.run()
    search.close()
    run = tmp_path / "run"
    monkeypatch.setattr(resume, "SAVE_EVERY_SECONDS", 0.0)
    save, restore = Checkpoint.save, Checkpoint.restore
    restored: list[int] = []

    def save_then_stop(self: Checkpoint, epoch: int, *args, **kwargs):  # type: ignore[no-untyped-def]
        save(self, epoch, *args, **kwargs)
        if epoch == 2:
            raise KeyboardInterrupt

    def heard(self: Checkpoint, state):  # type: ignore[no-untyped-def]
        restored.append(restore(self, state)[0])
        return restored[-1], 0.0

    monkeypatch.setattr(Checkpoint, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        export_run(run, epochs=4)
    (unfinished,) = (run / FINALS_DIR).glob("*.unfinished")
    assert not list((run / FINALS_DIR).glob("*.pt")) and not (run / "export").exists()

    monkeypatch.setattr(Checkpoint, "save", save)
    monkeypatch.setattr(Checkpoint, "restore", heard)
    resumed = export_run(run, epochs=4)
    assert restored == [2] and not (run / FINALS_DIR).exists()
    weights = torch.load(run / "export" / "model.pt", weights_only=True)["state_dict"]
    fresh = export_run(run, epochs=4)  # nothing kept: trained from its first epoch
    assert restored == [2, 0] and fresh["test_accuracy"] == resumed["test_accuracy"]
    again = torch.load(run / "export" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert np.isfinite(resumed["test_accuracy"])
