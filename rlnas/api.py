"""The Python API: search your own data, resume and export runs, in a few calls.

::

    import rlnas
    data = rlnas.data.from_folder("photos/", image_size=32)    # or from_arrays(x, y), from_csv(path, target=...)
    result = rlnas.search(data, budget=40, run_dir="runs/photos")
    result.best, result.trials, result.export_dir, result.model

Progress goes to the ``rlnas`` loggers, to an optional ``callback(done, total, record)`` called after
every finished child, and to an optional ``on_epoch(architecture, epoch)`` called after every epoch of a child
in training (``epoch.epoch`` of ``epoch.epochs``, ``epoch.score`` its validation accuracy or R², ``epoch.train_loss``),
whatever the executor; an exception in a callback stops the search (finished trials stay stored). Nothing is
printed. Runs made from arrays in memory record the data's fingerprint:
``resume`` and ``export`` of such a run need the same data (``data=...``) and refuse any other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from rlnas.config import RunConfig, load_config
from rlnas.config.base import safe_load
from rlnas.data.core import Dataset
from rlnas.driver import EpochCallback, Progress, Search, SearchResult
from rlnas.errors import ConfigError, RunDirError
from rlnas.shipped import find_config
from rlnas.store import TrialRecord

if TYPE_CHECKING:
    from rlnas.predict import Predictor

ConfigLike = str | Path | Mapping[str, Any] | RunConfig | None
Overrides = Mapping[str, Any] | Sequence[str] | None
PYTHON_FLAGS = ("config=", "overrides=")  # how errors name the config and the overrides


@dataclass
class RunResult:
    """What a search (or resume) produced. ``model`` loads the exported network (None without export)."""

    run_dir: Path
    best: TrialRecord | None
    trials: list[TrialRecord]
    evaluations: int
    stop_reason: str
    seconds: float
    export_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # the export's metrics.json
    _predictor: Predictor | None = field(default=None, repr=False, compare=False)

    @property
    def model(self) -> nn.Module | None:
        if self.export_dir is None:
            return None
        from rlnas.exported import load_model

        return load_model(self.export_dir)

    @property
    def predictor(self) -> Predictor:
        """The exported model with its preprocessing (raw arrays, image files, table rows)."""
        if self.export_dir is None:
            raise RunDirError(f"{self.run_dir} has no export; run rlnas.export(run_dir) first")
        from rlnas.predict import Predictor

        if self._predictor is None:
            self._predictor = Predictor(self.export_dir)
        return self._predictor

    def predict(self, x: Any) -> Any:
        """Class indices (``predictor.class_names`` names them) or predicted values, for raw inputs."""
        return self.predictor.predict(x)

    def evaluate(self, x: Any, y: Any) -> dict[str, float]:
        """The exported model's accuracy (or R², MAE, RMSE) on raw inputs and their labels."""
        return self.predictor.evaluate(x, y)


def _override_list(overrides: Overrides) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    if isinstance(overrides, (str, bytes)) or not isinstance(overrides, Sequence):
        raise ConfigError(
            f"overrides={overrides!r}: give a mapping such as {{'training.epochs': 1}} or a list of "
            "'key=value' strings such as ['training.epochs=1']"
        )
    return [str(o) for o in overrides]


def _check_arguments(
    data: Any = None, run_dir: Any = None, callbacks: Mapping[str, Any] | None = None, **numbers: Any
) -> None:
    """The Python API's own errors for arguments of the wrong type, before anything is loaded or written."""
    for name, value in (callbacks or {}).items():
        if value is not None and not callable(value):
            raise ConfigError(f"{name}={value!r} is not callable; pass a function (or None)")
    if data is not None and not isinstance(data, Dataset):
        hint = f"rlnas.search(config={data!r})" if isinstance(data, (str, Path)) else "rlnas.data.from_arrays(x, y)"
        raise ConfigError(
            f"data={data!r} is not a dataset: pass one made by rlnas.data (from_folder, from_arrays, from_csv, "
            f"load_dataset), or leave data out and name the config, e.g. {hint}"
        )
    if run_dir is not None and not isinstance(run_dir, (str, Path)):
        raise ConfigError(f"run_dir={run_dir!r}: give a path (str or pathlib.Path)")
    for name, value in numbers.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{name}={value!r}: give a number")


def _sections(config: ConfigLike) -> dict[str, Any]:
    """The config's sections as written (so that a missing ``space`` can still follow the data)."""
    if config is None:
        return {}
    if isinstance(config, RunConfig):
        return config.model_dump(mode="json", by_alias=True)
    if isinstance(config, Mapping):
        return dict(config)
    if not isinstance(config, (str, Path)):
        raise ConfigError(
            f"config={config!r}: give a shipped config's name, a YAML file's path, a dict of sections or a RunConfig"
        )
    path = find_config(config, "config=")
    load_config(path, flags=PYTHON_FLAGS)  # a clear error for an invalid file
    return dict(safe_load(path.read_text()) or {})


def make_config(
    data: Dataset | None = None,
    config: ConfigLike = None,
    *,
    budget: int | None = None,
    minutes: float | None = None,
    strategy: str | None = None,
    seed: int | None = None,
    overrides: Overrides = None,
) -> RunConfig:
    """The run config of :func:`search`: ``config`` (a YAML file, a shipped config's name such as ``"table"``,
    sections, a RunConfig or the defaults),
    its dataset replaced by ``data``, then the keyword arguments and ``overrides`` (``{"training.epochs": 3}``
    or ``["training.epochs=3"]``). A config that names no space gets ``mlp`` for tables, ``cnn`` for images."""
    base = _sections(config)
    if data is not None:
        base["dataset"] = dict(data.description)
        if "space" not in base and not data.is_image:
            base["space"] = "mlp"
    items = _override_list(overrides)
    named = (("budget.evaluations", budget), ("budget.minutes", minutes), ("strategy.name", strategy), ("seed", seed))
    for key, value in named:
        if value is not None:
            items.append(f"{key}={json.dumps(value)}")
    return load_config(None, items, base=base, flags=PYTHON_FLAGS)


def _finish(search: Search, export: bool, data: Dataset | None) -> RunResult:
    try:
        outcome: SearchResult = search.run()
    finally:
        search.close()
    assert search.run_dir is not None
    result = RunResult(
        search.run_dir,
        outcome.best,
        _trials(search.run_dir),
        outcome.evaluations,
        outcome.stop_reason,
        outcome.seconds,
    )
    if export and search.config.export.enabled and outcome.best is not None:
        from rlnas.exporter import EXPORT_DIR, export_run

        result.metrics = export_run(search.run_dir, data=data)
        result.export_dir = search.run_dir / EXPORT_DIR
    return result


def _check_run_dir(run_dir: Any) -> None:
    if not isinstance(run_dir, (str, Path)):
        raise ConfigError(f"run_dir={run_dir!r}: give the path of a run directory (str or pathlib.Path)")


def _trials(run_dir: Path) -> list[TrialRecord]:
    from rlnas.rundir import open_run

    _, store = open_run(run_dir)
    with store:
        return store.trials()


def search(
    data: Dataset | None = None,
    config: ConfigLike = None,
    *,
    budget: int | None = None,
    minutes: float | None = None,
    strategy: str | None = None,
    seed: int | None = None,
    run_dir: str | Path | None = None,
    overrides: Overrides = None,
    export: bool = True,
    callback: Progress | None = None,
    on_epoch: EpochCallback | None = None,
) -> RunResult:
    """Search ``data`` (a :class:`rlnas.data.Dataset`; default: the config's dataset) and, unless
    ``export=False`` or ``export.enabled`` is false, retrain and export the best architecture."""
    _check_arguments(
        data, run_dir, {"callback": callback, "on_epoch": on_epoch}, budget=budget, minutes=minutes, seed=seed
    )
    run_config = make_config(
        data, config, budget=budget, minutes=minutes, strategy=strategy, seed=seed, overrides=overrides
    )
    return _finish(Search(run_config, run_dir, progress=callback, data=data, on_epoch=on_epoch), export, data)


def resume(
    run_dir: str | Path,
    data: Dataset | None = None,
    *,
    budget: int | None = None,
    minutes: float | None = None,
    overrides: Overrides = None,
    export: bool = True,
    callback: Progress | None = None,
    on_epoch: EpochCallback | None = None,
) -> RunResult:
    """Continue a killed or interrupted search (or extend a finished one with a larger ``budget`` or
    ``minutes``, both counting what was spent before); ``data`` is required for runs made from arrays in
    memory and must be the same data."""
    _check_arguments(data, None, {"callback": callback, "on_epoch": on_epoch}, budget=budget, minutes=minutes)
    _check_run_dir(run_dir)
    items = _override_list(overrides)
    items += [
        f"{key}={value}"
        for key, value in (("budget.evaluations", budget), ("budget.minutes", minutes))
        if value is not None
    ]
    return _finish(Search.resume(run_dir, items, progress=callback, data=data, on_epoch=on_epoch), export, data)


def export(run_dir: str | Path, data: Dataset | None = None, epochs: int | None = None) -> dict[str, Any]:
    """Retrain the best architecture of a run and write ``RUN/export``; returns its metrics."""
    from rlnas.exporter import export_run

    _check_arguments(data, epochs=epochs)
    _check_run_dir(run_dir)
    if epochs is not None and not isinstance(epochs, int):
        raise ConfigError(f"epochs={epochs!r}: give a whole number of epochs")
    return export_run(run_dir, epochs=epochs, data=data)
