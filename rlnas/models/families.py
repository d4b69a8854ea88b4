"""Model families as networks: a pure builder for each family that :mod:`rlnas.space.families` declares
(its decisions, values and constraints), input normalization, and the ensemble of several trainings.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from rlnas.errors import InvalidArchitecture
from rlnas.models import blocks, nb201
from rlnas.models.ops import POOLING, activation
from rlnas.space.core import Architecture
from rlnas.space.families import Shape, image_shape

Builder = Callable[[Architecture, Shape, int], nn.Module]


def _pool(name: str) -> nn.Module:
    try:
        return POOLING[name]()
    except KeyError:
        raise InvalidArchitecture(f"unknown pooling {name!r}; allowed: {sorted(POOLING)}") from None


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


BUILDERS: dict[str, Builder] = {
    "cnn": build_cnn,
    "convnet": blocks.build_convnet,
    "mlp": build_mlp,
    "nb201": nb201.build_nb201,
}  # one for each family of rlnas.space.families.FAMILIES


def build_model(arch: Architecture, family: str, input_shape: Shape, num_classes: int) -> nn.Module:
    """Build the PyTorch network of ``arch`` (pure: same inputs, same module structure)."""
    try:
        builder = BUILDERS[family]
    except KeyError:
        raise InvalidArchitecture(f"unknown model family {family!r}; known: {sorted(BUILDERS)}") from None
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


def average(outs: torch.Tensor, classification: bool) -> torch.Tensor:
    """The mean over the first dimension of several predictions: of class probabilities (returned as their
    logarithm, so that argmax and softmax read as for a single network's logits) or of regression outputs."""
    if classification:
        return torch.logsumexp(torch.log_softmax(outs, dim=-1), dim=0) - math.log(outs.shape[0])
    return outs.mean(dim=0)


class Ensemble(nn.Module):
    """Several trainings of one network, averaged (:func:`average`)."""

    def __init__(self, members: list[nn.Module], classification: bool) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.classification = classification

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return average(torch.stack([member(x) for member in self.members]), self.classification)


# test-time augmentation (``export.tta``): the offsets (rows, columns) of the views a prediction averages
TTA_VIEWS = {"shift": ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))}


class ViewAverage(nn.Module):
    """A network's prediction averaged (:func:`average`) over views of each image (N, C, H, W): ``shift``, the
    image and its copies moved by one pixel up, down, left and right, zeros filled in (as the training's
    shifts and padded crops fill them). No weights of its own; one forward pass of the network on all views."""

    def __init__(self, model: nn.Module, classification: bool, kind: str = "shift") -> None:
        super().__init__()
        self.model = model
        self.classification = classification
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        padded = nn.functional.pad(x, (1, 1, 1, 1))
        views = [padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w] for dy, dx in TTA_VIEWS[self.kind]]
        outs = self.model(torch.cat(views))
        return average(outs.reshape(len(views), x.shape[0], *outs.shape[1:]), self.classification)
