"""Child networks: family builders, operation registries and complexity measures."""

from __future__ import annotations

from rlnas.models.families import FAMILIES, Normalize, build_model, with_normalization

__all__ = ["FAMILIES", "Normalize", "build_model", "with_normalization"]
