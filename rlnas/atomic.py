"""Atomic writes: every file rlnas writes (the SQLite trial store aside, which has its own journal) is
written beside its target, flushed to disk and renamed over it, so a kill at any moment leaves either the
old file or the new one, never half of one. Folders (an export) are written aside and swapped in."""

from __future__ import annotations

import contextlib
import glob
import io
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
def open_atomic(path: str | Path, mode: str = "wb", errors: str = "strict") -> Iterator[IO[Any]]:
    """A file object for ``path``: what is written appears under ``path`` only when the block ends
    without an exception; otherwise the target is untouched and the temporary file removed. Text is UTF-8."""
    target = Path(path)
    tmp = _tmp(target)
    text = "b" not in mode
    try:
        with open(tmp, mode, encoding="utf-8" if text else None, errors=errors if text else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def write_text(path: str | Path, text: str, errors: str = "strict") -> None:
    """``errors="surrogateescape"``: text holding file names that are not UTF-8 gets their bytes back."""
    with open_atomic(path, "w", errors=errors) as fh:
        fh.write(text)


def write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    with open_atomic(path, "wb") as fh:
        fh.write(data)


def save_with(path: str | Path, save: Callable[[IO[Any]], None]) -> None:
    """``save(file object)`` (e.g. ``torch.save`` or SB3's ``model.save``) written atomically to ``path``.
    The bytes are built in memory first: torch's writer turns a full disk into a RuntimeError or a native
    abort, a plain write into the OSError (ENOSPC) that rlnas reports."""
    buffer = io.BytesIO()
    save(buffer)
    write_bytes(path, buffer.getbuffer())


BUILT = ".built"  # marks a staged folder whose build finished: a swap cut short may complete with it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return pid > 0


def left_by_dead_process(path: Path) -> bool:
    """Whether ``path`` (``.name.<pid>.<suffix>``, see :func:`_tmp` and :func:`replace_dir`) was written by a
    process that is gone."""
    parts = path.name.rsplit(".", 2)
    return len(parts) == 3 and parts[1].isdigit() and int(parts[1]) != os.getpid() and not _alive(int(parts[1]))


def recover_dir(target: str | Path) -> None:
    """Finish (or undo) a :func:`replace_dir` swap that a kill cut short, so that ``target`` exists again,
    and remove the staging folders that killed builds left beside it."""
    final = Path(target)
    if not final.parent.is_dir():
        return
    pattern = f".{glob.escape(final.name)}.*"
    leftovers = sorted(
        p for p in final.parent.glob(pattern) if p.suffix in (".new", ".old") and left_by_dead_process(p)
    )
    if not final.exists():
        built = [p for p in leftovers if p.suffix == ".new" and (p / BUILT).exists()]
        previous = [p for p in leftovers if p.suffix == ".old"]
        for candidate in built + previous:
            os.replace(candidate, final)
            break
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    (final / BUILT).unlink(missing_ok=True)


def replace_dir(build: Callable[[Path], None], target: str | Path) -> None:
    """Write a folder with ``build(folder)`` beside ``target`` and swap it in at the end: until then the
    previous ``target`` stays whole, and a failed or killed build leaves it as it was. A kill between the two
    renames of the swap leaves the finished folder marked beside ``target``: :func:`recover_dir` (called
    here and by readers of exports) puts it in place."""
    final = Path(target)
    recover_dir(final)
    staging = final.with_name(f".{final.name}.{os.getpid()}.new")
    old = final.with_name(f".{final.name}.{os.getpid()}.old")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        build(staging)
        (staging / BUILT).touch()
        _fsync_dir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    _fsync_dir(final.parent)
    (final / BUILT).unlink(missing_ok=True)
    shutil.rmtree(old, ignore_errors=True)


def replace_files(build: Callable[[Path], None], target: str | Path, last: str | None = None) -> None:
    """Write files with ``build(folder)`` into a staging folder inside ``target``, then move each one into
    ``target`` (``last`` after the others): every file there is whole, the previous version or the new one,
    and the folder's other files are left alone. A failed build moves nothing; the staging folders of killed
    builds are removed by the next call."""
    final = Path(target)
    for stale in final.glob(".staging.*.new"):
        if left_by_dead_process(stale):
            shutil.rmtree(stale, ignore_errors=True)
    staging = final / f".staging.{os.getpid()}.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        build(staging)
        for path in sorted(staging.iterdir(), key=lambda p: p.name == last):
            os.replace(path, final / path.name)
        _fsync_dir(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_stale_files(folder: str | Path) -> None:
    """Remove the temporary files that killed :func:`open_atomic` writes left in ``folder``."""
    root = Path(folder)
    for path in root.glob(".*.tmp") if root.is_dir() else ():
        if left_by_dead_process(path):
            with contextlib.suppress(OSError):
                path.unlink()
