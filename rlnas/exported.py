"""Loading an export back (``RUN/export``, written by :mod:`rlnas.exporter`) or a kept child: the metadata
(``architecture.json``) and the network, rebuilt through ``build_model`` with ``weights_only=True``. Needs
neither the dataset nor the training code."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from torch import nn

from rlnas import atomic
from rlnas.errors import RunDirError
from rlnas.evaluation.base import cache_key
from rlnas.models.checkpoint import load_model_file
from rlnas.rundir import CHILDREN_DIR, EXPORT_DIR, open_run


def _model_file(path: str | Path) -> Path:
    if not isinstance(path, (str, Path)):
        raise RunDirError(f"{path!r} is not a path; pass RUN/export or its model.pt")
    p = Path(path)
    for folder in (p, p / EXPORT_DIR, p.parent):  # an export swap that a kill cut short is finished first
        if folder.name == EXPORT_DIR and not (folder / "model.pt").exists():
            with contextlib.suppress(OSError):
                atomic.recover_dir(folder)
    if p.is_dir():
        p = p / "model.pt" if (p / "model.pt").exists() else p / EXPORT_DIR / "model.pt"
    if not p.is_file():
        raise RunDirError(f"no exported model at {path}; pass RUN/export or its model.pt (run `rlnas export RUN`)")
    return p


def load_export_info(path: str | Path) -> dict[str, Any]:
    """The metadata of an export (architecture, shapes, normalization, dataset settings)."""
    file = _model_file(path).parent / "architecture.json"
    try:
        info = json.loads(file.read_text())
    except FileNotFoundError:
        raise RunDirError(
            f"{file} is missing: the export is incomplete; export the run again (`rlnas export RUN`)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{file} cannot be read ({err}); export the run again (`rlnas export RUN`)") from None
    required = {"architecture": dict, "family": str, "input_shape": list}
    optional = {"task": str, "class_names": list, "preprocessing": dict}  # older exports lack the task
    wrong = [k for k, kind in required.items() if not isinstance(info, dict) or not isinstance(info.get(k), kind)]
    wrong += [
        k
        for k, kind in optional.items()
        if isinstance(info, dict) and info.get(k) is not None and not isinstance(info[k], kind)
    ]
    if wrong:
        raise RunDirError(
            f"{file} does not describe an rlnas export (missing or wrong: {', '.join(wrong)}); export the run "
            "again (`rlnas export RUN`)"
        )
    return info


def load_model(path: str | Path, map_location: str = "cpu") -> nn.Module:
    """Rebuild an exported model (``RUN/export`` or its ``model.pt``) or a kept child
    (``RUN/children/<key>.pt``) and load its weights (``weights_only=True``); an export's model file must be
    the one its ``architecture.json`` describes."""
    file = _model_file(path)
    described = load_export_info(file) if (file.parent / "architecture.json").exists() else None
    return load_model_file(file, map_location, described)


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
