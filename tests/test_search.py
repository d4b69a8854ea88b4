from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlnas.driver import Search
from rlnas.errors import RunDirError
from rlnas.evaluation import COMPLETE, FAILED, SyntheticEvaluator
from rlnas.prepare import prepare
from rlnas.strategies import NEEDS_SUPERNET, STRATEGIES
from rlnas.strategies.base import Strategy
from tests.conftest import tiny_config


@pytest.mark.parametrize("strategy", sorted(set(STRATEGIES) - NEEDS_SUPERNET))
def test_budget_counts_unique_evaluations_exactly(tmp_path: Path, strategy: str) -> None:
    config = tiny_config(f"strategy.name={strategy}", "budget.evaluations=25", "logging.tensorboard=false")
    prepared = prepare(config)
    evaluator = SyntheticEvaluator(prepared.space)
    search = Search(config, tmp_path / "run", evaluator=evaluator, space=prepared.space)
    result = search.run()
    trials = search.store.trials()
    search.close()
    assert result.evaluations == 25 == len(trials) == evaluator.calls
    assert len({t.key for t in trials}) == 25
    assert result.best is not None and result.best.reward == max(t.reward for t in trials)
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert summary["evaluations"] == 25


def test_reproposed_architectures_come_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config("strategy.name=random", "budget.evaluations=3", "logging.tensorboard=false")
    prepared = prepare(config)
    import numpy as np

    rng = np.random.default_rng(0)
    a, b, c = (prepared.space.sample(rng) for _ in range(3))
    told: list[tuple[str, bool]] = []

    class Repeater(Strategy):
        name = "random"
        order = [a, a, b, a, b, c]

        def ask(self):
            return self.order.pop(0)

        def tell(self, arch, evaluation):
            told.append((arch.key, evaluation.cached))

    monkeypatch.setitem(STRATEGIES, "random", Repeater)
    evaluator = SyntheticEvaluator(prepared.space)
    search = Search(config, tmp_path / "run", evaluator=evaluator, space=prepared.space)
    result = search.run()
    search.close()
    assert evaluator.calls == 3 and result.evaluations == 3
    assert [cached for _, cached in told] == [False, True, False, True, True, False]


def test_failing_children_are_failed_trials_and_stop_the_search_when_consecutive(tmp_path: Path) -> None:
    config = tiny_config(
        "strategy.name=random",
        "budget.evaluations=10",
        "budget.max_consecutive_failures=3",
        "training.max_minutes_per_child=0.0000001",
        "objective.failure_reward=-0.5",
        "logging.tensorboard=false",
    )
    search = Search(config, tmp_path / "run")
    result = search.run()
    trials = search.store.trials()
    search.close()
    assert [t.status for t in trials] == [FAILED] * 3
    assert all(t.reward == -0.5 and "per-child limit" in (t.error or "") for t in trials)
    assert "3 children failed in a row" in result.stop_reason and result.best is None


def test_real_training_search_records_every_metric(tmp_path: Path) -> None:
    config = tiny_config("strategy.name=random", "budget.evaluations=3", "logging.tensorboard=false")
    search = Search(config, tmp_path / "run")
    search.run()
    trials = search.store.trials()
    search.close()
    for t in trials:
        assert t.status == COMPLETE
        for metric in ("val_accuracy", "params", "flops", "latency_ms", "seed", "duration_s", "train_loss"):
            assert metric in t.metrics
        assert 0.0 <= t.metrics["val_accuracy"] <= 1.0 and t.metrics["params"] > 0


def test_existing_run_directory_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("do not touch")
    with pytest.raises(RunDirError, match="not empty"):
        Search(tiny_config(), run)
    assert (run / "precious.txt").read_text() == "do not touch"


def test_evaluation_is_reproducible_for_a_seed(tmp_path: Path) -> None:
    def keys_and_accuracies(name: str) -> list[tuple[str, float]]:
        config = tiny_config("strategy.name=ppo", "budget.evaluations=4", "logging.tensorboard=false")
        search = Search(config, tmp_path / name)
        search.run()
        out = [(t.key, t.metrics["val_accuracy"]) for t in search.store.trials()]
        search.close()
        return out

    assert keys_and_accuracies("a") == keys_and_accuracies("b")


def test_hyperband_trains_at_lower_fidelity_and_pays_pro_rata(tmp_path: Path) -> None:
    config = tiny_config(
        "strategy.name=hyperband", "budget.evaluations=2", "training.epochs=3", "logging.tensorboard=false"
    )
    search = Search(config, tmp_path / "run")
    result = search.run()
    trials = search.store.trials()
    search.close()
    epochs = [t.metrics["epochs"] for t in trials]
    assert set(epochs) <= {1.0, 3.0} and 1.0 in epochs
    spent = [e / 3 for e in epochs]  # the budget is counted in full trainings
    assert sum(spent) >= 2 - 1e-9 and sum(spent[:-1]) < 2 - 1e-9
    assert len(trials) > 2  # cheap rungs cost a third of an evaluation each
    assert result.evaluations == len(trials)


@pytest.mark.parametrize(("measure", "limit"), [("params", 3000), ("flops", 60000)])
def test_children_over_a_hard_limit_are_infeasible_untrained_and_cost_no_budget(
    tmp_path: Path, measure: str, limit: int
) -> None:
    from rlnas.evaluation import INFEASIBLE

    config = tiny_config("strategy.name=random", "budget.evaluations=3", f"objective.max_{measure}={limit}")
    search = Search(config, tmp_path / "run")
    result = search.run()
    trials = search.store.trials()
    search.close()
    infeasible = [t for t in trials if t.status == INFEASIBLE]
    trained = [t for t in trials if t.status == COMPLETE]
    assert len(trained) == result.evaluations == 3
    assert infeasible, f"the tiny space has children over {limit} {measure}; some should have been proposed"
    assert all(t.metrics[measure] > limit and f"objective.max_{measure}={limit}" in (t.error or "") for t in infeasible)
    assert all(t.metrics[measure] <= limit and "train_seconds" in t.metrics for t in trained)
    assert all("train_seconds" not in t.metrics for t in infeasible)


@pytest.mark.parametrize("limit", ["objective.max_params=10", "objective.max_flops=10"])
def test_a_hard_limit_no_architecture_meets_is_refused_before_the_search(tmp_path: Path, limit: str) -> None:
    from rlnas.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"{limit} \(the smallest has \d+\).*raise the limit"):
        Search(tiny_config(limit), tmp_path / "run")
    assert not (tmp_path / "run").exists()
