"""Search-space core: decisions, architectures and the space that owns validity, masks and sampling."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlnas.errors import InvalidArchitecture, SpaceError

Choice = Any  # int | float | str | bool: anything JSON can hold
# constraint(values chosen so far, decision, candidate) -> whether the candidate is allowed
Constraint = Callable[[Mapping[str, Choice], "Decision", Choice], bool]


@dataclass(frozen=True)
class Condition:
    """A decision is active only while ``values[decision] >= min_value`` (a depth), or, with ``values``, while
    ``values[decision]`` is one of them (e.g. an expansion ratio only for inverted-residual blocks); never
    while ``decision`` itself is inactive."""

    decision: str
    min_value: int | None = None
    values: tuple[Choice, ...] | None = None

    def holds(self, value: Choice) -> bool:
        if self.values is not None:
            return any(value == v and type(value) is type(v) for v in self.values)
        return bool(value >= self.min_value)

    def to_dict(self) -> dict[str, Any]:
        if self.values is not None:
            return {"decision": self.decision, "values": list(self.values)}
        return {"decision": self.decision, "min_value": self.min_value}


@dataclass(frozen=True)
class Decision:
    """One named decision with a finite, ordered list of choices."""

    name: str
    choices: tuple[Choice, ...]
    condition: Condition | None = None
    role: str = ""  # the family's name for it ("filters", "learning_rate"), used by model builders

    def index(self, value: Choice) -> int:
        for i, choice in enumerate(self.choices):
            if choice == value and type(choice) is type(value) or _same_number(choice, value):
                return i
        raise InvalidArchitecture(f"{value!r} is not a choice of decision {self.name!r}; allowed: {list(self.choices)}")


def _same_number(a: Choice, b: Choice) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and float(a) == float(b)
    )


@dataclass(frozen=True, eq=False)
class Architecture:
    """An immutable architecture: the values of the active decisions of one space, by name.

    Two architectures that differ only in inactive decisions are the same architecture: only active
    decisions are stored, so equality, hashing and :attr:`key` treat them as one.
    """

    space: str
    items: tuple[tuple[str, Choice], ...]
    _lookup: dict[str, Choice] = field(init=False, repr=False)
    _key: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", dict(self.items))
        canonical = json.dumps(
            {"space": self.space, "decisions": sorted(self.items)}, sort_keys=True, separators=(",", ":")
        )
        object.__setattr__(self, "_key", hashlib.sha1(canonical.encode()).hexdigest()[:16])

    def __getitem__(self, name: str) -> Choice:
        return self._lookup[name]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Architecture) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __contains__(self, name: object) -> bool:
        return name in self._lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup)

    def get(self, name: str, default: Choice = None) -> Choice:
        return self._lookup.get(name, default)

    def to_dict(self) -> dict[str, Choice]:
        return dict(self.items)

    def to_json(self) -> str:
        return json.dumps({"space": self.space, "decisions": self.to_dict()})

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> Architecture:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        return cls(space=data["space"], items=tuple(data["decisions"].items()))

    @property
    def key(self) -> str:
        """Canonical key: the same network (inactive decisions ignored) gives the same key."""
        return self._key

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.items)


class SearchSpace:
    """A list of named decisions; owns validity, masks, sampling, mutation and encoding.

    Decisions are taken in order; a decision's condition may only refer to an earlier decision, and the
    optional ``constraint`` (e.g. "no more pooling than the input size allows") may only look at earlier
    values. Strategies and the environment never index choice lists themselves: they go through here.
    """

    def __init__(
        self,
        name: str,
        family: str,
        decisions: list[Decision],
        constraint: Constraint | None = None,
    ) -> None:
        self.name = name
        self.family = family
        self.decisions: tuple[Decision, ...] = tuple(decisions)
        self.constraint = constraint
        self._by_name = {d.name: d for d in self.decisions}
        self._check()

    def _check(self) -> None:
        seen: set[str] = set()
        if not self.decisions:
            raise SpaceError(f"search space {self.name!r} has no decisions")
        for d in self.decisions:
            if d.name in seen:
                raise SpaceError(f"search space {self.name!r}: decision {d.name!r} is declared twice")
            if not d.choices:
                raise SpaceError(f"search space {self.name!r}: decision {d.name!r} has no choices")
            if len(set(map(repr, d.choices))) != len(d.choices):
                raise SpaceError(f"search space {self.name!r}: decision {d.name!r} repeats a choice")
            if d.condition is not None and d.condition.decision not in seen:
                raise SpaceError(
                    f"search space {self.name!r}: decision {d.name!r} depends on "
                    f"{d.condition.decision!r}, which must be declared before it"
                )
            seen.add(d.name)

    # -- structure -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.decisions)

    def __getitem__(self, name: str) -> Decision:
        return self._by_name[name]

    @property
    def max_choices(self) -> int:
        return max(len(d.choices) for d in self.decisions)

    def is_active(self, decision: Decision, values: Mapping[str, Choice]) -> bool:
        cond = decision.condition
        if cond is None:
            return True
        if cond.decision not in values:
            return False
        return cond.holds(values[cond.decision])

    def valid_indices(self, position: int, values: Mapping[str, Choice]) -> list[int]:
        """Indices of the choices of decision ``position`` allowed after ``values``."""
        decision = self.decisions[position]
        valid = [
            i
            for i, choice in enumerate(decision.choices)
            if self.constraint is None or self.constraint(values, decision, choice)
        ]
        if not valid:
            raise SpaceError(
                f"search space {self.name!r}: no choice of {decision.name!r} is valid after "
                f"{dict(values)}; widen its choices (e.g. add 'none' to pooling) or reduce the depth"
            )
        return valid

    def next_position(self, position: int, values: Mapping[str, Choice]) -> int | None:
        """The first active decision at or after ``position``, or None when the architecture is complete."""
        for i in range(position, len(self.decisions)):
            if self.is_active(self.decisions[i], values):
                return i
        return None

    # -- architectures ---------------------------------------------------------------------------
    def make(self, values: Mapping[str, Choice]) -> Architecture:
        """Validate ``values`` and return the architecture (inactive decisions dropped)."""
        unknown = set(values) - set(self._by_name)
        if unknown:
            raise InvalidArchitecture(f"unknown decisions for space {self.name!r}: {sorted(unknown)}")
        chosen: dict[str, Choice] = {}
        for position, decision in enumerate(self.decisions):
            if not self.is_active(decision, chosen):
                continue
            if decision.name not in values:
                raise InvalidArchitecture(f"architecture misses active decision {decision.name!r}")
            index = decision.index(values[decision.name])
            if index not in self.valid_indices(position, chosen):
                raise InvalidArchitecture(f"{decision.name}={values[decision.name]!r} is not allowed after {chosen}")
            chosen[decision.name] = decision.choices[index]
        return Architecture(space=self.name, items=tuple(chosen.items()))

    def validate(self, arch: Architecture) -> Architecture:
        if arch.space != self.name:
            raise InvalidArchitecture(f"architecture of space {arch.space!r} given to space {self.name!r}")
        return self.make(arch.to_dict())

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random choice at every active decision (respecting masks)."""
        values: dict[str, Choice] = {}
        position = self.next_position(0, values)
        while position is not None:
            valid = self.valid_indices(position, values)
            decision = self.decisions[position]
            values[decision.name] = decision.choices[valid[int(rng.integers(len(valid)))]]
            position = self.next_position(position + 1, values)
        return Architecture(space=self.name, items=tuple(values.items()))

    def fair_sample(self, rng: np.random.Generator, count: int) -> list[Architecture]:
        """``count`` random architectures that use every decision's choices as evenly as possible (FairNAS's
        strict fairness): at each decision, the paths where it is active take its choices in one random
        cyclic order (a choice a mask forbids on a path is replaced by a random valid one)."""
        paths: list[dict[str, Choice]] = [{} for _ in range(count)]
        for position, decision in enumerate(self.decisions):
            order = [int(i) for i in rng.permutation(len(decision.choices))]
            active = [values for values in paths if self.is_active(decision, values)]
            for i, values in enumerate(active):
                valid = self.valid_indices(position, values)
                index = order[i % len(order)]
                if index not in valid:
                    index = valid[int(rng.integers(len(valid)))]
                values[decision.name] = decision.choices[index]
        return [Architecture(space=self.name, items=tuple(values.items())) for values in paths]

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one active decision to another valid choice; later decisions are repaired."""
        values = arch.to_dict()
        positions = [i for i, d in enumerate(self.decisions) if d.name in values and len(d.choices) > 1]
        if not positions:
            return arch
        for _ in range(10):
            position = int(rng.choice(positions))
            decision = self.decisions[position]
            prefix = {d.name: values[d.name] for d in self.decisions[:position] if d.name in values}
            alternatives = [
                i for i in self.valid_indices(position, prefix) if decision.choices[i] != values[decision.name]
            ]
            if alternatives:
                values[decision.name] = decision.choices[int(rng.choice(alternatives))]
                return self._repair(values, rng)
        return arch

    def crossover(self, a: Architecture, b: Architecture, rng: np.random.Generator) -> Architecture:
        """Uniform crossover: every decision from one parent or the other; the result is repaired."""
        values = {}
        for decision in self.decisions:
            donors = [p for p in (a, b) if decision.name in p]
            if donors:
                values[decision.name] = donors[int(rng.integers(len(donors)))][decision.name]
        return self._repair(values, rng)

    def _repair(self, values: Mapping[str, Choice], rng: np.random.Generator) -> Architecture:
        """Keep what is still valid, sample what became active or invalid."""
        chosen: dict[str, Choice] = {}
        position = self.next_position(0, chosen)
        while position is not None:
            decision = self.decisions[position]
            valid = self.valid_indices(position, chosen)
            current = values.get(decision.name)
            index = decision.index(current) if current is not None else None
            if index is None or index not in valid:
                index = valid[int(rng.integers(len(valid)))]
            chosen[decision.name] = decision.choices[index]
            position = self.next_position(position + 1, chosen)
        return Architecture(space=self.name, items=tuple(chosen.items()))

    def encode(self, values: Mapping[str, Choice] | Architecture) -> np.ndarray:
        """One-hot encoding, ``len(self) * max_choices`` floats; inactive decisions are all zero."""
        out = np.zeros((len(self.decisions), self.max_choices), dtype=np.float32)
        for i, decision in enumerate(self.decisions):
            if decision.name in values:
                out[i, decision.index(values[decision.name])] = 1.0
        return out.reshape(-1)

    def cardinality(self) -> int:
        """Number of distinct architectures (ignoring the constraint), for reports."""
        return _count(self, 0, {})

    def completions(self, values: Mapping[str, Choice], position: int) -> int:
        """Number of architectures (ignoring the constraint) that extend ``values``, decided up to before
        ``position``."""
        return _count(self, position, dict(values))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "decisions": [
                {
                    "name": d.name,
                    "choices": list(d.choices),
                    "condition": None if d.condition is None else d.condition.to_dict(),
                }
                for d in self.decisions
            ],
        }


class EvaluatedPrefixes:
    """Which partial architectures have every completion evaluated already.

    Lets a sequential proposer (the PPO environment) mask choices that can only lead to architectures
    that were evaluated, so a converged policy keeps proposing new ones near its mode.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.keys: set[str] = set()
        self.counts: dict[tuple[tuple[str, Choice], ...], int] = {}

    def add(self, arch: Architecture) -> None:
        if arch.key in self.keys:
            return
        self.keys.add(arch.key)
        prefix: list[tuple[str, Choice]] = []
        for decision in self.space.decisions:
            if decision.name in arch:
                prefix.append((decision.name, arch[decision.name]))
                key = tuple(prefix)
                self.counts[key] = self.counts.get(key, 0) + 1

    def exhausted(self, values: Mapping[str, Choice], next_position: int) -> bool:
        """Whether every completion of ``values`` (decided before ``next_position``) was evaluated."""
        done = self.counts.get(tuple(values.items()), 0)
        return done > 0 and done >= self.space.completions(values, next_position)


def _count(space: SearchSpace, position: int, values: dict[str, Choice]) -> int:
    nxt = space.next_position(position, values)
    if nxt is None:
        return 1
    decision = space.decisions[nxt]
    if any(d.condition is not None and d.condition.decision == decision.name for d in space.decisions):
        total = 0
        for choice in decision.choices:
            total += _count(space, nxt + 1, {**values, decision.name: choice})
        return total
    return len(decision.choices) * _count(space, nxt + 1, values)
