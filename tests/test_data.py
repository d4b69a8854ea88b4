from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlnas.data import Dataset, load_dataset
from rlnas.data.core import fold_indices
from rlnas.errors import ConfigError, DataError
from tests.conftest import SHARED_DATASETS


def test_digits_splits_are_disjoint_stratified_and_fixed(digits: Dataset) -> None:
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert 0.0 <= float(digits.train.x.min()) and float(digits.train.x.max()) <= 1.0
    again = load_dataset("digits")
    assert torch.equal(again.test.x, digits.test.x) and torch.equal(again.val.y, digits.val.y)
    assert torch.bincount(digits.val.y).min() >= 15  # every class held out
    other = load_dataset("digits", split_seed=1)
    assert not torch.equal(other.test.y, digits.test.y)
    rows = lambda s: {tuple(r.flatten().tolist()) for r in s.x}  # noqa: E731
    assert not rows(digits.train) & rows(digits.test)


@pytest.mark.skipif(not (SHARED_DATASETS / "MNIST").is_dir(), reason=f"MNIST not present in {SHARED_DATASETS}")
def test_mnist_from_the_shared_directory() -> None:
    mnist = load_dataset("mnist", data_dir=str(SHARED_DATASETS))
    assert mnist.input_shape == (1, 28, 28) and mnist.num_classes == 10
    assert len(mnist.test) == 10000 and len(mnist.train) + len(mnist.val) == 60000
    assert mnist.mean[0] == pytest.approx(0.1307, abs=2e-3)
    assert mnist.std[0] == pytest.approx(0.3081, abs=2e-3)


def test_fashion_mnist_as_released_gzipped_files_is_read_as_torchvision_would(tmp_path: Path) -> None:
    import gzip

    from rlnas.data.builtin import IDX_FILES

    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), "t10k": rng.integers(0, 256, (10, 28, 28))}
    labels = {"train": np.arange(40, dtype=np.uint8) % 10, "t10k": np.arange(10, dtype=np.uint8)}
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in IDX_FILES:
        part = name.split("-")[0]
        array = (images if "images" in name else labels)[part].astype(np.uint8)
        header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        with gzip.open(raw / f"{name}.gz", "wb") as fh:  # only the .gz files, as the dataset is released
            fh.write(header + array.tobytes())
    data = load_dataset("fashion_mnist", data_dir=str(tmp_path), val_fraction=0.25)
    assert data.class_names[0] == "T-shirt/top" and data.input_shape == (1, 28, 28)
    assert len(data.test) == 10 and len(data.train) + len(data.val) == 40
    assert np.array_equal(data.test.x.numpy()[:, 0], images["t10k"].astype(np.uint8))
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte .each may be .gz"):
        load_dataset("fashion_mnist", data_dir=str(tmp_path))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte cannot be read as an MNIST-format"):
        load_dataset("fashion_mnist", data_dir=str(tmp_path))


def test_missing_torchvision_dataset_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset.download=true"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_unknown_dataset() -> None:
    with pytest.raises(ConfigError, match=r"dataset.name: Input should be 'digits'.*\(got 'svhn'\)"):
        load_dataset("svhn")


@pytest.mark.parametrize("stratified", [True, False])
def test_cross_validation_folds_partition_the_rows(stratified: bool) -> None:
    y = np.array([0] * 50 + [1] * 30 + [2] * 7)
    folds = fold_indices(y, 5, np.random.default_rng(3), stratified)
    together = np.concatenate(folds)
    assert len(folds) == 5 and sorted(together.tolist()) == list(range(len(y)))  # disjoint and complete
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    if stratified:
        for label, count in ((0, 50), (1, 30), (2, 7)):
            per_fold = [int((y[f] == label).sum()) for f in folds]
            assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == count
    again = fold_indices(y, 5, np.random.default_rng(3), stratified)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
