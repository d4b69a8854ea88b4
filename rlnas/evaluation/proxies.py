"""Zero-cost proxies: scores of an untrained network from one minibatch, that rank architectures without
training them (Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS"; Mellor et al. 2021, "Neural
Architecture Search without Training"), and the baselines they must beat: parameters and FLOPs.

Every proxy takes the child network as rlnas builds it (input normalization included, freshly initialized
with a seeded generator) and a minibatch of the run's training split, on the run's device; higher is better.

* ``grad_norm``: the summed L2 norms of the loss gradient of every convolution and linear weight;
* ``snip``: the summed saliency ``|w * dL/dw|`` of those weights (Lee et al. 2019);
* ``synflow``: the summed ``|w * dR/dw|`` where R is the output of the network with every weight made
  positive, batch norm left out and an all-ones input (Tanaka et al. 2020), as log10 (it spans hundreds of
  orders of magnitude); data-free;
* ``naswot``: log |det K| of the Hamming-similarity kernel of the minibatch's binary activation codes (which
  units of each activation are positive);
* ``params``, ``flops``: torch's own counts.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn

from rlnas.data.core import Split, as_float
from rlnas.models.complexity import count_flops, count_params
from rlnas.models.ops import ACTIVATIONS

PROXIES = ("synflow", "naswot", "grad_norm", "snip", "params", "flops")
BATCH = 64  # examples in the proxies' minibatch (NASWOT's kernel is BATCH x BATCH)
_WEIGHTED = (nn.Conv2d, nn.Linear)


def minibatch(split: Split, seed: int, size: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` examples of ``split`` drawn with ``seed`` (the same for every architecture of a run)."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(split), generator=generator)[:size]
    return as_float(split.x[index]), split.y[index]


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, _WEIGHTED)]


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if y.dtype.is_floating_point:  # regression
        return nn.functional.mse_loss(out.reshape(-1), y.float())
    return nn.functional.cross_entropy(out, y)


def _gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model.train()
    model.zero_grad()
    _loss(model, x, y).backward()
    return [(w.detach(), w.grad.detach() if w.grad is not None else torch.zeros_like(w)) for w in _weights(model)]


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(sum(g.norm() for _, g in _gradients(model, x, y)))


def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(sum((w * g).abs().sum() for w, g in _gradients(model, x, y)))


def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net = copy.deepcopy(model).double().eval()  # eval: no dropout
    for module in list(net.modules()):  # the reference computes synflow on the network without batch norm
        for name, child in module.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, name, nn.Identity())
    with torch.no_grad():
        for param in net.parameters():
            param.abs_()
    net.zero_grad()
    net(torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)).sum().backward()
    total = sum(float((w.detach() * w.grad).abs().sum()) for w in _weights(net) if w.grad is not None)
    return math.log10(total) if 0 < total < math.inf else (math.inf if total > 0 else -math.inf)


def naswot(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    codes: list[torch.Tensor] = []
    kinds = tuple(type(factory()) for factory in ACTIVATIONS.values())

    def hear(module: nn.Module, _: object, out: torch.Tensor) -> None:
        active = 0.5 if isinstance(module, nn.Sigmoid) else 0.0  # which units are "on"
        codes.append((out.detach().reshape(len(out), -1) > active).double())

    hooks = [m.register_forward_hook(hear) for m in model.modules() if isinstance(m, kinds)]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    if not codes:
        return 0.0
    c = torch.cat(codes, dim=1)
    kernel = c @ c.T + (1 - c) @ (1 - c).T  # units on which two examples agree
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else float("-inf")


_DATA_PROXIES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "synflow": synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "snip": snip,
}


def compute(
    build: Callable[[], nn.Module],
    batch: tuple[torch.Tensor, torch.Tensor],
    input_shape: tuple[int, ...],
    seed: int,
    names: tuple[str, ...] = PROXIES,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, float], dict[str, float]]:
    """The proxies ``names`` of the network ``build()`` makes (initialized under ``seed``) on ``batch``, and
    the seconds each took."""
    unknown = sorted(set(names) - set(PROXIES))
    if unknown:
        raise ValueError(f"unknown zero-cost proxies {unknown}; known: {list(PROXIES)}")
    x, y = batch[0].to(device), batch[1].to(device)
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}
    with torch.random.fork_rng(devices=[]):  # the initialization and any dropout draw from ``seed`` only
        torch.manual_seed(seed)
        model = build().to(device)
        for name in names:
            start = time.perf_counter()
            if name in _DATA_PROXIES:
                values[name] = _DATA_PROXIES[name](model, x, y)
            elif name == "params":
                values[name] = float(count_params(model))
            else:
                values[name] = float(count_flops(copy.deepcopy(model).cpu(), input_shape))
            seconds[name] = time.perf_counter() - start
    return values, seconds


def kendall_tau(scores: Mapping[str, list[float]], truth: list[float]) -> dict[str, float]:
    """Kendall's tau-b of each proxy's scores against the trained scores ``truth``."""
    from scipy.stats import kendalltau

    return {name: float(kendalltau(values, truth).statistic) for name, values in scores.items()}
