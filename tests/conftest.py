from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlnas.config import RunConfig, load_config
from rlnas.data import Dataset, load_dataset
from rlnas.space import SearchSpace, SpaceSpec, build_space, builtin_space

if "PYTEST_XDIST_WORKER" in os.environ:  # pytest -n N: N workers share the cores, one torch thread each
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the CLI subprocesses of the tests too
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATASETS = SHARED / "datasets"


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="session")
def cnn_space() -> SearchSpace:
    return build_space(SpaceSpec(**builtin_space("cnn")), (1, 8, 8))


@pytest.fixture
def toy_spec() -> SpaceSpec:
    """A small conditional MLP space (16956 architectures)."""
    return SpaceSpec(
        name="toy",
        family="mlp",
        depth=[1, 2, 3],
        per_layer={"units": [8, 16, 32, 64], "activation": ["relu", "tanh", "elu"]},
        head={"dropout": [0.0, 0.2, 0.4]},
        training={"learning_rate": [0.001, 0.003, 0.01]},
    )


@pytest.fixture
def toy_space(toy_spec: SpaceSpec) -> SearchSpace:
    return build_space(toy_spec, (1, 8, 8))


def tiny_config(*overrides: str) -> RunConfig:
    """Digits, a small CNN space and 1-epoch children: a real search in a few seconds."""
    base = [
        "space.depth=[1,2]",
        "space.per_layer.filters=[8,16]",
        "space.head.hidden_units=[16,32]",
        "training.epochs=1",
        "budget.evaluations=4",
        "strategy.ppo.episodes_per_update=2",
        "export.epochs=2",
        "logging.graph=false",
        "logging.policy_images=false",
    ]
    return load_config(None, base + list(overrides))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The ``rlnas`` command run in this process (no second of imports): exit code, stdout, stderr; argparse's
    own exits count as exit codes."""
    from rlnas.cli import main

    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = int(stop.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
