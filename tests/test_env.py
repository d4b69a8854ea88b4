from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from rlnas_envs import ENV_ID, ArchitectureSearchEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlnas.evaluation import Evaluation, SyntheticEvaluator
from rlnas.space import SearchSpace


class Recorder:
    def __init__(self) -> None:
        self.seen = []

    def evaluate(self, arch):
        self.seen.append(arch)
        return Evaluation(reward=0.75, metrics={"val_accuracy": 0.8})


def test_passes_gymnasium_and_sb3_checkers(cnn_space: SearchSpace) -> None:
    env = ArchitectureSearchEnv(cnn_space, SyntheticEvaluator(cnn_space))
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env)


def test_registered_id_makes_the_env(cnn_space: SearchSpace) -> None:
    env = gym.make(ENV_ID, space=cnn_space, evaluator=SyntheticEvaluator(cnn_space))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert isinstance(env.unwrapped, ArchitectureSearchEnv)


def test_random_masked_episodes_end_in_valid_architectures(cnn_space: SearchSpace) -> None:
    recorder = Recorder()
    env = ArchitectureSearchEnv(cnn_space, recorder)
    rng = np.random.default_rng(0)
    for episode in range(30):
        env.reset(seed=episode)
        terminated, asked, reward = False, [], None
        while not terminated:
            mask = env.action_masks()
            assert mask.sum() > 1  # inactive and single-choice decisions are never asked
            asked.append(cnn_space.decisions[env.position].name)
            _, reward, terminated, truncated, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            assert not truncated
            if not terminated:
                assert reward == 0.0
        arch = info["architecture"]
        assert reward == 0.75 and info["evaluation"].reward == 0.75
        assert cnn_space.validate(arch) == arch
        assert len(asked) == len(set(asked)) and set(asked) <= set(arch)
        assert all(d.startswith(f"block{k}") is False for d in asked for k in range(arch["num_blocks"] + 1, 5))
    assert len(recorder.seen) == 30


def test_masks_cover_only_the_current_decisions_choices(cnn_space: SearchSpace) -> None:
    env = ArchitectureSearchEnv(cnn_space, Recorder())
    env.reset()
    first = cnn_space.decisions[env.position]
    assert first.name == "num_blocks"
    assert env.action_masks().tolist() == [True] * len(first.choices) + [False] * (
        cnn_space.max_choices - len(first.choices)
    )
    env.step(0)  # one block: blocks 2..4 are skipped later
    names = []
    while env.position is not None:
        names.append(cnn_space.decisions[env.position].name)
        env.step(int(np.flatnonzero(env.action_masks())[0]))
    assert not any(n.startswith("block2") for n in names)
    assert "head_activation" not in names  # a single choice: filled in, not asked


@pytest.mark.parametrize("action", ["masked", 99, -1])
def test_invalid_action_ends_the_episode_with_the_penalty(cnn_space: SearchSpace, action) -> None:
    recorder = Recorder()
    env = ArchitectureSearchEnv(cnn_space, recorder, invalid_action_reward=-2.0)
    env.reset()
    if action == "masked":
        while env.action_masks().all():  # move to a decision with fewer choices than the action space
            env.step(0)
        action = int(np.flatnonzero(~env.action_masks())[0])
    obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated
    assert reward == -2.0 and info["invalid_action"] is True
    assert recorder.seen == []  # nothing was evaluated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset()  # and the env is usable again
    assert env.position is not None


def test_exclude_masks_choices_whose_completions_were_all_evaluated(toy_space: SearchSpace) -> None:
    from rlnas.space.core import EvaluatedPrefixes

    evaluated = EvaluatedPrefixes(toy_space)
    env = ArchitectureSearchEnv(toy_space, Recorder(), exclude=evaluated)
    rng = np.random.default_rng(0)
    # evaluate every architecture that starts with depth 1 and 8 units: 4*3*3*3... ask the space
    prefix = {"num_layers": 1, "layer1.units": 8}
    position = [d.name for d in toy_space.decisions].index("layer1.activation")
    total = toy_space.completions(prefix, position)
    seen = set()
    while len(seen) < total:
        arch = toy_space.make({**toy_space.sample(rng).to_dict(), **prefix, "num_layers": 1})
        seen.add(arch.key)
        evaluated.add(arch)
    assert evaluated.exhausted(prefix, position)
    env.reset()
    env.step(0)  # num_layers = 1
    units = toy_space["layer1.units"]
    assert not env.action_masks()[units.index(8)]  # all of its completions were evaluated
    assert env.action_masks()[units.index(16)]
    # with exclusion, a full random walk never yields an evaluated architecture until none is left
    for _ in range(50):
        env.reset()
        terminated = False
        while not terminated:
            _, _, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        assert info["architecture"].key not in seen
