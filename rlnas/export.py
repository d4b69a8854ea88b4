"""Final retraining of the best architecture, self-describing export, and loading it back.

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
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlnas.config import RunConfig
from rlnas.data import Dataset
from rlnas.driver import CHILDREN_DIR, open_run, prepare
from rlnas.errors import RunDirError
from rlnas.evaluation.base import cache_key
from rlnas.evaluation.train import accuracy
from rlnas.evaluation.trainer import child_seed
from rlnas.models.checkpoint import load_model_file, model_info, save_model
from rlnas.models.complexity import count_flops, count_params, cpu_latency_ms
from rlnas.space.core import Architecture
from rlnas.store import TrialRecord

log = logging.getLogger(__name__)

EXPORT_DIR = "export"


def export_run(run_dir: str | Path, epochs: int | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """Retrain the best architecture of a run on train+validation, test it once, write ``RUN/export``."""
    run = Path(run_dir)
    config, store = open_run(run)
    store.close()
    if data_dir is not None:
        config = config.model_copy(update={"dataset": config.dataset.model_copy(update={"data_dir": data_dir})})
    prepared = prepare(config)
    dataset = prepared.dataset
    record, rescored = _rescore(prepared, store_path=run, k=config.export.rescore_top_k)
    arch = prepared.space.validate(record.architecture)
    epochs = epochs if epochs is not None else config.export.epochs
    seed = child_seed(config.seed, arch)
    repeats = []
    for r in range(config.export.repeats):
        log.info(
            "final training %d/%d of trial %d for %d epochs on train+validation",
            r + 1,
            config.export.repeats,
            record.number,
            epochs,
        )
        trained, stats = prepared.trainer.train(
            arch, seed + r, epochs=epochs, on_train_and_val=True, augment=config.export.augment
        )
        trained = trained.to("cpu").eval()
        repeats.append((accuracy(trained, dataset.test), seed + r, trained, stats))
    test_accuracy, seed, model, stats = max(repeats, key=lambda item: item[0])
    accuracies = np.array([item[0] for item in repeats])
    metrics = {
        "test_accuracy": test_accuracy,
        "test_accuracy_mean": float(accuracies.mean()),
        "test_accuracy_std": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else 0.0,
        "test_accuracy_repeats": [{"seed": item[1], "test_accuracy": item[0]} for item in repeats],
        "exported_repeat": "the best of the repeats on the test split (optimistic; the mean is unbiased)"
        if len(repeats) > 1
        else "the only training",
        "rescored": rescored,
        "val_accuracy": float(record.metrics.get("val_accuracy", float("nan"))),
        "val_accuracy_kind": "proxy: search-time training on the training split, scored on validation",
        "test_accuracy_kind": f"final: retrained {epochs} epochs on train+validation, scored once on test",
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
    }
    write_export(run / EXPORT_DIR, model, arch, prepared.space.family, dataset, config, metrics)
    log.info("exported to %s: test accuracy %.4f", run / EXPORT_DIR, metrics["test_accuracy"])
    return metrics


def _rescore(prepared: Any, store_path: Path, k: int) -> tuple[TrialRecord, list[dict[str, Any]]]:
    """The best trial by proxy reward, or with k > 1 the best of the top k re-trained at a higher fidelity
    (``export.rescore_epochs`` on the training split, ``export.rescore_repeats`` seeds each, scored on
    validation; the best mean wins)."""
    _, store = open_run(store_path)
    with store:
        top = store.top_k(k)
    if not top:
        raise RunDirError(f"{store_path} has no successful trial to export; run or resume the search first")
    if k == 1 or len(top) == 1:
        return top[0], []
    config = prepared.config
    epochs = config.export.rescore_epochs or 2 * config.training.epochs
    rows = []
    for record in top:
        arch = prepared.space.validate(record.architecture)
        seed = child_seed(config.seed, arch)
        scores = []
        for r in range(config.export.rescore_repeats):
            model, _ = prepared.trainer.train(arch, seed + r, epochs=epochs)
            scores.append(accuracy(model, prepared.dataset.val))
        rows.append(
            {
                "trial": record.number,
                "proxy_val_accuracy": record.metrics.get("val_accuracy"),
                "rescored_val_accuracy": float(np.mean(scores)),
                "rescored_val_accuracies": scores,
                "rescore_epochs": epochs,
            }
        )
        log.info(
            "re-scored trial %d: val accuracy %.4f (mean of %d) at %d epochs",
            record.number,
            rows[-1]["rescored_val_accuracy"],
            len(scores),
            epochs,
        )
    best = max(range(len(top)), key=lambda i: (rows[i]["rescored_val_accuracy"], -i))
    return top[best], rows


def write_export(
    out: Path,
    model: nn.Module,
    arch: Architecture,
    family: str,
    dataset: Dataset,
    config: RunConfig,
    metrics: dict[str, Any],
) -> None:
    """Write a trained model (normalization included) and its description into ``out``."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model = model.to("cpu").eval()
    info = model_info(arch, family, dataset, config.dataset.model_dump())
    (out / "architecture.json").write_text(json.dumps(info, indent=1))
    save_model(out / "model.pt", model, info)
    (out / "config.yaml").write_text(config.to_yaml())
    for fmt in config.export.formats:
        try:
            WRITERS[fmt](model, dataset.input_shape, out)
            metrics[f"{fmt}_file"] = f"model.{fmt}"
        except Exception as err:  # noqa: BLE001 - keep the other formats and the weights
            log.error("could not export %s: %s", fmt, err)
            metrics[f"{fmt}_error"] = f"{type(err).__name__}: {err}"
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "README.md").write_text(_model_card(arch, metrics, info))


def _write_onnx(model: nn.Module, input_shape: tuple[int, ...], out: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    example = torch.zeros(2, *input_shape)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints progress lines
        torch.onnx.export(
            model,
            (example,),
            str(out / "model.onnx"),
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            verbose=False,
            external_data=False,
        )


def _write_pt2(model: nn.Module, input_shape: tuple[int, ...], out: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    program = torch.export.export(model, (torch.zeros(2, *input_shape),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(out / "model.pt2"))


WRITERS = {"onnx": _write_onnx, "pt2": _write_pt2}


def _model_card(arch: Architecture, metrics: dict[str, Any], info: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in arch.items)
    repeats = metrics.get("test_accuracy_repeats", [])
    repeats_row = (
        f"\n| test accuracy over {len(repeats)} final trainings: mean ± std | "
        f"{metrics['test_accuracy_mean']:.4f} ± {metrics['test_accuracy_std']:.4f} |"
        if len(repeats) > 1
        else ""
    )
    return f"""# rlnas model: {info["family"]} on {metrics["dataset"]}

| metric | value |
|---|---|
| test accuracy (final: {metrics["epochs"]} epochs on train+val) | {metrics["test_accuracy"]:.4f} |{repeats_row}
| validation accuracy (proxy: search-time training) | {metrics["val_accuracy"]:.4f} |
| parameters | {metrics["params"]} |
| FLOPs per image | {metrics["flops"]} |
| CPU latency per image (batch 1, 1 thread) | {metrics["latency_ms"]:.3f} ms |

Input: float images of shape (N, {", ".join(map(str, info["input_shape"]))}) with pixel values in [0, 1]
(normalization is part of the model). Output: {info["num_classes"]} logits (apply softmax for probabilities).

## Architecture
| decision | choice |
|---|---|
{rows}

## Loading
```python
import rlnas
model = rlnas.load_model("path/to/export")          # nn.Module, eval mode

import torch                                        # without rlnas
program = torch.export.load("path/to/export/model.pt2").module()

import onnxruntime                                  # without torch
session = onnxruntime.InferenceSession("path/to/export/model.onnx")
logits = session.run(None, {{"image": images}})[0]
```
Versions: {json.dumps(info["versions"])}
"""


def _model_file(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt" if (p / "model.pt").exists() else p / EXPORT_DIR / "model.pt"
    if not p.is_file():
        raise RunDirError(f"no exported model at {path}; pass RUN/export or its model.pt (run `rlnas export RUN`)")
    return p


def load_export_info(path: str | Path) -> dict[str, Any]:
    """The metadata of an export (architecture, shapes, normalization, dataset settings)."""
    return json.loads((_model_file(path).parent / "architecture.json").read_text())


def load_model(path: str | Path, map_location: str = "cpu") -> nn.Module:
    """Rebuild an exported model (``RUN/export`` or its ``model.pt``) or a kept child
    (``RUN/children/<key>.pt``) and load its weights (``weights_only=True``)."""
    return load_model_file(_model_file(path), map_location)


def load_trial(run_dir: str | Path, number: int, map_location: str = "cpu") -> nn.Module:
    """The trained network of trial ``number`` of a run searched with ``logging.keep_children: true``."""
    run = Path(run_dir)
    _, store = open_run(run)
    with store:
        record = next((t for t in store.trials() if t.number == number), None)
    if record is None:
        raise RunDirError(f"{run} has no trial {number}; `rlnas trials {run}` lists them")
    file = run / CHILDREN_DIR / f"{cache_key(record.key, record.metrics.get('fidelity', 1.0))}.pt"
    if not file.is_file():
        raise RunDirError(
            f"the weights of trial {number} were not kept ({file} is missing); search with "
            "--set logging.keep_children=true to keep every child"
        )
    return load_model_file(file, map_location)
