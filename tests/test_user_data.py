"""Your own data: image folders, .npz arrays, arrays in memory and CSV tables, and their bad inputs."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import rlnas
from rlnas import imagefiles
from rlnas.data import folder as folder_module
from rlnas.data import from_arrays, from_csv, from_folder, from_npz, load_dataset
from rlnas.errors import ConfigError, DataError
from tests.conftest import cli
from tests.test_cli import rlnas as run_cli


def _digits_uint8(classes: int = 3, per_class: int = 40) -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    keep = np.concatenate([np.flatnonzero(d.target == c)[:per_class] for c in range(classes)])
    return (d.images[keep] * 255 / 16).round().astype(np.uint8), d.target[keep].astype(np.int64)


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, names: tuple[str, ...] = ("zero", "one", "two")) -> None:
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:04d}.png")


@pytest.fixture
def png_folder(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    x, y = _digits_uint8()
    write_folder(tmp_path / "photos", x, y)
    return tmp_path / "photos", x, y


def _pixels(dataset: rlnas.Dataset) -> set[bytes]:
    return {row.numpy().tobytes() for split in (dataset.train, dataset.val, dataset.test) for row in split.x}


def test_folder_decodes_every_image_exactly_and_keeps_class_names(png_folder, tmp_path: Path, caplog) -> None:
    root, x, y = png_folder
    data = from_folder(root, cache_dir=str(tmp_path / "cache"))
    assert data.class_names == ("one", "two", "zero")  # sorted folder names
    assert data.input_shape == (1, 8, 8) and data.train.x.dtype == torch.uint8
    assert len(data.train) + len(data.val) + len(data.test) == len(x) == 120
    assert _pixels(data) == {img.tobytes() for img in x}  # lossless: the very pixels that were written
    assert data.num_classes == 3 and data.task == "classification"
    assert data.description["path"] == str(root.absolute())
    caplog.set_level(logging.INFO, logger="rlnas")
    again = from_folder(root, cache_dir=str(tmp_path / "cache"))
    assert "from the cache" in caplog.text
    assert again.fingerprint() == data.fingerprint()
    next((root / "two").iterdir()).touch()  # a changed file invalidates the cache
    caplog.clear()
    from_folder(root, cache_dir=str(tmp_path / "cache"))
    assert "decoded 120 images" in caplog.text
    for cache in (tmp_path / "cache").rglob("*.npz"):  # a damaged cache is decoded again, never a traceback
        cache.write_bytes(cache.read_bytes()[:300])
    caplog.clear()
    assert _pixels(from_folder(root, cache_dir=str(tmp_path / "cache"))) == {img.tobytes() for img in x}
    assert "ignoring the unreadable cache file" in caplog.text


def test_folder_decodes_in_parallel_worker_processes(png_folder, tmp_path: Path, monkeypatch) -> None:
    root, x, _ = png_folder
    monkeypatch.setattr(folder_module, "PARALLEL_FROM", 10)
    monkeypatch.setattr(folder_module, "CHUNK", 16)
    data = from_folder(root, cache_dir=str(tmp_path / "cache"))
    assert _pixels(data) == {img.tobytes() for img in x}


def test_presplit_folder_keeps_its_test_split(tmp_path: Path) -> None:
    x, y = _digits_uint8()
    write_folder(tmp_path / "d" / "train", x[::2], y[::2])
    write_folder(tmp_path / "d" / "test", x[1::2], y[1::2])
    data = from_folder(tmp_path / "d", cache_dir=str(tmp_path / "cache"))
    assert len(data.test) == 60 and len(data.train) + len(data.val) == 60
    assert {row.numpy().tobytes() for row in data.test.x} == {img.tobytes() for img in x[1::2]}


def test_mixed_sizes_need_an_image_size_and_color_becomes_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "pets" / label).mkdir(parents=True)
        for i, size in enumerate((12, 16, 12, 20)):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
                tmp_path / "pets" / label / f"{i}.jpg"
            )
    with pytest.raises(DataError, match=r"different sizes.*dataset.image_size"):
        from_folder(tmp_path / "pets", cache_dir=str(tmp_path / "cache"))
    data = from_folder(tmp_path / "pets", image_size=10, cache_dir=str(tmp_path / "cache"), val_fraction=0.25)
    assert data.input_shape == (3, 10, 10)
    gray = from_folder(tmp_path / "pets", image_size=(6, 8), channels="grayscale", cache_dir=str(tmp_path / "c2"))
    assert gray.input_shape == (1, 6, 8)


def test_a_corrupt_image_is_named_or_skipped(png_folder, tmp_path: Path) -> None:
    root, _, _ = png_folder
    bad = root / "one" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"broken\.png.*skip_corrupt"):
        from_folder(root, cache_dir=str(tmp_path / "cache"))
    data = from_folder(root, skip_corrupt=True, cache_dir=str(tmp_path / "cache"))
    assert len(data.train) + len(data.val) + len(data.test) == 120


def test_16_bit_grayscale_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    wide = {name: rng.integers(0, 65536, (5, 6, 6)).astype(np.uint16) for name in ("dark", "light")}
    wide["light"] |= 0x8000  # the light class sits in the upper half of the 16-bit range
    for name, images in wide.items():
        (tmp_path / "scans" / name).mkdir(parents=True)
        for i, img in enumerate(images):
            Image.fromarray(img).save(tmp_path / "scans" / name / f"{i}.png")
    assert Image.open(tmp_path / "scans" / "dark" / "0.png").mode.startswith("I")
    data = from_folder(tmp_path / "scans", cache_dir=str(tmp_path / "cache"), val_fraction=0.2, test_fraction=0.2)
    expected = {np.rint(img / 257.0).astype(np.uint8).tobytes() for images in wide.values() for img in images}
    assert _pixels(data) == expected
    light = np.concatenate([split.x[split.y == 1].numpy() for split in (data.train, data.val, data.test)])
    assert light.min() >= 128  # clipping made every pixel of both classes 255
    pixels = imagefiles.decode(tmp_path / "scans" / "dark" / "0.png", (6, 6), 3)
    assert pixels.shape == (6, 6, 3) and (pixels[..., 0] == np.rint(wide["dark"][0] / 257.0)).all()


def test_an_unreadable_nested_folder_is_named_or_skipped(png_folder, tmp_path: Path, monkeypatch) -> None:
    root, _, _ = png_folder
    hidden = root / "one" / "more"
    hidden.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(hidden / "x.png")
    scandir = os.scandir

    def locked(path: object = ".") -> object:
        if Path(str(path)) == hidden:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", locked)  # root reads every folder: deny one as a user's chmod would
    with pytest.raises(
        DataError, match=r"1 folder\(s\) under .*one cannot be read .*more: Permission denied.*skip_corrupt"
    ):
        from_folder(root, cache_dir=str(tmp_path / "cache"))
    data = from_folder(root, skip_corrupt=True, cache_dir=str(tmp_path / "cache"))
    assert len(data.train) + len(data.val) + len(data.test) == 120


@pytest.mark.parametrize(
    "layout, message",
    [
        ({}, "no class subfolders"),
        ({"a/1.png": True}, "at least two"),
        ({"a/1.png": True, "b/readme.txt": False}, r"b holds no images"),
    ],
)
def test_bad_folders_are_explained(tmp_path: Path, layout: dict[str, bool], message: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    for name, image in layout.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if image:
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / name)
        else:
            (root / name).write_text("x")
    with pytest.raises(DataError, match=message):
        from_folder(root, cache_dir=str(tmp_path / "cache"))


def test_npz_arrays_in_nhwc_stay_uint8(tmp_path: Path) -> None:
    x, y = _digits_uint8()
    np.savez(tmp_path / "d.npz", x_train=x[:, :, :, None], y_train=y, x_test=x[:20, :, :, None], y_test=y[:20])
    data = from_npz(tmp_path / "d.npz")
    assert data.input_shape == (1, 8, 8) and data.train.x.dtype == torch.uint8 and len(data.test) == 20
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=y + 1)
    with pytest.raises(DataError, match=r"0\.\.K-1.*np\.unique"):
        from_npz(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="x_train and y_train"):
        np.savez(tmp_path / "empty.npz", images=x)
        from_npz(tmp_path / "empty.npz")


def test_arrays_in_memory_are_checked() -> None:
    x, y = _digits_uint8()
    floats = x.astype(np.float32) / 255
    floats[3, 2, 1] = np.nan
    with pytest.raises(DataError, match=r"NaN or infinite.*index \(3, 2, 1\)"):
        from_arrays(floats, y)
    with pytest.raises(DataError, match="120 inputs but 119 labels"):
        from_arrays(x, y[:-1])
    with pytest.raises(DataError, match="single class"):
        from_arrays(x, np.zeros(len(x), dtype=int))
    table = from_arrays(np.random.default_rng(0).normal(size=(100, 5)), np.linspace(0, 1, 100), task="regression")
    assert table.task == "regression" and table.input_shape == (5,) and table.description == {"name": "memory"}
    features = np.zeros((10, 3), dtype=np.float32)
    for bad_x, bad_y, message in [
        (np.array([["a", "b"]] * 10), y[:10], "inputs must be numbers"),
        (np.zeros((10, 0)), y[:10], r"shape \(10, 0\) hold no features"),
        (features, np.zeros((10, 2)), r"labels of shape \(10, 2\)"),
    ]:
        with pytest.raises(DataError, match=message):
            from_arrays(bad_x, bad_y, task="regression" if bad_y.ndim > 1 else "auto")


def test_a_damaged_npz_file_is_named(tmp_path: Path) -> None:
    for name, content in (("empty.npz", b""), ("cut.npz", b"PK\x03\x04 cut short")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=rf"{name} is not a readable .npz file"):
            from_npz(tmp_path / name)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_encoding_missing_values_and_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        size = float(rng.normal(10, 3))
        color = ["red", "green", "blue", ""][i % 4]
        rows.append(["" if i % 10 == 0 else f"{size:.3f}", color, "big" if size > 10 else "small"])
    path = _write_csv(tmp_path / "t.csv", ["size", "color", "label"], rows)
    data = from_csv(path, target="label")
    assert data.task == "classification" and data.class_names == ("big", "small")
    columns = data.preprocessing["columns"]  # type: ignore[index]
    assert columns[0]["kind"] == "numeric" and columns[1]["categories"] == ["(missing)", "blue", "green", "red"]
    assert data.input_shape == (5,)  # size + 4 one-hot columns
    assert np.isfinite(data.train.x.numpy()).all()  # missing numbers filled with the training median
    one_hot = data.train.x[:, 1:].numpy()
    assert set(one_hot.sum(axis=1)) == {1.0}
    assert data.mean[1:] == [0.0] * 4 and data.std[1:] == [1.0] * 4  # one-hot columns are not standardized
    with pytest.raises(DataError, match=r"no target column 'target'; its columns are \['size', 'color', 'label'\]"):
        from_csv(path)
    with pytest.raises(DataError, match=r"task regression needs a numeric target.*'big'"):
        from_csv(path, target="label", task="regression")


def test_numeric_labels_written_differently_are_one_class_and_repeated_columns_are_refused(tmp_path: Path) -> None:
    rows = [[float(i), ["1", "1.0", "01", "2", "2.00", "+2"][i % 6]] for i in range(60)]
    data = from_csv(_write_csv(tmp_path / "t.csv", ["x", "label"], rows), target="label")
    assert data.class_names == ("1", "2")
    y = np.concatenate([split.y.numpy() for split in (data.train, data.val, data.test)])
    assert sorted(np.bincount(y)) == [30, 30]
    with pytest.raises(DataError, match=r"column\(s\) \['x'\] more than once; give every column its own name"):
        from_csv(
            _write_csv(tmp_path / "d.csv", ["x", "x", "label"], [[1, 2, i % 2] for i in range(20)]), target="label"
        )


def test_bad_dataset_settings_exit_2_and_write_nothing(tmp_path: Path, png_folder, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root, _, _ = png_folder
    (root / "one" / "broken.png").write_bytes(b"not an image")
    cases = [
        (["--set", "dataset.data_dir=/my/images"], "not read by dataset 'digits'"),
        (["--data", str(root), "--set", f"dataset.cache_dir={tmp_path / 'cache'}"], "broken.png"),
        (["--data", str(tmp_path / "nothing.csv")], "does not exist"),
        (["--set", "dataset.name=folder"], "needs dataset.path"),
    ]
    for args, message in cases:
        code, _, err = cli(capsys, "search", "--run-dir", "run", *args)
        assert code == 2, err
        assert message in err and "Traceback" not in err
        assert not (tmp_path / "run").exists()
    table = _write_csv(tmp_path / "t.csv", ["a", "target"], [[i, i % 2] for i in range(40)])
    code, _, err = cli(capsys, "search", "--run-dir", "run", "--data", str(table), "--set", "space=cnn")
    assert code == 2 and "needs images" in err and "space=mlp" in err


def test_data_dir_is_only_for_torchvision_datasets() -> None:
    with pytest.raises(ConfigError, match=r"dataset.data_dir|data_dir='x' is not read"):
        load_dataset("digits", data_dir="x")


def test_cli_searches_a_folder_and_predicts_class_names(png_folder, tmp_path: Path, capsys, monkeypatch) -> None:
    """The search as a user runs it (the console script); the commands on its export in process."""
    from tests.test_cli import TINY

    monkeypatch.chdir(tmp_path)
    root, _, _ = png_folder
    cache = f"dataset.cache_dir={tmp_path / 'cache'}"
    result = run_cli(
        "-q", "search", *TINY, "--data", str(root), "--set", cache, "--budget", "2", "--run-dir", "run", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    card = (tmp_path / "run" / "export" / "README.md").read_text()
    assert "one per class in this order: one, two, zero" in card
    image = next((root / "two").iterdir())
    code, out, err = cli(capsys, "predict", "run/export", str(image), "--json")
    assert code == 0, err
    assert json.loads(out)[0]["name"] in {"one", "two", "zero"}
    code, out, err = cli(capsys, "evaluate", "run/export", "--json")
    metrics = json.loads((tmp_path / "run" / "export" / "metrics.json").read_text())
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(metrics["test_accuracy"]), err
    renamed = tmp_path / "renamed"  # the same images, a class folder renamed: refused, not scored 0
    shutil.copytree(root, renamed)
    (renamed / "zero").rename(renamed / "null")
    code, _, err = cli(capsys, "evaluate", "run/export", "--data-dir", str(renamed))
    assert code == 2 and "Traceback" not in err
    assert "the model's classes are ['one', 'two', 'zero'] but dataset 'folder' has ['null', 'one', 'two']" in err
    other = tmp_path / "other"  # a model.pt that is not the one architecture.json describes
    shutil.copytree(tmp_path / "run" / "export", other)
    data = torch.load(other / "model.pt", weights_only=True)
    torch.save({**data, "class_names": ["a", "b", "c"]}, other / "model.pt")
    for command in (["predict", str(other), str(image)], ["evaluate", str(other)]):
        code, _, err = cli(capsys, *command)
        assert code == 2 and "Traceback" not in err, err
        assert "is not the model that" in err and "differ in class_names" in err


def test_the_image_cache_keeps_under_its_limit_least_recently_used_first(
    png_folder, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Every decoded folder state is an entry; past $RLNAS_CACHE_LIMIT_GB the least recently used go first (a
    cache hit counts as a use), never the entry in use; rlnas cache lists and clears it."""
    from rlnas.data import cache

    root, x, y = png_folder
    where = tmp_path / "cache"
    from_folder(root, cache_dir=str(where))
    (first,) = cache.entries(where / "folders")
    one = first.stat().st_size
    os.utime(first, (1, 1))  # long unused
    write_folder(tmp_path / "other", x[::2], y[::2])
    from_folder(tmp_path / "other", cache_dir=str(where))
    (second,) = [p for p in cache.entries(where / "folders") if p != first]  # within the default 10 GB
    os.utime(second, (2, 2))  # used after the first, but not in the same tick of the file system's clock as the hit
    monkeypatch.setenv(cache.LIMIT_VARIABLE, str(1.5 * one / 1e9))
    from_folder(root, cache_dir=str(where))  # a hit: now the most recently used
    write_folder(tmp_path / "third", x[::4], y[::4])
    from_folder(tmp_path / "third", cache_dir=str(where))  # over the limit: the least recently used goes
    kept = cache.entries(where / "folders")
    assert first in kept and second not in kept and len(kept) == 2 and cache.size(kept) <= 1.5 * one
    monkeypatch.setenv(cache.LIMIT_VARIABLE, "0")
    write_folder(tmp_path / "fourth", x[1::4], y[1::4])
    from_folder(tmp_path / "fourth", cache_dir=str(where))
    (last,) = cache.entries(where / "folders")  # the entry in use stays, whatever the limit
    assert last not in kept
    write_folder(tmp_path / "fifth", x[2::4], y[2::4])
    from_folder(tmp_path / "fifth", cache_dir=str(where))
    monkeypatch.setenv(cache.LIMIT_VARIABLE, "lots")
    with pytest.raises(DataError, match="RLNAS_CACHE_LIMIT_GB='lots' is not a size"):
        cache.limit_bytes()
    monkeypatch.delenv(cache.LIMIT_VARIABLE)
    (where / "folders" / ".x.npz.999999999.tmp").write_bytes(b"left by a killed write")
    code, out, _ = cli(capsys, "cache", "--cache-dir", str(where))
    assert code == 0 and "1 cached folder(s)" in out and "of 10.0 GB allowed" in out
    code, out, _ = cli(capsys, "cache", "--clear", "--cache-dir", str(where))
    assert code == 0 and "removed 1 cached folder(s)" in out
    assert list((where / "folders").iterdir()) == []
    (tmp_path / "a_file").write_text("not a folder")
    code, _, err = cli(capsys, "cache", "--cache-dir", str(tmp_path / "a_file"))
    assert code == 2 and "is a file" in err
    code, out, _ = cli(capsys, "cache", "--clear", "--cache-dir", str(tmp_path / "mistyped"))
    assert code == 0 and "no cache there (the folder does not exist): nothing to clear" in out
