"""The decoded-image cache of image folders (``rlnas.data.folder``): one ``.npz`` of ``uint8`` pixels per
folder state, under ``dataset.cache_dir`` (default ``$RLNAS_CACHE_DIR``, else ``~/.cache/rlnas``), in
``folders/``. It is kept under a size limit, ``$RLNAS_CACHE_LIMIT_GB`` (default 10): after each write the
least recently used entries go first. ``rlnas cache`` lists it; ``rlnas cache --clear`` empties it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from rlnas import atomic
from rlnas.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_LIMIT_GB = 10.0
LIMIT_VARIABLE = "RLNAS_CACHE_LIMIT_GB"


def root(cache_dir: str | None = None) -> Path:
    """The cache's folder: ``cache_dir`` if given, else ``$RLNAS_CACHE_DIR``, else ``~/.cache/rlnas``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    base = os.environ.get("RLNAS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rlnas"
    )
    return Path(base)


def folder(config: Any) -> Path:
    """Where the decoded folders of a dataset config are cached."""
    return root(config.cache_dir) / "folders"


def limit_bytes() -> int:
    """The cache's size limit, from ``$RLNAS_CACHE_LIMIT_GB`` (0: keep nothing but the entry in use)."""
    text = os.environ.get(LIMIT_VARIABLE)
    if text is None:
        return int(DEFAULT_LIMIT_GB * 1e9)
    try:
        gigabytes = float(text)
    except ValueError:
        gigabytes = -1.0
    if not 0 <= gigabytes < 1e6:
        raise DataError(f"{LIMIT_VARIABLE}={text!r} is not a size; give gigabytes, e.g. {LIMIT_VARIABLE}=20")
    return int(gigabytes * 1e9)


def entries(where: Path) -> list[Path]:
    """The cache's entries, least recently used first."""
    if not where.is_dir():
        return []
    found = []
    for path in where.glob("*.npz"):
        with contextlib.suppress(OSError):
            found.append((path.stat().st_mtime, path))
    return [path for _, path in sorted(found)]


def size(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def load(file: Path) -> dict[str, Any] | None:
    """A cached folder, or None (missing or unreadable: decode again); a hit counts as a use."""
    try:
        with np.load(file, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            out: dict[str, Any] = {"classes": meta["classes"], "skipped": meta["skipped"]}
            for split in meta["splits"]:
                out[split] = (data[f"{split}_x"], data[f"{split}_y"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("ignoring the unreadable cache file %s (%s); decoding again", file, err)
        return None
    with contextlib.suppress(OSError):
        os.utime(file)  # most recently used
    return out


def save(file: Path, data: dict[str, Any]) -> None:
    """Write a decoded folder (atomically), then bring the cache back under its limit."""
    splits = [s for s in ("train", "val", "test") if s in data]
    arrays = {f"{s}_{k}": data[s][i] for s in splits for i, k in enumerate("xy")}
    meta = json.dumps({"classes": data["classes"], "skipped": data["skipped"], "splits": splits})
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with atomic.open_atomic(file) as fh:  # straight to disk: a cache may be gigabytes
            np.savez(fh, meta=np.array(meta), **arrays)
    except OSError as err:
        log.warning(
            "could not write the decoded-image cache %s (%s); set dataset.cache_dir to a writable "
            "folder to load faster next time",
            file,
            err,
        )
        return
    prune(file.parent, keep=file)


def prune(where: Path, keep: Path | None = None, limit: int | None = None) -> list[Path]:
    """Remove the least recently used entries until the cache fits its limit (never ``keep``, the entry in
    use), and the temporary files of killed writes; the entries removed."""
    limit = limit_bytes() if limit is None else limit
    atomic.remove_stale_files(where)
    paths = entries(where)
    total = size(paths)
    removed = []
    for path in paths:
        if total <= limit:
            break
        if path == keep:
            continue
        gone = size([path])
        with contextlib.suppress(OSError):
            path.unlink()
            total -= gone
            removed.append(path)
    if removed:
        log.info(
            "image cache over its %.1f GB limit (%s): removed %d old entries", limit / 1e9, LIMIT_VARIABLE, len(removed)
        )
    return removed


def clear(where: Path) -> tuple[int, int]:
    """Remove every entry; how many and their bytes."""
    paths = entries(where)
    total = size(paths)
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
    atomic.remove_stale_files(where)
    return len(paths), total
