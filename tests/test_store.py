from __future__ import annotations

import csv
import sqlite3
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


def test_rows_are_numbered_as_the_trials_and_old_stores_are_renumbered(tmp_path: Path, toy_space: SearchSpace) -> None:
    """Trial n is row n of trials.sqlite (the number a user repairs with sqlite3); a store written when rows
    counted from 1 reads the same trials, and is renumbered once it is opened for writing."""
    rng = np.random.default_rng(1)
    archs = [toy_space.sample(rng) for _ in range(3)]
    path = tmp_path / "t.sqlite"
    with TrialStore(path) as store:
        for i, arch in enumerate(archs):
            store.append(arch, Evaluation(reward=float(i), metrics={"val_accuracy": 0.5}), "random")
    with sqlite3.connect(path) as db:
        assert [row[0] for row in db.execute("SELECT number FROM trials ORDER BY number")] == [0, 1, 2]
        db.execute("UPDATE trials SET number = -number - 1")  # the schema 1 layout: rows from 1
        db.execute("UPDATE trials SET number = -number")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()
    with TrialStore(path, read_only=True) as store:
        assert [(r.number, r.reward) for r in store] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    with TrialStore(path) as store:
        assert [(r.number, r.reward) for r in store] == [(0, 0.0), (1, 1.0), (2, 2.0)]
        assert store.append(toy_space.sample(rng), Evaluation(reward=3.0), "random").number == 3
    with sqlite3.connect(path) as db:
        rows = list(db.execute("SELECT number, reward FROM trials ORDER BY number"))
        assert rows == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0)]
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    db.close()


def test_curves_are_stored_and_older_stores_gain_the_column(tmp_path: Path, toy_space: SearchSpace) -> None:
    """A trial's per-epoch validation curve round-trips; a schema 2 store (no curve column) reads with empty
    curves, read-only too, and gains the column once it is opened for writing."""
    rng = np.random.default_rng(2)
    path = tmp_path / "t.sqlite"
    with sqlite3.connect(path) as db:  # the schema 2 layout, written by rlnas before curves
        db.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE trials (number INTEGER PRIMARY KEY, key TEXT NOT NULL, architecture TEXT NOT NULL,"
            " status TEXT NOT NULL, reward REAL NOT NULL, metrics TEXT NOT NULL, error TEXT, strategy TEXT NOT NULL,"
            " started_at REAL NOT NULL, duration_s REAL NOT NULL);"
            "INSERT INTO meta VALUES ('schema_version', '2');"
        )
        old = toy_space.sample(rng)
        db.execute(
            "INSERT INTO trials VALUES (0, ?, ?, 'COMPLETE', 0.5, '{\"val_accuracy\": 0.5}', NULL, 'random', 0, 1)",
            (old.key, old.to_json()),
        )
    db.close()
    with TrialStore(path, read_only=True) as store:
        assert [(r.number, r.curve) for r in store] == [(0, ())]
    with TrialStore(path) as store:
        new = store.append(toy_space.sample(rng), Evaluation(0.9, curve=(0.5, 0.8, 0.9)), "random")
        assert new.curve == (0.5, 0.8, 0.9)
        assert [r.curve for r in store] == [(), (0.5, 0.8, 0.9)]
        assert store.trials()[1].evaluation().curve == (0.5, 0.8, 0.9)  # the cache answers with the curve
        store.to_csv(tmp_path / "t.csv")
    assert "[0.5, 0.8, 0.9]" in (tmp_path / "t.csv").read_text()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    db.close()


def test_a_store_locked_by_another_program_is_waited_for_and_the_trial_committed(
    tmp_path: Path, toy_space: SearchSpace, monkeypatch, caplog
) -> None:
    import threading

    monkeypatch.setattr(TrialStore, "busy_seconds", 0.2)
    path = tmp_path / "t.sqlite"
    arch = toy_space.sample(np.random.default_rng(0))
    with TrialStore(path) as store:
        other = sqlite3.connect(path, check_same_thread=False)  # e.g. a database browser with unsaved changes
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO meta (key, value) VALUES ('browser', 'edit')")
        release = threading.Timer(1.0, other.commit)
        release.start()
        record = store.append(arch, Evaluation(reward=0.5, metrics={"val_accuracy": 0.5}), "random")
        release.join()
        other.close()
        assert record.number == 0 and [r.architecture for r in store.trials()] == [arch]
    assert "is locked by another process" in caplog.text and "rlnas waits to store a trial" in caplog.text


def test_text_from_a_run_is_never_a_spreadsheet_formula_or_markup(tmp_path: Path, toy_space: SearchSpace) -> None:
    from openpyxl import load_workbook

    from rlnas.modelcard import _text
    from rlnas.report import write_excel

    payload = '=HYPERLINK("http://example.invalid","click")'
    with TrialStore(tmp_path / "t.sqlite") as store:
        store.append(
            toy_space.sample(np.random.default_rng(0)), Evaluation(reward=0.0, status=FAILED, error=payload), "random"
        )
        book = load_workbook(write_excel(store.trials(), tmp_path / "t.xlsx"))
    sheet = book["trials"]
    header = [c.value for c in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("error") + 1)
    assert cell.value == payload and cell.data_type == "s"
    assert _text("<img src=x onerror=alert(1)> | `x`") == "&lt;img src=x onerror=alert(1)&gt; &#124; &#96;x&#96;"
