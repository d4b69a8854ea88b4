from __future__ import annotations

import numpy as np
import pytest
import torch

from rlnas.config import ObjectiveConfig
from rlnas.errors import InvalidArchitecture
from rlnas.evaluation.objective import Objective
from rlnas.models import build_model
from rlnas.models.complexity import count_flops, count_params, cpu_latency_ms, largest_architecture, meta_count
from rlnas.space import Architecture, SearchSpace, SpaceSpec, build_space, builtin_space


def _every_choice(space: SearchSpace):
    """For every decision and choice, one valid architecture that uses it (deepest depth)."""
    rng = np.random.default_rng(0)
    for decision in space.decisions:
        for choice in decision.choices:
            values = space.sample(rng).to_dict()
            values[space.decisions[0].name] = max(space.decisions[0].choices)
            values[decision.name] = choice
            if decision.condition is not None and decision.condition.values is not None:
                values[decision.condition.decision] = decision.condition.values[0]  # e.g. an inverted block
            if decision.role in ("pooling", "downsample"):  # keep the other blocks from pooling the map away
                for other in space.decisions:
                    if other.role == decision.role and other.name != decision.name:
                        values[other.name] = "none"
            arch = space._repair(values, rng)
            if arch.get(decision.name) == choice:
                yield decision.name, choice, arch


@pytest.mark.parametrize("space_name", ["cnn", "convnet", "mlp", "nb201"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_every_choice_builds_and_runs(space_name: str, shape: tuple[int, int, int]) -> None:
    space = build_space(SpaceSpec(**builtin_space(space_name)), shape)
    covered = set()
    for name, choice, arch in _every_choice(space):
        model = build_model(arch, space.family, shape, 10)
        out = model.eval()(torch.rand(3, *shape))
        assert out.shape == (3, 10), (name, choice)
        covered.add((name, repr(choice)))
    expected = {(d.name, repr(c)) for d in space.decisions for c in d.choices}
    assert covered == expected


def test_build_is_pure_and_rejects_incomplete_architectures(cnn_space: SearchSpace) -> None:
    arch = cnn_space.sample(np.random.default_rng(1))
    a, b = build_model(arch, "cnn", (1, 8, 8), 10), build_model(arch, "cnn", (1, 8, 8), 10)
    assert str(a) == str(b) and count_params(a) == count_params(b)
    broken = Architecture("cnn", tuple((k, v) for k, v in arch.items if k != "hidden_units"))
    with pytest.raises(InvalidArchitecture, match="hidden_units"):
        build_model(broken, "cnn", (1, 8, 8), 10)
    with pytest.raises(InvalidArchitecture, match="unknown model family"):
        build_model(arch, "vit", (1, 8, 8), 10)


def test_largest_architecture_bounds_every_sample(cnn_space: SearchSpace) -> None:
    _, biggest = largest_architecture(cnn_space, (1, 8, 8), 10)
    rng = np.random.default_rng(2)
    sizes = [count_params(build_model(cnn_space.sample(rng), "cnn", (1, 8, 8), 10)) for _ in range(300)]
    assert max(sizes) <= biggest
    # the known maximum: 4 blocks of 64 5x5 filters, no pooling, 128 hidden units
    expected = (1 * 64 * 25 + 64) + 3 * (64 * 64 * 25 + 64) + 4 * 2 * 64 + (64 * 64 * 128 + 128) + (128 * 10 + 10)
    assert biggest == expected


@pytest.mark.parametrize("space_name", ["cnn", "convnet", "mlp", "nb201"])
def test_meta_counts_equal_the_counts_of_the_real_model(space_name: str) -> None:
    shape = (3, 16, 12)
    space = build_space(SpaceSpec(**builtin_space(space_name)), shape)
    rng = np.random.default_rng(3)
    for _ in range(10):
        arch = space.sample(rng)
        model = build_model(arch, space.family, shape, 7)
        assert meta_count(space, arch, shape, 7) == count_params(model)
        assert meta_count(space, arch, shape, 7, "flops") == count_flops(model, shape)


def test_flops_and_latency_are_measured() -> None:
    space = build_space(SpaceSpec(**builtin_space("mlp")), (1, 8, 8))
    arch = space.make(
        {"num_layers": 1, "layer1.units": 32, "layer1.activation": "relu", "dropout": 0.0, "learning_rate": 0.001}
    )
    model = build_model(arch, "mlp", (1, 8, 8), 10)
    assert count_flops(model, (1, 8, 8)) == 2 * (64 * 32 + 32 * 10)
    assert cpu_latency_ms(model, (1, 8, 8), repeats=5) > 0


def test_objective_is_accuracy_minus_weighted_relative_complexity() -> None:
    objective = Objective(ObjectiveConfig(complexity="params", **{"lambda": 0.5}), max_complexity=1000)
    assert objective({"val_accuracy": 0.9, "params": 200}) == pytest.approx(0.9 - 0.5 * 0.2)
    flops = Objective(ObjectiveConfig(complexity="flops", **{"lambda": 0.1}), max_complexity=50)
    assert flops({"val_accuracy": 0.8, "params": 1e9, "flops": 50}) == pytest.approx(0.7)
    latency = Objective(ObjectiveConfig(complexity="latency", **{"lambda": 1.0}), max_complexity=4)
    assert latency({"val_accuracy": 1.0, "latency_ms": 1.0}) == pytest.approx(0.75)


def test_convnet_blocks_have_the_parameters_of_their_definition() -> None:
    """Each block type's parameter count from its textbook definition (no conv bias before BN)."""
    from rlnas.models.blocks import block

    def params(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    bn = 2  # weight and bias per channel
    assert params(block("plain", 8, 16, 3, 1, "relu", False, 1)) == 8 * 16 * 9 + bn * 16
    assert params(block("separable", 8, 16, 5, 2, "relu", False, 1)) == 8 * 25 + bn * 8 + 8 * 16 + bn * 16
    same = 16 * 16 * 9 + bn * 16
    assert params(block("residual", 16, 16, 3, 1, "relu", False, 1)) == 2 * same  # identity shortcut
    projected = 8 * 16 * 9 + bn * 16 + same + (8 * 16 + bn * 16)  # 1x1 conv + BN on the shortcut
    assert params(block("residual", 8, 16, 3, 2, "relu", False, 1)) == projected
    hidden = 16 * 6
    inverted = (16 * hidden + bn * hidden) + (hidden * 9 + bn * hidden) + (hidden * 16 + bn * 16)
    assert params(block("inverted", 16, 16, 3, 1, "silu", False, 6)) == inverted
    se = (hidden * 24 + 24) + (24 * hidden + hidden)  # squeeze to hidden / 4 units and excite, with biases
    assert params(block("inverted", 16, 16, 3, 1, "silu", True, 6)) == inverted + se
    x = torch.rand(2, 16, 9, 9)
    for kind in ("plain", "residual", "inverted", "separable"):
        out = block(kind, 16, 24, 3, 2, "relu", True, 3).eval()(x)
        assert out.shape == (2, 24, 5, 5), kind  # stride 2 rounds up, as convolutions with padding do


def test_expansion_is_a_decision_only_of_inverted_residual_stages() -> None:
    spec = builtin_space("convnet")
    space = build_space(SpaceSpec(**spec), (1, 28, 28))
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(200)]
    for arch in archs:
        for k in range(1, int(arch["num_stages"]) + 1):
            assert (f"stage{k}.expansion" in arch) == (arch[f"stage{k}.block"] == "inverted")
    assert {a.get("stage1.expansion") for a in archs} == {None, 3, 6}
    plain = build_space(
        SpaceSpec(**{**spec, "per_layer": {**spec["per_layer"], "block": ["plain", "residual"]}}), (1, 28, 28)
    )
    assert not any(d.role == "expansion" for d in plain.decisions)  # no inverted blocks: no expansion decision
    only = build_space(SpaceSpec(**{**spec, "per_layer": {**spec["per_layer"], "block": ["inverted"]}}), (1, 28, 28))
    assert only["stage1.expansion"].condition is None  # every stage-1 block is inverted


def test_every_declared_family_and_value_has_its_module() -> None:
    from rlnas.models.families import BUILDERS
    from rlnas.models.ops import ACTIVATIONS, POOLING
    from rlnas.space import families

    assert set(BUILDERS) == set(families.FAMILIES)
    assert set(ACTIVATIONS) == set(families.ACTIVATIONS) and set(POOLING) == set(families.POOLING)
    for name in families.ACTIVATIONS:  # each declared name builds a module
        assert isinstance(ACTIVATIONS[name](), torch.nn.Module)
