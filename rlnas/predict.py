"""Predictions of an exported model on new files, with the preprocessing of training.

Images are decoded like the folder dataset (:mod:`rlnas.imagefiles`: the model's channel count, resized to
its input size, scaled to [0, 1]); the model holds the normalization. Datasets whose digits are light on
dark (MNIST, digits) expect that polarity: pass ``invert=True`` for dark-on-light scans. Tables are encoded
with the column encoding stored in the export (:mod:`rlnas.data.table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlnas import imagefiles
from rlnas.errors import DataError
from rlnas.exporter import load_export_info, load_model


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


def predict(export: str | Path, images: list[str | Path], invert: bool = False) -> list[Prediction]:
    """Class predictions for image files."""
    info = load_export_info(export)
    if len(info["input_shape"]) != 3 or info.get("task", "classification") != "classification":
        raise DataError(f"{export} is not an image classifier; pass a CSV table for a table model")
    shape = tuple(int(v) for v in info["input_shape"])
    names = info.get("class_names") or [str(i) for i in range(int(info["num_classes"]))]
    model = load_model(export)
    batch = torch.stack([load_image(p, shape, invert) for p in images])
    with torch.no_grad():
        probs = torch.softmax(model(batch), dim=1)
    out = []
    for path, row in zip(images, probs, strict=True):
        label = int(row.argmax())
        out.append(Prediction(str(path), label, names[label], float(row[label]), [float(p) for p in row]))
    return out


def predict_table(export: str | Path, table: str | Path) -> tuple[list[str], list[list[str]]]:
    """A CSV table's rows with the model's prediction appended: ``prediction`` (regression), or
    ``prediction`` (class name) and ``probability`` (classification). Returns (header, rows)."""
    from rlnas.data.table import encode, read_csv

    info = load_export_info(export)
    encoding: dict[str, Any] | None = info.get("preprocessing")
    if encoding is None:
        raise DataError(f"{export} was not trained on a table; pass image files instead of {table}")
    header, rows = read_csv(Path(table))
    x = torch.from_numpy(encode(encoding, header, rows, str(table)))
    model = load_model(export)
    with torch.no_grad():
        out = model(x)
    if info["task"] == "regression":
        return header + ["prediction"], [
            row + [f"{float(v):.6g}"] for row, v in zip(rows, out.reshape(-1), strict=True)
        ]
    probs = torch.softmax(out, dim=1)
    names = info["class_names"]
    return header + ["prediction", "probability"], [
        row + [names[int(p.argmax())], f"{float(p.max()):.4f}"] for row, p in zip(rows, probs, strict=True)
    ]
