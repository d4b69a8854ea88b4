"""Tabular benchmarks: answer evaluations from a table instead of training.

The table is a CSV with columns ``arch,valid_acc_12ep,test_acc_200ep`` (NAS-Bench-201 architecture
strings, accuracies in percent), like ``shared/benchmarks/nb201_cifar10.csv``. The search sees only the
validation accuracy; the test accuracy is available through :meth:`TableEvaluator.test_accuracy` for
reporting the architecture a search selected, and never enters an :class:`Evaluation`.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path
from typing import Any

import torch

from rlnas.config import ObjectiveConfig
from rlnas.errors import ConfigError, DataError, InvalidArchitecture
from rlnas.evaluation import proxies
from rlnas.evaluation.base import Evaluation
from rlnas.evaluation.objective import Objective
from rlnas.evaluation.trainer import child_seed
from rlnas.models.complexity import meta_count
from rlnas.models.nb201 import EDGE_NAMES, arch_string, build_nb201, count_nb201_params, parse_arch_string
from rlnas.space.core import Architecture, SearchSpace

REQUIRED_COLUMNS = ("arch", "valid_acc_12ep", "test_acc_200ep")
INPUT_SHAPE, NUM_CLASSES = (3, 32, 32), 10  # the networks NAS-Bench-201 trained (CIFAR-10)


class BenchmarkTable:
    """An in-memory NAS-Bench-201-format table: arch string -> (validation %, test %)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"benchmark table {self.path} does not exist; pass a CSV with columns {REQUIRED_COLUMNS}")
        with self.path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"benchmark table {self.path} lacks column(s) {missing}; it needs {REQUIRED_COLUMNS}")
            self.rows: dict[str, tuple[float, float]] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    parse_arch_string(row["arch"])
                    self.rows[row["arch"]] = (float(row["valid_acc_12ep"]), float(row["test_acc_200ep"]))
                except (ValueError, KeyError, InvalidArchitecture) as err:
                    raise DataError(f"benchmark table {self.path}, line {line}: {err}") from None
        if not self.rows:
            raise DataError(f"benchmark table {self.path} has no rows")
        self.proxies: dict[tuple[str, int | None, str], float] = {}  # (proxy, seed, arch): shared by the runs

    def __len__(self) -> int:
        return len(self.rows)

    def optimum(self) -> tuple[str, float, float]:
        """The architecture with the best validation accuracy: (arch, validation %, test %)."""
        arch = max(self.rows, key=lambda a: (self.rows[a][0], -len(a)))
        return arch, *self.rows[arch]

    def best_test(self) -> float:
        return max(test for _, test in self.rows.values())


class TableEvaluator:
    """Evaluates NAS-Bench-201 cell architectures by table lookup. The reward is the search's
    :class:`Objective`: validation accuracy (fraction) minus ``lambda`` x params / the largest cell's params
    (params counted on the meta device when ``lambda`` > 0 or ``with_params``); no objective: the validation
    accuracy alone (the NAS-Bench-201 protocol)."""

    def __init__(
        self,
        space: SearchSpace,
        table: BenchmarkTable,
        objective: ObjectiveConfig | None = None,
        with_params: bool = False,
    ) -> None:
        self.space = space
        self.table = table
        self.objective: Objective | None = None
        if objective is not None and objective.lambda_ > 0:
            if objective.complexity != "params":
                raise ConfigError(
                    f"objective.complexity={objective.complexity}: a benchmark table knows only the parameter "
                    "count of its cells; set objective.complexity=params (or objective.lambda=0)"
                )
            self.objective = Objective(objective, self._params(space.make(dict.fromkeys(EDGE_NAMES, "nor_conv_3x3"))))
        self.with_params = with_params or self.objective is not None
        self.calls = 0

    def _params(self, arch: Architecture) -> int:
        return count_nb201_params(arch, INPUT_SHAPE[0], NUM_CLASSES)

    def _row(self, arch: Architecture) -> tuple[float, float]:
        key = arch_string(arch)
        try:
            return self.table.rows[key]
        except KeyError:
            raise DataError(f"architecture {key} is not in the benchmark table {self.table.path}") from None

    zero_cost_names = ("params", "flops", "synflow")  # the proxies of a cell that need no data (a table has none)

    def zero_cost(self, arch: Architecture, seed: int | None = None, names: tuple[str, ...] = ()) -> dict[str, float]:
        """The data-free proxies ``names`` of ``arch``'s network (``zero_cost_names``), as the trained
        evaluator's :meth:`zero_cost` names them: the counts, and synflow (an input of ones) of the network
        initialized under ``seed`` (default: one fixed by the architecture). Remembered by the table."""
        values = {}
        for name in names:
            if name not in self.zero_cost_names:
                raise ConfigError(
                    f"zero-cost proxy {name!r} needs training data, which a benchmark table does not have; "
                    f"use one of {', '.join(self.zero_cost_names)}"
                )
            key = (name, seed, arch.key)
            if key not in self.table.proxies:
                self.table.proxies[key] = self._proxy(name, arch, seed)
            values[f"zero_cost_{name}"] = self.table.proxies[key]
        return values

    def _proxy(self, name: str, arch: Architecture, seed: int | None) -> float:
        if name == "params":
            return float(self._params(arch))
        if name == "flops":
            return float(meta_count(self.space, arch, INPUT_SHAPE, NUM_CLASSES, measure="flops"))
        shapes = (torch.zeros(1, *INPUT_SHAPE), torch.zeros(1, dtype=torch.long))  # synflow reads the shape only
        build = functools.partial(build_nb201, arch, INPUT_SHAPE, NUM_CLASSES)
        seed = child_seed(0, arch) if seed is None else seed
        return proxies.compute(build, shapes, INPUT_SHAPE, seed, (name,))[0][name]

    def evaluate(self, arch: Architecture) -> Evaluation:
        self.calls += 1
        valid = self._row(arch)[0] / 100.0
        metrics = {"val_accuracy": valid}
        if self.with_params:
            metrics["params"] = float(self._params(arch))
        reward = self.objective(metrics) if self.objective is not None else valid
        return Evaluation(reward=reward, metrics=metrics)

    def test_accuracy(self, arch: Architecture) -> float:
        """The table's test accuracy (%) of ``arch``: for reporting a selected architecture only."""
        return self._row(arch)[1]


NATS_DATASETS = ("cifar10", "cifar100", "ImageNet16-120")


def write_nats_table(source: str | Path, out: str | Path, dataset: str = "cifar10", api: Any = None) -> int:
    """A table in this format from the public NATS-Bench topology files (the NAS-Bench-201 space; e.g. the
    folder ``NATS-tss-v1_0-3ffb9-simple``, read with ``pip install nats_bench``): for each of the 15,625
    architectures, the seed-averaged validation accuracy after 12 epochs (CIFAR-10: the ``cifar10-valid``
    split) and the test accuracy after 200 epochs. ``api``: an opened NATS-Bench API (for tests). Returns the
    number of rows written."""
    if dataset not in NATS_DATASETS:
        raise DataError(f"dataset {dataset!r}: NATS-Bench has {', '.join(NATS_DATASETS)}")
    if api is None:
        if not Path(source).exists():
            raise DataError(
                f"{source} does not exist; pass the NATS-Bench topology folder (NATS-tss-v1_0-3ffb9-simple)"
            )
        try:
            from nats_bench import create
        except ImportError:
            raise DataError("reading NATS-Bench files needs its API: pip install nats_bench") from None
        api = create(str(source), "tss", fast_mode=True, verbose=False)
    valid_split = "cifar10-valid" if dataset == "cifar10" else dataset
    target = Path(out)
    with target.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(REQUIRED_COLUMNS)
        for index in range(len(api)):
            arch = api.arch(index)
            parse_arch_string(arch)  # the cell this table format knows
            valid = api.get_more_info(index, valid_split, hp="12", is_random=False)
            test = api.get_more_info(index, dataset, hp="200", is_random=False)
            score = valid["valid-accuracy"] if "valid-accuracy" in valid else valid["valtest-accuracy"]
            writer.writerow([arch, f"{float(score):.6f}", f"{float(test['test-accuracy']):.6f}"])
    return len(api)
