"""One-shot evaluation: score architectures as sub-networks of one trained supernet (weight sharing).

Before the first score the supernet trains ``warmup_epochs`` on uniformly random (feasible) paths; before
each later score it trains ``steps_per_evaluation`` more steps, on the proposed architecture (ENAS: the
controller's samples train the weights that score them) or on random paths (SPOS). A random-path step
trains ``paths_per_step`` paths drawn strictly fair (FairNAS: at each decision the paths take its choices
in one random cyclic order) and takes one optimizer step on their summed gradients; with ``split_batch``
they share the step's batch, at the cost of one single-path step. Both rank architectures markedly better
than one path per step (docs/benchmarks.md). A score is the
sub-network's accuracy (R² for regression) on a fixed subset of the validation split after its batch-norm
statistics are recalibrated; it is stored as ``supernet_val_accuracy`` (``supernet_val_r2``), never as a
trained child's ``val_accuracy``. The strategies, the search loop, the store and everything after the
search (re-scoring by standalone training, final training, export) are those of multi-trial search.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from rlnas import atomic
from rlnas.config import OneShotConfig, TrainingConfig
from rlnas.data.core import Dataset, Split, as_float
from rlnas.errors import ChildFailure, InvalidArchitecture
from rlnas.evaluation.base import COMPLETE, FAILED, INFEASIBLE, Evaluation
from rlnas.evaluation.objective import Objective
from rlnas.evaluation.train import EpochEnd, OnEpoch, augment_batch, loss_function, make_optimizer, scores
from rlnas.evaluation.trainer import settings_for
from rlnas.models.complexity import cpu_latency_ms, meta_count
from rlnas.models.families import build_model
from rlnas.oneshot.supernet import Supernet, supernet_class
from rlnas.space.core import Architecture, SearchSpace

log = logging.getLogger(__name__)

SUPERNET_FILE = "supernet.pt"


class OneShotEvaluator:
    """Scores architectures with the shared weights of a supernet it trains as the search goes."""

    def __init__(
        self,
        space: SearchSpace,
        dataset: Dataset,
        training: TrainingConfig,
        oneshot: OneShotConfig,
        objective: Objective,
        seed: int,
        checkpoint: Path | None = None,
        evaluations: int = 0,
    ) -> None:
        """``evaluations`` (the budget) plans the supernet's cosine learning-rate schedule: the warm-up plus
        ``steps_per_evaluation`` per evaluation; past the plan the rate stays at its floor."""
        self.space = space
        self.dataset = dataset
        self.config = oneshot
        self.objective = objective
        self.checkpoint = checkpoint
        self.settings = settings_for(Architecture(space.name, ()), training, dataset)
        self.device = torch.device(self.settings.device)
        target = (dataset.target_mean, dataset.target_std) if dataset.task == "regression" else None
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.supernet: Supernet = supernet_class(space)(
                space,
                dataset.input_shape,
                dataset.num_outputs,
                dataset.mean,
                dataset.std,
                target,
                objective.config.max_params,
            ).to(self.device)
        self.optimizer = make_optimizer(self.supernet, self.settings)
        self.loss = loss_function(self.settings)
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.steps = 0  # supernet training steps so far
        self.budget = evaluations
        self.evaluations = 0
        self._orders: dict[int, torch.Tensor] = {}  # split -> indices left in this pass
        self._feasible: dict[str, tuple[bool, dict[str, float]]] = {}
        val = dataset.val
        pick = torch.randperm(len(val), generator=torch.Generator().manual_seed(seed))[: oneshot.score_examples]
        self.score_split = type(val)(x=val.x[pick], y=val.y[pick])
        self.on_epoch: OnEpoch | None = None  # progress of the warm-up (progress bars), in chunks of steps
        if checkpoint is not None and checkpoint.is_file():
            self._load(checkpoint)

    # -- training ---------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.dataset.train) / self.settings.batch_size))

    def batch(self, split: Split | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The next mini-batch of ``split`` (default: the training split; augmented as training.augment),
        in a seeded order that is reshuffled after every pass."""
        split = split if split is not None else self.dataset.train
        order = self._orders.get(id(split))
        if order is None or len(order) < 2:
            order = torch.randperm(len(split), generator=self.generator)
        idx, self._orders[id(split)] = order[: self.settings.batch_size], order[self.settings.batch_size :]
        x = augment_batch(as_float(split.x[idx]), self.settings.augment, self.generator)
        return x.to(self.device), split.y[idx].to(self.device)

    def random_path(self) -> Architecture:
        """A uniformly random architecture within objective.max_params (the supernet never trains paths
        that would be rejected)."""
        arch = self.space.sample(self.rng)
        for _ in range(100):
            if self.feasible(arch):
                return arch
            arch = self.space.sample(self.rng)
        return arch

    @contextlib.contextmanager
    def seeded(self) -> Iterator[None]:
        """Dropout draws from torch's global random state: within this block it is a fork of it, seeded
        from the evaluator's generator, so that supernet training repeats exactly (and resumes) whatever
        else in the process draws random numbers, and the global state is left as it was."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=self.generator)))
            yield

    def train_steps(self, steps: int, path: Architecture | None = None) -> float:
        """``steps`` supernet steps on ``path``, or (None) on ``oneshot.paths_per_step`` random paths per step,
        each on its share of the step's batch (``oneshot.split_batch``) or on all of it; the mean loss."""
        with self.seeded():
            return self._train_steps(steps, path)

    def _train_steps(self, steps: int, path: Architecture | None) -> float:
        self.supernet.train()
        total = 0.0
        for _ in range(steps):
            x, y = self.batch()
            paths = [path] if path is not None else self.random_paths(min(self.config.paths_per_step, len(y)))
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate()
            self.optimizer.zero_grad(set_to_none=True)  # paths not taken keep no gradient (Adam skips them)
            n = len(paths)
            parts = zip(x.tensor_split(n), y.tensor_split(n), strict=True) if self.config.split_batch else [(x, y)] * n
            for arch, (xs, ys) in zip(paths, parts, strict=True):
                loss = self.loss(self.supernet(xs, arch), ys)
                if not torch.isfinite(loss):
                    raise ChildFailure(f"non-finite supernet loss ({loss.item()}) at step {self.steps + 1}")
                share = len(ys) / len(y) if self.config.split_batch else 1 / n  # adds up to the mean loss
                (loss * share).backward()
                total += float(loss.detach()) * share
            self.optimizer.step()
            self.steps += 1
        return total / max(steps, 1)

    def random_paths(self, count: int) -> list[Architecture]:
        """``count`` random paths for one training step, within objective.max_params; several are drawn
        strictly fair (FairNAS: every decision's choices used as evenly as possible)."""
        if count == 1:
            return [self.random_path()]
        return [a if self.feasible(a) else self.random_path() for a in self.space.fair_sample(self.rng, count)]

    @property
    def planned_steps(self) -> int:
        return round(self.config.warmup_epochs * self.steps_per_epoch) + self.budget * self.config.steps_per_evaluation

    def learning_rate(self) -> float:
        """Cosine from training.learning_rate to 5 % of it over the planned steps (constant with no plan)."""
        if self.planned_steps == 0:
            return self.settings.learning_rate
        progress = min(1.0, self.steps / max(1, self.planned_steps))
        return self.settings.learning_rate * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    def warm_up(self) -> None:
        """The supernet's first ``warmup_epochs`` on random paths (done once, before the first score)."""
        steps = round(self.config.warmup_epochs * self.steps_per_epoch) - self.steps
        if steps <= 0:
            return
        start = time.perf_counter()
        chunk = max(1, self.steps_per_epoch // 10)
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            loss = self.train_steps(n)
            done += n
            if self.on_epoch is not None:
                self.on_epoch(EpochEnd(done, steps, float(loss)))
        log.info("supernet warm-up: %d steps in %.1f s (last loss %.4f)", steps, time.perf_counter() - start, loss)

    # -- scoring ----------------------------------------------------------------------------------
    def measure(self, arch: Architecture) -> tuple[bool, dict[str, float]]:
        """Whether ``arch`` is within objective.max_params, and its params / FLOPs (/ latency); FLOPs and
        latency only for a feasible architecture."""
        feasible, metrics = self._count(arch)
        shape, outputs = self.dataset.input_shape, self.dataset.num_outputs
        if "params" not in metrics:
            metrics["params"] = float(meta_count(self.space, arch, shape, outputs))
        if feasible and "flops" not in metrics:
            metrics["flops"] = float(meta_count(self.space, arch, shape, outputs, "flops"))
            if self.objective.config.complexity == "latency":
                metrics["latency_ms"] = cpu_latency_ms(build_model(arch, self.space.family, shape, outputs), shape)
        return feasible, metrics

    def _count(self, arch: Architecture) -> tuple[bool, dict[str, float]]:
        """Whether ``arch`` is within objective.max_params, and its parameter count when the supernet holds
        its weights (cached: the warm-up checks every random path, so this must cost microseconds)."""
        if arch.key not in self._feasible:
            try:
                params = self.supernet.path_params(arch)
            except InvalidArchitecture:  # the supernet left this path's head out: over max_params
                self._feasible[arch.key] = (False, {})
            else:
                limit = self.objective.config.max_params
                self._feasible[arch.key] = (limit is None or params <= limit, {"params": float(params)})
        return self._feasible[arch.key]

    def feasible(self, arch: Architecture) -> bool:
        """Whether ``arch`` is within objective.max_params (the supernet holds weights for it)."""
        return self._count(arch)[0]

    def score(self, arch: Architecture) -> dict[str, float]:
        """The sub-network's validation scores under the shared weights (``val_<score>`` names)."""
        batches = [self.batch()[0] for _ in range(self.config.calibration_batches)]
        self.supernet.calibrate(arch, batches)
        model = _Path(self.supernet, arch)
        return {f"val_{name}": value for name, value in scores(model, self.score_split, self.dataset.task).items()}

    def evaluate(self, arch: Architecture) -> Evaluation:
        start = time.perf_counter()
        failure = self.objective.config.failure_reward
        try:
            feasible, measured = self.measure(arch)
            if not feasible:
                return Evaluation(
                    failure,
                    INFEASIBLE,
                    {**measured, "duration_s": time.perf_counter() - start},
                    f"{measured['params']:.0f} parameters > objective.max_params={self.objective.config.max_params}",
                )
            self.warm_up()
            path = arch if self.config.path_sampling == "proposed" else None
            loss = self.train_steps(self.config.steps_per_evaluation, path)
            val = self.score(arch)
        except (ChildFailure, InvalidArchitecture, RuntimeError, ValueError) as err:
            log.warning("one-shot evaluation of %s failed: %s", arch.key, err)
            return Evaluation(
                failure, FAILED, {"duration_s": time.perf_counter() - start}, f"{type(err).__name__}: {err}"
            )
        self.evaluations += 1
        if self.checkpoint is not None and self.evaluations % self.config.checkpoint_every == 0:
            self.save()
        metrics = {
            **{f"supernet_{name}": value for name, value in val.items()},
            **measured,
            "supernet_steps": float(self.steps),
            "duration_s": time.perf_counter() - start,
        }
        if self.config.steps_per_evaluation:
            metrics["train_loss"] = loss
        return Evaluation(self.objective(metrics), COMPLETE, metrics)

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the supernet, its optimizer and its random state to the checkpoint file (atomically)."""
        if self.checkpoint is None:
            return
        state = {
            "supernet": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
            "generator": self.generator.get_state(),
            "rng": self.rng.bit_generator.state,
        }
        atomic.save_with(self.checkpoint, lambda fh: torch.save(state, fh))

    def _load(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            self.supernet.load_state_dict(state["supernet"])
            self.optimizer.load_state_dict(state["optimizer"])
        except Exception as err:  # a damaged file: start the supernet again rather than lose the run
            log.warning("could not read the supernet checkpoint %s (%s); the supernet starts again", path, err)
            return
        self.steps = int(state["steps"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        log.info("supernet restored from %s after %d steps", path, self.steps)

    def close(self) -> None:
        self.save()


class _Path(torch.nn.Module):
    """One sub-network of a supernet as a module (for the shared scoring functions)."""

    def __init__(self, supernet: Supernet, arch: Architecture) -> None:
        super().__init__()
        self.supernet = supernet
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.arch)
