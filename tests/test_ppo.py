from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO

from rlnas.config import load_config
from rlnas.driver import Search
from rlnas.evaluation import Evaluation, SyntheticEvaluator
from rlnas.prepare import prepare
from rlnas.space import Architecture, SearchSpace
from rlnas.strategies import StrategyContext, WaitForResults, make_strategy
from rlnas.strategies.policy import head_groups, walk
from rlnas.strategies.rollout import actions_of
from rlnas.tracking import RunLogger
from tests.conftest import tiny_config


def _controller(space: SearchSpace, seed: int, *overrides: str):
    config = load_config(None, list(overrides))
    return make_strategy("ppo", StrategyContext(space, config, seed, None, RunLogger(None)))


def _is_elite(controller, arch: Architecture) -> bool:
    """Whether ``arch``, just asked, is an elite pick (beside the policy's rollout or, with elite_to_policy, in it)."""
    return arch.key in controller.elite.beside or arch.key in controller.elite.through


# a target whose decisions' best choices sit at different indices (0, 1, 2, 3)
TARGET = {
    "num_layers": 3,
    "layer1.units": 8,
    "layer1.activation": "tanh",
    "layer2.units": 64,
    "layer2.activation": "elu",
    "layer3.units": 16,
    "layer3.activation": "relu",
    "dropout": 0.2,
    "learning_rate": 0.01,
}


@pytest.mark.parametrize("heads", ["each", "kind"])
def test_the_policy_learns_each_decisions_own_choice(toy_space: SearchSpace, heads: str) -> None:
    """The policy with a head per decision, or per kind of decision (the default: the three layers' ``units``
    share one, whose best choices the target puts at three different indices), alone (no screening, no elite
    mutations), told the share of decisions equal to a target's: after 100 evaluations its most probable choice
    is the target's on at least 8 of the 9 decisions along the target's episode, in each of seeds 0-3
    (measured: 9, 9, 8, 8 with ``each``, 9, 8, 8, 9 with ``kind``). One output head shared by all decisions
    (SB3's, ``decision_heads=shared``) learns an index habit and fails this (7, 5, 7, 7)."""
    target = toy_space.make(TARGET)
    plain = ("strategy.ppo.screen_samples=1", "strategy.ppo.elite_share=0", f"strategy.ppo.decision_heads={heads}")
    for seed in range(4):
        evaluator = SyntheticEvaluator(toy_space, target=target)
        controller = _controller(toy_space, seed, *plain)
        rewards = []
        for _ in range(100):
            arch = controller.ask()
            evaluation = evaluator.evaluate(arch)
            controller.tell(arch, evaluation)
            rewards.append(evaluation.reward)
        table = controller.path_probabilities(target)
        controller.close()
        assert set(table) == set(TARGET)
        learned = [
            name for name, choices in table.items() if max(choices, key=choices.__getitem__) == str(target[name])
        ]
        assert len(learned) >= 8, (seed, table)
        assert np.mean(rewards[:20]) < 0.7  # it did not start out knowing the answer


def test_decision_heads_group_the_decisions_of_one_kind(toy_space: SearchSpace) -> None:
    names = [d.name for d in toy_space.decisions] + ["(end)"]
    kind = dict(zip(names, head_groups(toy_space, "kind"), strict=True))
    assert kind["layer1.units"] == kind["layer2.units"] == kind["layer3.units"]
    assert kind["layer1.activation"] == kind["layer3.activation"] != kind["layer1.units"]
    # the same number of choices is not the same kind: dropout, the learning rate and the activations differ
    assert len({kind["dropout"], kind["learning_rate"], kind["layer1.activation"], kind["num_layers"]}) == 4
    assert len(set(kind.values())) == 6  # depth, units, activation, dropout, learning rate, the end
    assert head_groups(toy_space, "each") == tuple(range(len(names)))
    assert head_groups(toy_space, "shared") == ()
    cell = prepare(load_config(None, ["space=nb201", "dataset.name=digits"])).space
    assert head_groups(cell, "kind") == ()  # one kind (every edge's operation): SB3's single head, as shared


@pytest.mark.parametrize(("given", "heads"), [(True, "each"), (False, "shared"), ("kind", "kind")])
def test_decision_heads_of_earlier_configs_still_load(given: object, heads: str) -> None:
    assert load_config(None, [f"strategy.ppo.decision_heads={str(given).lower()}"]).strategy.ppo.decision_heads == heads


def test_a_checkpoint_with_a_head_per_position_loads(tmp_path: Path, toy_space: SearchSpace) -> None:
    """A controller saved before heads by kind (its policy built with ``positions=N``) is restored with a head
    per decision, its weights unchanged."""
    controller = _controller(toy_space, 0, "strategy.ppo.decision_heads=each")
    policy = controller.rollout.policy
    model = controller.rollout.model
    model.policy_kwargs = {k: v for k, v in model.policy_kwargs.items() if k != "heads"} | {
        "positions": len(policy.heads)
    }
    model.save(tmp_path / "old.zip")
    restored = MaskablePPO.load(tmp_path / "old.zip", device="cpu")
    assert restored.policy.heads == policy.heads
    for (name, a), b in zip(policy.state_dict().items(), restored.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    controller.close()


def _learned(space: SearchSpace, seed: int, evaluations: int, *overrides: str) -> int:
    """Decisions along TARGET's episode whose most probable choice is the target's, after ``evaluations`` of
    the plain policy with per-decision heads (and ``overrides``), told the share of decisions equal to TARGET."""
    target = space.make(TARGET)
    evaluator = SyntheticEvaluator(space, target=target)
    plain = ("strategy.ppo.screen_samples=1", "strategy.ppo.elite_share=0", "strategy.ppo.decision_heads=true")
    controller = _controller(space, seed, *plain, *overrides)
    for _ in range(evaluations):
        arch = controller.ask()
        controller.tell(arch, evaluator.evaluate(arch))
    table = controller.path_probabilities(target)
    controller.close()
    return sum(max(choices, key=choices.__getitem__) == str(target[name]) for name, choices in table.items())


def test_imagined_updates_let_the_policy_learn_from_fewer_evaluations(toy_space: SearchSpace) -> None:
    """With imagined updates (each PPO update followed by one on 64 policy samples the surrogate rewards), the
    policy has learned more of the target's 9 decisions after 40 evaluations, seeds 0-3 (measured: 8, 9, 8, 7
    against 6, 9, 5, 6 without); no imagined episode is evaluated or masked as evaluated."""
    without = [_learned(toy_space, seed, 40) for seed in range(4)]
    imagined = [_learned(toy_space, seed, 40, "strategy.ppo.imagined_episodes=64") for seed in range(4)]
    assert sum(imagined) >= 30 and sum(without) <= 27, (imagined, without)
    controller = _controller(toy_space, 0, "strategy.ppo.imagined_episodes=64", "strategy.ppo.episodes_per_update=2")
    evaluator = SyntheticEvaluator(toy_space, target=toy_space.make(TARGET))
    asked = []
    for _ in range(24):
        asked.append(controller.ask())
        controller.tell(asked[-1], evaluator.evaluate(asked[-1]))
    assert controller.rollout.updates >= 8  # imagined updates ran after most of them (from 8 results on)
    assert controller.evaluated.keys == {arch.key for arch in asked}  # the imagined ones are not among them
    controller.close()


def _best_so_far(space: SearchSpace, seed: int, evaluations: int, *overrides: str) -> np.ndarray:
    evaluator = SyntheticEvaluator(space, seed=100 + seed)
    controller = _controller(space, seed, *overrides)
    rewards = []
    for _ in range(evaluations):
        arch = controller.ask()
        evaluation = evaluator.evaluate(arch)
        controller.tell(arch, evaluation)
        rewards.append(evaluation.reward)
    controller.close()
    return np.maximum.accumulate(rewards)


def _run(space: SearchSpace, seed: int, evaluations: int, *overrides: str, stalled: bool | None = None):
    """A plain policy (no screening, no elite mutations) after ``evaluations`` of a synthetic reward (0: up to
    its first update), and the keys it proposed; ``stalled`` fixes what the screen says about a stall."""
    controller = _controller(space, seed, "strategy.ppo.screen_samples=1", "strategy.ppo.elite_share=0", *overrides)
    if stalled is not None:
        controller.screen.stalled = lambda: stalled
    evaluator = SyntheticEvaluator(space, seed=100 + seed)
    keys = []
    while len(keys) < evaluations or (evaluations == 0 and controller.rollout.updates == 0):
        arch = controller.ask()
        controller.tell(arch, evaluator.evaluate(arch))
        keys.append(arch.key)
    return controller, keys


def _log10_probability(controller, arch: Architecture) -> float:
    return walk(controller.rollout.policy, controller.space, lambda d, probs, mask: d.choices.index(arch[d.name]))[1]


def test_imitation_moves_the_policy_to_its_best_results_unless_the_search_stalls(toy_space: SearchSpace) -> None:
    """imitate_top: after each PPO update, maximum likelihood on the best results so far (NAS-Bench-201's
    figures in docs/benchmarks.md, "Imitating the best results"). Each step raises their log-probability; after
    the first update the policy gives the best architecture a higher probability than without imitation, on each
    of seeds 0-3 (measured: 10^0.10 to 10^0.67 times as high); while the search is stalled there is no
    imitation (the same proposals as without)."""
    from rlnas.strategies.imagination import imitation_update

    imitate = "strategy.ppo.imitate_top=0.25"
    for seed in range(4):
        without, keys = _run(toy_space, seed, 0)
        imitating, imitated_keys = _run(toy_space, seed, 0, imitate)
        assert imitated_keys[:-1] == keys[:-1]  # the same samples before the first update (the last ask ran it)
        best = max(imitating.screen.history, key=lambda item: item[1])[0]
        gain = _log10_probability(imitating, best) - _log10_probability(without, best)
        assert gain > 0.05, (seed, gain)
        history, cfg = imitating.screen.history, imitating.cfg
        first = imitation_update(imitating.rollout.policy, toy_space, history, cfg)
        second = imitation_update(imitating.rollout.policy, toy_space, history, cfg)
        assert first is not None and second is not None and second > first, (seed, first, second)
        assert imitation_update(imitating.rollout.policy, toy_space, history[:1], cfg) is None
        for controller in (without, imitating):
            controller.close()
    stalled = _run(toy_space, 0, 40, imitate, stalled=True)
    assert stalled[1] == _run(toy_space, 0, 40, stalled=True)[1]
    assert stalled[1] != _run(toy_space, 0, 40, imitate, stalled=False)[1]


def test_screening_finds_good_architectures_with_fewer_evaluations(toy_space: SearchSpace) -> None:
    """Screening (the default: 16 policy samples per evaluation, the surrogate picks one) against the policy
    alone, elite mutations off in both, seeds 0-7, best reward so far after 30 evaluations (measured: 0.91
    screened, 0.77 without; with per-decision heads 0.92 and 0.72)."""
    no_elite = "strategy.ppo.elite_share=0"
    screened = np.mean([_best_so_far(toy_space, seed, 30, no_elite)[-1] for seed in range(8)])
    off = ("strategy.ppo.screen_samples=1", no_elite)
    alone = np.mean([_best_so_far(toy_space, seed, 30, *off)[-1] for seed in range(8)])
    assert screened > alone + 0.1, (screened, alone)


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
    import zipfile

    with zipfile.ZipFile(checkpoint, "a") as archive:  # a zip bomb: a few kB that unpack to 200 MB
        archive.writestr(zipfile.ZipInfo("padding"), b"\0" * (200 << 20), compress_type=zipfile.ZIP_DEFLATED)
    assert checkpoint.stat().st_size < 2 << 20
    resumed = Search.resume(tmp_path / "run", ["budget.evaluations=7"])
    assert not resumed.strategy.restored  # refused before unpacking: the policy starts afresh, trials kept
    resumed.close()


def test_elite_mutations_are_evaluated_beside_the_policy_not_through_it(toy_space: SearchSpace) -> None:
    """strategy.ppo.elite_share=0.5 (the default) without patience: once screening starts
    (8 results), half the evaluations are one-decision mutations of the best architecture so far, never a
    repeat; the PPO rollouts (the policy's episodes) hold only the policy's own samples, and an elite result
    told to PPO would be refused."""
    evaluator = SyntheticEvaluator(toy_space, seed=100)
    controller = _controller(toy_space, 0, "strategy.ppo.elite_patience=0", "strategy.ppo.elite_to_policy=false")
    told: list[tuple[Architecture, float]] = []
    elite = 0
    for _ in range(48):
        arch = controller.ask()
        if arch.key in controller.elite.beside:
            elite += 1
            best = max(told, key=lambda item: item[1])[0].to_dict()
            mutated = arch.to_dict()
            assert len([name for name in set(best) & set(mutated) if best[name] != mutated[name]]) == 1
        evaluation = evaluator.evaluate(arch)
        controller.tell(arch, evaluation)
        told.append((arch, evaluation.reward))
    episodes = controller.rollout.episodes
    controller.close()
    assert len({arch.key for arch, _ in told}) == 48
    # the elite picks catch up with half of all evaluations, then alternate with the policy's (a pick falls back
    # to the policy when every one-decision mutation of the incumbent was evaluated)
    assert 20 <= elite <= 24
    assert episodes == 48 - elite


def test_elite_mutations_pause_when_they_stop_beating_the_best(toy_space: SearchSpace) -> None:
    """strategy.ppo.elite_patience=2: after two elite picks in a row that did not beat the best reward so far,
    every evaluation is the policy's until some result (the policy's) beats it; then the picks resume
    (measured on seeds 0-3: they resume in seeds 1 and 2; 4-8 picks in 40 evaluations)."""
    resumed = 0
    for seed in range(4):
        evaluator = SyntheticEvaluator(toy_space, seed=100 + seed)
        patience = "strategy.ppo.elite_patience=2"
        controller = _controller(toy_space, seed, "strategy.ppo.elite_share=0.5", patience)
        best, misses, elite = -np.inf, 0, 0
        for _ in range(40):
            arch = controller.ask()
            is_elite = _is_elite(controller, arch)
            if is_elite:
                assert misses < 2, "an elite pick after two misses in a row, with no new best in between"
                elite += 1
            evaluation = evaluator.evaluate(arch)
            controller.tell(arch, evaluation)
            if evaluation.reward > best:
                resumed += misses == 2
                best, misses = evaluation.reward, 0
            elif is_elite:
                misses += 1
        controller.close()
        assert 2 <= elite <= 12  # without patience: about half of the 32 after screening starts
    assert resumed >= 1  # a new best from the policy let the picks resume


def _two_workers(space: SearchSpace, *overrides: str) -> tuple[int, int, int]:
    """Drive the controller as the search loop does with 2 workers (ask while one is free, the oldest child
    finishes first): (times a free worker had to wait once 8 results were in, elite picks, PPO episodes) over 48
    children."""
    evaluator = SyntheticEvaluator(space, seed=100)
    controller = _controller(space, 0, *overrides)
    running: list[Architecture] = []
    waits = elite = done = 0
    while done < 48:
        while len(running) < 2 and done + len(running) < 48:
            try:
                arch = controller.ask()
            except WaitForResults:
                waits += done >= 8
                break
            elite += arch.key in controller.elite.beside
            running.append(arch)
        arch = running.pop(0)
        controller.tell(arch, evaluator.evaluate(arch))
        done += 1
    episodes = controller.rollout.episodes
    controller.close()
    return waits, elite, episodes


def test_elite_picks_fill_the_workers_that_wait_for_the_end_of_a_rollout(toy_space: SearchSpace) -> None:
    """With 2 workers the PPO update waits for its rollout's last child; without elite mutations the other
    worker idles at every rollout's end (4 times after the first 8 results here), with them it gets an elite
    pick instead once they have started (8 results), so it never idles. PPO's episodes stay the policy's."""
    waits, elite, episodes = _two_workers(toy_space, "strategy.ppo.elite_share=0")
    assert elite == 0 and episodes == 48 and waits >= 3
    waits, elite, episodes = _two_workers(toy_space, "strategy.ppo.elite_share=0.5")
    assert waits == 0 and elite > 0 and episodes == 48 - elite


def test_elite_picks_train_the_policy_with_elite_to_policy(toy_space: SearchSpace) -> None:
    """strategy.ppo.elite_to_policy=true: an elite pick is an episode of the policy's rollout (its actions in
    the buffer, as a screened sample's are), so every evaluation reaches a PPO update; told as a policy result.
    Also without screening (the plan needs no screening), and with 2 workers a pick the rollout cannot take
    while its update waits goes beside it, so no worker idles."""
    for screen in ("16", "1"):
        evaluator = SyntheticEvaluator(toy_space, seed=100)
        controller = _controller(
            toy_space,
            0,
            "strategy.ppo.elite_patience=0",
            "strategy.ppo.elite_to_policy=true",
            f"strategy.ppo.screen_samples={screen}",
        )
        told: list[tuple[Architecture, float]] = []
        elite = in_buffer = 0
        for _ in range(48):
            arch = controller.ask()
            if arch.key in controller.elite.through:
                elite += 1
                best = max(told, key=lambda item: item[1])[0].to_dict()
                mutated = arch.to_dict()
                assert len([name for name in set(best) & set(mutated) if best[name] != mutated[name]]) == 1
                buffer, actions = controller.rollout.model.rollout_buffer, actions_of(controller.space, arch)
                if buffer.pos >= len(actions):  # else the episode began in the previous rollout
                    stored = buffer.actions[buffer.pos - len(actions) : buffer.pos, 0, 0].astype(int).tolist()
                    assert stored == actions  # the episode just stepped into the rollout is the pick's
                    in_buffer += 1
            assert not controller.elite.beside  # one evaluation at a time: the rollout takes every pick
            evaluation = evaluator.evaluate(arch)
            controller.tell(arch, evaluation)
            told.append((arch, evaluation.reward))
        episodes = controller.rollout.episodes
        controller.close()
        assert len({arch.key for arch, _ in told}) == 48
        # the share, as beside the policy (test above); without screening the policy itself soon proposes most
        # one-decision mutations of the best, and a pick needs an unseen one (measured with per-decision heads:
        # 24 screened, 17 not)
        assert (20 if screen == "16" else 12) <= elite <= 24
        assert in_buffer >= elite - 6 and episodes == 48
    waits, beside, episodes = _two_workers(toy_space, "strategy.ppo.elite_to_policy=true")
    assert waits == 0 and beside > 0 and episodes == 48 - beside


class _FakeSurrogate:
    """A surrogate whose mean and spread pull apart (mean: the encoding's sum, spread: minus it plus its
    first feature), recording the candidates of each prediction."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(x)
        mean = x.sum(axis=1) + 0.01 * x[:, 1]
        return mean, np.maximum(0.0, 10.0 - mean + 3.0 * x[:, 0])


def _screened_with(controller, space: SearchSpace, bonus, reward=None) -> list[tuple[str, float]]:
    """40 proposals of ``controller`` with a fake surrogate: each screened one must be the candidate with the
    best mean + ``bonus(source, controller)`` x spread (source: "elite" or "policy"); the source and bonus of
    each screened proposal. ``reward(i)``: the i-th result's reward (default: a synthetic evaluator's)."""
    evaluator = SyntheticEvaluator(space, seed=100)
    fake = _FakeSurrogate()

    def fit() -> None:
        controller.screen.surrogate = fake
        controller.screen.fitted_on = len(controller.screen.history)

    controller.screen.fit = fit
    checked: list[tuple[str, float]] = []
    for i in range(40):
        before = len(fake.calls)
        expected = {source: bonus(source, controller) for source in ("elite", "policy")}
        arch = controller.ask()
        if len(fake.calls) == before + 1:  # this proposal was screened
            source = "elite" if _is_elite(controller, arch) else "policy"
            candidates = fake.calls[-1]
            mean, spread = fake.predict(candidates)
            best = candidates[int(np.argmax(mean + expected[source] * spread))]
            np.testing.assert_array_equal(space.encode(arch), best)
            checked.append((source, expected[source]))
        controller.tell(arch, evaluator.evaluate(arch) if reward is None else Evaluation(reward(i)))
    controller.close()
    return checked


def test_elite_picks_and_policy_samples_are_screened_with_their_own_exploration_bonus(
    toy_space: SearchSpace,
) -> None:
    """strategy.ppo.elite_ucb weighs the surrogate's spread for the elite picks, screen_ucb for the policy's
    samples: each proposal is the candidate with the best mean + its own bonus x spread."""
    ucb = {"elite": 0.0, "policy": 5.0}
    controller = _controller(
        toy_space,
        0,
        "strategy.ppo.elite_ucb=0",
        "strategy.ppo.screen_ucb=5",
        "strategy.ppo.stall_ucb=5",
        "strategy.ppo.elite_patience=0",
    )
    sources = [source for source, _ in _screened_with(controller, toy_space, lambda source, _: ucb[source])]
    assert sources.count("elite") >= 5 and sources.count("policy") >= 5


@pytest.mark.parametrize(
    ("first_best", "ratio", "stalled"),
    [
        (10, 0.5, range(16, 34)),  # unbeaten for more than 5 results after the 10th, until the 34th beats it
        (10, 1.0, range(21, 34)),  # ... more than 10
        (3, 0.5, range(13, 34)),  # counted from the screening start (8 results): more than 4 after it
    ],
)
def test_policy_samples_are_screened_with_the_stall_bonus_while_the_best_stalls(
    toy_space: SearchSpace, first_best: int, ratio: float, stalled: range
) -> None:
    """strategy.ppo.stall_ucb: the policy's samples are screened with it once the best reward has gone unbeaten
    for more than stall_ratio x the results it took to find it (at least screen_after), with screen_ucb
    before that and again after the best improves."""
    controller = _controller(
        toy_space,
        1,
        "strategy.ppo.screen_ucb=0",
        "strategy.ppo.stall_ucb=5",
        f"strategy.ppo.stall_ratio={ratio}",
        "strategy.ppo.elite_share=0",
    )
    best = {first_best - 1: 0.5, 33: 1.0}  # the first_best-th result is the best until the 34th beats it

    def bonus(source: str, ctl) -> float:
        return 5.0 if len(ctl.screen.history) in stalled else 0.0

    screened = _screened_with(controller, toy_space, bonus, lambda i: best.get(i, 0.1 + 0.001 * i))
    before = stalled[0] - 8  # screening starts once 8 results are told (screen_after)
    assert [ucb for _, ucb in screened] == [0.0] * before + [5.0] * len(stalled) + [0.0] * 6


def test_without_masks_only_the_policys_own_samples_may_repeat_an_architecture(toy_space: SearchSpace) -> None:
    """strategy.ppo.mask_evaluated=false lets the policy's own samples repeat an evaluated architecture (the
    driver answers those from the cache), but screening and elite picks still choose new ones only."""
    evaluator = SyntheticEvaluator(toy_space, seed=3)
    controller = _controller(toy_space, 0, "strategy.ppo.mask_evaluated=false", "strategy.ppo.screen_after=4")
    screened = 0
    told: set[str] = set()
    for _ in range(60):
        plans = controller._plans
        elite = controller.elite.picked
        arch = controller.ask()
        if controller._plans > plans or controller.elite.picked > elite:  # screened or an elite pick
            assert arch.key not in told, arch.key
            screened += 1
        told.add(arch.key)
        controller.tell(arch, evaluator.evaluate(arch))
    controller.close()
    assert screened >= 30
