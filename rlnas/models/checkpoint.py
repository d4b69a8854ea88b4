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

from rlnas.data import Dataset
from rlnas.errors import RunDirError
from rlnas.models.families import build_model, with_normalization
from rlnas.space.core import Architecture

FORMAT = "rlnas-model-1"


def model_info(arch: Architecture, family: str, dataset: Dataset, dataset_config: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to rebuild a network and feed it: architecture, shapes, normalization, versions."""
    import rlnas

    return {
        "format": FORMAT,
        "architecture": json.loads(arch.to_json()),
        "family": family,
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "mean": dataset.mean,
        "std": dataset.std,
        "dataset": dataset_config,
        "versions": {"rlnas": rlnas.__version__, "torch": str(torch.__version__), "python": platform.python_version()},
    }


def save_model(path: Path, model: nn.Module, info: dict[str, Any], **extra: Any) -> None:
    """Write ``info``, ``extra`` (JSON-able) and the CPU weights atomically."""
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({**info, **extra, "state_dict": state}, tmp)
    tmp.replace(path)


def load_model_file(file: Path, map_location: str = "cpu") -> nn.Module:
    data = torch.load(file, map_location=map_location, weights_only=True)
    if data.get("format") != FORMAT:
        raise RunDirError(f"{file} is not an rlnas model file (format {data.get('format')!r})")
    arch = Architecture.from_json(data["architecture"])
    model = build_model(arch, data["family"], tuple(data["input_shape"]), int(data["num_classes"]))
    model = with_normalization(model, data["mean"], data["std"])
    model.load_state_dict(data["state_dict"])
    return model.eval()
