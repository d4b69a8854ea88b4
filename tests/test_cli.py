"""End-to-end: the CLI as a user runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TINY = [
    "--set",
    "space.depth=[1,2]",
    "--set",
    "space.per_layer.filters=[8,16]",
    "--set",
    "space.head.hidden_units=[16,32]",
    "--set",
    "training.epochs=1",
    "--set",
    "strategy.ppo.episodes_per_update=1",
    "--set",
    "export.epochs=3",
]


def command() -> list[str]:
    script = Path(sys.executable).parent / "rlnas"  # the installed console script, as a user runs it
    return [str(script)] if script.exists() else [sys.executable, "-m", "rlnas.cli"]


def rlnas(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*command(), *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    result = rlnas("search", *TINY, "--run-dir", "myrun", "--budget", "5", "--seed", "3", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "final test accuracy" in result.stdout
    return root / "myrun"


def test_search_writes_the_whole_run_directory(run: Path) -> None:
    for name in (
        "config.yaml",
        "space.json",
        "trials.sqlite",
        "run.json",
        "controller/ppo.zip",
        "export/model.pt",
        "export/model.onnx",
        "export/model.pt2",
        "export/metrics.json",
        "export/architecture.json",
        "export/README.md",
    ):
        assert (run / name).is_file(), name
    assert "seed: 3" in (run / "config.yaml").read_text()


def test_trials_lists_every_trial(run: Path) -> None:
    result = rlnas("trials", str(run), "--json", cwd=run)
    rows = json.loads(result.stdout)
    assert len(rows) == 5
    assert {"key", "status", "reward", "val_accuracy", "params", "flops", "latency_ms"} <= set(rows[0])
    table = rlnas("trials", str(run), cwd=run).stdout.splitlines()
    assert len(table) == 6 and "val_accuracy" in table[0]


def test_evaluate_reproduces_the_exported_test_accuracy(run: Path) -> None:
    result = rlnas("evaluate", str(run / "export"), "--dataset", "digits", "--split", "test", "--json", cwd=run)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "export" / "metrics.json").read_text())
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-9)
    assert {"test_accuracy", "val_accuracy", "params", "flops"} <= set(metrics)


def test_tensorboard_holds_the_search_policy_and_ppo_tags(run: Path) -> None:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in (
        "search/reward",
        "search/best_reward",
        "search/best_proxy_val_accuracy",
        "child/proxy_val_accuracy",
        "child/params",
        "child/flops",
        "child/latency_ms",
        "policy/mode_architecture_probability",
        "train/entropy_loss",
        "train/approx_kl",
        "train/policy_gradient_loss",
        "train/value_loss",
    ):
        assert tag in scalars, (tag, sorted(scalars))
    assert any(t.startswith("policy/num_blocks/") for t in scalars)
    assert any("best/architecture" in t for t in acc.Tags()["tensors"])
    assert acc.Tags()["graph"]
    assert len(acc.Scalars("search/reward")) == 5


def test_bad_config_exits_2_without_traceback_or_files(tmp_path: Path) -> None:
    result = rlnas("search", "--set", "training.epoch=3", "--run-dir", "bad", cwd=tmp_path)
    assert result.returncode == 2
    assert "training.epoch: unknown key" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "bad").exists()
    missing = rlnas("search", "--config", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.yaml does not exist" in missing.stderr


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert rlnas("trials", str(tmp_path / "nowhere"), cwd=tmp_path).returncode == 2
    assert rlnas("search", "--budget", "lots", cwd=tmp_path).returncode == 2
    assert rlnas("frobnicate", cwd=tmp_path).returncode == 2
    result = rlnas("evaluate", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "no exported model" in result.stderr
    (tmp_path / "a_file").write_text("")
    unwritable = rlnas("search", "--run-dir", str(tmp_path / "a_file" / "run"), cwd=tmp_path)
    assert unwritable.returncode == 2 and "cannot write to run directory" in unwritable.stderr


def test_evaluate_refuses_a_dataset_of_another_shape(run: Path) -> None:
    from tests.conftest import SHARED_DATASETS

    if not (SHARED_DATASETS / "MNIST").is_dir():
        pytest.skip(f"MNIST not present in {SHARED_DATASETS}")
    result = rlnas("evaluate", str(run / "export"), "--dataset", "mnist", "--data-dir", str(SHARED_DATASETS), cwd=run)
    assert result.returncode == 2 and "shape" in result.stderr


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = rlnas("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("search", "export", "evaluate", "trials"):
        assert command in result.stdout


def test_predict_classifies_image_files_like_the_test_split(run: Path, tmp_path: Path) -> None:
    from PIL import Image

    from rlnas.data import load_dataset

    test = load_dataset("digits").test
    paths = []
    for i in range(5):
        pixels = (test.x[i, 0].numpy() * 255).round().astype("uint8")
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(pixels, mode="L").save(path)
        paths.append(str(path))
    result = rlnas("predict", str(run / "export"), *paths, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    import torch

    import rlnas as lib

    model = lib.load_model(run / "export")
    with torch.no_grad():
        expected = model(test.x[:5]).argmax(1).tolist()
    assert [p["label"] for p in predictions] == expected
    assert all(abs(sum(p["probabilities"]) - 1) < 1e-4 for p in predictions)
    bad = rlnas("predict", str(run / "export"), str(tmp_path / "missing.png"), cwd=tmp_path)
    assert bad.returncode == 2 and "cannot read image" in bad.stderr


def test_report_writes_tables_plots_and_an_index(run: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    result = rlnas("report", str(run), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = run / "report"
    for name in ("trials.csv", "trials.xlsx", "scores.png", "pareto_params.png", "policy.png", "index.html"):
        assert (report / name).is_file(), name
    sheet = load_workbook(report / "trials.xlsx")["trials"]
    assert sheet.max_row == 6 and "val_accuracy" in [c.value for c in sheet[1]]
    page = (report / "index.html").read_text()
    assert "scores.png" in page and "policy.png" in page and "proxy" in page
    both = rlnas("report", str(run), str(run), "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert both.returncode == 0 and (tmp_path / "cmp" / "runs.png").is_file()
    assert rlnas("report", str(run), str(run), cwd=tmp_path).returncode == 2


def test_benchmark_runs_end_to_end_on_the_table(tmp_path: Path) -> None:
    from rlnas.benchmark import run_on_table
    from tests.conftest import SHARED

    table = SHARED / "benchmarks" / "nb201_cifar10.csv"
    if not table.is_file():
        pytest.skip(f"NAS-Bench-201 table not present at {table}")
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    args = ["--table", str(table), "--strategies", "ppo,random", "--budgets", "5,10", "--workers", "2"]
    result = rlnas(
        "benchmark", *args, "--seeds", "2", "--first-seed", "3", "--json", str(out), "--plot", str(png), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "optimum of the table: test 94.37" in result.stdout and "from seed 3" in result.stdout
    summary = json.loads(out.read_text())
    assert set(summary) == {"ppo", "random"} and set(summary["ppo"]) == {"5", "10"}
    expected = [run_on_table("random", seed, table, 10).test_at[-1] for seed in (3, 4)]  # seeds 3 and 4
    assert summary["random"]["10"]["n"] == 2
    assert summary["random"]["10"]["mean"] == pytest.approx(sum(expected) / 2)
    assert png.stat().st_size > 1000
    bad = rlnas("benchmark", *args, "--seeds", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--seeds >= 1" in bad.stderr
