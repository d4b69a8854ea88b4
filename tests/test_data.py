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
