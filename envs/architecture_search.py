"""The architecture-search environment: one architecture decision per step.

* Observation: ``Box(0, 1)`` holding the one-hot encoding of the decisions taken so far
  (``len(space) * max_choices``) followed by a one-hot of the current position (``len(space) + 1``
  slots; the last one means "finished").
* Action: ``Discrete(max_choices)``, the index of a choice of the current decision.
  ``action_masks()`` marks the valid ones: indices past the decision's choice list and choices the
  space's constraint forbids are masked.
* Inactive decisions (e.g. the filters of block 3 when 2 blocks were chosen) are skipped, and so are
  decisions with a single valid choice (filled in automatically): every step is a real decision.
* Reward is 0 until the last decision; then ``terminated=True`` and the reward is
  ``evaluator.evaluate(architecture).reward``. ``info`` then holds ``architecture`` and ``evaluation``.
* ``exclude`` (optional): choices whose every completion was evaluated already are masked too, so a
  converged policy proposes new architectures next to its favourite instead of repeating it.
* Invalid action (masked, or out of range): the episode ends at once with ``terminated=True``, reward
  ``invalid_action_reward`` and ``info["invalid_action"] = True``; nothing is evaluated. Maskable
  agents never take such actions; unmasked agents learn to avoid them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rlnas.evaluation.base import Evaluator
from rlnas.space.core import Architecture, Choice, EvaluatedPrefixes, SearchSpace


class ArchitectureSearchEnv(gym.Env[np.ndarray, np.int64]):
    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        space: SearchSpace,
        evaluator: Evaluator,
        invalid_action_reward: float = -1.0,
        render_mode: str | None = None,
        exclude: EvaluatedPrefixes | None = None,
    ) -> None:
        self.space = space
        self.evaluator = evaluator
        self.exclude = exclude
        self.invalid_action_reward = float(invalid_action_reward)
        self.render_mode = render_mode
        n = len(space)
        self._enc_size = n * space.max_choices
        self._obs_size = self._enc_size + n + 1
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(self._obs_size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(space.max_choices)
        self._values: dict[str, Choice] = {}
        self._position: int | None = None

    # -- helpers ---------------------------------------------------------------------------------
    def _advance(self, start: int) -> None:
        """Move to the next active decision that has more than one valid choice, filling the others."""
        position = self.space.next_position(start, self._values)
        while position is not None:
            valid = self.space.valid_indices(position, self._values)
            if len(valid) > 1:
                break
            decision = self.space.decisions[position]
            self._values[decision.name] = decision.choices[valid[0]]
            position = self.space.next_position(position + 1, self._values)
        self._position = position

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self._obs_size, dtype=np.float32)
        obs[: self._enc_size] = self.space.encode(self._values)
        slot = len(self.space) if self._position is None else self._position
        obs[self._enc_size + slot] = 1.0
        return obs

    @property
    def position(self) -> int | None:
        """Index of the decision to take next, or None when the architecture is complete."""
        return self._position

    @property
    def partial(self) -> dict[str, Choice]:
        return dict(self._values)

    def action_masks(self) -> np.ndarray:
        mask = np.zeros(self.space.max_choices, dtype=bool)
        if self._position is None:
            mask[0] = True  # nothing to decide; keep one action valid so maskable samplers do not fail
            return mask
        valid = self.space.valid_indices(self._position, self._values)
        if self.exclude is not None:
            name, choices = self.space.decisions[self._position].name, self.space.decisions[self._position].choices
            fresh = [
                i for i in valid if not self.exclude.exhausted({**self._values, name: choices[i]}, self._position + 1)
            ]
            valid = fresh or valid  # everything below was evaluated: allow a repeat (answered by the cache)
        mask[valid] = True
        return mask

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._values = {}
        self._advance(0)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._position is None:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        index = int(action)
        if not (0 <= index < self.space.max_choices) or not self.action_masks()[index]:
            decision = self.space.decisions[self._position]
            self._position = None
            info = {"invalid_action": True, "decision": decision.name, "action": index}
            return self._obs(), self.invalid_action_reward, True, False, info
        decision = self.space.decisions[self._position]
        self._values[decision.name] = decision.choices[index]
        self._advance(self._position + 1)
        if self._position is not None:
            return self._obs(), 0.0, False, False, {}
        arch = Architecture(space=self.space.name, items=tuple(self._values.items()))
        evaluation = self.evaluator.evaluate(arch)
        info = {"architecture": arch, "evaluation": evaluation}
        return self._obs(), float(evaluation.reward), True, False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            where = "done" if self._position is None else self.space.decisions[self._position].name
            return f"{self._values} -> {where}"
        return None
