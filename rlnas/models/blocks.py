"""The ``convnet`` family: stages of the blocks that win on images, into a global-average-pooling head.

``stem (3x3 conv, BN, act) -> stage 1 -> ... -> stage n -> global average pool -> dropout -> linear``. Each
stage has a block type, a width, a number of blocks, a kernel size, squeeze-and-excite on or off, an
activation and a way to downsample at its start (its first block with stride 2, a 2x2 max pool, or none):

- ``plain``: conv -> BN -> act (VGG-style);
- ``residual``: the basic block of ResNet: conv -> BN -> act -> conv -> BN, plus the input (a strided 1x1
  conv and BN where the shape changes), then act;
- ``inverted``: the inverted residual of MobileNetV2 / MnasNet / EfficientNet (MBConv): 1x1 expansion by the
  stage's ``expansion`` ratio -> depthwise conv -> [SE] -> linear 1x1 projection, plus the input where the
  shape stays;
- ``separable``: depthwise conv -> BN -> act -> pointwise 1x1 conv -> BN -> act (Xception / MobileNetV1).

Squeeze-and-excite (SENet) gates the channels of a block's output (of the depthwise conv in ``inverted``).
Every block is plain PyTorch (Conv2d, BatchNorm2d, AdaptiveAvgPool2d): parameter and FLOP counts are torch's
own and the exports (ONNX, ``.pt2``) trace them as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from rlnas.errors import InvalidArchitecture
from rlnas.models.ops import activation
from rlnas.space.core import Architecture
from rlnas.space.families import BLOCKS, image_shape

SE_REDUCTION = 4  # squeeze-and-excite: hidden units = channels / 4 (at least 8)


def conv_bn(
    cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = "relu"
) -> nn.Sequential:
    """Conv (no bias: BN follows) -> BN -> [act]."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(activation(act))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel gates from the globally pooled features: ``x * sigmoid(W2 act(W1 mean(x)))``."""

    def __init__(self, channels: int, act: str) -> None:
        super().__init__()
        hidden = max(8, channels // SE_REDUCTION)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            activation(act),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class Residual(nn.Module):
    """``act(body(x) + shortcut(x))`` (``act`` None: no activation after the sum, as in MBConv)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, act: str | None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.act = activation(act) if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def block(kind: str, cin: int, cout: int, kernel: int, stride: int, act: str, se: bool, expansion: int) -> nn.Module:
    """One block of ``kind`` (see the module's doc) from ``cin`` to ``cout`` channels."""
    gate: list[nn.Module] = [SqueezeExcite(cout, act)] if se else []
    if kind == "plain":
        return nn.Sequential(conv_bn(cin, cout, kernel, stride, act=act), *gate)
    if kind == "separable":
        return nn.Sequential(
            conv_bn(cin, cin, kernel, stride, groups=cin, act=act), conv_bn(cin, cout, 1, act=act), *gate
        )
    same = stride == 1 and cin == cout
    if kind == "residual":
        body = nn.Sequential(conv_bn(cin, cout, kernel, stride, act=act), conv_bn(cout, cout, kernel, act=None), *gate)
        shortcut = nn.Identity() if same else conv_bn(cin, cout, 1, stride, act=None)
        return Residual(body, shortcut, act)
    if kind == "inverted":
        hidden = cin * expansion
        expand = [conv_bn(cin, hidden, 1, act=act)] if expansion > 1 else []
        dw_gate = [SqueezeExcite(hidden, act)] if se else []
        body = nn.Sequential(
            *expand,
            conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act),
            *dw_gate,
            conv_bn(hidden, cout, 1, act=None),
        )
        return Residual(body, nn.Identity(), None) if same else body
    raise InvalidArchitecture(f"unknown block type {kind!r}; allowed: {list(BLOCKS)}")


def build_convnet(arch: Architecture, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network of a ``convnet`` architecture (see the module's doc)."""
    channels, height, width = image_shape(input_shape, "convnet")
    stages = int(arch["num_stages"])
    width_in = int(arch["stage1.width"])
    layers: list[nn.Module] = [conv_bn(channels, width_in, 3, act=str(arch["stage1.activation"]))]
    size = min(height, width)
    for k in range(1, stages + 1):
        get = lambda role, k=k: arch[f"stage{k}.{role}"]  # noqa: E731 - one stage's decisions
        act, downsample = str(get("activation")), str(get("downsample"))
        if downsample != "none":
            if size < 2:
                raise InvalidArchitecture(f"stage{k} downsamples a {size}x{size} feature map")
            size = (size + 1) // 2 if downsample == "stride" else size // 2
        if downsample == "pool":
            layers.append(nn.MaxPool2d(2))
        cout = int(get("width"))
        expansion = int(arch.get(f"stage{k}.expansion", 1))
        for b in range(int(get("blocks"))):
            stride = 2 if downsample == "stride" and b == 0 else 1
            layers.append(
                block(
                    str(get("block")), width_in, cout, int(get("kernel_size")), stride, act, bool(get("se")), expansion
                )
            )
            width_in = cout
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(float(arch["dropout"])),
        nn.Linear(width_in, num_classes),
    ]
    return nn.Sequential(*layers)
