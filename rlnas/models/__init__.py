"""Child networks: family builders, operation registries and complexity measures."""

from __future__ import annotations

from rlnas.models.families import BUILDERS, Normalize, build_model, with_normalization

__all__ = ["BUILDERS", "Normalize", "build_model", "with_normalization"]
