"""A learned surrogate of the reward: an ensemble of small MLPs on the architecture encoding.

Used by the ``predictor`` strategy (which evaluates the candidate it predicts best) and by the PPO
controller's screening (``strategy.ppo.screen_samples``: the policy samples several architectures per
evaluation and the surrogate picks the one to evaluate). The members are trained together as one batched
network (weights of shape ``members x ...``), each from its own initialization on its own bootstrap
resample of the data, so the spread of their predictions is an estimate of the surrogate's uncertainty.
Everything is seeded; the global torch RNG is not touched.
"""

from __future__ import annotations

import numpy as np
import torch

from rlnas.threads import torch_threads


def quantiles(values: np.ndarray) -> np.ndarray:
    """Each value's mid-rank quantile in (0, 1) (ties share their mean rank): targets that a few outliers,
    such as failed children, cannot dominate."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts + 1) / 2  # 0-based mean rank of each distinct value
    return (mean_rank[inverse] + 0.5) / len(values)  # type: ignore[no-any-return]


class EnsembleSurrogate:
    """``fit(x, y)`` on encodings and rewards; ``predict(x)`` returns the ensemble mean and standard
    deviation, in the units of ``y``."""

    def __init__(
        self,
        hidden: list[int],
        members: int = 5,
        train_steps: int = 200,
        learning_rate: float = 1e-2,
        weight_decay: float = 1e-4,
        bootstrap: bool = True,
    ) -> None:
        self.hidden = list(hidden)
        self.members = members
        self.train_steps = train_steps
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.bootstrap = bootstrap and members > 1
        self._layers: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._scale = (0.0, 1.0)

    @property
    def fitted(self) -> bool:
        return bool(self._layers)

    def _forward(self, x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``x``: (members, n, features) -> (members, n)."""
        for i, (weight, bias) in enumerate(layers):
            x = torch.baddbmm(bias, x, weight)
            if i < len(layers) - 1:
                x = torch.relu(x)
        return x.squeeze(-1)

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        xs = torch.as_tensor(x, dtype=torch.float32)
        ys = torch.as_tensor(y, dtype=torch.float32)
        mean, std = float(ys.mean()), float(ys.std()) if len(ys) > 1 else 1.0
        std = std if std > 1e-8 else 1.0
        self._scale = (mean, std)
        ys = (ys - mean) / std
        n, m = len(xs), self.members
        if self.bootstrap:  # each member sees its own resample (counts as weights, so every row stays usable)
            picks = torch.randint(0, n, (m, n), generator=generator)
            weights = torch.zeros(m, n).scatter_add_(1, picks, torch.ones(m, n))
        else:
            weights = torch.ones(m, n)
        layers: list[tuple[torch.Tensor, torch.Tensor]] = []
        width = xs.shape[1]
        for out in [*self.hidden, 1]:
            bound = 1.0 / width**0.5  # nn.Linear's default initialization
            weight = (torch.rand(m, width, out, generator=generator) * 2 - 1) * bound
            bias = (torch.rand(m, 1, out, generator=generator) * 2 - 1) * bound
            layers.append((weight.requires_grad_(), bias.requires_grad_()))
            width = out
        params = [t for layer in layers for t in layer]
        optimizer = torch.optim.Adam(params, lr=self.learning_rate, weight_decay=self.weight_decay)
        batch = xs.expand(m, -1, -1)
        with torch_threads(1), torch.enable_grad():  # callers may run under no_grad (SB3 collects rollouts so)
            for _ in range(self.train_steps):
                optimizer.zero_grad(set_to_none=True)
                loss = (weights * (self._forward(batch, layers) - ys) ** 2).sum() / weights.sum()
                loss.backward()
                optimizer.step()
        self._layers = [(w.detach(), b.detach()) for w, b in layers]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self._layers:
            raise RuntimeError("the surrogate is not fitted yet")
        xs = torch.as_tensor(x, dtype=torch.float32)
        with torch.no_grad():
            out = self._forward(xs.expand(self.members, -1, -1), self._layers)
        mean, std = self._scale
        values = out.numpy() * std + mean
        return values.mean(axis=0), values.std(axis=0)
