"""Classify image files with an exported model, using the preprocessing of training.

Images are converted to the model's channel count (grayscale or RGB), resized to its input size and
scaled to [0, 1]; the model holds the normalization. Datasets whose digits are light on dark (MNIST,
digits) expect that polarity: pass ``invert=True`` for dark-on-light scans.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlnas.errors import DataError
from rlnas.export import load_export_info, load_model


@dataclass(frozen=True)
class Prediction:
    path: str
    label: int
    probability: float
    probabilities: list[float]


def load_image(path: str | Path, input_shape: tuple[int, int, int], invert: bool = False) -> torch.Tensor:
    """One image file as a (C, H, W) float tensor in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = input_shape
    try:
        with Image.open(path) as image:
            mode = "L" if channels == 1 else "RGB"
            resized = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
            array = np.asarray(resized, dtype=np.float32) / 255.0
    except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
        raise DataError(f"cannot read image {path}: {err}; pass PNG or JPEG files") from None
    if invert:
        array = 1.0 - array
    tensor = torch.from_numpy(array)
    return tensor[None] if channels == 1 else tensor.permute(2, 0, 1)


def predict(export: str | Path, images: list[str | Path], invert: bool = False) -> list[Prediction]:
    info = load_export_info(export)
    shape = tuple(int(v) for v in info["input_shape"])
    model = load_model(export)
    batch = torch.stack([load_image(p, shape, invert) for p in images])  # type: ignore[arg-type]
    with torch.no_grad():
        probs = torch.softmax(model(batch), dim=1)
    out = []
    for path, row in zip(images, probs, strict=True):
        label = int(row.argmax())
        out.append(Prediction(str(path), label, float(row[label]), [float(p) for p in row]))
    return out
