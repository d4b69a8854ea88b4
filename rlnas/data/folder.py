"""Images in class subfolders: ``DIR/<class>/*.png`` or, already split, ``DIR/train/<class>/...`` with
optional ``DIR/val/`` and ``DIR/test/``.

Files are decoded once, in parallel worker processes, into ``uint8`` pixels and cached under
``dataset.cache_dir`` (default ``~/.cache/rlnas``), keyed by the folder's file list, sizes and modification
times and the decoding options; a later load of the same folder reads the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlnas import imagefiles
from rlnas.data import cache
from rlnas.data.core import Dataset, make_dataset
from rlnas.errors import DataError

if TYPE_CHECKING:
    from rlnas.config import DatasetConfig

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: 16-bit grayscale scaled to 8 bits (was clipped)
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
PARALLEL_FROM = 2000  # fewer files are decoded in this process (worker start-up would cost more)
CHUNK = 512


def _class_dirs(root: Path) -> dict[str, Path]:
    folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    for name, path in folders.items():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # the name's bytes are not UTF-8 (Python keeps them as surrogates)
            raw = os.fsencode(path.name)
            raise DataError(
                f"class folder {os.fsencode(path)!r} has a name that is not UTF-8 text ({raw!r}); class names go "
                "into the run's files and the exported model: rename the folder to UTF-8 text (e.g. "
                f"{raw.decode('utf-8', 'replace').replace(chr(0xFFFD), '_')!r})"
            ) from None
    return folders


def _images_in(folder: Path, skip_unreadable: bool) -> list[Path]:
    """Every image file under ``folder`` (nested folders too); a folder that cannot be listed is an error,
    or a warning with ``dataset.skip_corrupt``."""
    unreadable: list[OSError] = []
    images = [
        Path(top, name)
        for top, _, names in os.walk(folder, onerror=unreadable.append)
        for name in names
        if imagefiles.is_image_file(Path(name))
    ]
    if unreadable:
        shown = "; ".join(f"{err.filename}: {err.strerror}" for err in unreadable[:3])
        if not skip_unreadable:
            raise DataError(
                f"{len(unreadable)} folder(s) under {folder} cannot be read ({shown}); fix their permissions, or "
                "set dataset.skip_corrupt=true to leave them out"
            )
        log.warning("left out %d unreadable folder(s) under %s: %s", len(unreadable), folder, shown)
    return sorted(p for p in images if p.is_file())


def scan(root: Path, skip_unreadable: bool = False) -> dict[str, list[tuple[Path, str]]]:
    """``{split: [(file, class name), ...]}`` with split in train / val / test (only train when not split)."""
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist or is not a folder; set dataset.path to a folder "
            "of class subfolders (DIR/<class>/*.png)"
        )
    subdirs = _class_dirs(root)
    if not subdirs:
        loose = [p.name for p in root.iterdir() if imagefiles.is_image_file(p)]
        hint = f" ({len(loose)} images lie directly in it)" if loose else ""
        raise DataError(
            f"image folder {root} has no class subfolders{hint}; put the images of each class in their own "
            f"subfolder: {root}/<class>/*.png"
        )
    presplit = "train" in subdirs and set(subdirs) <= set(SPLIT_NAMES)
    roots = {SPLIT_NAMES[name]: path for name, path in subdirs.items()} if presplit else {"train": root}
    if not presplit and set(subdirs) & set(SPLIT_NAMES) and "train" not in subdirs:
        raise DataError(
            f"image folder {root} has {sorted(set(subdirs) & set(SPLIT_NAMES))} but no train/ folder; "
            "an already split folder needs DIR/train/<class>/ (val/ and test/ are optional)"
        )
    files: dict[str, list[tuple[Path, str]]] = {}
    for split, split_root in roots.items():
        classes = _class_dirs(split_root)
        if not classes:
            raise DataError(f"{split_root} has no class subfolders; expected {split_root}/<class>/*.png")
        rows: list[tuple[Path, str]] = []
        for name, folder in classes.items():
            images = _images_in(folder, skip_unreadable)
            if not images:
                raise DataError(
                    f"class folder {folder} holds no images ({', '.join(imagefiles.IMAGE_SUFFIXES)}); add images "
                    "or remove the folder"
                )
            rows += [(p, name) for p in images]
        files[split] = rows
    return files


def _cache_key(files: dict[str, list[tuple[Path, str]]], root: Path, config: DatasetConfig) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_FORMAT, config.image_size, config.channels, config.skip_corrupt]).encode())
    for split, rows in files.items():
        for path, label in rows:
            st = path.stat()
            line = f"{split}\0{path.relative_to(root)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n"
            h.update(line.encode("utf-8", "surrogateescape"))  # file names need not be UTF-8
    return h.hexdigest()[:24]


def _pool_map(fn: Any, chunks: list[list[str]], *args: Any) -> Iterator[Any]:
    """``fn(chunk, *args)`` for every chunk, in order; in worker processes when there is enough work. Results
    are yielded as they come, so that only a few decoded chunks are in memory at a time."""
    if sum(len(c) for c in chunks) < PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        yield from (fn(chunk, *args) for chunk in chunks)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=context) as pool:
        yield from pool.map(fn, chunks, *[[a] * len(chunks) for a in args])


def _bad_files(bad: list[tuple[str, str]], what: str) -> DataError:
    shown = "; ".join(f"{path}: {err}" for path, err in bad[:3])
    more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
    return DataError(
        f"{len(bad)} image file(s) cannot be {what}: {shown}{more}; remove or replace them, or set "
        "dataset.skip_corrupt=true to leave them out"
    )


def _target_size(sizes: set[tuple[int, int]], config: DatasetConfig, root: Path) -> tuple[int, int]:
    if config.image_size is not None:
        size = config.image_size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4])
        side = int(np.clip(np.median([min(s) for s in sizes]), 8, 64))
        raise DataError(
            f"the images in {root} have {len(sizes)} different sizes ({shown}{' ...' if len(sizes) > 4 else ''}); "
            f"set dataset.image_size to resize them all, e.g. dataset.image_size={side} ({side}x{side}) or "
            "[height, width]"
        )
    width, height = next(iter(sizes))
    return height, width


def _decode(files: dict[str, list[tuple[Path, str]]], config: DatasetConfig, root: Path) -> dict[str, Any]:
    """Decode every file: ``{split: (x uint8 NCHW, labels)}``, the class names and the skipped files."""
    rows = [(split, path, label) for split, items in files.items() for path, label in items]
    paths = [str(path) for _, path, _ in rows]
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    heads = [h for part in _pool_map(imagefiles.headers, chunks) for h in part]
    bad = [(paths[i], h) for i, h in enumerate(heads) if isinstance(h, str)]
    if bad and not config.skip_corrupt:
        raise _bad_files(bad, "read")
    good = [h for h in heads if not isinstance(h, str)]
    if not good:
        raise DataError(f"no image in {root} could be read")
    size = _target_size({(w, h) for w, h, _ in good}, config, root)
    channels = {"grayscale": 1, "rgb": 3}.get(config.channels) or (1 if all(g for _, _, g in good) else 3)
    ok = [i for i, h in enumerate(heads) if not isinstance(h, str)]
    chunks = [[paths[i] for i in ok[j : j + CHUNK]] for j in range(0, len(ok), CHUNK)]
    x_all = np.empty((len(ok), channels, *size), dtype=np.uint8)  # filled chunk by chunk: one copy in memory
    errors: dict[int, str] = {}
    for j, (part, errs) in enumerate(_pool_map(imagefiles.decode_many, chunks, size, channels)):
        x_all[j * CHUNK : j * CHUNK + len(part)] = part.transpose(0, 3, 1, 2)
        errors.update({ok[j * CHUNK + i]: err for i, err in errs.items()})
    if errors and not config.skip_corrupt:
        raise _bad_files([(paths[i], e) for i, e in errors.items()], "decoded")
    keep = np.array([i not in errors for i in ok], dtype=bool)
    if errors:
        x_all = x_all[keep]
    kept_rows = [rows[i] for i, k in zip(ok, keep, strict=True) if k]
    skipped = len(bad) + len(errors)
    if skipped:
        log.warning("left out %d unreadable image file(s) of %s (dataset.skip_corrupt=true)", skipped, root)
    classes = sorted({label for split, _, label in kept_rows if split == "train"})
    index = {name: i for i, name in enumerate(classes)}
    out: dict[str, Any] = {"classes": classes, "skipped": skipped}
    for split in files:
        mask = np.array([s == split for s, _, _ in kept_rows], dtype=bool)
        labels = [label for s, _, label in kept_rows if s == split]
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise DataError(
                f"{root}/{split} has classes {unknown} that train/ does not have; every class needs training images"
            )
        x = x_all if mask.all() else x_all[mask]
        out[split] = (x, np.array([index[label] for label in labels], dtype=np.int64))
    return out


def load_folder(config: DatasetConfig) -> Dataset:
    root = Path(str(config.path)).expanduser()
    start = time.perf_counter()
    files = scan(root, config.skip_corrupt)
    cache_file = cache.folder(config) / f"{_cache_key(files, root, config)}.npz"
    data = cache.load(cache_file) if cache_file.is_file() else None
    if data is None:
        data = _decode(files, config, root)
        cache.save(cache_file, data)
        log.info(
            "decoded %d images of %s in %.1f s (cache: %s)",
            sum(len(r) for r in files.values()),
            root,
            time.perf_counter() - start,
            cache_file,
        )
    else:
        log.info("loaded %s from the cache %s in %.1f s", root, cache_file, time.perf_counter() - start)
    classes = data["classes"]
    if len(classes) < 2:
        raise DataError(
            f"image folder {root} has {len(classes)} class ({classes}); a classifier needs at least "
            "two class subfolders"
        )
    return make_dataset(
        "folder",
        data["train"],
        val=data.get("val"),
        test=data.get("test"),
        task="classification",
        class_names=tuple(classes),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        split_seed=config.split_seed,
        description=config.model_dump(mode="json"),
    )
