"""Training-step time of convnets on the CPU in the default and the channels-last memory layout.

    python benchmarks/conv_layout.py [--precision bf16|fp32]

Batch of 128 images of 28x28x1, AdamW, 20 timed steps after 5 warm-up steps, torch's default threads; the
nets are convnet-family architectures (``rlnas.models.blocks.build_convnet``). Results: docs/benchmarks.md
("Channels-last under bf16").
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

import rlnas.space  # noqa: F401 - loads the space package before the models (their import order)
from rlnas.models.blocks import build_convnet
from rlnas.models.complexity import count_flops, count_params

NETS = {
    "residual 32 / 64 / 128, stride": [
        ("residual", 32, 1, "stride"),
        ("residual", 64, 1, "stride"),
        ("residual", 128, 1, "stride"),
    ],
    "plain 64 x2 / 128 x2 / 256, pool": [
        ("plain", 64, 2, "pool"),
        ("plain", 128, 2, "pool"),
        ("plain", 256, 1, "pool"),
    ],
    "residual 32 x2 / 64 x2 / 128 x2, stride": [
        ("residual", 32, 2, "stride"),
        ("residual", 64, 2, "stride"),
        ("residual", 128, 2, "stride"),
    ],
}


def architecture(stages: list[tuple[str, int, int, str]]) -> dict[str, object]:
    arch: dict[str, object] = {"num_stages": len(stages), "dropout": 0.0}
    for k, (block, width, blocks, downsample) in enumerate(stages, 1):
        stage = {"block": block, "width": width, "blocks": blocks, "kernel_size": 3, "se": False}
        stage |= {"activation": "relu", "downsample": downsample}
        arch |= {f"stage{k}.{role}": value for role, value in stage.items()}
    return arch


def step_seconds(stages: list[tuple[str, int, int, str]], layout: torch.memory_format, bf16: bool) -> float:
    torch.manual_seed(0)
    model = build_convnet(architecture(stages), (1, 28, 28), 10).to(memory_format=layout).train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(128, 1, 28, 28).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (128,))
    for i in range(25):
        if i == 5:
            start = time.perf_counter()
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    args = parser.parse_args()
    bf16 = args.precision == "bf16"
    print(f"| net ({args.precision}, {torch.get_num_threads()} threads) | params | MFLOPs | default | channels-last |")
    print("|---|---|---|---|---|")
    for name, stages in NETS.items():
        model = build_convnet(architecture(stages), (1, 28, 28), 10)
        flops = count_flops(model, (1, 28, 28)) / 1e6
        times = [step_seconds(stages, layout, bf16) for layout in (torch.contiguous_format, torch.channels_last)]
        print(f"| {name} | {count_params(model):,} | {flops:.1f} | {times[0]:.3f} s | {times[1]:.3f} s |", flush=True)


if __name__ == "__main__":
    main()
