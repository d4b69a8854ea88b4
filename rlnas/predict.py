"""Predictions of an exported model on new inputs, with the preprocessing of training.

``Predictor`` (``rlnas.load_predictor(export)``) takes raw inputs (image files or arrays, table rows or a CSV
file) and applies what training applied. Images are decoded like the folder dataset
(:mod:`rlnas.imagefiles`: the model's channel count, resized to its input size, scaled to [0, 1]); the model
holds the normalization. Datasets whose digits are light on dark (MNIST, digits) expect that polarity: pass
``invert=True`` for dark-on-light scans. Tables are encoded with the column encoding stored in the export
(:mod:`rlnas.data.table`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlnas import imagefiles
from rlnas.data.arrays import to_layout
from rlnas.data.core import Split
from rlnas.errors import DataError
from rlnas.evaluation.train import outputs, scores
from rlnas.exported import load_export_info, load_model


@dataclass(frozen=True)
class Prediction:
    path: str
    label: int  # class index
    name: str  # class name
    probability: float
    probabilities: list[float]


def load_image(path: str | Path, input_shape: tuple[int, ...], invert: bool = False) -> torch.Tensor:
    """One image file as a (C, H, W) float tensor in [0, 1]."""
    channels, height, width = input_shape
    if not Path(path).is_file():  # a named pipe or a device would block the read
        what = "does not exist" if not Path(path).exists() else "is not a regular file"
        raise DataError(f"image {path} {what}; pass image files ({', '.join(imagefiles.IMAGE_SUFFIXES)})")
    try:
        pixels = imagefiles.decode(path, (height, width), channels)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise DataError(
            f"cannot read image {path}: {err}; pass image files ({', '.join(imagefiles.IMAGE_SUFFIXES)})"
        ) from None
    array = pixels.astype(np.float32) / 255.0
    if invert:
        array = 1.0 - array
    return torch.from_numpy(array).permute(2, 0, 1)


class Predictor:
    """An exported model with the preprocessing it was trained with: raw inputs in, predictions out.

    Image models take image files, or arrays ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` of ``uint8``
    pixels (0-255) or floats in [0, 1], of the model's size and channels. Table models take a CSV file, rows
    as mappings (column -> value), or rows of values in the training table's column order (``columns``): the
    stored column encoding (``architecture.json``'s ``preprocessing``) is applied inside.
    """

    def __init__(self, export: str | Path, invert: bool = False) -> None:
        """``invert``: dark-on-light images for a model trained on light-on-dark digits (MNIST)."""
        self.export = Path(export)
        self.info = load_export_info(export)
        self.model = load_model(export)
        self.task: str = self.info.get("task", "classification")
        self.input_shape = tuple(int(v) for v in self.info["input_shape"])
        self.encoding: dict[str, Any] | None = self.info.get("preprocessing")
        classes = self.info.get("class_names") or [str(i) for i in range(int(self.info.get("num_classes", 0)))]
        self.class_names: list[str] | None = list(classes) if self.task == "classification" else None
        self.invert = invert

    @property
    def columns(self) -> list[str]:
        """A table model's input columns, in the order rows of values must follow."""
        return [] if self.encoding is None else [c["name"] for c in self.encoding["columns"]]

    def features(self, x: Any) -> torch.Tensor:
        """The model's input for ``x``: float images ``(N, C, H, W)`` in [0, 1], or encoded table rows
        ``(N, F)`` (what ``model.onnx`` takes as ``image`` or ``features``)."""
        if self.encoding is not None:
            return torch.from_numpy(self._table(x))
        if isinstance(x, (str, Path)) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], (str, Path))):
            files = [x] if isinstance(x, (str, Path)) else list(x)
            return torch.stack([load_image(p, self.input_shape, self.invert) for p in files])
        array = np.asarray(x)
        c, h, w = self.input_shape
        if array.shape in {(c, h, w), (h, w, c)} or (c == 1 and array.shape == (h, w)):
            array = array[None]  # one image
        layout = {(c, h, w): "nchw", (h, w, c): "nhwc"}.get(array.shape[1:], "auto") if array.ndim == 4 else "auto"
        images = torch.from_numpy(to_layout(array, layout, "the images"))
        images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if tuple(images.shape[1:]) != self.input_shape:
            raise DataError(
                f"images of shape {tuple(array.shape)} do not fit the model's input {self.input_shape} "
                "(channels, height, width); resize them, or pass image files (resized on loading)"
            )
        return 1.0 - images if self.invert else images

    def _table(self, x: Any) -> np.ndarray:
        from rlnas.data.table import encode, read_csv

        assert self.encoding is not None
        if isinstance(x, (str, Path)):
            header, rows = read_csv(Path(x), keep_blank=True)
            return encode(self.encoding, header, rows, str(x))
        records = list(x)
        if records and isinstance(records[0], Mapping):
            header = list(dict.fromkeys(k for r in records for k in r))
            return encode(self.encoding, header, [[_text(r.get(k)) for k in header] for r in records], "the rows")
        rows = [[_text(v) for v in row] for row in records]
        if any(len(row) != len(self.columns) for row in rows):
            raise DataError(
                f"rows of values must have the {len(self.columns)} columns {self.columns} in this order; "
                "or pass rows as mappings of column -> value"
            )
        return encode(self.encoding, self.columns, rows, "the rows")

    def outputs(self, x: Any) -> torch.Tensor:
        """Class logits, or predictions in the target's units (regression)."""
        with torch.no_grad():
            return outputs(self.model, self.features(x))

    def predict_proba(self, x: Any) -> np.ndarray:
        if self.class_names is None:
            raise DataError(f"{self.export} is a regression model: it predicts values, not class probabilities")
        return torch.softmax(self.outputs(x), dim=1).numpy()

    def predict(self, x: Any) -> np.ndarray:
        """Class indices (``class_names`` names them), or the predicted values of a regression model."""
        out = self.outputs(x)
        return out.argmax(dim=1).numpy() if self.class_names is not None else out.reshape(-1).numpy()

    def evaluate(self, x: Any, y: Any) -> dict[str, float]:
        """``{"accuracy"}`` (labels as class indices or class names), or ``{"r2", "mae", "rmse"}``."""
        labels = np.asarray(y)
        if self.class_names is not None:
            labels = self._indices(labels)
        features = self.features(x)
        if len(features) != len(labels):
            raise DataError(f"{len(features)} inputs but {len(labels)} labels; give one label per input")
        target = torch.from_numpy(labels.astype(np.int64 if self.class_names is not None else np.float32))
        return scores(self.model, Split(features, target), self.task)

    def _indices(self, labels: np.ndarray) -> np.ndarray:
        assert self.class_names is not None
        if np.issubdtype(labels.dtype, np.integer):
            bad = labels[(labels < 0) | (labels >= len(self.class_names))]
            if len(bad):
                raise DataError(f"label {bad[0]} is not a class index 0..{len(self.class_names) - 1}")
            return labels
        from rlnas.data.table import class_labels

        lookup = {name: i for i, name in enumerate(self.class_names)}
        texts = [str(v).strip() for v in labels.astype(str)]
        if class_labels(list(self.class_names)) == list(self.class_names):  # numeric names: 1.0 and 01 are 1
            texts = class_labels(texts)
        unknown = [v for v in texts if v not in lookup]
        if unknown:
            raise DataError(f"label {unknown[0]!r} is not one of the model's classes {self.class_names}")
        return np.array([lookup[v] for v in texts], dtype=np.int64)


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def load_predictor(export: str | Path, invert: bool = False) -> Predictor:
    """An exported model (``RUN/export``) ready for raw inputs: ``.predict(x)``, ``.evaluate(x, y)``."""
    return Predictor(export, invert)


def predict(export: str | Path, images: list[str | Path], invert: bool = False) -> list[Prediction]:
    """Class predictions for image files."""
    predictor = Predictor(export, invert)
    if len(predictor.input_shape) != 3 or predictor.class_names is None:
        raise DataError(f"{export} is not an image classifier; pass a CSV table for a table model")
    names = predictor.class_names
    probs = predictor.predict_proba([Path(p) for p in images])
    out = []
    for path, row in zip(images, probs, strict=True):
        label = int(row.argmax())
        out.append(Prediction(str(path), label, names[label], float(row[label]), [float(p) for p in row]))
    return out


def predict_table(export: str | Path, table: str | Path) -> tuple[list[str], list[list[str]]]:
    """A CSV table's rows with the model's prediction appended: ``prediction`` (regression), or
    ``prediction`` (class name) and ``probability`` (classification). Returns (header, rows)."""
    from rlnas.data.table import read_csv

    predictor = Predictor(export)
    if predictor.encoding is None:
        raise DataError(f"{export} was not trained on a table; pass image files instead of {table}")
    header, rows = read_csv(Path(table), keep_blank=True)
    out = predictor.outputs(table)
    if predictor.class_names is None:
        return header + ["prediction"], [
            row + [f"{float(v):.6g}"] for row, v in zip(rows, out.reshape(-1), strict=True)
        ]
    probs = torch.softmax(out, dim=1)
    names = predictor.class_names
    return header + ["prediction", "probability"], [
        row + [names[int(p.argmax())], f"{float(p.max()):.4f}"] for row, p in zip(rows, probs, strict=True)
    ]
