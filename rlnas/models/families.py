"""Model families: how a family's decisions are declared and how an architecture becomes a network.

A family names the decisions a space of that family may declare (with defaults for optional ones), an
optional constraint that masks impossible choices, and a pure ``build`` function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rlnas.errors import InvalidArchitecture
from rlnas.models import blocks, nb201
from rlnas.models.ops import ACTIVATIONS, OPTIMIZERS, POOLING, HalvingLimit, activation, image_shape
from rlnas.space.core import Architecture, Choice, Constraint

Shape = tuple[int, ...]
Builder = Callable[[Architecture, Shape, int], nn.Module]

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
    "activation": tuple(ACTIVATIONS),
    "pooling": tuple(POOLING),
    "optimizer": OPTIMIZERS,
    "operation": nb201.OPERATIONS,
    "block": blocks.BLOCKS,
    "downsample": blocks.DOWNSAMPLE,
}


@dataclass(frozen=True)
class Family:
    """How spaces of one model family are declared and built.

    ``per_layer``/``head`` map a decision role to its default choices (None: the space must declare it);
    ``requires`` makes a per-layer role active only for some values of another, earlier one of the same layer
    (``{"expansion": ("block", ("inverted",))}``).
    """

    name: str
    depth_name: str
    layer_prefix: str
    per_layer: Mapping[str, tuple[Choice, ...] | None]
    head: Mapping[str, tuple[Choice, ...] | None]
    build: Builder
    make_constraint: Callable[[Shape], Constraint | None] = field(default=lambda shape: None)
    cell: Mapping[str, tuple[Choice, ...]] = field(default_factory=dict)  # cell decision -> default choices
    requires: Mapping[str, tuple[str, tuple[Choice, ...]]] = field(default_factory=dict)


def _pool(name: str) -> nn.Module:
    try:
        return POOLING[name]()
    except KeyError:
        raise InvalidArchitecture(f"unknown pooling {name!r}; allowed: {sorted(POOLING)}") from None


def layer_name(family: Family, k: int, role: str) -> str:
    return f"{family.layer_prefix}{k}.{role}"


def build_cnn(arch: Architecture, input_shape: Shape, num_classes: int) -> nn.Module:
    """``[Conv2d -> act -> [BatchNorm] -> Pool] x depth -> Flatten -> Linear -> act -> Dropout -> Linear``."""
    channels, height, width = image_shape(input_shape, "cnn")
    layers: list[nn.Module] = []
    for k in range(1, int(arch["num_blocks"]) + 1):
        filters = int(arch[f"block{k}.filters"])
        kernel = int(arch[f"block{k}.kernel_size"])
        layers += [nn.Conv2d(channels, filters, kernel, padding=kernel // 2), activation(arch[f"block{k}.activation"])]
        if arch[f"block{k}.batch_norm"]:
            layers.append(nn.BatchNorm2d(filters))
        pooling = arch[f"block{k}.pooling"]
        if pooling != "none":
            if min(height, width) < 2:
                raise InvalidArchitecture(f"block{k} pools a {height}x{width} feature map")
            height, width = height // 2, width // 2
        layers.append(_pool(pooling))
        channels = filters
    hidden = int(arch["hidden_units"])
    layers += [
        nn.Flatten(),
        nn.Linear(channels * height * width, hidden),
        activation(arch["head_activation"]),
        nn.Dropout(float(arch["dropout"])),
        nn.Linear(hidden, num_classes),
    ]
    return nn.Sequential(*layers)


def cnn_constraint(input_shape: Shape) -> Constraint:
    """Mask pooling choices that would shrink the feature map below 2x2."""
    _, height, width = image_shape(input_shape, "cnn")
    return HalvingLimit(min(height, width), "pooling")


def build_mlp(arch: Architecture, input_shape: Shape, num_classes: int) -> nn.Module:
    """``Flatten -> [Linear -> act -> Dropout] x depth -> Linear``."""
    features = 1
    for size in input_shape:
        features *= int(size)
    layers: list[nn.Module] = [nn.Flatten()]
    for k in range(1, int(arch["num_layers"]) + 1):
        units = int(arch[f"layer{k}.units"])
        layers += [
            nn.Linear(features, units),
            activation(arch[f"layer{k}.activation"]),
            nn.Dropout(float(arch["dropout"])),
        ]
        features = units
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


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
        build=build_cnn,
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
        build=blocks.build_convnet,
        make_constraint=blocks.convnet_constraint,
        requires={"expansion": ("block", ("inverted",))},
    ),
    "mlp": Family(
        name="mlp",
        depth_name="num_layers",
        layer_prefix="layer",
        per_layer={"units": None, "activation": ("relu",)},
        head={"dropout": (0.0,)},
        build=build_mlp,
    ),
    "nb201": Family(
        name="nb201",
        depth_name="",
        layer_prefix="",
        per_layer={},
        head={},
        build=nb201.build_nb201,
        cell={name: nb201.OPERATIONS for name in nb201.EDGE_NAMES},
    ),
}


def build_model(arch: Architecture, family: str, input_shape: Shape, num_classes: int) -> nn.Module:
    """Build the PyTorch network of ``arch`` (pure: same inputs, same module structure)."""
    try:
        builder = FAMILIES[family].build
    except KeyError:
        raise InvalidArchitecture(f"unknown model family {family!r}; known: {sorted(FAMILIES)}") from None
    try:
        return builder(arch, tuple(input_shape), int(num_classes))
    except KeyError as err:
        raise InvalidArchitecture(f"architecture of family {family!r} lacks decision {err}") from None


class Normalize(nn.Module):
    """Per-channel (images) or per-feature (tables) input standardization with training statistics, stored
    in the model so that exports take raw inputs ([0, 1] pixels, encoded table features)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: list[float], std: list[float], dims: int = 3) -> None:
        super().__init__()
        shape = (1, -1, *([1] * (dims - 1)))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TargetScale(nn.Module):
    """Regression: the network learns standardized targets; this puts its output back in target units."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


def with_normalization(
    model: nn.Module, mean: list[float], std: list[float], dims: int = 3, target: tuple[float, float] | None = None
) -> nn.Sequential:
    """``Normalize -> model`` (``-> TargetScale`` for regression): the network a child or an export holds."""
    layers = [Normalize(mean, std, dims), model]
    if target is not None:
        layers.append(TargetScale(*target))
    return nn.Sequential(*layers)


def assemble(
    arch: Architecture,
    family: str,
    input_shape: Shape,
    num_outputs: int,
    mean: list[float],
    std: list[float],
    target: tuple[float, float] | None = None,
) -> nn.Sequential:
    """The whole network of a child or an export: normalization, ``build_model``, target scaling."""
    model = build_model(arch, family, input_shape, num_outputs)
    return with_normalization(model, mean, std, len(input_shape), target)


class Ensemble(nn.Module):
    """Several trainings of one network, averaged: class probabilities (returned as their logarithm, so
    that argmax and softmax read as for a single network's logits) or regression outputs."""

    def __init__(self, members: list[nn.Module], classification: bool) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.classification = classification

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([member(x) for member in self.members])
        if self.classification:
            return torch.logsumexp(torch.log_softmax(outs, dim=-1), dim=0) - math.log(len(self.members))
        return outs.mean(dim=0)


def describe_family(family: str) -> dict[str, Any]:
    fam = FAMILIES[family]
    return {"per_layer": dict(fam.per_layer), "head": dict(fam.head), "training": dict(TRAINING_DECISIONS)}
