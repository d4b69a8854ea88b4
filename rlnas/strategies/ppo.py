"""The reinforcement-learning controller: sb3-contrib MaskablePPO on the architecture-search env, and around
it the proposal pipeline, three small pieces a reader can follow one at a time:

* the policy (:mod:`rlnas.strategies.policy`), driven one episode per proposal from ask/tell
  (:class:`~rlnas.strategies.rollout.StepwisePPO`), its rewards shaped to ranks;
* screening (:mod:`rlnas.strategies.screening`): a reward surrogate picks, among ``screen_samples`` policy
  samples, the one to evaluate; the policy's rollout holds the pick as its own episode (a planner chooses its
  actions, stored with their log-probabilities under the policy);
* local moves around the elite (:mod:`rlnas.strategies.elite`): a share of the evaluations goes to the
  surrogate's pick among one-decision mutations of the best so far, as an episode of the rollout when it can
  take one (``elite_to_policy``), else beside it.

The driver, not SB3 timesteps, decides when the search stops. The policy's own proposals depend only on the
seed and on the rewards of earlier rollouts. Screening and elite picks use every result as soon as it is told,
so with several workers their picks depend on the order children finish in.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from rlnas.errors import ConfigError
from rlnas.evaluation.base import Evaluation
from rlnas.space.core import Architecture, EvaluatedPrefixes
from rlnas.store import TrialRecord
from rlnas.strategies.base import Strategy, StrategyContext, WaitForResults, zero_cost_scorer
from rlnas.strategies.elite import ElitePicks
from rlnas.strategies.imagination import imagined_update, imitation_update
from rlnas.strategies.policy import marginals, sample_episodes, walk
from rlnas.strategies.rollout import StepwisePPO, actions_of
from rlnas.strategies.screening import Screening
from rlnas.threads import torch_threads

log = logging.getLogger(__name__)


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
        self.trials_told = 0
        # every architecture evaluated or pending: screening and elite picks never propose one again; with
        # mask_evaluated the policy's own samples are masked away from them too
        self.evaluated = EvaluatedPrefixes(self.space)
        self.rollout = StepwisePPO(self.space, cfg, ctx.seed, self.evaluated, self.after_update)
        # screening (screen_samples > 1): the surrogate fitted on the unique evaluations so far; with
        # strategy.zero_cost_screen the proxy is a feature of the surrogate, and picks among zero_cost_pool
        # policy samples until the surrogate screens
        self.proxy = zero_cost_scorer(ctx)
        self.screen = Screening(self.space, cfg, ctx.seed, self.proxy)
        self._plan: deque[int] = deque()  # the actions still to take in this episode
        self._plans = 0
        self.elite = ElitePicks(cfg, self.screen)
        if cfg.screen_samples > 1 or (cfg.elite_share > 0 and cfg.elite_to_policy) or self.proxy is not None:
            self.rollout.policy.planner = self._next_action
        self.checkpoint = None if ctx.run_dir is None else ctx.run_dir / "controller" / "ppo.zip"
        self.restored = (
            self.checkpoint is not None and self.checkpoint.exists() and self.rollout.restore(self.checkpoint)
        )
        self.rollout.log_to(ctx.logger.logdir, lambda numbers: ctx.logger.scalars(numbers, self.trials_told))

    def after_update(self, updates: int) -> None:
        """After each PPO update: an imagined update (``imagined_episodes``), then the policy logged
        (TensorBoard's choice probabilities) and saved."""
        if self.cfg.imagined_episodes:
            rng = np.random.default_rng([self.ctx.seed, 0x1DEA, updates])
            imagined_update(self.rollout.policy, self.space, self.screen, self.cfg, rng)
        if self.cfg.imitate_top and not self.screen.stalled():  # a stalled search explores instead
            imitation_update(self.rollout.policy, self.space, self.screen.history, self.cfg)
        if self.ctx.logger.enabled:
            arch, log10_p, _ = self._policy_mode()
            rng = np.random.default_rng([self.ctx.seed, updates])
            probabilities, entropies = marginals(self.rollout.policy, self.space, rng)
            self.ctx.logger.policy(self.trials_told, probabilities, entropies, log10_p)
            log.debug("update %d: most probable architecture 10^%.2f %s", updates, log10_p, arch.describe())
        self.save()

    # -- strategy interface ------------------------------------------------------------------------
    def ask(self) -> Architecture:
        with torch_threads(1):  # the policy's tensors are tiny
            return self._ask()

    def _ask(self) -> Architecture:
        arch = self._elite_ask(self.cfg.elite_to_policy) if self.elite.due() else None
        if arch is None:
            try:
                arch = self.rollout.next_episode()
            except WaitForResults:
                # the update waits for its rollout's last children: a free worker gets an elite pick instead of
                # idling (it counts in the share, so later picks wait for the policy to catch up)
                arch = self._elite_ask(through=False) if self.elite.started() else None
                if arch is None:
                    raise
        self.elite.proposed(arch)
        return arch

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        self.trials_told += 1
        # screening uses every new result as soon as it is told
        beat_best = None if evaluation.cached else self.screen.add(arch, float(evaluation.reward))
        if self.elite.told(arch, beat_best):  # a pick beside the rollout: in the reward ranks, not in an update
            if not evaluation.cached:
                self.rollout.shaper.add(float(evaluation.reward))
            return
        self.rollout.tell(arch, evaluation)

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
            self.rollout.shaper.add(float(record.reward))
            self.screen.add(record.architecture, float(record.reward))
            self.elite.seen.add(record.architecture.key)
            self.evaluated.add(record.architecture)
        self.trials_told = len(records)

    def _policy_mode(self) -> tuple[Architecture, float, dict[str, dict[str, float]]]:
        """The controller's most probable architecture, the log10 of its probability, and the choice
        probabilities of every decision along it."""
        return walk(self.rollout.policy, self.space, lambda d, probs, mask: int(np.argmax(np.where(mask, probs, -1.0))))

    def path_probabilities(self, arch: Architecture) -> dict[str, dict[str, float]]:
        """The policy's choice probabilities at each decision ``arch`` takes, after its earlier choices."""
        return walk(self.rollout.policy, self.space, lambda d, probs, mask: d.choices.index(arch[d.name]))[2]

    # -- the proposal pipeline ---------------------------------------------------------------------
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
                for a, acts in sample_episodes(self.rollout.policy, self.space, rng, count, self.evaluated)
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

    def _elite_ask(self, through: bool) -> Architecture | None:
        """An elite pick; with ``through`` (``elite_to_policy``) as the policy's next episode (its actions
        planned, so the rollout holds them with their log-probabilities under the policy) when the rollout can
        take the whole episode now, else beside the rollout."""
        pick = self.elite.pick()
        if pick is None:
            return None
        log.debug("elite mutation %d: %s", self.elite.picked, pick.describe())
        actions = actions_of(self.space, pick) if through else []
        if actions and not self._plan and self.rollout.takes(len(actions)):
            self._plan.extend(actions)
            self.elite.through.add(pick.key)
            arch = self.rollout.next_episode()
            if arch.key != pick.key:  # cannot happen (the pick is new, so the masks allow it); log it if it does
                log.warning("elite pick %s left the rollout's plan; the policy sampled %s", pick.key, arch.key)
                self.elite.through.discard(pick.key)
            return arch
        self.elite.beside[pick.key] = self.elite.beside.get(pick.key, 0) + 1
        self.evaluated.add(pick)  # the policy's masks (and screening) treat it as evaluated
        return pick

    def save(self) -> None:
        if self.checkpoint is not None:
            self.rollout.save(self.checkpoint)

    def close(self) -> None:
        self.save()
        self.rollout.close()
