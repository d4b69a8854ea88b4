from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlnas.errors import InvalidArchitecture, SpaceError
from rlnas.models.families import build_model
from rlnas.space import Architecture, Condition, Decision, SearchSpace, SpaceSpec, build_space, builtin_space


def test_builtin_cnn_space_has_conditional_block_decisions(cnn_space: SearchSpace) -> None:
    names = [d.name for d in cnn_space.decisions]
    assert names[0] == "num_blocks"
    assert "block4.filters" in names and "learning_rate" in names
    assert cnn_space["block1.filters"].condition is None  # depth >= 1 always
    assert cnn_space["block3.filters"].condition == Condition("num_blocks", 3)


def test_inactive_decisions_are_dropped_and_keys_ignore_them(cnn_space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    arch = cnn_space.sample(rng)
    values = arch.to_dict()
    values["num_blocks"] = 1
    shallow = {k: v for k, v in values.items() if not k.startswith(("block2", "block3", "block4"))}
    a = cnn_space.make({**shallow, "block2.filters": 16})  # inactive value given: ignored
    b = cnn_space.make(shallow)
    assert a == b and a.key == b.key
    assert "block2.filters" not in a


def test_key_is_independent_of_order_and_changes_with_any_active_value(cnn_space: SearchSpace) -> None:
    arch = cnn_space.sample(np.random.default_rng(1))
    reordered = Architecture(arch.space, tuple(reversed(arch.items)))
    assert reordered.key == arch.key and reordered == arch
    changed = cnn_space.make({**arch.to_dict(), "dropout": 0.5 if arch["dropout"] != 0.5 else 0.0})
    assert changed.key != arch.key


def test_architecture_json_round_trip(cnn_space: SearchSpace) -> None:
    arch = cnn_space.sample(np.random.default_rng(2))
    again = Architecture.from_json(arch.to_json())
    assert again == arch and again.items == arch.items
    assert json.loads(arch.to_json())["space"] == "cnn"


def test_samples_and_mutations_are_valid_and_mutations_differ(cnn_space: SearchSpace) -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        arch = cnn_space.sample(rng)
        assert cnn_space.validate(arch) == arch
        child = cnn_space.mutate(arch, rng)
        assert cnn_space.validate(child) == child
        assert child != arch


def test_fair_samples_use_every_choice_evenly_and_respect_masks(cnn_space: SearchSpace, toy_space: SearchSpace) -> None:
    rng = np.random.default_rng(4)
    for _ in range(50):
        paths = toy_space.fair_sample(rng, 6)  # no masks: the active paths share every decision's choices evenly
        assert len(paths) == 6
        for decision in toy_space.decisions:
            used = [a[decision.name] for a in paths if decision.name in a]
            counts = [used.count(choice) for choice in decision.choices]
            assert max(counts) - min(counts) <= 1, (decision.name, used)
        for arch in cnn_space.fair_sample(rng, 6):  # masks (pooling on an 8x8 input) are respected
            assert cnn_space.validate(arch) == arch


def test_pooling_is_masked_once_the_feature_map_is_1x1(cnn_space: SearchSpace) -> None:
    # 8x8 input: three poolings reach 1x1, so the fourth block can only choose 'none'
    values = {"num_blocks": 4}
    for k in (1, 2, 3):
        values.update(
            {
                f"block{k}.filters": 16,
                f"block{k}.kernel_size": 3,
                f"block{k}.activation": "relu",
                f"block{k}.batch_norm": True,
                f"block{k}.pooling": "max",
            }
        )
    position = [d.name for d in cnn_space.decisions].index("block4.pooling")
    valid = cnn_space.valid_indices(position, values)
    assert [cnn_space.decisions[position].choices[i] for i in valid] == ["none"]
    with pytest.raises(InvalidArchitecture, match="not allowed"):
        cnn_space.make(
            {
                **values,
                "block4.filters": 16,
                "block4.kernel_size": 3,
                "block4.activation": "relu",
                "block4.batch_norm": True,
                "block4.pooling": "max",
                "hidden_units": 32,
                "head_activation": "relu",
                "dropout": 0.0,
                "learning_rate": 0.001,
            }
        )


def test_pooling_everywhere_on_a_small_input_is_rejected_at_build_time() -> None:
    spec = SpaceSpec(**{**builtin_space("cnn"), "per_layer": {"filters": [8], "kernel_size": [3], "pooling": ["max"]}})
    with pytest.raises(SpaceError, match="add 'none'"):
        build_space(spec, (1, 8, 8))
    build_space(spec, (1, 28, 28))  # 28 -> 14 -> 7 -> 3 -> 1: fine


def test_layers_give_single_layers_their_own_choices() -> None:
    spec = SpaceSpec(
        **{
            **builtin_space("convnet"),
            "layers": {2: {"width": [64, 128]}, 3: {"width": [128, 256], "block": ["plain"]}},
        }
    )
    space = build_space(spec, (1, 28, 28))
    assert space["stage1.width"].choices == (16, 32, 64)
    assert space["stage2.width"].choices == (64, 128)
    assert space["stage3.width"].choices == (128, 256)
    # stage 3 holds only plain blocks: its expansion ratio is left out, stage 2 keeps its condition on block
    assert (
        "stage3.expansion" not in [d.name for d in space.decisions] and space["stage2.expansion"].condition is not None
    )
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        if arch["num_stages"] == 3:
            assert arch["stage3.width"] in (128, 256) and arch["stage3.block"] == "plain"
            model = build_model(arch, "convnet", (1, 28, 28), 10)
            assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert SpaceSpec(**spec.model_dump()) == spec  # the section survives the run directory's round trip


def test_pooling_check_follows_the_layers_own_choices() -> None:
    base = {**builtin_space("cnn"), "per_layer": {"filters": [8], "kernel_size": [3], "pooling": ["max", "none"]}}
    build_space(SpaceSpec(**base), (1, 8, 8))
    forced = {k: {"pooling": ["max"]} for k in (1, 2, 3, 4)}
    with pytest.raises(SpaceError, match=r"layers \(blocks or stages\) \[1, 2, 3, 4\]"):
        build_space(SpaceSpec(**{**base, "layers": forced}), (1, 8, 8))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"per_layer": {"filters": [], "kernel_size": [3]}}, "empty"),
        ({"per_layer": {"filtres": [8], "kernel_size": [3]}}, "unknown decision"),
        ({"per_layer": {"filters": ["many"], "kernel_size": [3]}}, "positive integers"),
        ({"per_layer": {"filters": [8], "kernel_size": [4]}}, "odd"),
        ({"per_layer": {"filters": [8], "kernel_size": [3], "activation": ["swishy"]}}, "not allowed"),
        ({"per_layer": {"kernel_size": [3]}}, "filters is required"),
        ({"family": "transformer"}, "unknown family"),
        ({"depth": [0, 1]}, ">= 1"),
        ({"layers": {2: {"filtres": [8]}}}, r"layers.2: unknown decision"),
        ({"layers": {2: {"kernel_size": [4]}}}, r"layers.2.kernel_size: \[4\] are not valid"),
        ({"layers": {5: {"filters": [8]}}}, r"layer\(s\) \[5\], but the deepest network has 4"),
        ({"layers": {2: {"filters": []}}}, r"layers.2.filters: the choice list is empty"),
    ],
)
def test_bad_space_definitions_name_the_key(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpaceSpec(**{**builtin_space("cnn"), **change})


def test_unknown_builtin_space() -> None:
    with pytest.raises(SpaceError, match="unknown built-in space 'resnet'"):
        builtin_space("resnet")


def test_space_checks_conditions_reference_earlier_decisions() -> None:
    with pytest.raises(SpaceError, match="declared before"):
        SearchSpace("s", "mlp", [Decision("a", (1, 2), Condition("b", 2)), Decision("b", (1, 2))])
    with pytest.raises(SpaceError, match="no choices"):
        SearchSpace("s", "mlp", [Decision("a", ())])


def test_cardinality_counts_conditional_architectures(toy_space: SearchSpace) -> None:
    # per layer 4 units x 3 activations = 12; depth 1..3 -> 12 + 144 + 1728, times dropout 3 x lr 3
    assert toy_space.cardinality() == (12 + 12**2 + 12**3) * 9
    rng = np.random.default_rng(0)
    keys = {toy_space.sample(rng).key for _ in range(3000)}
    assert len(keys) > 1000


def test_encode_is_one_hot_of_active_decisions(toy_space: SearchSpace) -> None:
    arch = toy_space.sample(np.random.default_rng(5))
    enc = toy_space.encode(arch)
    assert enc.shape == (len(toy_space) * toy_space.max_choices,)
    assert enc.sum() == len(arch.items)
