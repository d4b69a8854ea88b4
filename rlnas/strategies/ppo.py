"""The reinforcement-learning controller: sb3-contrib MaskablePPO on the architecture-search env.

The search loop drives MaskablePPO one episode at a time, as SB3's ``learn()`` would (its
``collect_rollouts`` step by step, then ``train()``), with no thread: each ``ask`` runs the policy through
the env's decisions into the rollout buffer and returns the finished architecture, whose env reward is a
placeholder. Within one rollout the policy is fixed, so every episode of a rollout can be sampled before
any of them is evaluated, and the driver may evaluate them in parallel (``--workers N``). The ``ask`` after
a rollout's last episode writes the real rewards (``tell``, in any order) into the terminal steps, computes
the returns and updates the policy; while some are missing it raises WaitForResults. With ``gamma =
gae_lambda = 1`` and a reward only at the end of an episode this is exactly the update a blocking env would
give. The driver, not SB3 timesteps, decides when the search stops.

The policy's own proposals depend only on the seed and on the rewards of earlier rollouts. Screening (a reward
surrogate picks among several policy samples) and elite mutations (proposed beside the policy) use every
result as soon as it is told, so with several workers their picks depend on the order children finish in.
"""

from __future__ import annotations

import logging
from collections import deque
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
from rlnas.errors import ConfigError
from rlnas.evaluation.base import Evaluation
from rlnas.space.core import Architecture, EvaluatedPrefixes
from rlnas.store import TrialRecord
from rlnas.strategies.base import Strategy, StrategyContext, WaitForResults, zero_cost_scorer
from rlnas.strategies.policy import (
    DecisionPolicy,
    NoEvaluation,
    RewardShaper,
    marginals,
    sample_episodes,
    walk,
)
from rlnas.strategies.screening import Screening
from rlnas.threads import torch_threads

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
    """stable-baselines3's metrics (``train/*``, ``time/*``) into the run's TensorBoard at the trial number,
    the x-axis of everything else the search logs (SB3 itself would use environment steps)."""

    def __init__(self, strategy: PPOStrategy) -> None:
        self.strategy = strategy

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        numbers = {
            key: float(value)
            for key, value in key_values.items()
            if isinstance(value, (int, float, np.number))
            and not isinstance(value, bool)
            and "tensorboard" not in (key_excluded.get(key) or ())
        }
        self.strategy.ctx.logger.scalars(numbers, self.strategy.trials_told)

    def close(self) -> None:
        """The run's logger owns the TensorBoard writer."""


class PPOStrategy(Strategy):
    name = "ppo"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.strategy.ppo
        if all(len(d.choices) == 1 for d in self.space.decisions):
            raise ConfigError(
                f"space {self.space.name!r} holds a single architecture (every decision has one choice), so the "
                "PPO controller has nothing to decide; give a decision more choices, or train that one "
                "architecture with --strategy random --budget 1"
            )
        self.cfg = cfg
        self._shaper = RewardShaper(cfg.reward_normalization, cfg.rank_exponent)
        # every architecture evaluated or pending: screening and elite picks never propose one again; with
        # mask_evaluated the policy's own samples are masked away from them too
        self.evaluated = EvaluatedPrefixes(self.space)
        # this rollout: where each episode's last step sits in the buffer, its architecture, the results told
        self.terminal_positions: list[int] = []
        self._rollout: list[Architecture] = []
        self._issued: dict[str, deque[int]] = {}  # arch key -> episodes of this rollout not told yet
        self._results: dict[int, Evaluation] = {}
        self.episodes = 0  # the policy's episodes so far
        self._updates = 0
        self._started = False
        self.env = ArchitectureSearchEnv(
            self.space, evaluator=_Pending(self.evaluated), exclude=self.evaluated if cfg.mask_evaluated else None
        )
        self.episode_steps = sum(1 for d in self.space.decisions if len(d.choices) > 1) or 1
        n_steps = cfg.episodes_per_update * self.episode_steps
        self.model = MaskablePPO(
            DecisionPolicy,
            DummyVecEnv([lambda: self.env]),  # no Monitor: episode rewards arrive after the episode
            learning_rate=cfg.learning_rate,
            n_steps=n_steps,
            batch_size=max(1, n_steps // cfg.minibatches),
            n_epochs=cfg.n_epochs,
            gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
            clip_range=cfg.clip_range,
            ent_coef=cfg.ent_coef,
            vf_coef=cfg.vf_coef,
            max_grad_norm=cfg.max_grad_norm,
            policy_kwargs={"net_arch": list(cfg.net_arch), "positions": (len(self.space) + 1) * cfg.decision_heads},
            seed=ctx.seed,
            device="cpu",
            verbose=0,
        )
        # screening (strategy.ppo.screen_samples > 1): unique evaluations so far, the surrogate fitted on
        # them at the end of each rollout, the actions still to take in this episode
        # strategy.zero_cost_screen: the proxy is a feature of the surrogate, and picks among zero_cost_pool
        # policy samples until the surrogate screens
        self.proxy = zero_cost_scorer(ctx)
        self.screen = Screening(self.space, cfg, ctx.seed, self.proxy)
        self._plan: deque[int] = deque()
        self._plans = 0
        # elite mutations (strategy.ppo.elite_share > 0): proposed beside the policy, told to it as ranks (and
        # with elite_to_policy as episodes of its rollout)
        self._seen: set[str] = set()  # every architecture proposed or told (no elite pick repeats one)
        self._own: dict[str, int] = {}  # elite picks beside the rollout not told yet: arch key -> count
        self._through: set[str] = set()  # elite picks in the rollout not told yet
        self._asked = 0
        self._elite_asked = 0
        self._elite_misses = 0  # elite picks in a row that did not beat it
        if cfg.screen_samples > 1 or (cfg.elite_share > 0 and cfg.elite_to_policy) or self.proxy is not None:
            policy = self.model.policy
            assert isinstance(policy, DecisionPolicy)
            policy.planner = self._next_action
        self.checkpoint = None if ctx.run_dir is None else ctx.run_dir / "controller" / "ppo.zip"
        self.restored = False
        if self.checkpoint is not None and self.checkpoint.exists():
            try:
                self._check_size(self.checkpoint)
                self.model.set_parameters(str(self.checkpoint), device="cpu")
                self.restored = True
                log.info("controller restored from %s", self.checkpoint)
            except Exception as err:  # noqa: BLE001 - a damaged checkpoint must not cost the finished trials
                log.warning(
                    "the controller checkpoint %s cannot be read (%s: %s); the policy starts afresh, every finished "
                    "trial is kept",
                    self.checkpoint,
                    type(err).__name__,
                    err,
                )
        tb_dir = ctx.logger.logdir
        outputs: list[KVWriter] = [] if tb_dir is None else [_PerTrialWriter(self)]
        self.model.set_logger(Logger(folder=None if tb_dir is None else str(tb_dir), output_formats=outputs))
        self.trials_told = 0

    # -- MaskablePPO, one episode at a time ----------------------------------------------------------
    def _start_rollout(self) -> None:
        """What ``learn()`` does before the first rollout and ``collect_rollouts`` at the start of each."""
        model = self.model
        if not self._started:
            model._setup_learn(total_timesteps=2**62, reset_num_timesteps=False)
            self._started = True
        model.policy.set_training_mode(False)
        model.rollout_buffer.reset()
        self.terminal_positions, self._rollout = [], []

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
                self._issued.setdefault(arch.key, deque()).append(len(self._rollout))
                self._rollout.append(arch)
                self.episodes += 1
                return arch
        return None

    def _policy_ask(self) -> Architecture:
        """The policy's next architecture; at a full rollout, PPO's update first (WaitForResults while some
        of the rollout's results are missing)."""
        if not self._started:
            self._start_rollout()
        while True:
            if self.model.rollout_buffer.full:
                if len(self._results) < len(self._rollout):
                    raise WaitForResults("the PPO update needs the evaluations of its rollout")
                self._update()
            arch = self._steps()
            if arch is not None:
                return arch

    def _update(self) -> None:
        """The end of a rollout whose every result is told: the shaped rewards into the terminal steps, the
        returns, PPO's update (``train()``), then the policy logged and the controller saved."""
        model, buffer = self.model, self.model.rollout_buffer
        evaluations = [self._results.pop(i) for i in range(len(self._rollout))]
        for evaluation in evaluations:
            if not evaluation.cached:
                self._shaper.add(float(evaluation.reward))
        for position, evaluation in zip(self.terminal_positions, evaluations, strict=True):
            buffer.rewards[position, 0] = self._shaper(float(evaluation.reward))
        with torch.no_grad():
            last = model.policy.predict_values(obs_as_tensor(model._last_obs, model.device))  # type: ignore[arg-type]
        buffer.compute_returns_and_advantage(last_values=last, dones=model._last_episode_starts)  # type: ignore[arg-type]
        self._updates += 1
        model._update_current_progress_remaining(model.num_timesteps, model._total_timesteps)
        model.dump_logs(self._updates)
        model.train()
        self._start_rollout()
        self.after_update(self._updates)

    def after_update(self, updates: int) -> None:
        if self.ctx.logger.enabled:
            arch, log10_p, _ = self._policy_mode()
            rng = np.random.default_rng([self.ctx.seed, updates])
            probabilities, entropies = marginals(self.model.policy, self.space, rng)
            self.ctx.logger.policy(self.trials_told, probabilities, entropies, log10_p)
            log.debug("update %d: most probable architecture 10^%.2f %s", updates, log10_p, arch.describe())
        self.save()

    # -- strategy interface ------------------------------------------------------------------------
    def ask(self) -> Architecture:
        with torch_threads(1):  # the policy's tensors are tiny
            return self._ask()

    def _ask(self) -> Architecture:
        arch = self._elite_ask(self.cfg.elite_to_policy) if self._elite_due() else None
        if arch is None:
            try:
                arch = self._policy_ask()
            except WaitForResults:
                # the update waits for its rollout's last children: a free worker gets an elite pick instead of
                # idling (it counts in the share, so later picks wait for the policy to catch up)
                arch = self._elite_ask(through=False) if self._elite_started() else None
                if arch is None:
                    raise
        self._asked += 1
        self._seen.add(arch.key)
        return arch

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        self.trials_told += 1
        own = self._own.get(arch.key, 0)
        if not evaluation.cached:  # screening uses every result as soon as it is told
            reward = float(evaluation.reward)
            if self.screen.add(arch, reward):
                self._elite_misses = 0
            elif own or arch.key in self._through:
                self._elite_misses += 1
        self._through.discard(arch.key)
        if own:  # an elite pick: it counts in the reward ranks, not in a PPO update
            if own == 1:
                del self._own[arch.key]
            else:
                self._own[arch.key] = own - 1
            if not evaluation.cached:
                self._shaper.add(float(evaluation.reward))
            return
        episodes = self._issued.get(arch.key)
        if not episodes:
            raise RuntimeError(f"the PPO controller did not propose {arch.key} (or it was told already)")
        self._results[episodes.popleft()] = evaluation
        if not episodes:
            del self._issued[arch.key]

    def _check_size(self, checkpoint: Path) -> None:
        """Refuse, before unpacking, a checkpoint that unpacks to far more than this policy's weights and
        optimizer state (a zip bomb, or a file from another program)."""
        import zipfile

        weights = sum(p.numel() * p.element_size() for p in self.model.policy.parameters())
        limit = 4 * weights + (16 << 20)
        with zipfile.ZipFile(checkpoint) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
        if unpacked > limit:
            raise ValueError(f"it unpacks to {unpacked:,} bytes, more than this controller holds ({limit:,})")

    def warm_start(self, records: list[TrialRecord]) -> None:
        """After a resume: the policy comes from the checkpoint; reward ranks and masks from the trials."""
        if records and not self.restored and self.checkpoint is not None and not self.checkpoint.exists():
            log.warning(
                "the controller checkpoint %s is missing: the policy starts afresh (the %d finished trials are "
                "kept and still count)",
                self.checkpoint,
                len(records),
            )
        for record in records:
            self._shaper.add(float(record.reward))
            self.screen.add(record.architecture, float(record.reward))
            self._seen.add(record.architecture.key)
            self.evaluated.add(record.architecture)
        self.trials_told = len(records)

    def policy_mode(self) -> tuple[Architecture, float, dict[str, dict[str, float]]]:
        """The controller's most probable architecture, the log10 of its probability, and the choice
        probabilities of every decision along it."""
        return self._policy_mode()

    def _policy_mode(self) -> tuple[Architecture, float, dict[str, dict[str, float]]]:
        return walk(self.model.policy, self.space, lambda d, probs, mask: int(np.argmax(np.where(mask, probs, -1.0))))

    def path_probabilities(self, arch: Architecture) -> dict[str, dict[str, float]]:
        """The policy's choice probabilities at each decision ``arch`` takes, after its earlier choices."""
        return walk(self.model.policy, self.space, lambda d, probs, mask: d.choices.index(arch[d.name]))[2]

    def _next_action(self, masks: np.ndarray | None) -> int | None:
        """The policy's planner: at the start of an episode, sample
        ``screen_samples`` architectures from the policy and keep the one the surrogate rates best (mean +
        ``screen_ucb`` x spread, ``stall_ucb`` while the best stalls); then its actions, one per step. Before
        the surrogate is ready, with ``strategy.zero_cost_screen``: the best of ``zero_cost_pool`` samples by
        that proxy. None: let the policy sample."""
        cfg = self.cfg
        if not self._plan:
            surrogate = cfg.screen_samples > 1 and self.screen.ready
            if not surrogate and self.proxy is None:
                return None
            rng = np.random.default_rng([self.ctx.seed, 0x5C4EE7, self._plans])
            self._plans += 1
            count = cfg.screen_samples if surrogate else self.ctx.config.strategy.zero_cost_pool
            found = {
                a.key: (a, acts)
                for a, acts in sample_episodes(self.model.policy, self.space, rng, count, self.evaluated)
            }
            if not found:
                return None
            candidates = list(found.values())
            archs = [a for a, _ in candidates]
            if surrogate:
                pick = self.screen.best_of(archs, self.screen.policy_ucb())
            else:
                assert self.proxy is not None
                pick = max(range(len(archs)), key=lambda i: self.proxy(archs[i]))  # type: ignore[misc]
            self._plan.extend(candidates[pick][1])
        action = self._plan.popleft()
        if masks is not None and not np.asarray(masks).reshape(-1)[action]:
            self._plan.clear()  # the masks changed under the plan: let the policy sample this episode
            return None
        return action

    def _elite_started(self) -> bool:
        return self.cfg.elite_share > 0 and self.screen.ready

    def _elite_due(self) -> bool:
        patient = self.cfg.elite_patience == 0 or self._elite_misses < self.cfg.elite_patience
        return self._elite_started() and patient and self._elite_asked < self.cfg.elite_share * (self._asked + 1)

    def _elite_ask(self, through: bool) -> Architecture | None:
        """An elite pick; with ``through`` (``elite_to_policy``) as the policy's next episode (its actions
        planned, so the rollout holds them with their log-probabilities under the policy) when the rollout can
        take the whole episode now, else beside the rollout."""
        pick = self.screen.elite_pick(self._seen, self._elite_asked)
        if pick is None:
            return None
        self._elite_asked += 1
        log.debug("elite mutation %d: %s", self._elite_asked, pick.describe())
        actions = self._actions_of(pick) if through else []
        if actions and self._rollout_takes(len(actions)):
            self._plan.extend(actions)
            self._through.add(pick.key)
            arch = self._policy_ask()
            if arch.key != pick.key:  # cannot happen (the pick is new, so the masks allow it); log it if it does
                log.warning("elite pick %s left the rollout's plan; the policy sampled %s", pick.key, arch.key)
                self._through.discard(pick.key)
            return arch
        self._own[pick.key] = self._own.get(pick.key, 0) + 1
        self.evaluated.add(pick)  # the policy's masks (and screening) treat it as evaluated
        return pick

    def _rollout_takes(self, steps: int) -> bool:
        """Whether the policy's next episode could be ``steps`` planned steps now without waiting: between
        episodes, and either room left for them in the buffer or every result of this rollout told (so the
        update an episode across two rollouts needs can run at once, as for the policy's own episodes)."""
        buffer = self.model.rollout_buffer
        if not self._started or self._plan or not bool(self.model._last_episode_starts[0]):  # type: ignore[index]
            return False
        return len(self._results) == len(self._rollout) or buffer.buffer_size - buffer.pos >= steps

    def _actions_of(self, arch: Architecture) -> list[int]:
        """The env's actions that build ``arch``."""
        env = ArchitectureSearchEnv(self.space, evaluator=NoEvaluation())
        env.reset()
        actions: list[int] = []
        while env.position is not None:
            decision = self.space.decisions[env.position]
            actions.append(decision.choices.index(arch[decision.name]))
            env.step(actions[-1])
        return actions

    def save(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            atomic.save_with(self.checkpoint, lambda fh: self.model.save(fh))  # type: ignore[arg-type]

    def close(self) -> None:
        self.save()
        self.model.logger.close()
