"""What the model families share: the activation and pooling registries, the image-input check and the mask
that keeps a feature map from being halved below 2x2."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from rlnas.errors import InvalidArchitecture
from rlnas.space.core import Choice, Decision

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

POOLING: dict[str, Callable[[], nn.Module]] = {
    "max": lambda: nn.MaxPool2d(2),
    "avg": lambda: nn.AvgPool2d(2),
    "none": nn.Identity,
}

OPTIMIZERS = ("adam", "adamw", "sgd")


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise InvalidArchitecture(f"unknown activation {name!r}; allowed: {sorted(ACTIVATIONS)}") from None


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
