"""Train a child network on the training split and score it on a held-out split."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from rlnas.data.core import Split, as_float
from rlnas.errors import ChildFailure
from rlnas.evaluation.resume import Checkpoint, TrainingState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reports:
    """How often a child's validation score is reported while it trains: ``per_epoch`` times per epoch, evenly
    over its steps (the epoch's end always), those within an epoch on a fixed random subset of at most
    ``examples`` validation examples (the same for every child; None: all of them), the epoch ends on all."""

    per_epoch: int = 1
    examples: int | None = None


EPOCH_ENDS = Reports()  # scores at the epoch ends only


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
    augment: str = "none"  # shift (+-2 px), crop (+-H/8 px, zero padded), flip (horizontal), crop_flip; per batch
    task: str = "classification"  # regression: MSE loss, scaled by the variance of the targets
    target_std: float = 1.0
    erasing: float = 0.0  # random erasing: the probability that an image gets a random rectangle blanked
    label_smoothing: float = 0.0
    schedule: str = "cosine"  # cosine, onecycle, constant (per step)
    warmup_epochs: float = 0.0  # linear warm-up (cosine, constant); onecycle: its rising phase, if given
    precision: str = "auto"  # auto: bf16 autocast on CUDA and, for images of 16x16 or more, on CPUs with native bf16
    ema: float = 0.0  # > 0: the trained model ends with the exponential moving average of its weights
    reports: Reports = EPOCH_ENDS  # validation scores within epochs (pruning can stop a child there)


@dataclass(frozen=True)
class EpochEnd:
    """What a child reports after each epoch of its training (or each part of one, with
    ``Reports.per_epoch`` > 1): ``epoch`` of ``epochs`` done (a fraction within an epoch), the mean
    training loss of the epoch so far and, where the training is scored as it goes, the validation ``score``
    (accuracy or R²) and every validation score (``scores``)."""

    epoch: float
    epochs: int
    train_loss: float | None = None
    score: float | None = None
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.epoch / max(self.epochs, 1)


OnEpoch = Callable[[EpochEnd], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: CUDA with bf16 support, or a CPU with AMX or AVX512-BF16
    (where bf16 autocast about doubles the throughput of convolutions; elsewhere it is emulated and slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def auto_bf16(device: torch.device, shape: Sequence[int]) -> bool:
    """``precision: auto``: bf16 autocast on CUDA, and on a CPU that computes bf16 natively when the inputs are
    images of at least 16x16 pixels (about 1.5x faster for the convnets of 28x28 images; for smaller inputs
    autocast's overhead outweighs the gain: the digits search takes 10 % longer)."""
    if device.type == "cuda":
        return native_bf16(device)
    return device.type == "cpu" and len(shape) == 3 and shape[1] * shape[2] >= 256 and native_bf16(device)


FUSED_DEVICES = ("cpu", "cuda")  # where torch's fused Adam / AdamW run (torch >= 2.4)


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer; weight decay applies to weights, not to biases and normalization parameters."""
    lr, wd = settings.learning_rate, settings.weight_decay
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trained if p.ndim > 1], "weight_decay": wd},
        {"params": [p for p in trained if p.ndim <= 1], "weight_decay": 0.0},
    ]
    params = [g for g in groups if g["params"]]
    # the fused kernel updates every tensor in one call (on a CPU, about half the optimizer's time for the small
    # children of a search); where it is not available (mps, xla, ...) torch's default implementation
    fused = all(p.device.type in FUSED_DEVICES and p.dtype.is_floating_point for p in trained) or None
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=fused)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=fused)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    raise ChildFailure(f"unknown optimizer {settings.optimizer!r}")


WARMUP_START = 1 / 25  # the warm-up's first learning rate, as a fraction of the peak (as one-cycle starts)


def make_schedule(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning rate per step: ``cosine`` annealing to zero, ``onecycle`` (rise then anneal) or
    ``constant``, after a linear warm-up of ``warmup_epochs`` (cosine, constant)."""
    total = max(1, settings.epochs * steps_per_epoch)
    warm = min(total - 1, round(settings.warmup_epochs * steps_per_epoch))
    if settings.schedule == "onecycle":
        rise = warm / total if warm > 0 else 0.3
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=rise)
    cosine = settings.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warm:
            return WARMUP_START + (1 - WARMUP_START) * step / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm))) if cosine else 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class WeightAverage:
    """An exponential moving average of a model's parameters and buffers (decay warmed up as
    ``min(decay, (1 + n) / (10 + n))`` over the first steps), copied into the model at the end."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for name, value in model.state_dict().items():
            kept = self.average[name]
            if kept.is_floating_point():
                kept.lerp_(value, 1.0 - decay)
            else:
                kept.copy_(value)  # counters (BatchNorm's num_batches_tracked)

    def apply(self, model: nn.Module) -> None:
        model.load_state_dict(self.average)


def random_erasing(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020; Cutout's generalization): each image, with ``probability``, gets a
    rectangle of 2-33 % of its area and aspect ratio 0.3-3.3 filled with the batch's channel means."""
    n, _, h, w = x.shape
    area = torch.empty(n).uniform_(0.02, 0.33, generator=generator) * h * w
    ratio = torch.exp(torch.empty(n).uniform_(math.log(0.3), math.log(1 / 0.3), generator=generator))
    eh = (area * ratio).sqrt().round().clamp(1, h).long()
    ew = (area / ratio).sqrt().round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    chosen = torch.rand(n, generator=generator) < probability
    rows, cols = torch.arange(h), torch.arange(w)
    inside_rows = (rows[None, :] >= top[:, None]) & (rows[None, :] < (top + eh)[:, None])
    inside_cols = (cols[None, :] >= left[:, None]) & (cols[None, :] < (left + ew)[:, None])
    mask = (inside_rows[:, :, None] & inside_cols[:, None, :] & chosen[:, None, None])[:, None].to(x.device)
    return torch.where(mask, x.mean(dim=(0, 2, 3), keepdim=True), x)


def random_shift(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) translated by a random offset in [-pad, pad]^2, zeros filled in."""
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    # drawn on the CPU (the same offsets on every device), copied without waiting for the GPU
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device, non_blocking=True)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device, non_blocking=True)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def augment_batch(x: torch.Tensor, augment: str, generator: torch.Generator, erasing: float = 0.0) -> torch.Tensor:
    """One batch of images with random augmentation (``augment`` as in :class:`TrainSettings`), then random
    erasing with probability ``erasing``."""
    if x.dim() != 4:
        return x
    x = _augment(x, augment, generator)
    return random_erasing(x, erasing, generator) if erasing > 0 else x


def _augment(x: torch.Tensor, augment: str, generator: torch.Generator) -> torch.Tensor:
    if augment == "none":
        return x
    if augment == "shift":
        return random_shift(x, 2, generator)
    if augment in ("crop", "crop_flip"):
        x = random_shift(x, max(1, round(min(x.shape[2], x.shape[3]) / 8)), generator)
    if augment in ("flip", "crop_flip"):
        flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device, non_blocking=True)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def loss_function(settings: TrainSettings) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy (classification) or the MSE of standardized targets (regression)."""
    if settings.task != "regression":
        return nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    scale = 1.0 / max(settings.target_std, 1e-12) ** 2
    mse = nn.MSELoss()

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return mse(out.reshape(-1), y) * scale

    return loss_fn


def train_model(
    model: nn.Module,
    train: Split,
    settings: TrainSettings,
    seed: int,
    on_epoch: OnEpoch | None = None,
    val: Split | None = None,
    score_name: str = "accuracy",
    checkpoint: Checkpoint | None = None,
) -> dict[str, float]:
    """Train ``model`` in place (mini-batch, shuffled by a generator seeded with ``seed``); ``on_epoch`` hears
    of every epoch (:class:`EpochEnd`), scored on ``val`` (its ``score_name`` as the score) where given.
    With ``checkpoint``, the training continues from the state saved there, saves its state at epoch ends and
    removes it when it ends.

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
    bf16 = settings.precision == "bf16" or (settings.precision == "auto" and auto_bf16(device, x_all.shape[1:]))
    # channels-last convolutions: faster on CUDA and under CPU bf16 autocast (1.3-1.5x, benchmarks/conv_layout.py)
    channels_last = x_all.dim() == 4 and (device.type == "cuda" or bf16)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    optimizer = make_optimizer(model, settings)
    steps = math.ceil(len(y_all) / settings.batch_size)
    scheduler = make_schedule(optimizer, settings, steps)
    average = WeightAverage(model, settings.ema) if settings.ema > 0 else None
    loss_fn = loss_function(settings)
    state = TrainingState(model, optimizer, scheduler, generator, average)
    first, earlier = (0, 0.0) if checkpoint is None else checkpoint.restore(state)
    start = time.perf_counter() - earlier
    loss_value = float("nan")
    # the steps after which scores are reported: the epoch's end, and evenly before it with per_epoch > 1
    # (every child reports as often, even one with fewer steps than reports: scored once, reported for each)
    per_epoch = settings.reports.per_epoch
    reports: dict[int, list[int]] = {}
    for k in range(1, per_epoch + 1):
        reports.setdefault(math.ceil(steps * k / per_epoch), []).append(k)
    within = None if val is None else _subset(val, settings.reports.examples)
    for epoch in range(first, settings.epochs):
        order = torch.randperm(len(y_all), generator=generator).to(device)
        # the loss stays on the device until a report: no host synchronisation per step on a GPU
        total, count = torch.zeros((), device=device), 0
        for step, i in enumerate(range(0, len(order), settings.batch_size), start=1):
            idx = order[i : i + settings.batch_size]
            if len(idx) >= 2 or len(order) == 1:  # a batch of one breaks BatchNorm
                optimizer.zero_grad(set_to_none=True)
                x = augment_batch(as_float(x_all[idx]), settings.augment, generator, settings.erasing)
                with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                    loss = loss_fn(model(x.contiguous(memory_format=layout)).float(), y_all[idx])
                loss.backward()
                optimizer.step()
                scheduler.step()
                if average is not None:
                    average.update(model)
                total += loss.detach() * len(idx)
                count += len(idx)
                if settings.max_seconds is not None and time.perf_counter() - start > settings.max_seconds:
                    raise ChildFailure(f"training exceeded the per-child limit of {settings.max_seconds:.3g} s")
            if step not in reports:
                continue
            loss_value = float(total) / max(count, 1)
            if not math.isfinite(loss_value):
                raise ChildFailure(f"non-finite training loss ({loss_value}) in epoch {epoch + 1}")
            log.debug("epoch %d/%d step %d loss %.4f", epoch + 1, settings.epochs, step, loss_value)
            if average is not None and step == steps and epoch + 1 == settings.epochs:
                average.apply(model)  # the last epoch is scored (and the model returned) with the averaged weights
            measured = (
                {} if val is None or within is None else scores(model, val if step == steps else within, settings.task)
            )
            model.train()
            for k in reports[step]:
                if on_epoch is not None:
                    done = epoch + 1 if k == per_epoch else epoch + k / per_epoch
                    on_epoch(EpochEnd(done, settings.epochs, loss_value, measured.get(score_name), measured))
        if checkpoint is not None and epoch + 1 < settings.epochs:
            checkpoint.save(epoch + 1, time.perf_counter() - start, state)
    if checkpoint is not None:
        checkpoint.remove()
    model.to(memory_format=torch.contiguous_format)
    return {"train_loss": loss_value, "train_seconds": time.perf_counter() - start}


def _subset(split: Split, examples: int | None) -> Split:
    """At most ``examples`` of ``split``, drawn at random with a fixed seed (the same for every child)."""
    if examples is None or examples >= len(split):
        return split
    keep = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:examples]
    return replace(split, x=split.x[keep], y=split.y[keep])


@torch.no_grad()
def outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The model's outputs (on the CPU) for inputs ``x`` (uint8 pixels or floats), batch by batch."""
    device = next(model.parameters()).device
    model.eval()
    parts = [model(as_float(x[i : i + batch_size].to(device))).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0)


def accuracy(model: nn.Module, split: Split, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on ``split``."""
    if len(split) == 0:
        return 0.0
    return float((outputs(model, split.x, batch_size).argmax(dim=1) == split.y).float().mean())


def scores(model: nn.Module, split: Split, task: str) -> dict[str, float]:
    """``{"accuracy"}`` for classification; ``{"r2", "mae", "rmse"}`` for regression."""
    if task == "classification":
        return {"accuracy": accuracy(model, split)}
    pred = outputs(model, split.x).reshape(-1).double()
    y = split.y.double()
    residual = ((pred - y) ** 2).sum()
    total = ((y - y.mean()) ** 2).sum().clamp_min(1e-12)
    return {
        "r2": float(1.0 - residual / total),
        "mae": float((pred - y).abs().mean()),
        "rmse": float(residual.div(max(len(y), 1)).sqrt()),
    }
