"""Reading image files: one decoding path for the folder dataset and ``rlnas predict``.

Kept free of torch so that the worker processes that decode a folder in parallel start in a fraction of
a second. Every image becomes ``uint8`` pixels of shape ``(H, W, C)``: converted to grayscale (``C = 1``)
or RGB (``C = 3``) with Pillow, resized with bilinear filtering when its size differs from the target.
16-bit grayscale images (and 32-bit integer ones, which hold 16-bit values) are scaled to 8 bits, not clipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L")  # 16-bit grayscale as Pillow opens it


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def header(path: str) -> tuple[int, int, bool] | str:
    """``(width, height, grayscale)`` from the file's header, or the error text when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size[0], image.size[1], image.mode in GRAY_MODES
    except Exception as err:  # noqa: BLE001 - any failure is reported with the file's name
        return f"{type(err).__name__}: {err}"


def decode(path: str | Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """One file as ``uint8`` pixels ``(H, W, C)`` of ``size = (height, width)``; raises on a bad file."""
    from PIL import Image

    height, width = size
    with Image.open(path) as file:
        file.load()
        image: Image.Image = file
        if image.mode in WIDE_MODES:
            image = Image.fromarray(_eight_bits(np.asarray(image)), mode="L")
        elif image.mode in ("P", "PA") or "transparency" in image.info:
            image = image.convert("RGBA")
        converted = image.convert("L" if channels == 1 else "RGB")
        if converted.size != (width, height):
            converted = converted.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[:, :, None] if channels == 1 else pixels


def _eight_bits(wide: np.ndarray) -> np.ndarray:
    """16-bit pixel values (0-65535) as 8-bit ones (0-255), rounded: 65535 / 257 = 255."""
    return np.clip(np.rint(wide.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def headers(paths: list[str]) -> list[tuple[int, int, bool] | str]:
    """:func:`header` of many files (one task of a worker process)."""
    return [header(p) for p in paths]


def decode_many(paths: list[str], size: tuple[int, int], channels: int) -> tuple[np.ndarray, dict[int, str]]:
    """Decode many files into one ``(N, H, W, C)`` array; failures are returned as {index: error} and
    leave zeros in their row (one task of a worker process)."""
    out = np.zeros((len(paths), size[0], size[1], channels), dtype=np.uint8)
    errors: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            out[i] = decode(path, size, channels)
        except Exception as err:  # noqa: BLE001 - reported per file by the caller
            errors[i] = f"{type(err).__name__}: {err}"
    return out, errors
