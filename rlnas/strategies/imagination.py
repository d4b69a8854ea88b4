"""Two extra updates of the policy after each PPO update on real results, so that it learns more from the
results so far between evaluations (see :mod:`rlnas.strategies.ppo`):

* imitation of the best (``strategy.ppo.imitate_top``, priority-queue training): maximum likelihood on the
  best few architectures evaluated so far, so the policy's samples concentrate around them as TPE's do
  around its good set, while the masks keep them off what was evaluated;
* imagined updates (Dyna, ``strategy.ppo.imagined_episodes``): episodes the policy samples, rewarded by the
  reward surrogate.

The imagined episodes are sampled from the policy without the masks of its real episodes (they teach the
policy what is good, evaluated or not; the masks of its real samples keep those off what was evaluated),
rewarded with the shaped rank the surrogate predicts for them (it is fitted on the rank quantiles of the
rewards, so its mean is a predicted quantile), and learned from with PPO's clipped objective, the batch's mean
as the baseline. No imagined episode is evaluated or counts in the budget; the value function learns from
real episodes only. With the masks, a policy whose best architectures are all evaluated is pushed away from
them, and it stops short of the target on the synthetic probe (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from rlnas_envs.architecture_search import ArchitectureSearchEnv
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

from rlnas.config.strategy import PPO_FIXED
from rlnas.space.core import SearchSpace
from rlnas.strategies.policy import NoEvaluation, sample_episodes
from rlnas.strategies.rollout import actions_of
from rlnas.strategies.screening import Screening


def _steps(space: SearchSpace, episodes: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The observations, masks and actions of every step of ``episodes`` (replayed through the env), and
    the episode each step belongs to."""
    obs, masks, actions, owner = [], [], [], []
    for i, acts in enumerate(episodes):
        env = ArchitectureSearchEnv(space, evaluator=NoEvaluation())
        o, _ = env.reset()
        for action in acts:
            obs.append(o)
            masks.append(env.action_masks())
            actions.append(action)
            owner.append(i)
            o, _, _, _, _ = env.step(action)
    return np.stack(obs), np.stack(masks), np.array(actions), np.array(owner)


def imagined_update(
    policy: MaskableActorCriticPolicy,
    space: SearchSpace,
    screen: Screening,
    cfg: Any,
    rng: np.random.Generator,
) -> float | None:
    """One PPO update of ``policy`` on ``cfg.imagined_episodes`` imagined episodes; the mean predicted
    quantile of them (None: nothing to learn from, e.g. fewer results than ``screen_after``)."""
    count = cfg.imagined_episodes
    if count < 2 or not screen.ready:
        return None
    sampled = sample_episodes(policy, space, rng, count)
    if len(sampled) < 2:
        return None
    mean, _ = screen.predict([arch for arch, _ in sampled])
    quantile = np.clip(mean, 0.0, 1.0)
    shaped = 2.0 * quantile**cfg.rank_exponent - 1.0
    spread = float(shaped.std())
    if spread < 1e-8:
        return float(quantile.mean())
    advantage = (shaped - shaped.mean()) / spread
    obs, masks, actions, owner = _steps(space, [acts for _, acts in sampled])
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    actions_t = torch.as_tensor(actions)
    masks_t = torch.as_tensor(masks)
    adv_t = torch.as_tensor(advantage[owner], dtype=torch.float32)
    policy.set_training_mode(True)
    with torch.no_grad():
        _, old, _ = policy.evaluate_actions(obs_t, actions_t, action_masks=masks_t)
    for _ in range(cfg.n_epochs):
        _, log_prob, entropy = policy.evaluate_actions(obs_t, actions_t, action_masks=masks_t)
        ratio = torch.exp(log_prob - old)
        loss = -torch.min(ratio * adv_t, ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range) * adv_t).mean()
        if entropy is not None:
            loss = loss - cfg.ent_coef * entropy.mean()
        policy.optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(policy.parameters(), PPO_FIXED["max_grad_norm"])
        policy.optimizer.step()
    policy.set_training_mode(False)
    return float(quantile.mean())


def imitation_update(
    policy: MaskableActorCriticPolicy, space: SearchSpace, history: list[tuple[Any, float]], cfg: Any
) -> float | None:
    """Priority-queue training (Abolafia et al. 2018, "Neural program synthesis with priority queue
    training"): ``n_epochs`` steps of maximum likelihood, with the policy's optimizer, on the best
    ``imitate_top`` share of the architectures evaluated so far (at least two), under the space's own masks
    only. Returns the mean log-probability of their episodes before the steps (None: nothing to learn from)."""
    if cfg.imitate_top <= 0 or len(history) < 2:
        return None
    count = max(2, math.ceil(cfg.imitate_top * len(history)))
    top = sorted(history, key=lambda item: -item[1])[:count]
    obs, masks, actions, _ = _steps(space, [actions_of(space, arch) for arch, _ in top])
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    actions_t = torch.as_tensor(actions)
    masks_t = torch.as_tensor(masks)
    policy.set_training_mode(True)
    before = None
    for _ in range(cfg.n_epochs):
        _, log_prob, _ = policy.evaluate_actions(obs_t, actions_t, action_masks=masks_t)
        loss = -log_prob.mean()
        before = float(log_prob.detach().sum()) / count if before is None else before
        policy.optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(policy.parameters(), PPO_FIXED["max_grad_norm"])
        policy.optimizer.step()
    policy.set_training_mode(False)
    return before
