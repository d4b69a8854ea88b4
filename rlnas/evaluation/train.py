"""Train a child network on the training split and score it on a held-out split."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from rlnas.data import Split
from rlnas.errors import ChildFailure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 5
    data_fraction: float = 1.0
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    device: str = "cpu"
    max_seconds: float | None = None
    augment: str = "none"  # "shift": every image moved by up to 2 pixels in each direction, per batch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(name)


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    params = model.parameters()
    lr, wd = settings.learning_rate, settings.weight_decay
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    raise ChildFailure(f"unknown optimizer {settings.optimizer!r}")


def random_shift(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) translated by a random offset in [-pad, pad]^2, zeros filled in."""
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def train_model(model: nn.Module, train: Split, settings: TrainSettings, seed: int) -> dict[str, float]:
    """Train ``model`` in place (mini-batch, shuffled by a generator seeded with ``seed``).

    Raises ChildFailure on a non-finite loss or when ``settings.max_seconds`` is exceeded.
    """
    device = torch.device(settings.device)
    model.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    n = len(train)
    if settings.data_fraction < 1.0:
        n = max(settings.batch_size, int(n * settings.data_fraction))
        subset = torch.randperm(len(train), generator=generator)[:n]
        x_all, y_all = train.x[subset], train.y[subset]
    else:
        x_all, y_all = train.x, train.y
    x_all, y_all = x_all.to(device), y_all.to(device)
    optimizer = make_optimizer(model, settings)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=settings.epochs * math.ceil(len(y_all) / settings.batch_size)
    )
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    loss_value = float("nan")
    for epoch in range(settings.epochs):
        order = torch.randperm(len(y_all), generator=generator).to(device)
        total, count = 0.0, 0
        for i in range(0, len(order), settings.batch_size):
            idx = order[i : i + settings.batch_size]
            if len(idx) < 2 and len(order) > 1:
                continue  # a batch of one breaks BatchNorm
            optimizer.zero_grad(set_to_none=True)
            x = x_all[idx] if settings.augment == "none" else random_shift(x_all[idx], 2, generator)
            loss = loss_fn(model(x), y_all[idx])
            if not torch.isfinite(loss):
                raise ChildFailure(f"non-finite training loss ({loss.item()}) in epoch {epoch + 1}")
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            if settings.max_seconds is not None and time.perf_counter() - start > settings.max_seconds:
                raise ChildFailure(f"training exceeded the per-child limit of {settings.max_seconds:.0f} s")
        loss_value = total / max(count, 1)
        log.debug("epoch %d/%d loss %.4f", epoch + 1, settings.epochs, loss_value)
    return {"train_loss": loss_value, "train_seconds": time.perf_counter() - start}


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on ``split``."""
    device = next(model.parameters()).device
    model.eval()
    correct = 0
    for i in range(0, len(split), batch_size):
        logits = model(split.x[i : i + batch_size].to(device))
        correct += int((logits.argmax(dim=1).cpu() == split.y[i : i + batch_size]).sum())
    return correct / max(len(split), 1)
