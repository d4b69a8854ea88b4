"""Neural-predictor-guided search: an MLP trained on the architectures evaluated so far predicts the reward
of candidates (mutations of the best and fresh samples); the most promising unseen one is evaluated."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rlnas.evaluation.base import Evaluation
from rlnas.space.core import Architecture
from rlnas.strategies.base import RandomSearch, StrategyContext
from rlnas.threads import torch_threads


class PredictorSearch(RandomSearch):
    name = "predictor"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.config.strategy.predictor
        self.history: list[tuple[Architecture, float]] = []
        self.seed = ctx.seed
        self._model: nn.Module | None = None
        self._fitted_on = 0

    def _fit(self) -> nn.Module:
        x = torch.as_tensor(np.stack([self.space.encode(a) for a, _ in self.history]))
        y = torch.as_tensor([r for _, r in self.history], dtype=torch.float32)
        y = (y - y.mean()) / (y.std() + 1e-8)
        with torch_threads(1), torch.random.fork_rng():
            torch.manual_seed(self.seed + len(self.history))
            layers: list[nn.Module] = []
            width = x.shape[1]
            for hidden in self.cfg.hidden:
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                width = hidden
            model = nn.Sequential(*layers, nn.Linear(width, 1))
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
            for _ in range(self.cfg.train_steps):
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(x).squeeze(1), y)
                loss.backward()
                optimizer.step()
        return model.eval()

    def _candidates(self) -> list[Architecture]:
        top = sorted(self.history, key=lambda item: -item[1])[:10]
        found: dict[str, Architecture] = {}
        for i in range(self.cfg.candidates):
            if i % 2 == 0 and top:
                arch = self.space.mutate(top[int(self.rng.integers(len(top)))][0], self.rng)
            else:
                arch = self.space.sample(self.rng)
            if arch.key not in self.seen:
                found[arch.key] = arch
        return list(found.values())

    def ask(self) -> Architecture:
        if len(self.history) < self.cfg.initial:
            return self.sample_new()
        candidates = self._candidates()
        if not candidates:
            return self.sample_new()
        if self._model is None or len(self.history) - self._fitted_on >= self.cfg.refit_every:
            self._model, self._fitted_on = self._fit(), len(self.history)
        model = self._model
        with torch.no_grad():
            scores = model(torch.as_tensor(np.stack([self.space.encode(a) for a in candidates]))).squeeze(1)
        best = candidates[int(torch.argmax(scores))]
        self.seen.add(best.key)
        return best

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        if not evaluation.cached:
            self.history.append((arch, float(evaluation.reward)))
