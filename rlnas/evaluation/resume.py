"""Resumable trainings: a long training (an export's final training of many epochs) saves its whole state at
epoch ends, so one that is killed or interrupted continues from its last saved epoch instead of starting over,
and ends with the weights the uninterrupted training would have had (on the CPU, bit for bit)."""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlnas import atomic

log = logging.getLogger(__name__)

SAVE_EVERY_SECONDS = 60.0  # at most one save a minute: a save costs a few milliseconds, a lost epoch far more


@dataclass
class TrainingState:
    """What a training loop carries from one epoch to the next."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # shuffles the batches and draws the augmentations
    average: Any | None = None  # the weight EMA (rlnas.evaluation.train.WeightAverage), if any


class Checkpoint:
    """The state of one training at its last saved epoch end, in ``path`` (written atomically). ``key``
    names what the training depends on beyond its file (e.g. its epochs): a file saved under another key
    is not resumed from."""

    def __init__(self, path: Path, key: str = "", every_seconds: float | None = None) -> None:
        self.path = Path(path)
        self.key = key
        self.every_seconds = SAVE_EVERY_SECONDS if every_seconds is None else every_seconds
        self._saved_at = time.perf_counter()

    def restore(self, state: TrainingState) -> tuple[int, float]:
        """Load the saved state into ``state``: (epochs done, seconds they took), or (0, 0.0) where nothing
        (readable, of this key) was saved."""
        if not self.path.is_file():
            return 0, 0.0
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
            if data.get("key") != self.key:
                log.warning("%s belongs to another training; starting this one from its first epoch", self.path)
                return 0, 0.0
            state.model.load_state_dict(data["model"])
            state.optimizer.load_state_dict(data["optimizer"])
            state.scheduler.load_state_dict(data["scheduler"])
            state.generator.set_state(data["generator"])
            torch.set_rng_state(data["torch_rng"])  # dropout draws from it
            if state.average is not None:
                state.average.average = data["average"]
                state.average.steps = int(data["average_steps"])
        except Exception as err:  # noqa: BLE001 - a damaged file costs the epochs it held, nothing more
            log.warning("could not resume from %s (%s); starting the training from its first epoch", self.path, err)
            return 0, 0.0
        log.info("resuming the training after epoch %d (%s)", data["epoch"], self.path)
        return int(data["epoch"]), float(data["seconds"])

    def save(self, epoch: int, seconds: float, state: TrainingState) -> None:
        """Save the state after ``epoch`` epochs (``seconds`` of training), unless the last save was less than
        ``every_seconds`` ago."""
        now = time.perf_counter()
        if now - self._saved_at < self.every_seconds:
            return
        data = {
            "key": self.key,
            "epoch": epoch,
            "seconds": seconds,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "generator": state.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if state.average is not None:
            data.update(average=state.average.average, average_steps=state.average.steps)
        buffer = io.BytesIO()
        torch.save(data, buffer)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(self.path, buffer.getbuffer())
        except OSError as err:  # a full disk: the training goes on, only a stop would cost more of it
            log.warning("could not save the training's state to %s (%s); it goes on without", self.path, err)
        self._saved_at = now

    def remove(self) -> None:
        """Forget the saved state (the training finished)."""
        self.path.unlink(missing_ok=True)
