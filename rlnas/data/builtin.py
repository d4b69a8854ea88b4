"""Built-in datasets: scikit-learn's embedded digits, and MNIST / Fashion-MNIST / CIFAR-10 in torchvision's
layout under ``dataset.data_dir`` (``uint8`` pixels, kept as such)."""

from __future__ import annotations

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


def _torchvision(cls_name: str, folder: str):  # type: ignore[no-untyped-def]
    def load(config: DatasetConfig) -> Dataset:
        import torchvision

        data_dir = Path(config.data_dir or DEFAULT_DATA_DIR).expanduser()
        cls = getattr(torchvision.datasets, cls_name)
        try:
            train = cls(root=str(data_dir), train=True, download=config.download)
            test = cls(root=str(data_dir), train=False, download=config.download)
        except RuntimeError as err:
            hint = (
                "set dataset.download=true on a machine with internet access"
                if not config.download
                else "the download failed; fetch the files on a machine with internet access"
            )
            raise DataError(
                f"{cls_name} was not found under {data_dir} (expected torchvision's layout, "
                f"{data_dir}/{folder}/...): {hint}, or point dataset.data_dir at a folder that holds it "
                f"({err})"
            ) from None

        def arrays(ds) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
            x = np.asarray(ds.data, dtype=np.uint8)
            x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
            return np.ascontiguousarray(x), np.asarray(ds.targets, dtype=np.int64)

        return make_dataset(
            config.name,
            arrays(train),
            test=arrays(test),
            task="classification",
            class_names=tuple(str(c) for c in train.classes),
            val_fraction=config.val_fraction,
            split_seed=config.split_seed,
            description=config.model_dump(exclude_defaults=True) | {"name": config.name},
        )

    return load


load_mnist = _torchvision("MNIST", "MNIST")
load_fashion_mnist = _torchvision("FashionMNIST", "FashionMNIST")
load_cifar10 = _torchvision("CIFAR10", "cifar-10-batches-py")
