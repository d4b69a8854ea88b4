"""Crash-safe resume: a search killed with SIGKILL (or interrupted) continues without losing or retraining."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import TINY, command, rlnas


def _trials(run: Path) -> list[tuple[int, str, str]]:
    db = sqlite3.connect(f"{(run / 'trials.sqlite').resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [tuple(row) for row in db.execute("SELECT number, key, metrics FROM trials ORDER BY number")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def _start(run: Path, budget: int, *extra: str) -> subprocess.Popen[str]:
    args = [*command(), "-q", "search", *TINY, "--run-dir", str(run), "--budget", str(budget), "--no-export", *extra]
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}  # a search that hangs can be made to show where
    return subprocess.Popen(args, cwd=run.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_trials(run: Path, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if (run / "trials.sqlite").exists() and len(_trials(run)) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the search made no progress")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_resume_after_sigkill_keeps_every_trial_and_honours_the_budget(tmp_path: Path, workers: str) -> None:
    run = tmp_path / "run"
    proc = _start(run, 10, "--workers", workers)
    _wait_for_trials(run, 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, err = proc.communicate(timeout=120)  # the killed search's workers end too, and quietly
    assert "Traceback" not in err, err
    before = _trials(run)
    assert 3 <= len(before) < 10

    result = rlnas("resume", str(run), "--no-export", "--workers", workers, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = _trials(run)
    assert len(after) == 10  # the budget exactly, counting the trials from before the kill
    assert after[: len(before)] == before  # nothing lost, nothing retrained or renumbered
    assert len({key for _, key, _ in after}) == 10  # no architecture trained twice
    assert (run / "controller" / "ppo.zip").is_file()

    from rlnas.mirror import load_study

    study = load_study(run)  # the Optuna mirror catches up with the store on resume
    assert study is not None and [t.number for t in study.trials] == list(range(10))
    if workers == "2":
        return  # extending the budget is the same with one worker
    seconds = json.loads((run / "run.json").read_text())["search_seconds"]

    again = rlnas("resume", str(run), "--no-export", "--budget", "12", cwd=tmp_path)  # extend the budget
    assert again.returncode == 0, again.stderr
    assert len(_trials(run)) == 12 and _trials(run)[:10] == after
    assert json.loads((run / "run.json").read_text())["search_seconds"] > seconds  # added up, not restarted
    finished = rlnas("resume", str(run), "--no-export", cwd=tmp_path)  # nothing left to do
    assert finished.returncode == 0 and "12/12" in finished.stderr.replace(".0/", "/")


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _start(run, budget=50)
    _wait_for_trials(run, 2, proc)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:  # hung: faulthandler (PYTHONFAULTHANDLER) prints every thread's stack
        proc.send_signal(signal.SIGABRT)
        _, stderr = proc.communicate()
        raise AssertionError(f"the search did not stop within 300 s of Ctrl-C:\n{stderr}") from None
    assert proc.returncode == 130, stderr  # 0 with "search finished": the Ctrl-C was lost
    assert f"rlnas resume {run}" in stderr and "Traceback" not in stderr and "controller is checkpointed" in stderr
    assert len(_trials(run)) >= 2 and (run / "controller" / "ppo.zip").is_file()


def test_resume_refuses_an_incompatible_change(tmp_path: Path) -> None:
    result = rlnas("search", *TINY, "--run-dir", "run", "--budget", "2", "--no-export", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    refused = rlnas("resume", "run", "--set", "training.epochs=9", cwd=tmp_path)
    assert refused.returncode == 2 and "training.epochs" in refused.stderr and "new run" in refused.stderr
    assert rlnas("resume", "nowhere", cwd=tmp_path).returncode == 2


def test_kills_at_random_moments_lose_no_trial_and_keep_the_budget(tmp_path: Path) -> None:
    """Fault injection: SIGKILL a search, then its resumes, at random moments (start-up, checkpoint loads,
    trainings, store commits, controller and kept-child writes); every finished trial survives unchanged,
    none is trained twice, and the last resume ends at the budget exactly."""
    rng = random.Random(12)
    run, budget = tmp_path / "run", 16
    proc = _start(run, budget, "--set", "logging.keep_children=true")
    _wait_for_trials(run, 1, proc)  # a run directory exists from here on
    kept: list[tuple[int, str, str]] = []
    resume = [*command(), "-q", "resume", str(run), "--no-export"]
    for _ in range(6):
        time.sleep(rng.uniform(0.0, 4.0))
        proc.kill()
        _, stderr = proc.communicate()
        assert proc.returncode in (-signal.SIGKILL, 0), stderr  # killed, or done before the kill
        now = _trials(run)
        assert now[: len(kept)] == kept  # nothing lost, nothing rewritten
        kept = now
        proc = subprocess.Popen(resume, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    final = _trials(run)
    assert final[: len(kept)] == kept
    assert len(final) == budget and len({key for _, key, _ in final}) == budget


def test_search_time_adds_up_over_two_interrupts_and_resumes(tmp_path: Path) -> None:
    """run.json's search_seconds is the wall time of every session, also of those stopped by Ctrl-C."""
    from rlnas.driver import Search
    from tests.conftest import tiny_config

    def stop_at(count: int | None) -> Any:
        def progress(done: int, total: int, record: Any) -> None:
            if count is not None and done >= count:
                raise KeyboardInterrupt

        return progress

    run, sessions = tmp_path / "run", []
    for stop in (2, 4, None):
        search = (
            Search(tiny_config("budget.evaluations=6"), run, progress=stop_at(stop))
            if not sessions
            else Search.resume(run, progress=stop_at(stop))
        )
        started = time.monotonic()
        try:
            search.run()
        except KeyboardInterrupt:
            assert stop is not None
        sessions.append(time.monotonic() - started)
        search.close()
    summary = json.loads((run / "run.json").read_text())
    assert summary["evaluations"] == 6
    assert sum(sessions) - 0.5 <= summary["search_seconds"] <= sum(sessions)  # not just the last session's
