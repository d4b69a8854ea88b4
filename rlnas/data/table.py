"""CSV tables: one row per example, a target column (``dataset.target``), every other column a feature.

Rules, fitted on the training split only and stored with every model (``Dataset.preprocessing``):

* a column whose non-missing values all parse as numbers is numeric; missing values (empty, NA, NaN, null,
  None, ?, inf) are replaced by the training median; numeric features are standardized with training
  statistics by the ``Normalize`` layer inside the model;
* any other column is categorical and one-hot encoded over the training values (missing is a category of
  its own, a value unseen in training encodes as all zeros); a categorical column with more than
  ``MAX_CATEGORIES`` distinct training values (an identifier, free text) is left out with a warning;
* rows without a target are dropped with a warning; ``task: auto`` takes a non-numeric target, or an
  integer target with at most ``MAX_AUTO_CLASSES`` distinct values, as classes, and anything else numeric as
  a regression target.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlnas.data.core import Dataset, Task, make_dataset, split_indices
from rlnas.errors import DataError

if TYPE_CHECKING:
    from rlnas.config import DatasetConfig

log = logging.getLogger(__name__)

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
MAX_CATEGORIES = 100
MAX_AUTO_CLASSES = 20
MISSING_CATEGORY = "(missing)"


def _number(text: str) -> float | None:
    """The value of a cell, None when missing or not a finite number."""
    if text.strip().lower() in MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_missing(text: str) -> bool:
    t = text.strip().lower()
    return t in MISSING or t in ("inf", "-inf", "+inf", "infinity", "-infinity")


def read_csv(path: Path, keep_blank: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows; a clear error for a missing, empty or ragged file, or one whose columns repeat a name.

    Blank lines are dropped, or with ``keep_blank`` (predictions, one per input row) kept as rows of empty
    cells, except at the end of the file."""
    if not path.is_file():  # a named pipe or a device would block the read
        what = "does not exist" if not path.exists() else "is not a regular file"
        raise DataError(f"CSV file {path} {what}; set dataset.path to a .csv file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path} cannot be read as a UTF-8 CSV table ({err})") from None
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()
    while rows and not any(cell.strip() for cell in rows[0]):
        rows.pop(0)
    if len(rows) < 2:
        raise DataError(f"{path} needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    blank = [r for r in rows[1:] if not any(cell.strip() for cell in r)]
    if keep_blank:
        rows = [rows[0]] + [r if any(cell.strip() for cell in r) else [""] * len(header) for r in rows[1:]]
        if blank:
            log.warning("%s: %d blank row(s) predicted from the training fill values", path, len(blank))
    else:
        rows = [rows[0]] + [r for r in rows[1:] if any(cell.strip() for cell in r)]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(f"{path}: the header names column(s) {repeated} more than once; give every column its own name")
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}, line {i}: {len(row)} cells but the header has {len(header)} columns")
    return header, rows[1:]


def class_labels(values: list[str]) -> list[str]:
    """Class labels as names: numeric labels written differently (``1``, ``1.0``, ``01``) are one class,
    named like an integer where they are one (``1``), else by the shortest form of the number."""
    numbers = [_number(v) for v in values]
    if any(n is None for n in numbers):
        return values
    return [str(int(n)) if float(n).is_integer() and abs(n) < 2**53 else repr(float(n)) for n in numbers]  # type: ignore[arg-type]


def _resolve_task(values: list[str], task: str, path: Path, target: str) -> Task:
    numbers = [_number(v) for v in values]
    numeric = all(n is not None for n in numbers)
    if task == "regression":
        if not numeric:
            bad = next(i for i, n in enumerate(numbers) if n is None)
            raise DataError(
                f"{path}: task regression needs a numeric target, but column {target!r} holds {values[bad]!r} "
                f"(data row {bad + 1}); use task classification or fix the value"
            )
        return "regression"
    if task == "classification" or not numeric:
        return "classification"
    integral = all(float(n).is_integer() for n in numbers if n is not None)
    return "classification" if integral and len(set(numbers)) <= MAX_AUTO_CLASSES else "regression"


def fit_encoding(header: list[str], rows: list[list[str]], target: str) -> dict[str, Any]:
    """The column encoding, fitted on (training) rows."""
    columns: list[dict[str, Any]] = []
    dropped: list[str] = []
    for j, name in enumerate(header):
        if name == target:
            continue
        cells = [row[j] for row in rows]
        present = [c for c in cells if not _is_missing(c)]
        if all(_number(c) is not None for c in present):
            numbers = [_number(c) for c in present]
            fill = float(np.median(np.array(numbers, dtype=np.float64))) if numbers else 0.0
            columns.append({"name": name, "kind": "numeric", "fill": fill})
            continue
        categories = sorted({c.strip() if not _is_missing(c) else MISSING_CATEGORY for c in cells})
        if len(categories) > MAX_CATEGORIES:
            dropped.append(name)
            log.warning(
                "column %r has %d distinct values (an identifier or free text?); left out", name, len(categories)
            )
            continue
        columns.append({"name": name, "kind": "categorical", "categories": categories})
    if not columns:
        raise DataError(f"no usable feature column besides the target {target!r}")
    return {"target": target, "columns": columns, "dropped": dropped}


def feature_names(encoding: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for col in encoding["columns"]:
        if col["kind"] == "numeric":
            names.append(col["name"])
        else:
            names += [f"{col['name']}={c}" for c in col["categories"]]
    return names


def encode(encoding: dict[str, Any], header: list[str], rows: list[list[str]], source: str = "") -> np.ndarray:
    """Rows as a float32 feature matrix (numeric columns filled, categorical columns one-hot)."""
    index = {name: j for j, name in enumerate(header)}
    missing = [c["name"] for c in encoding["columns"] if c["name"] not in index]
    if missing:
        raise DataError(f"{source or 'the table'} lacks the column(s) {missing} the model was trained with")
    parts: list[np.ndarray] = []
    for col in encoding["columns"]:
        cells = [row[index[col["name"]]] for row in rows]
        if col["kind"] == "numeric":
            values = [_number(c) for c in cells]
            bad = [c for c, v in zip(cells, values, strict=True) if v is None and not _is_missing(c)]
            if bad:
                raise DataError(
                    f"{source}: numeric column {col['name']!r} holds {bad[0]!r}; give a number or leave the cell empty"
                )
            parts.append(np.array([col["fill"] if v is None else v for v in values], dtype=np.float32)[:, None])
        else:
            lookup = {c: i for i, c in enumerate(col["categories"])}
            onehot = np.zeros((len(rows), len(lookup)), dtype=np.float32)
            for i, c in enumerate(cells):
                k = lookup.get(MISSING_CATEGORY if _is_missing(c) else c.strip())
                if k is not None:
                    onehot[i, k] = 1.0
            parts.append(onehot)
    return np.concatenate(parts, axis=1)


def _stats(encoding: dict[str, Any], x: np.ndarray) -> tuple[list[float], list[float]]:
    """Numeric columns standardized with training statistics; one-hot columns left as they are."""
    mean, std = np.zeros(x.shape[1]), np.ones(x.shape[1])
    j = 0
    for col in encoding["columns"]:
        width = 1 if col["kind"] == "numeric" else len(col["categories"])
        if col["kind"] == "numeric":
            mean[j], std[j] = float(x[:, j].mean()), float(max(x[:, j].std(), 1e-6))
        j += width
    return mean.tolist(), std.tolist()


def load_csv(config: DatasetConfig, fitted: Mapping[str, Any] | None = None) -> Dataset:
    """The table of ``config``; with ``fitted`` (an export's ``architecture.json``: ``task``, ``class_names``,
    ``preprocessing``) encoded as that model was trained, columns found by name, labels by class name."""
    path = Path(str(config.path)).expanduser()
    header, rows = read_csv(path)
    target = config.target
    if target not in header:
        raise DataError(
            f"{path} has no target column {target!r}; its columns are {header}; set dataset.target to the "
            "column to predict"
        )
    t = header.index(target)
    kept = [r for r in rows if not _is_missing(r[t])]
    if len(kept) < len(rows):
        log.warning("%s: %d row(s) without a target value dropped", path, len(rows) - len(kept))
    values = [r[t].strip() for r in kept]
    task = _resolve_task(values, fitted["task"] if fitted else config.task, path, target)
    if task == "classification":
        values = class_labels(values)
        numeric = all(_number(v) is not None for v in values)
        names = sorted(set(values), key=(lambda v: float(v)) if numeric else str)  # type: ignore[arg-type,return-value]
        if fitted:
            unknown = sorted(set(names) - set(fitted["class_names"]))
            if unknown:
                raise DataError(
                    f"{path}: target {target!r} holds {unknown[:5]}, not among the model's classes "
                    f"{list(fitted['class_names'])}; evaluate on a table with the classes the model was trained on"
                )
            names = list(fitted["class_names"])
        elif len(names) < 2:
            raise DataError(f"{path}: the target {target!r} takes a single value {names}; a classifier needs two")
        y: np.ndarray = np.array([names.index(v) for v in values], dtype=np.int64)
    else:
        names = []
        y = np.array([_number(v) for v in values], dtype=np.float32)
    rng = np.random.default_rng(config.split_seed)
    stratified = task == "classification"
    train_idx, test_idx = split_indices(y, config.test_fraction, rng, stratified)
    keep, val_pos = split_indices(y[train_idx], config.val_fraction, rng, stratified)
    val_idx, train_idx = train_idx[val_pos], train_idx[keep]
    encoding = dict(fitted["preprocessing"]) if fitted else fit_encoding(header, [kept[i] for i in train_idx], target)
    x = encode(encoding, header, kept, str(path))
    return make_dataset(
        "csv",
        (x[train_idx], y[train_idx]),
        val=(x[val_idx], y[val_idx]),
        test=(x[test_idx], y[test_idx]),
        task=task,
        class_names=tuple(names),
        description=config.model_dump(mode="json"),
        preprocessing=encoding,
        stats=_stats(encoding, x[train_idx]),
    )
