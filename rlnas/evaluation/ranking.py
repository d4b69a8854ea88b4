"""How well zero-cost proxies rank a config's architectures: ``rlnas proxies --config CFG --archs 50``.

Draws distinct architectures of the config's space (within its hard limits), computes every proxy of
:mod:`rlnas.evaluation.proxies` on one minibatch of the training split, trains each architecture as the search
would (the config's proxy training, scored on validation) and reports Kendall's tau of each proxy against the
trained score, with the cost per architecture of each.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rlnas.config import RunConfig
from rlnas.evaluation import proxies
from rlnas.evaluation.train import resolve_device
from rlnas.evaluation.trainer import ChildTrainer, child_seed
from rlnas.models.complexity import meta_count
from rlnas.space.core import Architecture, SearchSpace

log = logging.getLogger(__name__)


def sample_feasible(
    space: SearchSpace, config: RunConfig, input_shape: tuple[int, ...], outputs: int, count: int, seed: int
) -> list[Architecture]:
    """``count`` distinct architectures of ``space`` within ``objective.max_params`` / ``max_flops``."""
    rng = np.random.default_rng(seed)
    limits = {"params": config.objective.max_params, "flops": config.objective.max_flops}
    found: dict[str, Architecture] = {}
    for _ in range(count * 200):
        arch = space.sample(rng)
        if arch.key in found:
            continue
        if all(
            limit is None or meta_count(space, arch, input_shape, outputs, measure) <= limit
            for measure, limit in limits.items()
        ):
            found[arch.key] = arch
            if len(found) == count:
                break
    return list(found.values())


def proxy_ranking(
    config: RunConfig, count: int = 50, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Every proxy of ``count`` sampled architectures, their trained validation scores, and per proxy
    Kendall's tau against those scores and the mean seconds it took."""
    from rlnas.prepare import prepare

    prepared = prepare(config)
    dataset, space = prepared.dataset, prepared.space
    trainer = ChildTrainer(space, dataset, config.training, config.seed)
    archs = sample_feasible(space, config, dataset.input_shape, dataset.num_outputs, count, seed)
    batch = proxies.minibatch(dataset.train, seed)
    device = str(resolve_device(config.training.device))
    rows: list[dict[str, Any]] = []
    for i, arch in enumerate(archs):
        arch_seed = child_seed(config.seed, arch)
        values, seconds = proxies.compute(
            functools.partial(trainer.build, arch), batch, dataset.input_shape, arch_seed, device=device
        )
        start = time.perf_counter()
        _, metrics = trainer.validate(arch, arch_seed)
        rows.append(
            {
                "architecture": arch.to_dict(),
                "proxies": values,
                "proxy_seconds": seconds,
                "train_seconds": time.perf_counter() - start,
                "val_score": float(metrics[f"val_{dataset.score_name}"]),
            }
        )
        if progress is not None:
            progress(i + 1, len(archs))
    truth = [r["val_score"] for r in rows]
    taus = proxies.kendall_tau({name: [r["proxies"][name] for r in rows] for name in proxies.PROXIES}, truth)
    return {
        "config": config.space.name,
        "dataset": dataset.name,
        "architectures": len(rows),
        "seed": seed,
        "score": dataset.score_name,
        "kendall_tau": taus,
        "proxy_seconds_per_architecture": {
            name: statistics.fmean(r["proxy_seconds"][name] for r in rows) if rows else 0.0 for name in proxies.PROXIES
        },
        "train_seconds_per_architecture": statistics.fmean(r["train_seconds"] for r in rows) if rows else 0.0,
        "rows": rows,
    }
