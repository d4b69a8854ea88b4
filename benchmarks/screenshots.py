"""See the search as a user does: a fresh run, then TensorBoard, optuna-dashboard and the report in headless
Chromium, saved as screenshots (docs/screenshots/ by default).

    python benchmarks/screenshots.py [--out docs/screenshots] [--budget 40] [--work /tmp/rlnas-shots]

Needs Debian's ``chromium`` package and ``pip install -e '.[dashboard]'``. The run uses the default config
(digits) with ``--budget`` children; the README's and docs' pictures come from this script.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s")


def shoot(url: str, out: Path, width: int = 1400, height: int = 1000, wait_ms: int = 8000) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("headless Chromium is needed: apt-get install chromium")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    print(f"{out} <- {url}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/rlnas-shots"))
    parser.add_argument("--budget", type=int, default=40)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    run = args.work / "run"
    start = time.monotonic()
    subprocess.run(
        [str(BIN / "rlnas"), "-q", "search", "--budget", str(args.budget), "--run-dir", str(run)], check=True
    )
    subprocess.run([str(BIN / "rlnas"), "report", str(run)], check=True)
    print(f"search, export and report: {time.monotonic() - start:.0f} s")

    tb_port, hp_port, od_port = free_port(), free_port(), free_port()
    servers = [
        subprocess.Popen(
            [str(BIN / "tensorboard"), "--logdir", str(run / logdir), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for logdir, port in (("tensorboard", tb_port), ("hparams", hp_port))
    ] + [
        subprocess.Popen(
            [str(BIN / "optuna-dashboard"), f"sqlite:///{run.resolve() / 'optuna.sqlite3'}", "--port", str(od_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        # forceSVG: headless Chromium draws no WebGL charts
        tb, hp = f"http://127.0.0.1:{tb_port}/?forceSVG=true", f"http://127.0.0.1:{hp_port}"
        od = f"http://127.0.0.1:{od_port}"
        for url in (tb, hp, od):
            wait_for(url)
        time.sleep(5)  # TensorBoard reads the event files in the background
        shoot(f"{tb}#custom_scalars", args.out / "tensorboard_policy.png", height=2200)
        # the last policy update's heatmap (the step slider walks through the earlier ones)
        shoot(f"{tb}&tagFilter=choice_probabilities#images", args.out / "tensorboard_policy_heatmap.png", height=1300)
        shoot(f"{tb}&tagFilter=search#timeseries", args.out / "tensorboard_search.png", height=1000)
        shoot(f"{hp}/#hparams", args.out / "tensorboard_hparams.png", height=1100)
        shoot(f"{tb}#text", args.out / "tensorboard_best_child.png", height=900)
        shoot(f"{tb}#graphs&run=best_child_graph", args.out / "tensorboard_graph.png", height=900)
        # the whole study page: history, importances, timeline, intermediate values
        shoot(f"{od}/dashboard/studies/1", args.out / "optuna_dashboard_history.png", height=2400)
        shoot(f"{od}/dashboard/studies/1/analytics", args.out / "optuna_dashboard_analytics.png", height=1300)
        shoot(f"{od}/dashboard/studies/1/trials", args.out / "optuna_dashboard_trials.png", height=1300)
        shoot((run / "report" / "index.html").resolve().as_uri(), args.out / "report.png", height=2600)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
