"""The one file format for trained networks (exports and kept children): a plain dict of tensors and
JSON-able values, loaded with ``weights_only=True`` and rebuilt through ``build_model``; no module is
pickled."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlnas import atomic
from rlnas.data.core import Dataset
from rlnas.errors import RunDirError
from rlnas.models.families import assemble
from rlnas.space.core import Architecture

FORMAT = "rlnas-model-1"


def model_info(arch: Architecture, family: str, dataset: Dataset) -> dict[str, Any]:
    """Everything needed to rebuild a network and feed it: architecture, shapes, normalization, the task and
    its classes or target scale, a table's column encoding, the data's description and fingerprint."""
    import rlnas

    return {
        "format": FORMAT,
        "architecture": json.loads(arch.to_json()),
        "family": family,
        "input_shape": list(dataset.input_shape),
        "task": dataset.task,
        "num_classes": dataset.num_classes,
        "num_outputs": dataset.num_outputs,
        "class_names": list(dataset.class_names),
        "mean": dataset.mean,
        "std": dataset.std,
        "target_mean": dataset.target_mean,
        "target_std": dataset.target_std,
        "preprocessing": dataset.preprocessing,
        "dataset": dataset.description,
        "data_fingerprint": dataset.fingerprint(),
        "versions": {"rlnas": rlnas.__version__, "torch": str(torch.__version__), "python": platform.python_version()},
    }


def network(info: dict[str, Any]) -> nn.Module:
    """The (untrained) network described by ``info`` (:func:`model_info`; older files lack the task)."""
    regression = info.get("task") == "regression"
    return assemble(
        Architecture.from_json(info["architecture"]),
        info["family"],
        tuple(info["input_shape"]),
        int(info.get("num_outputs", info["num_classes"])),
        info["mean"],
        info["std"],
        (info["target_mean"], info["target_std"]) if regression else None,
    )


def save_model(path: Path, model: nn.Module, info: dict[str, Any], **extra: Any) -> None:
    """Write ``info``, ``extra`` (JSON-able) and the CPU weights atomically."""
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    atomic.save_with(path, lambda fh: torch.save({**info, **extra, "state_dict": state}, fh))


def load_model_file(file: Path, map_location: str = "cpu") -> nn.Module:
    data = torch.load(file, map_location=map_location, weights_only=True)
    if data.get("format") != FORMAT:
        raise RunDirError(f"{file} is not an rlnas model file (format {data.get('format')!r})")
    model = network(data)
    model.load_state_dict(data["state_dict"])
    return model.eval()
