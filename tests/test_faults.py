"""Faults and careless input: non-finite numbers, concurrent use of a run, edited or damaged runs, SIGTERM,
half-written exports. Each ends in a clear message (exit 2 from the CLI) or a FAILED trial, never a lost one."""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlnas import atomic
from rlnas.cli import main
from rlnas.config import ObjectiveConfig
from rlnas.driver import Search
from rlnas.errors import ConfigError, RunDirError
from rlnas.evaluation import FAILED, SyntheticEvaluator
from rlnas.evaluation.base import Evaluation
from rlnas.evaluation.objective import Objective
from rlnas.evaluation.trainer import TrainingEvaluator
from rlnas.exporter import export_run
from rlnas.prepare import prepare
from rlnas.rundir import default_run_dir, open_run
from rlnas.space.core import Architecture
from rlnas.store import TrialStore
from tests.conftest import cli, tiny_config
from tests.test_cli import rlnas
from tests.test_resume import _start, _trials, _wait_for_trials


class _SometimesNaN(SyntheticEvaluator):
    """Every third child reports a NaN reward, every fifth an infinite latency."""

    def evaluate(self, arch: Architecture) -> Evaluation:
        result = super().evaluate(arch)
        if self.calls % 3 == 0:
            return Evaluation(float("nan"), metrics=result.metrics)
        if self.calls % 5 == 0:
            return Evaluation(result.reward, metrics={**result.metrics, "latency_ms": math.inf})
        return result


def test_non_finite_results_become_failed_trials_and_the_search_goes_on(tmp_path: Path) -> None:
    config = tiny_config("strategy.name=random", "budget.evaluations=12", "logging.tensorboard=false")
    space = prepare(config).space
    search = Search(config, tmp_path / "run", evaluator=_SometimesNaN(space), space=space)
    result = search.run()
    trials = search.store.trials()
    search.close()
    assert result.evaluations == len(trials) == 12
    failed = [t for t in trials if t.status == FAILED]
    assert len(failed) == 6  # calls 3, 5, 6, 9, 10, 12
    assert all("non-finite" in (t.error or "") for t in failed)
    assert all(math.isfinite(t.reward) for t in trials)
    assert all(math.isfinite(v) for t in trials for v in t.metrics.values())
    assert all(t.reward == config.objective.failure_reward for t in failed)


@pytest.mark.parametrize(
    "override", ["objective.failure_reward=.nan", "objective.lambda=.inf", "training.epochs=1e999"]
)
def test_non_finite_config_values_are_refused_by_name(tmp_path: Path, override: str, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = _cli(capsys, "search", "--set", override, "--run-dir", "r")
    assert code == 2 and override.split("=")[0] in err
    assert not (tmp_path / "r").exists()


def test_a_run_in_use_is_locked_and_default_names_never_collide(tmp_path: Path) -> None:
    config = tiny_config("strategy.name=random", "budget.evaluations=2", "logging.tensorboard=false")
    search = Search(config, tmp_path / "run")
    with pytest.raises(RunDirError, match="in use by another rlnas process"):
        Search.resume(tmp_path / "run")
    search.run()
    search.close()
    Search.resume(tmp_path / "run").close()  # released: resumable again
    named = tiny_config(f"runs_root={tmp_path / 'runs'}")
    first, second = default_run_dir(named), default_run_dir(named)
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.startswith("digits__cnn__ppo__0__")  # the data first: a run says what it searched
    photos = tiny_config(f"runs_root={tmp_path / 'runs'}", "dataset.name=folder", "dataset.path='my photos/'")
    assert default_run_dir(photos).name.startswith("my_photos__cnn__ppo__0__")


def test_damaged_or_edited_runs_are_refused_with_the_reason(tmp_path: Path) -> None:
    config = tiny_config("strategy.name=random", "budget.evaluations=2", "logging.tensorboard=false")
    search = Search(config, tmp_path / "run")
    search.run()
    search.close()
    edited = (tmp_path / "run" / "config.yaml").read_text().replace("seed: 0", "seed: 7")
    (tmp_path / "run" / "config.yaml").write_text(edited)
    with pytest.raises(ConfigError, match=r"seed: 0 -> 7"):
        Search.resume(tmp_path / "run")
    (tmp_path / "run" / "trials.sqlite").write_bytes(b"")
    with pytest.raises(RunDirError, match="empty"):
        open_run(tmp_path / "run")


def test_cli_refuses_flags_that_resume_would_ignore_and_bad_run_dirs(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    code, err = _cli(capsys, "search", "--run-dir", "afile")
    assert code == 2 and "afile is a file" in err
    code, err = _cli(capsys, "search", "--resume", "somerun", "--seed", "4", "--strategy", "random")
    assert code == 2 and "--seed, --strategy cannot change it" in err


def test_sigterm_stops_like_ctrl_c_and_the_run_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _start(run, budget=50)
    _wait_for_trials(run, 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "terminated (SIGTERM)" in stderr and f"rlnas resume {run}" in stderr and "Traceback" not in stderr
    done = len(_trials(run))
    resumed = rlnas("resume", str(run), "--no-export", "--budget", str(done + 1), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len(_trials(run)) == done + 1


def test_an_interrupted_export_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "export"
    atomic.replace_dir(lambda d: (d / "model.pt").write_text("old"), target)

    def half(folder: Path) -> None:
        (folder / "model.pt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.replace_dir(half, target)
    assert (target / "model.pt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # nothing left beside it
    atomic.write_text(tmp_path / "a.json", "{}")
    assert (tmp_path / "a.json").read_text() == "{}" and not list(tmp_path.glob(".*tmp"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tiny_config(
        "strategy.name=random", "budget.evaluations=2", "logging.tensorboard=false", "export.formats=[]"
    )
    run = tmp_path_factory.mktemp("faults") / "run"
    search = Search(config, run)
    search.run()
    search.close()
    export_run(run)
    return run


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code, _, err = cli(capsys, *argv)
    assert "Traceback" not in err
    return code, err


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda e: (e / "model.pt").write_bytes(b""), "empty, truncated or not a model file"),
        (lambda e: (e / "model.pt").write_bytes((e / "model.pt").read_bytes()[:700]), "truncated"),
        (lambda e: (e / "model.pt").write_bytes(bytes(range(256)) * 8), "refused it"),
        (lambda e: (e / "model.pt").write_bytes(pickle.dumps({"x": _RunsCode()}, protocol=2)), "never unpickles"),
        (lambda e: (e / "architecture.json").unlink(), "architecture.json is missing"),
        (lambda e: (e / "architecture.json").write_text("{oops"), "architecture.json cannot be read"),
    ],
)
def test_damaged_exports_are_refused_in_one_line(exported: Path, tmp_path: Path, capsys, damage, message) -> None:
    export = tmp_path / "export"
    shutil.copytree(exported / "export", export)
    damage(export)
    code, err = _cli(capsys, "evaluate", str(export))
    assert code == 2 and message in err and "rlnas export RUN" in err
    assert "this must never run" not in capsys.readouterr().out


def test_a_damaged_trial_row_is_named_and_can_be_dropped(exported: Path, tmp_path: Path, capsys) -> None:
    """...and the refused resume releases the run's lock at once, not when its half-built search is freed
    (here the kept traceback holds it, as a logged error or an interactive session would)."""
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    with sqlite3.connect(run / "trials.sqlite") as db:
        db.execute("UPDATE trials SET metrics = '{oops' WHERE number = 1")
    for argv in (["trials", str(run)], ["resume", str(run), "--no-export"], ["report", str(run)]):
        code, err = _cli(capsys, *argv)
        assert code == 2 and "trial 1 in" in err and "DELETE FROM trials WHERE number = 1" in err
    with pytest.raises(RunDirError, match="trial 1 in") as refused:
        Search.resume(run)
    assert refused.traceback  # still alive while the next resume takes the lock
    with sqlite3.connect(run / "trials.sqlite") as db:
        db.execute("DELETE FROM trials WHERE number = 1")
    code, err = _cli(capsys, "resume", str(run), "--no-export", "--budget", "2")
    assert code == 0, err
    _, store = open_run(run)
    with store:
        assert len(store) == 2 and store.trials()[0].number == 0  # trial 0 kept, one new trial in place of 1


def test_outputs_and_spaces_are_checked_before_any_work(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    table = str(tmp_path / "table.csv")  # never read: the outputs are checked first
    for flag, value, message in (
        ("--json", "adir", "is a folder; give a file name"),
        ("--plot", "missing/curves.png", "the folder missing does not exist"),
    ):
        code, err = _cli(capsys, "benchmark", "--table", table, flag, value)
        assert code == 2 and message in err
    for override, message in (
        ("space.depth=[1000000]", "at most 64 layers"),
        (f"space.per_layer.filters={list(range(1, 300))}".replace(" ", ""), "at most 256"),
    ):
        code, err = _cli(capsys, "search", "--set", override, "--run-dir", "r")
        assert code == 2 and message in err and "with the --set overrides" in err
        assert not (tmp_path / "r").exists()
    single = ["space.depth=[1]", "space.per_layer.filters=[8]", "space.per_layer.kernel_size=[3]"]
    single += [
        "space.per_layer.activation=[relu]",
        "space.per_layer.pooling=[none]",
        "space.per_layer.batch_norm=[false]",
    ]
    single += ["space.head.hidden_units=[16]", "space.head.dropout=[0.0]", "space.training.learning_rate=[0.001]"]
    code, err = _cli(capsys, "search", *[x for o in single for x in ("--set", o)], "--run-dir", "one", "--no-export")
    assert code == 2 and "holds a single architecture" in err and "--strategy random" in err


def test_one_worker_trains_with_threads_per_worker_and_restores_torch(monkeypatch) -> None:
    import torch

    from rlnas.evaluation import executors as execution

    seen: list[int] = []
    monkeypatch.setattr(execution, "evaluate", lambda *a, **k: seen.append(torch.get_num_threads()) or Evaluation(1.0))
    before = torch.get_num_threads()
    executor = execution.InProcess(evaluator=None, threads=1)  # type: ignore[arg-type]
    executor.submit(execution.Job("k", None, 1.0))  # type: ignore[arg-type]
    executor.wait()
    assert seen == [1] and torch.get_num_threads() == before


def test_threads_per_worker_auto_leaves_the_cores_other_processes_use_to_them(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """``execution.threads_per_worker=auto``: each child trains with the cores free when it starts; other
    runnable threads (Linux's /proc/loadavg counts them, the caller included) keep theirs, at least 1 is left."""
    import torch

    from rlnas.evaluation import executors as execution

    monkeypatch.setattr(execution, "cores", lambda: 8)
    loadavg = tmp_path / "loadavg"
    for running, free in (("1", 8), ("4", 5), ("8", 1), ("40", 1)):
        loadavg.write_text(f"0.52 0.58 0.59 {running}/467 12345\n")
        assert execution.free_cores(loadavg) == free
    assert execution.free_cores(tmp_path / "missing") == 8
    seen: list[int] = []
    monkeypatch.setattr(execution, "free_cores", lambda: 3)
    monkeypatch.setattr(execution, "evaluate", lambda *a, **k: seen.append(torch.get_num_threads()) or Evaluation(1.0))
    executor = execution.InProcess(evaluator=None, threads="auto")  # type: ignore[arg-type]
    executor.submit(execution.Job("k", None, 1.0))  # type: ignore[arg-type]
    executor.wait()
    assert seen == [3]
    assert tiny_config("execution.threads_per_worker=auto").execution.threads_per_worker == "auto"
    monkeypatch.setattr(execution, "free_cores", lambda: 1)
    monkeypatch.setattr(execution, "_torch_threads", lambda: 8)
    with caplog.at_level("WARNING", logger="rlnas.evaluation.executors"):
        execution.make_executor(tiny_config(), SyntheticEvaluator(prepare(tiny_config()).space), None)  # type: ignore[arg-type]
        assert not caplog.text  # no torch threads in an evaluator that does not train
        trainer = prepare(tiny_config()).trainer
        execution.make_executor(tiny_config(), TrainingEvaluator(trainer, Objective(ObjectiveConfig(), 1.0), 0), None)  # type: ignore[arg-type]
    assert "7 of the 8 cores are busy" in caplog.text and "threads_per_worker=auto" in caplog.text
    with pytest.raises(ConfigError, match="threads_per_worker"):
        tiny_config("execution.threads_per_worker=0")


def test_a_full_disk_stops_the_search_cleanly_and_it_resumes_later(tmp_path: Path, monkeypatch) -> None:
    from rlnas.errors import DiskFullError
    from rlnas.store import TrialStore

    config = tiny_config("strategy.name=random", "budget.evaluations=5", "logging.tensorboard=false")
    real_append, calls = TrialStore.append, []

    def append(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(TrialStore, "append", append)
    search = Search(config, tmp_path / "run")
    with pytest.raises(DiskFullError, match="free some space, then `rlnas resume"):
        search.run()
    search.close()
    monkeypatch.setattr(TrialStore, "append", real_append)
    _, store = open_run(tmp_path / "run")
    with store:
        assert len(store) == 2  # the two committed trials
    resumed = Search.resume(tmp_path / "run")
    resumed.run()
    assert len(resumed.store) == 5
    resumed.close()


def test_a_search_killed_during_its_set_up_can_be_started_again_in_the_same_folder(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    config = tiny_config("strategy.name=random", "budget.evaluations=2", "logging.tensorboard=false")
    run = tmp_path / "run"
    real_set_meta = TrialStore.set_meta

    def killed_on_config(self: TrialStore, key: str, value: str) -> None:
        if key == "config":
            raise KeyboardInterrupt  # the moment before the run is complete
        real_set_meta(self, key, value)

    monkeypatch.setattr(TrialStore, "set_meta", killed_on_config)
    with pytest.raises(KeyboardInterrupt):
        Search(config, run)
    monkeypatch.setattr(TrialStore, "set_meta", real_set_meta)
    assert (run / "space.json").is_file() and (run / "trials.sqlite").is_file()
    for argv in (["resume", str(run)], ["trials", str(run)]):
        code, err = _cli(capsys, *argv)
        assert code == 2 and "stopped while it was being set up" in err and f"--run-dir {run}" in err
    search = Search(config, run)  # taken over: the same folder, started afresh
    assert search.run().evaluations == 2
    search.close()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "space.json").write_text("{}")
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(RunDirError, match="already exists and is not empty"):
        Search(config, tmp_path / "mine")  # a folder with anything else in it is never cleared
    assert (tmp_path / "mine" / "notes.txt").is_file()
    # only names rlnas also uses, but the user's files: a folder rlnas did not mark is never taken over
    users = tmp_path / "users"
    (users / "tensorboard").mkdir(parents=True)
    (users / "tensorboard" / "events.out.tfevents.1.mine").write_text("the user's events")
    (users / "config.yaml").write_text("seed: 1\n")
    (users / "dataset.json").write_text("{}")
    with pytest.raises(RunDirError, match="already exists and is not empty"):
        Search(config, users)
    assert sorted(p.name for p in users.rglob("*")) == [
        "config.yaml",
        "dataset.json",
        "events.out.tfevents.1.mine",
        "tensorboard",
    ]


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` made read-only: by its mode bits, or as root (whom mode bits do not stop) by a read-only
    bind mount over it."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root without permission to mount: cannot make a read-only folder ({mounted.stderr!r})")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True, capture_output=True)


def test_a_read_only_run_can_be_read_and_writing_it_says_why_not(exported: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    with _read_only(run):
        with pytest.raises(OSError):
            (run / "probe").write_text("")
        code = main(["trials", str(run), "--json"])
        out, err = capsys.readouterr()
        assert code == 0 and len(json.loads(out)) == 2, err
        code, err = _cli(capsys, "resume", str(run), "--no-export")
        assert code == 2 and "read-only" in err and "writable" in err and "corrupted" not in err
        code, err = _cli(capsys, "report", str(run), "--out", str(tmp_path / "report"))
        assert code == 0, err
    assert (tmp_path / "report" / "index.html").is_file()


def test_a_broken_pipe_inside_rlnas_is_an_error_not_a_closed_terminal(monkeypatch, capsys) -> None:
    """Only a reader that went away from standard output ends a command quietly with 0 (``| head``); a
    BrokenPipeError from rlnas's own pipes (a worker's) is an error with exit 1 and a message."""
    from rlnas import cli

    def broken(args):  # type: ignore[no-untyped-def]
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_config", broken)
    assert cli.main(["config"]) == 1
    assert "broken pipe inside rlnas" in capsys.readouterr().err


SWAP_KILLED = """
import os, signal, sys
from pathlib import Path
from rlnas import atomic

def build(folder):
    (folder / "model.pt").write_text("new")
    if sys.argv[2] == "build":
        os.kill(os.getpid(), signal.SIGKILL)

replace = os.replace
def first_rename_then_die(src, dst):
    replace(src, dst)
    if str(src).endswith("export"):  # export -> .export.<pid>.old done, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[2] == "swap":
    os.replace = first_rename_then_die
atomic.replace_dir(build, Path(sys.argv[1]) / "export")
"""


@pytest.mark.parametrize("moment", ["build", "swap"])
def test_a_kill_during_an_export_swap_leaves_a_whole_export(tmp_path: Path, moment: str) -> None:
    """A kill while the new export is built leaves the old one; a kill between the swap's two renames leaves
    no ``export/`` for a moment, and the next reader (or the run's next lock) completes the swap. The run's
    next lock also removes the temporary files of killed writes."""
    from rlnas.exported import _model_file
    from rlnas.rundir import RunLock

    run = tmp_path / "run"
    atomic.replace_dir(lambda folder: (folder / "model.pt").write_text("old"), run / "export")
    script = tmp_path / "swap.py"
    script.write_text(SWAP_KILLED)
    killed = subprocess.run([sys.executable, str(script), str(run), moment], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = sorted(p.name for p in run.iterdir())
    assert any(n.endswith(".new") for n in left)
    if moment == "swap":
        assert "export" not in left and any(n.endswith(".old") for n in left)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run / f".config.yaml.{gone.pid}.tmp").write_text("half a file")  # a killed write's temporary file
    assert _model_file(run).read_text() == ("new" if moment == "swap" else "old")
    RunLock(run).release()
    assert sorted(p.name for p in run.iterdir()) == [".lock", "export"]
    assert [p.name for p in (run / "export").iterdir()] == ["model.pt"]


def _enospc(path: object) -> OSError:
    import errno

    return OSError(errno.ENOSPC, "No space left on device", str(path))


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny search with kept children and an export (ONNX left out: it is the slow format)."""
    from tests.test_cli import TINY

    run = tmp_path_factory.mktemp("kept") / "run"
    overrides = ["strategy.name=random", "logging.tensorboard=false", "logging.keep_children=true"]
    overrides += ["export.formats=[pt2]", "export.epochs=1"]
    code = main(
        ["-q", "search", *TINY, "--run-dir", str(run), "--budget", "2", *[a for o in overrides for a in ("--set", o)]]
    )
    assert code == 0 and (run / "export" / "model.pt2").is_file()
    return run


@pytest.mark.parametrize("site", ["kept child", "export weights", "export card", "export pt2"])
def test_a_full_disk_at_each_write_site_is_one_line_and_keeps_the_work(
    kept_run: Path, tmp_path: Path, monkeypatch, capsys, site: str
) -> None:
    """ENOSPC where a kept child is saved, or where each file of an export is written: exit 1 with one line,
    the committed trials and the previous export kept, nothing half-written left behind."""
    run = tmp_path / "run"
    shutil.copytree(kept_run, run)
    before = (run / "export" / "model.pt").read_bytes()
    real_write_bytes, real_write_text = atomic.write_bytes, Path.write_text

    def write_bytes(path, data):  # type: ignore[no-untyped-def]
        name = Path(path).name
        if (
            (site == "kept child" and Path(path).parent.name == "children")
            or (site == "export weights" and name == "model.pt")
            or (site == "export pt2" and name == "model.pt2")
        ):
            raise _enospc(path)
        return real_write_bytes(path, data)

    def write_text(self, data, *args, **kwargs):  # type: ignore[no-untyped-def]
        if site == "export card" and self.name == "README.md":
            raise _enospc(self)
        return real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(atomic, "write_bytes", write_bytes)
    monkeypatch.setattr(Path, "write_text", write_text)
    capsys.readouterr()
    code = main(["-q", "resume", str(run), "--budget", "4"] if site == "kept child" else ["-q", "export", str(run)])
    err = capsys.readouterr().err
    assert code == 1, err
    errors = [line for line in err.splitlines() if "error" in line.lower() or "space" in line]
    assert "Traceback" not in err and len(errors) == 1 and "error: no space left for" in errors[0], err
    _, store = open_run(run)
    with store:
        assert len(store) == 2  # the trials committed before are all there
    assert (run / "export" / "model.pt").read_bytes() == before  # the previous export is whole
    assert not [p.name for p in run.iterdir() if p.name.endswith((".tmp", ".new", ".old"))]
    monkeypatch.undo()
    if site == "kept child":
        code = main(["-q", "resume", str(run), "--budget", "3", "--no-export"])
        assert code == 0
        with open_run(run)[1] as store:
            assert len(store) == 3


SETUP_FILES = ("space.json", "dataset.json", "config.yaml")  # written while the run directory is set up


@pytest.mark.parametrize("site", [*SETUP_FILES, "ppo.zip", "run.json", "trial store"])
def test_a_full_disk_at_each_write_site_of_a_search_is_one_line_and_loses_nothing(
    tmp_path: Path, monkeypatch, capsys, site: str
) -> None:
    """ENOSPC at every file a search writes (every atomic write goes through ``atomic.open_atomic``: the run's
    files at set-up, the controller checkpoint, the summary) and at the trial store: exit 1 with one line, no
    temporary file left, and the run finishes with every trial, resumed (or, stopped during its set-up, started
    again by the same command)."""
    from tests.test_cli import TINY

    run = tmp_path / "run"
    args = ["-q", "search", *TINY, "--run-dir", str(run), "--budget", "2", "--no-export"]
    args += ["--set", "logging.tensorboard=false"]
    real_open, hit = atomic.open_atomic, []

    @contextlib.contextmanager
    def open_atomic(path, *a, **k):  # type: ignore[no-untyped-def]
        if Path(path).name == site and not hit:
            hit.append(path)
            raise _enospc(path)
        with real_open(path, *a, **k) as fh:
            yield fh

    def insert(*a, **k):  # type: ignore[no-untyped-def]
        hit.append("store")
        raise sqlite3.OperationalError("database or disk is full")

    if site == "trial store":
        monkeypatch.setattr(TrialStore, "_insert", insert)
    else:
        monkeypatch.setattr(atomic, "open_atomic", open_atomic)
    code = main(args)
    err = capsys.readouterr().err
    assert hit and code == 1, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert "Traceback" not in err and len(errors) == 1 and "error: no space left for" in errors[0], err
    assert not [p.name for p in run.rglob("*") if p.name.endswith((".tmp", ".new", ".old"))]
    monkeypatch.undo()
    again = main(args) if site in SETUP_FILES else main(["-q", "resume", str(run), "--no-export"])
    assert again == 0, capsys.readouterr().err
    with open_run(run)[1] as store:
        assert len(store) == 2


def test_a_run_dir_named_with_url_characters_keeps_its_mirror_and_a_damaged_mirror_never_stops_a_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rlnas.mirror import load_study

    run = tmp_path / "runs" / "a?b#c%d e"
    config = tiny_config(
        "strategy.name=random", "budget.evaluations=2", "logging.tensorboard=false", "export.enabled=false"
    )
    first = Search(config, run)
    first.run()
    first.close()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a?b#c%d e"]  # the mirror did not land beside
    study = load_study(run)
    assert study is not None and len(study.trials) == 2
    (run / "optuna.sqlite3").write_bytes(b"not a database " * 100)
    resumed = Search.resume(run, ["budget.evaluations=3"])
    resumed.run()
    resumed.close()
    assert len(_trials(run)) == 3 and "the Optuna mirror" in caplog.text and "cannot be opened" in caplog.text


@pytest.mark.parametrize(
    ("file", "content", "command", "message"),
    [
        ("export/architecture.json", '{"input_shape": [1, 8, 8]}', "predict", "missing or wrong: architecture, family"),
        (
            "export/architecture.json",
            '{"architecture": {}, "family": "cnn", "input_shape": 3}',
            "evaluate",
            "input_shape",
        ),
        ("dataset.json", '{"fingerprint": 1}', "resume", "dataset.json is damaged"),
        ("dataset.json", "[1, 2]", "export", "dataset.json is damaged"),
    ],
)
def test_damaged_run_files_are_named_with_exit_2(
    kept_run: Path, tmp_path: Path, capsys, file: str, content: str, command: str, message: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(kept_run, run)
    (run / file).write_text(content)
    target = str(run / "export") if command in ("predict", "evaluate") else str(run)
    extra = {"predict": [str(run / "export" / "model.pt")], "resume": ["--budget", "3"]}.get(command, [])
    code = main([command, target, *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
