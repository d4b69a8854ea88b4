"""rlnas: neural architecture search for image classifiers with a MaskablePPO controller."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_model(path: Any, map_location: str = "cpu") -> Any:
    """Load an exported model (``RUN/export`` or its ``model.pt``) or a kept child (``RUN/children/<key>.pt``)
    as a ready ``nn.Module`` in eval mode."""
    from rlnas.export import load_model as _load

    return _load(path, map_location=map_location)


def load_trial(run_dir: Any, number: int, map_location: str = "cpu") -> Any:
    """Load the trained child of trial ``number`` of a run searched with ``logging.keep_children: true``."""
    from rlnas.export import load_trial as _load

    return _load(run_dir, number, map_location=map_location)


__all__ = ["__version__", "load_model", "load_trial"]
