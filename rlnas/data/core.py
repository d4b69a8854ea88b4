"""The in-memory dataset every loader produces: train / validation / test splits and what a model needs.

Images stay ``uint8`` (0-255) in memory and become float in [0, 1] one batch at a time (:func:`as_float`),
so a large folder fits; float inputs (scikit-learn's digits, arrays, tables) are kept as float32.
Normalization statistics come from the training split only and are stored in the models (``Normalize``).
The test split is used only by the final evaluation, never by search decisions.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from rlnas.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Task = Literal["classification", "regression"]


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Model inputs: ``uint8`` pixels scaled to [0, 1], float inputs as float32."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # uint8 (N, C, H, W) pixels, or float32 images in [0, 1] / table features (N, F)
    y: torch.Tensor  # int64 class indices, or float32 regression targets

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    """Splits plus everything the models and exports need to know about the data.

    ``description`` is the ``dataset:`` config section that loads these data again (``{"name": "memory"}``
    for arrays handed over from Python, which no run directory can find again); ``preprocessing`` holds
    a table's column encoding (see :mod:`rlnas.data.table`).
    """

    name: str
    train: Split
    val: Split
    test: Split
    task: Task
    class_names: tuple[str, ...]  # classification: one name per class index; regression: ()
    mean: list[float]  # per channel (images) or per feature (tables), training split only
    std: list[float]
    target_mean: float = 0.0  # regression: the model predicts target_mean + target_std * output
    target_std: float = 1.0
    description: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None
    _fingerprint: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.train.x.shape[1:])

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_outputs(self) -> int:
        """Width of the network's last layer: one logit per class, or one value for regression."""
        return self.num_classes if self.task == "classification" else 1

    @property
    def score_name(self) -> str:
        """What the search maximizes on validation: ``accuracy`` or ``r2``."""
        return "accuracy" if self.task == "classification" else "r2"

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ConfigError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)  # type: ignore[no-any-return]

    def fingerprint(self) -> str:
        """SHA-256 of every split's inputs and targets, the class names and the encoding: two datasets with
        the same fingerprint train and test the same models."""
        if not self._fingerprint:
            h = hashlib.sha256()
            for split in (self.train, self.val, self.test):
                for t in (split.x, split.y):
                    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                    h.update(t.contiguous().numpy().tobytes())
            h.update(repr((self.task, self.class_names, self.preprocessing)).encode())
            self._fingerprint.append(h.hexdigest()[:16])
        return self._fingerprint[0]

    def summary(self) -> dict[str, Any]:
        """What ``RUN/dataset.json`` records: the description, the fingerprint and the shapes."""
        return {
            "description": self.description,
            "fingerprint": self.fingerprint(),
            "task": self.task,
            "input_shape": list(self.input_shape),
            "class_names": list(self.class_names),
            "examples": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
        }


ArrayPair = tuple[np.ndarray, np.ndarray]


def split_indices(
    y: np.ndarray, fraction: float, rng: np.random.Generator, stratified: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out); held_out holds ``fraction`` of every class (or of all rows)."""
    groups = [np.flatnonzero(y == label) for label in np.unique(y)] if stratified else [np.arange(len(y))]
    held: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    for idx in groups:
        idx = rng.permutation(idx)
        n = int(round(fraction * len(idx)))
        n = max(n, 1) if len(idx) >= 2 else n  # every class keeps and gives at least one example
        held.append(idx[:n])
        kept.append(idx[n:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def fold_indices(y: np.ndarray, k: int, rng: np.random.Generator, stratified: bool) -> list[np.ndarray]:
    """``k`` disjoint index arrays covering ``range(len(y))``; with ``stratified`` every class is dealt
    round-robin over the folds, so each fold holds about 1/k of every class."""
    groups = [np.flatnonzero(y == label) for label in np.unique(y)] if stratified else [np.arange(len(y))]
    folds: list[list[np.ndarray]] = [[] for _ in range(k)]
    offset = 0
    for idx in groups:
        idx = rng.permutation(idx)
        for f in range(k):
            folds[f].append(idx[(f - offset) % k :: k])
        offset += len(idx)  # the next class starts where this one stopped, so the fold sizes stay even
    return [np.sort(np.concatenate(parts)) for parts in folds]


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Mean and std per channel (images, axis 1 of NCHW) or per feature (tables), in chunks so that uint8
    images are never converted to float all at once; uint8 statistics are on the [0, 1] scale."""
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    width = x.shape[1]
    total = np.zeros(width)
    squares = np.zeros(width)
    count = 0
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk].astype(np.float64)
        if x.dtype == np.uint8:
            part /= 255.0
        total += part.sum(axis=axes)
        squares += (part**2).sum(axis=axes)
        count += part.size // width
    mean = total / max(count, 1)
    var = np.maximum(squares / max(count, 1) - mean**2, 0.0) * count / max(count - 1, 1)
    return mean.tolist(), np.maximum(np.sqrt(var), 1e-6).tolist()


def make_dataset(
    name: str,
    train: ArrayPair,
    *,
    task: Task,
    class_names: tuple[str, ...] = (),
    val: ArrayPair | None = None,
    test: ArrayPair | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    description: dict[str, Any] | None = None,
    preprocessing: dict[str, Any] | None = None,
    stats: tuple[list[float], list[float]] | None = None,
) -> Dataset:
    """Hold out what is missing (first test, then validation, stratified for classification; depending only
    on ``split_seed``), compute the training statistics and wrap everything as tensors."""
    x, y = train
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"dataset.val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(split_seed)
    stratified = task == "classification"
    if test is None:
        keep, held = split_indices(y, test_fraction, rng, stratified)
        test, x, y = (x[held], y[held]), x[keep], y[keep]
    if val is None:
        keep, held = split_indices(y, val_fraction, rng, stratified)
        val, x, y = (x[held], y[held]), x[keep], y[keep]
    for split_name, sx in (("training", x), ("validation", val[0]), ("test", test[0])):
        if len(sx) == 0:
            raise DataError(
                f"dataset {name!r}: the {split_name} split is empty ({len(train[0])} examples in all); "
                "give more data or change dataset.val_fraction / dataset.test_fraction"
            )
    mean, std = stats if stats is not None else channel_stats(x)
    target_mean, target_std = 0.0, 1.0
    if task == "regression":
        target_mean, target_std = float(np.mean(y)), max(float(np.std(y)), 1e-6)
    target_dtype = np.int64 if task == "classification" else np.float32

    def tensors(pair: ArrayPair) -> Split:
        px, py = pair
        return Split(torch.from_numpy(np.ascontiguousarray(px)), torch.from_numpy(np.asarray(py, dtype=target_dtype)))

    dataset = Dataset(
        name,
        tensors((x, y)),
        tensors(val),
        tensors(test),
        task,
        tuple(class_names),
        mean,
        std,
        target_mean,
        target_std,
        description or {"name": name},
        preprocessing,
    )
    log.info(
        "dataset %s: %d train, %d val, %d test, inputs %s, %s",
        name,
        len(dataset.train),
        len(dataset.val),
        len(dataset.test),
        dataset.input_shape,
        f"{dataset.num_classes} classes" if task == "classification" else "regression",
    )
    return dataset


def check_labels(y: np.ndarray, where: str, num_classes: int | None = None) -> np.ndarray:
    """Class labels must be the integers 0..K-1 (every class present in the training labels)."""
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be one-dimensional, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DataError(
                f"{where}: class labels must be integers 0..K-1, got {y.dtype} values such as {y[:3].tolist()}; "
                "map them with np.unique(y, return_inverse=True), or use task='regression' for numeric targets"
            )
    y = y.astype(np.int64)
    present = np.unique(y)
    k = int(present.max()) + 1 if num_classes is None else num_classes
    if present.min() < 0 or present.max() >= k or (num_classes is None and len(present) != k):
        raise DataError(
            f"{where}: class labels must be the integers 0..K-1 with every class present; got {present[:10].tolist()}"
            f"{' ...' if len(present) > 10 else ''}; map them with np.unique(y, return_inverse=True)"
        )
    return y


def check_finite(x: np.ndarray, where: str) -> None:
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise DataError(
            f"{where}: contains NaN or infinite values (first at index {tuple(int(i) for i in bad)}); "
            "replace or drop them before searching"
        )
