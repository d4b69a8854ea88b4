"""The trainings of an export: the search's best candidates re-scored at a higher fidelity, then the final
trainings on train+validation of the winner (and of an ensemble's members).

These are not search children: ``training.max_minutes_per_child`` does not bind them (a final training of
many epochs on all the data would always exceed a limit sized for children). A training that fails anyway
(:class:`ChildFailure`: a non-finite loss or score) leaves its architecture out, as a failed child leaves a
search: a candidate that fails its re-scoring is not chosen, and an architecture whose final trainings all fail
is replaced by the search's next best. Each failure is logged and listed in ``metrics.json``
(``failed_trainings``). After ``MAX_FAILURES`` failures the export stops with :class:`ExportFailure`; the
search's trials and any earlier export are kept.

Each finished final training is kept in ``RUN/export-trainings/`` (:class:`KeptTrainings`) until the export
is written, so an export that is killed, interrupted or stopped by failures loses none of them: the next
``rlnas export RUN`` with the same settings loads them instead of training again. A final training saves its
state there as it goes, too (at epoch ends, at most once a minute), and the next export continues an
unfinished one from its last saved epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlnas.errors import ChildFailure, FaultError
from rlnas.evaluation.base import val_score
from rlnas.evaluation.executors import thread_policy
from rlnas.evaluation.resume import Checkpoint
from rlnas.evaluation.train import EpochEnd, OnEpoch, scores
from rlnas.evaluation.trainer import ChildTrainer, Recipe, child_seed
from rlnas.models.checkpoint import model_info, network, save_model
from rlnas.space.core import Architecture
from rlnas.store import TrialRecord

log = logging.getLogger(__name__)

MAX_FAILURES = 3  # failed trainings after which an export gives up: the cause is the recipe, not one network


class ExportFailure(FaultError):
    """The export's trainings failed ``MAX_FAILURES`` times, or every candidate failed."""


class Epochs:
    """Counts the epochs of every training an export runs, for a progress callback
    ``progress(what is training, epochs done, epochs in all)``."""

    def __init__(self, progress: Any, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def training(self, what: str) -> OnEpoch | None:
        if self.progress is None:
            return None
        start = self.done
        progress = self.progress

        def on_epoch(event: EpochEnd) -> None:
            self.done = start + round(event.epoch)  # these trainings report whole epochs
            self.total = max(self.total, self.done)  # a replacement trains more than planned
            progress(what, self.done, self.total)

        progress(what, start, self.total)
        return on_epoch

    def skip(self, what: str, epochs: int) -> None:
        """``epochs`` done without training them (a kept training)."""
        self.done += epochs
        self.total = max(self.total, self.done)
        if self.progress is not None:
            self.progress(what, self.done, self.total)


@dataclass
class Failures:
    """The failed trainings of one export."""

    run: str
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, stage: str, record: TrialRecord, seed: int, err: ChildFailure) -> None:
        self.items.append({"stage": stage, "trial": record.number, "seed": seed, "error": str(err)})
        log.warning("%s of trial %d failed (%s); the export leaves it out", stage, record.number, err)
        if len(self.items) >= MAX_FAILURES:
            raise self.error(f"{len(self.items)} of its trainings failed")

    def error(self, what: str) -> ExportFailure:
        listed = "; ".join(f"trial {i['trial']}, {i['stage']}: {i['error']}" for i in self.items)
        return ExportFailure(
            f"the export stopped: {what} ({listed}). Every trial and any earlier export are kept. A smaller "
            f"`training.learning_rate` in the run's config.yaml, or fewer epochs (`rlnas export {self.run} "
            "--epochs N`), usually cures a final training that diverges"
        )


Kept = tuple[nn.Module, dict[str, float], dict[str, float]]  # a kept training's model, test scores, statistics


class KeptTrainings:
    """The finished final trainings of an export not written yet, one file each in ``folder`` (None: none
    kept), named by a hash of everything the training depends on: the architecture, seed and epochs, the
    run's training settings, the export's recipe and the data's fingerprint. A file that cannot be read back
    is trained again."""

    def __init__(self, folder: Path | None, trainer: ChildTrainer, config: Any) -> None:
        self.folder = folder
        self.trainer = trainer
        self.reused = 0  # trainings loaded instead of trained
        ex = config.export
        self.base = {
            "training": trainer.training.model_dump(mode="json", exclude={"max_minutes_per_child"}),
            "recipe": [ex.augment, ex.erasing, ex.ema],
            "data": trainer.dataset.fingerprint(),
        }

    def _file(self, arch: Architecture, seed: int, epochs: int) -> Path:
        assert self.folder is not None
        what = json.dumps({**self.base, "architecture": arch.key, "seed": seed, "epochs": epochs}, sort_keys=True)
        return self.folder / f"{hashlib.sha256(what.encode()).hexdigest()[:20]}.pt"

    def load(self, arch: Architecture, seed: int, epochs: int) -> Kept | None:
        """The model, test scores and training statistics of a kept training, or None."""
        if self.folder is None or not (file := self._file(arch, seed, epochs)).is_file():
            return None
        try:
            data = torch.load(file, map_location="cpu", weights_only=True)
            model = network(data)
            model.load_state_dict(data["state_dict"])
            kept = model.eval(), dict(data["test"]), dict(data["stats"])
        except Exception as err:  # noqa: BLE001 - a damaged file costs its training again, nothing more
            log.warning("could not read the kept final training %s (%s); training it again", file, err)
            return None
        self.reused += 1
        return kept

    def unfinished(self, arch: Architecture, seed: int, epochs: int) -> Checkpoint | None:
        """Where that training saves its state as it goes, so a stopped export resumes it mid-training."""
        if self.folder is None:
            return None
        return Checkpoint(self._file(arch, seed, epochs).with_suffix(".unfinished"))

    def save(self, arch: Architecture, seed: int, epochs: int, trained: Trained) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(exist_ok=True)
        info = model_info(arch, self.trainer.space.family, self.trainer.dataset)
        save_model(self._file(arch, seed, epochs), trained.model, info, test=trained.test, stats=trained.stats)

    def clear(self) -> None:
        """Forget them (the export that used them is written)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Exporting:
    """The trainer and settings an export trains with."""

    trainer: ChildTrainer
    config: Any  # the run's RunConfig
    counter: Epochs
    failures: Failures
    kept: KeptTrainings

    @classmethod
    def of(cls, prepared: Any, counter: Epochs, run: Path, kept: Path | None) -> Exporting:
        """From a prepared run: its trainer without the children's time limit; finished final trainings kept
        in ``kept``."""
        t = prepared.trainer
        training = t.training.model_copy(update={"max_minutes_per_child": None})
        trainer = ChildTrainer(t.space, t.dataset, training, t.seed)
        config = prepared.config
        return cls(trainer, config, counter, Failures(str(run)), KeptTrainings(kept, trainer, config))

    def rescore(self, top: list[TrialRecord]) -> tuple[TrialRecord, list[dict[str, Any]]]:
        """The best of ``top`` (the search's best by proxy reward) re-trained at a higher fidelity
        (``export.rescore_epochs`` on the training split, ``export.rescore_repeats`` seeds each, scored on
        validation, or cross-validated like the search; the best mean wins); ``top[0]`` if it holds one."""
        if len(top) == 1:
            return top[0], []
        config = self.config
        epochs = config.export.rescore_epochs or 2 * config.training.epochs
        score = self.trainer.dataset.score_name
        rows = []
        for record in top:
            arch = self.trainer.space.validate(record.architecture)
            seed = child_seed(config.seed, arch)
            values: list[float] = []
            for r in range(config.export.rescore_repeats):
                what = f"re-scoring trial {record.number} (seed {r + 1}/{config.export.rescore_repeats})"
                try:
                    with thread_policy(config.execution.threads_per_worker):
                        _, val = self.trainer.validate(
                            arch, seed + r, epochs=epochs, on_epoch=self.counter.training(what), whole=True
                        )
                except ChildFailure as err:
                    self.failures.add("re-scoring", record, seed + r, err)
                    values = []
                    break
                values.append(val[f"val_{score}"])
            if not values:
                continue
            rows.append(
                {
                    "trial": record.number,
                    f"proxy_val_{score}": val_score(record.metrics),
                    f"rescored_val_{score}": float(np.mean(values)),
                    f"rescored_val_{score}_values": values,
                    "rescore_epochs": epochs,
                }
            )
            mean = rows[-1][f"rescored_val_{score}"]
            log.info(
                "re-scored trial %d: val %s %.4f (mean of %d) at %d epochs",
                record.number,
                score,
                mean,
                len(values),
                epochs,
            )
        if not rows:
            raise self.failures.error("every candidate's re-scoring failed")
        best = max(rows, key=lambda row: row[f"rescored_val_{score}"])  # the first of equals: the search's better
        return next(r for r in top if r.number == best["trial"]), rows

    def final(self, queue: list[TrialRecord], members: int, epochs: int) -> list[Trained]:
        """The final trainings (``export.repeats`` each) of the first ``members`` architectures of ``queue``
        whose trainings do not all fail; the rest of ``queue`` replaces the ones that do."""
        ex = self.config.export
        trained: list[Trained] = []
        done = 0
        for member in queue:
            if done == members:
                break
            arch = self.trainer.space.validate(member.architecture)
            seed = child_seed(self.config.seed, arch)
            runs = []
            for r in range(ex.repeats):
                what = f"final training {r + 1}/{ex.repeats} of trial {member.number}"
                kept = self.kept.load(arch, seed + r, epochs)
                if kept is not None:
                    log.info("%s: kept from an earlier, unfinished export", what)
                    model, test, stats = kept
                    runs.append(Trained(test, seed + r, model, stats, member))
                    self.counter.skip(what, epochs)
                    continue
                log.info("%s for %d epochs on train+validation", what, epochs)
                try:
                    with thread_policy(self.config.execution.threads_per_worker):
                        model, stats = self.trainer.train(
                            arch,
                            seed + r,
                            epochs=epochs,
                            on_train_and_val=True,
                            augment=ex.augment,
                            on_epoch=self.counter.training(what),
                            final=Recipe(ex.erasing, ex.ema),
                            checkpoint=self.kept.unfinished(arch, seed + r, epochs),
                        )
                except ChildFailure as err:
                    self.failures.add("final training", member, seed + r, err)
                    continue
                model = model.to("cpu").eval()
                dataset = self.trainer.dataset
                runs.append(Trained(scores(model, dataset.test, dataset.task), seed + r, model, stats, member))
                self.kept.save(arch, seed + r, epochs, runs[-1])
            if runs:
                trained += runs
                done += 1
        if not trained:
            raise self.failures.error("no final training succeeded")
        if done < members:
            log.warning("the ensemble has %d members, not %d: the others' final trainings failed", done, members)
        return trained


@dataclass(frozen=True)
class Trained:
    """One final training: its test scores, seed, model, training statistics and trial."""

    test: dict[str, float]
    seed: int
    model: nn.Module
    stats: dict[str, float]
    record: TrialRecord
