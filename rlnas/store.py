"""Durable, append-only trial store (SQLite in WAL mode): every trial of a run, in order.

Each trial is committed as soon as it finishes, so a killed search loses nothing that had finished.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlnas.errors import RunDirError
from rlnas.evaluation.base import COMPLETE, Evaluation, score_metric, val_score
from rlnas.space.core import Architecture

# 1 numbered the rows from 1 (trial n was row n + 1); 2 numbers them as trials, from 0; 3 adds the curves
log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    architecture TEXT NOT NULL,
    status TEXT NOT NULL,
    reward REAL NOT NULL,
    metrics TEXT NOT NULL,
    error TEXT,
    strategy TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_s REAL NOT NULL,
    curve TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS trials_key ON trials (key);
"""


INTEGER_METRICS = frozenset({"params", "flops", "seed", "epochs"})


def integer_metric(name: str, value: Any) -> Any:
    """Counts are stored as JSON numbers; they leave the store as integers."""
    if name in INTEGER_METRICS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class TrialRecord:
    number: int
    key: str
    architecture: Architecture
    status: str
    reward: float
    metrics: dict[str, float]
    error: str | None
    strategy: str
    started_at: float
    duration_s: float
    curve: tuple[float, ...] = ()  # the validation score after each epoch

    @property
    def fidelity(self) -> float:
        """The share of a full training this trial was planned at (below 1: a Hyperband rung)."""
        return float(self.metrics.get("fidelity", 1.0))

    def evaluation(self, cached: bool = True) -> Evaluation:
        return Evaluation(self.reward, self.status, dict(self.metrics), self.error, cached=cached, curve=self.curve)

    def flat(self) -> dict[str, Any]:
        """One flat row: number, status, reward, metrics, then the decisions."""
        row: dict[str, Any] = {
            "number": self.number,
            "key": self.key,
            "status": self.status,
            "reward": self.reward,
            **{k: integer_metric(k, v) for k, v in self.metrics.items()},
            "strategy": self.strategy,
            "duration_s": self.duration_s,
            "error": self.error or "",
            "curve": [round(v, 6) for v in self.curve],
        }
        row.update(self.architecture.to_dict())
        return row


def _read_only_error(err: sqlite3.DatabaseError) -> bool:
    text = str(err).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


class TrialStore:
    """SQLite-backed store of one run's trials.

    A write that finds the file locked by another process (a database browser holding a transaction) waits
    ``busy_seconds`` and tries again, with a warning each time, until it is committed: a finished child is
    never dropped for a lock."""

    busy_seconds = 30.0

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        """``read_only``: only read (``rlnas trials``, ``rlnas report``), which works in a read-only run
        directory too."""
        self.path = Path(path)
        try:
            if read_only:
                # immutable: a read-only folder cannot hold the WAL index a normal reader would create
                immutable = "&immutable=1" if not os.access(self.path.parent, os.W_OK) else ""
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro{immutable}", uri=True)
            else:
                self._db = sqlite3.connect(self.path, timeout=self.busy_seconds)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
            version = self.get_meta("schema_version")
        except sqlite3.DatabaseError as err:
            if _read_only_error(err):
                raise RunDirError(
                    f"cannot write to {self.path} ({err}): the run directory is read-only; make it writable "
                    f"(chmod -R u+w {self.path.parent}) or copy the run to a writable folder"
                ) from None
            raise RunDirError(
                f"{self.path} is not an rlnas trial store or is corrupted ({err}); "
                "move it away or start a new run directory"
            ) from None
        if version not in (None, "1", "2", str(SCHEMA_VERSION)):
            raise RunDirError(f"{self.path} has store schema {version}, this rlnas reads {SCHEMA_VERSION}")
        self._offset = 1 if version == "1" else 0  # row number - trial number
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(trials)")}
        self._curve = "curve" if "curve" in columns else "'[]'"  # stores before schema 3 have no curves
        if read_only:
            return
        if version is not None and version != str(SCHEMA_VERSION):
            self._upgrade(version)
        elif version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def _upgrade(self, version: str) -> None:
        with self._db:
            if version == "1":  # renumber the rows as the trials they hold (a sign flip keeps the keys unique)
                self._db.execute("UPDATE trials SET number = -number")
                self._db.execute("UPDATE trials SET number = -number - 1")
            if self._curve != "curve":
                self._db.execute("ALTER TABLE trials ADD COLUMN curve TEXT NOT NULL DEFAULT '[]'")
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        self._offset, self._curve = 0, "curve"

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TrialStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        def write() -> None:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

        self._patiently(write, f"record {key}")

    def _patiently(self, write: Callable[[], Any], what: str) -> Any:
        waited = 0.0
        while True:
            try:
                return write()
            except sqlite3.OperationalError as err:
                if "locked" not in str(err).lower() and "busy" not in str(err).lower():
                    raise
                waited += self.busy_seconds
                log.warning(
                    "%s is locked by another process (%s) for %.0f s now; rlnas waits to %s: close the program "
                    "that holds it (a database browser with unsaved changes?)",
                    self.path,
                    err,
                    waited,
                    what,
                )

    # -- trials ----------------------------------------------------------------------------------
    def append(
        self, arch: Architecture, evaluation: Evaluation, strategy: str, started_at: float | None = None
    ) -> TrialRecord:
        """Commit one finished trial and return its record (numbered from 0)."""
        started = time.time() if started_at is None else started_at
        duration = float(evaluation.metrics.get("duration_s", 0.0))
        number = self._patiently(lambda: self._insert(arch, evaluation, strategy, started, duration), "store a trial")
        return TrialRecord(
            number,
            arch.key,
            arch,
            evaluation.status,
            float(evaluation.reward),
            dict(evaluation.metrics),
            evaluation.error,
            strategy,
            started,
            duration,
            tuple(float(v) for v in evaluation.curve),
        )

    def _insert(
        self, arch: Architecture, evaluation: Evaluation, strategy: str, started: float, duration: float
    ) -> int:
        with self._db:
            number = int(self._db.execute("SELECT COALESCE(MAX(number) + 1, 0) FROM trials").fetchone()[0])
            self._db.execute(
                "INSERT INTO trials (number, key, architecture, status, reward, metrics, error, strategy, started_at,"
                " duration_s, curve) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    number,
                    arch.key,
                    arch.to_json(),
                    evaluation.status,
                    float(evaluation.reward),
                    json.dumps(dict(evaluation.metrics)),
                    evaluation.error,
                    strategy,
                    started,
                    duration,
                    json.dumps([float(v) for v in evaluation.curve]),
                ),
            )
        return number

    def __iter__(self) -> Iterator[TrialRecord]:
        for row in self._db.execute(
            "SELECT number, key, architecture, status, reward, metrics, error, strategy, started_at, duration_s,"
            f" {self._curve} FROM trials ORDER BY number"
        ):
            yield self._record(row)

    def _record(self, row: tuple[Any, ...]) -> TrialRecord:
        """A row as a record; a damaged row is a user error naming the trial and how to drop it."""
        try:
            metrics = json.loads(row[5])
            if not isinstance(metrics, dict):
                raise ValueError(f"metrics are {type(metrics).__name__}, not an object")
            curve = json.loads(row[10])
            if not isinstance(curve, list):
                raise ValueError(f"the curve is {type(curve).__name__}, not a list")
            return TrialRecord(
                int(row[0]) - self._offset,
                str(row[1]),
                Architecture.from_json(row[2]),
                str(row[3]),
                float(row[4]),
                metrics,
                row[6],
                str(row[7]),
                float(row[8]),
                float(row[9]),
                tuple(float(v) for v in curve),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            raise RunDirError(
                f"trial {row[0] - self._offset if isinstance(row[0], int) else row[0]} in {self.path} is damaged "
                f"({err}); "
                f"restore the file from a copy, or drop that trial with: sqlite3 {self.path} "
                f"'DELETE FROM trials WHERE number = {row[0]}'"
            ) from None

    def trials(self) -> list[TrialRecord]:
        return list(self)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def lookup(self, key: str) -> TrialRecord | None:
        for record in self:
            if record.key == key:
                return record
        return None

    def top_k(self, k: int = 1, by: str = "reward") -> list[TrialRecord]:
        done = [t for t in self if t.status == COMPLETE]
        full = [t for t in done if t.fidelity >= 1.0]
        done = full or done  # low-fidelity (Hyperband) results rank only when nothing was fully trained
        value = (lambda t: t.reward) if by == "reward" else (lambda t: float(t.metrics.get(by, float("-inf"))))
        return sorted(done, key=lambda t: (-value(t), t.number))[:k]

    def to_csv(self, path: str | Path) -> Path:
        rows = [{**t.flat(), "curve": json.dumps(list(t.curve))} for t in self]
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        out = Path(path)
        with out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return out


def pareto_front(records: list[TrialRecord], metric: str) -> list[TrialRecord]:
    """Completed trials not dominated in (validation score: higher, ``metric``: lower)."""
    points = [
        (r, score, float(r.metrics[metric]))
        for r in records
        if r.status == COMPLETE
        and metric in r.metrics
        and (score := val_score(r.metrics)) is not None
        and r.fidelity >= 1.0
    ]
    front = [
        r
        for r, score, cost in points
        if not any(s >= score and c <= cost and (s > score or c < cost) for _, s, c in points)
    ]
    return sorted(front, key=lambda r: r.metrics[metric])


def trial_line(record: TrialRecord) -> str:
    """One finished trial for the log: its figures first, then its decisions."""
    name = score_metric(record.metrics)
    figures = [f"reward {record.reward:.4f}"]
    if name is not None:
        figures.append(f"{name.replace('val_', 'proxy val ').replace('_', ' ')} {record.metrics[name]:.4f}")
    if "params" in record.metrics:
        figures.append(f"{int(record.metrics['params']):,} params")
    figures.append(f"{record.duration_s:.1f} s")
    error = f" ({record.error.splitlines()[0][:200]})" if record.error else ""
    return f"trial {record.number} {record.status}{error}: {', '.join(figures)} | {record.architecture.describe()}"
