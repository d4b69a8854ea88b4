"""The one file format for trained networks (exports and kept children): a plain dict of tensors and
JSON-able values, loaded with ``weights_only=True`` and rebuilt through ``build_model``; no module is
pickled."""

from __future__ import annotations

import json
import pickle
import platform
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlnas import atomic
from rlnas.data.core import Dataset
from rlnas.errors import RlnasError, RunDirError
from rlnas.models.families import Ensemble, ViewAverage, assemble
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
    """The (untrained) network described by ``info`` (:func:`model_info`; older files lack the task), an
    :class:`Ensemble` of ``info["ensemble"]`` members when that is above 1: copies of the architecture, or
    the architectures listed in ``info["members"]``; inside a :class:`ViewAverage` where ``info["tta"]``
    names test-time views."""
    regression = info.get("task") == "regression"

    def one(architecture: dict[str, Any]) -> nn.Module:
        return assemble(
            Architecture.from_json(architecture),
            info["family"],
            tuple(info["input_shape"]),
            int(info.get("num_outputs", info["num_classes"])),
            info["mean"],
            info["std"],
            (info["target_mean"], info["target_std"]) if regression else None,
        )

    count = int(info.get("ensemble", 1))
    archs = info.get("members") or [info["architecture"]] * count
    if len(archs) != count:
        raise ValueError(f"{count} ensemble members but {len(archs)} member architectures")
    model = one(archs[0]) if count == 1 else Ensemble([one(a) for a in archs], classification=not regression)
    tta = info.get("tta", "none")
    return model if tta == "none" else ViewAverage(model, classification=not regression, kind=tta)


def save_model(path: Path, model: nn.Module, info: dict[str, Any], **extra: Any) -> None:
    """Write ``info``, ``extra`` (JSON-able) and the CPU weights atomically."""
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    atomic.save_with(path, lambda fh: torch.save({**info, **extra, "state_dict": state}, fh))


def _reason(err: BaseException) -> str:
    """The telling line of a torch.load error, cut to its first sentence."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    line = next((x for x in lines if x.startswith("Unsupported")), lines[0] if lines else type(err).__name__)
    return line.split(". ")[0][:160]


# What must agree between a model file and the description beside it (an export's architecture.json).
DESCRIBED = (
    "architecture",
    "family",
    "input_shape",
    "task",
    "class_names",
    "preprocessing",
    "ensemble",
    "members",
    "tta",
)


def load_model_file(file: Path, map_location: str = "cpu", described: dict[str, Any] | None = None) -> nn.Module:
    """The network saved in ``file``; a user error (naming the file and the fix) for an empty, truncated,
    foreign or code-carrying file, which ``weights_only=True`` never unpickles, or for one that is not the
    model ``described`` (e.g. a ``model.pt`` copied from another export)."""
    fix = "export the run again (`rlnas export RUN`) or pass another model"
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise RunDirError(
            f"{file} is not a model file rlnas can read: torch.load(weights_only=True) refused it ({_reason(err)}); "
            f"it is damaged, not an rlnas model, or holds Python objects that rlnas never unpickles; {fix}"
        ) from None
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        raise RunDirError(f"{file} is empty, truncated or not a model file ({_reason(err)}); {fix}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise RunDirError(f"{file} is not an rlnas model file (format {found!r}); {fix}")
    differ = [key for key in DESCRIBED if described is not None and described.get(key) != data.get(key)]
    if differ:
        raise RunDirError(
            f"{file} is not the model that {file.parent / 'architecture.json'} describes (they differ in "
            f"{', '.join(differ)}): one of them was replaced or copied from another export; {fix}"
        )
    try:
        model = network(data)
        model.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, RlnasError) as err:
        raise RunDirError(f"{file} does not describe a network rlnas can rebuild ({_reason(err)}); {fix}") from None
    return model.eval()
