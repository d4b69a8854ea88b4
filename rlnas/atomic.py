"""Atomic writes: every file rlnas writes (the SQLite trial store aside, which has its own journal) is
written beside its target, flushed to disk and renamed over it, so a kill at any moment leaves either the
old file or the new one, never half of one. Folders (an export) are written aside and swapped in."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened for syncing
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def open_atomic(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file object for ``path``: what is written appears under ``path`` only when the block ends
    without an exception; otherwise the target is untouched and the temporary file removed."""
    target = Path(path)
    tmp = _tmp(target)
    try:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def write_text(path: str | Path, text: str) -> None:
    with open_atomic(path, "w") as fh:
        fh.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with open_atomic(path, "wb") as fh:
        fh.write(data)


def save_with(path: str | Path, save: Callable[[IO[Any]], None]) -> None:
    """``save(file object)`` (e.g. ``torch.save`` or SB3's ``model.save``) written atomically to ``path``."""
    with open_atomic(path, "wb") as fh:
        save(fh)


def replace_dir(build: Callable[[Path], None], target: str | Path) -> None:
    """Write a folder with ``build(folder)`` beside ``target`` and swap it in at the end: until then the
    previous ``target`` stays whole, and a failed or killed build leaves it as it was."""
    final = Path(target)
    staging = final.with_name(f".{final.name}.{os.getpid()}.new")
    old = final.with_name(f".{final.name}.{os.getpid()}.old")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        build(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(staging)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)
