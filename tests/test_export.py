from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch

import rlnas
from rlnas.driver import Search
from rlnas.errors import ConfigError, RunDirError
from rlnas.evaluation.train import accuracy
from rlnas.exporter import export_plan, export_run, write_export
from rlnas.models.complexity import count_flops
from rlnas.models.families import ViewAverage
from rlnas.prepare import prepare
from rlnas.report import report
from rlnas.rundir import open_run
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    config = tiny_config()
    prepared = prepare(config)
    arch = prepared.space.sample(np.random.default_rng(4))
    model, _ = prepared.trainer.train(arch, seed=1, epochs=2)
    out = tmp_path_factory.mktemp("export") / "export"
    metrics = {
        "test_accuracy": accuracy(model, prepared.dataset.test),
        "val_accuracy": 0.5,
        "params": 1,
        "flops": 1,
        "latency_ms": 0.1,
        "epochs": 2,
        "dataset": "digits",
        "score": "accuracy",
    }
    write_export(out, model, arch, prepared.space.family, prepared.dataset, config, metrics)
    return model.eval(), out, prepared.dataset


def test_loaded_model_matches_the_in_memory_model(trained) -> None:
    model, out, dataset = trained
    loaded = rlnas.load_model(out)
    x = dataset.test.x[:64]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert rlnas.load_model(out / "model.pt") is not None


def test_onnx_with_dynamic_batch_matches_torch(trained) -> None:
    model, out, dataset = trained
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    for n in (1, 7, 64):
        x = dataset.test.x[:n]
        got = session.run(None, {"image": x.numpy()})[0]
        with torch.no_grad():
            np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_pt2_loads_without_rlnas_and_matches(trained) -> None:
    model, out, dataset = trained
    program = torch.export.load(str(out / "model.pt2")).module()
    x = dataset.test.x[:5]
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x), rtol=1e-5, atol=1e-5)


def test_export_is_self_describing(trained) -> None:
    _, out, _ = trained
    info = json.loads((out / "architecture.json").read_text())
    assert info["format"] == "rlnas-model-1" and info["input_shape"] == [1, 8, 8]
    assert {"rlnas", "torch", "python"} <= set(info["versions"])
    assert "test accuracy" in (out / "README.md").read_text()
    data = torch.load(out / "model.pt", weights_only=True)  # plain tensors and values, no pickled module
    assert "state_dict" in data


def test_export_run_retrains_the_best_trial(tmp_path: Path) -> None:
    config = tiny_config("strategy.name=random", "budget.evaluations=2", "logging.tensorboard=false")
    search = Search(config, tmp_path / "run")
    result = search.run()
    search.close()
    metrics = export_run(tmp_path / "run")
    assert metrics["trial"] == result.best.number
    assert metrics["val_accuracy"] == pytest.approx(result.best.metrics["val_accuracy"])
    assert 0.1 < metrics["test_accuracy"] <= 1.0
    on_disk = json.loads((tmp_path / "run" / "export" / "metrics.json").read_text())
    assert on_disk["test_accuracy"] == metrics["test_accuracy"]
    model = rlnas.load_model(tmp_path / "run")  # a run directory works too
    assert accuracy(model, prepare(config).dataset.test) == pytest.approx(metrics["test_accuracy"])


def test_export_rescores_the_top_k_and_repeats_the_final_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(
        "training.data_fraction=0.5",
        "strategy.name=random",
        "budget.evaluations=3",
        "logging.tensorboard=false",
        "export.rescore_top_k=2",
        "export.rescore_epochs=2",
        "export.repeats=3",
        "export.rescore_repeats=2",
        "export.formats=[]",
        "logging.keep_children=true",
        "export.ema=0.9",
        "export.erasing=0.25",
        "training.label_smoothing=0.1",
    )
    search = Search(config, tmp_path / "run")
    search.run()
    top = search.store.top_k(2)
    top2 = [t.number for t in top]
    search.close()
    plan = export_plan(tmp_path / "run")
    assert (plan.rescore_epochs, plan.final_epochs, plan.final_trainings) == (2 * 2 * 2, 3 * 2, 3)
    # at the pace of the children it retrains: the 2 candidates' search-time trainings (on half the split)
    first, second = (float(t.metrics["train_seconds"]) / float(t.metrics["epochs"]) / 0.5 for t in top)
    final = 3 * 2 / (1 - config.dataset.val_fraction)  # 3 trainings of 2 epochs on train+validation
    assert plan.seconds == pytest.approx((first + second) / 2 * (2 * 2 * 2) + first * final)
    import rlnas.evaluation.trainer as trainer

    fractions: list[tuple[float, float, float, float]] = []
    train_model = trainer.train_model

    def recording(m, d, s, *a):  # type: ignore[no-untyped-def]
        fractions.append((s.data_fraction, s.ema, s.erasing, s.label_smoothing))
        return train_model(m, d, s, *a)

    monkeypatch.setattr(trainer, "train_model", recording)
    metrics = export_run(tmp_path / "run")
    # re-scoring and final trainings on the whole split, not 0.5 of it; the export's recipe for the final ones
    assert fractions == [(1.0, 0.0, 0.0, 0.1)] * (2 * 2) + [(1.0, 0.9, 0.25, 0.1)] * 3
    assert [row["trial"] for row in metrics["rescored"]] == top2
    assert metrics["trial"] in top2
    chosen = max(metrics["rescored"], key=lambda row: row["rescored_val_accuracy"])
    assert metrics["trial"] == chosen["trial"]
    repeats = [r["test_accuracy"] for r in metrics["test_accuracy_repeats"]]
    assert len(repeats) == 3 and len({r["seed"] for r in metrics["test_accuracy_repeats"]}) == 3
    assert metrics["test_accuracy"] == max(repeats)
    assert metrics["test_accuracy_mean"] == pytest.approx(float(np.mean(repeats)))
    loaded = rlnas.load_model(tmp_path / "run")  # the exported weights are the best repeat's
    assert accuracy(loaded, prepare(config).dataset.test) == pytest.approx(metrics["test_accuracy"])
    for row in metrics["rescored"]:
        assert len(row["rescored_val_accuracy_values"]) == 2
        assert row["rescored_val_accuracy"] == pytest.approx(float(np.mean(row["rescored_val_accuracy_values"])))
    out = report([tmp_path / "run"])
    assert (out / "repeats.png").is_file() and "Repeated trainings" in (out / "index.html").read_text()


def test_every_child_can_be_kept_and_reloaded(tmp_path: Path) -> None:
    config = tiny_config("strategy.name=random", "budget.evaluations=3", "logging.keep_children=true")
    search = Search(config, tmp_path / "run")
    search.run()
    trials = search.store.trials()
    search.close()
    val = prepare(config).dataset.val
    assert len(list((tmp_path / "run" / "children").glob("*.pt"))) == 3
    for trial in trials:
        model = rlnas.load_trial(tmp_path / "run", trial.number)
        assert accuracy(model, val) == pytest.approx(trial.metrics["val_accuracy"])
        assert torch.load(tmp_path / "run" / "children" / f"{trial.key}.pt", weights_only=True)["seed"] == int(
            trial.metrics["seed"]
        )
    with pytest.raises(RunDirError, match="no trial 99"):
        rlnas.load_trial(tmp_path / "run", 99)


def _search_and_export(tmp_path: Path, *overrides: str) -> tuple[Any, dict[str, Any]]:
    """A random search of the tiny config into tmp_path/run and its export (ONNX only)."""
    config = tiny_config("strategy.name=random", "logging.tensorboard=false", "export.formats=[onnx]", *overrides)
    search = Search(config, tmp_path / "run")
    search.run()
    search.close()
    return config, export_run(tmp_path / "run")


def _check_ensemble(loaded: torch.nn.Module, metrics: dict, dataset, export: Path) -> None:  # type: ignore[no-untyped-def]
    """The exported ensemble scores what metrics.json says, each member as recorded, its output is the log of
    the members' mean probabilities, and the ONNX file computes the same."""
    members = loaded.members  # type: ignore[union-attr]
    assert accuracy(loaded, dataset.test) == pytest.approx(metrics["test_accuracy"])
    scored = [accuracy(m, dataset.test) for m in members]
    assert scored == pytest.approx([r["test_accuracy"] for r in metrics["test_accuracy_repeats"]])
    x = dataset.test.x[:16].float()
    with torch.no_grad():
        mean_probability = torch.stack([torch.softmax(m(x), dim=1) for m in members]).mean(0)
        assert torch.allclose(torch.softmax(loaded(x), dim=1), mean_probability, atol=1e-6)
        (onnx_out,) = onnxruntime.InferenceSession(str(export / "model.onnx")).run(None, {"image": x.numpy()})
        assert np.allclose(onnx_out, loaded(x).numpy(), atol=1e-5)


def test_an_ensemble_export_averages_the_final_trainings(tmp_path: Path) -> None:
    config, metrics = _search_and_export(tmp_path, "budget.evaluations=2", "export.repeats=3", "export.ensemble=true")
    assert metrics["ensemble"] == 3 and "ensemble" in metrics["exported_repeat"]
    loaded = rlnas.load_model(tmp_path / "run")
    assert len(loaded.members) == 3  # type: ignore[arg-type]
    _check_ensemble(loaded, metrics, prepare(config).dataset, tmp_path / "run" / "export")
    card = (tmp_path / "run" / "export" / "README.md").read_text()
    assert "the average of 3 networks" in card and "log-probabilities" in card


def test_an_ensemble_of_the_top_architectures_averages_their_final_trainings(tmp_path: Path) -> None:
    config, metrics = _search_and_export(tmp_path, "budget.evaluations=4", "export.ensemble_top=3")
    with open_run(tmp_path / "run")[1] as store:
        top = store.top_k(3)
    assert metrics["ensemble_trials"] == [t.number for t in top] and metrics["trial"] == top[0].number
    assert (
        metrics["ensemble"] == 3
        and [r["trial"] for r in metrics["test_accuracy_repeats"]] == metrics["ensemble_trials"]
    )
    # each member's training time; final_train_seconds is their mean
    seconds = [r["train_seconds"] for r in metrics["test_accuracy_repeats"]]
    assert all(s > 0 for s in seconds) and metrics["final_train_seconds"] == pytest.approx(np.mean(seconds))
    info = json.loads((tmp_path / "run" / "export" / "architecture.json").read_text())
    assert [m["decisions"] for m in info["members"]] == [t.architecture.to_dict() for t in top]
    loaded = rlnas.load_model(tmp_path / "run")
    _check_ensemble(loaded, metrics, prepare(config).dataset, tmp_path / "run" / "export")
    assert metrics["params"] == sum(sum(p.numel() for p in m.parameters()) for m in loaded.members)  # type: ignore[union-attr]
    card = (tmp_path / "run" / "export" / "README.md").read_text()
    assert "the average of 3 networks of 3 architectures" in card
    assert " | ".join(f"trial {t.number}" for t in top) in card


def test_every_convnet_block_exports_to_onnx_and_pt2(tmp_path: Path) -> None:
    """A trained convnet child with a stage of each block type (squeeze-and-excite on; strided, pooled and
    full-size stages) written by the export: model.pt, ONNX and .pt2 give the outputs of the network in memory."""
    from rlnas.config import load_config

    kinds = ("plain", "residual", "inverted", "separable")
    config = load_config(
        None,
        ["space=convnet", "space.per_layer.width=[8]", "space.depth=[4]", "training.epochs=1", "logging.graph=false"],
    )
    prepared = prepare(config)
    values = prepared.space.sample(np.random.default_rng(0)).to_dict()
    for k, (kind, downsample) in enumerate(zip(kinds, ("stride", "pool", "none", "none"), strict=True), start=1):
        values.update({f"stage{k}.block": kind, f"stage{k}.se": True, f"stage{k}.downsample": downsample})
        values.setdefault(f"stage{k}.expansion", 3)
    arch = prepared.space.make(values)
    assert [arch[f"stage{k}.block"] for k in range(1, 5)] == list(kinds)
    model, _ = prepared.trainer.train(arch, seed=1, epochs=1)
    model = model.eval()
    metrics = {"test_accuracy": 0.5, "val_accuracy": 0.5, "params": 1, "flops": 1, "latency_ms": 0.1, "epochs": 1}
    write_export(
        tmp_path,
        model,
        arch,
        "convnet",
        prepared.dataset,
        config,
        {**metrics, "dataset": "digits", "score": "accuracy"},
    )
    x = prepared.dataset.test.x[:7]
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(rlnas.load_model(tmp_path)(x), expected)
        torch.testing.assert_close(
            torch.export.load(str(tmp_path / "model.pt2")).module()(x), expected, rtol=1e-5, atol=1e-5
        )
    got = onnxruntime.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4)


def test_view_average_shifts_each_image_by_one_pixel_with_zeros_filled_in() -> None:
    x = torch.zeros(2, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0  # a centre pixel: the four shifts put it on the four neighbours
    x[1, 0, 0, 0] = 1.0  # a corner pixel: shifted up or left it leaves the image (no wrap-around)
    averaged = ViewAverage(torch.nn.Flatten(), classification=False)(x).reshape(2, 3, 3)
    centre = torch.tensor([[0.0, 0.2, 0.0], [0.2, 0.2, 0.2], [0.0, 0.2, 0.0]])
    corner = torch.tensor([[0.2, 0.2, 0.0], [0.2, 0.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(averaged, torch.stack([centre, corner]))


def test_an_export_with_test_time_shifts_scores_loads_and_exports_the_averaged_views(tmp_path: Path) -> None:
    config, metrics = _search_and_export(
        tmp_path, "budget.evaluations=2", "export.tta=shift", "export.formats=[onnx,pt2]"
    )
    dataset = prepare(config).dataset
    loaded = rlnas.load_model(tmp_path / "run")
    assert isinstance(loaded, ViewAverage) and not isinstance(loaded.model, ViewAverage)
    assert metrics["tta"] == "shift" and accuracy(loaded, dataset.test) == pytest.approx(metrics["test_accuracy"])
    plain = accuracy(loaded.model, dataset.test)  # the trained network alone: the repeat's own score
    assert plain == pytest.approx(metrics["test_accuracy_without_tta"])
    assert plain == pytest.approx(metrics["test_accuracy_repeats"][0]["test_accuracy"])
    assert metrics["flops"] == 5 * count_flops(loaded.model, dataset.input_shape)  # five views per image
    x = dataset.test.x[:16].float()
    with torch.no_grad():
        edges = torch.ones_like(x[:1])
        edges[..., 0, :] = edges[..., -1, :] = edges[..., :, 0] = edges[..., :, -1] = 0
        blank = x * edges  # blank borders: there a roll by one pixel is a shift with zeros filled in
        views = [blank, *(torch.roll(blank, s, d) for s, d in ((-1, 2), (1, 2), (-1, 3), (1, 3)))]
        mean_probability = torch.stack([torch.softmax(loaded.model(v), dim=1) for v in views]).mean(0)
        torch.testing.assert_close(torch.softmax(loaded(blank), dim=1), mean_probability)
        export = tmp_path / "run" / "export"
        (onnx_out,) = onnxruntime.InferenceSession(str(export / "model.onnx")).run(None, {"image": x.numpy()})
        np.testing.assert_allclose(onnx_out, loaded(x).numpy(), atol=1e-5)
        torch.testing.assert_close(torch.export.load(str(export / "model.pt2")).module()(x), loaded(x))
    card = (tmp_path / "run" / "export" / "README.md").read_text()
    assert "1-pixel shifts" in card and "views' mean probabilities" in card


def test_test_time_shifts_are_refused_for_a_table() -> None:
    x = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
    with pytest.raises(ConfigError, match=r"export.tta=shift .*table; set export.tta=none"):
        prepare(
            tiny_config("space=mlp", "export.tta=shift", "training.augment=none"),
            rlnas.data.from_arrays(x, (x[:, 0] > 0).astype(int)),
        )
