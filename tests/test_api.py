"""The Python API: rlnas.search / resume / export on data handed over from Python."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

import rlnas
from rlnas.errors import DataError
from rlnas.predict import predict_table
from tests.test_cli import rlnas as run_cli
from tests.test_resume import _trials

TINY = {
    "space.depth": [1, 2],
    "space.per_layer.filters": [8, 16],
    "space.head.hidden_units": [16, 32],
    "training.epochs": 1,
    "strategy.ppo.episodes_per_update": 1,
    "export.epochs": 2,
    "logging.graph": False,
    "logging.policy_images": False,
}

DIGITS_SCRIPT = """
import sys
import numpy as np
from sklearn.datasets import load_digits
import rlnas

d = load_digits()
data = rlnas.data.from_arrays((d.images * 255 / 16).round().astype(np.uint8), d.target)
rlnas.search(data, run_dir=sys.argv[1], budget=int(sys.argv[2]), export=False, overrides={overrides})
"""


def digits_arrays() -> rlnas.Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    return rlnas.data.from_arrays((d.images * 255 / 16).round().astype(np.uint8), d.target)


def test_search_on_arrays_in_memory_exports_a_usable_model(tmp_path: Path) -> None:
    data = digits_arrays()
    seen = []
    result = rlnas.search(
        data, budget=3, run_dir=tmp_path / "run", overrides=TINY, callback=lambda d, t, r: seen.append((d, t))
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert len(result.trials) == 3 and result.best is not None and result.best.number in {0, 1, 2}
    assert result.best.reward == max(t.reward for t in result.trials)
    assert result.export_dir == tmp_path / "run" / "export"
    model = result.model
    assert isinstance(model, torch.nn.Module)
    logits = model(data.test.x.float() / 255)
    accuracy = float((logits.argmax(1) == data.test.y).float().mean())
    assert accuracy == pytest.approx(result.metrics["test_accuracy"], abs=1e-6)
    recorded = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert recorded["fingerprint"] == data.fingerprint() and recorded["description"] == {"name": "memory"}
    raw = data.test.x.numpy()[:, 0]  # (N, H, W) uint8 pixels, as a user holds them: no float NCHW by hand
    assert np.array_equal(result.predict(raw), logits.argmax(1).numpy())
    assert result.evaluate(raw, data.test.y.numpy()) == {"accuracy": pytest.approx(accuracy, abs=1e-6)}
    assert result.evaluate(raw[..., None] / 255.0, data.test.y.numpy().astype(str))["accuracy"] == pytest.approx(
        accuracy, abs=1e-6
    )  # NHWC floats in [0, 1], labels as class names
    predictor = rlnas.load_predictor(result.export_dir)
    assert predictor.predict(raw[0]).shape == (1,) and predictor.predict_proba(raw).shape == (len(raw), 10)
    with pytest.raises(DataError, match="do not fit the model's input"):
        predictor.predict(np.zeros((2, 5, 5), dtype=np.uint8))
    with pytest.raises(DataError, match="'cat' is not one of the model's classes"):
        predictor.evaluate(raw[:1], ["cat"])


def test_export_and_resume_need_the_same_data(tmp_path: Path) -> None:
    data = digits_arrays()
    rlnas.search(data, budget=2, run_dir=tmp_path / "run", overrides=TINY, export=False)
    with pytest.raises(DataError, match="arrays handed over from Python"):
        rlnas.export(tmp_path / "run")
    other = rlnas.data.from_arrays(np.flip(data.train.x.numpy(), axis=3).copy(), data.train.y.numpy())
    with pytest.raises(DataError, match="the data differ from those .* was searched on"):
        rlnas.export(tmp_path / "run", data=other)
    with pytest.raises(DataError, match="the data differ from those .* was searched on"):
        rlnas.resume(tmp_path / "run", data=other, budget=3)
    assert not (tmp_path / "run" / "export").exists()
    metrics = rlnas.export(tmp_path / "run", data=data)
    assert metrics["data_fingerprint"] == data.fingerprint()


def test_resume_after_sigkill_with_the_data_from_python(tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(textwrap.dedent(DIGITS_SCRIPT.format(overrides=repr(TINY))))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), str(run), "10"], cwd=tmp_path, stderr=subprocess.PIPE)
    import time

    deadline = time.monotonic() + 180
    while not (run / "trials.sqlite").exists() or len(_trials(run)) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _trials(run)
    assert 3 <= len(before) < 10
    result = rlnas.resume(run, data=digits_arrays())
    after = _trials(run)
    assert len(after) == 10 and after[: len(before)] == before
    assert len({key for _, key, _ in after}) == 10
    assert result.export_dir is not None and (result.export_dir / "model.onnx").is_file()


def test_regression_on_a_csv_table(tmp_path: Path) -> None:
    d = load_diabetes()
    table = tmp_path / "diabetes.csv"
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*d.feature_names, "target"])
        writer.writerows([*map(float, row), float(t)] for row, t in zip(d.data, d.target, strict=True))
    data = rlnas.data.from_csv(table)
    assert data.task == "regression" and data.input_shape == (10,)
    result = rlnas.search(
        data, budget=3, run_dir=tmp_path / "run", overrides={"training.epochs": 10, "export.epochs": 20}
    )
    for trial in result.trials:
        assert {"val_r2", "val_mae", "val_rmse"} <= set(trial.metrics)
        assert trial.reward <= trial.metrics["val_r2"]
    metrics = result.metrics
    assert metrics["score"] == "r2" and metrics["test_r2"] > 0.2  # a mean predictor scores 0
    header, rows = predict_table(result.export_dir, table)  # type: ignore[arg-type]
    assert header[-1] == "prediction" and len(rows) == len(d.target)
    predicted = np.array([float(r[-1]) for r in rows])
    assert 25 < predicted.mean() < 346 and predicted.std() > 10  # in the target's units, not standardized
    lines = table.read_text().splitlines()
    gappy = tmp_path / "gappy.csv"  # a blank line inside the table still gets its prediction: rows line up
    gappy.write_text("\n".join([*lines[:4], "", *lines[4:], "", ""]) + "\n")
    header, gapped = predict_table(result.export_dir, gappy)  # type: ignore[arg-type]
    assert len(gapped) == len(rows) + 1 and gapped[3][:-1] == [""] * len(lines[0].split(","))
    # the same rows, batched with one more: equal to float32 rounding (the printed 6 digits may differ by one)
    aligned = [float(r[-1]) for r in gapped[:3] + gapped[4:]]
    np.testing.assert_allclose(aligned, [float(r[-1]) for r in rows], rtol=1e-5)
    shuffled = tmp_path / "shuffled.csv"  # the same table, columns in another order: read by name
    with shuffled.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["target", *reversed(d.feature_names)])
        writer.writerows([float(t), *map(float, reversed(row))] for row, t in zip(d.data, d.target, strict=True))
    evaluated = run_cli("evaluate", str(result.export_dir), "--data-dir", str(shuffled), "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["r2"] == pytest.approx(metrics["test_r2"], abs=1e-5)
    predictor = rlnas.load_predictor(result.export_dir)  # raw rows in: the stored encoding applied inside
    assert predictor.columns == list(d.feature_names)
    values = predictor.predict(d.data)  # rows of values in the table's column order
    dicts = predictor.predict([dict(zip(d.feature_names, row, strict=True)) for row in d.data[:5]])
    assert np.allclose(values, predicted, rtol=1e-4, atol=1e-3) and np.allclose(dicts, values[:5])
    assert result.evaluate(d.data, d.target)["r2"] == pytest.approx(
        1 - ((values - d.target) ** 2).sum() / ((d.target - d.target.mean()) ** 2).sum(), abs=1e-4
    )
    import onnxruntime

    session = onnxruntime.InferenceSession(str(result.export_dir / "model.onnx"))  # ONNX users encode with it too
    onnx = session.run(None, {"features": predictor.features(d.data[:5]).numpy()})[0]
    assert np.allclose(onnx.reshape(-1), values[:5], rtol=1e-4, atol=1e-3)


def test_minutes_is_a_budget_that_counts_the_time_spent_before_a_resume(tmp_path: Path) -> None:
    data = digits_arrays()
    first = rlnas.search(data, budget=50, minutes=0.001, run_dir=tmp_path / "run", overrides=TINY, export=False)
    assert first.evaluations == 1 and first.stop_reason.startswith("time budget of 0.001 minutes")
    again = rlnas.resume(tmp_path / "run", data=data, minutes=0.001, export=False)  # spent already: no child
    assert again.evaluations == 1 and again.stop_reason.startswith("time budget")
    more = rlnas.resume(tmp_path / "run", data=data, minutes=60, budget=2, export=False)
    assert more.evaluations == 2 and more.seconds > first.seconds


def test_on_epoch_hears_every_epoch_and_a_raising_callback_stops_the_search(tmp_path: Path) -> None:
    """``on_epoch(architecture, epoch)`` hears each epoch of each child with its validation score (the stored
    curve); a callback that raises stops the search with CallbackError: not a failed child, and the trials
    finished before it stay stored."""
    from rlnas.errors import CallbackError

    data = digits_arrays()
    heard: list = []
    overrides = {**TINY, "training.epochs": 2}
    result = rlnas.search(
        data, budget=2, run_dir=tmp_path / "run", overrides=overrides, export=False,
        on_epoch=lambda arch, epoch: heard.append((arch.key, epoch.epoch, epoch.epochs, epoch.score)),
    )  # fmt: skip
    assert [(n, e) for _, n, e, _ in heard] == [(1, 2), (2, 2), (1, 2), (2, 2)]
    for trial in result.trials:
        assert tuple(s for key, _, _, s in heard if key == trial.key) == trial.curve
        assert trial.curve[-1] == trial.metrics["val_accuracy"]
    from rlnas.report import report

    page = (report([tmp_path / "run"]) / "index.html").read_text()
    assert "Validation curves of the children" in page and (tmp_path / "run" / "report" / "curves.png").is_file()

    def stop_in_third_child(arch: object, epoch: rlnas.EpochEnd) -> None:
        heard.append(epoch)
        if len(heard) == 6:  # the first epoch of the third child
            raise KeyError("enough")

    heard.clear()
    with pytest.raises(CallbackError, match="on_epoch callback raised KeyError: 'enough'") as caught:
        rlnas.search(data, budget=4, run_dir=tmp_path / "stopped", overrides=overrides, on_epoch=stop_in_third_child)
    assert isinstance(caught.value.__cause__, KeyError)
    from rlnas.store import TrialStore

    with TrialStore(tmp_path / "stopped" / "trials.sqlite", read_only=True) as store:
        assert [t.status for t in store] == ["COMPLETE", "COMPLETE"]  # the interrupted child is not a failure
