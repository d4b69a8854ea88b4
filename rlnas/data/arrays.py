"""Arrays: an ``.npz`` file (``x_train``, ``y_train``, optional ``x_val``/``y_val``, ``x_test``/``y_test``) or
NumPy arrays handed over from Python.

Images are ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` (``dataset.layout``, detected by default),
``uint8`` (0-255, kept as such) or float (taken as they are; the model standardizes them); 2-D ``(N, F)``
arrays are tables of numeric features for the ``mlp`` family. Labels are the class indices 0..K-1, or
numbers for ``task: regression``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlnas.data.core import ArrayPair, Dataset, Task, check_finite, check_labels, make_dataset
from rlnas.errors import DataError

if TYPE_CHECKING:
    from rlnas.config import DatasetConfig

CHANNEL_COUNTS = (1, 3, 4)


def to_layout(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    """Images as NCHW (uint8 kept, floats as float32); tables as (N, F) float32."""
    if x.ndim == 2:
        return x.astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if layout == "auto":
            last, first = x.shape[3] in CHANNEL_COUNTS, x.shape[1] in CHANNEL_COUNTS
            if last == first:
                raise DataError(
                    f"{where}: cannot tell channels from the shape {x.shape}; set dataset.layout to nhwc or nchw"
                )
            layout = "nhwc" if last else "nchw"
        if layout == "nhwc":
            x = x.transpose(0, 3, 1, 2)
    else:
        raise DataError(
            f"{where}: expected (N, F) features or (N, H, W), (N, H, W, C), (N, C, H, W) images, got shape {x.shape}"
        )
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{where}: images must be uint8 or float, got {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


def resolve_task(y: np.ndarray, task: str) -> Task:
    """``auto``: integer labels (or integral floats) are classes, other numbers regression targets."""
    if task != "auto":
        return "regression" if task == "regression" else "classification"
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))
    )
    return "classification" if integral else "regression"


def dataset_from_arrays(
    splits: dict[str, ArrayPair],
    *,
    source: str,
    task: str = "auto",
    layout: str = "auto",
    class_names: list[str] | tuple[str, ...] | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    description: dict[str, Any] | None = None,
) -> Dataset:
    """Check and convert the arrays of every split, then hold out what is missing."""
    if "train" not in splits:
        raise DataError(f"{source}: the training arrays are missing (x_train and y_train)")
    resolved = resolve_task(np.asarray(splits["train"][1]), task)
    converted: dict[str, ArrayPair] = {}
    num_classes: int | None = None
    for split in ("train", "val", "test"):
        if split not in splits:
            continue
        x, y = (np.asarray(a) for a in splits[split])
        where = f"{source} ({split})"
        if len(x) != len(y):
            raise DataError(f"{where}: {len(x)} inputs but {len(y)} labels; give one label per input")
        if len(x) == 0:
            raise DataError(f"{where}: no examples")
        if x.dtype == bool or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise DataError(f"{where}: inputs must be numbers (uint8 pixels or floats), got {x.dtype}")
        if x.ndim < 2 or 0 in x.shape[1:]:
            raise DataError(f"{where}: inputs of shape {x.shape} hold no features; give (N, F) or (N, H, W[, C])")
        if y.ndim > 1 and (y.ndim > 2 or y.shape[1] != 1):
            raise DataError(
                f"{where}: labels of shape {y.shape}; give one label or target per input, shape (N,) "
                "(rlnas predicts a single target)"
            )
        y = y.reshape(len(y))
        check_finite(x, f"{where} inputs")
        x = to_layout(x, layout, where)
        if resolved == "classification":
            y = check_labels(y, f"{where} labels", num_classes)
            num_classes = num_classes or int(y.max()) + 1
        else:
            if not np.issubdtype(y.dtype, np.number):
                raise DataError(
                    f"{where}: labels must be the class numbers 0..K-1 or, for regression, numbers; got {y.dtype}. "
                    "For labels given as names: names, y = np.unique(y, return_inverse=True), then "
                    "class_names=list(names)"
                )
            y = y.astype(np.float32).reshape(len(y))
            check_finite(y, f"{where} targets")
        converted[split] = (x, y)
    shapes = {s: x.shape[1:] for s, (x, _) in converted.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{source}: the splits have different input shapes {shapes}; give them the same shape")
    names: tuple[str, ...] = ()
    if resolved == "classification":
        assert num_classes is not None
        names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(num_classes))
        if len(names) != num_classes:
            raise DataError(f"{source}: {len(names)} class names for {num_classes} classes; give one name per class")
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) < len(names):
            raise DataError(f"{source}: class names {list(names)!r}; give each class its own non-empty text name")
        if num_classes < 2:
            raise DataError(f"{source}: the labels hold a single class; a classifier needs at least two")
    return make_dataset(
        (description or {}).get("name", "arrays"),
        converted["train"],
        val=converted.get("val"),
        test=converted.get("test"),
        task=resolved,
        class_names=names,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_seed=split_seed,
        description=description,
    )


def load_arrays(config: DatasetConfig) -> Dataset:
    path = Path(str(config.path)).expanduser()
    if not path.is_file():
        raise DataError(f"arrays file {path} does not exist; set dataset.path to an .npz file with x_train, y_train")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable .npz file ({err or 'empty'}); save it with numpy.savez") from None
    splits: dict[str, ArrayPair] = {}
    for split in ("train", "val", "test"):
        has = [f"{k}_{split}" in arrays for k in "xy"]
        if any(has) and not all(has):
            raise DataError(f"{path}: x_{split} and y_{split} go together; give both or neither")
        if all(has):
            splits[split] = (arrays[f"x_{split}"], arrays[f"y_{split}"])
    if "train" not in splits:
        raise DataError(
            f"{path} holds {sorted(arrays)}, not x_train and y_train; save it with "
            "numpy.savez(path, x_train=..., y_train=..., [x_val, y_val, x_test, y_test])"
        )
    names = config.class_names
    return dataset_from_arrays(
        splits,
        source=str(path),
        task=config.task,
        layout=config.layout,
        class_names=names,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        split_seed=config.split_seed,
        description=config.model_dump(mode="json"),
    )
