"""rlnas Gymnasium environments (installed as ``rlnas_envs``); registers ``rlnas/ArchitectureSearch-v0``."""

from __future__ import annotations

import gymnasium
from rlnas_envs.architecture_search import ArchitectureSearchEnv

ENV_ID = "rlnas/ArchitectureSearch-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="rlnas_envs.architecture_search:ArchitectureSearchEnv")

__all__ = ["ENV_ID", "ArchitectureSearchEnv"]
