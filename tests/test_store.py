from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from rlnas.errors import RunDirError
from rlnas.evaluation import FAILED, Evaluation
from rlnas.space import SearchSpace
from rlnas.store import TrialStore


def test_append_iterate_top_k_and_csv(tmp_path: Path, toy_space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    archs = [toy_space.sample(rng) for _ in range(5)]
    with TrialStore(tmp_path / "t.sqlite") as store:
        for i, arch in enumerate(archs):
            ev = Evaluation(reward=i / 10, metrics={"val_accuracy": i / 10, "params": 100.0 * i})
            assert store.append(arch, ev, "random").number == i
        store.append(toy_space.sample(rng), Evaluation(reward=9.0, status=FAILED, error="boom"), "random")
    with TrialStore(tmp_path / "t.sqlite") as store:  # reopened: everything is there
        records = store.trials()
        assert [r.architecture for r in records[:5]] == archs
        assert records[5].status == FAILED and records[5].error == "boom"
        assert [r.number for r in store.top_k(2)] == [4, 3]  # failed trials never rank
        assert store.lookup(archs[2].key).reward == pytest.approx(0.2)
        rows = list(csv.DictReader(store.to_csv(tmp_path / "t.csv").open()))
    assert len(rows) == 6 and rows[1]["params"] == "100" and "num_layers" in rows[0]  # counts stay integers


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "trials.sqlite"
    bogus.write_bytes(b"this is not a database, just some text " * 50)
    with pytest.raises(RunDirError, match="not an rlnas trial store"):
        TrialStore(bogus)
