"""Complexity measures of a child network: parameters, FLOPs and CPU latency per image."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rlnas.models.families import build_model
from rlnas.space.core import SearchSpace


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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(3):
                model(x)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(times) * 1000.0)


def max_params(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> int:
    """Parameter count of the largest architecture of the space.

    Coordinate ascent over decisions (models are built on the meta device, so this is cheap): start from
    a sampled architecture and repeatedly set each decision to the choice that maximizes the parameter
    count given the others, until nothing changes. Exact for the built-in families, where the count is
    monotone in each decision; a lower bound in general.
    """
    rng = np.random.default_rng(0)
    best = space.sample(rng)
    best_count = _meta_params(space, best, input_shape, num_classes)
    values = best.to_dict()
    # deepest first, so per-layer decisions of every block are active
    depth = space.decisions[0]
    if depth.role == "depth":
        values[depth.name] = max(depth.choices)
    improved = True
    while improved:
        improved = False
        for decision in space.decisions:
            for choice in decision.choices:
                trial = {**values, decision.name: choice}
                try:
                    arch = space._repair(trial, rng)
                except Exception:  # noqa: BLE001 - an invalid combination simply is not a candidate
                    continue
                if arch.get(decision.name) != choice:
                    continue
                count = _meta_params(space, arch, input_shape, num_classes)
                if count > best_count:
                    best, best_count, values, improved = arch, count, arch.to_dict(), True
    return best_count


def _meta_params(space: SearchSpace, arch, input_shape: Sequence[int], num_classes: int) -> int:  # type: ignore[no-untyped-def]
    with torch.device("meta"):
        return count_params(build_model(arch, space.family, tuple(input_shape), num_classes))
