"""The PPO controller's policy network and reward shaping (see :mod:`rlnas.strategies.ppo`).

The policy is sb3-contrib's ``MaskableActorCriticPolicy`` over the architecture-search env's observations
(the one-hot choices so far and the position of the decision at hand), with an output head per kind of
decision (``strategy.ppo.decision_heads``, :func:`head_groups`): a decision's choice distribution is
conditioned on the choices before it through the shared trunk, and no choice index is shared across kinds.
With a single shared head (SB3's default), every decision's logits share one output layer and the policy
learns an action-index habit before it learns choices (docs/benchmarks.md, "Does the policy learn choices?").
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from rlnas_envs.architecture_search import ArchitectureSearchEnv
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import MlpExtractor
from torch import nn

from rlnas.evaluation.base import Evaluation
from rlnas.space.core import Architecture, Decision, EvaluatedPrefixes, SearchSpace
from rlnas.threads import torch_threads


class DecisionExtractor(MlpExtractor):
    """SB3's MLP trunk, except that the actor's latent is the outer product of the trunk's features (and a
    constant 1) with the one-hot head of the decision at hand (``heads[position]``; the position is the
    observation's last ``len(heads)`` entries). The action net, one linear layer over that latent, then holds a
    weight matrix and a bias per head: every head has its own output layer over the shared trunk, which sees
    the choices so far."""

    routing: torch.Tensor

    def __init__(
        self,
        feature_dim: int,
        net_arch: list[int] | dict[str, list[int]],
        activation_fn: type[nn.Module],
        heads: tuple[int, ...],
    ) -> None:
        super().__init__(feature_dim, net_arch, activation_fn, device="cpu")
        self.positions = len(heads)
        routing = torch.zeros(len(heads), max(heads) + 1)
        routing[torch.arange(len(heads)), torch.as_tensor(heads)] = 1.0
        self.register_buffer("routing", routing, persistent=False)  # position -> its head, one-hot
        self.latent_dim_pi = (self.latent_dim_pi + 1) * routing.shape[1]

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.policy_net(features)
        hidden = torch.cat([hidden, torch.ones_like(hidden[:, :1])], dim=1)
        head = features[:, -self.positions :] @ self.routing
        return (head.unsqueeze(2) * hidden.unsqueeze(1)).flatten(1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


def head_groups(space: SearchSpace, heads: str) -> tuple[int, ...]:
    """The output head of each position of the env (its decisions, then the end), for ``strategy.ppo.decision_heads``:
    ``each`` decision its own; ``kind``: one per kind of decision (its role and its choices: every block's
    ``filters`` share one, every cell edge's ``operation`` another), so no choice index is shared across kinds;
    ``shared``, or a space of a single kind: none, SB3's one head for every decision."""
    if heads == "each":
        return tuple(range(len(space) + 1))
    kinds: dict[tuple[str, tuple[Any, ...]], int] = {}
    grouped = [kinds.setdefault((d.role or d.name, tuple(map(repr, d.choices))), len(kinds)) for d in space.decisions]
    if heads == "shared" or len(kinds) == 1:
        return ()
    return (*grouped, len(kinds))  # the end of an episode takes no action: a head of its own


class DecisionPolicy(MaskableActorCriticPolicy):
    """MaskablePPO's policy with output heads per decision or kind of decision (:class:`DecisionExtractor`;
    ``heads=()``: SB3's single head shared by every decision), except that a
    ``planner`` may choose the action of a step (the next action of an architecture picked by screening). The
    rollout then stores that action with its log-probability and value under the current policy, exactly as
    if the policy had sampled it."""

    planner: Any = None

    def __init__(self, *args: Any, heads: tuple[int, ...] = (), positions: int = 0, **kwargs: Any) -> None:
        # set before the parent's __init__ builds the networks; ``positions`` N (checkpoints saved before
        # ``heads``): a head for each of N positions
        self.heads = tuple(heads) or tuple(range(positions))
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        if not self.heads:
            return super()._build_mlp_extractor()
        self.mlp_extractor = DecisionExtractor(self.features_dim, self.net_arch, self.activation_fn, self.heads)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "heads": self.heads}

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False, action_masks: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        action = None if self.planner is None or deterministic else self.planner(action_masks)
        if action is None:
            return super().forward(obs, deterministic, action_masks)
        actions = torch.as_tensor([action], device=obs.device)
        masks = None if action_masks is None else torch.as_tensor(action_masks, device=obs.device)
        values, log_prob, _ = self.evaluate_actions(obs, actions, masks)
        return actions, values, log_prob


class NoEvaluation:
    """The env's evaluator where nothing is evaluated (reading or sampling the policy)."""

    def evaluate(self, arch: Architecture) -> Evaluation:
        return Evaluation(reward=0.0)


# -- reading the policy ----------------------------------------------------------------------------------
def distribution(policy: MaskableActorCriticPolicy, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The policy's masked choice probabilities for a batch of observations."""
    with torch.no_grad():
        dist = policy.get_distribution(torch.as_tensor(obs, dtype=torch.float32), action_masks=masks)
        return dist.distribution.probs.cpu().numpy()  # type: ignore[union-attr,no-any-return]


def walk(
    policy: MaskableActorCriticPolicy, space: SearchSpace, pick: Callable[[Decision, np.ndarray, np.ndarray], int]
) -> tuple[Architecture, float, dict[str, dict[str, float]]]:
    """One episode through the env, each action chosen by ``pick(decision, probabilities, mask)``: its
    architecture, the log10 of its probability under the policy and the choice probabilities on the way."""
    env = ArchitectureSearchEnv(space, evaluator=NoEvaluation())
    obs, _ = env.reset()
    log10_p = 0.0
    table: dict[str, dict[str, float]] = {}
    info: dict[str, Any] = {}
    with torch_threads(1):
        while env.position is not None:
            decision = space.decisions[env.position]
            mask = env.action_masks()
            probs = distribution(policy, obs[None], mask[None])[0]
            table[decision.name] = {str(decision.choices[i]): float(probs[i]) for i in np.flatnonzero(mask)}
            action = pick(decision, probs, mask)
            log10_p += float(np.log10(max(probs[action], 1e-300)))
            obs, _, _, _, info = env.step(action)
    return info["architecture"], log10_p, table


def sample_episodes(
    policy: MaskableActorCriticPolicy,
    space: SearchSpace,
    rng: np.random.Generator,
    episodes: int,
    exclude: EvaluatedPrefixes | None = None,
    on_step: Callable[[int, np.ndarray], None] | None = None,
) -> list[tuple[Architecture, list[int]]]:
    """``episodes`` architectures sampled from the policy in one batch, with their actions;
    ``on_step(position, probabilities)`` sees every step's masked choice probabilities."""
    envs = [ArchitectureSearchEnv(space, evaluator=NoEvaluation(), exclude=exclude) for _ in range(episodes)]
    obs = [env.reset()[0] for env in envs]
    actions: list[list[int]] = [[] for _ in envs]
    archs: list[Architecture | None] = [None] * episodes
    while True:
        live = [i for i, env in enumerate(envs) if env.position is not None]
        if not live:
            break
        masks = np.stack([envs[i].action_masks() for i in live])
        probs = distribution(policy, np.stack([obs[i] for i in live]), masks)
        for row, i in enumerate(live):
            p = np.where(masks[row], probs[row], 0.0)
            p = p / p.sum()
            if on_step is not None:
                on_step(envs[i].position, p)  # type: ignore[arg-type]
            action = int(rng.choice(len(p), p=p))
            actions[i].append(action)
            obs[i], _, _, _, info = envs[i].step(action)
            if "architecture" in info:
                archs[i] = info["architecture"]
    return [(arch, acts) for arch, acts in zip(archs, actions, strict=True) if arch is not None]


def marginals(
    policy: MaskableActorCriticPolicy, space: SearchSpace, rng: np.random.Generator, episodes: int = 64
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per decision: the probability of each choice and the entropy (nats), averaged over ``episodes``
    episodes sampled from the policy (a decision counts in the episodes where it is taken)."""
    sums: dict[int, np.ndarray] = {}
    entropy: dict[int, float] = {}
    counts: dict[int, int] = {}

    def note(position: int, p: np.ndarray) -> None:
        sums[position] = sums.get(position, 0.0) + p
        nonzero = p[p > 0]
        entropy[position] = entropy.get(position, 0.0) - float((nonzero * np.log(nonzero)).sum())
        counts[position] = counts.get(position, 0) + 1

    sample_episodes(policy, space, rng, episodes, on_step=note)
    probabilities: dict[str, dict[str, float]] = {}
    entropies: dict[str, float] = {}
    for position in sorted(sums):
        decision = space.decisions[position]
        mean = sums[position] / counts[position]
        probabilities[decision.name] = {str(c): float(mean[i]) for i, c in enumerate(decision.choices)}
        entropies[decision.name] = entropy[position] / counts[position]
    return probabilities, entropies


class RewardShaper:
    """Maps raw rewards to what PPO learns from, using the rewards of the unique evaluations so far.

    ``rank``: the reward's quantile q among them, as ``2 q**exponent - 1`` in [-1, 1] (robust to outliers
    such as diverged children and to the scale of the objective; an exponent > 1 stresses the very best);
    ``standardize``: (r - mean) / std; ``none``: raw.
    """

    def __init__(self, mode: str, exponent: float = 1.0) -> None:
        self.mode = mode
        self.exponent = exponent
        self.seen: list[float] = []

    def add(self, reward: float) -> None:
        bisect.insort(self.seen, reward)

    def __call__(self, reward: float) -> float:
        if self.mode == "none" or not self.seen:
            return reward
        if self.mode == "rank":
            below = bisect.bisect_left(self.seen, reward)
            ties = bisect.bisect_right(self.seen, reward) - below
            quantile = (below + 0.5 * ties) / len(self.seen)
            return 2.0 * quantile**self.exponent - 1.0
        values = np.asarray(self.seen)
        std = float(values.std())
        return (reward - float(values.mean())) / std if std > 1e-8 else reward - float(values.mean())
