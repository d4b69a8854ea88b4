from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sb3_contrib import MaskablePPO

from rlnas.config import load_config
from rlnas.driver import Search, prepare
from rlnas.evaluation import SyntheticEvaluator
from rlnas.space import SearchSpace
from rlnas.strategies import StrategyContext, make_strategy
from rlnas.tracking import RunLogger
from tests.conftest import tiny_config


def _controller(space: SearchSpace, seed: int, run_dir: Path | None = None):
    return make_strategy("ppo", StrategyContext(space, load_config(None), seed, run_dir, RunLogger(None)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_learns_the_best_architecture_of_a_synthetic_reward(toy_space: SearchSpace, seed: int) -> None:
    evaluator = SyntheticEvaluator(toy_space, seed=100 + seed)  # reward: fraction of decisions matching
    controller = _controller(toy_space, seed)
    first = []
    for episode in range(300):
        arch = controller.ask()
        reward = evaluator.evaluate(arch)
        controller.tell(arch, reward)
        if episode < 30:
            first.append(reward.reward)
    mode, probability, table = controller.policy_mode()
    controller.close()
    assert mode == evaluator.target, (mode.describe(), evaluator.target.describe())
    assert probability > 0.9
    assert np.mean(first) < 0.7  # it did not start out knowing the answer
    assert set(table) <= {d.name for d in toy_space.decisions}


def test_ppo_is_reproducible_for_a_seed(toy_space: SearchSpace) -> None:
    def proposals(seed: int) -> list[str]:
        evaluator = SyntheticEvaluator(toy_space, seed=7)
        controller = _controller(toy_space, seed)
        keys = []
        for _ in range(40):
            arch = controller.ask()
            controller.tell(arch, evaluator.evaluate(arch))
            keys.append(arch.key)
        controller.close()
        return keys

    assert proposals(3) == proposals(3)
    assert proposals(3) != proposals(4)


def test_controller_is_checkpointed_into_the_run_dir(tmp_path: Path) -> None:
    config = tiny_config("budget.evaluations=6", "logging.tensorboard=false")
    prepared = prepare(config)
    search = Search(config, tmp_path / "run", evaluator=SyntheticEvaluator(prepared.space), space=prepared.space)
    search.run()
    search.close()
    checkpoint = tmp_path / "run" / "controller" / "ppo.zip"
    assert checkpoint.is_file()
    model = MaskablePPO.load(checkpoint, device="cpu")
    assert model.action_space.n == prepared.space.max_choices
