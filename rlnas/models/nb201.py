"""The NAS-Bench-201 cell space as a real network: the cell stacked in NAS-Bench-201's macro skeleton.

A cell is a 4-node DAG; each of its 6 edges ``j <- i`` carries one operation. The architecture string is
NAS-Bench-201's: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edges into node 1, 2, 3).
Skeleton: stem conv -> N cells (C) -> residual reduction -> N cells (2C) -> reduction -> N cells (4C) ->
BN-ReLU -> global average pool -> linear. NAS-Bench-201 uses C = 16, N = 5.
"""

from __future__ import annotations

import torch
from torch import nn

from rlnas.errors import InvalidArchitecture
from rlnas.space.core import Architecture
from rlnas.space.families import NB201_EDGE_NAMES as EDGE_NAMES
from rlnas.space.families import NB201_EDGES as EDGES
from rlnas.space.families import NB201_OPERATIONS as OPERATIONS


def arch_string(arch: Architecture) -> str:
    """NAS-Bench-201's string of a cell architecture."""
    nodes = []
    for node in (1, 2, 3):
        nodes.append("|" + "|".join(f"{arch[f'edge_{node}_{i}']}~{i}" for i in range(node)) + "|")
    return "+".join(nodes)


def parse_arch_string(text: str) -> dict[str, str]:
    """Decisions of a NAS-Bench-201 string (inverse of :func:`arch_string`)."""
    values: dict[str, str] = {}
    try:
        for node, part in enumerate(text.strip().split("+"), start=1):
            for token in part.strip("|").split("|"):
                op, source = token.split("~")
                values[f"edge_{node}_{int(source)}"] = op
    except ValueError:
        raise InvalidArchitecture(f"not a NAS-Bench-201 architecture string: {text!r}") from None
    if set(values) != set(EDGE_NAMES):
        raise InvalidArchitecture(f"not a NAS-Bench-201 architecture string: {text!r}")
    return values


class _ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)
        )


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _operation(name: str, channels: int) -> nn.Module:
    if name == "none":
        return _Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return _ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return _ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise InvalidArchitecture(f"unknown NAS-Bench-201 operation {name!r}; allowed: {list(OPERATIONS)}")


class Cell(nn.Module):
    def __init__(self, arch: Architecture, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.ops = nn.ModuleList(_operation(str(arch[name]), channels) for name in EDGE_NAMES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in (1, 2, 3):
            total = None
            for k, (j, i) in enumerate(EDGES):
                if j == node:
                    out = self.ops[k](nodes[i])
                    total = out if total is None else total + out
            nodes.append(total)  # type: ignore[arg-type]
        return nodes[3]


class _Reduction(nn.Module):
    """NAS-Bench-201's residual reduction block (stride 2, channels doubled)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a = _ReLUConvBN(c_in, c_out, 3, stride=2)
        self.b = _ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


def count_nb201_params(
    arch: Architecture, input_channels: int, num_classes: int, channels: int = 16, cells: int = 5
) -> int:
    """Parameter count of :func:`build_nb201`'s network, computed without building it."""
    c3 = (channels, 2 * channels, 4 * channels)
    stem = input_channels * channels * 9 + 2 * channels
    reductions = sum(c * 2 * c * 9 + 2 * 2 * c + 2 * c * 2 * c * 9 + 2 * 2 * c + c * 2 * c for c in c3[:2])
    head = 2 * c3[2] + c3[2] * num_classes + num_classes
    per_op = {"nor_conv_3x3": 9, "nor_conv_1x1": 1}
    edges = sum(
        cells * (c * c * per_op[str(arch[name])] + 2 * c) for name in EDGE_NAMES if arch[name] in per_op for c in c3
    )
    return stem + reductions + head + edges


def build_nb201(
    arch: Architecture, input_shape: tuple[int, ...], num_classes: int, channels: int = 16, cells: int = 5
) -> nn.Module:
    c_in = int(input_shape[0])
    layers: list[nn.Module] = [nn.Conv2d(c_in, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)]
    c = channels
    for stage in range(3):
        if stage > 0:
            layers.append(_Reduction(c, 2 * c))
            c *= 2
        layers += [Cell(arch, c) for _ in range(cells)]
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)
