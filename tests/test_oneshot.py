"""One-shot (weight-sharing) search: supernets, the one-shot evaluator, the search loop with it, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from rlnas.config import load_config
from rlnas.data import Dataset
from rlnas.driver import Search
from rlnas.errors import ConfigError
from rlnas.evaluation.base import COMPLETE, INFEASIBLE
from rlnas.evaluation.objective import Objective
from rlnas.models import nb201
from rlnas.models.complexity import count_params
from rlnas.models.families import build_model
from rlnas.oneshot.evaluator import SUPERNET_FILE, OneShotEvaluator
from rlnas.oneshot.supernet import supernet_class
from rlnas.prepare import prepare
from rlnas.report import report
from rlnas.space import Architecture, SpaceSpec, build_space, builtin_space


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        (builtin_space("cnn"), (1, 8, 8)),
        ({**builtin_space("cnn"), "name": "c3", "depth": [2, 3]}, (3, 12, 10)),
        (
            {
                "name": "cell",
                "family": "nb201",
                "cell": {"operations": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]},
            },
            (3, 8, 8),
        ),
    ],
    ids=["cnn", "cnn-rgb-rectangular", "nb201"],
)
def test_a_sub_network_computes_what_its_standalone_child_computes(spec: dict, shape: tuple[int, ...]) -> None:
    space = build_space(SpaceSpec(**spec), shape)
    torch.manual_seed(0)
    supernet = supernet_class(space)(space, shape, 10, [0.5] * shape[0], [0.25] * shape[0])
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x = torch.rand(8, *shape)
    for _ in range(6):
        arch = space.sample(rng)
        supernet.train()
        for _ in range(2):  # train the shared weights a little, so that no slice is at its initial value
            optimizer.zero_grad()
            supernet(x, space.sample(rng)).logsumexp(1).mean().backward()
            optimizer.step()
        supernet.calibrate(arch, [torch.rand(16, *shape)])
        supernet.eval()
        child = supernet.extract(arch).eval()  # build_model's network with the sliced weights
        assert sum(p.numel() for p in child.parameters()) < sum(p.numel() for p in supernet.parameters())
        assert supernet.path_params(arch) == count_params(build_model(arch, space.family, shape, 10))
        torch.testing.assert_close(supernet(x, arch), child(x), rtol=1e-5, atol=1e-5)


def _evaluator(digits: Dataset, *overrides: str) -> tuple[OneShotEvaluator, object]:
    config = tiny_config("evaluation=oneshot", *overrides)
    p = prepare(config, digits)
    objective = Objective.for_space(config.objective, p.space, digits.input_shape, digits.num_outputs)
    return OneShotEvaluator(p.space, digits, config.training, config.oneshot, objective, 0), p


def test_a_random_path_step_splits_its_batch_between_fair_paths(digits: Dataset) -> None:
    evaluator, p = _evaluator(digits, "oneshot.warmup_epochs=0", "oneshot.paths_per_step=4", "training.batch_size=30")
    calls: list[tuple[str, int]] = []
    forward = evaluator.supernet.forward

    def spy(x: torch.Tensor, arch: Architecture, gates: object = None) -> torch.Tensor:
        calls.append((arch.key, len(x)))
        return forward(x, arch, gates)

    evaluator.supernet.forward = spy  # type: ignore[method-assign]
    evaluator.train_steps(1)
    assert [n for _, n in calls] == [8, 8, 7, 7] and len({key for key, _ in calls}) > 1
    assert evaluator.steps == 1  # one optimizer step for the four paths
    calls.clear()
    evaluator.train_steps(1, p.space.sample(np.random.default_rng(0)))  # type: ignore[attr-defined]
    assert [n for _, n in calls] == [30]  # a proposed path trains on the whole batch
    evaluator.config = evaluator.config.model_copy(update={"split_batch": False})
    calls.clear()
    evaluator.train_steps(1)
    assert [n for _, n in calls] == [30] * 4 and evaluator.steps == 3


def test_the_shared_weights_learn_and_every_path_is_scored_with_them(digits: Dataset) -> None:
    evaluator, p = _evaluator(digits, "oneshot.warmup_epochs=0", "oneshot.steps_per_evaluation=0")
    archs = [p.space.sample(np.random.default_rng(i)) for i in range(4)]  # type: ignore[attr-defined]
    before = [evaluator.score(a)["val_accuracy"] for a in archs]
    evaluator.train_steps(450)  # uniformly random paths
    after = [evaluator.score(a)["val_accuracy"] for a in archs]
    assert max(before) < 0.4  # 10 classes: untrained paths are near chance
    assert min(after) > 0.55 and np.mean(after) > 0.75  # every path learned from the shared training
    evaluation = evaluator.evaluate(archs[0])
    assert evaluation.status == COMPLETE
    assert "supernet_val_accuracy" in evaluation.metrics and "val_accuracy" not in evaluation.metrics


def test_paths_over_max_params_are_infeasible_and_never_trained(digits: Dataset) -> None:
    evaluator, p = _evaluator(digits, "objective.max_params=3000", "oneshot.warmup_epochs=1")
    rng = np.random.default_rng(0)
    archs = [p.space.sample(rng) for _ in range(40)]  # type: ignore[attr-defined]
    big = next(a for a in archs if not evaluator.feasible(a))
    small = next(a for a in archs if evaluator.feasible(a))
    result = evaluator.evaluate(big)
    assert result.status == INFEASIBLE and evaluator.steps == 0  # rejected before the warm-up
    assert evaluator.evaluate(small).status == COMPLETE
    for _ in range(20):
        assert evaluator.feasible(evaluator.random_path())


def test_oneshot_search_stores_supernet_scores_and_resumes_with_its_supernet(tmp_path: Path, digits: Dataset) -> None:
    config = tiny_config(
        "evaluation=oneshot", "budget.evaluations=6", "oneshot.checkpoint_every=2", "export.enabled=false"
    )
    run = tmp_path / "run"
    search = Search(config, run, data=digits)
    result = search.run()
    search.close()
    assert result.evaluations == 6
    assert (run / SUPERNET_FILE).is_file()
    steps = torch.load(run / SUPERNET_FILE, weights_only=True)["steps"]
    assert steps > 0
    resumed = Search.resume(run, ["budget.evaluations=9"], data=digits)
    assert resumed.evaluator.steps == steps  # type: ignore[attr-defined]
    result = resumed.run()
    records = resumed.store.trials()
    resumed.close()
    assert result.evaluations == 9 and len(records) == 9
    assert all("supernet_val_accuracy" in r.metrics for r in records if r.status == COMPLETE)
    assert torch.load(run / SUPERNET_FILE, weights_only=True)["steps"] > steps
    html = (report([run]) / "index.html").read_text()  # supernet scores labelled as such, never as training
    rejected = sum(r.status == INFEASIBLE for r in records)
    assert "supernet val accuracy" in html and "score s" in html and "train s" not in html
    assert f"(0 failed, {rejected} over the limits, not evaluated)" in html


@pytest.mark.parametrize("strategy", ["evolution", "darts"])
def test_oneshot_searches_repeat_exactly_whatever_the_global_random_state(
    tmp_path: Path, digits: Dataset, strategy: str
) -> None:
    """Dropout in the supernet draws from torch's global random state, which nothing seeds for these
    strategies (SB3 seeds it for ppo): the evaluator seeds a fork of it from its own generator."""
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        config = tiny_config(
            "evaluation=oneshot",
            f"strategy.name={strategy}",
            "oneshot.path_sampling=uniform",
            "budget.evaluations=6",
            "export.enabled=false",
            "logging.tensorboard=false",
        )
        search = Search(config, tmp_path / f"run{global_seed}", data=digits)
        search.run()
        runs.append([(r.architecture.key, r.reward) for r in search.store.trials()])
        search.close()
    assert len(runs[0]) >= 6 and runs[0] == runs[1]


def test_a_damaged_supernet_checkpoint_restarts_the_supernet_with_a_warning(
    tmp_path: Path, digits: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    config = tiny_config("evaluation=oneshot", "budget.evaluations=3", "export.enabled=false")
    search = Search(config, run, data=digits)
    search.run()
    search.close()
    (run / SUPERNET_FILE).write_bytes(b"not a checkpoint")
    resumed = Search.resume(run, ["budget.evaluations=4"], data=digits)
    assert resumed.evaluator.steps == 0  # type: ignore[attr-defined]
    assert "supernet starts again" in caplog.text
    resumed.run()
    assert len(resumed.store.trials()) == 4
    resumed.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["execution.workers=2"], "execution.workers=1"),
        (["training.learning_rate=0.01"], "training.learning_rate=0.01"),
        (["space=mlp"], "families"),
        (["space=convnet"], "not 'convnet' .*block types"),
    ],
)
def test_oneshot_config_mistakes_are_clear_errors(digits: Dataset, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config = load_config(None, ["evaluation=oneshot", *overrides])
        Search.in_memory(config, data=digits)


def test_training_decisions_are_pinned_to_what_the_supernet_trains_with(digits: Dataset) -> None:
    p = prepare(load_config(None, ["evaluation=oneshot", "training.learning_rate=0.003"]), digits)
    assert p.space["learning_rate"].choices == (0.003,)
    assert prepare(load_config(None, []), digits).space["learning_rate"].choices == (0.0003, 0.001, 0.003)


def test_darts_learns_architecture_logits_and_resumes_them(tmp_path: Path, digits: Dataset) -> None:
    config = tiny_config(
        "evaluation=oneshot",
        "strategy.name=darts",
        "strategy.darts.steps_per_ask=5",
        "oneshot.steps_per_evaluation=0",
        "budget.evaluations=6",
        "export.enabled=false",
    )
    run = tmp_path / "run"
    search = Search(config, run, data=digits)
    strategy = search.strategy
    result = search.run()
    search.close()
    assert result.evaluations == 6
    alphas = {name: alpha.detach().clone() for name, alpha in strategy.alphas.items()}  # type: ignore[attr-defined]
    assert any(alpha.abs().max() > 0 for alpha in alphas.values())  # the logits moved from their zeros
    assert strategy.temperature() < config.strategy.darts.tau_max  # type: ignore[attr-defined]
    resumed = Search.resume(run, ["budget.evaluations=8"], data=digits)
    for name, alpha in resumed.strategy.alphas.items():  # type: ignore[attr-defined]
        torch.testing.assert_close(alpha.detach(), alphas[name])
    resumed.run()
    assert len({r.key for r in resumed.store.trials()}) == 8  # never proposes an architecture twice
    resumed.close()


def test_darts_gates_carry_the_gradient_of_each_choice_without_changing_the_output(digits: Dataset) -> None:
    config = tiny_config("evaluation=oneshot", "strategy.name=darts")
    search = Search.in_memory(config, data=digits)
    strategy = search.strategy
    arch, gates = strategy.sample(1.0)  # type: ignore[attr-defined]
    assert gates and all(float(g.detach()) == pytest.approx(1.0) for g in gates.values())
    supernet = search.evaluator.supernet  # type: ignore[attr-defined]
    x = digits.val.x[:32]
    supernet.eval()
    torch.testing.assert_close(supernet(x, arch, gates), supernet(x, arch))
    supernet(x, arch, gates).logsumexp(1).mean().backward()
    moved = [name for name, alpha in strategy.alphas.items() if alpha.grad is not None and alpha.grad.abs().sum() > 0]  # type: ignore[attr-defined]
    assert set(moved) == set(gates)  # exactly the decisions of the sampled path get a gradient
    search.close()


def test_darts_without_a_supernet_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="evaluation=oneshot"):
        load_config(None, ["strategy.name=darts"])


def test_darts_samples_only_paths_within_max_params(digits: Dataset) -> None:
    config = tiny_config("evaluation=oneshot", "strategy.name=darts", "objective.max_params=3000")
    search = Search.in_memory(config, data=digits)
    strategy, evaluator = search.strategy, search.evaluator
    sampled = [strategy.sample(10.0)[0] for _ in range(30)]  # type: ignore[attr-defined]
    assert all(evaluator.feasible(a) for a in sampled)  # type: ignore[attr-defined]
    assert len({a.key for a in sampled}) > 5
    rng = np.random.default_rng(0)
    assert not all(evaluator.feasible(search.space.sample(rng)) for _ in range(30))  # type: ignore[attr-defined]
    search.close()


def test_darts_parameter_free_share_counts_cell_operations_only(digits: Dataset) -> None:
    rng = np.random.default_rng(0)
    cnn = Search.in_memory(tiny_config("evaluation=oneshot", "strategy.name=darts"), data=digits)
    assert cnn.strategy.parameter_free_share(cnn.space.sample(rng)) is None  # type: ignore[attr-defined]
    cnn.close()  # (a block's pooling "none" is no parameter-free operation)
    cell = Search.in_memory(tiny_config("evaluation=oneshot", "strategy.name=darts", "space=nb201"), data=digits)
    edges = {name: "skip_connect" if i < 2 else "nor_conv_3x3" for i, name in enumerate(nb201.EDGE_NAMES)}
    arch = cell.space.make({**cell.space.sample(rng).to_dict(), **edges})
    assert cell.strategy.parameter_free_share(arch) == pytest.approx(2 / 6)  # type: ignore[attr-defined]
    cell.close()
