"""Typed run configuration: YAML + ``--set key.path=value`` overrides, validated at load time.

Unknown keys and bad values fail with the key path, the bad value and what is allowed. YAML is parsed
with ``yaml.safe_load``; user text is never evaluated. The sections shared base (``_Section``, limits) is in
``rlnas/config/base.py``, the ``strategy`` section in ``rlnas/config/strategy.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from rlnas.config.base import (
    DATASET_NAMES,
    MAX_IMAGE_SIZE,
    MAX_SEED,
    TORCHVISION_DATASETS,
    USER_DATASETS,
    Augment,
    Width,
    _Section,
    safe_load,
)
from rlnas.config.strategy import (
    BayesianConfig,
    DartsConfig,
    EvolutionConfig,
    HyperbandConfig,
    ParetoConfig,
    PPOConfig,
    PredictorConfig,
    StrategyConfig,
)
from rlnas.errors import ConfigError

__all__ = [
    "DATASET_NAMES",
    "EXPORT_FORMATS",
    "MAX_IMAGE_SIZE",
    "MAX_SEED",
    "TORCHVISION_DATASETS",
    "USER_DATASETS",
    "Augment",
    "BayesianConfig",
    "DartsConfig",
    "DatasetConfig",
    "EvolutionConfig",
    "ExportConfig",
    "HyperbandConfig",
    "ParetoConfig",
    "PPOConfig",
    "PredictorConfig",
    "PruningConfig",
    "RunConfig",
    "StrategyConfig",
    "TrainingConfig",
    "Width",
    "load_config",
]
from rlnas.shipped import find_config
from rlnas.space.spec import SpaceSpec, builtin_space


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
    warmup_epochs: float = Field(1.0, ge=0.0, le=1e6)  # median: epochs every child trains before it can be stopped
    startup_trials: int = Field(5, ge=1)  # median: complete children before any is stopped
    percentile: float = Field(50.0, gt=0.0, lt=100.0)  # median: stop below this percentile of the others
    min_trials: int = Field(1, ge=1)  # median: complete children with a score at an epoch to compare there
    min_epochs: float = Field(1.0, gt=0.0, le=1e6)  # halving: the first rung (then x reduction_factor)
    reduction_factor: int = Field(3, ge=2, le=100)  # halving: the top 1 / reduction_factor go on at each rung
    reports_per_epoch: int = Field(1, ge=1, le=100)  # validation scores per epoch: > 1 stops children within one
    report_examples: int | None = Field(1000, ge=1)  # scores within an epoch: on this many validation examples

    @model_validator(mode="after")
    def _whole_reports(self) -> PruningConfig:
        for name in ("warmup_epochs", "min_epochs"):
            value = getattr(self, name) * self.reports_per_epoch
            if abs(value - round(value)) > 1e-6:
                raise ValueError(
                    f"{name}={getattr(self, name):g} is not a multiple of 1 / reports_per_epoch "
                    f"(reports_per_epoch={self.reports_per_epoch}): the pruner decides where a score is reported; "
                    f"give a multiple of {1 / self.reports_per_epoch:g} or change reports_per_epoch"
                )
        return self


class BudgetConfig(_Section):
    """The search stops after ``evaluations`` unique child evaluations (or ``minutes``). A child trained at a
    lower fidelity (Hyperband) counts its share of a full training; children start while some budget is left, so
    the last ones may take it past by less than one evaluation each. ``pruned``: a child stopped early by the
    pruner counts the ``share`` of its training it did (the budget buys more children in about the same time)
    or as a ``whole`` evaluation (the same children as without pruning, in less time)."""

    evaluations: int = Field(60, ge=1)
    pruned: Literal["share", "whole"] = "share"
    minutes: float | None = Field(None, gt=0.0)
    max_consecutive_failures: int = Field(10, ge=1)


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
    # test-time augmentation of the exported model (images): shift averages its prediction over the image and
    # its 1-pixel shifts up, down, left and right (5 forward passes per image); the test split is scored with it
    tta: Literal["none", "shift"] = "none"
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
        value = safe_load(raw) if raw.strip() else ""
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
            data = safe_load(p.read_text()) or {}
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
