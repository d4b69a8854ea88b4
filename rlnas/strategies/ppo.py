"""The reinforcement-learning controller: sb3-contrib MaskablePPO on the architecture-search env.

SB3's ``learn()`` runs in a worker thread; the env's evaluator is a bridge that hands each finished
architecture to the driver (``ask``) and waits for its evaluation (``tell``). So PPO uses the same
search loop, budget, cache, store and logging as every other strategy, and the driver, not SB3
timesteps, decides when the search stops. The two threads never run at the same time: every hand-off
blocks one side, which keeps runs deterministic for a given seed.
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
from typing import Any

import numpy as np
import torch
from rlnas_envs.architecture_search import ArchitectureSearchEnv
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger, TensorBoardOutputFormat
from stable_baselines3.common.monitor import Monitor

from rlnas.evaluation.base import Evaluation
from rlnas.space.core import Architecture, EvaluatedPrefixes
from rlnas.store import TrialRecord
from rlnas.strategies.base import Strategy, StrategyContext, StrategyExhausted

log = logging.getLogger(__name__)

_STOP = object()


class _StopLearning(Exception):
    """Raised inside the env to end ``learn()`` when the driver closes the strategy."""


class _Bridge:
    """The env's evaluator in the PPO thread: hands the architecture over and waits for the reward."""

    def __init__(self) -> None:
        self.proposals: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.results: queue.Queue[Any] = queue.Queue()
        # held by the PPO thread while it computes; released while it waits for an evaluation
        self.busy = threading.RLock()

    def evaluate(self, arch: Architecture) -> Evaluation:
        self.busy.release()
        try:
            self.proposals.put(("ask", arch))
            result = self.results.get()
        finally:
            self.busy.acquire()
        if result is _STOP:
            raise _StopLearning
        return result  # type: ignore[no-any-return]


class _NoEvaluation:
    def evaluate(self, arch: Architecture) -> Evaluation:
        return Evaluation(reward=0.0)


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


class _AfterUpdate(BaseCallback):
    """After each PPO update: log the policy and checkpoint the controller."""

    def __init__(self, strategy: PPOStrategy) -> None:
        super().__init__()
        self.strategy = strategy
        self.updates = 0

    def _on_rollout_start(self) -> None:
        if self.num_timesteps > 0:
            self.updates += 1
            self.strategy.after_update(self.updates)

    def _on_step(self) -> bool:
        return True


class PPOStrategy(Strategy):
    name = "ppo"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.strategy.ppo
        self.cfg = cfg
        self._bridge = _Bridge()
        self._shaper = RewardShaper(cfg.reward_normalization, cfg.rank_exponent)
        self.evaluated = EvaluatedPrefixes(self.space) if cfg.mask_evaluated else None
        self.env = ArchitectureSearchEnv(self.space, evaluator=self._bridge, exclude=self.evaluated)
        self.episode_steps = sum(1 for d in self.space.decisions if len(d.choices) > 1) or 1
        n_steps = cfg.episodes_per_update * self.episode_steps
        self.model = MaskablePPO(
            "MlpPolicy",
            Monitor(self.env),
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
            policy_kwargs={"net_arch": list(cfg.net_arch)},
            seed=ctx.seed,
            device="cpu",
            verbose=0,
        )
        self.checkpoint = None if ctx.run_dir is None else ctx.run_dir / "controller" / "ppo.zip"
        if self.checkpoint is not None and self.checkpoint.exists():
            self.model.set_parameters(str(self.checkpoint), device="cpu")
            log.info("controller restored from %s", self.checkpoint)
        tb_dir = ctx.logger.logdir
        outputs: list[KVWriter] = [] if tb_dir is None else [TensorBoardOutputFormat(str(tb_dir))]
        self.model.set_logger(Logger(folder=None if tb_dir is None else str(tb_dir), output_formats=outputs))
        self._thread: threading.Thread | None = None
        self.trials_told = 0

    # -- the PPO thread ----------------------------------------------------------------------------
    def _learn(self) -> None:
        with self._bridge.busy:
            try:
                self.model.learn(total_timesteps=2**62, callback=_AfterUpdate(self), reset_num_timesteps=False)
            except _StopLearning:
                message: tuple[str, Any] = ("stopped", None)
            except BaseException as err:  # noqa: BLE001 - handed to the driver's thread, which re-raises
                message = ("error", err)
            else:
                message = ("stopped", None)
        self._bridge.proposals.put(message)

    def after_update(self, updates: int) -> None:
        arch, probability, table = self.policy_mode()
        self.ctx.logger.policy(self.trials_told, table, probability)
        log.debug("update %d: mode architecture p=%.3f %s", updates, probability, arch.describe())
        self.save()

    # -- strategy interface ------------------------------------------------------------------------
    def ask(self) -> Architecture:
        if self._thread is None:
            self._thread = threading.Thread(target=self._learn, name="rlnas-ppo", daemon=True)
            self._thread.start()
        kind, payload = self._bridge.proposals.get()
        if kind == "error":
            raise RuntimeError(f"the PPO controller failed: {payload!r}") from payload
        if kind != "ask":
            raise StrategyExhausted("the PPO controller stopped")
        return payload  # type: ignore[no-any-return]

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        self.trials_told += 1
        reward = float(evaluation.reward)
        if not evaluation.cached:
            self._shaper.add(reward)
        if self.evaluated is not None:
            self.evaluated.add(arch)
        reward = self._shaper(reward)
        self._bridge.results.put(Evaluation(reward, evaluation.status, evaluation.metrics, evaluation.error))

    def warm_start(self, records: list[TrialRecord]) -> None:
        """After a resume: the policy comes from the checkpoint; reward ranks and masks from the trials."""
        for record in records:
            self._shaper.add(float(record.reward))
            if self.evaluated is not None:
                self.evaluated.add(record.architecture)
        self.trials_told = len(records)

    def policy_mode(self) -> tuple[Architecture, float, dict[str, dict[str, float]]]:
        """The controller's most probable architecture, its probability, and the choice probabilities
        of every decision along it. Waits until the PPO thread is idle."""
        with self._bridge.busy:
            return self._policy_mode()

    def _policy_mode(self) -> tuple[Architecture, float, dict[str, dict[str, float]]]:
        env = ArchitectureSearchEnv(self.space, evaluator=_NoEvaluation())
        obs, _ = env.reset()
        probability = 1.0
        table: dict[str, dict[str, float]] = {}
        info: dict[str, Any] = {}
        while env.position is not None:
            decision = self.space.decisions[env.position]
            mask = env.action_masks()
            with torch.no_grad():
                obs_t = torch.as_tensor(obs[None], dtype=torch.float32)
                dist = self.model.policy.get_distribution(obs_t, action_masks=mask[None])
                probs = dist.distribution.probs[0].cpu().numpy()  # type: ignore[union-attr]
            table[decision.name] = {str(decision.choices[i]): float(probs[i]) for i in np.flatnonzero(mask)}
            action = int(np.argmax(np.where(mask, probs, -1.0)))
            probability *= float(probs[action])
            obs, _, _, _, info = env.step(action)
        return info["architecture"], probability, table

    def save(self) -> None:
        if self.checkpoint is not None:
            with self._bridge.busy:
                self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
                self.model.save(str(self.checkpoint))

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._bridge.results.put(_STOP)
            self._thread.join(timeout=60)
        self._thread = None
        self.save()
        self.model.logger.close()
