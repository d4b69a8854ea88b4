"""Built-in datasets: scikit-learn's embedded digits, and MNIST / Fashion-MNIST / CIFAR-10 in torchvision's
layout under ``dataset.data_dir`` (``uint8`` pixels, kept as such)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlnas.data.core import Dataset, make_dataset
from rlnas.errors import DataError

if TYPE_CHECKING:
    from rlnas.config import DatasetConfig

DEFAULT_DATA_DIR = "data"


def load_digits(config: DatasetConfig) -> Dataset:
    """scikit-learn's 8x8 digits (values 0-16, scaled to [0, 1] floats); test and validation held out."""
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return make_dataset(
        "digits",
        (x, digits.target.astype(np.int64)),
        task="classification",
        class_names=tuple(str(i) for i in range(10)),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        split_seed=config.split_seed,
        description=config.model_dump(exclude_defaults=True) | {"name": "digits"},
    )


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format), plain or gzipped as the datasets are released."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as fh:
            data = fh.read()
        if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
            raise ValueError("not an IDX file of unsigned bytes")
        dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3])]
        return np.frombuffer(data, np.uint8, count=int(np.prod(dims)), offset=4 + 4 * len(dims)).reshape(dims).copy()
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} cannot be read as an MNIST-format (IDX) file ({err}); replace it") from None


def _idx_arrays(raw: Path) -> list[np.ndarray] | None:
    """MNIST's four files under ``raw`` (each plain or ``.gz``), or None if one is missing."""
    found = [next((p for p in (raw / f, raw / f"{f}.gz") if p.is_file()), None) for f in IDX_FILES]
    if any(p is None for p in found):
        return None
    return [read_idx(p) for p in found if p is not None]


def _torchvision(cls_name: str, folder: str):  # type: ignore[no-untyped-def]
    def load(config: DatasetConfig) -> Dataset:
        import torchvision

        data_dir = Path(config.data_dir or DEFAULT_DATA_DIR).expanduser()
        cls = getattr(torchvision.datasets, cls_name)
        idx = _idx_arrays(data_dir / folder / "raw") if folder in ("MNIST", "FashionMNIST") else None
        if idx is not None:  # read directly: the files as released (.gz) work too
            train_xy = (np.ascontiguousarray(idx[0][:, None]), idx[1].astype(np.int64))
            test_xy = (np.ascontiguousarray(idx[2][:, None]), idx[3].astype(np.int64))
            classes = cls.classes
        else:
            try:
                train = cls(root=str(data_dir), train=True, download=config.download)
                test = cls(root=str(data_dir), train=False, download=config.download)
            except RuntimeError as err:
                hint = (
                    "set dataset.download=true on a machine with internet access"
                    if not config.download
                    else "the download failed; fetch the files on a machine with internet access"
                )
                files = (
                    f"{data_dir}/{folder}/raw/ with {', '.join(IDX_FILES)} (each may be .gz)"
                    if folder in ("MNIST", "FashionMNIST")
                    else f"{data_dir}/{folder}/..."
                )
                raise DataError(
                    f"{cls_name} was not found under {data_dir} (expected torchvision's layout, {files}): {hint}, "
                    f"or point dataset.data_dir at a folder that holds it ({err})"
                ) from None
            train_xy, test_xy, classes = _arrays(train), _arrays(test), train.classes

        return make_dataset(
            config.name,
            train_xy,
            test=test_xy,
            task="classification",
            class_names=tuple(str(c) for c in classes),
            val_fraction=config.val_fraction,
            split_seed=config.split_seed,
            description=config.model_dump(exclude_defaults=True) | {"name": config.name},
        )

    return load


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    x = np.asarray(ds.data, dtype=np.uint8)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.asarray(ds.targets, dtype=np.int64)


load_mnist = _torchvision("MNIST", "MNIST")
load_fashion_mnist = _torchvision("FashionMNIST", "FashionMNIST")
load_cifar10 = _torchvision("CIFAR10", "cifar-10-batches-py")
