"""Declarative search spaces: the YAML ``space:`` section, its validation and the built-in spaces.

A space is declared per model family::

    space:
      name: my_cnn
      family: cnn
      depth: [1, 2, 3]                 # the per-layer decisions of layer k exist only if depth >= k
      per_layer: {filters: [16, 32], kernel_size: [3, 5], pooling: [max, none]}
      layers: {3: {filters: [32, 64]}}  # layer 3's own choices, in place of per_layer's
      head: {hidden_units: [64, 128], dropout: [0.0, 0.5]}
      training: {learning_rate: [0.001, 0.003]}

Decisions a family knows but the space leaves out take the family's default (a single fixed choice).
``layers`` gives single layers (stages) their own choices for some per-layer decisions, e.g. widths that grow
from stage to stage.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlnas.errors import SpaceError
from rlnas.space.core import Choice, Condition, Decision, SearchSpace
from rlnas.space.families import (
    ALLOWED_VALUES,
    FAMILIES,
    NB201_OPERATIONS,
    TRAINING_DECISIONS,
    VALUE_CHECKS,
    Family,
    Shape,
    layer_name,
)

ChoiceList = list[bool | int | float | str]
MAX_DEPTH = 64  # layers or blocks: the controller's observation and every table grow with the depth
MAX_CHOICES = 256  # values of one decision


class SpaceSpec(BaseModel):
    """The validated ``space:`` section of a config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    family: str
    depth: list[int] | None = None
    cell: dict[str, ChoiceList] = Field(default_factory=dict)
    per_layer: dict[str, ChoiceList] = Field(default_factory=dict)
    layers: dict[int, dict[str, ChoiceList]] = Field(default_factory=dict)
    head: dict[str, ChoiceList] = Field(default_factory=dict)
    training: dict[str, ChoiceList] = Field(default_factory=dict)

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if value not in FAMILIES:
            raise ValueError(f"unknown family {value!r}; allowed: {sorted(FAMILIES)}")
        return value

    @field_validator("depth")
    @classmethod
    def _positive_depth(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("depth needs at least one choice")
        if any(d < 1 for d in value):
            raise ValueError(f"depth choices must be >= 1, got {value}")
        if max(value) > MAX_DEPTH:
            raise ValueError(
                f"depth {max(value)} is more than rlnas searches (at most {MAX_DEPTH} layers or blocks); "
                f"choose depths between 1 and {MAX_DEPTH}"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"depth choices repeat a value: {value}")
        return sorted(value)

    @field_validator("cell", "per_layer", "head", "training")
    @classmethod
    def _bounded_choices(cls, value: dict[str, ChoiceList]) -> dict[str, ChoiceList]:
        for name, choices in value.items():
            if len(choices) > MAX_CHOICES:
                raise ValueError(
                    f"{name} has {len(choices)} choices; a decision holds at most {MAX_CHOICES}: keep the values "
                    "worth trying (e.g. a log-spaced grid)"
                )
        return value

    @field_validator("layers")
    @classmethod
    def _bounded_layers(cls, value: dict[int, dict[str, ChoiceList]]) -> dict[int, dict[str, ChoiceList]]:
        for choices in value.values():
            cls._bounded_choices(choices)
        return dict(sorted(value.items()))

    @model_validator(mode="after")
    def _check_sections(self) -> SpaceSpec:
        try:
            _sections(self)
        except SpaceError as err:
            raise ValueError(str(err)) from None
        return self


BUILTIN_SPACES: dict[str, dict[str, Any]] = {
    "cnn": {
        "name": "cnn",
        "family": "cnn",
        "depth": [1, 2, 3, 4],
        "per_layer": {
            "filters": [16, 32, 64],
            "kernel_size": [3, 5],
            "activation": ["relu", "elu", "leaky_relu"],
            "batch_norm": [True, False],
            "pooling": ["max", "avg", "none"],
        },
        "head": {"hidden_units": [32, 64, 128], "dropout": [0.0, 0.25, 0.5]},
        "training": {"learning_rate": [0.0003, 0.001, 0.003]},
    },
    "convnet": {
        "name": "convnet",
        "family": "convnet",
        "depth": [2, 3],
        "per_layer": {
            "block": ["plain", "residual", "inverted", "separable"],
            "width": [16, 32, 64],
            "blocks": [1, 2],
            "kernel_size": [3, 5],
            "expansion": [3, 6],
            "se": [False, True],
            "activation": ["relu", "silu"],
            "downsample": ["stride", "pool", "none"],
        },
        "head": {"dropout": [0.0, 0.2]},
        "training": {"learning_rate": [0.001, 0.003, 0.01]},
    },
    "nb201": {"name": "nb201", "family": "nb201", "cell": {"operations": list(NB201_OPERATIONS)}},
    "mlp": {
        "name": "mlp",
        "family": "mlp",
        "depth": [1, 2, 3],
        "per_layer": {"units": [32, 64, 128, 256], "activation": ["relu", "tanh", "elu"]},
        "head": {"dropout": [0.0, 0.2, 0.4]},
        "training": {"learning_rate": [0.0003, 0.001, 0.003, 0.01]},
    },
}


def builtin_space(name: str) -> dict[str, Any]:
    try:
        return copy.deepcopy(BUILTIN_SPACES[name])
    except KeyError:
        raise SpaceError(
            f"unknown built-in space {name!r}; choose one of {sorted(BUILTIN_SPACES)} or declare the space "
            "as a mapping (see docs/configs.md, 'Writing a search space')"
        ) from None


def _section(
    where: str,
    given: Mapping[str, list[Choice]],
    known: Mapping[str, tuple[Choice, ...] | None],
    kind: str | None = None,
) -> dict[str, tuple[Choice, ...]]:
    """Validate one section; ``kind`` names the value check when it is not the decision's own name."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SpaceError(f"space.{where}: unknown decision(s) {unknown}; allowed: {sorted(known)}")
    out: dict[str, tuple[Choice, ...]] = {}
    for role, default in known.items():
        if role in given:
            choices = tuple(given[role])
            if not choices:
                raise SpaceError(f"space.{where}.{role}: the choice list is empty; give at least one choice")
            allowed = ALLOWED_VALUES.get(kind or role)
            bad = [c for c in choices if allowed is not None and c not in allowed]
            if bad:
                raise SpaceError(f"space.{where}.{role}: {bad} not allowed; choose from {list(allowed or ())}")
            check = VALUE_CHECKS.get(kind or role)
            wrong = [c for c in choices if check is not None and not check[0](c)]
            if check is not None and wrong:
                raise SpaceError(f"space.{where}.{role}: {wrong} are not valid; the choices must be {check[1]}")
            out[role] = choices
        elif default is not None:
            out[role] = default
        elif where != "training":
            raise SpaceError(f"space.{where}.{role} is required for this family; give a list of choices")
    return out


def _sections(spec: SpaceSpec) -> tuple[dict[str, tuple[Choice, ...]], ...]:
    family = FAMILIES[spec.family]
    if family.depth_name and spec.depth is None:
        raise SpaceError(f"space.depth is required for family {spec.family!r}: a list of depths, e.g. [1, 2, 3]")
    if not family.depth_name and spec.depth is not None:
        raise SpaceError(f"family {spec.family!r} has no depth; remove space.depth")
    if spec.cell and not family.cell:
        raise SpaceError(f"family {spec.family!r} has no cell; remove space.cell")
    per_layer = _section("per_layer", spec.per_layer, family.per_layer)
    _layers(spec, per_layer)
    return (
        per_layer,
        _section("head", spec.head, family.head),
        _section("training", spec.training, TRAINING_DECISIONS),
        _cell(spec, family),
    )


def _layers(spec: SpaceSpec, per_layer: Mapping[str, tuple[Choice, ...]]) -> dict[int, dict[str, tuple[Choice, ...]]]:
    """Each layer's per-layer choices: ``per_layer`` with the layer's own entries of ``layers`` in place."""
    if spec.layers and spec.depth is None:
        raise SpaceError(f"family {spec.family!r} has no layers; remove space.layers")
    deepest = max(spec.depth or [0])
    out = {}
    for k in range(1, deepest + 1):
        given = spec.layers.get(k, {})
        own = _section(f"layers.{k}", given, {role: None for role in given}) if given else {}
        unknown = sorted(set(own) - set(per_layer))
        if unknown:
            raise SpaceError(f"space.layers.{k}: unknown decision(s) {unknown}; allowed: {sorted(per_layer)}")
        out[k] = {**per_layer, **own}
    beyond = sorted(k for k in spec.layers if not 1 <= k <= deepest)
    if beyond:
        raise SpaceError(
            f"space.layers names layer(s) {beyond}, but the deepest network has {deepest}; number layers from 1 "
            f"to {deepest}"
        )
    return out


def _cell(spec: SpaceSpec, family: Family) -> dict[str, tuple[Choice, ...]]:
    """``cell: {operations: [...]}`` sets every edge; ``cell: {edge_2_1: [...]}`` one edge."""
    if not family.cell:
        return {}
    given = dict(spec.cell)
    operations = given.pop("operations", None)
    defaults = {name: tuple(operations) if operations is not None else choices for name, choices in family.cell.items()}
    if operations is not None and not operations:
        raise SpaceError("space.cell.operations: the choice list is empty; give at least one operation")
    return {
        name: choices
        for name, choices in _section(
            "cell", {**{k: list(v) for k, v in defaults.items()}, **given}, defaults, kind="operation"
        ).items()
    }


def build_space(spec: SpaceSpec, input_shape: Shape) -> SearchSpace:
    """Expand a spec into ordered decisions: depth, per-layer decisions, head, training."""
    family: Family = FAMILIES[spec.family]
    per_layer, head, training, cell = _sections(spec)
    layers = _layers(spec, per_layer)
    decisions = []
    if spec.depth is not None:
        decisions.append(Decision(family.depth_name, tuple(spec.depth), role="depth"))
        for k in range(1, max(spec.depth) + 1):
            condition = None if k <= min(spec.depth) else Condition(family.depth_name, k)
            for role, choices in layers[k].items():
                needs = _requirement(family, k, role, layers[k])
                if needs is False:
                    continue  # e.g. an expansion ratio in a space without inverted-residual blocks
                own = needs if isinstance(needs, Condition) else condition
                decisions.append(Decision(layer_name(family, k, role), choices, own, role=role))
    decisions += [Decision(name, choices, role="operation") for name, choices in cell.items()]
    decisions += [Decision(role, choices, role=role) for role, choices in head.items()]
    decisions += [Decision(role, choices, role=role) for role, choices in training.items()]
    _check_pooling(spec, layers, input_shape)
    _check_kernels(layers, input_shape)
    return SearchSpace(spec.name, spec.family, decisions, family.make_constraint(input_shape))


def _requirement(
    family: Family, k: int, role: str, per_layer: Mapping[str, tuple[Choice, ...]]
) -> Condition | bool | None:
    """The condition of a role that ``family.requires`` ties to another role of layer ``k``: that condition,
    None where every choice of the other role allows it (only the depth conditions it), False where none
    does (the decision is left out)."""
    if role not in family.requires:
        return None
    other, values = family.requires[role]
    allowed = [c for c in per_layer[other] if c in values]
    if not allowed:
        return False
    if len(allowed) == len(per_layer[other]):
        return None
    return Condition(layer_name(family, k, other), values=tuple(allowed))


def _check_kernels(layers: Mapping[int, Mapping[str, tuple[Choice, ...]]], input_shape: Shape) -> None:
    """A kernel wider than the input sees padding only beyond it, at a cost that grows with its square (a
    kernel of 99 on 8x8 digits trains for minutes per child): refused where the space is built."""
    if len(input_shape) != 3:
        return
    size = min(int(input_shape[1]), int(input_shape[2]))
    wide = sorted({int(k) for own in layers.values() for k in own.get("kernel_size", ()) if int(k) > size})
    if wide:
        raise SpaceError(
            f"space: kernel_size {wide} is larger than the {input_shape[1]}x{input_shape[2]} input; choose odd "
            f"kernel sizes up to {size - (size + 1) % 2}"
        )


def _check_pooling(spec: SpaceSpec, layers: Mapping[int, Mapping[str, tuple[Choice, ...]]], input_shape: Shape) -> None:
    if not layers or len(input_shape) != 3:
        return
    role = "pooling" if "pooling" in layers[1] else "downsample"
    halving = [k for k, own in layers.items() if role in own and "none" not in own[role]]
    size = min(int(input_shape[1]), int(input_shape[2]))
    if halving and size >> (len(halving) - 1) < 2:
        where = f"space.per_layer.{role}" if not any(role in spec.layers.get(k, {}) for k in halving) else "space"
        raise SpaceError(
            f"{where}: the {role} choices halve the feature map at every one of layers (blocks or stages) "
            f"{halving}, but the input is only {input_shape[1]}x{input_shape[2]}: add 'none' to the {role} "
            "choices or reduce the depth"
        )
