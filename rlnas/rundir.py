"""Run directories: their file names, a new run's directory and default name, the lock of a run being
written, opening an existing run, and the checks on a run stopped during its set-up or edited by hand."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from rlnas import atomic
from rlnas.config import USER_DATASETS, RunConfig, load_config
from rlnas.errors import ConfigError, RunDirError
from rlnas.evaluation.base import val_score
from rlnas.formatting import to_json
from rlnas.mirror import OPTUNA_FILE
from rlnas.store import TrialRecord, TrialStore, pareto_front

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
STORE_FILE = "trials.sqlite"
SUMMARY_FILE = "run.json"
RUN_DIR_FLAG = "--run-dir (run_dir= in Python)"  # how errors name the run directory option
DATASET_FILE = "dataset.json"  # the data's description and fingerprint: resume and export check them
TENSORBOARD_DIR = "tensorboard"
HPARAMS_DIR = "hparams"  # one TensorBoard run per child (HParams sessions)
CHILDREN_DIR = "children"  # RUN/children/<cache key>.pt with logging.keep_children
EXPORT_DIR = "export"  # RUN/export: the final model, swapped in whole (atomic.replace_dir)
FINALS_DIR = "export-trainings"  # the finished final trainings of an export not written yet: a new export reuses them


def default_run_dir(config: RunConfig) -> Path:
    """A new, empty run directory ``RUNS_ROOT/<data>__<space>__<strategy>__<seed>__<time>``, created here
    (``<data>``: the dataset's name, or the name of the user's folder or file); two searches started in the
    same second get ``...-2``, ``...-3`` (created exclusively, so they never share one)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name: str = config.dataset.name
    if name in USER_DATASETS and config.dataset.path:
        name = re.sub(r"[^\w.-]+", "_", Path(config.dataset.path).stem).strip("._") or name
    base = Path(config.runs_root) / f"{name}__{config.space.name}__{config.strategy.name}__{config.seed}__{stamp}"
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(
            f"cannot create runs_root {base.parent} ({err}); set runs_root, or pass {RUN_DIR_FLAG}"
        ) from None
    for n in range(1, 1000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"no free run directory name next to {base}; pass {RUN_DIR_FLAG}")


def write_run_files(
    run_dir: Path, config: RunConfig, space: dict[str, Any], dataset: dict[str, Any] | None, resume: bool
) -> None:
    """A run's description: ``config.yaml`` (rewritten on resume, with the budget, export, logging and execution
    changes), and for a new run ``space.json`` and the data's ``dataset.json`` (None: no dataset, e.g. a table)."""
    if not resume:
        atomic.write_text(run_dir / "space.json", json.dumps(space, indent=1))
        if dataset is not None:
            atomic.write_text(run_dir / DATASET_FILE, json.dumps(dataset, indent=1))
    atomic.write_text(run_dir / CONFIG_FILE, config.to_yaml())


def write_summary(run_dir: Path, summary: dict[str, Any], trials: list[TrialRecord], metric: str) -> None:
    """``run.json``: how the search ended (``summary``) and the Pareto front of validation score against the
    complexity ``metric``."""
    summary = dict(summary)
    summary["pareto_front"] = [
        {"trial": r.number, "proxy_val_score": val_score(r.metrics), metric: r.metrics[metric]}
        for r in pareto_front(trials, metric)
    ]
    atomic.write_text(run_dir / SUMMARY_FILE, to_json(summary))


SECONDS_META = "search_seconds"  # the store's record of the search's wall time, over every session


def seconds_before(store: TrialStore, run_dir: Path | None) -> float:
    """A resumed search's wall time in the sessions before this one (stored as each trial finishes and when a
    session stops; run.json for runs from before the store kept it)."""
    stored = store.get_meta(SECONDS_META)
    if stored is None and run_dir is not None and (run_dir / SUMMARY_FILE).is_file():
        try:
            stored = str(json.loads((run_dir / SUMMARY_FILE).read_text()).get("search_seconds", 0.0))
        except (ValueError, OSError):
            stored = None
    try:
        return max(0.0, float(stored or 0.0))
    except ValueError:
        return 0.0


def save_seconds(store: TrialStore, seconds: float) -> None:
    """Best effort while stopping (an interrupt, a full disk): the last trial's time is stored already."""
    try:
        store.set_meta(SECONDS_META, repr(seconds))
    except (OSError, sqlite3.Error):
        log.warning("could not store the search's wall time", exc_info=True)


LOCK_FILE = ".lock"
MARKER_FILE = ".rlnas-run"  # written first into every run directory rlnas creates: only such a folder is taken over


class RunLock:
    """An exclusive lock on a run directory, held for the life of the process that writes the run (the
    operating system releases it when the process dies, even by SIGKILL)."""

    def __init__(self, run_dir: Path) -> None:
        import fcntl

        check_utf8(run_dir)
        self.path = run_dir / LOCK_FILE
        try:
            self._fh = self.path.open("a+")
        except OSError as err:
            raise RunDirError(
                f"cannot write to run directory {run_dir} ({err.strerror}); make it writable, or copy it elsewhere"
            ) from None
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.seek(0)
            owner = self._fh.read().strip() or "another process"
            self._fh.close()
            raise RunDirError(
                f"{run_dir} is in use by another rlnas process (pid {owner}); wait until it ends or stop it, "
                "then resume"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()
        with contextlib.suppress(OSError):  # what killed writers left: the lock says none of them is running
            for folder in (run_dir, run_dir / CHILDREN_DIR, run_dir / FINALS_DIR):
                atomic.remove_stale_files(folder)
            atomic.recover_dir(run_dir / EXPORT_DIR)

    def release(self) -> None:
        if not self._fh.closed:
            self._fh.close()  # closing the file releases the lock


def open_run(run_dir: str | Path, read_only: bool = False) -> tuple[RunConfig, TrialStore]:
    """The config and trial store of an existing run directory (``read_only``: for commands that only read)."""
    path = Path(run_dir)
    if path.is_dir() and never_started(path):
        raise RunDirError(
            f"{path} holds a search that was stopped while it was being set up, before its first trial (nothing "
            f"was lost); start it again: rlnas search ... --run-dir {path}"
        )
    if not (path / CONFIG_FILE).is_file() or not (path / STORE_FILE).is_file():
        raise RunDirError(
            f"{path} is not an rlnas run directory (it needs {CONFIG_FILE} and {STORE_FILE}); "
            "pass the directory a search created, e.g. runs/<data>__<space>__<strategy>__<seed>__<time>"
        )
    if (path / STORE_FILE).stat().st_size == 0:
        raise RunDirError(
            f"{path / STORE_FILE} is empty (0 bytes): the run's trials are gone (a full disk or a copy cut short?); "
            "restore it from a backup, or start a new run"
        )
    return load_config(path / CONFIG_FILE), TrialStore(path / STORE_FILE, read_only=read_only)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def check_unchanged(run_dir: Path, config: RunConfig, recorded: str | None) -> None:
    """Refuse a config.yaml edited by hand outside the sections a resume may change."""
    if recorded is None:
        return  # runs made before rlnas recorded their config in the store
    then = _flat(load_config(base=yaml.safe_load(recorded)).model_dump(by_alias=True))
    now = _flat(config.model_dump(by_alias=True))
    changed = [
        f"{key}: {then.get(key)!r} -> {now.get(key)!r}"
        for key in sorted(set(then) | set(now))
        if not key.startswith(RESUMABLE) and then.get(key) != now.get(key)
    ]
    if changed:
        raise ConfigError(
            f"{run_dir / CONFIG_FILE} was changed since the search started ({'; '.join(changed)}); only budget.*, "
            "export.*, logging.* and execution.* may change on resume: undo the edit or start a new run"
        )


RESUMABLE = ("budget.", "export.", "logging.", "execution.")


# what a run directory holds before its first trial can be stored
SETUP_NAMES = frozenset(
    {
        LOCK_FILE,
        MARKER_FILE,
        ".write-test",
        "space.json",
        DATASET_FILE,
        CONFIG_FILE,
        STORE_FILE,
        TENSORBOARD_DIR,
        HPARAMS_DIR,
    }
    | {f"{STORE_FILE}-{suffix}" for suffix in ("journal", "wal", "shm")}
    | {OPTUNA_FILE}
)


def never_started(path: Path) -> bool:
    """A run directory left by a search killed while it was being set up: rlnas's mark, nothing but rlnas's
    set-up files (and their temporary files), and a store that is missing or was never given its config (so no
    trial). A folder without the mark is never taken for one, whatever names its files have."""
    names = [p.name for p in path.iterdir()]
    if MARKER_FILE not in names:
        return False
    if not all(n in SETUP_NAMES or (n.startswith(".") and n.endswith(".tmp")) for n in names):
        return False
    store = path / STORE_FILE
    if not store.is_file():
        return True
    if store.stat().st_size == 0 and (path / CONFIG_FILE).is_file():
        return False  # a store emptied later (a full disk): open_run says what happened
    try:
        with contextlib.closing(sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" not in tables:
                return "trials" not in tables
            started = db.execute("SELECT 1 FROM meta WHERE key = 'config'").fetchone() is not None
            trials = "trials" in tables and db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] > 0
    except sqlite3.Error:
        return False
    return not started and not trials


def check_utf8(path: Path) -> None:
    """Refuse a run directory whose name is not UTF-8 text: TensorBoard, the Optuna mirror and the run's
    files record its path."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(path)
        raise RunDirError(
            f"run directory {raw!r} is not UTF-8 text; TensorBoard and the Optuna mirror record its path: pass "
            f"a UTF-8 name to {RUN_DIR_FLAG} (e.g. {raw.decode('utf-8', 'replace').replace(chr(0xFFFD), '_')!r})"
        ) from None


def create_run_dir(path: Path) -> RunLock:
    """A new (or empty) run directory, locked; a folder left by a search killed during its set-up is
    taken over."""
    check_utf8(path)
    try:
        path.exists()
    except OSError as err:  # a name too long for the file system, a loop of links
        raise RunDirError(
            f"run directory {path} cannot be used ({err.strerror}); pass another to {RUN_DIR_FLAG}"
        ) from None
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} is a file, not a folder; pass a new or empty folder to {RUN_DIR_FLAG}")
    if path.exists() and any(path.iterdir()):
        if not never_started(path):
            raise RunDirError(f"run directory {path} already exists and is not empty; pass another to {RUN_DIR_FLAG}")
        lock = RunLock(path)  # refuses a folder another process is still setting up
        log.warning("%s holds a search stopped during its set-up (no trial): starting afresh in it", path)
        for entry in path.iterdir():
            if entry.name not in (LOCK_FILE, MARKER_FILE):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        return lock
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER_FILE).write_text("rlnas run directory\n")  # the mark, and the test that the folder is writable
    except OSError as err:
        raise RunDirError(
            f"cannot write to run directory {path} ({err}); pass a writable folder to {RUN_DIR_FLAG}"
        ) from None
    return RunLock(path)
