"""The ``strategy`` section: which search strategy, and the settings of each."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rlnas.config.base import Width, _Section

# Former strategy.ppo settings, fixed at their natural values (the plain PPO update of SB3's defaults on
# whole-episode returns; the elite's mutations start from the best architecture; the reward surrogate's
# size): none earned its place (docs/benchmarks.md, "Does each controller setting earn its place?"). A
# config that names one at its fixed value still loads (a stored run's config.yaml names them all).
PPO_FIXED: dict[str, Any] = {
    "minibatches": 1,  # one minibatch: the whole rollout
    "gamma": 1.0,  # the only reward comes at the end of an episode
    "gae_lambda": 1.0,  # advantages are the returns minus the value
    "vf_coef": 0.5,  # SB3's default
    "max_grad_norm": 0.5,  # SB3's default
    "elite_parents": 1,
    "surrogate_hidden": [64],
    "surrogate_steps": 100,
}


class PPOConfig(_Section):
    """MaskablePPO settings. A rollout holds ``episodes_per_update`` x (longest episode) steps, so every
    update sees at least ``episodes_per_update`` whole architectures (an episode cut at the end of a rollout
    is bootstrapped by the value function)."""

    @model_validator(mode="before")
    @classmethod
    def _former_settings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for key, fixed in PPO_FIXED.items():
            if key in data and data[key] != fixed:
                raise ValueError(
                    f"strategy.ppo.{key} is no longer a setting: it is fixed at {fixed!r} (it did not earn its place, "
                    f"docs/benchmarks.md); remove it from the config (got {data[key]!r})"
                )
        if isinstance(data.get("decision_heads"), bool):  # before 'kind': true was 'each', false 'shared'
            data = {**data, "decision_heads": "each" if data["decision_heads"] else "shared"}
        return {key: value for key, value in data.items() if key not in PPO_FIXED}

    learning_rate: float = Field(3e-3, gt=0.0)
    episodes_per_update: int = Field(8, ge=1, le=4096)
    n_epochs: int = Field(6, ge=1, le=1000)
    clip_range: float = Field(0.3, gt=0.0)
    ent_coef: float = Field(0.01, ge=0.0)
    net_arch: list[Width] = Field(default_factory=lambda: [64], max_length=8)
    # The policy's output heads: one per kind of decision (its role and choices: every block's filters share
    # one, every cell edge's operation another; a space of one kind has SB3's single head), one per decision
    # (each), or SB3's single head for every decision (shared), which learns an action-index habit across kinds
    # (docs/benchmarks.md, "Does the policy learn choices?"). true / false: each / shared.
    decision_heads: Literal["shared", "kind", "each"] = "kind"
    reward_normalization: Literal["rank", "standardize", "none"] = "rank"
    rank_exponent: float = Field(3.0, gt=0.0)
    mask_evaluated: bool = True  # mask choices whose every completion was already evaluated
    # Screening: the policy samples screen_samples architectures per evaluation and a surrogate of the reward
    # (an ensemble of small MLPs on the encoding, refit on the rewards told so far) picks the
    # one to evaluate, by mean + screen_ucb x spread of the ensemble; 1 = evaluate every policy sample.
    # The surrogate fits the rank quantiles of every reward told so far, refit after each new one at first.
    screen_samples: int = Field(16, ge=1, le=4096)
    screen_ucb: float = Field(2.0, ge=0.0)
    screen_after: int = Field(8, ge=2)  # unique evaluations before the surrogate starts screening
    surrogate_members: int = Field(5, ge=1, le=64)
    # Elite mutations: this share of all evaluations goes to the surrogate's pick among screen_samples
    # one-decision mutations of the best architecture so far (from screen_after results on, the
    # picks first catch up with the share, then alternate with the policy's samples). They are proposed
    # beside the policy: their rewards feed the surrogate, the reward ranks and the masks; with
    # elite_to_policy also a PPO update (the pick is an episode of the policy's rollout, as a screened sample
    # is, whenever the rollout is between episodes). 0 = every evaluation is a policy sample.
    elite_share: float = Field(0.5, ge=0.0, lt=1.0)
    elite_patience: int = Field(2, ge=0)  # pause after this many picks in a row miss the best; 0 = never
    elite_ucb: float = Field(2.0, ge=0.0)  # the elite pick: surrogate mean + elite_ucb x spread
    elite_to_policy: bool = True  # PPO also learns from the elite picks (off: only their ranks count)
    # The policy's screen bonus once the search stalls: the best reward has not improved for more than
    # stall_ratio x the results it took to find it (screen_after at least: the results before screening are
    # not guided); None = screen_ucb throughout.
    stall_ucb: float | None = Field(4.0, ge=0.0)
    stall_ratio: float = Field(0.5, gt=0.0)
    # Imagined updates (Dyna): after each PPO update, one more on this many episodes sampled from the policy
    # and rewarded with the rank the surrogate predicts for them (from screen_after results on); 0 = off.
    imagined_episodes: int = Field(0, ge=0, le=4096)
    # Imitation of the best (priority-queue training): after each PPO update, n_epochs steps of maximum
    # likelihood on the best imitate_top share of the results so far (at least two), paused while the search
    # stalls (stall_ratio); 0 = off. 0.02 lifts the policy alone (screen_samples=1, elite_share=0) to TPE's
    # level on NAS-Bench-201; with screening and elite picks it does not help (docs/benchmarks.md).
    imitate_top: float = Field(0.0, ge=0.0, le=1.0)


class EvolutionConfig(_Section):
    """Regularized (aging) evolution; ``crossover: true`` makes it a genetic algorithm."""

    population_size: int = Field(20, ge=2)
    sample_size: int = Field(5, ge=1)
    crossover: bool = False


class BayesianConfig(_Section):
    """Optuna Bayesian optimization over the same space (conditional decisions are asked only when active)."""

    sampler: Literal["tpe", "gp"] = "tpe"
    n_startup: int = Field(10, ge=1)
    random_fraction: float = Field(0.3, gt=0.0, lt=1.0)  # random-then-bayesian: share of the budget


class HyperbandConfig(_Section):
    """Hyperband over the training epochs: fidelity = fraction of training.epochs."""

    eta: int = Field(3, ge=2)
    min_fidelity: float = Field(1 / 9, gt=0.0, le=1.0)


class ParetoConfig(_Section):
    """NSGA-II over (validation accuracy, complexity); complexity is objective.complexity."""

    population_size: int = Field(20, ge=2)


class PredictorConfig(_Section):
    """A neural performance predictor (MLP on the one-hot encoding) picks which candidate to evaluate."""

    initial: int = Field(10, ge=2)
    candidates: int = Field(200, ge=1, le=100_000)
    hidden: list[Width] = Field(default_factory=lambda: [64], max_length=8)
    train_steps: int = Field(100, ge=1, le=100_000)
    refit_every: int = Field(5, ge=1)  # evaluations between refits of the predictor


class DartsConfig(_Section):
    """Gradient-based search on the supernet (needs evaluation: oneshot): architecture logits per decision,
    updated on validation batches between weight steps, one Gumbel-softmax path per step (GDAS)."""

    arch_learning_rate: float = Field(3e-3, gt=0.0)
    arch_weight_decay: float = Field(1e-3, ge=0.0)
    steps_per_ask: int = Field(20, ge=1)  # bilevel steps (architecture, then weights) before each proposal
    tau_max: float = Field(10.0, gt=0.0)  # Gumbel-softmax temperature at the start ...
    tau_min: float = Field(0.1, gt=0.0)  # ... and at the end of the budget (linear)


class StrategyConfig(_Section):
    name: Literal[
        "ppo",
        "random",
        "evolution",
        "genetic",
        "bayesian",
        "random-then-bayesian",
        "hyperband",
        "pareto",
        "predictor",
        "darts",
    ] = "ppo"
    # random search and evolution (its first population and its mutations): draw zero_cost_pool candidates and
    # propose the one this zero-cost proxy rates best; ppo: the best of zero_cost_pool policy samples until its
    # surrogate screens, and the proxy as a feature of the surrogate (off: null; rlnas proxies tells whether
    # one ranks a space)
    zero_cost_screen: Literal["synflow", "naswot", "grad_norm", "snip", "params", "flops"] | None = None
    zero_cost_pool: int = Field(8, ge=2, le=1000)
    ppo: PPOConfig = PPOConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    bayesian: BayesianConfig = BayesianConfig()
    hyperband: HyperbandConfig = HyperbandConfig()
    pareto: ParetoConfig = ParetoConfig()
    predictor: PredictorConfig = PredictorConfig()
    darts: DartsConfig = DartsConfig()
