"""Model families as a search space declares them: the decisions a space of each family may declare (with
defaults for optional ones), the values each decision role takes, and the constraints that mask impossible
choices. Nothing here imports torch, so loading a config or building a space stays cheap;
:mod:`rlnas.models.families` builds the networks (one builder for each family named here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rlnas.errors import InvalidArchitecture
from rlnas.space.core import Choice, Constraint, Decision

Shape = tuple[int, ...]

ACTIVATIONS = ("relu", "elu", "leaky_relu", "gelu", "silu", "tanh", "sigmoid")
POOLING = ("max", "avg", "none")
OPTIMIZERS = ("adam", "adamw", "sgd")
BLOCKS = ("plain", "residual", "inverted", "separable")  # the convnet family's blocks (rlnas.models.blocks)
DOWNSAMPLE = ("stride", "pool", "none")

# NAS-Bench-201's cell: a 4-node DAG whose 6 edges j <- i each carry one operation (rlnas.models.nb201)
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NB201_EDGE_NAMES: tuple[str, ...] = tuple(f"edge_{j}_{i}" for j, i in NB201_EDGES)
NB201_OPERATIONS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

# Decisions every family may declare under ``training``; absent ones come from the training config.
TRAINING_DECISIONS: dict[str, tuple[Choice, ...] | None] = {
    "learning_rate": None,
    "batch_size": None,
    "optimizer": None,
    "weight_decay": None,
}


def _is_int(v: Choice) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Choice) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# role -> (check, what is expected): every choice of that role must pass the check.
VALUE_CHECKS: dict[str, tuple[Callable[[Choice], bool], str]] = {
    "filters": (lambda v: _is_int(v) and v >= 1, "positive integers"),
    "kernel_size": (lambda v: _is_int(v) and v >= 1 and v % 2 == 1, "odd positive integers"),
    "units": (lambda v: _is_int(v) and v >= 1, "positive integers"),
    "hidden_units": (lambda v: _is_int(v) and v >= 1, "positive integers"),
    "batch_norm": (lambda v: isinstance(v, bool), "true/false"),
    "dropout": (lambda v: _is_number(v) and 0.0 <= v < 1.0, "numbers in [0, 1)"),
    "learning_rate": (lambda v: _is_number(v) and v > 0, "positive numbers"),
    "weight_decay": (lambda v: _is_number(v) and v >= 0, "non-negative numbers"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "positive integers"),
    "width": (lambda v: _is_int(v) and v >= 1, "positive integers"),
    "blocks": (lambda v: _is_int(v) and 1 <= v <= 16, "integers from 1 to 16"),
    "expansion": (lambda v: _is_int(v) and 1 <= v <= 16, "integers from 1 to 16"),
    "se": (lambda v: isinstance(v, bool), "true/false"),
}
ALLOWED_VALUES: dict[str, tuple[str, ...]] = {
    "activation": ACTIVATIONS,
    "pooling": POOLING,
    "optimizer": OPTIMIZERS,
    "operation": NB201_OPERATIONS,
    "block": BLOCKS,
    "downsample": DOWNSAMPLE,
}


def image_shape(input_shape: tuple[int, ...], family: str) -> tuple[int, int, int]:
    """(channels, height, width) of an image input; a clear error for anything else."""
    if len(input_shape) != 3:
        raise InvalidArchitecture(f"the {family} family needs (channels, height, width) inputs, got {input_shape}")
    return int(input_shape[0]), int(input_shape[1]), int(input_shape[2])


@dataclass(frozen=True)
class HalvingLimit:
    """Masks the choices of decisions of ``role`` (pooling, downsample) that would halve the feature map of
    side ``size`` below 2x2, counting the halvings chosen before ("none" never halves; picklable, for workers)."""

    size: int
    role: str = "pooling"

    def __call__(self, values: Mapping[str, Choice], decision: Decision, choice: Choice) -> bool:
        if decision.role != self.role or choice == "none":
            return True
        halvings = sum(1 for name, v in values.items() if name.endswith(f".{self.role}") and v != "none")
        return self.size >> halvings >= 2


def cnn_constraint(input_shape: Shape) -> Constraint:
    """Mask pooling choices that would shrink the feature map below 2x2."""
    _, height, width = image_shape(input_shape, "cnn")
    return HalvingLimit(min(height, width), "pooling")


def convnet_constraint(input_shape: Shape) -> Constraint:
    """Mask downsampling that would shrink the feature map below 2x2."""
    _, height, width = image_shape(input_shape, "convnet")
    return HalvingLimit(min(height, width), "downsample")


@dataclass(frozen=True)
class Family:
    """How spaces of one model family are declared.

    ``per_layer``/``head`` map a decision role to its default choices (None: the space must declare it);
    ``requires`` makes a per-layer role active only for some values of another, earlier one of the same layer
    (``{"expansion": ("block", ("inverted",))}``).
    """

    name: str
    depth_name: str
    layer_prefix: str
    per_layer: Mapping[str, tuple[Choice, ...] | None]
    head: Mapping[str, tuple[Choice, ...] | None]
    make_constraint: Callable[[Shape], Constraint | None] = field(default=lambda shape: None)
    cell: Mapping[str, tuple[Choice, ...]] = field(default_factory=dict)  # cell decision -> default choices
    requires: Mapping[str, tuple[str, tuple[Choice, ...]]] = field(default_factory=dict)


def layer_name(family: Family, k: int, role: str) -> str:
    return f"{family.layer_prefix}{k}.{role}"


FAMILIES: dict[str, Family] = {
    "cnn": Family(
        name="cnn",
        depth_name="num_blocks",
        layer_prefix="block",
        per_layer={
            "filters": None,
            "kernel_size": None,
            "activation": ("relu",),
            "batch_norm": (True,),
            "pooling": ("max",),
        },
        head={"hidden_units": None, "head_activation": ("relu",), "dropout": (0.0,)},
        make_constraint=cnn_constraint,
    ),
    "convnet": Family(
        name="convnet",
        depth_name="num_stages",
        layer_prefix="stage",
        per_layer={
            "block": ("residual",),
            "width": None,
            "blocks": (1,),
            "kernel_size": (3,),
            "expansion": (4,),
            "se": (False,),
            "activation": ("relu",),
            "downsample": ("stride",),
        },
        head={"dropout": (0.0,)},
        make_constraint=convnet_constraint,
        requires={"expansion": ("block", ("inverted",))},
    ),
    "mlp": Family(
        name="mlp",
        depth_name="num_layers",
        layer_prefix="layer",
        per_layer={"units": None, "activation": ("relu",)},
        head={"dropout": (0.0,)},
    ),
    "nb201": Family(
        name="nb201",
        depth_name="",
        layer_prefix="",
        per_layer={},
        head={},
        cell={name: NB201_OPERATIONS for name in NB201_EDGE_NAMES},
    ),
}
