"""Datasets: one registry of loaders (config ``dataset.name``) and the Python constructors of the public API.

Built in: ``digits`` (embedded in scikit-learn), ``mnist``, ``fashion_mnist``, ``cifar10`` (torchvision's
layout under ``dataset.data_dir``). Your own data: ``folder`` (images in class subfolders), ``arrays``
(an ``.npz`` file), ``csv`` (a table), each read from ``dataset.path``; from Python also NumPy arrays in
memory (:func:`from_arrays`). Every loader returns a :class:`Dataset` with train / validation / test splits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from rlnas.config import DatasetConfig, format_errors
from rlnas.data.core import Dataset, Split, as_float
from rlnas.errors import ConfigError, DataError

Loader = Callable[[DatasetConfig], Dataset]


def _lazy(module: str, name: str) -> Loader:
    def load(config: DatasetConfig) -> Dataset:
        import importlib

        return getattr(importlib.import_module(module), name)(config)  # type: ignore[no-any-return]

    return load


def _memory(config: DatasetConfig) -> Dataset:
    raise DataError(
        "this run was searched on arrays handed over from Python, which cannot be loaded again from its "
        "config; pass the same data: rlnas.resume(run, data=...) / rlnas.export(run, data=...)"
    )


DATASETS: dict[str, Loader] = {
    "digits": _lazy("rlnas.data.builtin", "load_digits"),
    "mnist": _lazy("rlnas.data.builtin", "load_mnist"),
    "fashion_mnist": _lazy("rlnas.data.builtin", "load_fashion_mnist"),
    "cifar10": _lazy("rlnas.data.builtin", "load_cifar10"),
    "folder": _lazy("rlnas.data.folder", "load_folder"),
    "arrays": _lazy("rlnas.data.arrays", "load_arrays"),
    "csv": _lazy("rlnas.data.table", "load_csv"),
    "memory": _memory,
}


def dataset_config(**values: Any) -> DatasetConfig:
    """A validated ``dataset:`` section; bad values raise :class:`ConfigError` naming the key."""
    try:
        return DatasetConfig(**values)
    except ValidationError as err:
        raise ConfigError(format_errors(err, "the dataset settings", prefix="dataset.")) from None


def load_dataset(config: DatasetConfig | str = "digits", **options: Any) -> Dataset:
    """Load a dataset from its config section, or by name with options: ``load_dataset("mnist",
    data_dir="data")``."""
    if isinstance(config, str):
        config = dataset_config(name=config, **options)
    return DATASETS[config.name](config)


def from_folder(
    path: str | Path,
    image_size: int | tuple[int, int] | None = None,
    channels: str = "auto",
    **options: Any,
) -> Dataset:
    """Images in class subfolders (``path/<class>/*.png``, or ``path/train/<class>/...`` with optional
    ``val/`` and ``test/``). ``image_size`` resizes every image (required when their sizes differ);
    ``channels``: ``auto``, ``grayscale`` or ``rgb``. Options: ``skip_corrupt``, ``val_fraction``,
    ``test_fraction``, ``split_seed``, ``cache_dir``."""
    size = list(image_size) if isinstance(image_size, tuple) else image_size
    return load_dataset(dataset_config(name="folder", path=str(path), image_size=size, channels=channels, **options))


def from_csv(path: str | Path, target: str = "target", task: str = "auto", **options: Any) -> Dataset:
    """A CSV table: ``target`` is the column to predict; ``task``: ``auto``, ``classification`` or
    ``regression``. Options: ``val_fraction``, ``test_fraction``, ``split_seed``."""
    return load_dataset(dataset_config(name="csv", path=str(path), target=target, task=task, **options))


def from_npz(path: str | Path, **options: Any) -> Dataset:
    """An ``.npz`` file with ``x_train``, ``y_train`` (optional ``x_val``/``y_val``, ``x_test``/``y_test``)."""
    return load_dataset(dataset_config(name="arrays", path=str(path), **options))


def from_arrays(
    x: Any,
    y: Any,
    *,
    x_val: Any = None,
    y_val: Any = None,
    x_test: Any = None,
    y_test: Any = None,
    task: str = "auto",
    layout: str = "auto",
    class_names: Sequence[str] | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> Dataset:
    """NumPy arrays (or anything ``np.asarray`` takes): images ``(N, H, W[, C])`` / ``(N, C, H, W)`` as uint8
    or float, or features ``(N, F)``; labels 0..K-1, or numbers with ``task="regression"``. Splits not given
    are held out of ``x`` (test first, then validation)."""
    from rlnas.data.arrays import dataset_from_arrays

    if x is None or y is None:
        raise DataError(f"from_arrays needs inputs x and labels y; got {'x' if x is None else 'y'}=None")
    if isinstance(class_names, (str, bytes)):
        raise DataError(f"class_names={class_names!r} is one string; give a list of names, e.g. ['cat', 'dog']")
    splits = {"train": (np.asarray(x), np.asarray(y))}
    for name, (sx, sy) in {"val": (x_val, y_val), "test": (x_test, y_test)}.items():
        if (sx is None) != (sy is None):
            raise DataError(f"x_{name} and y_{name} go together; give both or neither")
        if sx is not None:
            splits[name] = (np.asarray(sx), np.asarray(sy))
    dataset_config(name="memory", task=task, layout=layout, val_fraction=val_fraction, test_fraction=test_fraction)
    return dataset_from_arrays(
        splits,
        source="the arrays",
        task=task,
        layout=layout,
        class_names=None if class_names is None else list(class_names),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_seed=split_seed,
        description={"name": "memory"},
    )


__all__ = [
    "DATASETS",
    "Dataset",
    "Split",
    "as_float",
    "dataset_config",
    "from_arrays",
    "from_csv",
    "from_folder",
    "from_npz",
    "load_dataset",
]
