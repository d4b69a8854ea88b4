"""Zero-cost proxies: each computed as its paper defines it, seeded, on every family; ``rlnas proxies``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rlnas.data.core import Split
from rlnas.evaluation import proxies
from rlnas.evaluation.base import Evaluation
from rlnas.models.families import build_model
from rlnas.space import SpaceSpec, build_space, builtin_space


def _batch(shape: tuple[int, ...], n: int = 16, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand((n, *shape), generator=generator), torch.randint(0, classes, (n,), generator=generator)


def test_grad_norm_and_snip_are_the_summed_gradient_norms_and_saliencies() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    x, y = _batch((4,))
    nn.functional.cross_entropy(model(x), y).backward()
    weights = [model[0].weight, model[2].weight]
    expected_norm = sum(float(w.grad.norm()) for w in weights)
    expected_snip = sum(float((w.detach() * w.grad).abs().sum()) for w in weights)
    assert proxies.grad_norm(model, x, y) == pytest.approx(expected_norm, rel=1e-5)
    assert proxies.snip(model, x, y) == pytest.approx(expected_snip, rel=1e-5)


def test_synflow_is_data_free_and_counts_paths() -> None:
    """With positive weights and an all-ones input, a linear chain's synflow is the sum over its weights of
    w * dR/dw: for two layers of all-ones weights (a x b, b x c), every weight carries the same flow."""
    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.BatchNorm1d(3), nn.Linear(3, 4, bias=False))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.fill_(-1.0)  # signs do not matter: synflow takes absolute values
    x, y = _batch((2,))
    # R = sum of the 4 outputs = 4 * 3 * 2 (paths); dR/dw1 = 4 for each of 6 weights, dR/dw2 = 2 for 12
    assert proxies.synflow(model, x, y) == pytest.approx(math.log10(6 * 4 + 12 * 2))
    assert proxies.synflow(model, x * 0, y) == proxies.synflow(model, x, y)  # the data are not used
    assert model[0].weight[0, 0] == -1.0  # the network itself is left as it was


def test_naswot_rewards_distinct_activation_patterns_and_sees_duplicates() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
    x, y = _batch((8,))
    score = proxies.naswot(model, x, y)
    assert math.isfinite(score)
    twins = torch.cat([x[:8], x[:8]])  # identical examples: identical codes, a singular kernel
    twin_score = proxies.naswot(model, twins, y)
    assert twin_score == float("-inf") or twin_score < score - 50


@pytest.mark.parametrize("family", ["cnn", "convnet", "mlp", "nb201"])
def test_every_proxy_is_finite_seeded_and_tells_architectures_apart(family: str) -> None:
    shape = (8,) if family == "mlp" else (3, 8, 8) if family == "nb201" else (1, 8, 8)
    space = build_space(SpaceSpec(**builtin_space(family)), shape)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(2)]
    batch = _batch(shape, classes=10)

    def scores(arch, seed):  # type: ignore[no-untyped-def]
        return proxies.compute(lambda: build_model(arch, family, shape, 10), batch, shape, seed)[0]

    first = scores(archs[0], 1)
    assert set(first) == set(proxies.PROXIES)
    assert all(math.isfinite(v) for k, v in first.items() if k != "naswot")
    assert scores(archs[0], 1) == first  # seeded: the same initialization and values
    assert scores(archs[1], 1) != first


def test_minibatch_and_kendall_tau() -> None:
    split = Split(torch.arange(100, dtype=torch.uint8).reshape(100, 1), torch.zeros(100, dtype=torch.int64))
    x, _ = proxies.minibatch(split, seed=3, size=10)
    assert x.shape == (10, 1) and float(x.max()) <= 99 / 255 and torch.equal(x, proxies.minibatch(split, 3, 10)[0])
    taus = proxies.kendall_tau({"up": [1, 2, 3, 4], "down": [4, 3, 2, 1]}, [0.1, 0.2, 0.3, 0.4])
    assert taus == {"up": pytest.approx(1.0), "down": pytest.approx(-1.0)}


def test_the_proxies_command_ranks_sampled_architectures_against_their_training(tmp_path: Path, capsys) -> None:
    from rlnas.cli import main
    from tests.test_cli import TINY

    code = main(["-q", "proxies", *TINY, "--archs", "4", "--json", str(tmp_path / "p.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "4 architectures of cnn on digits" in out and all(name in out for name in proxies.PROXIES)
    result = json.loads((tmp_path / "p.json").read_text())
    assert len({json.dumps(r["architecture"], sort_keys=True) for r in result["rows"]}) == 4
    assert all(0.0 <= r["val_score"] <= 1.0 for r in result["rows"])
    assert set(result["kendall_tau"]) == set(proxies.PROXIES)


def test_zero_cost_proxies_are_stored_with_every_trial(tmp_path: Path) -> None:
    """training.zero_cost: each child's proxies, computed before its training, are metrics of its trial (store,
    Optuna mirror), the same in a second run with the same seed; without the setting there are none."""
    from rlnas.driver import Search
    from rlnas.mirror import load_study
    from tests.conftest import tiny_config

    def searched(where: Path, *extra: str) -> list:
        config = tiny_config("strategy.name=random", "budget.evaluations=3", "logging.tensorboard=false", *extra)
        search = Search(config, where)
        search.run()
        trials = search.store.trials()
        search.close()
        return trials

    names = ["synflow", "naswot", "params"]
    trials = searched(tmp_path / "a", f"training.zero_cost=[{','.join(names)}]")
    assert len(trials) == 3
    for trial in trials:
        values = {name: trial.metrics[f"zero_cost_{name}"] for name in names}
        assert all(math.isfinite(v) for v in values.values()) and trial.metrics["zero_cost_seconds"] > 0
        assert values["params"] == trial.metrics["params"]  # the same network the trial trained
    again = searched(tmp_path / "b", f"training.zero_cost=[{','.join(names)}]")
    assert [t.metrics["zero_cost_naswot"] for t in again] == [t.metrics["zero_cost_naswot"] for t in trials]
    study = load_study(tmp_path / "a")
    assert study is not None
    assert [t.user_attrs["zero_cost_synflow"] for t in study.trials] == [t.metrics["zero_cost_synflow"] for t in trials]
    plain = searched(tmp_path / "c")
    assert not [k for t in plain for k in t.metrics if k.startswith("zero_cost")]


@pytest.mark.parametrize("strategy", ["random", "evolution", "ppo"])
def test_strategies_screen_a_pool_by_a_zero_cost_proxy(strategy: str) -> None:
    """strategy.zero_cost_screen: each proposal is the one the proxy rates best among zero_cost_pool new
    candidates (for ppo: samples of its policy, until its surrogate screens, whose input the proxy joins), so
    the search proposes differently (and better by the proxy) than without it."""
    from rlnas.evaluation.executors import TrainingEvaluatorFactory
    from rlnas.prepare import prepare
    from rlnas.strategies import StrategyContext, make_strategy
    from rlnas.tracking import RunLogger
    from tests.conftest import tiny_config

    def proposals(*extra: str) -> tuple[list, object]:
        config = tiny_config(f"strategy.name={strategy}", "strategy.evolution.population_size=3", *extra)
        prepared = prepare(config)
        evaluator = TrainingEvaluatorFactory(config, 1.0, None, prepared.dataset).build(prepared.trainer)
        ctx = StrategyContext(prepared.space, config, 0, None, RunLogger(None), evaluator)
        search = make_strategy(strategy, ctx)
        archs = []
        for i in range(6):
            arch = search.ask()
            archs.append(arch)
            search.tell(arch, Evaluation(reward=0.1 * i))
        if strategy == "ppo" and extra:
            code = prepared.space.encode(archs[0])
            assert search.screen.features(archs[0]).shape == (len(code) + 1,)  # type: ignore[attr-defined]
        return archs, evaluator

    plain, _ = proposals()
    screened, evaluator = proposals("strategy.zero_cost_screen=params", "strategy.zero_cost_pool=4")
    assert [a.key for a in screened] != [a.key for a in plain]
    params = [evaluator.zero_cost(a, names=("params",))["zero_cost_params"] for a in screened]  # type: ignore[attr-defined]
    unscreened = [evaluator.zero_cost(a, names=("params",))["zero_cost_params"] for a in plain]  # type: ignore[attr-defined]
    assert sum(params) > sum(unscreened)  # the largest of each pool of 4, against single draws
    assert len({a.key for a in screened}) == 6  # never a repeat


def test_a_zero_cost_screen_without_networks_is_refused() -> None:
    from rlnas.errors import ConfigError
    from rlnas.evaluation import SyntheticEvaluator
    from rlnas.strategies import StrategyContext, make_strategy
    from rlnas.tracking import RunLogger
    from tests.conftest import tiny_config

    config = tiny_config("strategy.name=random", "strategy.zero_cost_screen=synflow")
    space = build_space(config.space, (1, 8, 8))
    ctx = StrategyContext(space, config, 0, None, RunLogger(None), SyntheticEvaluator(space))
    for name in ("random", "ppo"):
        with pytest.raises(ConfigError, match="needs the networks of the children"):
            make_strategy(name, ctx)


@pytest.mark.parametrize(("archs", "message"), [("2", "at least 3"), ("100000000", "at most 10,000")])
def test_proxies_refuses_a_count_of_architectures_out_of_range(
    capsys: pytest.CaptureFixture[str], archs: str, message: str
) -> None:
    from tests.conftest import cli

    code, _, err = cli(capsys, "proxies", "--archs", archs)
    assert code == 2 and f"--archs {archs}" in err and message in err


def test_the_surrogates_proxy_feature_is_standardized_over_the_results() -> None:
    """The proxy joins the surrogate's input on a signed log scale, standardized over the results of each fit,
    so a proxy in the millions (params, synflow) weighs like the one-hot encoding; a proxy that could not be
    computed sits at the mean."""
    from rlnas.strategies.screening import Screening
    from tests.conftest import tiny_config

    config = tiny_config()
    space = build_space(config.space, (1, 8, 8))
    rng = np.random.default_rng(0)
    archs = list({a.key: a for a in (space.sample(rng) for _ in range(40))}.values())[:12]
    values = {a.key: 10.0 ** (4 + i % 4) for i, a in enumerate(archs)}
    values[archs[-1].key] = float("nan")
    screen = Screening(space, config.strategy.ppo, 0, lambda a: values[a.key])
    for i, arch in enumerate(archs):
        screen.add(arch, 0.1 * i)
    screen.fit()
    column = np.array([screen.features(a)[-1] for a in archs[:-1]])
    logs = np.log1p([values[a.key] for a in archs[:-1]])
    assert np.allclose(column, (logs - logs.mean()) / logs.std(), atol=1e-5)
    assert screen.features(archs[-1])[-1] == 0.0
    assert len(screen.features(archs[0])) == len(space.encode(archs[0])) + 1
