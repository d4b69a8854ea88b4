"""Typed run configuration: YAML + ``--set key.path=value`` overrides, validated at load time.

Unknown keys and bad values fail with the key path, the bad value and what is allowed. YAML is parsed
with ``yaml.safe_load``; user text is never evaluated.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rlnas.errors import ConfigError
from rlnas.shipped import find_config
from rlnas.space.spec import SpaceSpec, builtin_space


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "folder", "arrays", "csv", "memory")
TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar10")
USER_DATASETS = ("folder", "arrays", "csv")  # read from dataset.path
MAX_SEED = 2**32 - 1  # what numpy and torch take as a seed everywhere
MAX_IMAGE_SIZE = 4096  # pixels per side
Width = Annotated[int, Field(ge=1, le=4096)]  # units of a hidden layer of the controller or a surrogate
Augment = Literal["none", "shift", "crop", "flip", "crop_flip"]


class DatasetConfig(_Section):
    """Which data, and how it is split. ``memory`` marks arrays handed over from Python (``rlnas.search``)."""

    name: Literal["digits", "mnist", "fashion_mnist", "cifar10", "folder", "arrays", "csv", "memory"] = "digits"
    path: str | None = None  # folder / arrays (.npz) / csv: where the data are
    data_dir: str | None = None  # mnist / fashion_mnist / cifar10: torchvision's layout (default: data)
    download: bool = False
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = Field(0, ge=0, le=MAX_SEED)
    image_size: int | list[int] | None = None  # folder: resize every image (int: square, [height, width])
    channels: Literal["auto", "grayscale", "rgb"] = "auto"  # folder: auto = grayscale if every image is
    skip_corrupt: bool = False  # folder: leave unreadable images out (counted in a warning) instead of failing
    cache_dir: str | None = None  # folder: decoded-image cache (default ~/.cache/rlnas or $RLNAS_CACHE_DIR)
    target: str = "target"  # csv: the column to predict
    task: Literal["auto", "classification", "regression"] = "auto"  # csv / arrays
    layout: Literal["auto", "nhwc", "nchw"] = "auto"  # arrays: where the channels of 4-D images are
    class_names: list[str] | None = None  # arrays: a name per class index

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        """Stored absolute, so that resume and export find the data from any working directory."""
        return None if value is None else str(Path(value).expanduser().absolute())

    @model_validator(mode="after")
    def _where_the_data_are(self) -> DatasetConfig:
        name = self.name
        if (
            self.data_dir is not None
            and name not in TORCHVISION_DATASETS
            and not (
                name == "digits" and self.data_dir == "data"  # the old default, in configs of earlier runs
            )
        ):
            fix = "set dataset.path instead" if name in USER_DATASETS else "remove it"
            raise ValueError(
                f"data_dir={self.data_dir!r} is not read by dataset {name!r} (only {', '.join(TORCHVISION_DATASETS)} "
                f"read it); {fix}"
            )
        if name in USER_DATASETS and not self.path:
            what = {"folder": "a folder of class subfolders", "arrays": "an .npz file", "csv": "a .csv file"}[name]
            raise ValueError(f"dataset {name!r} needs dataset.path: {what}")
        if self.path is not None and name not in USER_DATASETS:
            raise ValueError(
                f"path={self.path!r} is not read by dataset {name!r}; use dataset.name folder, arrays or csv"
            )
        sizes = (
            self.image_size
            if isinstance(self.image_size, list)
            else []
            if self.image_size is None
            else [self.image_size]
        )
        if isinstance(self.image_size, list) and len(self.image_size) != 2:
            raise ValueError(f"image_size={self.image_size} must be one positive size or [height, width]")
        if not all(1 <= size <= MAX_IMAGE_SIZE for size in sizes):
            raise ValueError(f"image_size={self.image_size}: sizes from 1 to {MAX_IMAGE_SIZE} pixels")
        return self


class TrainingConfig(_Section):
    """How each child is trained during the search (the proxy fidelity)."""

    epochs: int = Field(5, ge=1)
    data_fraction: float = Field(1.0, gt=0.0, le=1.0)
    batch_size: int = Field(64, ge=1, le=1 << 16)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    max_minutes_per_child: float | None = Field(None, gt=0.0)
    augment: Augment = "none"  # shift: +-2 px translations; crop: +-H/8 (padded random crop); flip; crop_flip
    erasing: float = Field(0.0, ge=0.0, le=1.0)  # random erasing (cutout): probability per image, after augment
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)  # classification: cross-entropy with smoothed targets
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"  # learning rate over the steps
    warmup_epochs: float = Field(0.0, ge=0.0)  # linear warm-up from lr/25 (cosine and constant schedules)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast and channels-last on CUDA, fp32 else
    # k > 1: score every child by k-fold cross-validation on train+validation (the mean of the k fold
    # scores), for small tables where one validation split of a few dozen rows ties most children
    cv_folds: int = Field(1, ge=1, le=20)
    # zero-cost proxies of every child, computed on one seeded minibatch before its training and stored with its
    # trial as metrics zero_cost_<name> (rlnas proxies measures how well each ranks a space)
    zero_cost: list[Literal["synflow", "naswot", "grad_norm", "snip", "params", "flops"]] = []

    @model_validator(mode="after")
    def _warmup_within_training(self) -> TrainingConfig:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs={self.warmup_epochs:g} is not below epochs={self.epochs}: the learning rate would "
                "never leave its warm-up; lower training.warmup_epochs"
            )
        return self


class ObjectiveConfig(_Section):
    """reward = val_accuracy - lambda * complexity / max complexity of the space."""

    complexity: Literal["params", "flops", "latency"] = "params"
    lambda_: float = Field(0.02, ge=0.0, alias="lambda")
    failure_reward: float = 0.0
    max_params: int | None = Field(None, ge=1)  # hard limit: larger children are INFEASIBLE, never trained
    max_flops: int | None = Field(None, ge=1)  # hard limit on FLOPs per example (bounds the training time), likewise


class PruningConfig(_Section):
    """Early stopping of children whose validation curve falls behind the others' at the same epoch (Optuna's
    rules; rlnas/evaluation/pruning.py): ``median`` (the percentile rule), ``halving`` (asynchronous successive
    halving) or ``none``. A stopped child is a PRUNED trial and costs the budget its share of the training."""

    rule: Literal["none", "median", "halving"] = "none"
    warmup_epochs: int = Field(1, ge=0)  # median: epochs every child trains before it can be stopped
    startup_trials: int = Field(5, ge=1)  # median: complete children before any is stopped
    percentile: float = Field(50.0, gt=0.0, lt=100.0)  # median: stop below this percentile of the others
    min_trials: int = Field(1, ge=1)  # median: complete children with a score at an epoch to compare there
    min_epochs: int = Field(1, ge=1)  # halving: the first rung (then x reduction_factor)
    reduction_factor: int = Field(3, ge=2, le=100)  # halving: the top 1 / reduction_factor go on at each rung


class BudgetConfig(_Section):
    """The search stops after ``evaluations`` unique child evaluations (or ``minutes``). A child trained at a
    lower fidelity (Hyperband) or stopped early by the pruner counts its share of a full training; children start
    while some budget is left, so the last ones may take it past by less than one evaluation each."""

    evaluations: int = Field(60, ge=1)
    minutes: float | None = Field(None, gt=0.0)
    max_consecutive_failures: int = Field(10, ge=1)


class PPOConfig(_Section):
    """MaskablePPO settings. A rollout holds ``episodes_per_update`` x (longest episode) steps, so every
    update sees at least ``episodes_per_update`` whole architectures (an episode cut at the end of a rollout
    is bootstrapped by the value function); gamma = 1 since the only reward comes at the end."""

    learning_rate: float = Field(3e-3, gt=0.0)
    episodes_per_update: int = Field(8, ge=1, le=4096)
    n_epochs: int = Field(6, ge=1, le=1000)
    minibatches: int = Field(1, ge=1, le=1024)
    gamma: float = Field(1.0, gt=0.0, le=1.0)
    gae_lambda: float = Field(1.0, ge=0.0, le=1.0)
    clip_range: float = Field(0.3, gt=0.0)
    ent_coef: float = Field(0.01, ge=0.0)
    vf_coef: float = Field(0.5, ge=0.0)
    max_grad_norm: float = Field(0.5, gt=0.0)
    net_arch: list[Width] = Field(default_factory=lambda: [64], max_length=8)
    # One output head per decision (true) or SB3's single head shared by every decision (false). The heads
    # learn each decision's choice on the synthetic probe, but the screening and elite settings below were
    # tuned with the shared head, and with the heads they lose 0.05-0.09 on NAS-Bench-201 from 50 evaluations
    # on (docs/benchmarks.md, "Does the policy learn choices?"): off until they are re-tuned together.
    decision_heads: bool = False
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
    surrogate_hidden: list[Width] = Field(default_factory=lambda: [64], max_length=8)
    surrogate_steps: int = Field(100, ge=1, le=100_000)
    # Elite mutations: this share of all evaluations goes to the surrogate's pick among screen_samples
    # one-decision mutations of the elite_parents best architectures so far (from screen_after results on, the
    # picks first catch up with the share, then alternate with the policy's samples). They are proposed
    # beside the policy: their rewards feed the surrogate, the reward ranks and the masks; with
    # elite_to_policy also a PPO update (the pick is an episode of the policy's rollout, as a screened sample
    # is, whenever the rollout is between episodes). 0 = every evaluation is a policy sample.
    elite_share: float = Field(0.5, ge=0.0, lt=1.0)
    elite_parents: int = Field(1, ge=1)
    elite_patience: int = Field(2, ge=0)  # pause after this many picks in a row miss the best; 0 = never
    elite_ucb: float = Field(2.0, ge=0.0)  # the elite pick: surrogate mean + elite_ucb x spread
    elite_to_policy: bool = True  # PPO also learns from the elite picks (off: only their ranks count)
    # The policy's screen bonus once the search stalls: the best reward has not improved for more than
    # stall_ratio x the results it took to find it (screen_after at least: the results before screening are
    # not guided); None = screen_ucb throughout.
    stall_ucb: float | None = Field(4.0, ge=0.0)
    stall_ratio: float = Field(0.5, gt=0.0)


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


ExportFormat = Literal["onnx", "pt2"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("onnx", "pt2")


class ExportConfig(_Section):
    """From proxy to final: re-score the top-k at a higher fidelity, retrain the winner ``repeats`` times."""

    enabled: bool = True
    epochs: int = Field(20, ge=1)
    rescore_top_k: int = Field(1, ge=1)  # > 1: retrain the k best for rescore_epochs, keep the best on validation
    rescore_epochs: int | None = Field(None, ge=1)  # default: 2 x training.epochs
    rescore_repeats: int = Field(1, ge=1)  # trainings (seeds) per re-scored candidate; the best mean wins
    repeats: int = Field(1, ge=1)  # final trainings with different seeds; mean and std are reported
    ensemble: bool = False  # export the average of the repeats (one model) instead of the best on test
    ensemble_top: int = Field(1, ge=1, le=32)  # > 1: average the final trainings of the N best architectures
    augment: Augment | None = None  # data augmentation of the final training; None: training's
    erasing: float | None = Field(None, ge=0.0, le=1.0)  # random erasing of the final training; None: training's
    ema: float = Field(0.0, ge=0.0, lt=1.0)  # > 0: export the exponential moving average of the weights (decay)
    formats: list[ExportFormat] = Field(default_factory=lambda: list(EXPORT_FORMATS))


class ExecutionConfig(_Section):
    """Where children train: ``workers`` at a time, in the search process (``inprocess``, one worker),
    in worker processes (``process``) or as Ray actors (``ray``); ``auto`` = inprocess for one worker,
    process for more. Workers get ``threads_per_worker`` torch threads (default: cores / workers; one worker
    in the search process: torch's default; ``auto``: the cores free when each child starts)."""

    workers: int = Field(1, ge=1, le=1024)
    executor: Literal["auto", "inprocess", "process", "ray"] = "auto"
    # torch threads per child; auto: the cores that other processes leave free when each child starts (faster on
    # a busy machine; metrics may then differ in the last digits between runs)
    threads_per_worker: Annotated[int, Field(ge=1)] | Literal["auto"] | None = None
    kill_grace_seconds: float = Field(60.0, ge=0.0)  # hard kill at training.max_minutes_per_child + this
    ray_address: str | None = None  # an existing cluster ("auto", "ray://host:10001"); none: a local instance
    ray_temp_dir: str | None = None  # where a local Ray instance keeps its files (default: Ray's)


class OneShotConfig(_Section):
    """Weight sharing (``evaluation: oneshot``): children are sub-networks of one supernet and are scored
    with its shared weights instead of being trained. The supernet trains with the training config's
    optimizer, learning rate, batch size and augmentation; the space's training decisions are pinned to
    those values. ``path_sampling``: between evaluations the supernet trains on the architecture the strategy
    proposed (``proposed``: ENAS, the controller's samples) or on uniformly random ones (``uniform``: SPOS)."""

    path_sampling: Literal["proposed", "uniform"] = "proposed"
    warmup_epochs: float = Field(1.0, ge=0.0)  # supernet epochs on uniform random paths before the first score
    steps_per_evaluation: int = Field(10, ge=0)  # supernet training steps before each evaluation
    score_examples: int = Field(2000, ge=1, le=10**7)  # validation examples a sub-network is scored on (fixed)
    calibration_batches: int = Field(4, ge=0)  # training batches that recompute batch-norm statistics per path
    checkpoint_every: int = Field(25, ge=1)  # evaluations between supernet checkpoints (RUN/supernet.pt)
    # random-path training: paths per step, drawn strictly fair (FairNAS), each on its share of the batch
    # (split_batch: the cost of one path per step) or on the whole batch (paths_per_step times the cost)
    paths_per_step: int = Field(6, ge=1)
    split_batch: bool = True


class LoggingConfig(_Section):
    tensorboard: bool = True
    graph: bool = True
    policy_images: bool = True  # the controller's choice probabilities as a heatmap per update (IMAGES tab)
    keep_children: bool = False  # save every trained child in RUN/children/<key>.pt (rlnas.load_trial)
    optuna: bool = True  # mirror the trials into RUN/optuna.sqlite3 for optuna-dashboard and optuna.visualization


class RunConfig(_Section):
    seed: int = Field(0, ge=0, le=MAX_SEED)
    runs_root: str = "runs"
    dataset: DatasetConfig = DatasetConfig()
    space: SpaceSpec
    training: TrainingConfig = TrainingConfig()
    evaluation: Literal["train", "oneshot"] = "train"  # train every child, or score it in a shared supernet
    oneshot: OneShotConfig = OneShotConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    budget: BudgetConfig = BudgetConfig()
    pruning: PruningConfig = PruningConfig()
    strategy: StrategyConfig = StrategyConfig()
    export: ExportConfig = ExportConfig()
    execution: ExecutionConfig = ExecutionConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="before")
    @classmethod
    def _space_by_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("space"), str):
            data = {**data, "space": builtin_space(data["space"])}
        return data

    @model_validator(mode="after")
    def _oneshot_in_process(self) -> RunConfig:
        if self.strategy.name == "darts" and self.evaluation != "oneshot":
            raise ValueError("strategy darts searches a supernet; set evaluation=oneshot (--evaluation oneshot)")
        in_process = self.execution.workers == 1 and self.execution.executor in ("auto", "inprocess")
        if self.evaluation == "oneshot" and not in_process:
            raise ValueError(
                "evaluation=oneshot trains one supernet in the search process; set execution.workers=1 and "
                "execution.executor=auto"
            )
        if self.pruning.rule != "none" and (self.evaluation == "oneshot" or self.training.cv_folds > 1):
            folds = f"training.cv_folds={self.training.cv_folds}"
            what = "evaluation=oneshot" if self.evaluation == "oneshot" else folds
            raise ValueError(
                f"pruning.rule={self.pruning.rule} stops children by their validation score after each epoch, which "
                f"{what} does not give; set pruning.rule=none, or train every child (evaluation=train, "
                "training.cv_folds=1)"
            )
        if self.evaluation == "oneshot" and self.objective.max_flops is not None:
            raise ValueError(
                f"objective.max_flops={self.objective.max_flops} is not supported with evaluation=oneshot (the "
                "supernet bounds its paths by parameters); use objective.max_params or evaluation=train"
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"training.epochs=3"`` -> (["training", "epochs"], 3); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value (e.g. training.epochs=3)")
    path, raw = text.split("=", 1)
    keys = [k for k in path.strip().split(".")]
    if not all(keys):
        raise ConfigError(f"override {text!r}: empty key in {path!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({err})") from None
    return keys, value


def default_space(data: dict[str, Any]) -> str:
    """The built-in space of a config that names none: ``mlp`` for tables, ``cnn`` otherwise."""
    dataset = data.get("dataset")
    return "mlp" if isinstance(dataset, dict) and dataset.get("name") == "csv" else "cnn"


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        if keys[0] == "space" and len(keys) > 1:
            data["space"] = data.get("space", default_space(data))
            if isinstance(data["space"], str):
                data["space"] = builtin_space(data["space"])
        node = data
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(keys[: i + 1])} is not a section")
            node = child
        node[keys[-1]] = value
    return data


def format_errors(err: ValidationError, source: str, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        path = prefix + ".".join(str(p) for p in e["loc"]) if e["loc"] else prefix.rstrip(".") or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `rlnas config default` shows every key)"
        bad = e.get("input")
        scalar = isinstance(bad, (str, int, float, bool, type(None)))
        shown = f" (got {bad!r})" if scalar and e["type"] not in ("extra_forbidden", "missing") else ""
        lines.append(f"{path}: {msg}{shown}")
    return f"invalid configuration in {source}: " + "; ".join(lines)


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
    *,
    flags: tuple[str, str] = ("--config", "--set"),
) -> RunConfig:
    """Load a YAML config (a file, or a shipped config's name; or start from ``base`` sections, or the
    defaults), apply overrides and validate. ``flags`` name the config and the overrides in error messages
    (``("config=", "overrides=")`` from Python)."""
    source = "the defaults" if path is None else str(path)
    if overrides:
        source += f" with the {flags[1]} overrides"
    data: Any = copy.deepcopy(base) if base is not None else {}
    if path is not None:
        p = find_config(path, flags[0])
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {p} is not valid YAML: {err}") from None
        except OSError as err:
            raise ConfigError(f"config file {p} cannot be read ({err.strerror}); pass a readable YAML file") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections, got {type(data).__name__}")
    data = apply_overrides(data, list(overrides or []))
    data.setdefault("space", default_space(data))
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err, source)) from None
