"""Datasets: a registry of loaders, held-out validation splits and normalization statistics.

Every loader returns raw images scaled to [0, 1] as ``(N, C, H, W)`` float tensors. Normalization
statistics are computed on the training split only and stored in the models (see ``Normalize``).
The test split is used only by the final evaluation, never by search decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlnas.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32, (N, C, H, W), values in [0, 1]
    y: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: list[float]
    std: list[float]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ConfigError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)


# A raw loader returns ((x_train, y_train), (x_test, y_test) or None) as uint8/float arrays.
RawLoader = Callable[[Path, bool], tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]]


def _digits(data_dir: Path, download: bool) -> tuple[tuple[np.ndarray, np.ndarray], None]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return (x, digits.target.astype(np.int64)), None


def _torchvision(cls_name: str, folder: str) -> RawLoader:
    def load(data_dir: Path, download: bool):  # type: ignore[no-untyped-def]
        import torchvision

        cls = getattr(torchvision.datasets, cls_name)
        try:
            train = cls(root=str(data_dir), train=True, download=download)
            test = cls(root=str(data_dir), train=False, download=download)
        except RuntimeError as err:
            hint = (
                "set dataset.download=true on a machine with internet access"
                if not download
                else "the download failed; fetch the files on a machine with internet access"
            )
            raise DataError(
                f"{cls_name} was not found under {data_dir} (expected torchvision's layout, "
                f"{data_dir}/{folder}/...): {hint}, or point dataset.data_dir at a folder that holds it "
                f"({err})"
            ) from None

        def arrays(ds) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
            x = np.asarray(ds.data, dtype=np.float32) / 255.0
            x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
            return np.ascontiguousarray(x), np.asarray(ds.targets, dtype=np.int64)

        return arrays(train), arrays(test)

    return load


DATASETS: dict[str, RawLoader] = {
    "digits": _digits,
    "mnist": _torchvision("MNIST", "MNIST"),
    "fashion_mnist": _torchvision("FashionMNIST", "FashionMNIST"),
    "cifar10": _torchvision("CIFAR10", "cifar-10-batches-py"),
}


def _stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out), held_out holding ``fraction`` of every class."""
    held: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n = int(round(fraction * len(idx)))
        held.append(idx[:n])
        kept.append(idx[n:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def load_dataset(
    name: str,
    data_dir: str | Path = "data",
    download: bool = False,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> Dataset:
    """Load ``name`` and split it into train / validation / test.

    The validation split is held out of the training data; datasets without a test split (digits) get
    one held out first. Splits depend only on ``split_seed``, never on the search seed, so the test split
    is the same for the search, the export and ``rlnas evaluate``.
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"dataset.val_fraction must be in (0, 1), got {val_fraction}")
    (x, y), test = loader(Path(data_dir).expanduser(), download)
    rng = np.random.default_rng(split_seed)
    if test is None:
        keep, held = _stratified_split(y, test_fraction, rng)
        test = (x[held], y[held])
        x, y = x[keep], y[keep]
    keep, held = _stratified_split(y, val_fraction, rng)
    train = Split(torch.from_numpy(x[keep]), torch.from_numpy(y[keep]))
    val = Split(torch.from_numpy(x[held]), torch.from_numpy(y[held]))
    test_split = Split(torch.from_numpy(np.ascontiguousarray(test[0])), torch.from_numpy(test[1]))
    mean = train.x.mean(dim=(0, 2, 3)).tolist()
    std = train.x.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()
    num_classes = int(max(int(y.max()), int(test[1].max())) + 1)
    log.info(
        "dataset %s: %d train, %d val, %d test, shape %s, %d classes",
        name,
        len(train),
        len(val),
        len(test_split),
        tuple(train.x.shape[1:]),
        num_classes,
    )
    return Dataset(name, train, val, test_split, num_classes, mean, std)
