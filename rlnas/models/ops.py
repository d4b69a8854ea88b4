"""What the model families share: the activation and pooling modules of the names that
:mod:`rlnas.space.families` declares."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rlnas.errors import InvalidArchitecture

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


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise InvalidArchitecture(f"unknown activation {name!r}; allowed: {sorted(ACTIVATIONS)}") from None
