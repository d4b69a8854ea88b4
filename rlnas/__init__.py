"""rlnas: neural architecture search with a MaskablePPO controller, on built-in datasets or your own.

The public API (imported lazily, so that ``import rlnas`` stays cheap)::

    import rlnas
    data = rlnas.data.from_folder("photos/", image_size=32)   # from_arrays(x, y), from_csv(path), from_npz(path)
    result = rlnas.search(data, budget=40, run_dir="runs/photos")
    rlnas.resume("runs/photos", data=data)
    rlnas.export("runs/photos", data=data)
    model = rlnas.load_model("runs/photos/export")
    labels = rlnas.load_predictor("runs/photos/export").predict(images)  # raw arrays or files in
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rlnas import data
    from rlnas.api import RunResult, export, resume, search
    from rlnas.data import Dataset
    from rlnas.evaluation.train import EpochEnd

_LAZY = {
    "search": "rlnas.api",
    "resume": "rlnas.api",
    "export": "rlnas.api",
    "RunResult": "rlnas.api",
    "Dataset": "rlnas.data",
    "EpochEnd": "rlnas.evaluation.train",
}


def __getattr__(name: str) -> Any:
    if name == "data":
        return importlib.import_module("rlnas.data")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlnas' has no attribute {name!r}")


def load_model(path: Any, map_location: str = "cpu") -> Any:
    """Load an exported model (``RUN/export`` or its ``model.pt``) or a kept child (``RUN/children/<key>.pt``)
    as a ready ``nn.Module`` in eval mode."""
    from rlnas.exported import load_model as _load

    return _load(path, map_location=map_location)


def load_predictor(export: Any, invert: bool = False) -> Any:
    """An exported model ready for raw inputs (image files or arrays, table rows or a CSV file):
    ``.predict(x)``, ``.predict_proba(x)``, ``.evaluate(x, y)``, ``.features(x)`` (what ONNX takes)."""
    from rlnas.predict import load_predictor as _load

    return _load(export, invert=invert)


def load_trial(run_dir: Any, number: int, map_location: str = "cpu") -> Any:
    """Load the trained child of trial ``number`` of a run searched with ``logging.keep_children: true``."""
    from rlnas.exported import load_trial as _load

    return _load(run_dir, number, map_location=map_location)


__all__ = [
    "Dataset",
    "EpochEnd",
    "RunResult",
    "__version__",
    "data",
    "export",
    "load_model",
    "load_predictor",
    "load_trial",
    "resume",
    "search",
]
