"""The real evaluator: build the child, train it on the training split, score it on validation."""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlnas.config import TrainingConfig
from rlnas.data.core import Dataset, Split, fold_indices
from rlnas.errors import ChildFailure, InvalidArchitecture
from rlnas.evaluation import proxies
from rlnas.evaluation.base import COMPLETE, FAILED, INFEASIBLE, PRUNED, Evaluation, cache_key
from rlnas.evaluation.objective import Objective
from rlnas.evaluation.pruning import NEVER, Pruned, StopRule
from rlnas.evaluation.resume import Checkpoint
from rlnas.evaluation.train import (
    EPOCH_ENDS,
    EpochEnd,
    OnEpoch,
    Reports,
    TrainSettings,
    resolve_device,
    scores,
    train_model,
)
from rlnas.models.checkpoint import model_info, network, save_model
from rlnas.models.complexity import count_flops, count_params, cpu_latency_ms, meta_count
from rlnas.space.core import Architecture, SearchSpace

log = logging.getLogger(__name__)


def child_seed(run_seed: int, arch: Architecture) -> int:
    """The seed a child is trained with: fixed by the run seed and the architecture."""
    digest = hashlib.sha256(f"{run_seed}:{arch.key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def settings_for(
    arch: Architecture,
    training: TrainingConfig,
    dataset: Dataset,
    epochs: int | None = None,
    augment: str | None = None,
    final: Recipe | None = None,
) -> TrainSettings:
    """Training settings: the config's, overridden by the architecture's training decisions (and, for a final
    training, by the export's recipe)."""
    max_seconds = None if training.max_minutes_per_child is None else training.max_minutes_per_child * 60.0
    return TrainSettings(
        epochs=epochs if epochs is not None else training.epochs,
        data_fraction=training.data_fraction,
        batch_size=int(arch.get("batch_size", training.batch_size)),
        optimizer=str(arch.get("optimizer", training.optimizer)),
        learning_rate=float(arch.get("learning_rate", training.learning_rate)),
        weight_decay=float(arch.get("weight_decay", training.weight_decay)),
        device=str(resolve_device(training.device)),
        max_seconds=max_seconds,
        augment=augment if augment is not None else training.augment,
        task=dataset.task,
        target_std=dataset.target_std,
        erasing=final.erasing if final is not None and final.erasing is not None else training.erasing,
        label_smoothing=training.label_smoothing,
        schedule=training.schedule,
        warmup_epochs=training.warmup_epochs,
        precision=training.precision,
        ema=final.ema if final is not None else 0.0,
    )


@dataclass(frozen=True)
class Recipe:
    """What a final training changes of the search's recipe: random erasing (None: the training config's) and
    the weight average's decay (0: none)."""

    erasing: float | None = None
    ema: float = 0.0


def _fold_epoch(on_epoch: OnEpoch, fold: int, folds: int, event: EpochEnd) -> None:
    """An epoch of fold ``fold`` of ``folds``, numbered over all folds' epochs, without the fold's scores."""
    on_epoch(EpochEnd(fold * event.epochs + event.epoch, folds * event.epochs, event.train_loss))


class ChildTrainer:
    """Builds and trains child networks of one space on one dataset."""

    def __init__(self, space: SearchSpace, dataset: Dataset, training: TrainingConfig, seed: int = 0) -> None:
        """``seed`` draws the cross-validation folds (``training.cv_folds`` > 1)."""
        self.space = space
        self.seed = seed
        self.dataset = dataset
        self.training = training
        self._fold_cache: list[np.ndarray] | None = None

    def build(self, arch: Architecture) -> nn.Module:
        """The child network, input normalization (and a regression's target scaling) included."""
        return network(model_info(arch, self.space.family, self.dataset))

    def train(
        self,
        arch: Architecture,
        seed: int,
        epochs: int | None = None,
        on_train_and_val: bool = False,
        augment: str | None = None,
        on_epoch: OnEpoch | None = None,
        whole: bool = False,
        final: Recipe | None = None,
        val: Split | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> tuple[nn.Module, dict[str, float]]:
        """Build and train a child with an isolated, seeded torch RNG; returns the trained model. On
        train+validation, or with ``whole``, it trains on all of its data, whatever ``training.data_fraction``;
        ``final`` is the export's recipe for a final training; ``on_epoch`` hears epochs scored on ``val``;
        ``checkpoint`` makes the training resumable (:mod:`rlnas.evaluation.resume`)."""
        data = self._train_and_val() if on_train_and_val else self.dataset.train
        whole = whole or on_train_and_val
        return self._fit(arch, seed, data, epochs, augment, on_epoch, whole, val, final=final, checkpoint=checkpoint)

    def validate(
        self,
        arch: Architecture,
        seed: int,
        epochs: int | None = None,
        on_epoch: OnEpoch | None = None,
        whole: bool = False,
        reports: Reports = EPOCH_ENDS,
    ) -> tuple[nn.Module, dict[str, float]]:
        """Train a child (on ``training.data_fraction`` of its data, or on all of it with ``whole``) and score it
        on validation: ``val_<score>`` (and the other validation scores) plus the training statistics.
        ``on_epoch`` hears of every epoch (and as often within as ``reports`` asks) with its validation scores
        (the last epoch's are the result).
        With ``training.cv_folds`` = k > 1, k children are trained on k-1 folds of
        train+validation each and scored on the fold left out; the metrics are the means over the folds
        (``val_<score>_std`` their spread, ``train_seconds`` their sum) and the model is the last fold's; their
        epochs are reported without scores (each fold scores a different split), numbered over all folds."""
        k = self.training.cv_folds
        task = self.dataset.task
        if k == 1:
            last: list[EpochEnd] = []

            def heard(event: EpochEnd) -> None:
                last[:] = [event]
                if on_epoch is not None:
                    on_epoch(event)

            val = self.dataset.val
            model, stats = self._fit(arch, seed, self.dataset.train, epochs, None, heard, whole, val, reports)
            measured = last[-1].scores if last else scores(model, self.dataset.val, task)
            return model, {**{f"val_{n}": v for n, v in measured.items()}, **stats}
        data = self._train_and_val()
        folds = self._folds()
        per_fold: list[dict[str, float]] = []
        for f, held in enumerate(folds):
            keep = torch.from_numpy(np.concatenate([folds[i] for i in range(k) if i != f]))
            part = replace(data, x=data.x[keep], y=data.y[keep])
            fold_val = replace(data, x=data.x[torch.from_numpy(held)], y=data.y[torch.from_numpy(held)])
            report = None if on_epoch is None else functools.partial(_fold_epoch, on_epoch, f, k)
            model, stats = self._fit(arch, seed, part, epochs, None, report, whole)
            per_fold.append({**{f"val_{n}": v for n, v in scores(model, fold_val, task).items()}, **stats})
        metrics = {name: float(np.mean([m[name] for m in per_fold])) for name in per_fold[0]}
        score = f"val_{self.dataset.score_name}"
        metrics[f"{score}_std"] = float(np.std([m[score] for m in per_fold]))
        metrics["train_seconds"] = float(sum(m["train_seconds"] for m in per_fold))
        metrics["cv_folds"] = float(k)
        return model, metrics

    def _train_and_val(self) -> Split:
        train, val = self.dataset.train, self.dataset.val
        return replace(train, x=torch.cat([train.x, val.x]), y=torch.cat([train.y, val.y]))

    def _folds(self) -> list[np.ndarray]:
        """The cross-validation folds of train+validation, drawn once: every child is scored on the same
        folds."""
        if self._fold_cache is None:
            y = self._train_and_val().y.numpy()
            rng = np.random.default_rng(self.seed)
            self._fold_cache = fold_indices(y, self.training.cv_folds, rng, self.dataset.task == "classification")
        return self._fold_cache

    def _fit(
        self,
        arch: Architecture,
        seed: int,
        data: Split,
        epochs: int | None,
        augment: str | None,
        on_epoch: OnEpoch | None,
        whole: bool = False,
        val: Split | None = None,
        reports: Reports = EPOCH_ENDS,
        final: Recipe | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> tuple[nn.Module, dict[str, float]]:
        settings = replace(settings_for(arch, self.training, self.dataset, epochs, augment, final), reports=reports)
        if whole:
            settings = replace(settings, data_fraction=1.0)
        devices = [torch.device(settings.device)] if settings.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            model = self.build(arch)
            stats = train_model(model, data, settings, seed, on_epoch, val, self.dataset.score_name, checkpoint)
        return model, stats


class TrainingEvaluator:
    """Evaluates an architecture by real training; failures become FAILED evaluations.

    ``fidelity`` (in (0, 1]) scales the training epochs, for multi-fidelity strategies (Hyperband).
    """

    def __init__(
        self,
        trainer: ChildTrainer,
        objective: Objective,
        seed: int,
        keep_dir: Path | None = None,
    ) -> None:
        """With ``keep_dir``, every trained child is saved there as ``<cache key>.pt`` (weights, seed,
        normalization, metrics), loadable with ``rlnas.load_model``."""
        self.trainer = trainer
        self.objective = objective
        self.seed = seed
        self.keep_dir = keep_dir
        self.on_epoch: OnEpoch | None = None  # hears of every epoch of the child being trained
        self.stop: StopRule = NEVER  # when the child being trained stops early (pruning), set per child
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None  # the zero-cost proxies' minibatch

    def effective_fidelity(self, fidelity: float) -> float:
        """The fidelity actually trained: a whole number of epochs, at least one."""
        full = self.trainer.training.epochs
        return max(1, round(fidelity * full)) / full

    def evaluate(self, arch: Architecture, fidelity: float = 1.0) -> Evaluation:
        seed = child_seed(self.seed, arch)
        dataset = self.trainer.dataset
        fidelity = self.effective_fidelity(fidelity)
        epochs = round(fidelity * self.trainer.training.epochs)
        start = time.perf_counter()
        for measure, limit in (
            ("params", self.objective.config.max_params),
            ("flops", self.objective.config.max_flops),
        ):
            if limit is None:
                continue
            count = meta_count(self.trainer.space, arch, dataset.input_shape, dataset.num_outputs, measure)
            if count > limit:
                name = "parameters" if measure == "params" else "FLOPs"
                return Evaluation(
                    reward=self.objective.config.failure_reward,
                    status=INFEASIBLE,
                    metrics={measure: float(count), "seed": float(seed), "duration_s": time.perf_counter() - start},
                    error=f"{count} {name} > objective.max_{measure}={limit}; not trained",
                )
        zero_cost = self.zero_cost(arch, seed)
        curve: list[float] = []  # the validation score after each epoch (and within: self.stop.reports)

        def heard(event: EpochEnd) -> None:
            if event.score is not None:
                curve.append(event.score)
            if self.on_epoch is not None:
                self.on_epoch(event)
            if event.score is not None and (threshold := self.stop.check(curve)) is not None:
                raise Pruned(event, threshold)

        try:
            model, val = self.trainer.validate(arch, seed, epochs, heard, reports=self.stop.reports)
            if not all(math.isfinite(v) for v in val.values()):
                raise ChildFailure(f"non-finite validation score {val}")
            metrics = {
                **val,
                "params": float(count_params(model)),
                "flops": float(count_flops(model, dataset.input_shape)),
                "latency_ms": cpu_latency_ms(model, dataset.input_shape),
                "seed": float(seed),
                "fidelity": float(fidelity),
                "epochs": float(epochs),
                **zero_cost,
            }
        except Pruned as stop:
            return self._pruned(arch, stop, fidelity, epochs, {"seed": float(seed), **zero_cost}, start, curve)
        except (ChildFailure, InvalidArchitecture, RuntimeError, ValueError) as err:
            # RuntimeError covers out-of-memory and shape errors inside torch
            log.warning("child %s failed: %s", arch.key, err)
            return Evaluation(
                reward=self.objective.config.failure_reward,
                status=FAILED,
                metrics={"seed": float(seed), "duration_s": time.perf_counter() - start, **zero_cost},
                error=f"{type(err).__name__}: {err}",
                curve=tuple(curve),
            )
        if self.keep_dir is not None:
            self._keep(arch, fidelity, model, metrics)
        metrics["duration_s"] = time.perf_counter() - start
        return Evaluation(reward=self.objective(metrics), status=COMPLETE, metrics=metrics, curve=tuple(curve))

    def _pruned(
        self,
        arch: Architecture,
        stop: Pruned,
        fidelity: float,
        epochs: int,
        extra: dict[str, float],
        start: float,
        curve: list[float],
    ) -> Evaluation:
        """A child stopped by the pruner: scored at the epoch it stopped after, its reward from that score
        (below what its full training would likely give), ``trained_fraction`` the budget it cost."""
        event, shape = stop.event, self.trainer.dataset.input_shape
        model = self.trainer.build(arch)  # the counts and latency do not depend on the weights
        metrics = {
            **{f"val_{name}": value for name, value in event.scores.items()},
            **({} if event.train_loss is None else {"train_loss": event.train_loss}),
            "params": float(count_params(model)),
            "flops": float(count_flops(model, shape)),
            "latency_ms": cpu_latency_ms(model, shape),
            "fidelity": float(fidelity),
            "epochs": float(event.epoch),
            "trained_fraction": event.epoch / epochs,
            "pruned_below": stop.threshold,
            **extra,
            "duration_s": time.perf_counter() - start,
        }
        log.info("child %s %s", arch.key, stop)
        return Evaluation(self.objective(metrics), PRUNED, metrics, str(stop), curve=tuple(curve))

    def zero_cost(self, arch: Architecture, seed: int | None = None, names: tuple[str, ...] = ()) -> dict[str, float]:
        """The zero-cost proxies ``names`` (default ``training.zero_cost``) of the untrained child (initialized
        under its seed) on one minibatch of the training split drawn with the run's seed, as metrics
        ``zero_cost_<name>`` with the seconds they took; a proxy that cannot be computed, or is not finite, is
        left out with a warning."""
        names = names or tuple(self.trainer.training.zero_cost)
        seed = child_seed(self.seed, arch) if seed is None else seed
        if not names:
            return {}
        dataset = self.trainer.dataset
        if self._batch is None:
            self._batch = proxies.minibatch(dataset.train, self.seed)
        start = time.perf_counter()
        build = functools.partial(self.trainer.build, arch)
        device = resolve_device(self.trainer.training.device)
        try:
            values, _ = proxies.compute(build, self._batch, dataset.input_shape, seed, names, device)
        except (RuntimeError, ValueError, InvalidArchitecture) as err:
            log.warning("zero-cost proxies of %s not computed: %s", arch.key, err)
            return {}
        kept = {f"zero_cost_{name}": value for name, value in values.items() if math.isfinite(value)}
        if len(kept) < len(values):
            log.warning(
                "zero-cost proxies of %s not finite, left out: %s",
                arch.key,
                sorted(set(values) - {k[10:] for k in kept}),
            )
        return {**kept, "zero_cost_seconds": time.perf_counter() - start}

    def _keep(self, arch: Architecture, fidelity: float, model: nn.Module, metrics: dict[str, float]) -> None:
        assert self.keep_dir is not None
        self.keep_dir.mkdir(parents=True, exist_ok=True)
        info = model_info(arch, self.trainer.space.family, self.trainer.dataset)
        save_model(
            self.keep_dir / f"{cache_key(arch.key, fidelity)}.pt",
            model,
            info,
            seed=int(metrics["seed"]),
            metrics=metrics,
        )
