"""rlnas: neural architecture search for image classifiers with a MaskablePPO controller."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_model(path: Any, map_location: str = "cpu") -> Any:
    """Load an exported model (``RUN/export`` or its ``model.pt``) as a ready ``nn.Module`` in eval mode."""
    from rlnas.export import load_model as _load

    return _load(path, map_location=map_location)


__all__ = ["__version__", "load_model"]
