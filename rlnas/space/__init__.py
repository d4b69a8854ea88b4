"""Search spaces: decisions, architectures, masks, sampling, mutation, encoding."""

from __future__ import annotations

from rlnas.space.core import Architecture, Condition, Decision, SearchSpace
from rlnas.space.spec import BUILTIN_SPACES, SpaceSpec, build_space, builtin_space

__all__ = [
    "Architecture",
    "BUILTIN_SPACES",
    "Condition",
    "Decision",
    "SearchSpace",
    "SpaceSpec",
    "build_space",
    "builtin_space",
]
