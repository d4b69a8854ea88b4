"""TensorBoard logging of a search: children, best-so-far, the controller's policy, the best child.

Tag namespaces: ``search/`` (per trial and best-so-far), ``child/`` (the measured child metrics),
``policy/`` (the controller's choice probabilities per decision), ``best/`` (text), plus SB3's own
``train/`` and ``rollout/`` tags written by the PPO strategy into the same directory.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlnas.evaluation.base import COMPLETE, val_score
from rlnas.store import TrialRecord

log = logging.getLogger(__name__)


class RunLogger:
    """Writes a run's TensorBoard events; a no-op when disabled."""

    def __init__(self, logdir: str | Path | None) -> None:
        self.logdir = None if logdir is None else Path(logdir)
        self._writer: Any = None
        if self.logdir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.logdir))
        self.best_reward = float("-inf")
        self.best_accuracy = float("-inf")  # the best validation score: accuracy, or R² for regression
        self.score_name = "accuracy"

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def trial(self, record: TrialRecord, write: bool = True) -> None:
        """Per child: reward, proxy validation accuracy, params, FLOPs, latency; best-so-far curves.
        ``write=False`` only updates the best-so-far values (when resuming)."""
        step = record.number
        score = val_score(record.metrics)
        if record.status == COMPLETE:
            self.best_reward = max(self.best_reward, record.reward)
            if score is not None:
                self.best_accuracy = max(self.best_accuracy, score)
                self.score_name = "r2" if "val_r2" in record.metrics else "accuracy"
        if not self.enabled or not write:
            return
        w = self._writer
        w.add_scalar("search/reward", record.reward, step)
        w.add_scalar("search/failed", float(record.status != COMPLETE), step)
        if self.best_reward > float("-inf"):
            w.add_scalar("search/best_reward", self.best_reward, step)
            w.add_scalar(f"search/best_proxy_val_{self.score_name}", self.best_accuracy, step)
        names = {
            "val_accuracy": "child/proxy_val_accuracy",
            "val_r2": "child/proxy_val_r2",
            "val_mae": "child/proxy_val_mae",
            "val_rmse": "child/proxy_val_rmse",
            "params": "child/params",
            "flops": "child/flops",
            "latency_ms": "child/latency_ms",
            "duration_s": "child/train_seconds",
        }
        for metric, tag in names.items():
            if metric in record.metrics:
                w.add_scalar(tag, float(record.metrics[metric]), step)

    def policy(self, step: int, probabilities: Mapping[str, Mapping[str, float]], mode_probability: float) -> None:
        """The controller's choice probabilities per decision, along its most probable architecture."""
        if not self.enabled:
            return
        for decision, probs in probabilities.items():
            for choice, p in probs.items():
                self._writer.add_scalar(f"policy/{decision}/{choice}", float(p), step)
        self._writer.add_scalar("policy/mode_architecture_probability", mode_probability, step)

    def best_child(
        self, record: TrialRecord, model: nn.Module | None, input_shape: tuple[int, ...], graph: bool
    ) -> None:
        """The best child's architecture as a text table, and its graph."""
        if not self.enabled:
            return
        rows = "\n".join(f"| {k} | {v} |" for k, v in record.architecture.items)
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in record.metrics.items())
        text = (
            f"**trial {record.number}**, reward {record.reward:.4f} ({metrics})\n\n"
            f"| decision | choice |\n|---|---|\n{rows}"
        )
        self._writer.add_text("best/architecture", text, record.number)
        if graph and model is not None:
            try:
                device = next(model.parameters()).device
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # add_graph traces with the deprecated torch.jit
                    self._writer.add_graph(model.eval(), torch.zeros(1, *input_shape, device=device))
            except Exception as err:  # noqa: BLE001 - a graph is a nice-to-have; never fail a run for it
                log.warning("could not log the model graph: %s", err)

    def hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
        self._writer.add_hparams(clean, {f"hparam/{k}": float(v) for k, v in metrics.items()}, run_name=".")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.enabled:
            self._writer.add_text(tag, text, step)

    def flush(self) -> None:
        if self.enabled:
            self._writer.flush()

    def close(self) -> None:
        if self.enabled:
            self._writer.close()
            self._writer = None
