"""The wheel a user installs: built from this repository, installed outside the clone, it holds every module
and the shipped configs, and runs a search in each evaluation mode, the report, the export and predict."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import TINY

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The wheel, installed into a folder of its own (the test's environment provides its dependencies). Built
    once for all xdist workers: two builds at a time in the clone's build/ folder collide."""
    shared = tmp_path_factory.getbasetemp()
    shared = shared if worker_id == "master" else shared.parent
    root = shared / "wheel"
    with (shared / "wheel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (root / "installed").exists():
            shutil.rmtree(root, ignore_errors=True)  # what a failed build left
            _build_and_install(root)
            (root / "installed").touch()
    return root / "site"


def _build_and_install(root: Path) -> None:
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    built = subprocess.run([*pip, "wheel", str(REPO), "--no-deps", "-w", str(root / "dist")], capture_output=True)
    assert built.returncode == 0, built.stderr.decode()[-2000:]
    (wheel,) = (root / "dist").glob("rlnas-*.whl")
    installed = subprocess.run([*pip, "install", "--no-deps", "--target", str(root / "site"), str(wheel)])
    assert installed.returncode == 0


def installed(site: Path, *args: str, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """``rlnas ARGS`` (or Python ``code``) run from the installed wheel only, in a folder outside the clone."""
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONWARNINGS": "ignore", "RLNAS_CACHE_DIR": str(cwd / "cache")}
    program = code if code is not None else "import sys; from rlnas.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", program, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_wheel_holds_every_module_and_config(site: Path, tmp_path: Path) -> None:
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "rlnas").rglob("*.py"))
    missing = [m for m in modules if not (site / m).is_file()]
    assert not missing, f"the wheel lacks {missing}"
    envs = sorted(p.name for p in (REPO / "envs").glob("*.py"))
    assert all((site / "rlnas_envs" / name).is_file() for name in envs)
    configs = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
    assert sorted(p.name for p in (site / "rlnas" / "configs").glob("*.yaml")) == configs
    check = (
        "import importlib, pkgutil, sys, rlnas, rlnas_envs\n"
        "assert rlnas.__file__.startswith(sys.argv[1]), rlnas.__file__\n"
        "for m in pkgutil.walk_packages(rlnas.__path__, 'rlnas.'): importlib.import_module(m.name)\n"
        "from rlnas.shipped import shipped_configs\n"
        "print(' '.join(shipped_configs()))\n"
        "print(rlnas.api.make_config(config='table').space.family)\n"
    )
    result = installed(site, str(site), cwd=tmp_path, code=check)
    assert result.returncode == 0, result.stderr
    names, family = result.stdout.split("\n")[:2]
    assert sorted(names.split()) == sorted(c.removesuffix(".yaml") for c in configs) and family == "mlp"
    listed = installed(site, "config", cwd=tmp_path)
    assert listed.returncode == 0 and "mnist" in listed.stdout
    shown = installed(site, "config", "table", cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout == (REPO / "configs" / "table.yaml").read_text()
    missing_config = installed(site, "search", "--config", "nosuch", cwd=tmp_path)
    assert missing_config.returncode == 2 and "--config" in missing_config.stderr and "mnist" in missing_config.stderr
    python_error = installed(site, cwd=tmp_path, code="import rlnas; rlnas.search(config='nosuch')")
    assert "config=" in python_error.stderr and "--config" not in python_error.stderr


def test_the_wheel_searches_exports_reports_and_predicts(site: Path, tmp_path: Path) -> None:
    from PIL import Image

    search = installed(site, "search", "--config", "default", *TINY, "--budget", "3", "--run-dir", "run", cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    assert "final test accuracy" in search.stdout and (tmp_path / "run" / "export" / "model.onnx").is_file()
    report = installed(site, "report", "run", cwd=tmp_path)
    assert report.returncode == 0 and (tmp_path / "run" / "report" / "index.html").is_file(), report.stderr
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8), mode="L").save(tmp_path / "blank.png")
    predict = installed(site, "predict", "run/export", "blank.png", "--json", cwd=tmp_path)
    assert predict.returncode == 0 and '"label"' in predict.stdout, predict.stderr


def test_the_wheel_runs_the_one_shot_evaluation(site: Path, tmp_path: Path) -> None:
    result = installed(
        site,
        "search",
        *TINY,
        "--evaluation",
        "oneshot",
        "--strategy",
        "darts",
        "--budget",
        "3",
        "--no-export",
        "--run-dir",
        "run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "search finished: 3 children" in result.stdout
