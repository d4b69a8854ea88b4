"""sb3-contrib's MaskablePPO driven one episode at a time (see :mod:`rlnas.strategies.ppo`).

:class:`StepwisePPO` does what SB3's ``learn()`` does, without a thread and without blocking on the env: each
``next_episode`` runs the policy through the env's decisions into the rollout buffer (``collect_rollouts``
step by step) and returns the finished architecture, whose env reward is a placeholder. Within one rollout
the policy is fixed, so every episode of a rollout can be sampled before any of them is evaluated, and the
driver may evaluate them in parallel (``--workers N``). The results are told in any order; the
``next_episode`` after a rollout's last episode writes the shaped rewards into the terminal steps, computes
the returns and updates the policy (``train()``); while some are missing it raises WaitForResults. With
``gamma = gae_lambda = 1`` and a reward only at the end of an episode this is exactly the update a blocking
env would give.
"""

from __future__ import annotations

import logging
import zipfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rlnas_envs.architecture_search import ArchitectureSearchEnv
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv

from rlnas import atomic
from rlnas.config.strategy import PPO_FIXED
from rlnas.evaluation.base import Evaluation
from rlnas.space.core import Architecture, EvaluatedPrefixes, SearchSpace
from rlnas.strategies.base import WaitForResults
from rlnas.strategies.policy import DecisionPolicy, NoEvaluation, RewardShaper, head_groups

log = logging.getLogger(__name__)


class _Pending(NoEvaluation):
    """The env's evaluator: a placeholder reward (the real one is told later); a pending architecture counts
    as evaluated for the masks, so a rollout holds no duplicates."""

    def __init__(self, exclude: EvaluatedPrefixes) -> None:
        self.exclude = exclude

    def evaluate(self, arch: Architecture) -> Evaluation:
        self.exclude.add(arch)
        return Evaluation(reward=0.0)


class _PerTrialWriter(KVWriter):
    """stable-baselines3's metrics (``train/*``, ``time/*``) to ``scalars(numbers)``, which logs them at the
    trial number, the x-axis of everything else the search logs (SB3 itself would use environment steps)."""

    def __init__(self, scalars: Callable[[dict[str, float]], None]) -> None:
        self.scalars = scalars

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        self.scalars(
            {
                key: float(value)
                for key, value in key_values.items()
                if isinstance(value, (int, float, np.number))
                and not isinstance(value, bool)
                and "tensorboard" not in (key_excluded.get(key) or ())
            }
        )

    def close(self) -> None:
        """The run's logger owns the TensorBoard writer."""


def actions_of(space: SearchSpace, arch: Architecture) -> list[int]:
    """The env's actions that build ``arch``."""
    env = ArchitectureSearchEnv(space, evaluator=NoEvaluation())
    env.reset()
    actions: list[int] = []
    while env.position is not None:
        decision = space.decisions[env.position]
        actions.append(decision.choices.index(arch[decision.name]))
        env.step(actions[-1])
    return actions


class StepwisePPO:
    """MaskablePPO on the architecture-search env, one episode per ``next_episode``. ``evaluated``: every
    architecture evaluated or pending (the env adds each episode's; with ``cfg.mask_evaluated`` the policy's
    masks keep its samples off them). ``on_update(updates)`` runs after each PPO update."""

    def __init__(
        self,
        space: SearchSpace,
        cfg: Any,
        seed: int,
        evaluated: EvaluatedPrefixes,
        on_update: Callable[[int], None],
    ) -> None:
        self.shaper = RewardShaper(cfg.reward_normalization, cfg.rank_exponent)
        self.on_update = on_update
        # this rollout: where each episode's last step sits in the buffer, its architecture, the results told
        self.terminal_positions: list[int] = []
        self.rollout: list[Architecture] = []
        self._issued: dict[str, deque[int]] = {}  # arch key -> episodes of this rollout not told yet
        self._results: dict[int, Evaluation] = {}
        self.episodes = 0  # the policy's episodes so far
        self.updates = 0
        self._started = False
        env = ArchitectureSearchEnv(
            space, evaluator=_Pending(evaluated), exclude=evaluated if cfg.mask_evaluated else None
        )
        episode_steps = sum(1 for d in space.decisions if len(d.choices) > 1) or 1
        n_steps = cfg.episodes_per_update * episode_steps
        self.model = MaskablePPO(
            DecisionPolicy,
            DummyVecEnv([lambda: env]),  # no Monitor: episode rewards arrive after the episode
            learning_rate=cfg.learning_rate,
            n_steps=n_steps,
            batch_size=n_steps,  # one minibatch: the whole rollout
            n_epochs=cfg.n_epochs,
            gamma=PPO_FIXED["gamma"],
            gae_lambda=PPO_FIXED["gae_lambda"],
            clip_range=cfg.clip_range,
            ent_coef=cfg.ent_coef,
            vf_coef=PPO_FIXED["vf_coef"],
            max_grad_norm=PPO_FIXED["max_grad_norm"],
            policy_kwargs={"net_arch": list(cfg.net_arch), "heads": head_groups(space, cfg.decision_heads)},
            seed=seed,
            device="cpu",
            verbose=0,
        )

    @property
    def policy(self) -> DecisionPolicy:
        policy = self.model.policy
        assert isinstance(policy, DecisionPolicy)
        return policy

    def log_to(self, tb_dir: Path | None, scalars: Callable[[dict[str, float]], None]) -> None:
        """SB3's metrics to ``scalars`` when the run has a TensorBoard folder (and never a ``SB3-<time>``
        folder of its own)."""
        outputs: list[KVWriter] = [] if tb_dir is None else [_PerTrialWriter(scalars)]
        self.model.set_logger(Logger(folder=None if tb_dir is None else str(tb_dir), output_formats=outputs))

    # -- one episode at a time -------------------------------------------------------------------------
    def _start_rollout(self) -> None:
        """What ``learn()`` does before the first rollout and ``collect_rollouts`` at the start of each."""
        model = self.model
        if not self._started:
            model._setup_learn(total_timesteps=2**62, reset_num_timesteps=False)
            self._started = True
        model.policy.set_training_mode(False)
        model.rollout_buffer.reset()
        self.terminal_positions, self.rollout = [], []

    def _steps(self) -> Architecture | None:
        """The policy's steps into the rollout buffer (``collect_rollouts``' loop) until an episode ends (its
        architecture) or the buffer is full (None: as in SB3, an episode may span two rollouts, its first
        steps bootstrapped by the value function)."""
        model = self.model
        assert model.env is not None
        while not model.rollout_buffer.full:
            with torch.no_grad():
                obs = obs_as_tensor(model._last_obs, model.device)  # type: ignore[arg-type]
                masks = get_action_masks(model.env)
                actions, values, log_probs = model.policy(obs, action_masks=masks)
            actions = actions.cpu().numpy()
            new_obs, rewards, dones, infos = model.env.step(actions)
            model.num_timesteps += 1
            finished = bool(dones[0]) and "evaluation" in infos[0]  # not an invalid action (masks prevent those)
            if finished:
                self.terminal_positions.append(model.rollout_buffer.pos)
            model.rollout_buffer.add(
                model._last_obs,  # type: ignore[arg-type]
                actions.reshape(-1, 1),
                rewards,
                model._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
                action_masks=masks,
            )
            model._last_obs, model._last_episode_starts = new_obs, dones  # type: ignore[assignment]
            if finished:
                arch: Architecture = infos[0]["architecture"]
                self._issued.setdefault(arch.key, deque()).append(len(self.rollout))
                self.rollout.append(arch)
                self.episodes += 1
                return arch
        return None

    def next_episode(self) -> Architecture:
        """The policy's next architecture; at a full rollout, PPO's update first (WaitForResults while some
        of the rollout's results are missing)."""
        if not self._started:
            self._start_rollout()
        while True:
            if self.model.rollout_buffer.full:
                if len(self._results) < len(self.rollout):
                    raise WaitForResults("the PPO update needs the evaluations of its rollout")
                self._update()
            arch = self._steps()
            if arch is not None:
                return arch

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        """The result of an episode of this rollout."""
        episodes = self._issued.get(arch.key)
        if not episodes:
            raise RuntimeError(f"the PPO controller did not propose {arch.key} (or it was told already)")
        self._results[episodes.popleft()] = evaluation
        if not episodes:
            del self._issued[arch.key]

    def takes(self, steps: int) -> bool:
        """Whether the policy's next episode could be ``steps`` planned steps now without waiting: between
        episodes, and either room left for them in the buffer or every result of this rollout told (so the
        update an episode across two rollouts needs can run at once, as for the policy's own episodes)."""
        buffer = self.model.rollout_buffer
        if not self._started or not bool(self.model._last_episode_starts[0]):  # type: ignore[index]
            return False
        return len(self._results) == len(self.rollout) or buffer.buffer_size - buffer.pos >= steps

    def _update(self) -> None:
        """The end of a rollout whose every result is told: the shaped rewards into the terminal steps, the
        returns, PPO's update (``train()``), then ``on_update``."""
        model, buffer = self.model, self.model.rollout_buffer
        evaluations = [self._results.pop(i) for i in range(len(self.rollout))]
        for evaluation in evaluations:
            if not evaluation.cached:
                self.shaper.add(float(evaluation.reward))
        for position, evaluation in zip(self.terminal_positions, evaluations, strict=True):
            buffer.rewards[position, 0] = self.shaper(float(evaluation.reward))
        with torch.no_grad():
            last = model.policy.predict_values(obs_as_tensor(model._last_obs, model.device))  # type: ignore[arg-type]
        buffer.compute_returns_and_advantage(last_values=last, dones=model._last_episode_starts)  # type: ignore[arg-type]
        self.updates += 1
        model._update_current_progress_remaining(model.num_timesteps, model._total_timesteps)
        model.dump_logs(self.updates)
        model.train()
        self._start_rollout()
        self.on_update(self.updates)

    # -- the checkpoint --------------------------------------------------------------------------------
    def restore(self, checkpoint: Path) -> bool:
        """The policy's weights from ``checkpoint``; False (logged) when it cannot be read: the policy starts
        afresh and no finished trial is lost."""
        try:
            self._check_size(checkpoint)
            self.model.set_parameters(str(checkpoint), device="cpu")
        except Exception as err:  # noqa: BLE001 - a damaged checkpoint must not cost the finished trials
            log.warning(
                "the controller checkpoint %s cannot be read (%s: %s); the policy starts afresh, every finished "
                "trial is kept",
                checkpoint,
                type(err).__name__,
                err,
            )
            return False
        log.info("controller restored from %s", checkpoint)
        return True

    def _check_size(self, checkpoint: Path) -> None:
        """Refuse, before unpacking, a checkpoint that unpacks to far more than this policy's weights and
        optimizer state (a zip bomb, or a file from another program)."""
        weights = sum(p.numel() * p.element_size() for p in self.model.policy.parameters())
        limit = 4 * weights + (16 << 20)
        with zipfile.ZipFile(checkpoint) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
        if unpacked > limit:
            raise ValueError(f"it unpacks to {unpacked:,} bytes, more than this controller holds ({limit:,})")

    def save(self, checkpoint: Path) -> None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        atomic.save_with(checkpoint, lambda fh: self.model.save(fh))  # type: ignore[arg-type]

    def close(self) -> None:
        self.model.logger.close()
