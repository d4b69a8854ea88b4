"""Supernets: one network whose sub-networks are every architecture of a space (weight sharing).

``supernet(x, arch)`` computes the sub-network of ``arch`` with the shared weights, and
``supernet.extract(arch)`` copies those weights into the standalone child that ``build_model`` builds, so
the two compute the same function (tests check it). Training decisions (learning rate, batch size, ...)
are not part of a supernet.

- ``cnn`` family: block ``k`` holds one convolution with the most filters and the largest kernel of the
  space; a sub-network takes the first ``filters`` output and input channels (channel slicing) and the
  centre ``kernel x kernel`` of the kernel; blocks past its depth are skipped. Batch norm has one layer per
  (block, filters) choice; its statistics are recalibrated on training batches before a sub-network is
  scored (:meth:`Supernet.calibrate`), since they depend on the whole path. The first hidden layer of the
  head has one weight matrix per (depth, number of pooling blocks), sliced to the channels and hidden units
  of the path (sharing it across depths ranked architectures no better); the output layer is sliced to the
  hidden units.
- ``nb201`` family: every edge of every cell holds all operations; a sub-network runs the chosen one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlnas.errors import ConfigError, InvalidArchitecture
from rlnas.models import nb201
from rlnas.models.families import Normalize, TargetScale, build_model
from rlnas.models.ops import ACTIVATIONS, POOLING
from rlnas.space.core import Architecture, SearchSpace
from rlnas.space.families import FAMILIES, TRAINING_DECISIONS

Shape = tuple[int, ...]


class Gates:
    """``gates(x, *decisions)``: ``x`` times the gate of each named decision that has one."""

    def __init__(self, gates: Mapping[str, torch.Tensor]) -> None:
        self.gates = gates

    def __call__(self, x: torch.Tensor, *names: str) -> torch.Tensor:
        for name in names:
            gate = self.gates.get(name)
            if gate is not None:
                x = x * gate
        return x


class Supernet(nn.Module):
    """Shared weights of every architecture of one space; input normalization (and a regression's target
    scaling) included, as in a child network."""

    def __init__(
        self,
        space: SearchSpace,
        input_shape: Shape,
        num_outputs: int,
        mean: list[float],
        std: list[float],
        target: tuple[float, float] | None = None,
        max_params: int | None = None,
    ) -> None:
        """With ``max_params``, weights that only paths over that limit would use may be left out."""
        super().__init__()
        self.space = space
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_outputs = int(num_outputs)
        self.normalize = Normalize(mean, std, len(self.input_shape))
        self.target = None if target is None else TargetScale(*target)
        self.max_params = max_params

    def body(self, x: torch.Tensor, arch: Architecture, gates: Gates) -> torch.Tensor:
        raise NotImplementedError

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, arch: Architecture, gates: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The sub-network of ``arch`` on ``x``. ``gates`` (decision name -> a scalar whose value is 1) multiply
        the outputs that each decision chose, so that a relaxed search (DARTS/GDAS) gets the gradient of the
        loss with respect to each choice it made; they do not change the result."""
        out = self.body(self.normalize(x), arch, Gates(gates or {}))
        return out if self.target is None else self.target(out)

    def path_state(self, arch: Architecture) -> dict[str, torch.Tensor]:
        """The state dict of ``build_model(arch)``'s network as views of the shared weights."""
        raise NotImplementedError

    def child_state(self, arch: Architecture) -> dict[str, torch.Tensor]:
        """The state dict of ``build_model(arch)``'s network, copied from the shared weights."""
        return {name: value.detach().clone() for name, value in self.path_state(arch).items()}

    def path_params(self, arch: Architecture) -> int:
        """The parameter count of ``build_model(arch)``'s network (its weights and biases), from the shapes
        of the shared weights it uses: microseconds, where building the network costs a millisecond."""
        return sum(v.numel() for name, v in self.path_state(arch).items() if name.endswith((".weight", ".bias")))

    def path_modules(self, arch: Architecture) -> Iterator[nn.Module]:
        """The batch-norm layers the sub-network of ``arch`` uses."""
        raise NotImplementedError

    def extract(self, arch: Architecture) -> nn.Sequential:
        """The standalone child of ``arch`` (normalization, ``build_model``, target scaling) holding the
        shared weights: it computes what ``self(x, arch)`` computes in eval mode."""
        model = build_model(arch, self.space.family, self.input_shape, self.num_outputs)
        model.load_state_dict(self.child_state(arch))
        layers: list[nn.Module] = [self.normalize, model] + ([] if self.target is None else [self.target])
        return copy.deepcopy(nn.Sequential(*layers)).to("cpu")

    @torch.no_grad()
    def calibrate(self, arch: Architecture, batches: list[torch.Tensor]) -> None:
        """Recompute the batch-norm statistics of ``arch``'s path on ``batches`` (float inputs)."""
        norms = [m for m in self.path_modules(arch) if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms or not batches:
            return
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        was_training = self.training
        self.train()
        for x in batches:
            self(x, arch)
        self.train(was_training)
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum


class CnnSupernet(Supernet):
    """The ``cnn`` family's supernet (see the module docstring)."""

    def __init__(self, space: SearchSpace, input_shape: Shape, num_outputs: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(space, input_shape, num_outputs, *args, **kwargs)
        max_params = self.max_params
        family = FAMILIES["cnn"]
        depths = [int(d) for d in space[family.depth_name].choices]
        self.max_depth = max(depths)
        channels, height, width = self.input_shape
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleDict()
        widest = 0
        for k in range(1, self.max_depth + 1):
            filters = [int(f) for f in space[f"block{k}.filters"].choices]
            kernel = max(int(s) for s in space[f"block{k}.kernel_size"].choices)
            self.convs.append(nn.Conv2d(channels, max(filters), kernel, padding=kernel // 2))
            if True in space[f"block{k}.batch_norm"].choices:
                for f in filters:
                    self.norms[f"{k}_{f}"] = nn.BatchNorm2d(f)
            channels = max(filters)
            widest = max(widest, channels)
        hidden = [int(h) for h in space["hidden_units"].choices]
        # the head's first layer: one per (depth, pooling blocks), since the features of different blocks
        # and the flattened sizes differ; none where even the narrowest such layer exceeds max_params
        self.hidden = nn.ModuleDict()
        for depth in depths:
            narrowest = min(int(f) for f in space[f"block{depth}.filters"].choices)
            for pools in range(depth + 1):
                size = (height >> pools) * (width >> pools)
                if size and (max_params is None or narrowest * size * min(hidden) <= max_params):
                    self.hidden[f"{depth}_{pools}"] = nn.Linear(widest * size, max(hidden))
        self.output = nn.Linear(max(hidden), self.num_outputs)
        self.activations = nn.ModuleDict({name: make() for name, make in ACTIVATIONS.items()})
        self.pools = nn.ModuleDict({name: make() for name, make in POOLING.items()})

    def _blocks(self, arch: Architecture) -> Iterator[tuple[int, int, int, int, bool, str, str]]:
        """(block, input channels, filters, kernel, batch norm, activation, pooling) of the path."""
        channels = self.input_shape[0]
        for k in range(1, int(arch["num_blocks"]) + 1):
            filters = int(arch[f"block{k}.filters"])
            yield (
                k,
                channels,
                filters,
                int(arch[f"block{k}.kernel_size"]),
                bool(arch[f"block{k}.batch_norm"]),
                str(arch[f"block{k}.activation"]),
                str(arch[f"block{k}.pooling"]),
            )
            channels = filters

    def _kernel(self, k: int, c_in: int, filters: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        conv = self.convs[k - 1]
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        full = conv.weight.shape[-1]
        start = (full - size) // 2
        return conv.weight[:filters, :c_in, start : start + size, start : start + size], conv.bias[:filters]

    def _head(self, arch: Architecture, pools: int, features: int) -> tuple[torch.Tensor, ...]:
        hidden = int(arch["hidden_units"])
        key = f"{arch['num_blocks']}_{pools}"
        if key not in self.hidden:
            raise InvalidArchitecture(f"{arch.describe()} has more parameters than objective.max_params allows")
        first = self.hidden[key]
        assert isinstance(first, nn.Linear)
        return (
            first.weight[:hidden, :features],
            first.bias[:hidden],
            self.output.weight[:, :hidden],
            self.output.bias,
        )

    def body(self, x: torch.Tensor, arch: Architecture, gates: Gates) -> torch.Tensor:
        pools = 0
        for k, c_in, filters, size, norm, activation, pooling in self._blocks(arch):
            weight, bias = self._kernel(k, c_in, filters, size)
            x = gates(F.conv2d(x, weight, bias, padding=size // 2), f"block{k}.filters", f"block{k}.kernel_size")
            x = gates(self.activations[activation](x), f"block{k}.activation")
            if norm:
                x = self.norms[f"{k}_{filters}"](x)
            x = gates(self.pools[pooling](x), f"block{k}.batch_norm", f"block{k}.pooling")
            pools += pooling != "none"
        x = gates(x.flatten(1), "num_blocks")
        w1, b1, w2, b2 = self._head(arch, pools, x.shape[1])
        x = self.activations[str(arch["head_activation"])](F.linear(x, w1, b1))
        x = gates(x, "hidden_units", "head_activation", "dropout")
        return F.linear(F.dropout(x, float(arch["dropout"]), self.training), w2, b2)

    def path_modules(self, arch: Architecture) -> Iterator[nn.Module]:
        for k, _, filters, _, norm, _, _ in self._blocks(arch):
            if norm:
                yield self.norms[f"{k}_{filters}"]

    def path_state(self, arch: Architecture) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {}
        index = 0  # position in build_cnn's nn.Sequential
        pools = 0
        channels = self.input_shape[0]
        for k, c_in, filters, size, norm, _, pooling in self._blocks(arch):
            weight, bias = self._kernel(k, c_in, filters, size)
            state[f"{index}.weight"], state[f"{index}.bias"] = weight, bias
            index += 2  # conv, activation
            if norm:
                for name, value in self.norms[f"{k}_{filters}"].state_dict().items():
                    state[f"{index}.{name}"] = value
                index += 1
            index += 1  # pooling
            pools += pooling != "none"
            channels = filters
        h, w = self.input_shape[1], self.input_shape[2]
        for _ in range(pools):
            h, w = h // 2, w // 2
        w1, b1, w2, b2 = self._head(arch, pools, channels * h * w)
        index += 1  # flatten
        state[f"{index}.weight"], state[f"{index}.bias"] = w1, b1
        index += 3  # linear, activation, dropout
        state[f"{index}.weight"], state[f"{index}.bias"] = w2, b2
        return state


class NB201Supernet(Supernet):
    """The ``nb201`` cell space's supernet: every edge of every cell holds all the operations of its
    decision; the skeleton (stem, reductions, head) is shared by every path."""

    def __init__(self, space: SearchSpace, input_shape: Shape, num_outputs: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(space, input_shape, num_outputs, *args, **kwargs)
        full = space.make({name: space[name].choices[0] for name in nb201.EDGE_NAMES})
        net = build_model(full, "nb201", self.input_shape, self.num_outputs)
        assert isinstance(net, nn.Sequential)
        self.net = net
        self.edges = nn.ModuleList()  # per cell: edge -> operation -> module
        for cell in self._cells():
            self.edges.append(
                nn.ModuleList(
                    nn.ModuleDict({str(op): nb201._operation(str(op), cell.channels) for op in space[name].choices})
                    for name in nb201.EDGE_NAMES
                )
            )
            cell.ops = nn.ModuleList()  # the supernet's operations replace the cell's own
        self._cell_index = {id(cell): i for i, cell in enumerate(self._cells())}

    def _ops(self, cell: nn.Module, edge: int, arch: Architecture) -> nn.Module:
        """The module of ``arch``'s operation on ``edge`` of ``cell``."""
        per_edge = self.edges[self._cell_index[id(cell)]]
        assert isinstance(per_edge, nn.ModuleList)
        choices = per_edge[edge]
        assert isinstance(choices, nn.ModuleDict)
        return choices[str(arch[nb201.EDGE_NAMES[edge]])]

    def _cells(self) -> list[nb201.Cell]:
        return [m for m in self.net if isinstance(m, nb201.Cell)]

    def body(self, x: torch.Tensor, arch: Architecture, gates: Gates) -> torch.Tensor:
        for m in self.net:
            if isinstance(m, nb201.Cell):
                nodes = [x]
                for node in (1, 2, 3):
                    total: torch.Tensor | None = None
                    for e, (j, i) in enumerate(nb201.EDGES):
                        if j == node:
                            out = gates(self._ops(m, e, arch)(nodes[i]), nb201.EDGE_NAMES[e])
                            total = out if total is None else total + out
                    assert total is not None
                    nodes.append(total)
                x = nodes[3]
            else:
                x = m(x)
        return x

    def path_modules(self, arch: Architecture) -> Iterator[nn.Module]:
        for m in self.net:
            if not isinstance(m, nb201.Cell):
                yield from m.modules()
        for cell in self._cells():
            for e in range(len(nb201.EDGE_NAMES)):
                yield from self._ops(cell, e, arch).modules()

    def path_state(self, arch: Architecture) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {}
        for position, m in enumerate(self.net):
            if isinstance(m, nb201.Cell):
                for e in range(len(nb201.EDGE_NAMES)):
                    for key, value in self._ops(m, e, arch).state_dict().items():
                        state[f"{position}.ops.{e}.{key}"] = value
            else:
                for key, value in m.state_dict().items():
                    state[f"{position}.{key}"] = value
        return state


SUPERNETS: dict[str, type[Supernet]] = {"cnn": CnnSupernet, "nb201": NB201Supernet}


def oneshot_space(space: SearchSpace, training: dict[str, Any]) -> SearchSpace:
    """The space one-shot search explores: every training decision (learning rate, batch size, ...) pinned
    to the value the supernet trains with (``training``, the training config). Clear errors when the family
    has no supernet or that value is not among the decision's choices."""
    supernet_class(space)
    decisions = []
    for decision in space.decisions:
        if decision.role in TRAINING_DECISIONS and len(decision.choices) > 1:
            value = training[decision.role]
            try:
                index = decision.index(value)
            except Exception:
                raise ConfigError(
                    f"one-shot search trains the supernet with training.{decision.role}={value!r}, which is not a "
                    f"choice of the space's {decision.name} {list(decision.choices)}; set training.{decision.role} "
                    "to one of them"
                ) from None
            decision = type(decision)(decision.name, (decision.choices[index],), decision.condition, decision.role)
        decisions.append(decision)
    return SearchSpace(space.name, space.family, decisions, space.constraint)


def supernet_class(space: SearchSpace) -> type[Supernet]:
    """The supernet class of the space's family; a clear error for a family without one."""
    try:
        return SUPERNETS[space.family]
    except KeyError:
        why = NO_SUPERNET.get(space.family, "")
        raise ConfigError(
            f"one-shot search has supernets for the families {sorted(SUPERNETS)}, not {space.family!r} "
            f"(space {space.name!r}){why}; use evaluation=train"
        ) from None


NO_SUPERNET = {
    "convnet": ": its block types (plain, residual, inverted, separable) hold weights of different shapes and "
    "roles at the same place, which one shared set of weights does not stand for",
}
