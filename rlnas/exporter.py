"""Final retraining of the best architecture and its self-describing export (:mod:`rlnas.exported` loads
it back).

``RUN/export/`` holds:

* ``architecture.json`` - the architecture (space, family, decisions), input shape, classes;
* ``model.pt`` - a plain dict of tensors and JSON-able values (architecture, normalization, versions,
  ``state_dict``); ``load_model`` rebuilds the network through ``build_model`` and loads it with
  ``weights_only=True``; no module is pickled;
* ``model.onnx`` (dynamic batch dimension) and ``model.pt2`` (``torch.export``), which load without
  rlnas; every format takes raw images scaled to [0, 1] (normalization is inside) and returns logits;
* ``metrics.json`` - final test accuracy, the search-time (proxy) validation accuracy, params, FLOPs,
  latency; ``config.yaml``; ``README.md``, a model card.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlnas import atomic
from rlnas.config import USER_DATASETS, RunConfig
from rlnas.data import Dataset
from rlnas.errors import ConfigError, RunDirError, full_disk_stops, is_disk_full
from rlnas.evaluation.base import val_score
from rlnas.evaluation.train import scores
from rlnas.evaluation.trainer import child_seed
from rlnas.formatting import to_json
from rlnas.modelcard import io_names, model_card
from rlnas.models.checkpoint import model_info, save_model
from rlnas.models.complexity import count_flops, count_params, cpu_latency_ms
from rlnas.models.families import Ensemble, ViewAverage
from rlnas.prepare import prepare
from rlnas.retrain import MAX_FAILURES, Epochs, Exporting
from rlnas.rundir import EXPORT_DIR, FINALS_DIR, RunLock, open_run
from rlnas.space.core import Architecture
from rlnas.store import TrialRecord

log = logging.getLogger(__name__)


ExportProgress = Callable[[str, int, int], None]  # (what is training, epochs done, epochs in all)


def export_run(
    run_dir: str | Path,
    epochs: int | None = None,
    data_dir: str | None = None,
    data: Dataset | None = None,
    progress: ExportProgress | None = None,
) -> dict[str, Any]:
    """Retrain the best architecture of a run on train+validation, test it once, write ``RUN/export``.

    ``data`` (a :class:`Dataset`) or ``data_dir`` (where the run's dataset lies now) replace the run's
    dataset; either way the data must be those the run was searched on (same fingerprint). ``progress``
    hears of every epoch of the re-scoring and final trainings."""
    run = Path(run_dir)
    config, store = open_run(run)
    store.close()
    lock = RunLock(run)  # no search or other export writes the run meanwhile
    fix = (
        "the export stopped, the previous export (if any) and every trial are kept: free some space, then "
        f"`rlnas export {run}`"
    )
    try:
        with full_disk_stops(run / EXPORT_DIR, fix):
            return _export(run, config, epochs, data_dir, data, progress)
    finally:
        lock.release()


def _export(
    run: Path,
    config: RunConfig,
    epochs: int | None,
    data_dir: str | None,
    data: Dataset | None,
    progress: ExportProgress | None,
) -> dict[str, Any]:
    _check_epochs(epochs)
    if data_dir is not None:
        key = "path" if config.dataset.name in USER_DATASETS else "data_dir"
        config = config.model_copy(update={"dataset": config.dataset.model_copy(update={key: data_dir})})
    prepared = prepare(config, data, run)
    dataset = prepared.dataset
    epochs = epochs if epochs is not None else config.export.epochs
    ex = config.export
    plan = export_plan(run, epochs)
    members = plan.members
    counter = Epochs(progress, plan.rescore_epochs + plan.final_epochs)
    exporting = Exporting.of(prepared, counter, run, kept=run / FINALS_DIR)
    with open_run(run)[1] as store:
        ranked = store.top_k(max(ex.rescore_top_k, members) + MAX_FAILURES)  # failures are replaced
    if not ranked:
        raise RunDirError(f"{run} has no successful trial to export; run or resume the search first")
    winner, rescored = exporting.rescore(ranked[: max(1, ex.rescore_top_k)])
    queue = [winner] + [r for r in ranked if r.number != winner.number]  # then the search's next best
    trained = exporting.final(queue, members, epochs)
    record = trained[0].record
    records = list({t.record.number: t.record for t in trained}.values())
    arch = prepared.space.validate(record.architecture)
    seed = child_seed(config.seed, arch)
    score = dataset.score_name
    values = np.array([t.test[score] for t in trained])
    ensemble = len(records) > 1 or (ex.ensemble and len(trained) > 1)
    model: nn.Module
    if ensemble:
        model = Ensemble([t.model for t in trained], dataset.task == "classification").eval()
        test = scores(model, dataset.test, dataset.task)
        stats = {name: float(np.mean([t.stats[name] for t in trained])) for name in trained[0].stats}
    else:
        best = max(trained, key=lambda t: t.test[score])
        test, seed, model, stats = best.test, best.seed, best.model, best.stats
    untransformed = test
    if ex.tta != "none":
        model = ViewAverage(model, dataset.task == "classification", ex.tta).eval()
        test = scores(model, dataset.test, dataset.task)
    exported = (
        f"the ensemble (average) of the final trainings of trials {', '.join(str(r.number) for r in records)}"
        if len(records) > 1
        else f"the ensemble (average) of the {len(trained)} repeats"
        if ensemble
        else "the best of the repeats on the test split (optimistic; the mean is unbiased)"
        if len(trained) > 1
        else "the only training"
    )
    metrics = {
        "task": dataset.task,
        "score": score,
        **{f"test_{name}": value for name, value in test.items()},
        f"test_{score}_mean": float(values.mean()),
        f"test_{score}_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        f"test_{score}_repeats": [
            {
                "trial": t.record.number,
                "seed": t.seed,
                **{f"test_{k}": v for k, v in t.test.items()},
                "train_seconds": t.stats["train_seconds"],
            }
            for t in trained
        ],
        "exported_repeat": exported,
        "tta": ex.tta,
        **({f"test_{score}_without_tta": untransformed[score]} if ex.tta != "none" else {}),
        "ensemble": len(trained) if ensemble else 1,
        "ensemble_trials": [r.number for r in records],
        "rescored": rescored,
        "failed_trainings": exporting.failures.items,
        "kept_trainings": exporting.kept.reused,  # final trainings loaded from an earlier, unfinished export
        f"val_{score}": float(val_score(record.metrics) or float("nan")),
        f"val_{score}_kind": "supernet estimate: the sub-network with the supernet's shared weights (one-shot search)"
        if config.evaluation == "oneshot"
        else "proxy: search-time training on the training split, scored on validation"
        if config.training.cv_folds == 1
        else f"proxy: search-time {config.training.cv_folds}-fold cross-validation on train+validation",
        f"test_{score}_kind": f"final: retrained {epochs} epochs on train+validation, scored once on test",
        "augment": config.export.augment or config.training.augment,
        "params": count_params(model),
        "flops": count_flops(model, dataset.input_shape),
        "latency_ms": cpu_latency_ms(model, dataset.input_shape),
        "final_train_loss": stats["train_loss"],
        "final_train_seconds": stats["train_seconds"],
        "trial": record.number,
        "search_reward": record.reward,
        "epochs": epochs,
        "seed": seed,
        "dataset": dataset.name,
        "data_fingerprint": dataset.fingerprint(),
    }
    member_archs = [prepared.space.validate(t.record.architecture) for t in trained] if ensemble else None
    write_export(run / EXPORT_DIR, model, arch, prepared.space.family, dataset, config, metrics, member_archs)
    exporting.kept.clear()
    log.info("exported to %s: test %s %.4f", run / EXPORT_DIR, score, metrics[f"test_{score}"])
    return metrics


@dataclass(frozen=True)
class ExportPlan:
    """What an export will train: epochs of re-scoring (on the training split) and of final trainings (on
    train+validation), and a guess of the seconds they take at the pace of the children they retrain (the
    search's trainings of the candidates and of the ensemble's members, scaled to the data)."""

    rescore_epochs: int
    final_epochs: int
    final_trainings: int
    members: int
    seconds: float | None

    def describe(self) -> str:
        parts = [f"{self.final_trainings} final training(s) of {self.final_epochs // self.final_trainings} epochs"]
        if self.rescore_epochs:
            parts.insert(0, f"{self.rescore_epochs} epochs of re-scoring")
        guess = "" if self.seconds is None else f", about {_duration(self.seconds)} at the search's pace"
        return " and ".join(parts) + guess


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _check_epochs(epochs: int | None) -> None:
    if epochs is not None and epochs < 1:
        raise ConfigError(f"epochs={epochs}: the final training needs at least 1 epoch; pass --epochs 1 or more")


def export_plan(run_dir: str | Path, epochs: int | None = None) -> ExportPlan:
    """What ``export_run(run_dir, epochs)`` will train, from the run's config and trials (nothing trained)."""
    _check_epochs(epochs)
    run = Path(run_dir)
    config, store = open_run(run, read_only=True)
    with store:
        top = store.top_k(max(config.export.rescore_top_k, config.export.ensemble_top))
    ex, training = config.export, config.training
    epochs = epochs if epochs is not None else ex.epochs
    candidates = min(len(top), ex.rescore_top_k)
    rescore = ex.rescore_repeats * (ex.rescore_epochs or 2 * training.epochs) * training.cv_folds
    rescore_epochs = candidates * rescore if candidates > 1 else 0
    members = max(1, min(len(top), ex.ensemble_top))
    seconds = None
    rescore_pace, final_pace = _pace(top[: max(candidates, 1)], training), _pace(top[:members], training)
    if rescore_pace is not None and final_pace is not None:
        final = members * ex.repeats * epochs / (1 - config.dataset.val_fraction)  # on train+validation
        seconds = rescore_pace * rescore_epochs + final_pace * final
    return ExportPlan(rescore_epochs, members * ex.repeats * epochs, members * ex.repeats, members, seconds)


def _pace(records: list[TrialRecord], training: Any) -> float | None:
    """Seconds per epoch on the whole training split, the mean of ``records``' search-time trainings (which
    were on ``data_fraction`` of it, per fold); None if none has a timed training."""
    paces = [
        float(r.metrics["train_seconds"]) / float(r.metrics["epochs"]) / training.data_fraction / training.cv_folds
        for r in records
        if float(r.metrics.get("epochs", 0)) > 0 and "train_seconds" in r.metrics
    ]
    return sum(paces) / len(paces) if paces else None


def write_export(
    out: Path,
    model: nn.Module,
    arch: Architecture,
    family: str,
    dataset: Dataset,
    config: RunConfig,
    metrics: dict[str, Any],
    members: list[Architecture] | None = None,
) -> None:
    """Write a trained model (normalization included) and its description into ``out``: built in a folder
    beside it and swapped in at the end, so a kill never leaves half an export (the previous one stays).
    An :class:`Ensemble` ``model`` names the architecture of each member in ``members`` (default: ``arch``)."""
    atomic.replace_dir(lambda folder: _write_files(folder, model, arch, family, dataset, config, metrics, members), out)


def _write_files(
    out: Path,
    model: nn.Module,
    arch: Architecture,
    family: str,
    dataset: Dataset,
    config: RunConfig,
    metrics: dict[str, Any],
    members: list[Architecture] | None,
) -> None:
    model = model.to("cpu").eval()
    info = model_info(arch, family, dataset)
    inner = model.model if isinstance(model, ViewAverage) else model
    if isinstance(model, ViewAverage):
        info["tta"] = model.kind
    if isinstance(inner, Ensemble):
        info["ensemble"] = len(inner.members)
        if members is not None and any(m.key != arch.key for m in members):
            info["members"] = [json.loads(m.to_json()) for m in members]
    (out / "architecture.json").write_text(json.dumps(info, indent=1))
    save_model(out / "model.pt", model, info)
    (out / "config.yaml").write_text(config.to_yaml())
    for fmt in config.export.formats:
        try:
            WRITERS[fmt](model, dataset.input_shape, out, io_names(info))
            metrics[f"{fmt}_file"] = f"model.{fmt}"
        except Exception as err:  # noqa: BLE001 - keep the other formats and the weights
            if is_disk_full(err):
                raise
            log.error("could not export %s: %s", fmt, err)
            metrics[f"{fmt}_error"] = f"{type(err).__name__}: {err}"
    (out / "metrics.json").write_text(to_json(metrics))
    (out / "README.md").write_text(model_card(arch, metrics, info))


def _write_onnx(model: nn.Module, input_shape: tuple[int, ...], out: Path, names: tuple[str, str]) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    example = torch.zeros(2, *input_shape)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints progress lines
        torch.onnx.export(
            model,
            (example,),
            str(out / "model.onnx"),
            input_names=[names[0]],
            output_names=[names[1]],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            verbose=False,
            external_data=False,
        )


def _write_pt2(model: nn.Module, input_shape: tuple[int, ...], out: Path, names: tuple[str, str]) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    program = torch.export.export(model, (torch.zeros(2, *input_shape),), dynamic_shapes=({0: batch},))
    atomic.save_with(out / "model.pt2", lambda fh: torch.export.save(program, fh))  # a full disk: OSError


WRITERS = {"onnx": _write_onnx, "pt2": _write_pt2}
