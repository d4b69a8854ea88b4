"""Gradient-based architecture search on the supernet (``strategy: darts``, needs ``evaluation: oneshot``).

DARTS' continuous relaxation: every decision gets a vector of architecture logits, a softmax over its
(valid) choices, and the logits and the supernet's weights are updated in turn (bilevel, first order): the
logits on validation batches, the weights on training batches. Decisions of this tool's spaces change
shapes (depth, pooling, filters), so a weighted sum of every choice's output is not defined; as in GDAS
(Dong & Yang, 2019, the NAS-Bench-201 authors' differentiable method) each step samples one path from the
Gumbel-softmax of the logits (temperature annealed from ``tau_max`` to ``tau_min`` over the budget) and
multiplies the output of every chosen option by its straight-through gate (value 1, gradient of the soft
probability). Each ``ask`` runs ``steps_per_ask`` such steps and proposes the most probable architecture
(the derived architecture of DARTS; a sample of the softmax once that one was proposed); the evaluator
scores it with the shared weights, and the search loop, store, re-scoring and export are unchanged.
TensorBoard shows every decision's probabilities (``policy/``) and the share of parameter-free choices
in the derived architecture (``darts/parameter_free_share``, where DARTS' known collapse shows).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from rlnas.errors import ConfigError
from rlnas.models import nb201
from rlnas.space.core import Architecture, Choice
from rlnas.strategies.base import Strategy, StrategyContext, StrategyExhausted

log = logging.getLogger(__name__)

# choices that add no parameters to the network: where DARTS tends to collapse
PARAMETER_FREE = {"none", "skip_connect", "avg_pool_3x3", "max_pool_3x3"}
DARTS_FILE = "darts.pt"
MAX_REJECTIONS = 1000


class Darts(Strategy):
    name = "darts"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        from rlnas.oneshot.evaluator import OneShotEvaluator

        if not isinstance(ctx.evaluator, OneShotEvaluator):
            raise ConfigError("strategy darts searches a supernet; set evaluation=oneshot (--evaluation oneshot)")
        self.evaluator = ctx.evaluator
        self.settings = ctx.config.strategy.darts
        device = self.evaluator.device
        self.alphas = {
            d.name: torch.zeros(len(d.choices), device=device, requires_grad=True)
            for d in self.space.decisions
            if len(d.choices) > 1
        }
        self.optimizer = torch.optim.Adam(
            list(self.alphas.values()),
            lr=self.settings.arch_learning_rate,
            betas=(0.5, 0.999),
            weight_decay=self.settings.arch_weight_decay,
        )
        self.generator = torch.Generator(device=device).manual_seed(ctx.seed)
        self.asks = 0
        self.proposed: set[str] = set()
        self._load()

    # -- relaxation -------------------------------------------------------------------------------
    def temperature(self) -> float:
        progress = min(1.0, self.asks / max(1, self.ctx.config.budget.evaluations - 1))
        return self.settings.tau_max + (self.settings.tau_min - self.settings.tau_max) * progress

    def _logits(self, position: int, values: dict[str, Choice]) -> tuple[list[int], torch.Tensor | None]:
        decision = self.space.decisions[position]
        valid = self.space.valid_indices(position, values)
        alpha = self.alphas.get(decision.name)
        return valid, None if alpha is None else alpha[valid]

    def sample(self, temperature: float) -> tuple[Architecture, dict[str, torch.Tensor]]:
        """A path from the Gumbel-softmax of the logits within objective.max_params (rejection sampling: the
        supernet has no weights for larger paths), and the straight-through gate of each choice."""
        for _ in range(MAX_REJECTIONS):
            arch, gates = self._sample(temperature)
            if self.evaluator.feasible(arch):
                return arch, gates
        raise StrategyExhausted(
            f"{MAX_REJECTIONS} paths in a row from the relaxed distribution exceed objective.max_params"
        )

    def _sample(self, temperature: float) -> tuple[Architecture, dict[str, torch.Tensor]]:
        values: dict[str, Choice] = {}
        gates: dict[str, torch.Tensor] = {}
        position = self.space.next_position(0, values)
        while position is not None:
            decision = self.space.decisions[position]
            valid, logits = self._logits(position, values)
            if logits is None or len(valid) == 1:
                values[decision.name] = decision.choices[valid[0]]
            else:
                uniform = torch.rand(len(valid), generator=self.generator, device=logits.device)
                gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-10)))
                soft = F.softmax((logits + gumbel) / temperature, dim=0)
                pick = int(soft.argmax())
                gates[decision.name] = 1.0 - soft[pick].detach() + soft[pick]
                values[decision.name] = decision.choices[valid[pick]]
            position = self.space.next_position(position + 1, values)
        return Architecture(self.space.name, tuple(values.items())), gates

    def derived(self) -> Architecture:
        """The most probable architecture: the argmax of every active decision's (valid) logits (it may exceed
        objective.max_params: then it is proposed, found INFEASIBLE, and samples follow)."""
        values: dict[str, Choice] = {}
        position = self.space.next_position(0, values)
        while position is not None:
            valid, logits = self._logits(position, values)
            pick = 0 if logits is None else int(logits.argmax())
            values[self.space.decisions[position].name] = self.space.decisions[position].choices[valid[pick]]
            position = self.space.next_position(position + 1, values)
        return Architecture(self.space.name, tuple(values.items()))

    def step(self) -> float:
        """One bilevel step: the logits on a validation batch, then the weights on a training batch."""
        evaluator = self.evaluator
        evaluator.supernet.train()
        arch, gates = self.sample(self.temperature())
        x, y = evaluator.batch(evaluator.dataset.val)
        self.optimizer.zero_grad(set_to_none=True)
        with evaluator.seeded():
            loss = evaluator.loss(evaluator.supernet(x, arch, gates), y)
            loss.backward()
        self.optimizer.step()
        path, _ = self.sample(self.temperature())
        evaluator.train_steps(1, path)  # clears the gradient the architecture step left on the weights
        return float(loss.detach())

    # -- ask / tell -------------------------------------------------------------------------------
    def ask(self) -> Architecture:
        self.evaluator.warm_up()
        loss = math.nan
        for _ in range(self.settings.steps_per_ask):
            loss = self.step()
        self.asks += 1
        self._log(loss)
        arch = self.derived()
        tries = 0
        while arch.key in self.proposed:
            tries += 1
            if tries > 1000:
                raise StrategyExhausted("no architecture left that the relaxed distribution proposes")
            arch, _ = self.sample(1.0)
        self.proposed.add(arch.key)
        return arch

    def warm_start(self, records: list) -> None:  # type: ignore[type-arg]
        self.proposed.update(r.key for r in records)

    def _log(self, loss: float) -> None:
        probabilities: dict[str, dict[str, float]] = {}
        entropies: dict[str, float] = {}
        for name, alpha in self.alphas.items():
            p = F.softmax(alpha.detach(), dim=0).cpu()
            probabilities[name] = {str(c): float(v) for c, v in zip(self.space[name].choices, p, strict=True)}
            entropies[name] = float(-(p * p.clamp_min(1e-12).log()).sum())
        derived = self.derived()
        log10_p = sum(math.log10(max(probabilities[n][str(derived[n])], 1e-12)) for n in probabilities if n in derived)
        logger = self.ctx.logger
        logger.policy(self.asks, probabilities, entropies, log10_p)
        scalars = {
            "darts/architecture_loss": loss,
            "darts/temperature": self.temperature(),
            "darts/derived_params": self.evaluator.measure(derived)[1]["params"],
        }
        free = self.parameter_free_share(derived)
        if free is not None:
            scalars["darts/parameter_free_share"] = free
        logger.scalars(scalars, self.asks)

    def parameter_free_share(self, arch: Architecture) -> float | None:
        """The share of decisions that offer parameter-free operations and chose one (DARTS' collapse shows
        as this share going to 1); None when the space has no such decisions (the cnn family)."""
        operations = set(nb201.OPERATIONS) | PARAMETER_FREE
        mixed = []
        for d in self.space.decisions:
            choices = set(map(str, d.choices))
            # cell operations only (a cnn block's pooling "none" is not an operation left out)
            if d.name in arch and choices <= operations and choices & PARAMETER_FREE and choices - PARAMETER_FREE:
                mixed.append(d.name)
        if not mixed:
            return None
        return sum(1 for name in mixed if str(arch[name]) in PARAMETER_FREE) / len(mixed)

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self) -> None:
        """The architecture logits and their optimizer, beside the supernet (RUN/darts.pt)."""
        if self.ctx.run_dir is None:
            return
        from rlnas import atomic

        state = {
            "alphas": {k: v.detach().cpu() for k, v in self.alphas.items()},
            "optimizer": self.optimizer.state_dict(),
            "asks": self.asks,
        }
        atomic.save_with(self.ctx.run_dir / DARTS_FILE, lambda fh: torch.save(state, fh))

    def _load(self) -> None:
        path = None if self.ctx.run_dir is None else self.ctx.run_dir / DARTS_FILE
        if path is None or not path.is_file():
            return
        try:
            state = torch.load(path, map_location=self.evaluator.device, weights_only=True)
            with torch.no_grad():
                for name, value in state["alphas"].items():
                    self.alphas[name].copy_(value)
            self.optimizer.load_state_dict(state["optimizer"])
            self.asks = int(state["asks"])
        except Exception as err:  # a damaged file: the logits start again, the trials are kept
            log.warning("could not read %s (%s); the architecture logits start again", path, err)

    def close(self) -> None:
        self.save()
