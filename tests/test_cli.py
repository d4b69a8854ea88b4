"""End-to-end: the CLI as a user runs it, in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import cli

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
    "--set",
    "logging.policy_images=false",  # on in the `run` fixture, whose TensorBoard test reads them
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
    images = ["--set", "logging.policy_images=true"]
    result = rlnas("search", *TINY, *images, "--run-dir", "myrun", "--budget", "5", "--seed", "3", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "final test accuracy" in result.stdout
    assert "export: 1 final training(s) of 3 epochs, about " in result.stderr  # said before it starts
    assert "5/5 children" in result.stderr and "best reward" in result.stderr
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


def test_trials_lists_every_trial(run: Path, capsys) -> None:
    rows = json.loads(cli(capsys, "trials", str(run), "--json")[1])
    assert len(rows) == 5
    assert {"key", "status", "reward", "val_accuracy", "params", "flops", "latency_ms"} <= set(rows[0])
    table = cli(capsys, "trials", str(run), "--wide")[1].splitlines()  # a line per trial
    assert len(table) == 6 and "val_accuracy" in table[0]


def test_evaluate_reproduces_the_exported_test_accuracy(run: Path) -> None:
    result = rlnas("evaluate", str(run / "export"), "--dataset", "digits", "--split", "test", "--json", cwd=run)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "export" / "metrics.json").read_text())
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-9)
    assert {"test_accuracy", "val_accuracy", "params", "flops"} <= set(metrics)


def test_evaluate_says_when_the_split_was_in_the_export_s_training(run: Path, capsys) -> None:
    for split, held_out in (("val", False), ("train", False), ("test", True)):
        code, out, err = cli(capsys, "evaluate", str(run / "export"), "--split", split, "--json")
        assert code == 0 and json.loads(out)["held_out"] is held_out
        assert (f"trained on the {split} split too" in err) is not held_out
    code, out, err = cli(capsys, "evaluate", str(run / "export"), "--split", "val")  # the line a person reads
    assert out.startswith("digits val accuracy") and "not held out; --split test is" in err


def test_tensorboard_holds_the_search_policy_and_ppo_tags_on_the_trial_axis(run: Path) -> None:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in (
        "search/reward",
        "search/best_reward",
        "search/best_reward_child_proxy_val_accuracy",
        "search/max_proxy_val_accuracy",
        "child/proxy_val_accuracy",
        "child/params",
        "child/flops",
        "child/latency_ms",
        "policy/mode_architecture_log10_probability",
        "policy_entropy/num_blocks",
        "train/entropy_loss",
        "train/approx_kl",
        "train/policy_gradient_loss",
        "train/value_loss",
    ):
        assert tag in scalars, (tag, sorted(scalars))
    # every decision appears, also those off the most probable architecture (block2 exists only at depth 2)
    for decision in ("num_blocks", "block1.filters", "block2.filters", "hidden_units"):
        assert any(t.startswith(f"policy/{decision}/") for t in scalars), decision
    for choices in (["1", "2"], ["8", "16"]):
        tags = [f"policy/{'num_blocks' if choices == ['1', '2'] else 'block1.filters'}/{c}" for c in choices]
        last = [acc.Scalars(t)[-1].value for t in tags]
        assert sum(last) == pytest.approx(1.0, abs=1e-4)
    # one x-axis: the trial number, for the search's tags and for SB3's
    trials = {e.step for e in acc.Scalars("search/reward")}
    assert trials == set(range(5))
    assert {e.step for e in acc.Scalars("train/approx_kl")} <= set(range(6))
    assert {e.step for e in acc.Scalars("policy_entropy/num_blocks")} <= set(range(6))
    assert any("best/architecture" in t for t in acc.Tags()["tensors"])
    graph = EventAccumulator(str(run / "tensorboard" / "best_child_graph"))
    graph.Reload()
    nodes = [n.name for n in graph.Graph().node]
    assert any(re.match(r"conv\dx\d_\d+/", n) for n in nodes), nodes[:20]  # e.g. conv3x3_8: kernel, filters
    tops = {n.split("/")[0] for n in nodes}  # the layers at the top level, not one collapsed root node
    assert {"normalize", "input", "output"} <= tops and any(re.fullmatch(r"conv\dx\d_\d+", t) for t in tops)
    assert max(len(t) for t in tops) <= 14  # TensorBoard cuts longer labels
    assert not [n for n in nodes if "[" in n or n.startswith("Sequential")]  # short labels: no Class[name] scopes
    graph_names = set(nodes)  # inputs renamed alike: layers still feed each other
    edges = {(i.split("/")[0], n.name.split("/")[0]) for n in graph.Graph().node for i in n.input if i in graph_names}
    assert any(a != b and "input" not in (a, b) for a, b in edges) and ("input", "normalize") in edges


def test_custom_scalars_put_each_decision_on_one_chart(run: Path) -> None:
    import re

    from tensorboard.plugins.custom_scalar import layout_pb2

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
    acc.Reload()
    layout = layout_pb2.Layout()
    layout.ParseFromString(acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag) for cat in layout.category for chart in cat.chart}
    scalars = set(acc.Tags()["scalars"])
    space = json.loads((run / "space.json").read_text())
    choice_runs: dict[int, EventAccumulator] = {}
    for decision in space["decisions"]:
        if len(decision["choices"]) < 2:
            continue
        name, choices = decision["name"], [str(c) for c in decision["choices"]]
        # one chart per decision; its k-th choice is run choice_k (TensorBoard colours lines by run), named in the title
        title = f"{name} (" + ", ".join(f"choice_{k + 1} = {c}" for k, c in enumerate(choices)) + ")"
        patterns = charts[title]
        assert not [t for t in scalars for p in patterns if re.search(p, t)]  # nothing of the main run
        for k, choice in enumerate(choices):
            if k not in choice_runs:
                choice_runs[k] = EventAccumulator(
                    str(run / "tensorboard" / f"choice_{k + 1}"), size_guidance={"scalars": 0}
                )
                choice_runs[k].Reload()
            tag = f"policy_by_choice/{name}"
            assert any(re.search(p, tag) for p in patterns) and tag in choice_runs[k].Tags()["scalars"], (name, k)
            same = [e.value for e in acc.Scalars(f"policy/{name}/{choice}")]
            assert [e.value for e in choice_runs[k].Scalars(tag)] == pytest.approx(same)
    assert choice_runs
    # the IMAGES tab: a heatmap of the choice probabilities per policy update, on the trial axis
    images = acc.Images("policy/choice_probabilities")
    assert [e.step for e in images] == [e.step for e in acc.Scalars("policy/mode_architecture_log10_probability")]
    assert images[0].width > 200 and images[0].height > 100
    assert any(re.search(p, "policy_entropy/num_blocks") for p in charts["entropy of every decision (nats)"])


def test_every_child_is_an_hparams_session(run: Path, capsys) -> None:
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    store = json.loads(cli(capsys, "trials", str(run), "--json")[1])
    sessions = sorted(p for p in (run / "hparams").iterdir() if p.is_dir())
    assert [p.name for p in sessions] == [f"trial_{r['number']:05d}" for r in store]
    space = json.loads((run / "space.json").read_text())
    choices = {d["name"]: d["choices"] for d in space["decisions"] if len(d["choices"]) > 1}  # fixed ones are noise
    for row, session in zip(store, sessions, strict=True):
        acc = EventAccumulator(str(session), size_guidance={"tensors": 0, "scalars": 0})
        acc.Reload()
        content = acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
        start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        chosen = {k for k in row if k in choices}
        assert set(start.hparams) == chosen
        for name in chosen:  # text: discrete axes, 16 and not 16.000
            expected = f"{row[name]:g}" if isinstance(row[name], float) else str(row[name])
            assert start.hparams[name].string_value == expected
        assert acc.Scalars("hparam/reward")[0].value == pytest.approx(row["reward"])
        assert acc.Scalars("hparam/proxy_val_accuracy")[0].value == pytest.approx(row["val_accuracy"])
    top = EventAccumulator(str(run / "hparams"), size_guidance={"tensors": 0})
    top.Reload()
    content = top.SummaryMetadata(metadata.EXPERIMENT_TAG).plugin_data.content
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    infos = list(experiment.hparam_infos)
    assert {h.name for h in infos} == set(choices)
    assert [h.name for h in infos][:4] == ["num_blocks", "hidden_units", "dropout", "learning_rate"]  # ticked first
    for info in infos:
        assert [v.string_value for v in info.domain_discrete.values] == [
            f"{c:g}" if isinstance(c, float) else str(c) for c in choices[info.name]
        ]
    assert {"hparam/reward", "hparam/proxy_val_accuracy", "hparam/params"} <= {
        m.name.tag for m in experiment.metric_infos
    }


def test_a_failed_child_is_a_failed_hparams_session_without_metrics(tmp_path: Path, cnn_space: Any) -> None:
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    from rlnas.evaluation import FAILED, Evaluation
    from rlnas.store import TrialStore
    from rlnas.tracking import RunLogger

    logger = RunLogger(tmp_path / "tb", cnn_space, tmp_path / "hparams")
    logger.start("accuracy")
    arch = cnn_space.sample(np.random.default_rng(0))
    with TrialStore(":memory:") as store:
        record = store.append(arch, Evaluation(reward=-1.0, status=FAILED, error="boom"), "random")
    logger.trial(record)
    logger.close()
    acc = EventAccumulator(str(tmp_path / "hparams" / "trial_00000"), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    content = acc.SummaryMetadata(metadata.SESSION_END_INFO_TAG).plugin_data.content
    assert plugin_data_pb2.HParamsPluginData.FromString(content).session_end_info.status == api_pb2.STATUS_FAILURE
    assert not [tag for tag in acc.Tags()["scalars"] if tag.startswith("hparam/")]  # no -1 on the colour scale


def test_the_optuna_mirror_holds_the_same_trials(run: Path) -> None:
    from rlnas.mirror import load_study
    from rlnas.rundir import open_run

    study = load_study(run)
    assert study is not None
    _, store = open_run(run)
    with store:
        records = store.trials()
    space = json.loads((run / "space.json").read_text())
    choices = {d["name"]: d["choices"] for d in space["decisions"] if len(d["choices"]) > 1}
    assert len(study.trials) == len(records) == 5
    for trial, record in zip(study.trials, records, strict=True):
        assert trial.number == record.number == trial.user_attrs["rlnas_number"]
        assert trial.value == pytest.approx(record.reward)
        # the active decisions (with more than one choice); inactive ones are absent, as in define-by-run
        assert trial.params == {k: v for k, v in record.architecture.items if k in choices}
        assert all(list(trial.distributions[k].choices) == choices[k] for k in trial.params)
        assert trial.user_attrs["params"] == record.metrics["params"]
        assert type(trial.user_attrs["params"]) is int and type(trial.user_attrs["seed"]) is int
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()  # a timeline, not points
        assert duration == pytest.approx(record.duration_s, abs=1e-3) and duration > 0
        assert trial.datetime_start.timestamp() == pytest.approx(record.started_at, abs=1e-3)
        # the validation score after each epoch: optuna-dashboard's intermediate values
        assert trial.intermediate_values == {1: record.metrics["val_accuracy"]} == {1: record.curve[0]}
    assert study.metric_names == ["reward = val accuracy - 0.02 x params / max"]


def test_bad_config_exits_2_without_traceback_or_files(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "search", "--set", "training.epoch=3", "--run-dir", "bad")
    assert code == 2
    assert "training.epoch: unknown key" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
    code, _, err = cli(capsys, "search", "--config", "nope.yaml")
    assert code == 2 and "nope.yaml does not exist" in err


def test_bad_arguments_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "trials", str(tmp_path / "nowhere"))[0] == 2
    assert cli(capsys, "search", "--budget", "lots")[0] == 2
    assert cli(capsys, "frobnicate")[0] == 2
    code, _, err = cli(capsys, "evaluate", str(tmp_path))
    assert code == 2 and "no exported model" in err
    (tmp_path / "a_file").write_text("")
    code, _, err = cli(capsys, "search", "--run-dir", str(tmp_path / "a_file" / "run"))
    assert code == 2 and "cannot write to run directory" in err and "Traceback" not in err


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


def test_predict_classifies_image_files_like_the_test_split(run: Path, tmp_path: Path, capsys, monkeypatch) -> None:
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
    monkeypatch.chdir(tmp_path)  # the rest in process
    code, _, err = cli(capsys, "predict", str(run / "export"), str(tmp_path / "missing.png"))
    assert code == 2 and "missing.png does not exist" in err
    code, _, err = cli(capsys, "predict", str(run / "export"), *paths, "--out", "out/p.csv")
    assert code == 2 and "the folder out does not exist" in err
    (tmp_path / "out").mkdir()
    code, _, err = cli(capsys, "predict", str(run / "export"), *paths, "--out", "out/p.csv")
    assert code == 0 and "5 predictions written to out/p.csv" in err
    table = list(csv.reader((tmp_path / "out" / "p.csv").open()))
    assert table[0] == ["path", "prediction", "probability", "label"]
    assert [int(row[3]) for row in table[1:]] == expected
    os.mkfifo(tmp_path / "pipe.png")  # would block a reader forever
    code, _, err = cli(capsys, "predict", str(run / "export"), str(tmp_path / "pipe.png"))
    assert code == 2 and "pipe.png is not a regular file" in err
    # --out is written by replacing: a device or a link (/dev/stdout) would be replaced by a file
    (tmp_path / "link.csv").symlink_to(tmp_path / "out" / "p.csv")
    for out, message in (("/dev/null", "is not a regular file"), ("link.csv", "is a symbolic link")):
        code, _, err = cli(capsys, "predict", str(run / "export"), *paths, "--out", out)
        assert code == 2 and message in err, err
    assert Path("/dev/null").is_char_device() and (tmp_path / "link.csv").is_symlink()
    code, _, err = cli(capsys, "predict", str(run / "export"), *paths, "--out", "/proc/p.csv")  # even for root
    assert code == 2 and "--out /proc/p.csv cannot be written" in err, err


def test_report_has_a_summary_top_trials_optuna_plots_and_typed_tables(run: Path, tmp_path: Path, capsys) -> None:
    import csv

    from openpyxl import load_workbook

    result = rlnas("report", str(run), "-q", cwd=tmp_path)  # a global flag after the subcommand
    assert result.returncode == 0, result.stderr
    report = run / "report"
    for name in (
        "trials.csv",
        "trials.xlsx",
        "history.png",
        "importances.png",
        "parallel.png",
        "slice.png",
        "pareto_params.png",
        "policy.png",
        "index.html",
    ):
        assert (report / name).is_file(), name
    book = load_workbook(report / "trials.xlsx")
    sheet = book["trials"]
    assert sheet.max_row == 6 and "val_accuracy" in [c.value for c in sheet[1]]
    assert sheet.freeze_panes == "B2" and sheet.auto_filter.ref
    header = [c.value for c in sheet[1]]
    params = sheet.cell(row=2, column=header.index("params") + 1)
    assert isinstance(params.value, int) and params.number_format == "#,##0"
    with (report / "trials.csv").open() as fh:
        assert "." not in next(csv.DictReader(fh))["params"]  # integers stay integers
    page = (report / "index.html").read_text()
    metrics = json.loads((run / "export" / "metrics.json").read_text())
    summary = json.loads((run / "run.json").read_text())
    assert "<h2>Summary</h2>" in page and f"#{summary['best_trial']}: reward" in page
    assert f"{metrics['test_accuracy']:.4f}" in page and "config.yaml" in page
    assert "Top 5 trials by reward" in page and "Decision importances" in page
    assert page.count("data:image/png;base64,") >= 7 and "<img alt" in page  # self-contained
    assert "src='history.png'" not in page
    assert str((run / "export").resolve()) in page and "href='../export/model.onnx'" in page  # where the model is
    assert (run / "export" / "README.md").read_text().splitlines()[0] in page  # the model card, embedded
    assert "Rough: from 5 completed trials only" in page and " ± " not in page  # one final training: no spread
    assert "block1: filters=" in page  # architectures labelled
    out = tmp_path / "cmp"
    both = rlnas("report", str(run), str(run), "--out", str(out), cwd=tmp_path)
    assert both.returncode == 0 and (out / "runs.png").is_file()
    compared = (out / "index.html").read_text()
    assert "ppo, seed 3 (myrun, #1)" in compared and "ppo, seed 3 (myrun, #2)" in compared  # told apart
    assert cli(capsys, "report", str(run), str(run))[0] == 2
    (tmp_path / "afile").write_text("")
    code, _, err = cli(capsys, "report", str(run), "--out", str(tmp_path / "afile"))
    assert code == 2 and "is a file" in err


def test_terminal_output_help_and_trials_table(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlnas.strategies import STRATEGIES

    help_text = cli(capsys, "search", "--help")[1]
    assert all(name in help_text for name in STRATEGIES)
    assert "(default: ppo,random,evolution)" in cli(capsys, "benchmark", "--help")[1]
    from rlnas.formatting import architecture_line
    from rlnas.rundir import open_run

    with open_run(run, read_only=True)[1] as store:
        archs = [architecture_line(r.architecture) for r in store]
    for columns in (80, 100):  # the architecture wraps, every decision labelled, nothing cut
        monkeypatch.setenv("COLUMNS", str(columns))
        code, narrow, _ = cli(capsys, "trials", str(run))
        lines = narrow.splitlines()
        assert code == 0 and len(lines) > 6 and max(len(line) for line in lines) <= columns and "…" not in narrow
        flowing = " ".join(narrow.split())
        assert all(" ".join(arch.split()) in flowing for arch in archs) and "block1: filters=" in flowing
    chosen = cli(capsys, "trials", str(run), "--columns", "number,reward,params", "-q")[1].splitlines()
    assert chosen[0].split() == ["number", "reward", "params"] and len(chosen) == 6
    assert cli(capsys, "trials", str(run), "--columns", "nope")[0] == 2
    assert cli(capsys, "trials", str(run), "--top", "-1")[0] == 2
    assert cli(capsys, "trials", str(run), "--columns", " , ")[0] == 2
    piped = subprocess.run(
        " ".join([*command(), "trials", str(run), "--json", "|", "head", "-1"]),
        shell=True,
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr


def test_benchmark_runs_end_to_end_on_the_table(tmp_path: Path, capsys) -> None:
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
    assert "the table's best-validation architecture: validation" in result.stdout and "from seed 3" in result.stdout
    assert "test 94.37" in result.stdout and "regret on the searched metric" in result.stdout
    summary = json.loads(out.read_text())
    assert set(summary) == {"ppo", "random"} and set(summary["ppo"]) == {"5", "10"}
    expected = [run_on_table("random", seed, table, 10).test_at[-1] for seed in (3, 4)]  # seeds 3 and 4
    assert summary["random"]["10"]["n"] == 2
    assert summary["random"]["10"]["mean"] == pytest.approx(sum(expected) / 2)
    margin = summary["random"]["10"]["margin"]
    assert margin["of"] == "ppo" and margin["mean"] == pytest.approx(summary["ppo"]["10"]["mean"] - sum(expected) / 2)
    assert "margin of ppo" in result.stdout and f"{margin['mean']:+.3f} ± {margin['se']:.3f}" in result.stdout
    assert png.stat().st_size > 1000
    code, _, err = cli(capsys, "benchmark", *args, "--seeds", "0")
    assert code == 2 and "--seeds >= 1" in err


def test_a_report_that_fails_halfway_leaves_the_previous_files_whole(run: Path, tmp_path: Path, monkeypatch) -> None:
    """The report's files are built in a staging folder and moved in at the end: a failure (or a kill) halfway
    leaves the previous report as it was, and the other files of an --out folder are never touched."""
    import rlnas.report as report_module

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own")
    report_module.report([run], out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "index.html" in before and before["notes.txt"] == b"the user's own"

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed halfway")

    monkeypatch.setattr(report_module, "plot_curves", broken)  # after the tables and the Optuna plots are written
    with pytest.raises(RuntimeError, match="killed halfway"):
        report_module.report([run], out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.is_dir()]  # no staging folder left behind


def test_ctrl_c_while_the_command_imports_its_modules_is_one_line(monkeypatch, capsys) -> None:
    """The ``rlnas`` entry point imports the CLI (torch: seconds) under a handler: a Ctrl-C then says so in one
    line and exits 130, without a traceback."""
    import builtins
    import sys

    from rlnas import launch
    from rlnas.cli_run import EXIT_INTERRUPTED

    real = builtins.__import__

    def interrupted(name: str, *args: object, **kwargs: object) -> object:
        if name == "rlnas.cli":
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "rlnas.cli", raising=False)
    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert launch.main() == EXIT_INTERRUPTED == launch.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "rlnas: interrupted while starting; nothing was done\n"


def test_a_search_whose_children_all_fail_says_why_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    limit = ["--set", "training.max_minutes_per_child=0.00001", "--set", "strategy.name=random"]  # 0.6 ms
    code, out, err = cli(capsys, "-q", "search", *TINY, *limit, "--budget", "3", "--run-dir", "r")
    assert code == 1 and "3 children evaluated" in out
    assert "nothing to export. Failed children: 3 x ChildFailure: training exceeded the per-child limit" in err
    assert "rlnas trials r" in err
