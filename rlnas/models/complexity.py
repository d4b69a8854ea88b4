"""Complexity measures of a child network: parameters, FLOPs and CPU latency per image."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rlnas.models.families import build_model
from rlnas.space.core import Architecture, SearchSpace
from rlnas.threads import torch_threads


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass on one image, by torch's flop counter (multiply-add = 2 FLOPs)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


def cpu_latency_ms(model: nn.Module, input_shape: Sequence[int], repeats: int = 20) -> float:
    """Median CPU wall time of a batch-1 forward pass, in milliseconds (one thread)."""
    model = model.to("cpu").eval()
    x = torch.zeros(1, *input_shape)
    with torch_threads(1), torch.inference_mode():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def largest_architecture(
    space: SearchSpace, input_shape: Sequence[int], num_classes: int, measure: str = "params"
) -> tuple[Architecture, int]:
    """The architecture of the space with the most parameters (or FLOPs), and that count.

    Coordinate ascent over decisions, on models built on the meta device (cheap): start from the deepest
    architecture and set each decision to the choice that maximizes the count given the others, until
    nothing changes. Exact for the built-in families, where the count is monotone in each decision.
    """
    rng = np.random.default_rng(0)
    values = space.sample(rng).to_dict()
    depth = space.decisions[0]
    if depth.role == "depth":
        values[depth.name] = max(depth.choices)
    best = space._repair(values, rng)
    best_count = meta_count(space, best, input_shape, num_classes, measure)
    improved = True
    while improved:
        improved = False
        for decision in space.decisions:
            for choice in decision.choices:
                arch = space._repair({**best.to_dict(), decision.name: choice}, rng)
                if arch.get(decision.name) != choice:
                    continue  # inactive or masked here
                count = meta_count(space, arch, input_shape, num_classes, measure)
                if count > best_count:
                    best, best_count, improved = arch, count, True
    return best, best_count


def meta_count(
    space: SearchSpace, arch: Architecture, input_shape: Sequence[int], num_classes: int, measure: str = "params"
) -> int:
    """``arch``'s parameters (or FLOPs, as :func:`count_flops` counts them) from a model built on the meta
    device: no memory is allocated and no weight initialized, so it costs milliseconds even for a
    13M-parameter architecture that a parameter limit will reject."""
    with torch.device("meta"):
        model = build_model(arch, space.family, tuple(input_shape), num_classes)
        if measure == "params":
            return count_params(model)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(torch.zeros(1, *input_shape))  # eval: batch norm takes a batch of one on a 1x1 map
        return int(counter.get_total_flops())
